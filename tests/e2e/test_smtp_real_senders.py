"""Issue 12, SMTP: mail as real senders send it, against a real magpied. The seed's own transcript typed at a
raw socket, the envelope forms Postfix accepts, the postmaster that always exists, long lines, slow senders,
BDAT over the size limit, keepalive on accepted sockets, and certificate files that survive a power cut."""
import email
import email.policy
import email.utils
import os
import re
import select
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import DOMAIN, MAGPIED, PASSWORD, Magpied, client_tls_context, read_reply, smtp_dialogue

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def final_replies(said: bytes):
    return [line for line in said.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]


def connect(port, source="127.0.0.1"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
    greeting = read_reply(sock)
    assert greeting.startswith(b"220"), greeting
    return sock


def command(sock, line: bytes) -> bytes:
    sock.sendall(line)
    return read_reply(sock)


# --- A: the seed's transcript, typed as in the issue ----------------------------------------------------

def test_seed_transcript_as_typed_stores_the_text_as_the_body(make_server):
    server = make_server(users=("demo",))
    typed = [b"HELO crepes.fr\r\n", b"MAIL FROM: <alice@crepes.fr>\r\n", b"RCPT TO: < demo@example.test>\r\n",
             b"DATA\r\n", b"Hello from the seed,\r\n", b"two lines and no header at all.\r\n", b".\r\n",
             b"QUIT\r\n"]
    said = smtp_dialogue(server.smtp_port, typed)
    codes = [line[:3] for line in final_replies(said)]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"], said

    stored = server.export(f"demo@{DOMAIN}", uid=1)
    header, _, body = stored.partition(b"\r\n\r\n")
    assert body == b"Hello from the seed,\r\ntwo lines and no header at all.\r\n", stored
    fields = [line for line in header.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
    names = [field.split(b":", 1)[0] for field in fields]
    assert names == [b"Return-Path", b"Received", b"Authentication-Results", b"Message-ID", b"Date", b"From"], stored
    assert b"Return-Path: <alice@crepes.fr>" in fields
    assert b"From: alice@crepes.fr" in fields
    assert b"for <demo@example.test>" in header and b"from crepes.fr" in header

    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert parsed["From"].addresses[0].addr_spec == "alice@crepes.fr"
    assert abs(email.utils.parsedate_to_datetime(parsed["Date"]).timestamp() - time.time()) < 300
    assert re.fullmatch(r"<\d{14}\.[0-9A-F]+@mx\.example\.test>", parsed["Message-ID"]), parsed["Message-ID"]
    assert parsed.get_content().replace("\r\n", "\n") == "Hello from the seed,\ntwo lines and no header at all.\n"

    # What a real IMAP client is served: the text is the body, the sender the envelope's.
    import imaplib
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())
    client.login(f"demo@{DOMAIN}", PASSWORD)
    client.select("INBOX")
    status, data = client.fetch("1", "(BODY.PEEK[TEXT] ENVELOPE)")
    client.logout()
    assert status == "OK"
    assert data[0][1] == b"Hello from the seed,\r\ntwo lines and no header at all.\r\n", data
    assert b'(NIL NIL "alice" "crepes.fr")' in data[0][0] + data[1], data


def test_swaks_headerless_data_keeps_its_text_as_the_body(server):
    result = subprocess.run(["swaks", "--server", f"127.0.0.1:{server.smtp_port}", "--from", "s@remote.example",
                             "--to", ALICE, "--helo", "swaks.example", "--data", "  indented first line\nsecond\n",
                             "--silent", "2"], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    stored = server.export(ALICE, uid=1)
    header, _, body = stored.partition(b"\r\n\r\n")
    # Not a continuation of Received: (swaks ends its data with empty lines of its own).
    assert body.rstrip(b"\r\n") == b"  indented first line\r\nsecond", stored
    assert b"\r\nFrom: s@remote.example" in header and b"\r\nDate: " in header


def test_message_with_a_header_is_stored_exactly_as_sent(server):
    original = b"Subject: no date, no from\r\n\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [ALICE], original) == {}
    assert server.export(ALICE, uid=1).endswith(b"\r\n" + original)  # nothing added to a message with a header


def test_always_add_missing_headers_when_configured(make_server):
    server = make_server(smtp_options={"add_missing_headers": "always"})
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("s@remote.example", [ALICE], b"Subject: bare\r\n\r\nbody\r\n") == {}
    parsed = email.message_from_bytes(server.export(ALICE, uid=1), policy=email.policy.default)
    assert parsed["Subject"] == "bare" and parsed["From"] == "s@remote.example"
    assert parsed["Date"] and parsed["Message-ID"]


@pytest.mark.parametrize("mail,rcpt", [
    (b"MAIL FROM:a@remote.example", b"RCPT TO:alice@example.test"),
    (b"MAIL FROM: a@remote.example SIZE=100", b"RCPT TO: alice@example.test"),
    (b"MAIL FROM:< a@remote.example >", b"RCPT TO:<alice@example.test >"),
    (b"MAIL FROM:  <a@remote.example>", b"RCPT TO:   < alice@example.test>"),
    (b"MAIL FROM:< >", b"RCPT TO:alice@example.test NOTIFY=NEVER"),
])
def test_envelope_forms_postfix_accepts(server, mail, rcpt):
    said = smtp_dialogue(server.smtp_port, [b"EHLO forms.example\r\n", mail + b"\r\n", rcpt + b"\r\n", b"DATA\r\n",
                                            b"Subject: forms\r\n\r\nok\r\n.\r\n", b"QUIT\r\n"])
    codes = [line[:3] for line in final_replies(said)]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"], said
    assert server.uids(ALICE) == [1]


@pytest.mark.parametrize("line", [
    b"MAIL FROM:", b"MAIL FROM:< a @remote.example>", b"MAIL FROM:<a@remote.example> <b@remote.example>",
    b"MAIL FROM:a@remote.example>", b"MAIL FROM:<<a@remote.example>>", b"MAIL FROM:<a@remote.example",
])
def test_envelope_garbage_is_still_refused(server, line):
    said = smtp_dialogue(server.smtp_port, [b"EHLO garbage.example\r\n", line + b"\r\n", b"QUIT\r\n"])
    assert final_replies(said)[2].startswith(b"501"), said


# --- B: postmaster always exists -------------------------------------------------------------------------

def send_to_postmasters(port):
    said = smtp_dialogue(port, [
        b"EHLO pm.example\r\nMAIL FROM:<p@remote.example>\r\n",
        b"RCPT TO:<Postmaster>\r\nRCPT TO:<postmaster@example.test>\r\nRCPT TO:<POSTMASTER@Example.Test>\r\n",
        b"DATA\r\n", b"Subject: to the postmaster\r\n\r\nhello\r\n.\r\n", b"QUIT\r\n"])
    assert [line[:3] for line in final_replies(said)] == [
        b"220", b"250", b"250", b"250", b"250", b"250", b"354", b"250", b"221"], said


def test_postmaster_exists_without_any_alias(server):
    send_to_postmasters(server.smtp_port)
    assert server.uids(ALICE) == [1] and server.uids(BOB) == []  # the domain's oldest account: alice
    assert b"Subject: to the postmaster" in server.export(ALICE, uid=1)


def test_configured_postmaster_receives_it(make_server):
    server = make_server(smtp_options={"postmaster": BOB})
    send_to_postmasters(server.smtp_port)
    assert server.uids(BOB) == [1] and server.uids(ALICE) == []


def test_explicit_postmaster_alias_wins_over_the_configuration(make_server):
    server = make_server(smtp_options={"postmaster": BOB})
    server.magpie("alias", "add", f"postmaster@{DOMAIN}", ALICE)
    send_to_postmasters(server.smtp_port)
    assert server.uids(ALICE) == [1] and server.uids(BOB) == []


# --- C: long lines ---------------------------------------------------------------------------------------

def test_long_lines_from_real_senders_are_stored_intact(server):
    original = (b"From: Big Provider <news@provider.example>\r\nSubject: long lines\r\n"
                b"Content-Type: text/html; charset=utf-8\r\n\r\n" + b"<p>" + b"x" * 1495 + b"\r\n" +
                b"<div>" + b"y" * (200 * 1024) + b"</div>\r\n")
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("news@provider.example", [ALICE], original) == {}
    stored = server.export(ALICE, uid=1)
    assert stored.endswith(b"\r\n" + original)


# --- D: slow senders -------------------------------------------------------------------------------------

def trickle_until_closed(sock, payload: bytes, pause: float, limit: float) -> bytes:
    """Sends `payload` one byte every `pause` seconds until the server speaks or closes; returns what it said."""
    sock.setblocking(False)
    said = b""
    start = time.time()
    try:
        for byte in payload:
            if time.time() - start > limit:
                break
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            time.sleep(pause)
            try:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                said += chunk
                if said.endswith(b"\r\n"):
                    break
            except BlockingIOError:
                pass
    finally:
        sock.setblocking(True)
    return said


def test_data_sent_one_byte_at_a_time_is_cut_off_with_421(make_server):
    server = make_server(smtp_options={"idle_timeout": 2, "min_data_rate": 500})
    sock = connect(server.smtp_port)
    for line in (b"EHLO slow.example\r\n", b"MAIL FROM:<s@remote.example>\r\n", b"RCPT TO:<alice@example.test>\r\n"):
        assert command(sock, line)[:1] in (b"2", b"3")
    assert command(sock, b"DATA\r\n").startswith(b"354")
    started = time.time()
    # Every read is well within idle_timeout: only the rate bound can end this.
    said = trickle_until_closed(sock, b"Subject: slow\r\n\r\n" + b"z" * 200, pause=0.25, limit=20)
    assert said.startswith(b"421 4.4.2 "), said
    assert 1.5 < time.time() - started < 8
    sock.close()
    assert server.uids(ALICE) == []
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:  # an honest sender is served as before
        assert client.sendmail("h@remote.example", [ALICE], b"Subject: honest\r\n\r\nfast\r\n") == {}
    assert server.uids(ALICE) == [1]


def test_command_line_sent_one_byte_at_a_time_is_cut_off_with_421(make_server):
    server = make_server(smtp_options={"idle_timeout": 2})
    sock = connect(server.smtp_port)
    started = time.time()
    said = trickle_until_closed(sock, b"EHLO " + b"a" * 400, pause=0.3, limit=20)
    assert said.startswith(b"421 4.4.2 ") and b"command line" in said, said
    assert 1.5 < time.time() - started < 8
    sock.close()


def test_transaction_time_is_bounded(make_server):
    server = make_server(smtp_options={"idle_timeout": 5, "max_transaction_time": 3})
    sock = connect(server.smtp_port)
    assert command(sock, b"EHLO busy.example\r\n").startswith(b"250")
    assert command(sock, b"MAIL FROM:<s@remote.example>\r\n").startswith(b"250")
    started = time.time()
    said = b""
    while time.time() - started < 20:
        # The 421 may come between two commands: read it before writing to a closed connection.
        if select.select([sock], [], [], 0.5)[0]:
            said = read_reply(sock)
            break
        said = command(sock, b"NOOP\r\n")
        if not said.startswith(b"250"):
            break
    assert said.startswith(b"421 4.4.2 ") and b"transaction" in said, said
    assert 2.5 < time.time() - started < 8
    sock.close()


# --- E, F: BDAT ------------------------------------------------------------------------------------------

def test_bdat_over_the_size_limit_is_read_refused_and_the_session_goes_on(make_server):
    server = make_server(smtp_options={"max_message_size": 10000})
    sock = connect(server.smtp_port)
    for line in (b"EHLO big.example\r\n", b"MAIL FROM:<b@remote.example>\r\n", b"RCPT TO:<alice@example.test>\r\n"):
        assert command(sock, line).startswith(b"250")
    # The whole chunk goes out; a server that closed after its 552 would reset this write.
    sock.sendall(b"BDAT 300000 LAST\r\n" + b"QUIT\r\n" * 50000)
    assert read_reply(sock).startswith(b"552 5.3.4"), "no 552 after the oversized chunk"
    assert command(sock, b"NOOP\r\n").startswith(b"250")
    for line in (b"MAIL FROM:<b@remote.example>\r\n", b"RCPT TO:<alice@example.test>\r\n"):
        assert command(sock, line).startswith(b"250")
    small = b"Subject: small\r\n\r\nfits\r\n"
    assert command(sock, b"BDAT %d LAST\r\n" % len(small) + small).startswith(b"250 2.0.0")
    assert command(sock, b"QUIT\r\n").startswith(b"221")
    sock.close()
    assert server.uids(ALICE) == [1]
    assert server.export(ALICE, uid=1).endswith(b"\r\n" + small)


def test_bdat_reply_counts_every_octet(server):
    sock = connect(server.smtp_port)
    for line in (b"EHLO count.example\r\n", b"MAIL FROM:<c@remote.example>\r\n", b"RCPT TO:<alice@example.test>\r\n"):
        assert command(sock, line).startswith(b"250")
    chunk = b"Subject: twenty-one!\r"  # 21 octets ending in a CR whose LF is in the next chunk
    assert len(chunk) == 21
    assert command(sock, b"BDAT 21\r\n" + chunk) == b"250 2.0.0 OK: 21 octets received\r\n"
    assert command(sock, b"BDAT 7 LAST\r\n\n\r\nbody").startswith(b"250 2.0.0 OK ")
    sock.close()
    assert server.export(ALICE, uid=1).endswith(b"\r\nSubject: twenty-one!\r\n\r\nbody\r\n")


# --- item 10: keepalive on every accepted socket ----------------------------------------------------------

def server_side_timers(port):
    out = subprocess.run(["ss", "-tnoH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                         text=True, check=True).stdout
    return out


def test_accepted_smtp_and_imap_sockets_have_keepalive(server):
    smtp = connect(server.smtp_port)
    imap = socket.create_connection(("127.0.0.1", server.imap_port), timeout=10)
    assert imap.recv(1024).startswith(b"* OK")
    for port in (server.smtp_port, server.imap_port):
        timers = server_side_timers(port)
        assert "timer:(keepalive," in timers, timers
        minutes = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?", timers)
        assert minutes and int(minutes.group(1) or 0) < 5, timers  # probes start well before a NAT forgets
    smtp.close()
    imap.close()


# --- G: files magpied writes survive a power cut ---------------------------------------------------------

def test_damaged_configured_certificate_is_refused_naming_the_file(tmp_path):
    server = Magpied(tmp_path)
    cert = tmp_path / "cert.pem"
    cert.write_bytes(b"")  # what a power cut right after writing used to leave
    with pytest.raises(AssertionError) as failed:
        server.start(timeout=30)
    assert str(cert) in str(failed.value), str(failed.value)[-2000:]


def test_demo_regenerates_a_damaged_certificate_and_writes_it_durably(tmp_path):
    data = tmp_path / "demo-data"
    data.mkdir()
    (data / "demo-cert.pem").write_bytes(b"")
    (data / "demo-key.pem").write_bytes(b"")
    trace = tmp_path / "trace.txt"
    proc = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
                             "-o", str(trace), str(MAGPIED), "--demo", "--data", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    output = b""
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break  # exited: e.g. the demo's fixed port is taken here; the certificate came first
            output += line
            if b"listening on" in line or b"Magpie demo is running" in line:
                break
    finally:
        # strace keeps running until its tracee ends: stop magpied itself, then let strace finish.
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        for pid in (children.read_text().split() if children.exists() else []):
            os.kill(int(pid), signal.SIGTERM)
        output += proc.communicate(timeout=60)[0]
    assert b"generating a new certificate" in output and b"generated a self-signed certificate" in output, output
    check = subprocess.run(["openssl", "x509", "-in", str(data / "demo-cert.pem"), "-noout", "-pubkey"],
                           capture_output=True, check=True).stdout
    key = subprocess.run(["openssl", "pkey", "-in", str(data / "demo-key.pem"), "-pubout"],
                         capture_output=True, check=True).stdout
    assert check == key  # a matching pair
    assert (data / "demo-key.pem").stat().st_mode & 0o777 == 0o600
    calls = [line.split(None, 1) for line in trace.read_text().splitlines() if line[:1].isdigit()]
    for name in ("demo-key.pem", "demo-cert.pem"):
        renamed = [i for i, (_, call) in enumerate(calls) if call.startswith("rename") and f'/{name}"' in call]
        assert renamed, f"{name} was not renamed into place:\n" + trace.read_text()[:3000]
        pid = calls[renamed[0]][0]
        mine = [call for who, call in calls if who == pid]
        at = mine.index(calls[renamed[0]][1])
        # The writing thread fsyncs the file right before its rename, and the directory right after.
        assert mine[at - 1].startswith("fsync(") and mine[at + 1].startswith("fsync("), mine[max(0, at - 3):at + 3]
