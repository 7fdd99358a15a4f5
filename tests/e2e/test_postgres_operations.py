"""Operating several magpied nodes on one PostgreSQL store (issue 16), the proofs that need a failure:
a node SIGKILLed in the middle of receiving and of delivering its leased queue entries, and PostgreSQL itself
restarted under load. Each test starts its own cluster (tests/e2e/postgres.py): a restart must not disturb
the session's shared one."""
import base64
import imaplib
import json
import re
import select
import smtplib
import socket
import socketserver
import threading
import time
from collections import Counter

import pytest

from conftest import DOMAIN, PASSWORD, Magpied, client_tls_context

pytestmark = pytest.mark.own_store(reason="its nodes choose their PostgreSQL store themselves")

ALICE = f"alice@{DOMAIN}"


class AckingSink:
    """A receiving SMTP server that keeps a message only when it could still acknowledge it: each end of DATA
    is answered after `delay` seconds, and a client gone by then (killed) is not counted as delivered, as
    the sender never heard the 250. Keeps (time, EHLO name, bytes) per accepted message."""

    def __init__(self, host="127.0.0.5", delay=0.5):
        sink = self
        self.accepted = []
        self.lock = threading.Lock()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    self.converse()
                except ConnectionError:
                    pass  # a client killed mid-session

            def converse(self):
                self.wfile.write(b"220 sink.test ESMTP\r\n")
                helo = ""
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        helo = line[5:].strip().decode(errors="replace")
                        self.wfile.write(b"250 sink.test\r\n")
                    elif verb == b"DATA":
                        self.wfile.write(b"354 go on\r\n")
                        data = b""
                        while not data.endswith(b"\r\n.\r\n"):
                            chunk = self.rfile.readline()
                            if not chunk:
                                return
                            data += chunk
                        time.sleep(delay)
                        # A killed client's socket reads as end of file: it will never see the 250.
                        readable, _, _ = select.select([self.connection], [], [], 0)
                        if readable and not self.connection.recv(1, socket.MSG_PEEK):
                            return
                        with sink.lock:
                            sink.accepted.append((time.time(), helo, data[:-3]))
                        self.wfile.write(b"250 2.0.0 kept\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:  # MAIL, RCPT, RSET, NOOP
                        self.wfile.write(b"250 ok\r\n")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((host, 0), Handler)
        self.host, self.port = self.server.server_address
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self):
        with self.lock:
            return [(at, helo, re.search(rb"Message-ID: <(q\d+)@", data).group(1).decode())
                    for at, helo, data in self.accepted]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Senders:
    """Threads that send numbered messages to alice over SMTP, to one node or another, and note which ones
    were acknowledged with 250 and which were refused (any 4xx, or the connection lost)."""

    def __init__(self, targets, threads=3):
        self.targets = list(targets)  # [(host, port)], changed by the test (a dead node is dropped)
        self.acknowledged, self.refused = [], []
        self.replies = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.counter = 0
        self.workers = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        for worker in self.workers:
            worker.start()
        return self

    def next_id(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def run(self, index):
        while not self.stopping.is_set():
            n = self.next_id()
            targets = self.targets
            host, port = targets[n % len(targets)]
            message = (f"From: sender@remote.example\r\nTo: {ALICE}\r\nMessage-ID: <s{n}@remote.example>\r\n"
                       f"Subject: load s{n}\r\n\r\nmessage s{n}\r\n").encode()
            # Each sender its own source address: per-IP limits see distinct clients.
            source = f"127.0.1.{index + 1}"
            try:
                with smtplib.SMTP(host, port, timeout=20, source_address=(source, 0)) as client:
                    client.sendmail("sender@remote.example", [ALICE], message)
                with self.lock:
                    self.acknowledged.append(f"s{n}")
                    self.replies[250] += 1
            except smtplib.SMTPResponseException as error:
                with self.lock:
                    self.refused.append(f"s{n}")
                    self.replies[error.smtp_code] += 1
            except smtplib.SMTPRecipientsRefused as error:
                with self.lock:
                    self.refused.append(f"s{n}")
                    for code, _ in error.recipients.values():
                        self.replies[code] += 1
            except (OSError, smtplib.SMTPException) as error:
                with self.lock:
                    self.refused.append(f"s{n}")
                    self.replies[type(error).__name__] += 1
                time.sleep(0.2)

    def stop(self):
        self.stopping.set()
        for worker in self.workers:
            worker.join(timeout=60)


def stored_subjects(node, mailbox="INBOX"):
    """The Subject of every message in alice's mailbox, read over IMAP on `node`."""
    client = imaplib.IMAP4_SSL(node.host, node.imaps_port, ssl_context=client_tls_context())
    client.login(ALICE, PASSWORD)
    client.select(mailbox, readonly=True)
    typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    client.logout()
    if typ != "OK" or data == [None]:
        return []
    return [re.search(rb"Subject: load (\S+)", part[1]).group(1).decode()
            for part in data if isinstance(part, tuple)]


def node(tmp_path, name, host, dsn, sections=None):
    workdir = tmp_path / name
    workdir.mkdir()
    server = Magpied(workdir, host=host, store_dsn=dsn, hostname=f"{name}.example.test", sections=sections)
    if "queue.route" in (sections or {}):
        server.config.write_text(server.config.read_text().replace("[queue.route]", "[[queue.route]]"))
    return server


def test_a_node_killed_mid_delivery_loses_nothing_acknowledged_and_its_leases_pass_on(own_cluster, tmp_path):
    """Node 1 is SIGKILLed while it holds leased queue entries (each in the middle of a delivery to a slow
    remote) and while it receives SMTP: node 2 goes on receiving; every message node 1 or node 2 answered
    250 is stored exactly once; once node 1's leases lapse node 2 delivers what node 1 held, and no queued
    message reaches the remote twice except one node 1 had handed over (remote 250) but not yet recorded
    when it died (counted and reported)."""
    sink = AckingSink(delay=1.0)
    nodes, senders = [], None
    lease_time = 15  # longer than node 1 delivers before the kill: no lease lapses under a live node
    try:
        dsn = own_cluster.create_database("kill")
        queue = {"poll_interval": 1, "batch": 100, "idle_keep": 1, "lease_time": lease_time}
        route = {"domain": "sink.test", "host": sink.host, "port": sink.port}
        for name, host in (("node1", "127.0.0.2"), ("node2", "127.0.0.3")):
            nodes.append(node(tmp_path, name, host, dsn, {"queue": queue, "queue.route": route}))
        node1, node2 = nodes
        node1.magpie("domain", "add", DOMAIN)
        node1.add_user(ALICE)
        count = 24
        for n in range(count):
            path = tmp_path / f"q{n}.eml"
            path.write_bytes(f"From: {ALICE}\r\nTo: x@sink.test\r\nMessage-ID: <q{n}@example.test>\r\n"
                             f"Subject: queued q{n}\r\n\r\nmessage q{n}\r\n".encode())
            node1.magpie("queue", "add", "--from", ALICE, "--to", "x@sink.test", str(path))

        started = time.time()
        node1.start()  # alone: its first round leases the whole queue (batch 100)
        deadline = time.time() + 30
        while time.time() < deadline and len(sink.ids()) < 2:
            time.sleep(0.05)
        assert len(sink.ids()) >= 2, node1.log_text()[-3000:]
        node2.start()
        senders = Senders([(node1.host, node1.smtp_port), (node2.host, node2.smtp_port)]).start()
        time.sleep(2)  # both nodes receive; node 1 delivers its leased entries two at a time
        before_kill = len(sink.ids())
        assert before_kill < count - 4, "node 1 finished its leases before the kill: the test proves nothing"
        node1.kill()  # SIGKILL: no drain, no lease released, sessions cut
        killed_at = time.time()
        senders.targets = [(node2.host, node2.smtp_port)]  # the survivor goes on receiving
        time.sleep(2)
        senders.stop()
        acknowledged = list(senders.acknowledged)
        assert senders.replies[250] > 0

        # Node 2 takes node 1's lapsed leases (not before lease_time) and delivers every message.
        deadline = time.time() + lease_time + 60
        while time.time() < deadline and len({q for _, _, q in sink.ids()}) < count:
            time.sleep(0.2)
        time.sleep(2)  # anything sent twice would arrive by now
        accepted = sink.ids()
        by_id = Counter(q for _, _, q in accepted)
        assert set(by_id) == {f"q{n}" for n in range(count)}, node2.log_text()[-3000:]
        taken_over = [(at, helo, q) for at, helo, q in accepted if at > killed_at]
        assert taken_over and all(helo == "node2.example.test" for _, helo, _ in taken_over)
        # Node 1 leased them after it started: node 2 may not have them before lease_time from then.
        assert min(at for at, _, _ in taken_over) >= started + lease_time, (
            "node 2 delivered node 1's entries before their lease lapsed")
        # A duplicate is only one node 1 had handed to the remote (250) and died before recording.
        duplicates = [q for q, n in by_id.items() if n > 1]
        for q in duplicates:
            copies = sorted((at, helo) for at, helo, qq in accepted if qq == q)
            assert len(copies) == 2 and copies[0][1] == "node1.example.test" and copies[1][1] == "node2.example.test"
            assert copies[0][0] > killed_at - 2, f"{q}: node 1 delivered it long before it died yet it went again"
        print(f"\nkill test: {count} queued, {before_kill} delivered by node 1 before the kill, "
              f"{len(taken_over)} delivered by node 2 after it, {len(duplicates)} delivered twice (cut between "
              f"the remote's 250 and node 1's commit); SMTP replies during the run: {dict(senders.replies)}")

        # Every acknowledged message is stored exactly once; nothing is stored twice.
        subjects = Counter(stored_subjects(node2))
        missing = [s for s in acknowledged if subjects[s] != 1]
        assert not missing, f"acknowledged but not stored exactly once: {missing}"
        assert all(n == 1 for n in subjects.values()), [s for s, n in subjects.items() if n > 1]
        queue_state = node2.magpie("queue", "list", "--all").stdout.decode()
        assert queue_state.count("x@sink.test delivered") == count, queue_state
        check = node2.magpie("check", check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        if senders:
            senders.stop()
        for server in nodes:
            if server.proc is not None and server.proc.poll() is None:
                assert server.stop() == 0, server.log_text()[-3000:]
        sink.stop()


def send_one(server, subject, source="127.0.2.1"):
    """One message to alice through `server`: 250, the 4xx/5xx code that refused it, or "lost" (the
    connection broke: no answer, so nothing is promised)."""
    message = (f"From: sender@remote.example\r\nTo: {ALICE}\r\nMessage-ID: <{subject}@remote.example>\r\n"
               f"Subject: load {subject}\r\n\r\nmessage {subject}\r\n").encode()
    try:
        with smtplib.SMTP(server.host, server.smtp_port, timeout=20, source_address=(source, 0)) as client:
            client.sendmail("sender@remote.example", [ALICE], message)
        return 250
    except smtplib.SMTPRecipientsRefused as error:
        return next(iter(error.recipients.values()))[0]
    except smtplib.SMTPResponseException as error:
        return error.smtp_code
    except (OSError, smtplib.SMTPException):
        return "lost"


def open_idle(server):
    """A raw IMAP session on `server` idling in alice's INBOX; returns (socket, EXISTS count at SELECT)."""
    raw = socket.create_connection((server.host, server.imaps_port), timeout=10)
    sock = client_tls_context().wrap_socket(raw)
    read_until(sock, rb"\* OK", 5)
    sock.sendall(f'a1 LOGIN "{ALICE}" "{PASSWORD}"\r\n'.encode())
    assert b"a1 OK" in read_until(sock, rb"a1 (OK|NO|BAD)", 10)
    sock.sendall(b"a2 SELECT INBOX\r\n")
    selected = read_until(sock, rb"a2 (OK|NO|BAD)", 10)
    assert b"a2 OK" in selected
    sock.sendall(b"a3 IDLE\r\n")
    assert read_until(sock, rb"\+ ", 5).startswith(b"+")
    return sock, int(re.search(rb"\* (\d+) EXISTS", selected).group(1))


def read_until(sock, pattern, timeout):
    data, deadline = b"", time.time() + timeout
    sock.settimeout(0.2)
    while time.time() < deadline and not re.search(pattern, data):
        try:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        except socket.timeout:
            pass
    return data


def imap_message_count(server):
    client = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=client_tls_context())
    client.login(ALICE, PASSWORD)
    typ, data = client.status("INBOX", "(MESSAGES)")
    client.logout()
    assert typ == "OK", data
    return int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))


def test_postgres_restarted_under_load_answers_4xx_while_away_and_recovers_without_a_restart(own_cluster, tmp_path):
    """PostgreSQL is stopped for a few seconds while two nodes receive: SMTP during the outage gets 4xx
    (never a 250 that was not committed), IMAP gets NO; after it both nodes accept and serve mail again
    without being restarted, and an IDLE on node 1 that lived through the outage hears of a message
    delivered through node 2 just after it (its LISTEN connection came back and it re-read its state
    rather than trust the notifications sent while it was away)."""
    dsn = own_cluster.create_database("restart")
    node1 = node(tmp_path, "node1", "127.0.0.2", dsn)
    node2 = node(tmp_path, "node2", "127.0.0.3", dsn)
    senders = None
    try:
        node1.magpie("domain", "add", DOMAIN)
        node1.add_user(ALICE)
        node1.start()
        node2.start()
        idle, _ = open_idle(node1)
        watcher = imaplib.IMAP4_SSL(node2.host, node2.imaps_port, ssl_context=client_tls_context())
        watcher.login(ALICE, PASSWORD)
        assert watcher.select("INBOX")[0] == "OK"

        senders = Senders([(node1.host, node1.smtp_port), (node2.host, node2.smtp_port)]).start()
        time.sleep(2)
        own_cluster.outage()
        away_since = time.time()
        during = [send_one(server, f"o{i}-{n}", source=f"127.0.2.{i + 1}")
                  for n in range(2) for i, server in enumerate((node1, node2))]
        typ, data = watcher.status("INBOX", "(MESSAGES)")
        assert typ == "NO", (typ, data)  # the session stays; only this command fails
        time.sleep(max(0, away_since + 4 - time.time()))
        senders.stop()
        assert not [code for code in during if code == 250], during
        assert all(code == "lost" or 400 <= code < 500 for code in during), during
        acknowledged = list(senders.acknowledged)
        assert acknowledged, dict(senders.replies)

        own_cluster.resume()
        resumed = time.time()
        # The first message after the outage goes through node 2 only: node 1 hears of it through
        # PostgreSQL alone, maybe before its LISTEN connection is back.
        code = None
        while time.time() < resumed + 30 and code != 250:
            code = send_one(node2, "first-after")
            if code != 250:
                time.sleep(0.1)
        assert code == 250, f"node 2 did not accept mail again: {code}\n" + node2.log_text()[-3000:]
        first_accepted_after = time.time() - resumed
        expected = imap_message_count(node2)
        news = read_until(idle, rb"\* %d EXISTS" % expected, 10)
        assert b"* %d EXISTS" % expected in news, (expected, news, node1.log_text()[-3000:])
        idle.sendall(b"DONE\r\n")
        assert b"a3 OK" in read_until(idle, rb"a3 (OK|NO|BAD)", 5)
        idle.close()

        # Both nodes work again, restarted by nobody: SMTP, and IMAP on the session that saw the outage.
        assert send_one(node1, "after-1") == 250
        assert send_one(node2, "after-2") == 250
        typ, data = watcher.status("INBOX", "(MESSAGES)")
        assert typ == "OK", data
        watcher.logout()

        subjects = Counter(stored_subjects(node1))
        missing = [s for s in acknowledged + ["first-after", "after-1", "after-2"] if subjects[s] != 1]
        assert not missing, f"acknowledged but not stored exactly once: {missing}"
        assert all(n == 1 for n in subjects.values()), [s for s, n in subjects.items() if n > 1]
        print(f"\nrestart test: {len(acknowledged)} acknowledged under load, replies during the run "
              f"{dict(senders.replies)}, during the outage {during}; node 2 accepted mail again "
              f"{first_accepted_after:.2f} s after PostgreSQL was back")
        for server in (node1, node2):
            assert server.proc.poll() is None, "magpied exited"
    finally:
        if senders:
            senders.stop()
        for server in (node1, node2):
            if server.proc is not None and server.proc.poll() is None:
                assert server.stop() == 0, server.log_text()[-3000:]


def imap_login_answer(server, password):
    client = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=client_tls_context())
    try:
        client.login(ALICE, password)
        client.logout()
        return "OK"
    except imaplib.IMAP4.error as error:
        return str(error)


def test_login_failures_alternating_between_nodes_are_throttled_as_on_one_node(postgres_cluster, tmp_path):
    """A guesser alternating between two nodes of one store gets the budget of one node: after
    max_user_failures wrong passwords spread over both, the account is locked out on both (the right
    password included) for first_lockout seconds."""
    dsn = postgres_cluster.create_database("throttle")
    auth = {"max_user_failures": 4, "first_lockout": 30}
    nodes = []
    try:
        for name, host in (("node1", "127.0.0.2"), ("node2", "127.0.0.3")):
            workdir = tmp_path / name
            workdir.mkdir()
            nodes.append(Magpied(workdir, host=host, store_dsn=dsn, hostname=f"{name}.example.test",
                                 auth_options=auth))
        nodes[0].magpie("domain", "add", DOMAIN)
        nodes[0].add_user(ALICE)
        for server in nodes:
            server.start()
        for attempt in range(3):
            answer = imap_login_answer(nodes[attempt % 2], "wrong password")
            assert "AUTHENTICATIONFAILED" in answer, answer
        # Three failures so far, spread over two nodes: neither has reached four on its own, and the right
        # password still works...
        assert imap_login_answer(nodes[1], PASSWORD) == "OK"
        # ...which clears the account's count (as on one node); the guesser starts over, alternating.
        for attempt in range(4):
            answer = imap_login_answer(nodes[attempt % 2], "wrong password")
            assert "AUTHENTICATIONFAILED" in answer, answer
        for server in nodes:
            answer = imap_login_answer(server, PASSWORD)
            assert "UNAVAILABLE" in answer, answer  # locked out on both nodes, the right password too
    finally:
        for server in nodes:
            if server.proc is not None and server.proc.poll() is None:
                assert server.stop() == 0, server.log_text()[-3000:]


def event_source_events(sock, count, timeout):
    """Reads an EventSource body until `count` events (blank-line ended) arrived, the peer closed, or
    `timeout` seconds passed; returns the text read."""
    data, deadline = b"", time.time() + timeout
    sock.settimeout(0.5)
    while time.time() < deadline and data.count(b"\n\n") < count:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def test_event_source_lives_through_a_postgres_restart_and_reports_the_next_change(own_cluster, tmp_path):
    """RFC 8620 7.3 push across a store outage: while PostgreSQL is away (and when the node re-reads every
    state on getting its LISTEN connection back, maybe on a pooled connection that is not back yet) the
    stream stays open, sending pings; the first change after the outage arrives on the same stream."""
    dsn = own_cluster.create_database("push")
    server = node(tmp_path, "node1", "127.0.0.2", dsn,
                  sections={"http": {"listen": ["127.0.0.2:0"], "allow_plaintext_login": True}})
    try:
        server.magpie("domain", "add", DOMAIN)
        server.add_user(ALICE)
        server.start()
        deadline = time.time() + 10
        while not (found := re.search(r"listening on 127\.0\.0\.2:(\d+) \(http\)", server.current_log())):
            assert time.time() < deadline, server.current_log()
            time.sleep(0.05)
        auth = base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode()
        sock = socket.create_connection(("127.0.0.2", int(found.group(1))), timeout=10)
        sock.sendall(f"GET /jmap/eventsource?types=*&closeafter=no&ping=1 HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Basic {auth}\r\n\r\n".encode())
        assert event_source_events(sock, 1, 10).startswith("HTTP/1.1 200")

        own_cluster.outage()
        time.sleep(3)
        during = event_source_events(sock, 1, 5)
        assert "event: ping" in during, during  # still open, still answering
        own_cluster.resume()
        code = None
        resumed = time.time()
        while time.time() < resumed + 60 and code != 250:
            code = send_one(server, "after-outage")
            if code != 250:
                time.sleep(0.2)
        assert code == 250, server.log_text()[-3000:]
        stream = ""
        while time.time() < resumed + 120 and "event: state" not in stream:
            more = event_source_events(sock, 1, 5)
            assert more, "the EventSource stream was closed:\n" + server.log_text()[-3000:]
            stream += more
        assert "event: state" in stream, stream
        change = json.loads(stream.split("event: state\ndata: ", 1)[1].split("\n")[0])
        assert change["@type"] == "StateChange"
        sock.close()
        assert server.proc.poll() is None, "magpied exited"
    finally:
        if server.proc is not None and server.proc.poll() is None:
            assert server.stop() == 0, server.log_text()[-3000:]
