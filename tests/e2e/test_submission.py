"""Message submission (RFC 6409) on the 587-style (STARTTLS) and 465-style (implicit TLS) ports, spoken by
Python's smtplib and by swaks: AUTH only after TLS, wrong passwords, forged senders, completion of the message
(Date, Message-ID) and where it goes: local recipients to their INBOX, remote ones into the outgoing queue."""
import shutil
import smtplib
import subprocess

import pytest

from conftest import DOMAIN, PASSWORD, client_tls_context

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
# The queue is off: a remote recipient stays queued where `magpie queue list` shows it, and no test asks a
# DNS server outside the machine.
SECTIONS = {"submission": {"listen": ["127.0.0.1:0"], "listen_tls": ["127.0.0.1:0"]},
            "queue": {"enabled": False}}


@pytest.fixture
def sub(make_server):
    return make_server(sections=SECTIONS)


def submission_client(server):
    client = smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30)
    client.ehlo("client.test")
    client.starttls(context=client_tls_context())
    client.ehlo("client.test")
    return client


def message(sender=ALICE, to=BOB, subject="Hello", extra=""):
    return (f"From: Alice <{sender}>\r\nTo: Bob <{to}>\r\nSubject: {subject}\r\n{extra}\r\n"
            "Bonjour Bob,\r\nles crepes sont pretes.\r\n").encode()


def test_starttls_then_login_delivers_to_a_local_inbox_with_date_and_message_id(sub):
    with submission_client(sub) as client:
        client.login(ALICE, PASSWORD)
        refused = client.sendmail(ALICE, [BOB], message(subject="Local"))
        assert refused == {}
    stored = sub.export(BOB, "INBOX", uid=sub.uids(BOB)[-1])
    header = stored.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: Local" in header
    assert b"\r\nDate: " in header and b"\r\nMessage-ID: <" in header
    assert f"Return-Path: <{ALICE}>".encode() in header
    assert f"(authenticated as {ALICE})".encode() in header and b"with ESMTPSA" in header
    assert PASSWORD.encode() not in sub.log_text().encode()


def test_implicit_tls_port_takes_auth_at_once(sub):
    with smtplib.SMTP_SSL("127.0.0.1", sub.ports["submissions"], context=client_tls_context(), timeout=30) as client:
        client.ehlo("client.test")
        assert "PLAIN" in client.esmtp_features["auth"] and "SCRAM-SHA-256" in client.esmtp_features["auth"]
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [BOB], message(subject="Over 465"))
    assert b"Subject: Over 465" in sub.export(BOB, "INBOX", uid=sub.uids(BOB)[-1])


def test_auth_is_refused_before_tls(sub):
    with smtplib.SMTP("127.0.0.1", sub.ports["submission"], timeout=30) as client:
        client.ehlo("client.test")
        assert "auth" not in client.esmtp_features
        code, text = client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0")
        assert code == 538 and text.startswith(b"5.7.11")
        code, text = client.docmd("MAIL", f"FROM:<{ALICE}>")
        assert code == 530 and text.startswith(b"5.7.0")


def test_wrong_password_is_535(sub):
    with submission_client(sub) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            client.login(ALICE, "not the password")
        assert failure.value.smtp_code == 535 and failure.value.smtp_error.startswith(b"5.7.8")


def test_forged_from_is_553(sub):
    with submission_client(sub) as client:
        client.login(ALICE, PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as envelope:
            client.sendmail(BOB, [BOB], message(sender=ALICE))
        assert envelope.value.smtp_code == 553 and b"5.7.1" in envelope.value.smtp_error
        client.rset()
        with pytest.raises(smtplib.SMTPDataError) as header:
            client.sendmail(ALICE, [BOB], message(sender=BOB))
        assert header.value.smtp_code == 553 and b"From: header field" in header.value.smtp_error
    assert sub.uids(BOB) == []


def test_missing_from_is_a_5_6_refusal(sub):
    with submission_client(sub) as client:
        client.login(ALICE, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(ALICE, [BOB], b"Subject: nobody\r\n\r\ntext\r\n")
        assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.6.0")


def test_remote_recipient_lands_in_the_queue(sub):
    with submission_client(sub) as client:
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, ["carol@elsewhere.test", BOB],
                        message(to="carol@elsewhere.test", extra="Bcc: secret@elsewhere.test\r\n"))
    listing = sub.magpie("queue", "list").stdout.decode()
    assert "carol@elsewhere.test" in listing and ALICE in listing
    entry = listing.split()[0]
    shown = sub.magpie("queue", "show", entry).stdout.decode()
    assert "carol@elsewhere.test" in shown
    # The local recipient did not go through the queue.
    assert BOB not in listing and len(sub.uids(BOB)) == 1
    assert b"Bcc:" not in sub.export(BOB, "INBOX", uid=sub.uids(BOB)[-1])


def test_sent_copy_when_configured(make_server):
    sections = {"submission": dict(SECTIONS["submission"], save_sent=True), "queue": {"enabled": False}}
    server = make_server(sections=sections)
    with submission_client(server) as client:
        client.login(ALICE, PASSWORD)
        client.sendmail(ALICE, [BOB], message(subject="Keep a copy"))
    assert b"Subject: Keep a copy" in server.export(ALICE, "Sent", uid=server.uids(ALICE, "Sent")[-1])


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_with_auth(sub):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{sub.ports['submission']}", "--tls", "--auth", "LOGIN",
         "--auth-user", ALICE, "--auth-password", PASSWORD, "--from", ALICE, "--to", BOB,
         "--header", "Subject: from swaks"], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode(errors="replace")
    assert b"Subject: from swaks" in sub.export(BOB, "INBOX", uid=sub.uids(BOB)[-1])


def plain(user, password):
    import base64
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_login_throttle_is_shared_with_imap(make_server):
    import imaplib
    server = make_server(sections=SECTIONS, auth_options={"max_user_failures": 2})
    with submission_client(server) as client:
        for _ in range(2):
            code, _ = client.docmd("AUTH", "PLAIN " + plain(ALICE, "wrong"))
            assert code == 535
        # Locked out now, even with the right password: a temporary refusal, not a verdict on the password.
        code, text = client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD))
        assert code == 454 and text.startswith(b"4.7.0")
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port)
    try:
        imap.starttls(ssl_context=client_tls_context())
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(ALICE, PASSWORD)
    finally:
        imap.shutdown()


def test_seed_scenario_alice_submits_and_the_queue_delivers_to_hamburger(tmp_path, network_namespace, dnsmasq):
    """The seed's flow for real: alice's client submits to crepes.fr:587 with STARTTLS and AUTH; crepes.fr finds
    hamburger.edu's MX in a local DNS server and delivers on port 25; bob finds it in his INBOX."""
    import time
    from conftest import Magpied
    from test_relay import CREPES, HAMBURGER, RECORDS, queue_options

    dnsmasq.start(RECORDS)
    servers = []
    try:
        for name, host, domain, user, extra in [
                ("crepes", CREPES, "crepes.fr", "alice",
                 {"submission": {"listen": [f"{CREPES}:587"], "listen_tls": [f"{CREPES}:465"]}}),
                ("hamburger", HAMBURGER, "hamburger.edu", "bob", {})]:
            workdir = tmp_path / name
            workdir.mkdir()
            server = Magpied(workdir, host=host, smtp_port=25, hostname=f"mx.{domain}",
                             sections={"queue": queue_options(), **extra})
            server.magpie("domain", "add", domain)
            server.add_user(f"{user}@{domain}")
            servers.append(server.start())
        crepes, hamburger = servers
        alice, bob = "alice@crepes.fr", "bob@hamburger.edu"
        with smtplib.SMTP(CREPES, 587, timeout=30) as client:
            client.ehlo("laptop.crepes.fr")
            client.starttls(context=client_tls_context())
            client.ehlo("laptop.crepes.fr")
            client.login(alice, PASSWORD)
            client.sendmail(alice, [bob], (f"From: Alice <{alice}>\r\nTo: Bob <{bob}>\r\nSubject: Crepes\r\n\r\n"
                                           "Bonjour Bob,\r\nles crepes sont pretes.\r\n").encode())
        deadline = time.time() + 60
        while time.time() < deadline and not hamburger.uids(bob):
            time.sleep(0.2)
        assert hamburger.uids(bob), crepes.log_text()[-3000:]
        stored = hamburger.export(bob, "INBOX", uid=hamburger.uids(bob)[0])
        header, body = stored.split(b"\r\n\r\n", 1)
        assert b"Subject: Crepes" in header and b"\r\nMessage-ID: <" in header and b"\r\nDate: " in header
        assert b"(authenticated as alice@crepes.fr)" in header and b"by mx.hamburger.edu" in header
        assert body == b"Bonjour Bob,\r\nles crepes sont pretes.\r\n"
    finally:
        for server in servers:
            server.stop()


def test_scram_sha_256_login_and_its_server_proof(sub):
    import base64
    import hashlib
    import hmac
    import os

    def b64(text):
        return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()

    with submission_client(sub) as client:
        nonce = b64(os.urandom(18))
        first_bare = f"n={ALICE},r={nonce}"
        code, reply = client.docmd("AUTH", "SCRAM-SHA-256 " + b64("n,," + first_bare))
        assert code == 334
        server_first = base64.b64decode(reply).decode()
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        assert attrs["r"].startswith(nonce)
        salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        final_without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{first_bare},{server_first},{final_without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        code, reply = client.docmd(b64(f"{final_without_proof},p={b64(proof)}"))
        # SMTP cannot carry data with 235 (RFC 4954 4): the server's proof comes as one more challenge.
        assert code == 334
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        expected = "v=" + b64(hmac.new(server_key, auth_message, "sha256").digest())
        assert base64.b64decode(reply).decode() == expected
        code, reply = client.docmd("")
        assert code == 235 and reply.startswith(b"2.7.0")
        client.sendmail(ALICE, [BOB], message(subject="Via SCRAM"))
    assert b"Subject: Via SCRAM" in sub.export(BOB, "INBOX", uid=sub.uids(BOB)[-1])


def test_auth_cancelled_by_the_client_is_501(sub):
    with submission_client(sub) as client:
        code, _ = client.docmd("AUTH", "LOGIN")
        assert code == 334
        code, text = client.docmd("*")
        assert code == 501 and text.startswith(b"5.0.0")
        code, text = client.docmd("AUTH", "PLAIN " + plain(ALICE, PASSWORD))
        assert code == 235
