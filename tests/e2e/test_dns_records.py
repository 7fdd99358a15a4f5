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


def published(printed, skip=()):
    """dnsmasq options publishing the records `magpie dns` printed (but those whose owner and type are in
    `skip`)."""
    out = []
    for owner, rtype, data in printed:
        name = owner.rstrip(".")
        if (name, rtype) in skip:
            continue
        if rtype == "TXT":
            out.append(txt_arg(name, data))
        elif rtype == "MX":
            preference, host = data.split()
            out.append(f"--mx-host={name},{host.rstrip('.')},{preference}")
        elif rtype == "CNAME":
            out.append(f"--cname={name},{data.rstrip('.')}")
        elif rtype == "SRV":
            priority, weight, port, target = data.split()
            out.append(f"--srv-host={name},{target.rstrip('.') or '.'},{port},{priority},{weight}")
        elif rtype == "PTR":
            out.append(f"--ptr-record={name},{data.rstrip('.')}")
    return out


def txt_arg(name, value):
    return f"--txt-record={name}," + ",".join(value[i:i + 250] for i in range(0, len(value), 250))


@pytest.mark.skipif(not os.access("/usr/sbin/dnsmasq", os.X_OK), reason="dnsmasq-base is not installed")
def test_check_finds_missing_and_wrong_records_then_passes_once_all_are_published(tmp_path):
    assert run(tmp_path, "dkim", "keygen", "example.org", "--suffix", "1").returncode == 0
    printed = records(run(tmp_path, "dns", "example.org", "--address", "192.0.2.25").stdout)
    base = published(printed, skip=[("example.org", "TXT"), ("r1._domainkey.example.org", "TXT")]) + [
        "--host-record=mail.example.org,192.0.2.25"]

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
    server = Dnsmasq(published(printed) + ["--host-record=mail.example.org,192.0.2.25"])
    try:
        result = run(tmp_path, "dns", "example.org", "--check", "--dns-server", f"{Dnsmasq.ADDRESS}:{server.port}")
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "all checked records are right"
    assert "ok      SPF example.org pass for 192.0.2.25" in result.stdout


@pytest.mark.skipif(not os.access("/usr/sbin/dnsmasq", os.X_OK), reason="dnsmasq-base is not installed")
def test_check_compares_every_record_with_what_magpied_serves_and_says_precisely_what_is_wrong(tmp_path):
    assert run(tmp_path, "dkim", "keygen", "example.org", "--suffix", "1").returncode == 0
    printed = records(run(tmp_path, "dns", "example.org", "--address", "192.0.2.25").stdout)
    sts = next(d for o, t, d in printed if o == "_mta-sts.example.org.")
    wrong = [("_mta-sts.example.org", "TXT"), ("_smtp._tls.example.org", "TXT"), ("example.org", "MX"),
             ("_imaps._tcp.example.org", "SRV"), ("autoconfig.example.org", "CNAME"),
             ("autodiscover.example.org", "CNAME")]
    server = Dnsmasq(published(printed, skip=wrong) + [
        "--host-record=mail.example.org,192.0.2.25", "--host-record=old.example.org,192.0.2.99",
        "--mx-host=example.org,old.example.org,10",
        # The id of an older policy (the mode was "enforce" then), a report address that is no URI, an IMAP
        # SRV on the STARTTLS port, a CNAME to the old host, and autodiscover as an A record of our host.
        txt_arg("_mta-sts.example.org", "v=STSv1; id=0123456789abcdef"),
        txt_arg("_smtp._tls.example.org", "v=TLSRPTv1; rua=postmaster@example.org"),
        "--srv-host=_imaps._tcp.example.org,mail.example.org,143,0,1",
        "--cname=autoconfig.example.org,old.example.org",
        "--host-record=autodiscover.example.org,192.0.2.25"])
    try:
        result = run(tmp_path, "dns", "example.org", "--check", "--address", "192.0.2.25",
                     "--dns-server", f"{Dnsmasq.ADDRESS}:{server.port}")
    finally:
        server.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    want_id = sts.split("id=")[1]
    assert (f"WRONG   TXT _mta-sts.example.org id=0123456789abcdef is not the id of the policy magpied serves "
            f"(id={want_id}: mode testing, max_age 604800); publish \"{sts}\" so senders fetch it again") in lines
    assert ("WRONG   TXT _smtp._tls.example.org unusable: rua \"postmaster@example.org\" is neither mailto: nor "
            "https:") in lines
    assert "WRONG   MX example.org points at old.example.org, not at mail.example.org" in lines
    assert ("WRONG   SRV _imaps._tcp.example.org is 0 1 143 mail.example.org, should be 0 1 993 mail.example.org."
            in lines)
    assert "WRONG   CNAME autoconfig.example.org points at old.example.org, should be mail.example.org" in lines
    assert "ok      CNAME autodiscover.example.org no CNAME, but the same addresses as mail.example.org" in lines
    assert "ok      CNAME mta-sts.example.org mail.example.org" in lines
    assert "ok      SRV _submissions._tcp.example.org 0 1 465 mail.example.org" in lines
    assert "ok      SRV _pop3._tcp.example.org 0 0 0 ." in lines
    assert "WRONG   SPF example.org fail for 192.0.2.25" in " ".join(lines)  # "mx" now means old.example.org
    assert lines[-1] == "6 record(s) missing or wrong"


def test_clients_records_name_the_public_host_and_ports_of_autoconfig(tmp_path):
    config = tmp_path / "magpie.toml"
    config.write_text(f'[server]\nhostname = "mx.internal.example.org"\ndata_dir = "{tmp_path / "data"}"\n'
                      '[autoconfig]\nhostname = "mail.example.org"\nimaps_port = 10993\nimap_port = 0\n')
    got = records(run(tmp_path, "dns", "example.org", "--address", "192.0.2.25").stdout)
    assert ("_imaps._tcp.example.org.", "SRV", "0 1 10993 mail.example.org.") in got
    assert ("_imap._tcp.example.org.", "SRV", "0 0 0 .") in got
    assert ("_submissions._tcp.example.org.", "SRV", "0 1 465 mail.example.org.") in got
    assert ("autoconfig.example.org.", "CNAME", "mail.example.org.") in got
    # Mail itself still goes to the server's own name.
    assert ("example.org.", "MX", "10 mx.internal.example.org.") in got
    assert ("mta-sts.example.org.", "CNAME", "mx.internal.example.org.") in got


class Unbound:
    """A validating resolver (unbound) serving one DNSSEC-signed zone (ldns-signzone) from its own auth-zone,
    with the zone's key as trust anchor (or none: then the zone is merely insecure, and no answer gets AD)."""
    ADDRESS = "127.0.0.54"

    def __init__(self, workdir, origin, records, anchored=True):
        import shutil
        import socket
        import time
        for tool in ("unbound", "ldns-keygen", "ldns-signzone"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is missing: scripts/install-deps.sh installs unbound and ldnsutils")
        workdir.mkdir()
        zone = workdir / f"{origin}.zone"
        zone.write_text(f"$ORIGIN {origin}.\n$TTL 3600\n@ IN SOA ns hostmaster 1 3600 600 86400 3600\n"
                        f"@ IN NS ns\nns IN A 127.0.0.1\n" + "".join(line + "\n" for line in records))

        def keygen(*flags):
            return subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", *flags, origin], cwd=workdir,
                                  capture_output=True, text=True, check=True).stdout.strip()
        ksk, zsk = keygen("-k"), keygen()
        subprocess.run(["ldns-signzone", "-n", str(zone), ksk, zsk], cwd=workdir, check=True, capture_output=True)
        anchor = ""
        if anchored:
            (workdir / "anchor").write_text(
                "".join(line for line in (workdir / f"{ksk}.key").read_text().splitlines(True) if "DNSKEY" in line))
            anchor = f'  trust-anchor-file: "{workdir / "anchor"}"\n'
        self.port = free_port(self.ADDRESS)
        (workdir / "unbound.conf").write_text(
            f'server:\n  interface: {self.ADDRESS}\n  port: {self.port}\n  do-daemonize: no\n  username: ""\n'
            f'  chroot: ""\n  directory: "{workdir}"\n  pidfile: ""\n  use-syslog: no\n  logfile: ""\n'
            f'  module-config: "validator iterator"\n  access-control: 127.0.0.0/8 allow\n'
            f'  do-not-query-localhost: no\n  local-zone: "test." nodefault\n{anchor}'
            f'auth-zone:\n  name: "{origin}."\n  zonefile: "{zone}.signed"\n  for-upstream: yes\n'
            f'  for-downstream: no\n  fallback-enabled: no\n')
        self.process = subprocess.Popen(["unbound", "-d", "-c", str(workdir / "unbound.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((self.ADDRESS, self.port))
                except OSError:
                    return
            time.sleep(0.02)
        raise RuntimeError("unbound did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def test_dane_record_is_printed_and_checked_only_as_dnssec_validated(tmp_path):
    """`magpie dns` prints the DANE-EE TLSA record of the server's key; --check accepts it only when a
    validating resolver (a real unbound over a real signed zone) sets the AD bit, and says when it is
    unvalidated or names another key."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"), "-days", "2",
                    "-subj", "/CN=mx.dane.test"], check=True, capture_output=True)
    config = tmp_path / "magpie.toml"
    config.write_text(f'[server]\nhostname = "mx.dane.test"\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[tls]\ncertificate = "{tmp_path / "cert.pem"}"\nprivate_key = "{tmp_path / "key.pem"}"\n')
    printed = records(run(tmp_path, "dns", "dane.test", "--address", "127.0.0.1").stdout)
    tlsa = [d for o, t, d in printed if t == "TLSA"]
    assert [(o, t) for o, t, d in printed if t == "TLSA"] == [("_25._tcp.mx.dane.test.", "TLSA")]
    der = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "cert.pem"), "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=der, capture_output=True,
                          check=True).stdout
    import hashlib
    assert tlsa == ["3 1 1 " + hashlib.sha256(spki).hexdigest()]

    def check(name, tlsa_record, anchored=True):
        server = Unbound(tmp_path / name, "dane.test", ["@ IN MX 10 mx", "mx IN A 127.0.0.1",
                                                          f"_25._tcp.mx IN TLSA {tlsa_record}"], anchored)
        try:
            out = run(tmp_path, "dns", "dane.test", "--check", "--address", "127.0.0.1",
                      "--dns-server", f"{Unbound.ADDRESS}:{server.port}").stdout
        finally:
            server.stop()
        return [line for line in out.splitlines() if "TLSA" in line]

    assert check("signed", tlsa[0]) == [f"ok      TLSA _25._tcp.mx.dane.test {tlsa[0]} (DNSSEC-validated)"]
    assert check("insecure", tlsa[0], anchored=False) == [
        "WRONG   TLSA _25._tcp.mx.dane.test is not DNSSEC-validated by the resolver (no AD bit): senders ignore "
        "it (RFC 7672 2.2)"]
    other = "3 1 1 " + "ab" * 32
    assert check("other-key", other) == [
        f"WRONG   TLSA _25._tcp.mx.dane.test is {other}, not the key of {tmp_path / 'cert.pem'}: DANE senders "
        "will not deliver"]
