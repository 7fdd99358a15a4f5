"""Postfix (Debian's package, a throw-away instance) and magpied exchanging mail over SMTP on loopback."""
import re
import shutil
import smtplib
import time

import pytest

from conftest import DOMAIN, Magpied, host_network
from peers import Postfix, instance_dir, postfix_available

pytestmark = [pytest.mark.skipif(not postfix_available(), reason="needs root and the postfix package"),
              host_network]  # Postfix on the fixed 127.0.0.4:2526, :2527 and :2528

ALICE = f"alice@{DOMAIN}"


def test_postfix_delivers_to_magpied(tmp_path):
    """Postfix plays the sender's server: a message submitted to it for example.test is relayed to magpied's
    SMTP server and arrives whole in alice's INBOX."""
    (tmp_path / "magpied").mkdir()
    server = Magpied(tmp_path / "magpied", tls=True)
    server.magpie("domain", "add", DOMAIN)
    server.add_user(ALICE)
    server.start()
    root = instance_dir()
    postfix = Postfix(root, host="127.0.0.4", port=2526, hostname="mx.crepes.test",
                      transport=[f"{DOMAIN} smtp:[127.0.0.1]:{server.smtp_port}"])
    try:
        postfix.start()
        body = "Hello from Postfix.\r\nSecond line, with a long word: " + "x" * 200 + "\r\n"
        message = (f"From: Carol <carol@crepes.test>\r\nTo: Alice <{ALICE}>\r\nSubject: via postfix\r\n"
                   f"Message-ID: <pf-1@crepes.test>\r\n\r\n{body}").encode()
        with smtplib.SMTP("127.0.0.4", 2526) as client:
            assert client.sendmail("carol@crepes.test", [ALICE], message) == {}
        deadline = time.time() + 30
        while not server.uids(ALICE) and time.time() < deadline:
            time.sleep(0.2)
        assert server.uids(ALICE) == [1], postfix.log()
        stored = server.export(ALICE, uid=1)
        assert stored.endswith(body.encode())
        assert b"Subject: via postfix\r\n" in stored
        assert b"Received: from mx.crepes.test" in stored or b"Received: from " in stored
        assert "status=sent" in postfix.log()
    finally:
        server.stop()
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)


def magpied_routed_to_postfix(tmp_path, port):
    """Postfix as hamburger.test's server on 127.0.0.4:`port` (virtual delivery into a Maildir for bob), and a
    magpied whose queue routes hamburger.test there, with ALICE as a local user; neither is started."""
    (tmp_path / "magpied").mkdir()
    postfix = Postfix(instance_dir(), host="127.0.0.4", port=port, hostname="mx.hamburger.test",
                      domains=["hamburger.test"], users=["bob@hamburger.test"])
    server = Magpied(tmp_path / "magpied", tls=True,
                     sections={"queue.route": {"domain": "hamburger.test", "host": "127.0.0.4", "port": port}})
    server.config.write_text(server.config.read_text().replace("[queue.route]", "[[queue.route]]"))
    server.magpie("domain", "add", DOMAIN)
    server.add_user(ALICE)
    return postfix, server


def test_magpied_delivers_to_postfix(tmp_path):
    """Postfix plays the recipient's server (hamburger.test, virtual delivery into a Maildir): magpied's queue
    delivers to it over SMTP with STARTTLS offered by neither side here, and the message arrives whole."""
    postfix, server = magpied_routed_to_postfix(tmp_path, 2527)
    try:
        postfix.start()
        server.start()
        body = "Bonjour Bob,\r\nles cr\u00eapes sont pr\u00eates.\r\n"
        message = (f"From: Alice <{ALICE}>\r\nTo: Bob <bob@hamburger.test>\r\nSubject: to postfix\r\n"
                   f"Date: Sun, 29 Nov 2026 20:00:00 +0000\r\nMessage-ID: <to-postfix@example.test>\r\n"
                   "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode()
        path = tmp_path / "message.eml"
        path.write_bytes(message)
        entry = server.magpie("queue", "add", "--from", ALICE, "--to", "bob@hamburger.test", str(path))
        entry = entry.stdout.decode().strip()
        received = postfix.messages("bob@hamburger.test", wait=60)
        assert len(received) == 1, server.magpie("queue", "show", entry).stdout.decode() + postfix.log()
        stored = received[0].replace(b"\r\n", b"\n")  # a Maildir file has Unix line ends
        assert stored.endswith(body.replace("\r\n", "\n").encode()), stored
        assert b"\nSubject: to postfix\n" in stored and b"\nFrom: Alice <alice@example.test>\n" in stored
        deadline = time.time() + 30
        shown = ""
        while time.time() < deadline:
            shown = server.magpie("queue", "show", entry).stdout.decode()
            if "delivered" in shown:
                break
            time.sleep(0.2)
        assert "delivered" in shown and "250" in shown, shown
    finally:
        server.stop()
        postfix.stop()
        shutil.rmtree(postfix.root, ignore_errors=True)


def test_magpied_pipelines_several_messages_to_postfix_over_one_connection(tmp_path):
    """Five queued messages go to Postfix's smtpd over one connection, each transaction pipelined right behind
    the end of the previous one's data (RFC 2920 3.1); the one whose recipient Postfix refuses at RCPT fails
    alone with Postfix's own reply, and the others arrive whole, each once."""
    postfix, server = magpied_routed_to_postfix(tmp_path, 2528)
    entries = []
    try:
        for i in range(5):  # queued before magpied starts: all due at once, for one connection
            to = "nobody@hamburger.test" if i == 2 else "bob@hamburger.test"
            path = tmp_path / f"message-{i}.eml"
            path.write_bytes((f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: pipelined {i}\r\n"
                              f"Message-ID: <pipelined-{i}@example.test>\r\n\r\nNumber {i}.\r\n").encode())
            added = server.magpie("queue", "add", "--from", ALICE, "--to", to, str(path))
            entries.append(added.stdout.decode().strip())
        postfix.start()
        server.start()
        deadline = time.time() + 60
        shown = {}
        while time.time() < deadline:
            shown = {e: server.magpie("queue", "show", e).stdout.decode() for e in entries}
            if all(re.search(r"recipient \S+: (delivered|failed)", text) for text in shown.values()):
                break
            time.sleep(0.2)
        for i, entry in enumerate(entries):
            expected = "failed" if i == 2 else "delivered"
            assert re.search(rf"recipient \S+: {expected}", shown[entry]), shown[entry] + postfix.log()
        assert "550" in shown[entries[2]], shown[entries[2]]
        connections = {re.findall(r"connection (\S+)\n", text)[-1] for text in shown.values()}
        assert len(connections) == 1, shown
        received = postfix.messages("bob@hamburger.test", wait=30)
        deadline = time.time() + 30
        while len(received) < 4 and time.time() < deadline:
            time.sleep(0.2)
            received = postfix.messages("bob@hamburger.test")
        subjects = sorted(re.search(rb"Subject: (pipelined \d)", m).group(1) for m in received)
        assert subjects == [b"pipelined 0", b"pipelined 1", b"pipelined 3", b"pipelined 4"], subjects
    finally:
        server.stop()
        postfix.stop()
        shutil.rmtree(postfix.root, ignore_errors=True)
