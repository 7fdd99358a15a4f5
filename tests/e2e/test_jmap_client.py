"""A JMAP client nobody here wrote (jmap-jam, from the npm registry, pinned in
tests/e2e/jmap-client/package-lock.json) drives a real magpied: lists mailboxes, queries the inbox and
fetches bodies, uploads an attachment, creates a draft with it and submits it, moving it to Sent. The
node script prints what it saw; this test checks it and the recipient's mailbox."""
import json
import shutil
import smtplib
import subprocess
from pathlib import Path

import pytest

from test_jmap import ALICE, BOB, HTTP_LIMITS, http_port

CLIENT = Path(__file__).parent / "jmap-client"


@pytest.fixture(scope="module")
def jam_installed():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the third-party JMAP client test")
    import fcntl
    import tempfile
    # One `npm ci` at a time: the suite's parallel workers (and its two backends) share this checkout.
    with open(Path(tempfile.gettempdir()) / "magpie-jmap-client-npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (CLIENT / "node_modules" / "jmap-jam").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True, capture_output=True,
                           timeout=300)
    return CLIENT


def test_jmap_jam_lists_queries_fetches_uploads_creates_and_submits(make_server, jam_installed):
    server = make_server(sections={"http": HTTP_LIMITS})
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("carol@remote.test", [ALICE],
                      b"From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nSubject: Lunch?\r\n\r\n"
                      b"Shall we meet at noon?\r\n")
    token = server.magpie("token", "add", ALICE, "jam").stdout.decode().strip()
    url = f"http://127.0.0.1:{http_port(server)}/.well-known/jmap"
    run = subprocess.run(["node", "client.mjs", url, token, BOB], cwd=jam_installed, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode(errors="replace") + run.stdout.decode(errors="replace")
    seen = json.loads(run.stdout)
    assert ["INBOX", "inbox"] in seen["mailboxes"] and ["Sent", "sent"] in seen["mailboxes"]
    assert seen["upload"] == {"size": len("attached by jmap-jam\n"), "type": "text/plain"}
    assert seen["identity"] == ALICE
    if seen.get("emailsUnsupported"):
        pytest.skip("this build's store has no Email implementation yet (the email branch): query, fetch, "
                    "create and submit were not run")
    assert seen["inboxTotal"] == 1
    assert seen["inbox"] == [{"subject": "Lunch?", "from": "carol@remote.test", "text": "Shall we meet at noon?\r\n"}]
    assert seen["search"] == {"ids": 1, "preview": "Shall we meet at <mark>noon</mark>?"}
    assert seen["queryChanges"] == {"added": 0, "removed": 0, "same": True}
    assert seen["sent"] == {"inSent": True, "inDrafts": False, "keywords": ["$seen"], "attachments": ["note.txt"]}
    delivered = server.export(BOB, uid=1)
    assert b"Subject: Sent with jmap-jam" in delivered and b"note.txt" in delivered
    assert b"Hello from an npm JMAP client." in delivered
