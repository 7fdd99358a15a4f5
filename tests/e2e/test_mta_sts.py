"""MTA-STS (RFC 8461, issue 18): crepes.fr delivers to hamburger.edu, whose _mta-sts TXT record (dnsmasq) points
at a policy served over HTTPS by this test at mta-sts.hamburger.edu (127.0.0.4:443) with a certificate from a test
CA that magpied trusts through SSL_CERT_FILE. Under an enforce policy only a listed MX with a valid certificate
gets the mail; anything else is deferred with the policy named in the delivery tracker. magpied also serves its
own domains' policy, whose id `magpie dns` publishes."""
import datetime
import http.server
import json
import re
import ssl
import subprocess
import threading
import urllib.request

import pytest

from conftest import Magpied
from test_relay import BOB, RECORDS, make, message, queue_add, show, state_of, wait_for

POLICY_HOST = "127.0.0.4"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def ca(tmp_path):
    """A test CA and a function issuing leaf certificates from it: (cert, key) paths."""
    directory = tmp_path / "ca"
    directory.mkdir()
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(ca_key),
            "-out", str(ca_cert), "-days", "2", "-subj", "/CN=Magpie test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")

    def issue(name):
        key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
                "-out", str(csr), "-subj", f"/CN={name}")
        ext = directory / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
                "-out", str(cert), "-days", "2", "-extfile", str(ext))
        return cert, key

    issue.ca_cert = ca_cert
    return issue


class PolicyServer:
    """HTTPS on 127.0.0.4:443 answering /.well-known/mta-sts.txt with `policy`, counting requests."""

    def __init__(self, cert, key):
        self.policy = ""
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                body = server.policy.encode()
                self.send_response(200 if self.path == "/.well-known/mta-sts.txt" else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((POLICY_HOST, 443), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sts_world(tmp_path, network_namespace, dnsmasq, ca, monkeypatch):
    dnsmasq.start(RECORDS + [f"host-record=mta-sts.hamburger.edu,{POLICY_HOST}",
                             'txt-record=_mta-sts.hamburger.edu,"v=STSv1; id=20261129"'])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_cert))  # magpied's trust store: the test CA only
    policy_server = PolicyServer(*ca("mta-sts.hamburger.edu"))
    servers = []

    def start(policy, mx_certificate_valid=True):
        policy_server.policy = policy
        hamburger = make(tmp_path, "hamburger", "127.0.0.3", "hamburger.edu", ["bob"])
        if mx_certificate_valid:
            cert, key = ca("mx.hamburger.edu")
            (hamburger.workdir / "cert.pem").write_bytes(cert.read_bytes())
            (hamburger.workdir / "key.pem").write_bytes(key.read_bytes())
        crepes = make(tmp_path, "crepes", "127.0.0.2", "crepes.fr", ["alice"])
        servers.extend([hamburger.start(), crepes.start()])
        return crepes, hamburger

    start.policy_server = policy_server
    yield start
    for server in servers:
        server.stop()
    policy_server.stop()


def sts_report(crepes):
    """Today's TLS-RPT (RFC 8460) policies for hamburger.edu from what crepes.fr recorded; None before any."""
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    out = crepes.magpie("tlsrpt", "--day", day, "--domain", "hamburger.edu").stdout.decode()
    return json.loads(out)["policies"] if out.strip() else None


def enforce(mx):
    return f"version: STSv1\r\nmode: enforce\r\nmx: {mx}\r\nmax_age: 86400\r\n"


def test_enforced_policy_and_a_valid_certificate_deliver_and_the_policy_is_cached(sts_world):
    crepes, hamburger = sts_world(enforce("mx.hamburger.edu"))
    entry = queue_add(crepes, message("Policy kept"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", what="delivery")
    assert hamburger.uids(BOB) == [1]
    assert "ESMTPS" in hamburger.export(BOB, uid=1).decode(errors="replace")
    cache = (crepes.data / "mta-sts" / "hamburger.edu").read_text()
    assert cache.startswith("20261129 ") and "mode: enforce" in cache
    fetched = sts_world.policy_server.requests
    second = queue_add(crepes, message("Policy cached"))
    wait_for(lambda: state_of(crepes, second, BOB) == "delivered", what="second delivery")
    assert sts_world.policy_server.requests == fetched == 1  # same id, fresh: no second fetch
    # Each session's TLS result is recorded under the policy applied (RFC 8460 4.4). The two messages took one
    # session or two (the second may ride the first's kept connection, [queue] idle_keep): sessions are counted,
    # not messages.
    def recorded():
        policies = sts_report(crepes)
        return policies if policies and policies[0]["summary"]["total-successful-session-count"] >= 1 else None
    [policy] = wait_for(recorded, what="recorded sts sessions")
    assert policy["policy"]["policy-type"] == "sts"
    assert policy["policy"]["mx-host"] == ["mx.hamburger.edu"]
    assert "mode: enforce" in policy["policy"]["policy-string"]
    assert policy["summary"]["total-failure-session-count"] == 0


def test_policy_that_lists_another_mx_defers_with_the_reason(sts_world):
    crepes, hamburger = sts_world(enforce("*.elsewhere.edu"))
    entry = queue_add(crepes, message("Wrong MX"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "deferred", what="deferral")
    record = show(crepes, entry)
    assert "MTA-STS policy of hamburger.edu (enforce) lists none of its MX hosts (mx.hamburger.edu)" in record
    assert hamburger.uids(BOB) == []


def test_enforced_policy_refuses_an_mx_whose_certificate_is_not_trusted(sts_world):
    crepes, hamburger = sts_world(enforce("mx.hamburger.edu"), mx_certificate_valid=False)
    entry = queue_add(crepes, message("Self-signed MX"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "deferred", what="deferral")
    record = show(crepes, entry)
    assert "MTA-STS policy of hamburger.edu (enforce)" in record
    assert re.search(r"certificate|verify", record), record
    assert hamburger.uids(BOB) == []


def test_testing_mode_still_delivers_to_an_untrusted_mx(sts_world):
    crepes, hamburger = sts_world("version: STSv1\nmode: testing\nmx: mx.hamburger.edu\nmax_age: 60\n",
                                  mx_certificate_valid=False)
    entry = queue_add(crepes, message("Testing mode"))
    wait_for(lambda: state_of(crepes, entry, BOB) == "delivered", what="delivery")
    # Delivered, but the certificate was checked for the report (the point of testing mode, RFC 8461 5).
    [policy] = wait_for(lambda: sts_report(crepes), what="the recorded TLS result")
    assert policy["policy"]["policy-type"] == "sts"
    assert policy["summary"] == {"total-successful-session-count": 0, "total-failure-session-count": 1}
    assert policy["failure-details"][0]["result-type"] == "certificate-not-trusted"


def test_magpied_serves_its_own_policy_and_magpie_dns_publishes_its_id(make_server):
    server = make_server(sections={"http": {"listen": ["127.0.0.1:0"]}, "mta_sts": {"mode": "enforce",
                                                                                    "max_age": 86400}})
    with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['http']}/.well-known/mta-sts.txt",
                                timeout=30) as response:
        assert response.headers["Content-Type"] == "text/plain"
        policy = response.read().decode()
    assert policy == "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n"
    dns = server.magpie("dns", "example.test", "--address", "192.0.2.1").stdout.decode()
    published = re.search(r'_mta-sts\.example\.test\.\s+3600 IN TXT\s+"v=STSv1; id=(\w+)"', dns).group(1)
    import hashlib
    assert published == hashlib.sha256(policy.encode()).hexdigest()[:16]
