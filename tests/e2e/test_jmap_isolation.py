"""JMAP work must not starve mail delivery (issue 11): many JMAP clients loop heavy Email/query (a text
condition reads every message) and Email/get (bodies) while SMTP delivers, and a JMAP client sends with
EmailSubmission/set meanwhile (its commit holds no API thread). Every delivery's 250 and every submission
must arrive; latencies are printed, not asserted (tests never assert timings); deadlines only guard hangs."""
import http.client
import json
import threading
import time

from conftest import DOMAIN, PASSWORD
from jmap_session import CORE, MAIL, SUBMISSION, primary_account
from load import deliver_timed, fill, summary
from test_jmap import ALICE, BOB, basic

CAROL = f"carol@{DOMAIN}"
HANG_GUARD = 600  # seconds: the JMAP clients are the load, not what is measured


class Jmap:
    """One keep-alive HTTP connection from its own source address (per-IP limits see every local client as one)."""

    def __init__(self, port, source, user=ALICE):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD,
                                                     source_address=(source, 0))
        self.auth = basic(user, PASSWORD)

    def api(self, calls, using=(CORE, MAIL)):
        body = json.dumps({"using": list(using), "methodCalls": calls})
        self.connection.request("POST", "/jmap/api", body=body,
                                headers={"Authorization": self.auth, "Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        assert response.status == 200, (response.status, data[:300])
        return json.loads(data)["methodResponses"]

    def account(self):
        self.connection.request("GET", "/jmap/session", headers={"Authorization": self.auth})
        response = self.connection.getresponse()
        return primary_account(response.status, response.read())


def test_jmap_queries_do_not_hold_up_delivery(make_server):
    server = make_server(users=("alice", "bob", "carol"), sections={"http": {
        "listen": ["127.0.0.1:0"], "allow_plaintext_login": True, "max_concurrent_requests": 64,
        "max_connections_per_ip": 200, "api_threads": 2}})
    fill(server, ALICE, 300, tag="jload")
    from test_jmap import http_port
    port = http_port(server)

    stop = threading.Event()
    errors, rounds = [], [0]
    lock = threading.Lock()
    ready = threading.Semaphore(0)

    def reader(n):
        try:
            jmap = Jmap(port, f"127.0.4.{n + 1}")
            account = jmap.account()
            ready.release()
            while not stop.is_set():
                responses = jmap.api([
                    ["Email/query", {"accountId": account, "filter": {"text": f"nothing-matches-{n}"}}, "q"],
                    ["Email/query", {"accountId": account, "sort": [{"property": "receivedAt"}], "limit": 50}, "r"],
                    ["Email/get", {"accountId": account, "#ids": {"resultOf": "r", "name": "Email/query", "path": "/ids"},
                                   "properties": ["subject", "from", "preview", "bodyValues", "textBody"],
                                   "fetchTextBodyValues": True}, "g"]])
                assert [r[0] for r in responses] == ["Email/query", "Email/query", "Email/get"], responses[0]
                with lock:
                    rounds[0] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"reader {n}: {e!r}")
            ready.release()

    submitted = []

    def submitter():
        # EmailSubmission/set waits for the group committer without holding an API thread: under the same
        # load, every submission is created and delivered.
        try:
            jmap = Jmap(port, "127.0.5.1", CAROL)
            account = jmap.account()
            using = (CORE, MAIL, SUBMISSION)
            boxes = {m["role"]: m["id"] for m in jmap.api([["Mailbox/get", {"accountId": account}, "m"]])[0][1]["list"]}
            identity = jmap.api([["Identity/get", {"accountId": account}, "i"]], using)[0][1]["list"][0]["id"]
            for i in range(5):
                responses = jmap.api([
                    ["Email/set", {"accountId": account, "create": {"d": {
                        "mailboxIds": {boxes["drafts"]: True}, "from": [{"email": CAROL}], "to": [{"email": BOB}],
                        "subject": f"jmap-send {i}", "textBody": [{"partId": "1", "type": "text/plain"}],
                        "bodyValues": {"1": {"value": "sent under load"}}}}}, "e"],
                    ["EmailSubmission/set", {"accountId": account, "create": {"s": {"identityId": identity, "emailId": "#d"}},
                                             "onSuccessUpdateEmail": {"#s": {f"mailboxIds/{boxes['drafts']}": None,
                                                                             f"mailboxIds/{boxes['sent']}": True}}}, "s"]],
                    using)
                assert responses[1][0] == "EmailSubmission/set" and "s" in (responses[1][1]["created"] or {}), responses
                assert responses[2][0] == "Email/set", responses
                submitted.append(i)
        except Exception as e:  # noqa: BLE001
            errors.append(f"submitter: {e!r}")

    readers = [threading.Thread(target=reader, args=(n,)) for n in range(24)]
    sender = threading.Thread(target=submitter)
    try:
        for t in readers:
            t.start()
        for _ in readers:
            assert ready.acquire(timeout=HANG_GUARD), errors[:5]
        assert not errors, errors[:5]
        time.sleep(2)  # let the queries pile up
        sender.start()
        latencies = deliver_timed(server, BOB, 40, header_to=ALICE, tag="jload", timeout=HANG_GUARD)
        sender.join(timeout=HANG_GUARD)
    finally:
        stop.set()
        for t in readers + [sender]:
            if t.is_alive() or t.ident:
                t.join(timeout=HANG_GUARD)
    assert not errors, errors[:5]
    assert submitted == list(range(5))
    assert len(server.uids(BOB)) == 45
    print(f"jmap isolation: {summary(latencies)}; {rounds[0]} JMAP query rounds meanwhile")
