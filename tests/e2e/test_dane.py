"""DANE for outgoing mail (RFC 7672, issue 18): crepes.fr delivers to hamburger.edu, whose zone is DNSSEC-signed
(ldns-signzone) and served by a validating unbound on 127.0.0.54 that crepes.fr's magpied asks. The MX host's
TLSA record decides: a matching one delivers over authenticated TLS, a mismatching one or a peer without
STARTTLS leaves the mail deferred with the reason in `magpie queue show`, and an unsigned (insecure) zone's
TLSA record is ignored (opportunistic TLS). Every session's TLS result is recorded for `magpie tlsrpt`
(RFC 8460). Everything runs in a network namespace of the test's own (port 25 on 127.0.0.2 and 127.0.0.3)."""
import datetime
import hashlib
import json
import subprocess

import pytest

from conftest import Magpied
from test_dns_records import Unbound
from test_relay import BOB, make, message, queue_add, queue_options, show, state_of, wait_for

HAMBURGER, CREPES = "127.0.0.3", "127.0.0.2"
# Generous: DNSSEC answers, two servers and a retry; only a guard against a hang.
DEADLINE = 120


def spki_sha256(cert):
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         check=True).stdout
    return hashlib.sha256(der).hexdigest()


@pytest.fixture
def dane_world(tmp_path, network_namespace):
    """start(tlsa=..., signed=True, starttls=True) -> (crepes, hamburger): hamburger.edu's zone holds its MX, the
    MX host's address and `tlsa(hamburger_cert)` at _25._tcp.mx.hamburger.edu."""
    started = []

    def start(tlsa, signed=True, starttls=True):
        if starttls:
            hamburger = make(tmp_path, "hamburger", HAMBURGER, "hamburger.edu", ["bob"])
        else:
            workdir = tmp_path / "hamburger"
            workdir.mkdir()
            hamburger = Magpied(workdir, host=HAMBURGER, smtp_port=25, hostname="mx.hamburger.edu", tls=False,
                                sections={"queue": queue_options()})
            hamburger.magpie("domain", "add", "hamburger.edu")
            hamburger.add_user(BOB)
        record = tlsa(hamburger.workdir / "cert.pem")
        unbound = Unbound(tmp_path / "unbound", "hamburger.edu",
                          ["@ IN MX 10 mx", f"mx IN A {HAMBURGER}", f"_25._tcp.mx IN TLSA {record}"], signed)
        started.append(unbound)
        crepes = make(tmp_path, "crepes", CREPES, "crepes.fr", ["alice"],
                      queue_options(resolver=f"{Unbound.ADDRESS}:{unbound.port}"))
        started.extend([hamburger.start(), crepes.start()])
        return crepes, hamburger

    yield start
    for thing in reversed(started):
        thing.stop()


def tls_report(crepes):
    """Today's RFC 8460 report for hamburger.edu from what crepes.fr recorded, or None before anything was."""
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out = crepes.magpie("tlsrpt", "--day", day, "--domain", "hamburger.edu").stdout.decode()
    return json.loads(out) if out.strip() else None


def only_policy(report):
    [policy] = report["policies"]
    return policy


def test_matching_tlsa_delivers_over_dane_and_records_a_tlsa_success(dane_world):
    records = {}

    def tlsa(cert):
        records["tlsa"] = f"3 1 1 {spki_sha256(cert)}"
        return records["tlsa"]

    crepes, hamburger = dane_world(tlsa)
    entry = queue_add(crepes, message("DANE kept"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", DEADLINE, "delivery under DANE")
    assert hamburger.uids(BOB) == [1]
    assert "TLS TLSv1." in show(crepes, entry)
    report = wait_for(lambda: tls_report(crepes), DEADLINE, "the recorded TLS result")
    policy = only_policy(report)
    assert policy["policy"]["policy-type"] == "tlsa"
    assert policy["policy"]["policy-domain"] == "hamburger.edu"
    assert policy["policy"]["policy-string"] == [records["tlsa"]]
    assert policy["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 0}


def test_mismatching_tlsa_defers_with_the_reason_and_records_tlsa_invalid(dane_world):
    crepes, hamburger = dane_world(lambda cert: "3 1 1 " + "ab" * 32)
    entry = queue_add(crepes, message("DANE refused"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "deferred", DEADLINE, "deferral under DANE")
    record = show(crepes, entry)
    assert "DANE policy of mx.hamburger.edu" in record, record
    assert "_25._tcp.mx.hamburger.edu" in record and "no matching dane tlsa records" in record.lower(), record
    assert hamburger.uids(BOB) == []
    assert f"{entry} " in crepes.magpie("queue", "list").stdout.decode()  # kept for the next retry
    policy = only_policy(wait_for(lambda: tls_report(crepes), DEADLINE, "the recorded TLS result"))
    assert policy["policy"]["policy-type"] == "tlsa"
    assert policy["summary"]["total-successful-session-count"] == 0
    assert policy["summary"]["total-failure-session-count"] >= 1
    assert {d["result-type"] for d in policy["failure-details"]} == {"tlsa-invalid"}
    assert policy["failure-details"][0]["receiving-mx-hostname"] == "mx.hamburger.edu"
    assert policy["failure-details"][0]["receiving-ip"] == HAMBURGER
    assert policy["failure-details"][0]["sending-mta-ip"].startswith("127.")  # no source address is bound


def test_peer_without_starttls_under_dane_defers(dane_world):
    crepes, hamburger = dane_world(lambda cert: "3 1 1 " + "cd" * 32, starttls=False)
    entry = queue_add(crepes, message("No STARTTLS"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "deferred", DEADLINE, "deferral without STARTTLS")
    record = show(crepes, entry)
    assert "DANE policy of mx.hamburger.edu" in record and "does not offer STARTTLS" in record, record
    assert hamburger.uids(BOB) == []
    policy = only_policy(wait_for(lambda: tls_report(crepes), DEADLINE, "the recorded TLS result"))
    assert {d["result-type"] for d in policy["failure-details"]} == {"starttls-not-supported"}


def test_unsigned_zone_tlsa_is_ignored_and_mail_goes_by_opportunistic_tls(dane_world):
    # Without a trust anchor the zone is insecure: no AD bit, so the (wrong) TLSA record must not count.
    crepes, hamburger = dane_world(lambda cert: "3 1 1 " + "ef" * 32, signed=False)
    entry = queue_add(crepes, message("Insecure zone"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", DEADLINE, "opportunistic delivery")
    assert hamburger.uids(BOB) == [1]
    policy = only_policy(wait_for(lambda: tls_report(crepes), DEADLINE, "the recorded TLS result"))
    assert policy["policy"]["policy-type"] == "no-policy-found"
    assert policy["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 0}
