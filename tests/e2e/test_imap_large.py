"""Large messages over IMAP (issue 12 item 15): a 30 MB message APPENDed with imaplib and fetched whole, by
section and as BINARY by five imaplib clients at once. Every byte must arrive right, and magpied's memory
must not grow with the message size times the clients: FETCH streams literals from the blob in slices of
[imap] output_slice_octets. The growth is read from the kernel's own high-water mark (VmHWM, reset through
/proc/PID/clear_refs), so the check is about memory, never about timing."""
import base64
import hashlib
import imaplib
import os
import random
import re
import threading
from pathlib import Path

from conftest import DOMAIN, PASSWORD, client_tls_context

ALICE = f"alice@{DOMAIN}"
ATTACHMENT_OCTETS = 22 * 1024 * 1024  # base64 makes the message about 30 MB
CLIENTS = 5


def big_message():
    attachment = random.Random(15).randbytes(ATTACHMENT_OCTETS)
    encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    message = (b"From: Big <big@example.test>\r\nTo: Alice <" + ALICE.encode() + b">\r\n"
               b"Subject: thirty megabytes\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
               b"--b\r\nContent-Type: text/plain\r\n\r\nThe attachment follows.\r\n"
               b"--b\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b--\r\n")
    return message, attachment


def memory_kib(pid, field):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))


def login(server):
    client = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context())
    client.login(ALICE, PASSWORD)
    return client


def literal_of(data, name):
    """The literal of FETCH item `name` in an imaplib FETCH answer."""
    for item in data:
        if isinstance(item, tuple) and item[0].rstrip().endswith(b"}") and name in item[0]:
            return item[1]
    raise AssertionError(f"{name!r} not in {[i[0] if isinstance(i, tuple) else i for i in data]}")


def test_five_clients_fetch_a_30_mb_message_in_bounded_memory(make_server, monkeypatch):
    # Under AddressSanitizer (the test build) freed memory waits in a quarantine of 256 MB to catch use after
    # free, which would count every slice ever written; a small one leaves the memory the server really holds.
    monkeypatch.setenv("ASAN_OPTIONS", ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                               "quarantine_size_mb=1"])))
    server = make_server()
    message, attachment = big_message()
    assert len(message) > 30_000_000
    client = login(server)
    pid = server.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before_append = memory_kib(pid, "VmRSS")
    typ, data = client.append("INBOX", None, None, message)
    assert typ == "OK", data
    append_growth_mb = (memory_kib(pid, "VmHWM") - before_append) / 1024
    client.logout()
    # A fresh process, so the APPEND's own buffers are not counted either way.
    server.stop()
    server.start()

    client = login(server)
    client.select("INBOX", readonly=True)
    typ, data = client.fetch("1", "(RFC822.SIZE BINARY.SIZE[2])")
    assert typ == "OK"
    assert f"RFC822.SIZE {len(message)}".encode() in data[0]
    assert f"BINARY.SIZE[2] {len(attachment)}".encode() in data[0]
    client.logout()

    pid = server.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from the current RSS
    baseline = memory_kib(pid, "VmRSS")
    want_message = hashlib.sha256(message).hexdigest()
    want_text = hashlib.sha256(message[-40 - 2_000_000:-40]).hexdigest()
    want_attachment = hashlib.sha256(attachment).hexdigest()
    errors = []

    def fetch(n):
        try:
            c = login(server)
            c.select("INBOX", readonly=True)
            # Each client asks for the whole message and a slice of it; two also ask for the decoded part.
            items = "(BODY.PEEK[] BODY.PEEK[TEXT]<%d.2000000>)" % (len(message) - 40 - 2_000_000 -
                                                                  message.index(b"\r\n\r\n") - 4)
            if n % 2 == 0:
                items = items[:-1] + " BINARY.PEEK[2])"
            typ, data = c.fetch("1", items)
            assert typ == "OK", data
            assert hashlib.sha256(literal_of(data, b"BODY[]")).hexdigest() == want_message
            assert hashlib.sha256(literal_of(data, b"BODY[TEXT]<")).hexdigest() == want_text
            if n % 2 == 0:
                assert hashlib.sha256(literal_of(data, b"BINARY[2]")).hexdigest() == want_attachment
            c.logout()
        except Exception as error:  # reported by the main thread
            errors.append(f"client {n}: {error!r}")

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    peak = memory_kib(pid, "VmHWM")
    growth_mb = (peak - baseline) / 1024
    print(f"\nmagpied RSS during the APPEND of the {len(message) / 1e6:.1f} MB message: growth {append_growth_mb:.1f} MB")
    print(f"magpied RSS: {baseline / 1024:.1f} MB before, peak {peak / 1024:.1f} MB while {CLIENTS} clients "
          f"fetched a {len(message) / 1e6:.1f} MB message: growth {growth_mb:.1f} MB")
    # Holding the message whole once per client would take 5 x 30 MB and more; streamed, the five sessions
    # together stay below a single copy of it.
    assert growth_mb < len(message) / 1024 / 1024, f"RSS grew {growth_mb:.1f} MB"
