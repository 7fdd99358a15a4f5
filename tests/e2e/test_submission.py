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
