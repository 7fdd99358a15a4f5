"""IMAP OBJECTID (RFC 8474) and Email identity across MOVE (issue 11): EMAILID and THREADID in FETCH, MAILBOXID
in CREATE, SELECT and STATUS, the EMAILID/THREADID search keys, all served from the store's ids (the same
numbers JMAP shows); a MOVE into the selected mailbox gives a new UID and keeps the Email id. The same
conversation is held with a Dovecot started here, and what Dovecot also promises is compared."""
import imaplib
import os
import re
import socket

import pytest

from conftest import DOMAIN, PASSWORD, host_network
from peers import Dovecot, dovecot_available
from test_dovecot_diff import DOVECOT

ALICE = f"alice@{DOMAIN}"
MESSAGE = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: ids\r\n"
           b"Message-ID: <ids-1@example.test>\r\n\r\nHello.\r\n")
REPLY = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: Re: ids\r\n"
         b"Message-ID: <ids-2@example.test>\r\nIn-Reply-To: <ids-1@example.test>\r\n\r\nAgain.\r\n")


def connect(port):
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(ALICE, PASSWORD)
    return imap


def ok(answer):
    typ, data = answer
    assert typ == "OK", data
    return data


def fetch_ids(imap, uid):
    """(EMAILID, THREADID) of one UID; THREADID may be None (NIL)."""
    data = ok(imap.uid("FETCH", str(uid), "(UID EMAILID THREADID)"))
    text = b" ".join(d if isinstance(d, bytes) else d[0] for d in data if d).decode()
    email = re.search(r"EMAILID \(([A-Za-z0-9_-]+)\)", text)
    thread = re.search(r"THREADID (?:\(([A-Za-z0-9_-]+)\)|NIL)", text)
    assert email and thread, text
    return email.group(1), thread.group(1)


def uids(imap):
    data = ok(imap.uid("SEARCH", "ALL"))
    return [int(n) for n in data[0].split()]


def moved_uid(imap, typ_data):
    """The new UID from the COPYUID of a MOVE (in an untagged OK, RFC 6851 4.3)."""
    codes = imap.untagged_responses.get("OK", []) + [typ_data[1][0] or b""]
    for code in codes:
        found = re.search(rb"COPYUID \d+ \d+ (\d+)", code if isinstance(code, bytes) else b"")
        if found:
            return int(found.group(1))
    raise AssertionError(f"no COPYUID in {codes}")


def conversation(port):
    """What a client learns from one server: ids before and after MOVE within INBOX, COPY and MOVE to
    another mailbox, CREATE/SELECT/STATUS mailbox ids and the search keys."""
    seen = {}
    imap = connect(port)
    try:
        seen["capability"] = "OBJECTID" in imap.capabilities
        ok(imap.append("INBOX", None, None, MESSAGE))
        ok(imap.append("INBOX", None, None, REPLY))
        ok(imap.select("INBOX"))
        first, second = uids(imap)[-2:]
        email, thread = fetch_ids(imap, first)
        reply_email, reply_thread = fetch_ids(imap, second)
        seen["distinct_emails"] = email != reply_email
        seen["reply_shares_thread"] = thread is not None and thread == reply_thread

        answer = imap.uid("MOVE", str(first), "INBOX")
        assert answer[0] == "OK", answer
        new_uid = moved_uid(imap, answer)
        seen["move_within_new_uid"] = new_uid != first
        moved_email, moved_thread = fetch_ids(imap, new_uid)
        seen["move_within_keeps_email"] = moved_email == email
        seen["move_within_keeps_thread"] = moved_thread == thread

        created = imap.create("Projects")
        assert created[0] == "OK", created
        code = re.search(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)", created[1][0] or b"")
        seen["create_mailboxid"] = code is not None
        box_id = code.group(1).decode() if code else None

        answer = imap.uid("COPY", str(new_uid), "Projects")
        assert answer[0] == "OK", answer
        answer = imap.uid("MOVE", str(second), "Projects")
        assert answer[0] == "OK", answer

        ok(imap.select("Projects"))
        selected = [r for r in imap.untagged_responses.get("OK", []) if b"MAILBOXID" in r]
        seen["select_mailboxid"] = bool(selected) and box_id is not None and box_id.encode() in selected[0]
        copied, moved = uids(imap)
        seen["copy_keeps_email"] = fetch_ids(imap, copied)[0] == email
        seen["move_keeps_email"] = fetch_ids(imap, moved)[0] == reply_email
        found = ok(imap.uid("SEARCH", "EMAILID", reply_email))
        seen["search_emailid"] = found[0].split() == [str(moved).encode()]
        if thread is not None:
            found = ok(imap.uid("SEARCH", "THREADID", thread))
            seen["search_threadid"] = sorted(found[0].split()) == sorted([str(copied).encode(), str(moved).encode()])
        ok(imap.close())

        status = ok(imap.status("Projects", "(MESSAGES MAILBOXID)"))
        seen["status_mailboxid"] = box_id is not None and f"MAILBOXID ({box_id})".encode() in status[0]
        ok(imap.rename("Projects", "Work"))
        status = ok(imap.status("Work", "(MAILBOXID)"))
        seen["rename_keeps_mailboxid"] = box_id is not None and f"MAILBOXID ({box_id})".encode() in status[0]
        imap.logout()
    finally:
        try:
            imap.shutdown()
        except OSError:
            pass
    return seen


def test_objectids_come_from_the_store_and_survive_move(make_server):
    server = make_server(users=("alice",), imap_options={"allow_plaintext_login": True})
    seen = conversation(server.imap_port)
    assert seen == {
        "capability": True, "distinct_emails": True, "reply_shares_thread": True,
        "move_within_new_uid": True, "move_within_keeps_email": True, "move_within_keeps_thread": True,
        "create_mailboxid": True, "select_mailboxid": True, "copy_keeps_email": True, "move_keeps_email": True,
        "search_emailid": True, "search_threadid": True, "status_mailboxid": True, "rename_keeps_mailboxid": True,
    }


def test_the_ids_are_the_ones_jmap_and_export_name(make_server):
    """EMAILID is the store's Email id, spelt as JMAP spells it (e<id>); MAILBOXID the mailbox's (m<id>)."""
    server = make_server(users=("alice",), imap_options={"allow_plaintext_login": True})
    imap = connect(server.imap_port)
    ok(imap.append("INBOX", None, None, MESSAGE))
    ok(imap.select("INBOX"))
    inbox = [r for r in imap.untagged_responses.get("OK", []) if b"MAILBOXID" in r]
    assert inbox and re.search(rb"MAILBOXID \(m[1-9][0-9]*\)", inbox[0]), inbox
    email, thread = fetch_ids(imap, uids(imap)[0])
    assert re.fullmatch(r"e[1-9][0-9]*", email) and re.fullmatch(r"t[1-9][0-9]*", thread)
    assert thread == "t" + email[1:]  # a thread is named after its first Email
    # An id of another shape, or of no Email, finds nothing (and is no error).
    for other in ("e999999", "E1", "x-1"):
        assert ok(imap.uid("SEARCH", "EMAILID", other)) == [b""]
    imap.logout()


# ---------------------------------------------------------------------------------------------------------
# Dovecot 2.3 has no OBJECTID (FETCH EMAILID is BAD there), so what is compared is the MOVE into the selected
# mailbox it does answer: the responses in order (RFC 6851 4.3: COPYUID in an untagged OK, then EXPUNGE,
# then EXISTS for the new UID), numbers aside.

DOVECOT_SERVICES = ("imap", "imap-login", "imap-urlauth", "imap-urlauth-login", "imap-urlauth-worker",
                    "imap-hibernate")


def dovecot_extra():
    """Dovecot's IMAP executables come from dovecot-imapd, which Debian makes conflict with cyrus-imapd (both
    provide imap-server). When the package is absent, DOVECOT_IMAP_DIR may name a directory holding them
    (e.g. its .deb unpacked with dpkg-deb -x): the services are pointed there."""
    if os.path.exists("/usr/lib/dovecot/imap"):
        return ""
    directory = os.environ.get("DOVECOT_IMAP_DIR", "")
    if not directory or not os.path.exists(os.path.join(directory, "imap")):
        pytest.skip("dovecot-imapd is not installed (and DOVECOT_IMAP_DIR names no unpacked copy)")
    return "".join(f"service {name} {{\n  executable = {directory}/{name}\n}}\n" for name in DOVECOT_SERVICES)


@pytest.fixture
def dovecot():
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (scripts/install-deps.sh installs dovecot-imapd)")
    if not dovecot_available():
        pytest.fail("dovecot is installed but its system user 'dovecot' (made by dovecot-core) is missing")
    server = Dovecot({ALICE: PASSWORD}, extra=dovecot_extra())
    try:
        yield server.start()
    finally:
        server.stop()


def raw_session(port, commands):
    """Sends each command (tags t1, t2, ...) over a raw socket after LOGIN; returns, per command, its response
    lines with numbers replaced by N and the server's free text cut, so two servers' shapes compare."""
    shapes = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        reader = s.makefile("rb")

        def until(tag):
            lines = []
            while True:
                line = reader.readline()
                assert line, "connection closed"
                lines.append(line.rstrip(b"\r\n").decode(errors="replace"))
                if line.startswith(tag.encode() + b" "):
                    return lines

        reader.readline()
        s.sendall(f'a LOGIN "{ALICE}" "{PASSWORD}"\r\n'.encode())
        until("a")
        for n, command in enumerate(commands, 1):
            tag = f"t{n}"
            if isinstance(command, tuple):  # APPEND with a literal
                text, literal = command
                s.sendall(f"{tag} {text} {{{len(literal)}}}\r\n".encode())
                assert reader.readline().startswith(b"+")
                s.sendall(literal + b"\r\n")
            else:
                s.sendall(f"{tag} {command}\r\n".encode())
            shapes.append([shape(line) for line in until(tag)])
        s.sendall(b"z LOGOUT\r\n")
    return shapes


def shape(line):
    """'* OK [COPYUID 1796005057 1 3] Moved' -> '* OK [COPYUID N N N]'; untagged data keep their keyword."""
    line = re.sub(r"\d+", "N", line)
    code = re.match(r"^(\S+ (?:OK|NO|BAD)(?: \[[^\]]*\])?)", line)
    if code:
        return code.group(1)
    return " ".join(line.split()[:3])


@host_network  # the system's Dovecot as a peer
def test_move_within_the_mailbox_answers_as_dovecot_does(make_server, dovecot):
    server = make_server(users=("alice",), imap_options={"allow_plaintext_login": True})
    commands = [("APPEND INBOX", MESSAGE), ("APPEND INBOX", REPLY), "SELECT INBOX", "UID MOVE 1 INBOX",
                "UID FETCH 1:* (UID)", "MOVE 2 INBOX", "UID FETCH 1:* (UID)"]
    ours = raw_session(server.imap_port, commands)
    theirs = raw_session(dovecot.port, commands)
    # SELECT's untagged data differ by design (our OBJECTID MAILBOXID, rev2/CONDSTORE codes, Dovecot's
    # UNSEEN): compare the commands after it. One known difference: to a rev1 client magpied counts the
    # renumbered messages \Recent (new UIDs in the mailbox, RFC 3501 2.3.2) and says "* N RECENT"; Dovecot does
    # not. Left out here and reported (issue 11).
    ours = [[line for line in answer if not line.endswith("RECENT")] for answer in ours]
    assert ours[3:] == theirs[3:], (ours, theirs)
    assert ours[3][:3] == ["* OK [COPYUID N N N]", "* N EXPUNGE", "* N EXISTS"], ours[3]
    # Dovecot 2.3 lacks OBJECTID: were it to gain it, the comparison above should grow to cover EMAILID.
    assert raw_session(dovecot.port, ["SELECT INBOX", "UID FETCH 1:* (EMAILID)"])[1][-1].startswith("tN BAD")
