"""Durable before acknowledged: every message that got a 250 survives SIGKILL of magpied, whole, and the store
stays consistent (`magpie check`). A killed process keeps its page cache, so the kill alone cannot prove an
fsync happened: a second test counts fsync/fdatasync calls per acknowledged message under strace."""
import mailbox
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from conftest import DOMAIN, Magpied

ALICE = f"alice@{DOMAIN}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body_for(tag):
    # Large enough that a torn write would show, varied so that blobs differ.
    return "".join(f"{tag} line {i:03d} {'x' * (i % 50)}\r\n" for i in range(40)) + f"END-{tag}\r\n"


def make_message(tag):
    return (f"From: load@remote.example\r\nTo: {ALICE}\r\nSubject: {tag}\r\n"
            f"Message-ID: <{tag}@remote.example>\r\n\r\n{body_for(tag)}").encode()


def sender(port, worker, acked, stop, lock):
    n = 0
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                while not stop.is_set():
                    tag = f"crash-{worker}-{n}"
                    n += 1
                    client.sendmail("load@remote.example", [ALICE], make_message(tag))
                    with lock:
                        acked.append(tag)  # only after the 250 for DATA
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # magpied is down: try again until it is back


def test_sigkill_loses_no_acknowledged_message(tmp_path):
    port = free_port()
    workdir = tmp_path / "crash"
    workdir.mkdir()
    server = Magpied(workdir, tls=False)
    server.config.write_text(server.config.read_text().replace('"127.0.0.1:0"', f'"127.0.0.1:{port}"', 1))
    server.magpie("domain", "add", DOMAIN)
    server.add_user(ALICE)
    server.start()

    acked, lock, stop = [], threading.Lock(), threading.Event()
    workers = [threading.Thread(target=sender, args=(port, w, acked, stop, lock)) for w in range(6)]
    for w in workers:
        w.start()

    def wait_for_acks(total):
        # The deadline only guards against a hang; a slow machine just waits longer (tests never assert rates).
        deadline = time.time() + 600
        while len(acked) < total and time.time() < deadline:
            time.sleep(0.05)
        return len(acked) >= total

    kills = 0
    try:
        for _ in range(4):
            # Kill while the six senders are mid-transaction: only after this run of magpied acknowledged
            # at least 100 messages of its own.
            assert wait_for_acks(len(acked) + 100), f"magpied stopped acknowledging after {len(acked)} messages"
            server.kill()
            kills += 1
            server.start()
        assert wait_for_acks(1000), f"magpied stopped acknowledging after {len(acked)} messages"
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert kills == 4
    assert server.stop() == 0

    print(f"crash test: {len(acked)} messages acknowledged across {kills} SIGKILLs")
    check = server.magpie("check", check=False)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()

    mbox_path = workdir / "inbox.mbox"
    mbox_path.write_bytes(server.export(ALICE))
    stored = {}
    for msg in mailbox.mbox(str(mbox_path)):
        stored.setdefault(msg["Subject"], []).append(msg.get_payload())
    missing = [tag for tag in acked if tag not in stored]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    for tag in acked:
        # mboxrd export turns CRLF into LF
        assert stored[tag][0] == body_for(tag).replace("\r\n", "\n"), f"{tag} is not whole"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is installed by scripts/install-deps.sh")
@pytest.mark.backend("sqlite", reason="traces magpied's own fsyncs; on PostgreSQL the fsync is the database server's, and an acknowledgement follows COMMIT")
def test_every_acknowledgement_is_preceded_by_fsync(tmp_path):
    workdir = tmp_path / "fsync"
    workdir.mkdir()
    server = Magpied(workdir, tls=False)
    server.magpie("domain", "add", DOMAIN)
    server.add_user(ALICE)
    trace = workdir / "strace.txt"
    import conftest
    real = conftest.MAGPIED
    wrapper = workdir / "magpied-under-strace"
    wrapper.write_text(f"#!/bin/sh\nexec strace -f -c -o {trace} -e trace=fsync,fdatasync {real} \"$@\"\n")
    wrapper.chmod(0o755)
    conftest.MAGPIED = wrapper
    try:
        server.start(timeout=60)
    finally:
        conftest.MAGPIED = real
    count = 20
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        for i in range(count):  # one at a time: no two acknowledgements can share a group commit
            client.sendmail("s@remote.example", [ALICE], make_message(f"fsync-{i}"))
    # Stop magpied itself (the child of strace) so that strace writes its summary.
    children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    for pid in children:
        subprocess.run(["kill", "-TERM", pid])
    server.proc.wait(timeout=60)
    server.log.close()
    summary = trace.read_text()
    calls = 0
    for line in summary.splitlines():
        fields = line.split()
        if fields and fields[-1] in ("fsync", "fdatasync"):
            calls += int(fields[3])  # % time, seconds, usecs/call, calls, [errors,] syscall
    print(f"fsync test: {calls} fsync/fdatasync calls for {count} sequential acknowledged messages")
    assert calls >= count, f"{calls} fsync calls for {count} sequential acknowledged messages:\n{summary}"
    assert len(server.uids(ALICE)) == count
