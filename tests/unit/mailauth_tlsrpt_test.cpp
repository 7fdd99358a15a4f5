// SMTP TLS Reporting (RFC 8460): the _smtp._tls record, results on disk, and the daily JSON report checked
// field by field against the report schema of 4.4 (required members, their JSON types, the date format, the
// result-type vocabulary of 4.3) and its counts.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "mailauth/tlsrpt.h"

namespace magpie::mailauth {
namespace {

using nlohmann::json;

TEST(TlsRptRecord, ReadsTheReportAddresses) {
    auto r = parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:tls@example.org,https://reports.example.org/v1");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->rua, (std::vector<std::string>{"mailto:tls@example.org", "https://reports.example.org/v1"}));
    EXPECT_TRUE(parse_tlsrpt_record("v=TLSRPTv1;rua=mailto:a@b.example;ext=1;"));
}

TEST(TlsRptRecord, RefusesWhatNoSenderCanUse) {
    EXPECT_FALSE(parse_tlsrpt_record("rua=mailto:a@b.example; v=TLSRPTv1"));  // version first (3)
    EXPECT_FALSE(parse_tlsrpt_record("v=TLSRPTv1"));
    auto bare = parse_tlsrpt_record("v=TLSRPTv1; rua=postmaster@example.org");
    ASSERT_FALSE(bare);
    EXPECT_NE(bare.error().message.find("neither mailto: nor https:"), std::string::npos);
    EXPECT_FALSE(parse_tlsrpt_record("v=TLSRPTv1; rua=http://insecure.example/"));
}

TEST(TlsRptRecord, TwoRecordsMeanNone) {
    EXPECT_EQ(select_tlsrpt_record({"v=spf1 -all"}).error().code, Errc::not_found);
    auto two = select_tlsrpt_record({"v=TLSRPTv1; rua=mailto:a@b.example", "v=TLSRPTv1; rua=mailto:c@b.example"});
    ASSERT_FALSE(two);
    EXPECT_EQ(two.error().code, Errc::invalid_argument);
    EXPECT_TRUE(select_tlsrpt_record({"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@b.example"}));
}

constexpr std::int64_t kDay = 1'795'910'400;  // 2026-11-29T00:00:00Z

TlsSessionResult sts_result(bool success, std::int64_t at = kDay + 3600) {
    TlsSessionResult r;
    r.time = at;
    r.policy_domain = "company-y.example";
    r.policy_type = TlsPolicyType::sts;
    r.policy_string = {"version: STSv1", "mode: enforce", "mx: *.mail.company-y.example", "max_age: 86400"};
    r.mx_host = {"*.mail.company-y.example"};
    r.success = success;
    r.sending_mta_ip = "192.0.2.25";
    r.receiving_mx_hostname = "mx1.mail.company-y.example";
    r.receiving_ip = "198.51.100.7";
    if (!success) {
        r.result_type = TlsResultType::certificate_expired;
        r.failure_reason_code = "X509_V_ERR_CERT_HAS_EXPIRED";
    }
    return r;
}

// 4.4's members with their JSON types; anything else in the report is an error.
void check_schema(const json& report) {
    ASSERT_TRUE(report.is_object());
    const std::set<std::string> top = {"organization-name", "date-range", "contact-info", "report-id", "policies"};
    for (const auto& [key, value] : report.items()) EXPECT_TRUE(top.count(key)) << key;
    for (const auto& key : top) ASSERT_TRUE(report.contains(key)) << key;
    EXPECT_TRUE(report["organization-name"].is_string());
    EXPECT_TRUE(report["contact-info"].is_string());
    EXPECT_TRUE(report["report-id"].is_string());
    const std::regex datetime(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)");  // RFC 3339 date-time, UTC
    EXPECT_TRUE(std::regex_match(report["date-range"]["start-datetime"].get<std::string>(), datetime));
    EXPECT_TRUE(std::regex_match(report["date-range"]["end-datetime"].get<std::string>(), datetime));
    ASSERT_TRUE(report["policies"].is_array());
    const std::set<std::string> result_types = {
        "starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
        "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
        "sts-policy-invalid", "sts-webpki-invalid"};
    for (const auto& entry : report["policies"]) {
        const auto& policy = entry.at("policy");
        EXPECT_TRUE(std::set<std::string>({"sts", "tlsa", "no-policy-found"}).count(policy.at("policy-type")));
        EXPECT_TRUE(policy.at("policy-domain").is_string());
        if (policy.contains("policy-string")) {
            EXPECT_TRUE(policy["policy-string"].is_array());
        }
        if (policy.contains("mx-host")) {
            EXPECT_TRUE(policy["mx-host"].is_array());
        }
        EXPECT_TRUE(entry.at("summary").at("total-successful-session-count").is_number_unsigned());
        EXPECT_TRUE(entry.at("summary").at("total-failure-session-count").is_number_unsigned());
        if (!entry.contains("failure-details")) continue;
        for (const auto& d : entry["failure-details"]) {
            EXPECT_TRUE(result_types.count(d.at("result-type").get<std::string>()));
            EXPECT_TRUE(d.at("failed-session-count").is_number_unsigned());
            for (const char* optional : {"sending-mta-ip", "receiving-mx-hostname", "receiving-ip", "failure-reason-code"}) {
                if (d.contains(optional)) {
                    EXPECT_TRUE(d[optional].is_string()) << optional;
                }
            }
        }
    }
}

TEST(TlsRptReport, CountsEachPolicysSessionsAndGroupsFailures) {
    std::vector<TlsSessionResult> results;
    for (int i = 0; i < 5; ++i) results.push_back(sts_result(true));
    for (int i = 0; i < 3; ++i) results.push_back(sts_result(false));
    TlsSessionResult other = sts_result(false);
    other.result_type = TlsResultType::starttls_not_supported;
    other.failure_reason_code.clear();
    results.push_back(other);
    results.push_back(sts_result(true, kDay - 1));        // the day before: not in this report
    TlsSessionResult none;                                // another policy of the same domain
    none.time = kDay + 7200;
    none.policy_domain = "company-y.example";
    none.success = true;
    results.push_back(none);
    TlsSessionResult elsewhere = sts_result(false);       // another domain's report
    elsewhere.policy_domain = "other.example";
    results.push_back(elsewhere);

    TlsReportMeta meta{"mx.company-x.example", "postmaster@company-x.example", "2026-11-29.company-y.example",
                       kDay, kDay + 86399};
    json report = json::parse(tlsrpt_report(meta, "company-y.example", results));
    check_schema(report);
    EXPECT_EQ(report["date-range"]["start-datetime"], "2026-11-29T00:00:00Z");
    EXPECT_EQ(report["date-range"]["end-datetime"], "2026-11-29T23:59:59Z");
    ASSERT_EQ(report["policies"].size(), 2u);
    const json* sts = nullptr;
    const json* no_policy = nullptr;
    for (const auto& p : report["policies"])
        (p["policy"]["policy-type"] == "sts" ? sts : no_policy) = &p;
    ASSERT_TRUE(sts && no_policy);
    EXPECT_EQ((*sts)["summary"]["total-successful-session-count"], 5);
    EXPECT_EQ((*sts)["summary"]["total-failure-session-count"], 4);
    EXPECT_EQ((*sts)["policy"]["mx-host"], json::array({"*.mail.company-y.example"}));
    ASSERT_EQ((*sts)["failure-details"].size(), 2u);
    EXPECT_EQ((*sts)["failure-details"][0]["result-type"], "certificate-expired");  // the largest group first
    EXPECT_EQ((*sts)["failure-details"][0]["failed-session-count"], 3);
    EXPECT_EQ((*sts)["failure-details"][0]["receiving-mx-hostname"], "mx1.mail.company-y.example");
    EXPECT_EQ((*sts)["failure-details"][1]["result-type"], "starttls-not-supported");
    EXPECT_EQ((*no_policy)["summary"]["total-successful-session-count"], 1);
    EXPECT_FALSE(no_policy->contains("failure-details"));
}

TEST(TlsRptReport, FailureDetailsAreBounded) {
    std::vector<TlsSessionResult> results;
    for (int i = 0; i < 50; ++i) {
        TlsSessionResult r = sts_result(false);
        r.receiving_ip = "198.51.100." + std::to_string(i);
        results.push_back(r);
    }
    TlsReportMeta meta{"mx", "postmaster@mx", "id", kDay, kDay + 86399};
    json report = json::parse(tlsrpt_report(meta, "company-y.example", results, 10));
    EXPECT_EQ(report["policies"][0]["failure-details"].size(), 10u);
    EXPECT_EQ(report["policies"][0]["summary"]["total-failure-session-count"], 50);  // counts stay whole
}

TEST(TlsRptResults, AppendedAndReadBackPerUtcDay) {
    char tmpl[] = "/tmp/magpie-tlsrpt-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    ASSERT_TRUE(append_tls_result(dir, sts_result(true)));
    ASSERT_TRUE(append_tls_result(dir, sts_result(false)));
    ASSERT_TRUE(append_tls_result(dir, sts_result(true, kDay + 86400)));  // the next day's file
    auto day = read_tls_results(dir, "2026-11-29");
    ASSERT_TRUE(day) << day.error().message;
    ASSERT_EQ(day->size(), 2u);
    EXPECT_TRUE((*day)[0].success);
    EXPECT_FALSE((*day)[1].success);
    EXPECT_EQ((*day)[1].result_type, TlsResultType::certificate_expired);
    EXPECT_EQ((*day)[1].policy_string, sts_result(false).policy_string);
    EXPECT_EQ(read_tls_results(dir, "2026-11-30")->size(), 1u);
    EXPECT_TRUE(read_tls_results(dir, "2026-12-01")->empty());
    EXPECT_FALSE(read_tls_results(dir, "../etc"));
    // A full day's file takes no more.
    auto full = append_tls_result(dir, sts_result(true), 10);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code, Errc::limit_exceeded);
    std::filesystem::remove_all(dir);
}

TEST(TlsRptResults, OpenSslVerifyErrorsBecomeTheRfcsResultTypes) {
    EXPECT_EQ(tls_result_type_for_verify_error(10), TlsResultType::certificate_expired);       // CERT_HAS_EXPIRED
    EXPECT_EQ(tls_result_type_for_verify_error(62), TlsResultType::certificate_host_mismatch);  // HOSTNAME_MISMATCH
    EXPECT_EQ(tls_result_type_for_verify_error(18), TlsResultType::certificate_not_trusted);    // self-signed
    EXPECT_EQ(tls_result_type_for_verify_error(20), TlsResultType::certificate_not_trusted);    // unknown issuer
    EXPECT_EQ(tls_result_type_for_verify_error(23), TlsResultType::validation_failure);         // CERT_REVOKED
}

TEST(TlsRptReport, MailMessageCarriesTheReportAsRfc8460Describes) {
    TlsReportMeta meta{"mx.company-x.example", "postmaster@company-x.example", "abc123", kDay, kDay + 86399};
    std::string message = tlsrpt_message(meta, "company-y.example", "mx.company-x.example", "postmaster@company-x.example",
                                         "tls@company-y.example", "{\"x\":1}", "Sun, 29 Nov 2026 00:00:00 +0000",
                                         "<abc123@mx.company-x.example>");
    EXPECT_NE(message.find("\r\nSubject: Report Domain: company-y.example Submitter: mx.company-x.example "
                           "Report-ID: <abc123>\r\n"),
              std::string::npos);
    EXPECT_NE(message.find("\r\nTLS-Report-Domain: company-y.example\r\n"), std::string::npos);
    EXPECT_NE(message.find("\r\nTLS-Report-Submitter: mx.company-x.example\r\n"), std::string::npos);
    EXPECT_NE(message.find("multipart/report; report-type=\"tlsrpt\""), std::string::npos);
    EXPECT_NE(message.find("Content-Type: application/tlsrpt+json"), std::string::npos);
    EXPECT_NE(message.find("filename=\"mx.company-x.example!company-y.example!1795910400!1795996799!abc123.json\""),
              std::string::npos);
    EXPECT_NE(message.find("\r\neyJ4IjoxfQ==\r\n"), std::string::npos);  // {"x":1}
}

}  // namespace
}  // namespace magpie::mailauth
