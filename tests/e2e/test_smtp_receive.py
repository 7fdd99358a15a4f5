"""The recipient's side of SMTP (port 25): real clients (smtplib, swaks, raw sockets) against a real magpied,
each checking the exact bytes that landed in the mailbox and that nothing landed where it must not."""
import re
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import DOMAIN, embedded_store_only, smtp_dialogue

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def message(subject, body="Hello there.\r\n", extra=""):
    return (f"From: Sender <sender@remote.example>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@remote.example>\r\n{extra}\r\n{body}").encode()


def split_trace(stored: bytes):
    """Splits the stored message into (Return-Path line, Received field, the rest); the rest starts after our
    Authentication-Results field (issue 18), which follows the Received field."""
    match = re.match(rb"(Return-Path: <[^>]*>\r\n)(Received: (?:.*\r\n)(?:[ \t].*\r\n)*)"
                     rb"(Authentication-Results: mx\.example\.test;(?:.*\r\n)(?:[ \t].*\r\n)*)", stored)
    assert match, stored[:300]
    return match.group(1), match.group(2), stored[match.end():]


def test_smtplib_message_lands_byte_for_byte(server):
    original = message("plain")
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        code, _ = client.ehlo("client.remote.example")
        assert code == 250
        assert client.has_extn("pipelining") and client.has_extn("8bitmime") and client.has_extn("chunking")
        assert client.has_extn("smtputf8") and client.has_extn("enhancedstatuscodes")
        assert int(client.esmtp_features["size"]) == 50 * 1024 * 1024
        refused = client.sendmail("sender@remote.example", [ALICE], original)
        assert refused == {}
    assert server.uids(ALICE) == [1]
    stored = server.export(ALICE, uid=1)
    return_path, received, rest = split_trace(stored)
    assert return_path == b"Return-Path: <sender@remote.example>\r\n"
    assert b"from client.remote.example" in received and b"by mx.example.test" in received
    assert b"for <alice@example.test>" in received or b"ESMTP" in received
    assert rest == original
    assert server.uids(BOB) == []


def test_several_recipients_one_unknown(server):
    original = message("several")
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        refused = client.sendmail("sender@remote.example", [ALICE, f"nobody@{DOMAIN}", BOB], original)
    assert list(refused) == [f"nobody@{DOMAIN}"]
    code, text = refused[f"nobody@{DOMAIN}"]
    assert code == 550 and text.startswith(b"5.1.1")
    a, b = server.export(ALICE, uid=1), server.export(BOB, uid=1)
    assert split_trace(a)[2] == original and a == b  # one stored copy serves both


def test_relay_attempt_is_denied_and_nothing_stored(server):
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.ehlo("attacker.example")
        client.mail("spammer@attacker.example")
        code, text = client.rcpt("victim@elsewhere.example")
        assert code == 554 and text.startswith(b"5.7.1")
        code, text = client.docmd("DATA")  # no valid recipient
        assert code == 554 and text.startswith(b"5.5.1")
    assert server.uids(ALICE) == [] and server.uids(BOB) == []


def test_pipelined_transaction_in_one_packet(server):
    original = message("pipelined")
    batch = (b"EHLO pipe.example\r\nMAIL FROM:<p@remote.example>\r\nRCPT TO:<alice@example.test>\r\n"
             b"RCPT TO:<ghost@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    said = smtp_dialogue(server.smtp_port, [batch, original + b".\r\n", b"QUIT\r\n"])
    codes = [line[:3] for line in said.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
    # greeting, EHLO, MAIL, RCPT ok, RCPT unknown, RCPT ok, DATA 354, 250 stored, 221
    assert codes == [b"220", b"250", b"250", b"250", b"550", b"250", b"354", b"250", b"221"], said
    assert split_trace(server.export(ALICE, uid=1))[2] == original
    assert split_trace(server.export(BOB, uid=1))[2] == original


def test_bdat_chunks(server):
    original = message("chunked", body="line one\r\n.line with a leading dot\r\n")
    first, second = original[:40], original[40:]
    said = smtp_dialogue(server.smtp_port, [
        b"EHLO chunk.example\r\n", b"MAIL FROM:<c@remote.example>\r\n", b"RCPT TO:<alice@example.test>\r\n",
        b"BDAT %d\r\n" % len(first) + first, b"BDAT %d LAST\r\n" % len(second) + second, b"QUIT\r\n"])
    codes = [line[:9] for line in said.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
    # greeting, EHLO, MAIL, RCPT, first chunk, last chunk (stored), QUIT
    assert [c[:3] for c in codes] == [b"220", b"250", b"250", b"250", b"250", b"250", b"221"], said
    assert codes[5] == b"250 2.0.0", said
    assert split_trace(server.export(ALICE, uid=1))[2] == original  # no dot-unstuffing in BDAT


def test_starttls_with_smtplib(server):
    original = message("over tls")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.ehlo("tls.example")
        assert client.has_extn("starttls")
        code, _ = client.starttls(context=context)
        assert code == 220
        client.ehlo("tls.example")
        assert not client.has_extn("starttls")
        assert client.sendmail("t@remote.example", [ALICE], original) == {}
    stored = server.export(ALICE, uid=1)
    _, received, rest = split_trace(stored)
    assert rest == original
    assert b"ESMTPS" in received  # RFC 3848: the trace says the transfer was encrypted


def test_starttls_command_injection_is_discarded(server):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", server.smtp_port), timeout=10)
    raw.recv(1024)
    raw.sendall(b"EHLO inject.example\r\n")
    assert b"STARTTLS" in raw.recv(4096)
    # The injected MAIL FROM rides in the same packet as STARTTLS and must never run after the handshake.
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
    assert raw.recv(1024).startswith(b"220")
    tls = context.wrap_socket(raw)
    tls.sendall(b"EHLO inject.example\r\n")
    reply = b""
    while not re.search(rb"(^|\r\n)250 ", reply):
        reply += tls.recv(4096)
    tls.sendall(b"RCPT TO:<alice@example.test>\r\n")
    assert tls.recv(1024).startswith(b"503")  # no MAIL transaction exists: the injected MAIL was dropped
    tls.sendall(b"QUIT\r\n")
    tls.close()


def test_8bitmime_body(server):
    body = "Grüße aus Köln — ünïcödé\r\n".encode()
    original = message("eight bit", extra="Content-Type: text/plain; charset=utf-8\r\n"
                                           "Content-Transfer-Encoding: 8bit\r\n").replace(
        b"Hello there.\r\n", body)
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.ehlo("eight.example")
        assert client.sendmail("e@remote.example", [ALICE], original, mail_options=["BODY=8BITMIME"]) == {}
    assert split_trace(server.export(ALICE, uid=1))[2] == original


def test_swaks_plain_and_tls(server):
    for extra in ([], ["--tls"]):
        result = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{server.smtp_port}", "--from", "s@remote.example",
             "--to", ALICE, "--helo", "swaks.example", "--header", "Subject: via swaks", "--body",
             "swaks body", *extra, "--silent", "2"],
            capture_output=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    uids = server.uids(ALICE)
    assert uids == [1, 2]
    for uid in uids:
        stored = server.export(ALICE, uid=uid)
        assert b"Subject: via swaks" in stored and b"\r\n\r\nswaks body\r\n" in stored
    assert b"ESMTPS" in split_trace(server.export(ALICE, uid=2))[1]


def test_swaks_pipelining(server):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.smtp_port}", "--from", "s@remote.example",
         "--to", f"{ALICE},{BOB}", "--pipeline", "--header", "Subject: pipelined swaks", "--silent", "2"],
        capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert server.uids(ALICE) == [1] and server.uids(BOB) == [1]


def test_aliases_and_catch_all(server):
    server.magpie("alias", "add", f"postmaster@{DOMAIN}", ALICE)
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [f"postmaster@{DOMAIN}"], message("alias")) == {}
        refused = client.sendmail("s@remote.example", [f"random@{DOMAIN}", ALICE], message("no catch-all"))
        assert f"random@{DOMAIN}" in refused
    server.magpie("alias", "add", f"@{DOMAIN}", BOB)
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [f"random@{DOMAIN}"], message("catch-all")) == {}
    assert len(server.uids(ALICE)) == 2
    assert b"Subject: catch-all" in server.export(BOB, uid=1)


def test_directory_changes_by_the_cli_decide_where_the_next_message_goes(server):
    """magpied keeps what RCPT found for a local recipient across connections ([smtp] recipient_cache_seconds);
    a change `magpie` (another process) makes between two messages decides where the next one goes, and a
    removed alias is refused at RCPT at once."""
    info = f"info@{DOMAIN}"
    server.magpie("alias", "add", info, ALICE)
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [info], message("first")) == {}
    server.magpie("alias", "del", info)
    server.magpie("alias", "add", info, BOB)
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [info], message("second")) == {}
    server.magpie("alias", "del", info)
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        refused = client.sendmail("s@remote.example", [info, ALICE], message("third"))
        assert list(refused) == [info] and refused[info][0] == 550
    assert server.uids(ALICE) == [1, 2] and server.uids(BOB) == [1]
    assert b"Subject: second" in server.export(BOB, uid=1)


@embedded_store_only  # with PostgreSQL, RCPT keeps nothing and the delivery names no directory version
def test_a_directory_change_between_rcpt_and_data_decides_where_the_message_goes(server):
    """A change made after RCPT was answered (from memory) and before the end of DATA: the delivery finds the
    directory moved and resolves the recipients again; one removed meanwhile gets the message refused for now
    (451), never acknowledged and dropped."""
    info = f"info@{DOMAIN}"
    server.magpie("alias", "add", info, ALICE)
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [info], message("first")) == {}
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.ehlo("client.remote.example")
        assert client.mail("s@remote.example")[0] == 250
        assert client.rcpt(info)[0] == 250  # from memory
        server.magpie("alias", "del", info)
        server.magpie("alias", "add", info, BOB)
        assert client.data(message("second"))[0] == 250
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [info], message("third")) == {}
    assert server.uids(ALICE) == [1] and server.uids(BOB) == [1, 2]
    assert b"Subject: second" in server.export(BOB, uid=1)

    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.ehlo("client.remote.example")
        assert client.mail("s@remote.example")[0] == 250
        assert client.rcpt(info)[0] == 250
        assert client.rcpt(ALICE)[0] == 250
        server.magpie("alias", "del", info)
        code, text = client.data(message("fourth"))
        assert code == 451 and text.startswith(b"4."), text
        client.rset()
        refused = client.sendmail("s@remote.example", [info, ALICE], message("fifth"))
        assert list(refused) == [info] and refused[info][0] == 550
    assert server.uids(ALICE) == [1, 2] and server.uids(BOB) == [1, 2]
    assert b"Subject: fifth" in server.export(ALICE, uid=2)


@pytest.mark.parametrize("terminator", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n"])
def test_smuggling_does_not_end_data(server, terminator):
    """A bare LF or CR never ends DATA: the smuggled second message is never stored as a message of its own;
    under the default policy the whole message is refused, and nothing is stored."""
    smuggled = (b"From: a@remote.example\r\nTo: alice@example.test\r\nSubject: outer\r\n\r\nouter" + terminator +
                b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
                b"From: admin@example.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n")
    said = smtp_dialogue(server.smtp_port, [
        b"EHLO smuggle.example\r\n", b"MAIL FROM:<a@remote.example>\r\n", b"RCPT TO:<alice@example.test>\r\n",
        b"DATA\r\n", smuggled + b".\r\n", b"QUIT\r\n"])
    final = [line for line in said.split(b"\r\n") if line[:3].isdigit()]
    assert final[-2][:1] == b"5", said  # the real end of data: refused under bare_line_ending = reject
    assert server.uids(ALICE) == [] and server.uids(BOB) == []


@pytest.mark.parametrize("terminator", [b"\n.\n", b"\r\n.\n", b"\r.\r"])
def test_smuggling_normalized_stays_one_message(make_server, terminator):
    server = make_server(smtp_options={"bare_line_ending": "normalize"})
    smuggled = (b"From: a@remote.example\r\nTo: alice@example.test\r\nSubject: outer\r\n\r\nouter" + terminator +
                b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n")
    said = smtp_dialogue(server.smtp_port, [
        b"EHLO smuggle.example\r\n", b"MAIL FROM:<a@remote.example>\r\n", b"RCPT TO:<alice@example.test>\r\n",
        b"DATA\r\n", smuggled + b".\r\n", b"QUIT\r\n"])
    assert b"\r\n250 2.0.0" in said
    assert server.uids(ALICE) == [1] and server.uids(BOB) == []
    stored = split_trace(server.export(ALICE, uid=1))[2]
    assert b"MAIL FROM:<admin@example.test>" in stored  # kept as body text of the one message
    assert b"\r\n" in stored and not re.search(rb"[^\r]\n|\r[^\n]", stored)  # every line ending is CRLF


@pytest.mark.parametrize("command,code", [
    (b"MAIL FROM:<a b@remote.example>\r\n", b"501"),            # white space inside the address
    (b"MAIL FROM:Alice <a@remote.example>\r\n", b"501"),         # a phrase before the path
    (b"MAIL FROM:<a@@remote.example>\r\n", b"501"),              # malformed path
    (b"MAIL FROM:<a\x00b@remote.example>\r\n", b"500"),          # NUL
    (b"MAIL FROM:<\xc3\xa9@remote.example>\r\n", b"5"),          # 8-bit without SMTPUTF8
    (b"MAIL FROM:<" + b"a" * 65 + b"@remote.example>\r\n", b"5"),  # local part over 64 octets
    (b"MAIL FROM:<a@remote.example> FOO=BAR\r\n", b"555"),       # unknown parameter
    (b"X" * 600 + b"\r\n", b"500"),                              # command line over 512 octets
])
def test_bad_commands_get_5xx_and_session_stays_sane(server, command, code):
    said = smtp_dialogue(server.smtp_port, [b"EHLO bad.example\r\n", command, b"NOOP\r\n", b"QUIT\r\n"])
    replies = [line for line in said.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
    assert replies[2].startswith(code), said
    assert replies[3].startswith(b"250") and replies[4].startswith(b"221"), said
    assert server.uids(ALICE) == []


def test_message_size_limit(make_server):
    server = make_server(smtp_options={"max_message_size": 10000})
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.ehlo("big.example")
        assert int(client.esmtp_features["size"]) == 10000
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE= declared up front
            client.sendmail("b@remote.example", [ALICE], message("big", body="x" * 20000 + "\r\n"))
        assert refused.value.smtp_code == 552
    said = smtp_dialogue(server.smtp_port, [
        b"EHLO big.example\r\nMAIL FROM:<b@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
        message("big", body=("y" * 70 + "\r\n") * 300) + b".\r\n", b"NOOP\r\n"])
    replies = [line for line in said.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
    assert replies[-2].startswith(b"552 5.3.4"), said  # read to the end, then refused
    assert replies[-1].startswith(b"250"), said        # and the session goes on (NOOP)
    assert server.uids(ALICE) == []


def test_recipient_limit(make_server):
    server = make_server(smtp_options={"max_recipients": 2})
    said = smtp_dialogue(server.smtp_port, [
        b"EHLO many.example\r\nMAIL FROM:<m@remote.example>\r\n",
        b"RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\n",
        b"QUIT\r\n"])
    assert b"\r\n452 4.5.3" in said


def test_text_line_over_the_configured_limit_is_refused(make_server):
    server = make_server(smtp_options={"max_text_line": 2000})
    said = smtp_dialogue(server.smtp_port, [
        b"EHLO long.example\r\nMAIL FROM:<l@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
        message("long", body="z" * 2001 + "\r\n") + b".\r\n", b"NOOP\r\n"])
    replies = [line for line in said.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
    assert replies[-2].startswith(b"552 5.3.4") and replies[-1].startswith(b"250"), said
    assert server.uids(ALICE) == []


def test_bare_postmaster_reaches_the_postmaster(server):
    """RFC 5321 4.5.1: RCPT TO:<Postmaster> without a domain must be accepted."""
    server.magpie("alias", "add", f"postmaster@{DOMAIN}", BOB)
    said = smtp_dialogue(server.smtp_port, [
        b"EHLO pm.example\r\nMAIL FROM:<p@remote.example>\r\nRCPT TO:<PostMaster>\r\nDATA\r\n",
        b"Subject: to the postmaster\r\n\r\nhello\r\n.\r\n", b"QUIT\r\n"])
    assert b"\r\n250 2.1.5" in said and b"\r\n250 2.0.0" in said, said
    assert b"Subject: to the postmaster" in server.export(BOB, uid=1)


@embedded_store_only
def test_dsn_parameters_are_kept_for_success_notifications(make_server):
    # With the queue running, magpied turns these records into success notices and deletes them
    # (tests/e2e/test_relay.py covers that); here the record itself is the subject.
    server = make_server(sections={"queue": {"enabled": False}})
    import sqlite3
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.ehlo("dsn.example")
        assert client.has_extn("dsn")
        assert client.sendmail("s@remote.example", [ALICE], message("dsn"), mail_options=["RET=HDRS", "ENVID=QQ314159"],
                               rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;alice@example.test"]) == {}
        assert client.sendmail("s@remote.example", [BOB], message("no dsn")) == {}
    db = sqlite3.connect(f"file:{server.data / 'magpie.db'}?mode=ro", uri=True)
    rows = db.execute("SELECT e.reverse_path, e.dsn_ret, e.dsn_envid, r.address, r.notify, r.orcpt "
                      "FROM envelopes e JOIN envelope_recipients r ON r.envelope_id = e.id").fetchall()
    assert rows == [("s@remote.example", "HDRS", "QQ314159", ALICE, "SUCCESS,FAILURE", "rfc822;alice@example.test")]
