"""Issue 11's proofs over real imaplib: a mailbox of 100,000 messages (generated straight into the store by
tests/tools/magpie_fill_mailbox) where SELECT, STATUS, `STORE 1:* +FLAGS (\\Seen)` and `UID FETCH 1:* (FLAGS)`
complete, with an SMTP delivery made during the STORE answered 250 before the STORE's tagged OK (the order
is asserted, never a duration; the durations are printed for bench/); and the fsyncs that precede each
acknowledged IMAP write (APPEND, STORE, COPY, MOVE, EXPUNGE, a FETCH's implicit \\Seen), counted one write at
a time under strace, never zero."""
import imaplib
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

import conftest
from conftest import BUILD, DOMAIN, PASSWORD, Magpied, client_tls_context, read_reply

ALICE = f"alice@{DOMAIN}"
MESSAGES = 100_000
FILL = BUILD / "tests" / "tools" / "magpie_fill_mailbox"

imaplib.Commands.setdefault("MOVE", ("SELECTED",))  # RFC 6851; Python 3.11's imaplib has no MOVE


class SignallingIMAP(imaplib.IMAP4_SSL):
    """imaplib, telling `sent` once a command line holding `watch` has gone to the server."""
    watch = b" STORE "

    def __init__(self, *args, **kwargs):
        self.sent = threading.Event()
        super().__init__(*args, **kwargs)

    def send(self, data):
        super().send(data)
        if self.watch in data:
            self.sent.set()


def login(server, cls=imaplib.IMAP4_SSL):
    client = cls("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())
    client.login(ALICE, PASSWORD)
    return client


def timed(figures, name, call):
    start = time.monotonic()
    result = call()
    figures[name] = time.monotonic() - start
    return result


def smtp_up_to_data(port):
    """An SMTP transaction to alice waiting right before the end of its data."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=600)
    assert read_reply(sock).startswith(b"220")
    for line, code in ((b"EHLO scale.test", b"250"), (b"MAIL FROM:<during@remote.example>", b"250"),
                       (b"RCPT TO:<%s>" % ALICE.encode(), b"250"), (b"DATA", b"354")):
        sock.sendall(line + b"\r\n")
        reply = read_reply(sock)
        assert reply.startswith(code), (line, reply)
    sock.sendall(b"From: during@remote.example\r\nSubject: during the STORE\r\n\r\nhello\r\n")
    return sock


@pytest.mark.backend("sqlite", reason="magpie_fill_mailbox bulk-fills the embedded store's files")
def test_store_on_100000_messages_lets_a_delivery_through(make_server):
    assert FILL.exists(), f"{FILL} is built with the tests (target magpie_fill_mailbox)"
    server = make_server(users=("alice",))
    server.stop()
    start = time.monotonic()
    filled = subprocess.run([str(FILL), str(server.data), ALICE, "INBOX", str(MESSAGES)], capture_output=True,
                            text=True, timeout=600)
    assert filled.returncode == 0, filled.stderr
    figures = {"generate": time.monotonic() - start}
    server.start()

    client = login(server, SignallingIMAP)
    typ, data = timed(figures, "SELECT", lambda: client.select("INBOX"))
    assert typ == "OK" and int(data[0]) == MESSAGES
    other = login(server)
    typ, data = timed(figures, "STATUS", lambda: other.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)"))
    assert typ == "OK"
    assert re.search(rb"MESSAGES %d UNSEEN %d UIDNEXT %d" % (MESSAGES, MESSAGES, MESSAGES + 1), data[0]), data

    # The STORE runs in a thread; the delivery's last line goes out once the STORE command has been sent.
    order, results = [], {}
    smtp = smtp_up_to_data(server.smtp_port)

    def store():
        results["store"] = timed(figures, "STORE 1:* +FLAGS (\\Seen)",
                                 lambda: client.store("1:*", "+FLAGS", "(\\Seen)"))
        order.append("STORE OK")

    thread = threading.Thread(target=store)
    thread.start()
    assert client.sent.wait(timeout=600)
    smtp.sendall(b".\r\n")
    reply = read_reply(smtp)
    order.append("SMTP 250")
    thread.join(timeout=1200)
    smtp.sendall(b"QUIT\r\n")
    smtp.close()
    assert reply.startswith(b"250"), reply
    typ, data = results["store"]
    assert typ == "OK", data
    assert sum(1 for line in data if line and b"\\Seen" in line) == MESSAGES
    assert order == ["SMTP 250", "STORE OK"], order

    # The delivery's EXISTS comes at the next command that may carry it (never during STORE by number).
    assert client.noop()[0] == "OK"
    typ, data = timed(figures, "UID FETCH 1:* (FLAGS)", lambda: client.uid("FETCH", "1:*", "(FLAGS)"))
    assert typ == "OK"
    flags = [line for line in data if line]
    assert len(flags) == MESSAGES + 1  # the delivery made during the STORE is there too, not \Seen
    assert sum(1 for line in flags if b"\\Seen" in line) == MESSAGES
    typ, data = timed(figures, "STATUS after", lambda: other.status("INBOX", "(MESSAGES UNSEEN)"))
    assert typ == "OK" and b"MESSAGES %d UNSEEN 1" % (MESSAGES + 1) in data[0], data
    client.logout()
    other.logout()
    print("\n" + "\n".join(f"{MESSAGES} messages: {name}: {seconds:.2f} s" for name, seconds in figures.items()))


def fsync_calls(trace):
    """fsync/fdatasync calls strace has written so far (an interrupted call is counted at its start)."""
    return len(re.findall(r"^\d+\s+(?:fsync|fdatasync)\(", trace.read_text(), re.M))


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is installed by scripts/install-deps.sh")
@pytest.mark.backend("sqlite", reason="traces magpied's own fsyncs; on PostgreSQL the fsync is the database server's, and an acknowledgement follows COMMIT")
def test_every_acknowledged_imap_write_is_preceded_by_fsync(tmp_path):
    workdir = tmp_path / "fsync"
    workdir.mkdir()
    server = Magpied(workdir)
    server.magpie("domain", "add", DOMAIN)
    server.add_user(ALICE)
    trace = workdir / "strace.txt"
    real = conftest.MAGPIED
    wrapper = workdir / "magpied-under-strace"
    wrapper.write_text(f"#!/bin/sh\nexec strace -f -qq -e signal=none -o {trace} -e trace=fsync,fdatasync "
                       f"{real} \"$@\"\n")
    wrapper.chmod(0o755)
    conftest.MAGPIED = wrapper
    try:
        server.start(timeout=120)
    finally:
        conftest.MAGPIED = real
    try:
        client = login(server)
        client.create("Kept")
        client.select("INBOX")
        message = b"From: a@example.test\r\nSubject: durable\r\n\r\nbody\r\n"
        writes = [
            ("APPEND", lambda: client.append("INBOX", None, None, message)),
            ("APPEND", lambda: client.append("INBOX", None, None, message + b"again\r\n")),
            ("FETCH BODY[] (implicit \\Seen)", lambda: client.fetch("1", "(BODY[])")),
            ("STORE", lambda: client.store("1", "+FLAGS", "(\\Flagged)")),
            ("COPY", lambda: client.copy("1", "Kept")),
            ("MOVE", lambda: client._simple_command("MOVE", "2", "Kept")),
            ("STORE \\Deleted", lambda: client.store("1", "+FLAGS", "(\\Deleted)")),
            ("EXPUNGE", lambda: client.expunge()),
        ]
        counts = []
        for name, write in writes:
            before = fsync_calls(trace)
            typ, data = write()
            assert typ == "OK", (name, data)
            counts.append((name, fsync_calls(trace) - before))
        print("\nfsync/fdatasync calls before each acknowledged IMAP write: " +
              ", ".join(f"{name}: {n}" for name, n in counts))
        assert all(n >= 1 for _, n in counts), counts
        client.logout()
    finally:
        # Stop magpied itself (the child of strace), then strace ends.
        children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            subprocess.run(["kill", "-TERM", pid])
        server.proc.wait(timeout=60)
        server.log.close()
