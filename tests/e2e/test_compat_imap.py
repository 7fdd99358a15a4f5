"""Faults other IMAP servers were reported for (mox, Cyrus, Dovecot bug reports and iOS Mail's APPEND), tried
against magpied over raw IMAP: iOS 18.3 writes APPEND's date-time without the day's leading space (mox #279);
`UID FETCH 1:* (CHANGEDSINCE n VANISHED)` must report the expunged message that had the highest UID (Cyrus
#6071); with CONDSTORE on, a .SILENT STORE still reports the new MODSEQ and every untagged FETCH names the
UID (RFC 7162 3.1, as Dovecot and mox answer)."""
import re

from test_imap import RawImap

MESSAGE = b"From: a@remote.example\r\nSubject: compat\r\n\r\nbody\r\n"


def append(imap, mailbox, extra=b""):
    reply = imap.command(b"APPEND " + mailbox + extra + b" {%d+}\r\n" % len(MESSAGE) + MESSAGE)
    assert b" OK [APPENDUID" in reply, reply
    return reply


def test_append_takes_the_one_digit_day_ios_mail_writes(server):
    imap = RawImap(server)
    append(imap, b"INBOX", b' (\\Seen) "3-Feb-2025 18:28:47 +0000"')
    append(imap, b"INBOX", b' " 4-Feb-2025 18:28:47 +0000"')
    imap.command(b"SELECT INBOX")
    dates = imap.command(b"FETCH 1:2 (INTERNALDATE)")
    assert b'INTERNALDATE "03-Feb-2025 18:28:47 +0000"' in dates, dates
    assert b'INTERNALDATE "04-Feb-2025 18:28:47 +0000"' in dates, dates


def test_vanished_earlier_reports_the_highest_expunged_uid(server):
    imap = RawImap(server)
    for _ in range(3):
        append(imap, b"INBOX")
    imap.command(b"ENABLE QRESYNC")
    selected = imap.command(b"SELECT INBOX")
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", selected).group(1))
    imap.command(b"UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    assert b"* VANISHED 3\r\n" in imap.command(b"UID EXPUNGE 3")
    other = RawImap(server)
    other.command(b"ENABLE QRESYNC")
    other.command(b"SELECT INBOX")
    answer = other.command(b"UID FETCH 1:* (UID) (CHANGEDSINCE %d VANISHED)" % modseq)
    assert b"* VANISHED (EARLIER) 3\r\n" in answer, answer


def test_condstore_store_reports_uid_and_modseq_even_when_silent(server):
    imap = RawImap(server)
    append(imap, b"INBOX")
    imap.command(b"ENABLE CONDSTORE")
    selected = imap.command(b"SELECT INBOX")
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", selected).group(1))
    silent = imap.command(b"STORE 1 +FLAGS.SILENT (\\Answered)")
    assert re.search(rb"\* 1 FETCH \(UID 1 MODSEQ \((\d+)\)\)\r\n", silent), silent
    assert int(re.search(rb"MODSEQ \((\d+)\)", silent).group(1)) > modseq
    other = RawImap(server)
    other.command(b"SELECT INBOX")
    other.command(b"STORE 1 +FLAGS (\\Flagged)")
    seen = imap.command(b"NOOP")
    assert re.search(rb"\* 1 FETCH \(UID 1 FLAGS \([^)]*\\Flagged[^)]*\) MODSEQ \(\d+\)\)", seen), seen
