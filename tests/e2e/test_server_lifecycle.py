"""magpied as an administrator runs it: configuration reload on SIGHUP, draining on SIGTERM, idle timeouts,
connection limits, privilege drop, and the demo."""
import imaplib
import os
import pwd
import re
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import (DOMAIN, MAGPIE, MAGPIED, PASSWORD, Magpied, client_tls_context, host_network, read_line,
                      read_reply, smtp_dialogue)

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def connect(port, source="127.0.0.1"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock, read_reply(sock)


def test_sighup_reloads_limits(make_server):
    server = make_server(smtp_options={"max_recipients": 1})
    said = smtp_dialogue(server.smtp_port, [b"EHLO a.example\r\nMAIL FROM:<x@remote.example>\r\n",
                                            b"RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"])
    assert b"\r\n452 4.5.3" in said
    server.config.write_text(server.config.read_text().replace("max_recipients = 1", "max_recipients = 5"))
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "configuration reloaded" not in server.log_text() and time.time() < deadline:
        time.sleep(0.05)
    said = smtp_dialogue(server.smtp_port, [b"EHLO a.example\r\nMAIL FROM:<x@remote.example>\r\n",
                                            b"RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"])
    assert b"452" not in said and said.count(b"\r\n250 2.1.5") == 2, said


def test_sighup_with_a_broken_file_keeps_running(make_server):
    server = make_server()
    good = server.config.read_text()
    server.config.write_text(good + "\n[smtp]\nthis is not toml\n")
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "keeping the running configuration" not in server.log_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "keeping the running configuration" in server.log_text()
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [ALICE], b"Subject: still here\r\n\r\nyes\r\n") == {}


def test_sigterm_says_goodbye_to_idle_sessions_and_exits_cleanly(make_server):
    server = make_server()
    sock, greeting = connect(server.smtp_port)
    assert greeting.startswith(b"220 ")
    sock.sendall(b"EHLO idle.example\r\n")
    read_reply(sock)
    server.proc.send_signal(signal.SIGTERM)
    goodbye = read_reply(sock)
    assert goodbye.startswith(b"421 4.3.2"), goodbye
    assert server.proc.wait(timeout=20) == 0
    sock.close()


def test_idle_timeout(make_server):
    server = make_server(smtp_options={"idle_timeout": 1})
    sock, _ = connect(server.smtp_port)
    start = time.time()
    reply = read_reply(sock)
    assert reply.startswith(b"421 4.4.2"), reply
    assert time.time() - start < 10
    assert sock.recv(100) == b""  # closed after the goodbye
    sock.close()


def test_connection_limit_per_ip(make_server):
    server = make_server(smtp_options={"max_connections_per_ip": 2})
    first, _ = connect(server.smtp_port)
    second, _ = connect(server.smtp_port)
    third, busy = connect(server.smtp_port)
    assert busy.startswith(b"421 4.7.0"), busy
    other, greeting = connect(server.smtp_port, source="127.0.0.2")  # another client address is not affected
    assert greeting.startswith(b"220 ")
    first.close()
    time.sleep(0.3)
    fourth, greeting = connect(server.smtp_port)  # a freed place can be taken again
    assert greeting.startswith(b"220 ")
    for s in (second, third, other, fourth):
        s.close()


def test_imap_address_limit_counts_connections_not_logged_in_and_the_account_limit_the_rest(make_server):
    """[imap] max_connections_per_ip bounds one address's connections that have not logged in; a login moves
    its connection to the account's count from that address (max_connections_per_user_ip, Dovecot's
    mail_max_userip_connections), so the accounts behind one NAT or webmail host are not refused together,
    and one account's connections from an address are bounded still."""
    server = make_server(imap_options={"max_connections_per_ip": 2, "max_connections_per_user_ip": 2})

    def imaps():
        return imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())

    def greeting():
        sock = socket.create_connection(("127.0.0.1", server.imap_port), timeout=10)
        return sock, read_line(sock)

    logged_in = []
    for user in (ALICE, ALICE, BOB, BOB):  # four logged in from one address, twice its limit
        client = imaps()
        assert client.login(user, PASSWORD)[0] == "OK"
        logged_in.append(client)
    extra = imaps()
    with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
        extra.login(ALICE, PASSWORD)  # alice has her two from this address
    assert extra.noop()[0] == "OK"  # the connection stays, not logged in: one of the address's two places
    waiting, said = greeting()
    assert said.startswith(b"* OK"), said
    refused, said = greeting()
    assert said.startswith(b"* BYE"), said  # the address's two places are taken
    logged_in.pop(0).logout()
    deadline = time.time() + 10
    while True:  # the logout's place is freed when its connection ends
        try:
            assert extra.login(ALICE, PASSWORD)[0] == "OK"
            break
        except imaplib.IMAP4.error:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    assert extra.select("INBOX")[0] == "OK"
    for client in logged_in + [extra]:
        client.logout()
    waiting.close()
    refused.close()


def test_too_many_bad_commands_closes(make_server):
    server = make_server(smtp_options={"max_bad_commands": 3})
    said = smtp_dialogue(server.smtp_port, [b"FOO\r\n", b"BAR\r\n", b"BAZ\r\n", b"QUX\r\n"])
    assert b"421 4.7.0" in said


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_drops_root_after_binding(tmp_path):
    nobody = pwd.getpwnam("nobody")
    # The data dir must be reachable by the unprivileged user: not under pytest's private tmp dir.
    workdir = Path(tempfile.mkdtemp(prefix="magpie-drop-"))
    workdir.chmod(0o755)
    try:
        server = Magpied(workdir, tls=False)
        server.config.write_text(server.config.read_text().replace('[server]\n', '[server]\nuser = "nobody"\n'))
        server.magpie("domain", "add", DOMAIN)
        server.add_user(ALICE)
        server.start()
        status = Path(f"/proc/{server.proc.pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        assert set(map(int, uids)) == {nobody.pw_uid}, status
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            assert client.sendmail("s@remote.example", [ALICE], b"Subject: dropped\r\n\r\nok\r\n") == {}
        assert server.stop() == 0
        assert server.uids(ALICE) == [1]
    finally:
        subprocess.run(["rm", "-rf", str(workdir)])


@pytest.mark.backend("sqlite", reason="the demo runs its own embedded store")
@host_network  # the demo's fixed ports 2525, 2143, 8080...
def test_demo_starts_with_its_user_and_reserved_ports(tmp_path):
    data = tmp_path / "demo-data"
    env = dict(os.environ)
    proc = subprocess.Popen([str(MAGPIED), "--demo", "--data", str(data)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    output = b""
    try:
        deadline = time.time() + 60
        while b"Magpie demo is running" not in output and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output += line
        if b"listening on 127.0.0.1:2525 (smtp)" not in output:
            pytest.skip("the demo port 2525 is taken on this machine: " + output.decode(errors="replace")[-500:])
        while b"queue list" not in output and time.time() < deadline:  # the rest of the banner
            line = proc.stdout.readline()
            if not line:
                break
            output += line
        # The banner says how to connect with each protocol, the webmail included, and what it serves.
        assert b"WEB    http://127.0.0.1:8080/ " in output and b"/.well-known/jmap" in output
        with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        with smtplib.SMTP("127.0.0.1", 2525) as client:
            client.ehlo("demo.example")
            assert client.has_extn("starttls")
            assert client.sendmail("you@example.org", ["demo@example.test"], b"Subject: hi\r\n\r\nhello\r\n") == {}
        assert b"listening on 127.0.0.1:2143 (imap)" in output and b"listening on 127.0.0.1:2993 (imaps)" in output
        assert b"listening on 127.0.0.1:2587 (submission)" in output
        assert b"listening on 127.0.0.1:2465 (submissions)" in output
        assert b"listening on 127.0.0.1:8080 (http)" in output
        with smtplib.SMTP("127.0.0.1", 2587) as client:
            client.login("demo@example.test", "demo")  # plaintext AUTH on loopback, in the demo only
            assert client.sendmail("demo@example.test", ["demo@example.test"],
                                   b"From: demo@example.test\r\nSubject: note\r\n\r\nto self\r\n") == {}
        import imaplib
        imap = imaplib.IMAP4("127.0.0.1", 2143)
        assert "LOGINDISABLED" not in imap.capabilities  # plaintext login on loopback, in the demo only
        imap.login("demo@example.test", "demo")
        assert imap.select("INBOX") == ("OK", [b"2"])
        imap.logout()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    out = subprocess.run([str(MAGPIE), "--data", str(data), "export", "demo@example.test", "INBOX", "--uid", "1"],
                         capture_output=True, check=True).stdout
    assert out.endswith(b"Subject: hi\r\n\r\nhello\r\n")


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.01, 0.05, 0.2])
def test_sigterm_at_any_moment_of_start_up_exits_cleanly(tmp_path, delay):
    """A SIGTERM that arrives while magpied opens its store or binds is held until its handlers are in place,
    then drains: exit 0, never death by the signal's default action."""
    server = Magpied(tmp_path, tls=False)
    server.magpie("domain", "add", DOMAIN)
    server.add_user(ALICE)
    with open(server.log_path, "ab") as log:
        proc = subprocess.Popen([str(MAGPIED), "-c", str(server.config)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        # No program can act before its own code runs (exec, the dynamic loader, sanitizer start-up): wait until
        # magpied holds SIGTERM blocked, which it does at its first instruction, then signal at some moment of
        # the start-up that follows.
        deadline = time.time() + 30
        while time.time() < deadline:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            blocked = int(re.search(r"^SigBlk:\s+([0-9a-f]+)", status, re.M).group(1), 16)
            if blocked & (1 << (signal.SIGTERM - 1)):
                break
            time.sleep(0.001)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    text = server.log_text()
    assert code == 0, f"exit {code}:\n{text}"
    assert "draining" in text and "magpied stopped" in text, text
