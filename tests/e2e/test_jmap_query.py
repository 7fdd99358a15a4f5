"""Issue 14's remaining JMAP pieces against a real magpied over HTTP (urllib and a raw socket for push):
header-bound strings with CR/LF refused (RFC 8621 4.6), Email/query over the message text (text, body,
bcc, header, hasAttachment), SearchSnippet/get, Email/queryChanges and Mailbox/changes, and EventSource
StateChanges for Identity and VacationResponse writes."""
import json
import smtplib
import socket
import time

import pytest

from test_jmap import ALICE, CORE, HTTP_LIMITS, MAIL, Client, account_id, http_port

SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"

PLAIN = (b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nBcc: secret@remote.test\r\n"
         b"Subject: Lunch plans\r\nX-Tracker: ticket 42\r\n\r\nShall we meet at the pelican crossing?\r\n")
ATTACHED = (b"From: Dave <dave@remote.test>\r\nTo: alice@example.test\r\nSubject: The map\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee it "
            b"attached.\r\n--b\r\nContent-Type: image/png; name=map.png\r\nContent-Disposition: attachment; "
            b"filename=map.png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--b--\r\n")


@pytest.fixture
def jmap(make_server):
    server = make_server(sections={"http": HTTP_LIMITS})
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("carol@remote.test", [ALICE], PLAIN)
        smtp.sendmail("dave@remote.test", [ALICE], ATTACHED)
    return server, Client(server)


def call(client, name, arguments, using=(CORE, MAIL, SUBMISSION, VACATION)):
    status, _, response = client.api([[name, arguments, "c"]], using=using)
    assert status == 200, response
    return response["methodResponses"][0]


def query(client, account, condition):
    answer = call(client, "Email/query", {"accountId": account, "filter": condition,
                                          "sort": [{"property": "receivedAt", "isAscending": True}]})
    assert answer[0] == "Email/query", answer
    return answer[1]["ids"]


def inbox_id(client, account):
    boxes = call(client, "Mailbox/get", {"accountId": account})[1]["list"]
    return next(m["id"] for m in boxes if m["role"] == "inbox")


def test_line_breaks_in_header_values_are_invalid_properties(jmap):
    server, client = jmap
    account = account_id(client)
    inbox = inbox_id(client, account)
    answer = call(client, "Email/set", {"accountId": account, "create": {
        "a": {"mailboxIds": {inbox: True}, "subject": "Hi\r\nBcc: victim@remote.test"},
        "b": {"mailboxIds": {inbox: True}, "to": [{"name": "V\nX: y", "email": "v@remote.test"}]},
        "c": {"mailboxIds": {inbox: True}, "header:X-Note": "ok\r\nBcc: victim@remote.test"}}})[1]
    assert answer["created"] is None
    assert {k: v["properties"] for k, v in answer["notCreated"].items()} == {
        "a": ["subject"], "b": ["to"], "c": ["header:X-Note"]}
    assert all(v["type"] == "invalidProperties" for v in answer["notCreated"].values())
    identity = call(client, "Identity/set", {"accountId": account, "create": {
        "i": {"email": ALICE, "name": "Alice\r\nBcc: victim@remote.test"}}})[1]
    assert identity["notCreated"]["i"]["type"] == "invalidProperties"
    assert identity["notCreated"]["i"]["properties"] == ["name"]
    # Nothing was stored: the inbox holds the two delivered messages only.
    assert len(query(client, account, {"inMailbox": inbox})) == 2


def test_query_looks_in_bodies_bcc_headers_and_attachments(jmap):
    server, client = jmap
    account = account_id(client)
    plain, attached = query(client, account, {})
    assert query(client, account, {"body": "PELICAN"}) == [plain]
    assert query(client, account, {"text": "attached"}) == [attached]
    assert query(client, account, {"text": "secret@remote"}) == [plain]
    assert query(client, account, {"bcc": "secret"}) == [plain]
    assert query(client, account, {"header": ["X-Tracker"]}) == [plain]
    assert query(client, account, {"header": ["X-Tracker", "ticket 42"]}) == [plain]
    assert query(client, account, {"hasAttachment": True}) == [attached]
    assert query(client, account, {"operator": "NOT", "conditions": [{"hasAttachment": True}]}) == [plain]


def test_search_snippets_highlight_subject_and_body(jmap):
    server, client = jmap
    account = account_id(client)
    plain, attached = query(client, account, {})
    answer = call(client, "SearchSnippet/get", {"accountId": account, "filter": {"text": "pelican"},
                                                "emailIds": [plain, attached]})
    assert answer[0] == "SearchSnippet/get", answer
    first, second = answer[1]["list"]
    assert first == {"emailId": plain, "subject": None,
                     "preview": "Shall we meet at the <mark>pelican</mark> crossing?"}
    assert second == {"emailId": attached, "subject": None, "preview": None}


def test_query_changes_and_mailbox_changes_follow_new_mail(jmap):
    server, client = jmap
    account = account_id(client)
    inbox = inbox_id(client, account)
    first = call(client, "Email/query", {"accountId": account, "filter": {"inMailbox": inbox}})[1]
    assert first["canCalculateChanges"] is True
    mailbox_state = call(client, "Mailbox/get", {"accountId": account, "ids": []})[1]["state"]
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("erin@remote.test", [ALICE], b"Subject: newest\r\n\r\nhello\r\n")
    changes = call(client, "Email/queryChanges", {"accountId": account, "filter": {"inMailbox": inbox},
                                                  "sinceQueryState": first["queryState"], "calculateTotal": True})
    assert changes[0] == "Email/queryChanges", changes
    newest = call(client, "Email/query", {"accountId": account, "filter": {"inMailbox": inbox}})[1]["ids"][0]
    assert changes[1]["added"] == [{"id": newest, "index": 0}]
    assert changes[1]["removed"] == [] and changes[1]["total"] == 3
    boxes = call(client, "Mailbox/changes", {"accountId": account, "sinceState": mailbox_state})
    assert boxes[0] == "Mailbox/changes", boxes
    assert boxes[1]["updated"] == [inbox] and boxes[1]["created"] == [] and boxes[1]["destroyed"] == []
    assert boxes[1]["updatedProperties"] == ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]


def open_event_stream(server, client):
    sock = socket.create_connection(("127.0.0.1", http_port(server)), timeout=10)
    sock.sendall(f"GET /jmap/eventsource?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: {client.auth}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    time.sleep(0.5)  # the stream reads its first states after the head
    return sock, head.split(b"\r\n\r\n", 1)[1]


def next_change(sock, stream):
    while b"\n\n" not in stream:
        chunk = sock.recv(4096)
        assert chunk, stream
        stream += chunk
    event, rest = stream.split(b"\n\n", 1)
    assert event.startswith(b"event: state\n"), event
    return json.loads(event.decode().split("data: ", 1)[1]), rest


def test_identity_and_vacation_writes_are_pushed(jmap):
    server, client = jmap
    account = account_id(client)
    identity = call(client, "Identity/get", {"accountId": account})[1]["list"][0]["id"]  # made on first read
    sock, stream = open_event_stream(server, client)
    sent = time.time()
    answer = call(client, "Identity/set", {"accountId": account, "update": {identity: {"name": "Alice"}}})
    assert answer[1]["updated"] == {identity: None}, answer
    change, stream = next_change(sock, stream)
    print(f"pushed {(time.time() - sent) * 1000:.0f} ms after the write")  # printed, not asserted
    assert list(change["changed"][account]) == ["Identity"]
    answer = call(client, "VacationResponse/set", {"accountId": account,
                                                   "update": {"singleton": {"isEnabled": True}}})
    assert answer[1]["updated"] == {"singleton": None}, answer
    change, stream = next_change(sock, stream)
    assert list(change["changed"][account]) == ["VacationResponse"]
    sock.close()


def apply_query_changes(ids, changes):
    """RFC 8620 5.6: drop every removed id, then splice each added id in at its index, lowest first."""
    removed = set(changes["removed"])
    out = [i for i in ids if i not in removed]
    for item in sorted(changes["added"], key=lambda a: a["index"]):
        out.insert(item["index"], item["id"])
    return out


@pytest.mark.parametrize("condition", [None, {"notKeyword": "$flagged"},
                                       {"noneInThreadHaveKeyword": "$flagged"}])
def test_query_changes_with_collapsed_threads_match_a_fresh_query(jmap, condition):
    # RFC 8621 4.4.3 with collapseThreads: a reply replaces its thread's first Email in the results, a flag
    # brings an earlier Email of the thread back; applying the changes gives what a fresh query gives.
    server, client = jmap
    account = account_id(client)
    inbox = inbox_id(client, account)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("erin@remote.test", [ALICE], b"Message-ID: <root@remote.test>\r\nSubject: Kites\r\n\r\nfly?\r\n")
    arguments = {"accountId": account, "collapseThreads": True,
                 "filter": {"operator": "AND", "conditions": [{"inMailbox": inbox}] + ([condition] if condition else [])},
                 "sort": [{"property": "receivedAt", "isAscending": False}]}

    def fresh():
        answer = call(client, "Email/query", arguments)
        assert answer[0] == "Email/query", answer
        assert answer[1]["canCalculateChanges"] is True
        return answer[1]

    def changes_since(before):
        answer = call(client, "Email/queryChanges", dict(arguments, sinceQueryState=before["queryState"],
                                                         calculateTotal=True))
        assert answer[0] == "Email/queryChanges", answer
        now = fresh()
        assert apply_query_changes(before["ids"], answer[1]) == now["ids"], (before, answer, now)
        assert answer[1]["total"] == len(now["ids"])
        return now

    first = fresh()
    time.sleep(1.1)  # receivedAt has whole seconds: the reply is the newer one
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("frank@remote.test", [ALICE], b"Message-ID: <reply@remote.test>\r\nIn-Reply-To: "
                      b"<root@remote.test>\r\nReferences: <root@remote.test>\r\nSubject: Re: Kites\r\n\r\nyes\r\n")
    second = changes_since(first)
    newest = second["ids"][0]
    got = call(client, "Email/get", {"accountId": account, "ids": [newest], "properties": ["threadId", "subject"]})
    thread = got[1]["list"][0]["threadId"]
    mates = call(client, "Thread/get", {"accountId": account, "ids": [thread]})[1]["list"][0]["emailIds"]
    assert len(mates) == 2, mates
    if condition is None:
        assert newest == mates[1] and mates[0] not in second["ids"]
    # Flag the reply: with a keyword condition the thread's representative changes or the thread leaves.
    flagged = call(client, "Email/set", {"accountId": account, "update": {mates[1]: {"keywords/$flagged": True}}})
    assert flagged[0] == "Email/set" and mates[1] in flagged[1]["updated"], flagged
    third = changes_since(second)
    if condition == {"notKeyword": "$flagged"}:
        assert mates[0] in third["ids"] and mates[1] not in third["ids"]
    if condition == {"noneInThreadHaveKeyword": "$flagged"}:
        assert not set(mates) & set(third["ids"])
    # Destroy the reply: its thread's first Email stands for the thread again.
    destroyed = call(client, "Email/set", {"accountId": account, "destroy": [mates[1]]})
    assert destroyed[1]["destroyed"] == [mates[1]], destroyed
    fourth = changes_since(third)
    assert mates[0] in fourth["ids"]
