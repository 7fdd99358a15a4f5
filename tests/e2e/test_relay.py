"""The seed's scenario on one machine: crepes.fr (alice, 127.0.0.2) sends to hamburger.edu (bob, 127.0.0.3),
both magpied on port 25 inside a network namespace of the test's own, hamburger.edu found by its MX record
in a local dnsmasq. Mail enters crepes.fr's outgoing queue with `magpie queue add` (submission comes later)."""
import email
import email.policy
import imaplib
import re
import signal
import socket
import threading
import time

import pytest

from conftest import PASSWORD, Magpied, client_tls_context

CREPES, HAMBURGER = "127.0.0.2", "127.0.0.3"
DNS = "127.0.0.53"
ALICE, BOB = "alice@crepes.fr", "bob@hamburger.edu"
RECORDS = ["mx-host=hamburger.edu,mx.hamburger.edu,10", f"host-record=mx.hamburger.edu,{HAMBURGER}",
           "mx-host=crepes.fr,mx.crepes.fr,10", f"host-record=mx.crepes.fr,{CREPES}"]


def queue_options(**extra):
    options = {"resolver": DNS, "poll_interval": 1, "retry_intervals": [2], "idle_keep": 2,
               "connect_timeout": 5, "command_timeout": 20}
    options.update(extra)
    return options


def make(tmp_path, name, host, domain, users, queue=None):
    workdir = tmp_path / name
    workdir.mkdir()
    server = Magpied(workdir, host=host, smtp_port=25, hostname=f"mx.{domain}",
                     sections={"queue": queue or queue_options()})
    server.magpie("domain", "add", domain)
    for user in users:
        server.add_user(f"{user}@{domain}")
    return server


@pytest.fixture
def world(tmp_path, network_namespace, dnsmasq):
    dnsmasq.start(RECORDS)
    servers = {}

    def factory(name, queue=None):
        if name == "crepes":
            server = make(tmp_path, "crepes", CREPES, "crepes.fr", ["alice"], queue)
        else:
            server = make(tmp_path, "hamburger", HAMBURGER, "hamburger.edu", ["bob"], queue)
        servers[name] = server
        return server

    yield factory
    for server in servers.values():
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def message(subject, body="Bonjour Bob,\r\nles cr\xeapes sont pr\xeates.\r\n", charset="utf-8"):
    return (f"From: Alice <{ALICE}>\r\nTo: Bob <{BOB}>\r\nSubject: {subject}\r\n"
            f"Date: Sun, 29 Nov 2026 20:00:00 +0000\r\nMessage-ID: <{abs(hash(subject))}@crepes.fr>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode("utf-8")


def queue_add(server, data, sender=ALICE, to=(BOB,)):
    path = server.workdir / f"msg-{time.time_ns()}.eml"
    path.write_bytes(data)
    args = ["queue", "add", "--from", sender]
    for rcpt in to:
        args += ["--to", rcpt]
    return int(server.magpie(*args, str(path)).stdout.decode().strip())


def show(server, entry):
    return server.magpie("queue", "show", str(entry)).stdout.decode()


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(server, entry, rcpt):
    match = re.search(rf"recipient {re.escape(rcpt)}: (\w+)", show(server, entry))
    return match.group(1) if match else None


def imap_messages(server, user, password=PASSWORD):
    client = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=client_tls_context())
    client.login(user, password)
    client.select("INBOX")
    _, data = client.search(None, "ALL")
    out = []
    for num in data[0].split():
        _, fetched = client.fetch(num, "(BODY.PEEK[])")
        out.append(fetched[0][1])
    client.logout()
    return out


def test_delivers_to_the_mx_and_bob_reads_it_over_imap(world):
    hamburger = world("hamburger").start()
    crepes = world("crepes").start()
    sent = message("Crepes")
    entry = queue_add(crepes, sent)
    wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", what="delivery")
    received = imap_messages(hamburger, BOB)
    assert len(received) == 1
    original = email.message_from_bytes(sent, policy=email.policy.default)
    got = email.message_from_bytes(received[0], policy=email.policy.default)
    assert got["Subject"] == "Crepes" and got["From"] == original["From"] and got["To"] == original["To"]
    assert got.get_content() == original.get_content()
    assert got["Return-Path"] == f"<{ALICE}>"
    record = show(crepes, entry)
    assert "host mx.hamburger.edu [127.0.0.3:25]" in record and "TLS TLSv1." in record
    assert "C: MAIL FROM:<alice@crepes.fr>" in record and re.search(r"S: 250", record)
