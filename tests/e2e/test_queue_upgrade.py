"""The upgrade from the interim queue file (issue 11): a <data_dir>/queue.db written by a magpie before store
schema version 6 is imported once when magpied starts (unfinished entries with their state; finished ones
were only the tracker's memory) and renamed, so an upgrade loses no queued mail."""
import sqlite3

import pytest

from conftest import Magpied

pytestmark = pytest.mark.backend("sqlite", reason="the interim queue.db was the embedded store's")

# The interim queue file's schema exactly as magpie before schema version 6 wrote it.
FROZEN_QUEUE_DB = """
CREATE TABLE queue_entry(id INTEGER PRIMARY KEY, reverse_path TEXT NOT NULL, dsn_ret TEXT NOT NULL,
  dsn_envid TEXT NOT NULL, smtputf8 INTEGER NOT NULL, queued_at INTEGER NOT NULL, held INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL, content BLOB NOT NULL, lease_owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0);
CREATE TABLE queue_recipient(id INTEGER PRIMARY KEY,
  entry_id INTEGER NOT NULL REFERENCES queue_entry(id) ON DELETE CASCADE, address TEXT NOT NULL,
  notify TEXT NOT NULL, orcpt TEXT NOT NULL, state TEXT NOT NULL, next_attempt_at INTEGER NOT NULL,
  failed_attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT '', last_reply TEXT NOT NULL DEFAULT '',
  remote_mta TEXT NOT NULL DEFAULT '', last_attempt_at INTEGER NOT NULL DEFAULT 0,
  delay_notified INTEGER NOT NULL DEFAULT 0);
CREATE TABLE queue_attempt(id INTEGER PRIMARY KEY,
  recipient_id INTEGER NOT NULL REFERENCES queue_recipient(id) ON DELETE CASCADE, at INTEGER NOT NULL,
  host TEXT NOT NULL, address TEXT NOT NULL, tls TEXT NOT NULL, reply TEXT NOT NULL, connection TEXT NOT NULL,
  transcript TEXT NOT NULL);
"""


def test_an_old_queue_db_is_imported_once_at_start_up(tmp_path):
    server = Magpied(tmp_path, tls=False, sections={"queue": {"enabled": False}})
    server.magpie("domain", "add", "crepes.fr")
    content = b"From: alice@crepes.fr\r\nTo: bob@hamburger.edu\r\nSubject: Waiting since before\r\n\r\nhi\r\n"
    db = sqlite3.connect(server.data / "queue.db")
    db.executescript(FROZEN_QUEUE_DB)
    db.execute("INSERT INTO queue_entry VALUES (7, 'alice@crepes.fr', '', '', 0, 1790000000, 0, ?, ?, NULL, 0)",
               (len(content), content))
    db.execute("INSERT INTO queue_recipient VALUES (70, 7, 'bob@hamburger.edu', '', '', 'deferred', 1790000600, 3, "
               "'4.4.1', 'connection refused', 'mx.hamburger.edu', 1790000300, 0)")
    db.execute("INSERT INTO queue_entry VALUES (8, 'alice@crepes.fr', '', '', 0, 1790000000, 0, 4, 'done', NULL, 0)")
    db.execute("INSERT INTO queue_recipient VALUES (80, 8, 'carol@hamburger.edu', '', '', 'delivered', 0, 0, "
               "'2.0.0', '250 ok', 'mx.hamburger.edu', 1790000300, 0)")
    db.commit()
    db.close()

    server.start()
    try:
        assert "imported 1 unfinished entries from queue.db" in server.log_text()
        assert not (server.data / "queue.db").exists() and (server.data / "queue.db.imported").exists()
        listing = server.magpie("queue", "list").stdout.decode()
        assert "bob@hamburger.edu deferred" in listing and "connection refused" in listing, listing
        assert "carol@" not in listing
        entry = listing.split()[0]
        shown = server.magpie("queue", "show", entry).stdout.decode()
        assert "4.4.1" in shown and "Subject" not in shown  # the tracker shows no message text
    finally:
        server.stop()

    # A restart imports nothing more: the file was renamed.
    server.start()
    try:
        assert server.magpie("queue", "list").stdout.decode().count("bob@hamburger.edu") == 1
    finally:
        server.stop()
