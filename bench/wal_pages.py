#!/usr/bin/python3
"""Which B-trees SMTP ingest writes, page by page (issue 17): magpied takes MESSAGES messages of SIZE bytes from
smtp-source over SESSIONS sessions; then, once it is idle, a copy of its write-ahead log is read frame by frame
(each frame is one database page: "The WAL File Format" in SQLite's file format document) and every page number
is named by the table or index that owns it (SQLite's dbstat table on a copy of the database).
  bench/wal_pages.py SESSIONS MESSAGES SIZE [BUILD_DIR]
Prints the frames and commits in the log since it last started again (a checkpoint restarts it, so this is the
tail of the run), frames per commit, and per table or index the pages it wrote per commit: a table keyed by
random values (SHA-256 blob ids, Message-IDs) takes about one page per message, one keyed by a growing
number one page per commit however many messages share it. BUILD_DIR holds server/magpied and cli/magpie
(build-release/src by default). The server is stopped by PID at the end; nothing listens beyond loopback."""
import collections
import shutil
import sqlite3
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WAL_HEADER = struct.Struct(">IIIIIIII")  # magic, version, page size, checkpoint sequence, salt-1, salt-2, checksum
FRAME_HEADER = struct.Struct(">IIII")   # page number, database size after a commit (0 otherwise), salt-1, salt-2
FRAME_HEADER_BYTES = 24


def frames_of(wal: bytes):
    """(page number, commit) of each frame of the log's current run: those carrying the header's salts."""
    if len(wal) < WAL_HEADER.size:
        return []
    _, _, page_size, _, salt1, salt2, _, _ = WAL_HEADER.unpack_from(wal)
    frames, offset = [], WAL_HEADER.size
    while offset + FRAME_HEADER_BYTES + page_size <= len(wal):
        page, commit, s1, s2 = FRAME_HEADER.unpack_from(wal, offset)
        if (s1, s2) != (salt1, salt2):
            break
        frames.append((page, commit != 0))
        offset += FRAME_HEADER_BYTES + page_size
    return frames


def main():
    sessions, messages, size = (int(a) for a in sys.argv[1:4])
    build = Path(sys.argv[4] if len(sys.argv) > 4 else ROOT / "build-release" / "src")
    R.MAGPIED, R.MAGPIE = build / "server" / "magpied", build / "cli" / "magpie"
    root = R.instance_dir("magpie-wal-pages-")
    server = None
    try:
        server = R.Magpied(root, R.free_port())
        server.magpie("domain", "add", "--no-dkim", R.DOMAIN)
        server.magpie("user", "add", R.USER, input=b"bench password\n")
        server.start()
        rate = R.measure(lambda: R.smtp_source("127.0.0.1", server.port, sessions, messages, size),
                         server.stored, messages)
        time.sleep(0.5)  # every commit answered: the log is still while it is copied
        copy = root / "copy"
        copy.mkdir()
        shutil.copy(server.data / "magpie.db-wal", copy / "wal")
        shutil.copy(server.data / "magpie.db", copy / "magpie.db")  # the log's pages are named from the file
    finally:
        if server:
            server.stop()
    frames = frames_of((copy / "wal").read_bytes())
    db = sqlite3.connect(copy / "magpie.db")
    owner = dict((page, name) for name, page in db.execute("SELECT name, pageno FROM dbstat"))
    db.close()
    shutil.rmtree(root, ignore_errors=True)
    commits = max(1, sum(1 for _, commit in frames if commit))
    print(f"{rate:.0f} msgs/s; the log's last run: {len(frames)} frames, {commits} commits, "
          f"{len(frames) / commits:.1f} frames per commit")
    for name, count in collections.Counter(owner.get(page, "(new page)") for page, _ in frames).most_common():
        print(f"  {name:34} {count / commits:5.2f} pages per commit")


if __name__ == "__main__":
    main()
