#!/usr/bin/python3
"""APPEND from a client that never sets TCP_NODELAY (Python's imaplib), magpied against Dovecot, one client each,
in alternating rounds:
  bench/append_nagle.py [APPENDS]
imaplib writes an APPEND's literal and then its CRLF in two writes; Nagle holds the CRLF until the literal is
acknowledged, so a server that lets Linux delay that ACK (40 ms on an interactive connection) takes 40 ms an
APPEND whatever its store does. Prints milliseconds per APPEND (a 70-byte message, plain IMAP on loopback) for
each round and the medians. ROUNDS (environment, default 3) sets the rounds. magpied is build-release's; both
servers are stopped by PID at the end."""
import imaplib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

MESSAGE = b"From: me@bench.test\r\nSubject: append\r\nMessage-ID: <append@bench.test>\r\n\r\nbody\r\n"


def ms_per_append(host, port, count):
    client = imaplib.IMAP4(host, port)
    try:
        client.login(R.USER, "bench password")
        start = time.monotonic()
        for _ in range(count):
            typ, _ = client.append("INBOX", None, None, MESSAGE)
            assert typ == "OK", typ
        return 1000 * (time.monotonic() - start) / count
    finally:
        client.logout()


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rounds = int(os.environ.get("ROUNDS", "3"))
    root = R.instance_dir("magpie-append-")
    (root / "magpied").mkdir()
    magpied = R.Magpied(root / "magpied", R.free_port(), R.free_port())
    dovecot = R.Dovecot({R.USER: "bench password"}, host="127.0.0.6")
    try:
        magpied.setup()
        magpied.start()
        dovecot.start()
        servers = {"magpied": (magpied.host, magpied.imap_port), "Dovecot": ("127.0.0.6", dovecot.port)}
        results = {name: [] for name in servers}
        for r in range(rounds):
            for name in (list(servers) if r % 2 == 0 else list(servers)[::-1]):
                figure = ms_per_append(*servers[name], count)
                results[name].append(figure)
                print(f"{name} round {r}: {figure:.2f} ms per APPEND", flush=True)
        for name, figures in results.items():
            print(f"{name}: median {statistics.median(figures):.2f} ms per APPEND "
                  f"({min(figures):.2f}-{max(figures):.2f}) over {count} APPENDs a round")
    finally:
        magpied.stop()
        dovecot.stop()


if __name__ == "__main__":
    main()
