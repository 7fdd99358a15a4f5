"""The seed's scenario on one machine: crepes.fr (alice, 127.0.0.2) sends to hamburger.edu (bob, 127.0.0.3),
both magpied on port 25 inside a network namespace of the test's own, hamburger.edu found by its MX record
in a local dnsmasq. Mail enters crepes.fr's outgoing queue with `magpie queue add` (submission comes later)."""
import email
import os
import email.policy
import imaplib
import re
import signal
import socket
import threading
import time

import pytest

from conftest import PASSWORD, Magpied, client_tls_context

CREPES, HAMBURGER = "127.0.0.2", "127.0.0.3"
DNS = "127.0.0.53"
ALICE, BOB = "alice@crepes.fr", "bob@hamburger.edu"
RECORDS = ["mx-host=hamburger.edu,mx.hamburger.edu,10", f"host-record=mx.hamburger.edu,{HAMBURGER}",
           "mx-host=crepes.fr,mx.crepes.fr,10", f"host-record=mx.crepes.fr,{CREPES}"]


def queue_options(**extra):
    options = {"resolver": DNS, "poll_interval": 1, "retry_intervals": [2], "idle_keep": 2,
               "connect_timeout": 5, "command_timeout": 20}
    options.update(extra)
    return options


def make(tmp_path, name, host, domain, users, queue=None, sections=None):
    workdir = tmp_path / name
    workdir.mkdir()
    server = Magpied(workdir, host=host, smtp_port=25, hostname=f"mx.{domain}",
                     sections={"queue": queue or queue_options(), **(sections or {})})
    server.magpie("domain", "add", domain)
    for user in users:
        server.add_user(f"{user}@{domain}")
    return server


@pytest.fixture
def world(tmp_path, network_namespace, dnsmasq):
    dnsmasq.start(RECORDS)
    servers = {}

    def factory(name, queue=None):
        if name == "crepes":
            server = make(tmp_path, "crepes", CREPES, "crepes.fr", ["alice"], queue)
        else:
            server = make(tmp_path, "hamburger", HAMBURGER, "hamburger.edu", ["bob"], queue)
        servers[name] = server
        return server

    yield factory
    for server in servers.values():
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def message(subject, body="Bonjour Bob,\r\nles cr\xeapes sont pr\xeates.\r\n", charset="utf-8"):
    return (f"From: Alice <{ALICE}>\r\nTo: Bob <{BOB}>\r\nSubject: {subject}\r\n"
            f"Date: Sun, 29 Nov 2026 20:00:00 +0000\r\nMessage-ID: <{abs(hash(subject))}@crepes.fr>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode("utf-8")


def queue_add(server, data, sender=ALICE, to=(BOB,)):
    path = server.workdir / f"msg-{time.time_ns()}.eml"
    path.write_bytes(data)
    args = ["queue", "add", "--from", sender]
    for rcpt in to:
        args += ["--to", rcpt]
    return int(server.magpie(*args, str(path)).stdout.decode().strip())


def show(server, entry):
    return server.magpie("queue", "show", str(entry)).stdout.decode()


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(server, entry, rcpt):
    match = re.search(rf"recipient {re.escape(rcpt)}: (\w+)", show(server, entry))
    return match.group(1) if match else None


def imap_messages(server, user, password=PASSWORD):
    client = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=client_tls_context())
    client.login(user, password)
    client.select("INBOX")
    _, data = client.search(None, "ALL")
    out = []
    for num in data[0].split():
        _, fetched = client.fetch(num, "(BODY.PEEK[])")
        out.append(fetched[0][1])
    client.logout()
    return out


def test_delivers_to_the_mx_and_bob_reads_it_over_imap(world):
    hamburger = world("hamburger").start()
    crepes = world("crepes").start()
    sent = message("Crepes")
    entry = queue_add(crepes, sent)
    wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", what="delivery")
    received = imap_messages(hamburger, BOB)
    assert len(received) == 1
    original = email.message_from_bytes(sent, policy=email.policy.default)
    got = email.message_from_bytes(received[0], policy=email.policy.default)
    assert got["Subject"] == "Crepes" and got["From"] == original["From"] and got["To"] == original["To"]
    assert got.get_content() == original.get_content()
    assert got["Return-Path"] == f"<{ALICE}>"
    record = show(crepes, entry)
    assert "host mx.hamburger.edu [127.0.0.3:25]" in record and "TLS TLSv1." in record
    assert "C: MAIL FROM:<alice@crepes.fr>" in record and re.search(r"S: 250", record)


def connection_ids(record):
    return re.findall(r"connection (\S+)\n", record)


def test_several_messages_for_one_host_share_one_connection(world):
    crepes = world("crepes", queue_options(idle_keep=5))
    hamburger = world("hamburger").start()
    entries = [queue_add(crepes, message(f"Batch {i}")) for i in range(4)]
    crepes.start()  # all four are due together
    for entry in entries:
        wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", what=f"delivery of {entry}")
    ids = {connection_ids(show(crepes, entry))[-1] for entry in entries}
    assert len(ids) == 1, ids
    assert len(imap_messages(hamburger, BOB)) == 4
    # One connection carried them all, with RSET between the transactions (RFC 5321 4.1.1.5).
    assert re.search(r"carried message 4 \(entry", crepes.current_log())
    assert "C: RSET" in show(crepes, entries[-1])


def test_down_host_defers_with_the_connection_error_then_delivers(world):
    crepes = world("crepes").start()
    hamburger = world("hamburger")
    entry = queue_add(crepes, message("Patience"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "deferred", what="deferral")
    record = show(crepes, entry)
    assert "Connection refused" in record and "mx.hamburger.edu" in record
    assert f"{entry} " in crepes.magpie("queue", "list").stdout.decode()
    hamburger.start()
    wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", what="delivery after the host came back")
    assert len(imap_messages(hamburger, BOB)) == 1
    assert crepes.magpie("queue", "list").stdout.decode().strip() == ""


def report_in_inbox(server, user, timeout=30):
    def find():
        uids = server.uids(user)
        return server.export(user, "INBOX", uid=uids[0]) if uids else None
    return wait_for(find, timeout, what=f"a report in {user}'s INBOX")


def check_failure_report(data, recipient, reason_pattern):
    report = email.message_from_bytes(data, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report["To"] == ALICE and report["Return-Path"] == "<>"
    parts = list(report.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = parts[1].get_payload()
    fields = "\n".join(str(block) for block in status)
    assert f"Final-Recipient: rfc822; {recipient}" in fields and "Action: failed" in fields
    assert re.search(reason_pattern, parts[0].get_content() + fields), (parts[0].get_content(), fields)
    return report


def test_past_the_lifetime_alice_gets_a_failure_report(world):
    crepes = world("crepes", queue_options(lifetime=4, retry_intervals=[1])).start()
    entry = queue_add(crepes, message("Too late"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "failed", what="failure after the lifetime")
    report = check_failure_report(report_in_inbox(crepes, ALICE), BOB, r"Connection refused")
    assert "Subject: Too late" in list(report.iter_parts())[2].get_content()
    # A report is never reported on: the queue holds nothing from the null sender that waits.
    assert crepes.magpie("queue", "list").stdout.decode().strip() == ""


def test_unknown_user_fails_at_once_with_a_report(world):
    world("hamburger").start()
    crepes = world("crepes").start()
    entry = queue_add(crepes, message("Nobody"), to=("nobody@hamburger.edu",))
    wait_for(lambda: state_of(crepes, entry, "nobody@hamburger.edu") == "failed", what="a 5xx failure")
    record = show(crepes, entry)
    assert record.count("  attempt ") == 1 and "reply: 550 5.1.1" in record
    check_failure_report(report_in_inbox(crepes, ALICE), "nobody@hamburger.edu", r"550 5\.1\.1")


def test_delay_notice_once_while_the_host_is_down(world):
    crepes = world("crepes", queue_options(delay_notice_after=1, retry_intervals=[1])).start()
    entry = queue_add(crepes, message("Slow"))
    data = report_in_inbox(crepes, ALICE)
    report = email.message_from_bytes(data, policy=email.policy.default)
    assert report["Subject"] == "Delayed Mail (still being retried)"
    assert "Action: delayed" in "\n".join(str(b) for b in list(report.iter_parts())[1].get_payload())
    time.sleep(4)  # more failed attempts, no second notice
    assert len(crepes.uids(ALICE)) == 1
    assert state_of(crepes, entry, BOB) == "deferred"


def test_success_notice_for_notify_success_received_over_smtp(world):
    """hamburger.edu's SMTP server keeps the envelope of a NOTIFY=SUCCESS message; its queue turns it into a
    "delivered" report that goes to alice at crepes.fr by MX."""
    import smtplib
    world("hamburger").start()
    crepes = world("crepes").start()
    with smtplib.SMTP(HAMBURGER, 25, local_hostname="mx.crepes.fr") as client:
        client.ehlo()
        assert "dsn" in client.esmtp_features
        client.sendmail(ALICE, [BOB], message("Tell me"), rcpt_options=["NOTIFY=SUCCESS"])
    data = report_in_inbox(crepes, ALICE)
    report = email.message_from_bytes(data, policy=email.policy.default)
    assert report["Subject"] == "Delivery Status Notification"
    fields = "\n".join(str(b) for b in list(report.iter_parts())[1].get_payload())
    assert f"Final-Recipient: rfc822; {BOB}" in fields and "Action: delivered" in fields


def test_sigkill_while_delivering_loses_nobody(world):
    hamburger = world("hamburger").start()
    crepes = world("crepes")
    subjects = [f"Crash {i}" for i in range(30)]
    entries = [queue_add(crepes, message(s)) for s in subjects]
    crepes.start()
    wait_for(lambda: len(hamburger.uids(BOB)) >= 3, what="the first deliveries")
    crepes.kill()
    crepes.start()
    for entry in entries:
        wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", timeout=60, what=f"delivery of {entry}")
    got = set()
    for uid in hamburger.uids(BOB):
        got.add(email.message_from_bytes(hamburger.export(BOB, "INBOX", uid=uid))["Subject"])
    assert got == set(subjects)


class SevenBitSink:
    """A tiny SMTP server that offers no 8BITMIME (nor anything else): a peer of the kind RFC 6152 3 says must
    get 7-bit data. It keeps what it was sent."""

    def __init__(self, address, port=25):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen()
        self.commands, self.messages = [], []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            stream = conn.makefile("rb")
            conn.sendall(b"220 sink.test ESMTP\r\n")
            while True:
                line = stream.readline()
                if not line:
                    return
                self.commands.append(line)
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-sink.test\r\n250 SIZE 1000000\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    data = b""
                    while True:
                        chunk = stream.readline()
                        if chunk in (b".\r\n", b""):
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    self.messages.append(data)
                    conn.sendall(b"250 2.0.0 kept\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 2.0.0 ok\r\n")

    def close(self):
        self.sock.close()


def test_peer_without_8bitmime_gets_a_7bit_downgrade(tmp_path, network_namespace, dnsmasq):
    dnsmasq.start(RECORDS + ["mx-host=sink.test,mx.sink.test,10", "host-record=mx.sink.test,127.0.0.4"])
    sink = SevenBitSink("127.0.0.4")
    crepes = make(tmp_path, "crepes", CREPES, "crepes.fr", ["alice"]).start()
    try:
        body = "Gr\xfc\xdfe aus Paris: cr\xeapes, caf\xe9, na\xefve \u2014 \u20ac 5\r\n" * 3
        sent = message("Huit bits", body=body).replace(BOB.encode(), b"carol@sink.test")
        entry = queue_add(crepes, sent, to=("carol@sink.test",))
        wait_for(lambda: state_of(crepes, entry, "carol@sink.test") == "delivered", what="delivery to the sink")
        assert len(sink.messages) == 1
        data = sink.messages[0]
        assert all(b < 0x80 for b in data), "8-bit octets reached a peer without 8BITMIME"
        mail_from = [c for c in sink.commands if c.upper().startswith(b"MAIL FROM")][0]
        assert b"BODY=8BITMIME" not in mail_from.upper()
        got = email.message_from_bytes(data, policy=email.policy.default)
        assert got["Content-Transfer-Encoding"].lower() in ("quoted-printable", "base64")
        # The decoded text is the original's (line ends compared in one form: Python keeps CRLF from QP).
        assert got.get_content().replace("\r\n", "\n") == body.replace("\r\n", "\n")
        assert got["Subject"] == "Huit bits"
    finally:
        crepes.stop()
        sink.close()


def test_queue_add_wakes_magpied_without_waiting_for_a_poll(world):
    hamburger = world("hamburger").start()
    crepes = world("crepes", queue_options(poll_interval=3600)).start()
    time.sleep(1)  # the scheduler's first look is over: from now on only a wake-up brings it back early
    entry = queue_add(crepes, message("Now"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", timeout=10, what="delivery on wake-up")
    assert len(imap_messages(hamburger, BOB)) == 1


def test_hold_release_delete_and_flush(world):
    crepes = world("crepes", queue_options(retry_intervals=[3600]))
    held = queue_add(crepes, message("Held"))
    crepes.magpie("queue", "hold", str(held))
    assert "HELD" in crepes.magpie("queue", "list").stdout.decode()
    crepes.start()
    waiting = queue_add(crepes, message("Waiting"))
    wait_for(lambda: state_of(crepes, waiting, BOB) == "deferred", what="the first attempt")
    assert "  attempt " not in show(crepes, held)  # never tried while held
    hamburger = world("hamburger").start()
    assert "1 recipients due now" in crepes.magpie("queue", "retry", str(waiting)).stdout.decode()
    wait_for(lambda: state_of(crepes, waiting, BOB) == "delivered", timeout=15, what="delivery after retry")
    crepes.magpie("queue", "release", str(held))
    wait_for(lambda: state_of(crepes, held, BOB) == "delivered", timeout=15, what="delivery after release")
    gone = queue_add(crepes, message("Gone"), to=("carol@nowhere.example",))
    crepes.magpie("queue", "hold", str(gone))
    crepes.magpie("queue", "delete", str(gone))
    assert crepes.magpie("queue", "show", str(gone), check=False).returncode == 1
    assert len(imap_messages(hamburger, BOB)) == 2
    crepes.magpie("queue", "flush")


def test_smart_host_takes_mail_for_every_domain_without_dns(tmp_path, network_namespace, dnsmasq):
    dnsmasq.start([])  # knows nothing: the smart host needs no MX
    sink = SevenBitSink("127.0.0.4", 2525)
    crepes = make(tmp_path, "crepes", CREPES, "crepes.fr", ["alice"],
                  sections={"queue.smart_host": {"host": "127.0.0.4", "port": 2525}}).start()
    try:
        entry = queue_add(crepes, message("Via the smart host", body="plain ascii\r\n"), to=("dave@anywhere.example",))
        wait_for(lambda: state_of(crepes, entry, "dave@anywhere.example") == "delivered", what="delivery via the smart host")
        assert len(sink.messages) == 1 and b"Subject: Via the smart host" in sink.messages[0]
        assert "host 127.0.0.4 [127.0.0.4:2525]" in show(crepes, entry)
    finally:
        crepes.stop()
        sink.close()


@pytest.mark.backend("sqlite", reason="traces magpie's own fsyncs; on PostgreSQL the fsync is the database server's, and the answer follows COMMIT")
def test_queue_add_is_on_disk_before_it_answers(tmp_path):
    """`magpie queue add` prints the entry's id only after the commit: strace counts the syncs it made."""
    import shutil
    import subprocess
    from conftest import MAGPIE
    if shutil.which("strace") is None:
        raise AssertionError("strace is missing")
    server = Magpied(tmp_path, tls=False, sections={"queue": {"enabled": False}})
    path = tmp_path / "m.eml"
    path.write_bytes(message("Durable"))
    server.magpie("domain", "add", "crepes.fr")  # creates the store: the add below syncs only for its own entry
    summary = tmp_path / "strace.txt"
    done = subprocess.run(["strace", "-f", "-c", "-o", str(summary), "-e", "trace=fsync,fdatasync", str(MAGPIE),
                           "-c", str(server.config), "queue", "add", "--from", ALICE, "--to", BOB, str(path)],
                          capture_output=True, timeout=60,
                          env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})  # LeakSanitizer cannot run under ptrace
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.decode().strip()) == 1
    syncs = sum(int(line.split()[3]) for line in summary.read_text().splitlines()
                if line.strip().endswith(("fsync", "fdatasync")))
    assert syncs >= 1, summary.read_text()


def test_null_mx_and_unknown_domain_fail_at_once(world, dnsmasq):
    dnsmasq.stop()
    # local=: dnsmasq answers NXDOMAIN for names under it (without it, REFUSED: a temporary failure).
    dnsmasq.start(RECORDS + ["mx-host=nomail.example,.,0", "local=/nowhere.example/"])
    crepes = world("crepes").start()
    null_mx = queue_add(crepes, message("Null"), to=("x@nomail.example",))
    wait_for(lambda: state_of(crepes, null_mx, "x@nomail.example") == "failed", what="null MX failure")
    record = show(crepes, null_mx)
    assert "5.1.10" in record and record.count("  attempt ") == 1
    check_failure_report(report_in_inbox(crepes, ALICE), "x@nomail.example", r"5\.1\.10")
    nxdomain = queue_add(crepes, message("Nowhere"), to=("y@nowhere.example",))
    wait_for(lambda: state_of(crepes, nxdomain, "y@nowhere.example") == "failed", what="NXDOMAIN failure")
    assert "5.1.2" in show(crepes, nxdomain)
