"""DKIM on the way out (issue 18): a message submitted to crepes.fr's magpied is signed before it is queued
(RSA and Ed25519, the keys `magpie domain add` makes) and arrives at hamburger.edu's magpied with signatures that
Debian's python3-dkim verifies against the records `magpie dns` publishes. A domain without keys sends
unsigned and says so in the log."""
import email
import email.policy
import re
import smtplib
import time

import dkim

from conftest import PASSWORD, Magpied, client_tls_context
from test_relay import queue_options

ALICE, CAROL, BOB = "alice@crepes.fr", "carol@galettes.fr", "bob@hamburger.edu"


def published_keys(server, domain):
    """{b"selector._domainkey.domain.": b"v=DKIM1; ..."} from `magpie dns DOMAIN`, as a resolver would return."""
    out = server.magpie("dns", domain, "--address", "127.0.0.1").stdout.decode()
    keys = {}
    for match in re.finditer(r'^(\S+\._domainkey\.\S+)\s+\d+\s+IN\s+TXT\s+(\(.*?\)|"[^\n]*")', out, re.M | re.S):
        keys[match.group(1).encode()] = "".join(re.findall(r'"([^"]*)"', match.group(2))).encode()
    return keys


def submit(server, sender, subject):
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as client:
        client.ehlo("laptop.crepes.fr")
        client.starttls(context=client_tls_context())
        client.ehlo("laptop.crepes.fr")
        client.login(sender, PASSWORD)
        client.sendmail(sender, [BOB], (f"From: <{sender}>\r\nTo: Bob <{BOB}>\r\nSubject: {subject}\r\n\r\n"
                                        "Bonjour Bob,\r\nles crepes sont pretes.\r\n").encode())


def test_submitted_mail_arrives_signed_and_python_dkim_verifies_both_signatures(tmp_path):
    (tmp_path / "hamburger").mkdir()
    (tmp_path / "crepes").mkdir()
    hamburger = Magpied(tmp_path / "hamburger", hostname="mx.hamburger.edu")
    hamburger.magpie("domain", "add", "hamburger.edu")
    hamburger.add_user(BOB)
    hamburger.start()
    crepes = None
    try:
        # Every domain goes to hamburger's port: no DNS, loopback only.
        crepes = Magpied(tmp_path / "crepes", hostname="mx.crepes.fr",
                         sections={"submission": {"listen": ["127.0.0.1:0"]}, "queue": queue_options(),
                                   "queue.smart_host": {"host": "127.0.0.1", "port": hamburger.ports["smtp"]}})
        crepes.magpie("domain", "add", "crepes.fr")  # makes its RSA and Ed25519 keys
        crepes.magpie("domain", "add", "--no-dkim", "galettes.fr")  # has none
        crepes.add_user(ALICE)
        crepes.add_user(CAROL)
        keys = published_keys(crepes, "crepes.fr")
        assert len(keys) == 2, keys
        crepes.start()

        submit(crepes, ALICE, "Signed")
        submit(crepes, CAROL, "Unsigned")
        deadline = time.time() + 60
        while time.time() < deadline and len(hamburger.uids(BOB)) < 2:
            time.sleep(0.2)
        assert len(hamburger.uids(BOB)) == 2, crepes.log_text()[-3000:]
        arrived = {}
        for uid in hamburger.uids(BOB):
            stored = hamburger.export(BOB, "INBOX", uid=uid)
            arrived[re.search(rb"\r\nSubject: (\w+)\r\n", stored).group(1)] = stored

        signed = arrived[b"Signed"]
        header = signed.split(b"\r\n\r\n", 1)[0]
        # Both algorithms of RFC 8463 8, for crepes.fr (the From domain DMARC aligns on).
        assert header.count(b"\r\nDKIM-Signature: ") == 2, header
        assert b"a=rsa-sha256" in header and b"a=ed25519-sha256" in header and b"d=crepes.fr" in header

        def dns(name, timeout=5):
            return keys.get(name)

        verifier = dkim.DKIM(signed)
        assert verifier.verify(idx=0, dnsfunc=dns), "first signature"
        assert verifier.verify(idx=1, dnsfunc=dns), "second signature"
        # And not a signature that verifies anything: a changed body fails.
        tampered = signed.replace(b"les crepes sont pretes", b"les crepes sont froides")
        assert not dkim.verify(tampered, dnsfunc=dns)

        assert b"DKIM-Signature" not in arrived[b"Unsigned"]
        assert "sent unsigned: no DKIM key for its From domain" in crepes.log_text()
    finally:
        if crepes is not None:
            crepes.stop()
        hamburger.stop()


def test_signed_8bit_mail_verifies_at_a_peer_without_8bitmime(tmp_path):
    """RFC 6376 5.3: an 8-bit message is signed in the 7-bit form a peer without 8BITMIME must get (RFC 6152
    3), so the re-encoding our client would otherwise do after signing never breaks the body hash."""
    from peers import free_port
    from test_relay import SevenBitSink

    port = free_port()
    sink = SevenBitSink("127.0.0.1", port)
    crepes = Magpied(tmp_path, hostname="mx.crepes.fr",
                     sections={"submission": {"listen": ["127.0.0.1:0"]}, "queue": queue_options(),
                               "queue.smart_host": {"host": "127.0.0.1", "port": port}})
    crepes.magpie("domain", "add", "crepes.fr")
    crepes.add_user(ALICE)
    keys = published_keys(crepes, "crepes.fr")
    crepes.start()
    try:
        text = "Gr\xfc\xdfe aus Paris: cr\xeapes, caf\xe9, na\xefve \u2014 \u20ac 5\r\n.\r\nfin\r\n"
        with smtplib.SMTP("127.0.0.1", crepes.ports["submission"], timeout=30) as client:
            client.ehlo("laptop.crepes.fr")
            client.starttls(context=client_tls_context())
            client.ehlo("laptop.crepes.fr")
            client.login(ALICE, PASSWORD)
            client.sendmail(ALICE, [BOB], (f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: Huit bits\r\n"
                                           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                           "Content-Transfer-Encoding: 8bit\r\n\r\n" + text).encode(),
                            mail_options=["BODY=8BITMIME"])
        deadline = time.time() + 60
        while time.time() < deadline and not sink.messages:
            time.sleep(0.2)
        assert sink.messages, crepes.log_text()[-3000:]
        received = sink.messages[0]
        assert all(b < 0x80 for b in received), "8-bit octets reached a peer without 8BITMIME"
        header = received.split(b"\r\n\r\n", 1)[0]
        assert header.count(b"\r\nDKIM-Signature: ") + header.startswith(b"DKIM-Signature: ") == 2, header
        assert re.search(rb"\r\nContent-Transfer-Encoding: (quoted-printable|base64)(\r\n|$)", header, re.I), header

        def dns(name, timeout=5):
            return keys.get(name)

        verifier = dkim.DKIM(received)
        assert verifier.verify(idx=0, dnsfunc=dns), "RSA signature of what the 7-bit peer received"
        assert verifier.verify(idx=1, dnsfunc=dns), "Ed25519 signature of what the 7-bit peer received"
        got = email.message_from_bytes(received, policy=email.policy.default)
        assert got.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n")
    finally:
        crepes.stop()
        sink.close()
