"""Reading mail with IMAP: Python's imaplib (and raw sockets where imaplib has no support, e.g. IDLE) against
a real magpied, on mail delivered over SMTP by smtplib."""
import imaplib
import re
import smtplib
import socket
import ssl
import time

import pytest

from conftest import DOMAIN, PASSWORD, client_tls_context

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"

MULTIPART = (
    b"From: Sender <sender@remote.example>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <multi@remote.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--XYZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Hello =C3=A9t=C3=A9\r\n"
    b"--XYZ\r\n"
    b"Content-Type: application/octet-stream; name=\"blob.bin\"\r\n"
    b"Content-Disposition: attachment; filename=\"blob.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECA/8=\r\n"
    b"--XYZ--\r\n"
)


def response_text(data):
    """The non-literal text of an imaplib FETCH answer (literals are the second item of tuples)."""
    return b" ".join(item[0] if isinstance(item, tuple) else item for item in data if item)


def deliver(server, message, to=(ALICE,)):
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("sender@remote.example", list(to), message) == {}


def login(server, user=ALICE, password=PASSWORD):
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())
    client.login(user, password)
    return client


def test_logindisabled_before_starttls_then_login(server):
    client = imaplib.IMAP4("127.0.0.1", server.imap_port)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        client.login(ALICE, PASSWORD)
    client.starttls(ssl_context=client_tls_context())
    assert "LOGINDISABLED" not in client.capabilities
    assert client.login(ALICE, PASSWORD)[0] == "OK"
    client.logout()


def test_wrong_password_and_throttling(make_server):
    server = make_server(auth_options={"max_user_failures": 3, "first_lockout": 60})
    for _ in range(3):
        client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())
        with pytest.raises(imaplib.IMAP4.error):
            client.login(ALICE, "wrong")
        client.logout()
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())
    with pytest.raises(imaplib.IMAP4.error):  # locked out, even with the right password
        client.login(ALICE, PASSWORD)
    client.logout()
    assert login(server, BOB).logout()[0] == "BYE"  # another account is not affected


def test_smtp_delivery_reads_back_byte_for_byte(server):
    deliver(server, MULTIPART)
    stored = server.export(ALICE, uid=1)
    client = login(server)
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = client.uid("FETCH", "1", "(BODY.PEEK[] RFC822.SIZE FLAGS)")
    assert data[0][1] == stored
    text = response_text(data)
    assert re.search(rb"RFC822\.SIZE %d" % len(stored), text), text
    assert b"\\Seen" not in text  # PEEK does not set \Seen
    typ, data = client.fetch("1", "(BODY[1] BODY[2] BODY[2.MIME] BINARY[2])")
    parts = {re.search(rb"((?:BODY|BINARY)\[[^\]]*\])[^\[]*$", item[0]).group(1): item[1]
             for item in data if isinstance(item, tuple)}
    assert parts[b"BODY[1]"] == b"Hello =C3=A9t=C3=A9"
    assert parts[b"BODY[2]"] == b"AAECA/8="
    assert parts[b"BINARY[2]"] == b"\x00\x01\x02\x03\xff"
    assert parts[b"BODY[2.MIME]"].startswith(b"Content-Type: application/octet-stream")
    typ, data = client.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]  # BODY[...] without PEEK set it
    client.logout()


def test_envelope_and_bodystructure(server):
    deliver(server, MULTIPART)
    client = login(server)
    client.select("INBOX", readonly=True)
    typ, data = client.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
    text = response_text(data)
    assert b'"Mon, 23 Nov 2026 10:00:00 +0000"' in text
    assert b'"=?utf-8?q?Gr=C3=BC=C3=9Fe?="' in text  # ENVELOPE keeps the encoded word
    assert b'(("Sender" NIL "sender" "remote.example"))' in text
    assert b'"<multi@remote.example>"' in text
    assert re.search(rb'\("text" "plain" \("charset" "utf-8"\) NIL NIL "quoted-printable" 19 0', text, re.I), text
    assert re.search(rb'"application" "octet-stream" \("name" "blob.bin"\) NIL NIL "base64" 8', text, re.I), text
    assert re.search(rb'"mixed" \("boundary" "XYZ"\)', text, re.I), text
    client.logout()


def test_flags_copy_move_expunge(server):
    for i in range(3):
        deliver(server, b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
    client = login(server)
    client.select("INBOX")
    typ, data = client.store("1:2", "+FLAGS", "(\\Flagged $Important)")
    assert typ == "OK" and len(data) == 2
    typ, data = client.fetch("1:3", "(FLAGS)")
    assert b"\\Flagged" in data[0] and b"$Important" in data[1] and b"\\Flagged" not in data[2]
    tag = client._command("UID", "COPY", "1:2", "Archive")  # imaplib drops the tagged text of UID COPY
    typ, data = client._command_complete("UID", tag)
    assert typ == "OK"
    assert re.search(rb"\[COPYUID \d+ 1:2 1:2\]", data[0]), data
    typ, data = client.uid("MOVE", "3", "Trash")
    assert typ == "OK"
    typ, data = client.search(None, "ALL")
    assert data == [b"1 2"]
    client.store("1", "+FLAGS", "(\\Deleted)")
    client.untagged_responses.pop("EXPUNGE", None)  # the MOVE's own EXPUNGE 3
    typ, data = client.expunge()
    assert data == [b"1"]
    typ, data = client.uid("SEARCH", None, "ALL")
    assert data == [b"2"]
    client.select("Archive")
    typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[TEXT])")
    assert b"body 0" in data[0][1] and b"$Important" in data[0][0]
    client.logout()
    # COPY kept one blob: the Archive copy is the same bytes as the original.
    assert server.export(ALICE, "Archive", uid=2) == server.export(ALICE, "INBOX", uid=2)
    assert server.uids(ALICE, "Trash") == [1]


def test_append_is_durable_and_returns_appenduid(server):
    client = login(server)
    message = b"From: alice@example.test\r\nSubject: draft\r\n\r\nwork in progress\r\n"
    typ, data = client.append("Drafts", "(\\Draft)", None, message)
    assert typ == "OK" and b"APPENDUID" in data[0]
    client.logout()
    assert server.export(ALICE, "Drafts", uid=1) == message


def test_search_keys(server):
    deliver(server, b"From: carol@remote.example\r\nSubject: invoice 42\r\n\r\nplease pay\r\n")
    deliver(server, b"From: dave@remote.example\r\nSubject: lunch\r\n\r\nnoodles?\r\n")
    client = login(server)
    client.select("INBOX")
    assert client.search(None, "FROM", "carol")[1] == [b"1"]
    assert client.search(None, "SUBJECT", "lunch")[1] == [b"2"]
    assert client.search(None, "BODY", "noodles")[1] == [b"2"]
    assert client.search(None, "TEXT", "invoice")[1] == [b"1"]
    assert client.search(None, "UNSEEN")[1] == [b"1 2"]
    assert client.search(None, "LARGER", "1")[1] == [b"1 2"]
    assert client.search(None, "NOT", "FROM", "carol")[1] == [b"2"]
    assert client.search(None, "OR", "FROM", "carol", "FROM", "dave")[1] == [b"1 2"]
    client.logout()


def test_other_users_mail_is_unreachable(server):
    deliver(server, b"Subject: for bob\r\n\r\nsecret\r\n", to=(BOB,))
    client = login(server)
    for name in (f"{BOB}/INBOX", "../bob/INBOX", "bob/INBOX", "~bob/INBOX", "/INBOX", "INBOX/../../bob"):
        typ, _ = client.select(f'"{name}"')
        assert typ == "NO", name
    typ, data = client.list()
    assert not any(b"bob" in line for line in data)
    client.logout()


def test_two_sessions_see_each_others_changes(server):
    deliver(server, b"Subject: shared\r\n\r\nx\r\n")
    a, b = login(server), login(server)
    a.select("INBOX")
    b.select("INBOX")
    a.store("1", "+FLAGS", "(\\Answered)")
    b.noop()
    assert any(b"\\Answered" in r for r in b.untagged_responses.get("FETCH", [])), b.untagged_responses
    deliver(server, b"Subject: second\r\n\r\ny\r\n")
    a.untagged_responses.pop("EXISTS", None)  # forget the EXISTS of SELECT
    typ, data = a.noop()
    assert a.untagged_responses.get("EXISTS") == [b"2"]
    a.logout()
    b.logout()


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


def test_idle_is_woken_by_smtp_delivery(server):
    raw = socket.create_connection(("127.0.0.1", server.imaps_port), timeout=10)
    sock = client_tls_context().wrap_socket(raw)
    read_until(sock, rb"\* OK", 5)
    sock.sendall(f'a1 LOGIN "{ALICE}" "{PASSWORD}"\r\n'.encode())
    assert b"a1 OK" in read_until(sock, rb"a1 (OK|NO|BAD)", 10)
    sock.sendall(b"a2 SELECT INBOX\r\n")
    assert b"a2 OK" in read_until(sock, rb"a2 (OK|NO|BAD)", 10)
    sock.sendall(b"a3 IDLE\r\n")
    assert read_until(sock, rb"\+ ", 5).startswith(b"+")
    deliver(server, b"Subject: wake up\r\n\r\nnew mail\r\n")
    acknowledged = time.time()
    news = read_until(sock, rb"\* 1 EXISTS", 30)
    assert b"* 1 EXISTS" in news
    # Pushed, not polled (nothing else would tell this IDLE before its keepalive minutes later); the latency is
    # printed, not asserted: well under a second on a quiet machine, more under CI load (tests never assert timings).
    print(f"IDLE heard of the delivery {(time.time() - acknowledged) * 1000:.0f} ms after its 250")
    sock.sendall(b"DONE\r\n")
    assert b"a3 OK" in read_until(sock, rb"a3 (OK|NO|BAD)", 5)
    sock.sendall(b"a4 LOGOUT\r\n")
    assert b"* BYE" in read_until(sock, rb"a4 OK", 5)
    sock.close()


def test_condstore_and_qresync_resync(server):
    for i in range(3):
        deliver(server, b"Subject: r%d\r\n\r\nz\r\n" % i)
    client = login(server)
    client.enable("QRESYNC")
    typ, data = client.select("INBOX")
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(client.untagged_responses.get("OK", []))).group(1))
    uidvalidity = int(client.untagged_responses["UIDVALIDITY"][0])
    client.store("2", "+FLAGS", "(\\Seen)")
    client.store("3", "+FLAGS", "(\\Deleted)")
    client.expunge()
    client.close()
    # Resync from the earlier state: flag change on UID 2, UID 3 vanished.
    typ, data = client._simple_command("SELECT", "INBOX", f"(QRESYNC ({uidvalidity} {highest}))")
    assert typ == "OK"
    client.state = "SELECTED"  # imaplib does not know SELECT with parameters
    vanished = client.untagged_responses.get("VANISHED", [])
    assert any(b"(EARLIER) 3" in v for v in vanished), client.untagged_responses
    fetches = client.untagged_responses.get("FETCH", [])
    assert any(b"UID 2" in f and b"\\Seen" in f for f in fetches), fetches
    client.untagged_responses.pop("FETCH", None)
    typ, data = client.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {highest})")
    assert len([d for d in data if d]) == 1 and b"MODSEQ" in data[0]
    client.logout()


# ---- Issue 12: what real clients and Dovecot showed.

class RawImap:
    """Byte-for-byte IMAP over TLS, for what imaplib cannot say (LITERAL+, IDLE, literal8)."""

    def __init__(self, server, user=ALICE):
        raw = socket.create_connection(("127.0.0.1", server.imaps_port), timeout=10)
        self.sock = client_tls_context().wrap_socket(raw)
        self.greeting = read_until(self.sock, rb"\* OK.*\r\n", 5)
        self.counter = 0
        if user:
            assert b" OK" in self.command(f'LOGIN "{user}" "{PASSWORD}"'.encode())

    def command(self, text, timeout=10):
        """Sends `text` (bytes, without CRLF) under a fresh tag; returns everything up to the tagged reply."""
        self.counter += 1
        tag = b"t%d" % self.counter
        self.sock.sendall(tag + b" " + text + b"\r\n")
        return read_until(self.sock, rb"(^|\n)" + tag + rb" (OK|NO|BAD)[^\r\n]*\r\n", timeout)

    def close(self):
        self.sock.close()


def test_undecodable_mailbox_names_get_no_not_bad(server):
    client = login(server)
    typ, data = client.select("foo&bar")
    assert typ == "NO" and b"modified UTF-7" in data[0], data
    typ, data = client.list('""', "foo&bar*")
    assert typ == "OK" and data == [None], data
    typ, data = client.create("foo&bar")
    assert typ == "NO", data
    typ, data = client.status("foo&bar", "(MESSAGES)")
    assert typ == "NO", data
    assert client.create("foo&-bar")[0] == "OK"  # the proper spelling of "foo&bar"
    assert client.select("foo&-bar")[0] == "OK"
    client.logout()


def test_literal_plus_append_and_too_big(make_server):
    server = make_server(imap_options={"max_literal_octets": 4096})
    client = RawImap(server)
    assert b" LITERAL+ " in client.command(b"CAPABILITY")
    message = b"Subject: plus\r\n\r\n" + b"p" * 3000 + b"\r\n"
    reply = client.command(b"APPEND Drafts {%d+}\r\n" % len(message) + message)
    assert re.search(rb"t3 OK \[APPENDUID \d+ 1\]", reply), reply
    assert b"+ " not in reply  # no continuation request for a non-synchronizing literal
    # Over the APPENDLIMIT: the octets are read and dropped (a command inside them never runs).
    big = b"x LOGOUT\r\n" + b"q" * 100000
    reply = client.command(b"APPEND Drafts {%d+}\r\n" % len(big) + big)
    assert re.search(rb"t4 NO \[TOOBIG\]", reply), reply
    assert b"BYE" not in reply
    assert b"t5 OK" in client.command(b"NOOP")
    client.close()
    assert server.export(ALICE, "Drafts", uid=1) == message
    assert server.uids(ALICE, "Drafts") == [1]


def test_binary_of_the_whole_message_and_of_missing_parts(server):
    deliver(server, MULTIPART)
    stored = server.export(ALICE, uid=1)
    client = login(server)
    client.select("INBOX")
    typ, data = client.fetch("1", "(BINARY.SIZE[] RFC822.SIZE)")
    assert typ == "OK"
    assert re.search(rb"BINARY\.SIZE\[\] %d RFC822\.SIZE %d" % (len(stored), len(stored)), data[0]), data
    typ, data = client.fetch("1", "(BINARY.PEEK[])")
    assert typ == "OK" and data[0][1] == stored
    typ, data = client.fetch("1", "(BINARY.PEEK[5] BINARY.SIZE[5])")  # no part 5: empty, not UNKNOWN-CTE
    assert typ == "OK", data
    assert data[0][1] == b"" and b"BINARY.SIZE[5] 0" in response_text(data), data
    client.logout()


def test_new_keywords_are_announced_and_move_into_the_selected_mailbox(server):
    deliver(server, b"Subject: k\r\n\r\nkeywords\r\n")
    deliver(server, b"Subject: l\r\n\r\nsecond\r\n")
    client = login(server)
    client.select("INBOX")
    client.untagged_responses.pop("FLAGS", None)
    typ, data = client.store("1", "+FLAGS", "($NewOne)")
    assert typ == "OK"
    assert any(b"$NewOne" in f for f in client.untagged_responses.get("FLAGS", [])), client.untagged_responses
    assert any(b"PERMANENTFLAGS" in r and b"$NewOne" in r for r in client.untagged_responses.get("OK", []))
    typ, data = client.uid("MOVE", "1", "INBOX")
    assert typ == "OK", data
    assert any(re.search(rb"COPYUID \d+ 1 3", r) for r in client.untagged_responses.get("OK", []))
    typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
    assert [re.search(rb"UID (\d+)", d).group(1) for d in data] == [b"2", b"3"], data
    assert b"$NewOne" in data[1]
    client.logout()


def test_condstore_highestmodseq_on_first_fetch_and_esearch_min_modseq(server):
    for i in range(4):
        deliver(server, b"Subject: c%d\r\n\r\nz\r\n" % i)
    client = login(server)
    client.select("INBOX")
    client.untagged_responses.pop("OK", None)
    typ, data = client.fetch("1", "(FLAGS MODSEQ)")
    assert typ == "OK"
    assert any(b"HIGHESTMODSEQ" in r for r in client.untagged_responses.get("OK", [])), client.untagged_responses
    modseqs = []
    for n in ("1", "3", "2", "4"):
        typ, data = client.store(n, "+FLAGS", "(\\Seen)")
        modseqs.append(int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1)))
    typ, data = client._simple_command("SEARCH", "RETURN", "(MIN)", "MODSEQ", "1")
    assert typ == "OK"
    esearch = client.untagged_responses.pop("ESEARCH")[0]
    assert re.search(rb"MIN 1 MODSEQ %d\b" % modseqs[0], esearch), (esearch, modseqs)
    typ, data = client._simple_command("SEARCH", "RETURN", "(MAX)", "MODSEQ", "1")
    esearch = client.untagged_responses.pop("ESEARCH")[0]
    assert re.search(rb"MAX 4 MODSEQ %d\b" % modseqs[3], esearch), (esearch, modseqs)
    client.logout()


def test_search_is_case_insensitive_in_every_script(server):
    deliver(server, b"From: someone@remote.example\r\nSubject: =?UTF-8?Q?=C3=85ke_m=C3=B6te?=\r\n\r\nplain\r\n")
    deliver(server, "From: Åke Ström <ake@remote.example>\r\nSubject: hej\r\n\r\nplain\r\n".encode())
    deliver(server, b"From: x@remote.example\r\nSubject: latin\r\nMIME-Version: 1.0\r\n"
                    b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                    b"Vi ses p\xe5 m\xf6tet\r\n")
    client = login(server)
    client.select("INBOX")
    typ, data = client.search(None, 'OR SUBJECT "åke" FROM "åke"'.encode())
    assert typ == "OK" and data == [b"1 2"], data
    client.literal = "MÖTE".encode()
    typ, data = client.search("UTF-8", "TEXT")
    assert typ == "OK" and data == [b"1 3"], data
    client.logout()


def test_idle_keepalive_says_still_here(make_server):
    server = make_server(imap_options={"idle_keepalive_interval": 1})
    client = RawImap(server)
    assert b"OK" in client.command(b"SELECT INBOX")
    client.sock.sendall(b"i IDLE\r\n")
    assert read_until(client.sock, rb"\+ ", 5).startswith(b"+")
    started = time.time()
    said = read_until(client.sock, rb"(\* OK Still here\r\n.*){2}", 6)
    assert said.count(b"* OK Still here\r\n") >= 2, said
    assert time.time() - started < 5
    client.sock.sendall(b"DONE\r\n")
    assert b"i OK" in read_until(client.sock, rb"i (OK|NO|BAD)", 5)
    # Outside IDLE the connection stays quiet.
    assert b"Still here" not in read_until(client.sock, rb"never", 1.5)
    client.close()


def test_recent_survives_delete_and_create(server):
    client = login(server)
    assert client.create("rec")[0] == "OK"
    for _ in range(3):
        assert client.append("rec", None, None, b"Subject: r\r\n\r\nx\r\n")[0] == "OK"
    assert client.select("rec")[0] == "OK"
    assert client.close()[0] == "OK"
    assert client.delete("rec")[0] == "OK"
    assert client.create("rec")[0] == "OK"
    for _ in range(2):
        assert client.append("rec", None, None, b"Subject: r\r\n\r\nx\r\n")[0] == "OK"
    typ, data = client.status("rec", "(RECENT)")
    assert typ == "OK" and b"RECENT 2" in data[0], data
    client.logout()
    # The first SELECT claims them; later sessions see them as not recent.
    client = login(server)
    client.select("rec")
    assert client.untagged_responses.get("RECENT") == [b"2"]
    client.logout()
    client = login(server)
    client.select("rec")
    assert client.untagged_responses.get("RECENT") == [b"0"]
    client.logout()


def test_subscriptions_are_the_clients(server):
    client = login(server)
    assert client.create("gone")[0] == "OK"
    typ, data = client.lsub('""', "gone")
    assert data == [None], data  # CREATE does not subscribe
    assert client.subscribe("gone")[0] == "OK"
    assert client.delete("gone")[0] == "OK"  # DELETE does not unsubscribe
    typ, data = client.lsub('""', "gone")
    assert data == [b'() "/" gone'], data
    typ, data = client._simple_command("LIST", "(SUBSCRIBED)", '""', "g*")
    listed = client.untagged_responses.pop("LIST", [])
    assert listed == [b'(\\NonExistent \\Subscribed) "/" gone'], listed
    assert client.create("par/child")[0] == "OK"
    assert client.subscribe("par/child")[0] == "OK"
    typ, data = client.lsub('""', "p%")
    assert data == [b'(\\Noselect) "/" par'], data
    client.logout()
