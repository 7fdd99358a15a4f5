"""SPF, DKIM and DMARC of mail received on port 25 (issue 18): a dnsmasq started here publishes the senders'
SPF, DKIM key and DMARC records; python3-dkim signs as a second implementation; the connecting address
(127.0.0.7 is allowed by SPF, 127.0.0.9 is not) decides SPF. Results are read back from the stored message's
Authentication-Results field; the policy is checked by where the message went or by the SMTP reply."""
import base64
import smtplib
import subprocess

import pytest

from conftest import DOMAIN, PASSWORD, Dnsmasq, client_tls_context, host_network

pytestmark = host_network  # dnsmasq on the fixed 127.0.0.153:53

ALICE = f"alice@{DOMAIN}"
ALLOWED, DENIED = "127.0.0.7", "127.0.0.9"
DNS_ADDRESS = "127.0.0.153"  # apart from conftest's 127.0.0.53, which other tests may hold


def txt(name, value):
    """A dnsmasq txt-record line; values over 255 octets are split into several strings (RFC 1035 3.3.14)."""
    parts = [value[i:i + 200] for i in range(0, len(value), 200)]
    return f"txt-record={name}," + ",".join(f'"{p}"' for p in parts)


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dkimkey")
    key = directory / "key.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return key.read_bytes(), "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


@pytest.fixture
def zone(tmp_path, rsa_key):
    server = Dnsmasq(tmp_path, address=DNS_ADDRESS, port=53)
    spf = f"v=spf1 ip4:{ALLOWED} -all"
    server.start(["local=/test/",
                  txt("sender.test", spf), txt("_dmarc.sender.test", "v=DMARC1; p=reject"),
                  txt("sel._domainkey.sender.test", rsa_key[1]),
                  txt("quarantined.test", spf), txt("_dmarc.quarantined.test", "v=DMARC1; p=quarantine"),
                  txt("relaxed.test", spf), txt("_dmarc.relaxed.test", "v=DMARC1; p=none")])
    yield server
    server.stop()


def receiver(make_server, policy="enforce", **extra):
    sections = {"mailauth": {"resolver": DNS_ADDRESS, "dmarc_policy": policy, **extra},
                "queue": {"enabled": False}}
    return make_server(sections=sections)


def message(sender, subject, body="Hello Alice,\r\nthe figures are attached.\r\n", extra=""):
    return (f"From: {sender}\r\nTo: {ALICE}\r\nSubject: {subject}\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@sender.test>\r\n{extra}\r\n{body}").encode()


def signed(rsa_key, raw):
    import dkim
    signature = dkim.sign(raw, b"sel", b"sender.test", rsa_key[0],
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return signature + raw


def send(server, source, sender, raw):
    with smtplib.SMTP("127.0.0.1", server.smtp_port, source_address=(source, 0), timeout=60) as client:
        client.ehlo("out.sender.test")
        return client.sendmail(sender, [ALICE], raw)


def stored_header(server, mailbox="INBOX"):
    uids = server.uids(ALICE, mailbox)
    assert uids, f"nothing in {mailbox}"
    return server.export(ALICE, mailbox, uid=uids[-1]).split(b"\r\n\r\n", 1)[0].decode()


def results(header):
    """The Authentication-Results fields of a header block, unfolded."""
    fields = header.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n")
    return [f for f in fields if f.lower().startswith("authentication-results:")]


def test_message_signed_by_python_dkim_from_an_allowed_address_passes_all_three(make_server, zone, rsa_key):
    server = receiver(make_server)
    send(server, ALLOWED, "bounce@sender.test", signed(rsa_key, message("ceo@sender.test", "Signed")))
    header = stored_header(server)
    [field] = results(header)
    assert field.startswith("Authentication-Results: mx.example.test;")
    assert "spf=pass smtp.mailfrom=sender.test" in field
    assert "dkim=pass header.d=sender.test header.s=sel" in field
    assert "dmarc=pass" in field and "header.from=sender.test" in field
    # Ours is a trace field: right under our own Received (Return-Path, Received, Authentication-Results).
    names = [line.split(":", 1)[0] for line in header.split("\r\n") if line[:1] not in (" ", "\t")]
    assert names[:3] == ["Return-Path", "Received", "Authentication-Results"], names


def test_tampered_signed_message_fails_dkim_but_aligned_spf_still_passes_dmarc(make_server, zone, rsa_key):
    server = receiver(make_server)
    raw = signed(rsa_key, message("ceo@sender.test", "Tampered"))
    raw = raw.replace(b"the figures are attached", b"pay the invoice to IBAN X")
    send(server, ALLOWED, "bounce@sender.test", raw)
    [field] = results(stored_header(server))
    assert "dkim=fail" in field and "header.d=sender.test" in field
    assert "spf=pass" in field and "dmarc=pass" in field


def test_spf_follows_the_connecting_address(make_server, zone):
    server = receiver(make_server)
    send(server, ALLOWED, "news@relaxed.test", message("news@relaxed.test", "From allowed"))
    [allowed] = results(stored_header(server))
    send(server, DENIED, "news@relaxed.test", message("news@relaxed.test", "From denied"))
    [denied] = results(stored_header(server))
    assert "spf=pass smtp.mailfrom=relaxed.test" in allowed and "dkim=none" in allowed
    assert "spf=fail smtp.mailfrom=relaxed.test" in denied
    # p=none: a DMARC failure is recorded, and the message delivered even under "enforce".
    assert "dmarc=fail" in denied


def test_dmarc_reject_is_enforced_with_550_at_end_of_data(make_server, zone):
    server = receiver(make_server)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, DENIED, "ceo@sender.test", message("ceo@sender.test", "Wire money"))
    assert refused.value.smtp_code == 550 and refused.value.smtp_error.startswith(b"5.7.1")
    assert b"DMARC" in refused.value.smtp_error
    assert server.uids(ALICE) == []


def test_dmarc_reject_is_only_recorded_by_default(make_server, zone):
    server = receiver(make_server, policy="record")
    send(server, DENIED, "ceo@sender.test", message("ceo@sender.test", "Wire money"))
    [field] = results(stored_header(server))
    assert "spf=fail" in field and "dmarc=fail" in field and "p=reject" in field


def test_dmarc_quarantine_is_filed_in_junk(make_server, zone):
    server = receiver(make_server)
    send(server, DENIED, "a@quarantined.test", message("a@quarantined.test", "Cheap pills"))
    assert server.uids(ALICE) == []
    [field] = results(stored_header(server, "Junk"))
    assert "dmarc=fail" in field


def test_forged_results_with_our_name_are_removed_and_others_kept(make_server, zone, rsa_key):
    server = receiver(make_server)
    forged = ("Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=sender.test;\r\n"
              "\tdkim=pass header.d=sender.test; dmarc=pass\r\n"
              "Authentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=relaxed.test\r\n")
    send(server, DENIED, "news@relaxed.test", message("news@relaxed.test", "Forged", extra=forged))
    fields = results(stored_header(server))
    ours = [f for f in fields if f.startswith("Authentication-Results: mx.example.test;")]
    assert len(ours) == 1 and "spf=fail" in ours[0] and "dkim=none" in ours[0]
    assert any(f.startswith("Authentication-Results: relay.elsewhere.test;") for f in fields)


def test_checks_turned_off_are_not_reported(make_server, zone):
    server = receiver(make_server, spf=False, dmarc=False)
    send(server, DENIED, "ceo@sender.test", message("ceo@sender.test", "No checks"))
    [field] = results(stored_header(server))
    assert "dkim=none" in field and "spf=" not in field and "dmarc=" not in field


def test_all_checks_off_still_removes_forged_results(make_server, zone):
    # Nothing to look up then (the evaluation runs without DNS, on the session's thread), but a field that
    # claims our name is still forged (RFC 8601 5) and others' are kept.
    server = receiver(make_server, spf=False, dkim=False, dmarc=False)
    forged = ("Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=sender.test\r\n"
              "Authentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=relaxed.test\r\n")
    send(server, DENIED, "ceo@sender.test", message("ceo@sender.test", "All off", extra=forged))
    fields = results(stored_header(server))
    ours = [f for f in fields if f.startswith("Authentication-Results: mx.example.test;")]
    assert len(ours) == 1 and "spf=" not in ours[0] and "dkim=" not in ours[0] and "dmarc=" not in ours[0]
    assert any(f.startswith("Authentication-Results: relay.elsewhere.test;") for f in fields)
    # A message without such fields is stored as it came, under our trace fields.
    send(server, DENIED, "ceo@sender.test", message("ceo@sender.test", "Plain"))
    assert "Subject: Plain\r\n" in stored_header(server)


def test_submission_is_not_evaluated(make_server, zone):
    server = make_server(sections={"mailauth": {"resolver": DNS_ADDRESS, "dmarc_policy": "enforce"},
                                   "submission": {"listen": ["127.0.0.1:0"]}, "queue": {"enabled": False}})
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as client:
        client.ehlo("client.test")
        client.starttls(context=client_tls_context())
        client.login(f"bob@{DOMAIN}", PASSWORD)
        client.sendmail(f"bob@{DOMAIN}", [ALICE], message(f"bob@{DOMAIN}", "From Bob"))
    assert results(stored_header(server)) == []


def test_unreachable_dns_gives_temperror_within_the_time_limit(make_server, tmp_path):
    import time
    # Nothing answers at this address: every lookup times out, and max_time bounds them all.
    server = make_server(sections={"mailauth": {"resolver": "127.0.0.154", "dns_timeout": 1, "max_time": 2,
                                                "dmarc_policy": "enforce"},
                                   "queue": {"enabled": False}})
    started = time.time()
    send(server, DENIED, "ceo@sender.test", message("ceo@sender.test", "Slow DNS"))
    elapsed = time.time() - started
    [field] = results(stored_header(server))
    assert "spf=temperror" in field and "dmarc=temperror" in field
    assert elapsed < 8, elapsed
