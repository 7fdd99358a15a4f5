"""`magpie tlsrpt` (RFC 8460): the day's recorded outbound TLS results become one JSON report per policy domain
(4.4), printed, or with --send queued as mail (5.3) to the mailto: rua of the domain's _smtp._tls record."""
import json
import os
import re

import pytest

from test_dns_records import Dnsmasq, run

DAY_START = 1795910400  # 2026-11-29T00:00:00Z


def result(success, domain="company-y.example", **extra):
    r = {"time": DAY_START + 3600, "policy-domain": domain, "policy-type": "sts",
         "policy-string": ["version: STSv1", "mode: enforce", "mx: mx1.company-y.example", "max_age: 86400"],
         "mx-host": ["mx1.company-y.example"], "success": success, "sending-mta-ip": "192.0.2.25",
         "receiving-mx-hostname": "mx1.company-y.example", "receiving-ip": "198.51.100.7"}
    if not success:
        r.update({"result-type": "certificate-not-trusted", "failure-reason-code": "self-signed certificate"})
    r.update(extra)
    return json.dumps(r)


def txt_rdata(text):
    data = text.encode()
    return (bytes([len(data)]) + data).hex()


def write_results(tmp_path, lines):
    folder = tmp_path / "data" / "tlsrpt"
    folder.mkdir(parents=True)
    (folder / "2026-11-29.jsonl").write_text("".join(line + "\n" for line in lines))


def test_prints_each_policy_domains_report_with_the_rfc_fields(tmp_path):
    write_results(tmp_path, [result(True)] * 3 + [result(False)] * 2 + [result(True, domain="other.example"),
                                                                       "not json"])
    out = run(tmp_path, "tlsrpt", "--day", "2026-11-29", "--domain", "company-y.example")
    assert out.returncode == 0, out.stderr
    assert "1 unreadable result line(s) skipped" in out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {"organization-name", "date-range", "contact-info", "report-id", "policies"}
    assert report["organization-name"] == "mail.example.org"
    assert report["contact-info"] == "postmaster@mail.example.org"
    assert report["date-range"] == {"start-datetime": "2026-11-29T00:00:00Z", "end-datetime": "2026-11-29T23:59:59Z"}
    [policy] = report["policies"]
    assert policy["policy"] == {"policy-type": "sts", "policy-domain": "company-y.example",
                                "policy-string": ["version: STSv1", "mode: enforce", "mx: mx1.company-y.example",
                                                  "max_age: 86400"],
                                "mx-host": ["mx1.company-y.example"]}
    assert policy["summary"] == {"total-successful-session-count": 3, "total-failure-session-count": 2}
    assert policy["failure-details"] == [{"result-type": "certificate-not-trusted", "failed-session-count": 2,
                                          "sending-mta-ip": "192.0.2.25",
                                          "receiving-mx-hostname": "mx1.company-y.example",
                                          "receiving-ip": "198.51.100.7",
                                          "failure-reason-code": "self-signed certificate"}]


@pytest.mark.skipif(not os.access("/usr/sbin/dnsmasq", os.X_OK), reason="dnsmasq-base is not installed")
def test_send_queues_the_report_to_the_mailto_rua_of_the_policy_domain(tmp_path):
    write_results(tmp_path, [result(True), result(False)])
    server = Dnsmasq(["--local=/example/",
                      # Raw RDATA (one character-string): --txt-record would split the record at the comma.
                      "--dns-rr=_smtp._tls.company-y.example,16," + txt_rdata(
                          "v=TLSRPTv1; rua=mailto:tls-reports@company-y.example,https://r.company-y.example/v1")])
    try:
        out = run(tmp_path, "tlsrpt", "--day", "2026-11-29", "--send",
                  "--dns-server", f"{Dnsmasq.ADDRESS}:{server.port}")
    finally:
        server.stop()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "https://r.company-y.example/v1 not sent" in out.stderr
    entry = re.search(r"queued 2026-11-29 report for company-y.example to tls-reports@company-y.example \(entry (\d+)\)",
                      out.stdout).group(1)
    shown = run(tmp_path, "queue", "show", entry).stdout
    assert "tls-reports@company-y.example" in shown
