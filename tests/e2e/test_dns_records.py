"""`magpie dns DOMAIN` and `magpie dkim keygen DOMAIN`: the records a domain needs, and DKIM keys whose
published records a second DKIM implementation (python3-dkim) accepts."""
import os
import re
import stat
import subprocess

import pytest

from conftest import MAGPIE


def run(tmp_path, *args):
    config = tmp_path / "magpie.toml"
    if not config.exists():
        config.write_text(f'[server]\nhostname = "mail.example.org"\ndata_dir = "{tmp_path / "data"}"\n')
    return subprocess.run([str(MAGPIE), "-c", str(config), *args], capture_output=True, timeout=60, text=True)


def records(output):
    """Zone-file lines as (owner, type, data), multi-line TXT strings joined."""
    joined = re.sub(r"\(\s*((?:\"[^\"]*\"\s*)+)\)", lambda m: " ".join(re.findall(r"\"[^\"]*\"", m.group(1))), output)
    out = []
    for line in joined.splitlines():
        if not line or line.startswith(";"):
            continue
        owner, ttl, klass, rtype, data = line.split(None, 4)
        assert ttl == "3600" and klass == "IN"
        if rtype == "TXT":
            data = "".join(re.findall(r"\"([^\"]*)\"", data))
        out.append((owner, rtype, data))
    return out


def test_without_keys_every_other_record_is_printed_and_keygen_is_explained(tmp_path):
    result = run(tmp_path, "dns", "Example.ORG", "--address", "192.0.2.25")
    assert result.returncode == 0, result.stderr
    assert "magpie dkim keygen example.org" in result.stdout
    got = records(result.stdout)
    assert ("example.org.", "MX", "10 mail.example.org.") in got
    assert ("example.org.", "TXT", "v=spf1 mx -all") in got
    assert ("_dmarc.example.org.", "TXT", "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org") in got
    assert any(o == "_mta-sts.example.org." and d.startswith("v=STSv1; id=") for o, t, d in got)
    assert ("_smtp._tls.example.org.", "TXT", "v=TLSRPTv1; rua=mailto:postmaster@example.org") in got
    assert ("_submissions._tcp.example.org.", "SRV", "0 1 465 mail.example.org.") in got
    assert ("_submission._tcp.example.org.", "SRV", "10 1 587 mail.example.org.") in got
    assert ("_imaps._tcp.example.org.", "SRV", "0 1 993 mail.example.org.") in got
    assert ("_imap._tcp.example.org.", "SRV", "10 1 143 mail.example.org.") in got
    assert ("autoconfig.example.org.", "CNAME", "mail.example.org.") in got
    assert ("autodiscover.example.org.", "CNAME", "mail.example.org.") in got
    assert ("25.2.0.192.in-addr.arpa.", "PTR", "mail.example.org.") in got
    v6 = records(run(tmp_path, "dns", "example.org", "--address", "2001:db8::1").stdout)
    assert ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "PTR",
            "mail.example.org.") in v6


def test_keygen_writes_private_keys_and_dns_publishes_their_public_halves(tmp_path):
    created = run(tmp_path, "dkim", "keygen", "example.org", "--suffix", "2026")
    assert created.returncode == 0, created.stderr
    key_dir = tmp_path / "data" / "dkim" / "example.org"
    for name in ("r2026.pem", "e2026.pem"):
        assert stat.S_IMODE(os.stat(key_dir / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_dir).st_mode) == 0o700
    again = run(tmp_path, "dkim", "keygen", "example.org", "--suffix", "2026")
    assert again.returncode != 0 and "already exists" in again.stderr

    got = {o: d for o, t, d in records(run(tmp_path, "dns", "example.org", "--address", "192.0.2.25").stdout)
           if t == "TXT"}
    rsa_record = got["r2026._domainkey.example.org."]
    ed_record = got["e2026._domainkey.example.org."]
    assert rsa_record.startswith("v=DKIM1; k=rsa; p=") and len(rsa_record) > 255  # split and joined again
    assert ed_record.startswith("v=DKIM1; k=ed25519; p=")

    assert run(tmp_path, "dkim", "keygen", "example.org", "--suffix", "2027").returncode == 0
    others = {o: d for o, t, d in records(run(tmp_path, "dns", "example.org", "--address", "192.0.2.25").stdout)
              if t == "TXT"}

    dkim = pytest.importorskip("dkim")
    message = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: keys\r\n"
               b"Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n")
    ed_der = subprocess.run(["openssl", "pkey", "-in", str(key_dir / "e2026.pem"), "-outform", "DER"],
                            capture_output=True, check=True).stdout
    import base64
    keys = {"r2026": (key_dir / "r2026.pem").read_bytes(), "e2026": base64.b64encode(ed_der[-32:])}
    published = {"r2026._domainkey.example.org.": rsa_record, "e2026._domainkey.example.org.": ed_record}
    for selector, algorithm in (("r2026", b"rsa-sha256"), ("e2026", b"ed25519-sha256")):
        signature = dkim.sign(message, selector.encode(), b"example.org", keys[selector],
                              signature_algorithm=algorithm)
        assert dkim.verify(signature + message, dnsfunc=lambda name, timeout=5: published[name.decode()].encode())
        # The check can fail: another key of the same kind does not verify this signature.
        other = {"r2026": others["r2027._domainkey.example.org."], "e2026": others["e2027._domainkey.example.org."]}
        assert not dkim.verify(signature + message, dnsfunc=lambda name, timeout=5: other[selector].encode())


def test_refuses_what_is_not_a_domain(tmp_path):
    assert run(tmp_path, "dns", "localhost", "--address", "192.0.2.1").returncode != 0
    assert run(tmp_path, "dkim", "keygen", "../../etc").returncode != 0


def free_port(address):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((address, 0))
        return udp.getsockname()[1]


class Dnsmasq:
    """A dnsmasq answering only from the records given (no upstream, no /etc/hosts)."""
    ADDRESS = "127.0.0.53"

    def __init__(self, records):
        self.port = free_port(self.ADDRESS)
        self.process = subprocess.Popen(
            ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             "--bind-interfaces", f"--listen-address={self.ADDRESS}", f"--port={self.port}", "--pid-file=",
             "--user=root", "--log-facility=/dev/null", "--local=/org/", "--local=/arpa/", *records])
        import socket
        import time
        for _ in range(100):  # ready once the UDP port is taken
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((self.ADDRESS, self.port))
                except OSError:
                    return
            time.sleep(0.02)
        raise RuntimeError("dnsmasq did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def txt_arg(name, value):
    return f"--txt-record={name}," + ",".join(value[i:i + 250] for i in range(0, len(value), 250))


@pytest.mark.skipif(not os.access("/usr/sbin/dnsmasq", os.X_OK), reason="dnsmasq-base is not installed")
def test_check_finds_missing_and_wrong_records_then_passes_once_all_are_published(tmp_path):
    assert run(tmp_path, "dkim", "keygen", "example.org", "--suffix", "1").returncode == 0
    printed = records(run(tmp_path, "dns", "example.org", "--address", "192.0.2.25").stdout)
    txt = {o.rstrip("."): d for o, t, d in printed if t == "TXT"}
    base = ["--mx-host=example.org,mail.example.org,10", "--host-record=mail.example.org,192.0.2.25",
            "--ptr-record=25.2.0.192.in-addr.arpa,mail.example.org",
            txt_arg("_dmarc.example.org", txt["_dmarc.example.org"]),
            txt_arg("_mta-sts.example.org", txt["_mta-sts.example.org"]),
            txt_arg("_smtp._tls.example.org", txt["_smtp._tls.example.org"]),
            txt_arg("e1._domainkey.example.org", txt["e1._domainkey.example.org"])]

    # SPF that leaves our address out, and no RSA key record: both reported, exit status 1.
    server = Dnsmasq(base + [txt_arg("example.org", "v=spf1 ip4:198.51.100.1 -all")])
    try:
        result = run(tmp_path, "dns", "example.org", "--check", "--dns-server", f"{Dnsmasq.ADDRESS}:{server.port}")
    finally:
        server.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "ok      MX example.org mail.example.org" in lines
    assert any(line.startswith("WRONG   SPF example.org fail for 192.0.2.25") for line in lines)
    assert any(line.startswith("MISSING TXT r1._domainkey.example.org") for line in lines)
    assert any(line.startswith("ok      TXT e1._domainkey.example.org matches e1.pem") for line in lines)
    assert "ok      PTR 192.0.2.25 mail.example.org" in lines
    assert lines[-1] == "2 record(s) missing or wrong"

    # Everything as magpie dns printed it: all right, exit status 0.
    server = Dnsmasq(base + [txt_arg("example.org", txt["example.org"]),
                             txt_arg("r1._domainkey.example.org", txt["r1._domainkey.example.org"])])
    try:
        result = run(tmp_path, "dns", "example.org", "--check", "--dns-server", f"{Dnsmasq.ADDRESS}:{server.port}")
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "all checked records are right"
    assert "ok      SPF example.org pass for 192.0.2.25" in result.stdout
