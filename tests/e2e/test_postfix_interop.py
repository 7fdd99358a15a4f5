"""Postfix (Debian's package, a throw-away instance) and magpied exchanging mail over SMTP on loopback."""
import shutil
import smtplib
import time

import pytest

from conftest import DOMAIN, Magpied
from peers import Postfix, instance_dir, postfix_available

pytestmark = pytest.mark.skipif(not postfix_available(), reason="needs root and the postfix package")

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
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)
