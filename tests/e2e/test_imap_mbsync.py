"""mbsync (Debian's isync) syncs a mailbox of a few thousand messages both ways against magpied, then again
after flag changes on each side, and the two copies agree."""
import email
import imaplib
import re
import shutil
import smtplib
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import DOMAIN, PASSWORD, client_tls_context

ALICE = f"alice@{DOMAIN}"
FROM_SERVER, FROM_LOCAL = 1500, 1500


def deliver_many(port, count, workers=4):
    def work(start):
        with smtplib.SMTP("127.0.0.1", port) as client:
            for i in range(start, count, workers):
                client.sendmail("bulk@remote.example", [ALICE],
                                f"From: bulk@remote.example\r\nSubject: server {i}\r\n"
                                f"Message-ID: <server-{i}@remote.example>\r\n\r\nbody {i}\r\n".encode())
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def local_messages(maildir: Path):
    """Message-ID -> maildir flags, for every message in the local INBOX."""
    out = {}
    for sub in ("cur", "new"):
        for path in (maildir / sub).iterdir():
            message_id = email.message_from_bytes(path.read_bytes())["Message-ID"]
            flags = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            out[message_id] = set(flags) & set("DFRST")
    return out


IMAP_TO_MAILDIR = {b"\\Draft": "D", b"\\Flagged": "F", b"\\Answered": "R", b"\\Seen": "S", b"\\Deleted": "T"}


def server_messages(server):
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())
    client.login(ALICE, PASSWORD)
    client.select("INBOX", readonly=True)
    typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    client.logout()
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).split())
        message_id = email.message_from_bytes(item[1])["Message-ID"]
        out[message_id] = {IMAP_TO_MAILDIR[f] for f in flags if f in IMAP_TO_MAILDIR}
    return out


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync is installed by scripts/install-deps.sh")
def test_mbsync_both_ways_with_flag_changes(make_server, tmp_path):
    server = make_server()
    deliver_many(server.smtp_port, FROM_SERVER)

    maildir = tmp_path / "mail" / "INBOX"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for i in range(FROM_LOCAL):
        (maildir / "new" / f"1700000000.local{i}.host").write_bytes(
            f"From: me@example.test\r\nSubject: local {i}\r\nMessage-ID: <local-{i}@example.test>\r\n\r\n"
            f"local body {i}\r\n".encode())

    config = tmp_path / "mbsyncrc"
    config.write_text(f"""IMAPAccount magpie
Host localhost
Port {server.imaps_port}
User {ALICE}
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {server.workdir / 'cert.pem'}

IMAPStore remote
Account magpie

MaildirStore local
Path {tmp_path / 'mail'}/
Inbox {maildir}

Channel inbox
Far :remote:INBOX
Near :local:INBOX
Create Both
Expunge Both
Sync All
SyncState *
""")

    def sync():
        result = subprocess.run(["mbsync", "-c", str(config), "inbox"], capture_output=True, timeout=600)
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()

    sync()
    remote, local = server_messages(server), local_messages(maildir)
    assert len(remote) == FROM_SERVER + FROM_LOCAL
    assert set(remote) == set(local)

    # Flags changed on each side, then synced again.
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())
    client.login(ALICE, PASSWORD)
    client.select("INBOX")
    client.store("1:100", "+FLAGS", "(\\Flagged)")
    client.logout()
    changed = 0
    everything = sorted(list((maildir / "cur").iterdir()) + list((maildir / "new").iterdir()), key=lambda p: p.name)
    for path in everything[-100:]:
        base, _, flags = path.name.partition(":2,")
        # A message a reader has seen lives in cur/ with the S flag (the maildir convention).
        path.rename(maildir / "cur" / f"{base}:2,{''.join(sorted(set(flags) | {'S'}))}")
        changed += 1
    assert changed == 100
    sync()
    remote, local = server_messages(server), local_messages(maildir)
    assert remote == local
    assert sum("F" in f for f in remote.values()) >= 100 and sum("S" in f for f in remote.values()) >= 100
