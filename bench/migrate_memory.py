#!/usr/bin/python3
"""Peak memory of `magpie migrate` both ways on a store of N messages (issue 16: a store of any size migrates in
bounded memory). Builds an embedded store by SMTP (smtp-source into a release magpied), starts a throw-away
PostgreSQL (bench/run.py's BenchPostgres: loopback only, stopped by PID), then times each `magpie` given:

    bench/migrate_memory.py [--messages 20000] [--size 4096] MAGPIE [MAGPIE ...]

(each MAGPIE a binary, with options of its own if quoted: "build-release/src/cli/magpie --batch-rows 100000")
and prints, per binary, the wall time and peak RSS (ru_maxrss of the process) of SQLite -> PostgreSQL and
PostgreSQL -> SQLite. Pass an older build's magpie beside the new one to compare them on the same store.
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402


def timed(cmd):
    """(seconds, peak RSS in MiB) of one command, which must succeed."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.decode(errors='replace')[-1000:]}")
    print(out.decode().strip(), flush=True)
    return seconds, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("magpie", nargs="+", help="magpie binaries to compare")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    root = run.instance_dir("magpie-bench-migrate-")
    pg = None
    magpied = None
    try:
        (root / "source").mkdir()
        magpied = run.Magpied(root / "source", run.free_port(), run.free_port())
        magpied.setup()
        magpied.start()
        for sent in range(0, args.messages, 5000):
            run.smtp_source("127.0.0.1", magpied.port, 10, min(5000, args.messages - sent), args.size)
        deadline = time.monotonic() + run.DEADLINE
        while magpied.stored() < args.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        stored = magpied.stored()
        magpied.stop()
        magpied = None
        print(f"store of {stored} messages of {args.size} bytes: "
              f"{run.bytes_on_disk(root / 'source' / 'data') / 2**20:.0f} MiB on disk", flush=True)
        pg = run.BenchPostgres()
        for i, magpie in enumerate(args.magpie):
            binary, *extra = shlex.split(magpie)
            dsn = pg.create_database(f"migrate_{i}")
            there = timed([binary, "migrate", "--from", str(root / "source" / "data"), "--to", dsn, *extra])
            back = timed([binary, "migrate", "--from", dsn, "--to", str(root / f"back{i}"), *extra])
            print(f"{magpie}: SQLite -> PostgreSQL {there[0]:.1f} s, peak RSS {there[1]:.0f} MiB; "
                  f"PostgreSQL -> SQLite {back[0]:.1f} s, peak RSS {back[1]:.0f} MiB", flush=True)
    finally:
        if magpied:
            magpied.stop()
        if pg:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
