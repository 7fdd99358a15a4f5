// TLS-RPT results on disk and the aggregate report (RFC 8460 4, 5.3); the record parser is tlsrpt.cpp.
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "mail/base64.h"
#include "mailauth/tlsrpt.h"

namespace magpie::mailauth {
namespace {

using nlohmann::json;

constexpr const char* kPolicyTypes[] = {"sts", "tlsa", "no-policy-found"};
constexpr const char* kResultTypes[] = {
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
    "validation-failure",     "tlsa-invalid",              "dnssec-invalid",      "dane-required",
    "sts-policy-fetch-error", "sts-policy-invalid",        "sts-webpki-invalid"};

std::string utc(std::int64_t t, const char* format) {
    std::time_t time = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&time, &tm);
    char out[64];
    std::strftime(out, sizeof out, format, &tm);
    return out;
}

bool is_day(std::string_view day) {
    if (day.size() != 10 || day[4] != '-' || day[7] != '-') return false;
    for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
        if (day[i] < '0' || day[i] > '9') return false;
    return true;
}

std::filesystem::path day_file(const std::string& data_dir, std::string_view day) {
    return std::filesystem::path(data_dir) / "tlsrpt" / (std::string(day) + ".jsonl");
}

template <std::size_t N>
std::optional<std::size_t> index_of(const char* const (&names)[N], std::string_view name) {
    for (std::size_t i = 0; i < N; ++i)
        if (name == names[i]) return i;
    return std::nullopt;
}

}  // namespace

const char* tls_policy_type_name(TlsPolicyType type) { return kPolicyTypes[static_cast<int>(type)]; }
const char* tls_result_type_name(TlsResultType type) { return kResultTypes[static_cast<int>(type)]; }

TlsResultType tls_result_type_for_verify_error(long error) {
    switch (error) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return TlsResultType::certificate_expired;
        case X509_V_ERR_HOSTNAME_MISMATCH:
            return TlsResultType::certificate_host_mismatch;
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_CERT_UNTRUSTED:
            return TlsResultType::certificate_not_trusted;
        default:
            return TlsResultType::validation_failure;
    }
}

std::optional<TlsOutcome> classify_tls_session(const TlsSessionObservation& o) {
    if (!o.greeted && !o.tls_attempted) return std::nullopt;
    TlsOutcome out;
    const bool checked = o.verify_result >= 0;
    const bool check_failed = checked && o.verify_result != X509_V_OK;
    if (o.tls_established && !check_failed) return out;
    out.success = false;
    out.failure_reason_code = o.reason;
    if (!o.tls_attempted) {
        out.result_type = TlsResultType::starttls_not_supported;
        if (out.failure_reason_code.empty()) out.failure_reason_code = "STARTTLS not offered";
    } else if (check_failed) {
        // RFC 8460 4.3.1: tlsa-invalid when no record of the RRset matched.
        out.result_type =
            o.dane ? TlsResultType::tlsa_invalid : tls_result_type_for_verify_error(o.verify_result);
        if (out.failure_reason_code.empty())
            out.failure_reason_code = X509_verify_cert_error_string(o.verify_result);
    } else {
        out.result_type = TlsResultType::validation_failure;
    }
    return out;
}

std::string serialize_tls_result(const TlsSessionResult& r) {
    json j = {{"time", r.time},
              {"policy-domain", r.policy_domain},
              {"policy-type", tls_policy_type_name(r.policy_type)},
              {"policy-string", r.policy_string},
              {"mx-host", r.mx_host},
              {"success", r.success},
              {"sending-mta-ip", r.sending_mta_ip},
              {"receiving-mx-hostname", r.receiving_mx_hostname},
              {"receiving-ip", r.receiving_ip}};
    if (!r.success) {
        j["result-type"] = tls_result_type_name(r.result_type);
        j["failure-reason-code"] = r.failure_reason_code;
    }
    // Invalid UTF-8 (a peer's host name) is replaced, never thrown about.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<TlsSessionResult> parse_tls_result(std::string_view line) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return make_error(Errc::invalid_argument, "not a JSON object");
    try {
        TlsSessionResult r;
        r.time = j.at("time").get<std::int64_t>();
        r.policy_domain = j.at("policy-domain").get<std::string>();
        auto policy = index_of(kPolicyTypes, j.at("policy-type").get<std::string>());
        if (!policy) return make_error(Errc::invalid_argument, "unknown policy-type");
        r.policy_type = static_cast<TlsPolicyType>(*policy);
        r.policy_string = j.value("policy-string", std::vector<std::string>{});
        r.mx_host = j.value("mx-host", std::vector<std::string>{});
        r.success = j.at("success").get<bool>();
        r.sending_mta_ip = j.value("sending-mta-ip", "");
        r.receiving_mx_hostname = j.value("receiving-mx-hostname", "");
        r.receiving_ip = j.value("receiving-ip", "");
        if (!r.success) {
            auto type = index_of(kResultTypes, j.at("result-type").get<std::string>());
            if (!type) return make_error(Errc::invalid_argument, "unknown result-type");
            r.result_type = static_cast<TlsResultType>(*type);
            r.failure_reason_code = j.value("failure-reason-code", "");
        }
        return r;
    } catch (const json::exception& e) {
        return make_error(Errc::invalid_argument, e.what());
    }
}

Result<void> append_tls_result(const std::string& data_dir, const TlsSessionResult& result,
                               std::uint64_t max_day_octets) {
    const auto path = day_file(data_dir, utc(result.time, "%Y-%m-%d"));
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) return make_error(Errc::io_error, "cannot create " + path.parent_path().string() + ": " + ec.message());
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return make_error(Errc::io_error, "cannot open " + path.string());
    struct stat st {};
    if (::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) >= max_day_octets) {
        ::close(fd);
        return make_error(Errc::limit_exceeded, path.string() + " is full for today");
    }
    std::string line = serialize_tls_result(result) + "\n";
    // One write: O_APPEND keeps concurrent writers' lines whole. No fsync: a report is a statistic, and
    // a result lost in a crash changes a count, never mail.
    ssize_t written = ::write(fd, line.data(), line.size());
    ::close(fd);
    if (written != static_cast<ssize_t>(line.size()))
        return make_error(Errc::io_error, "cannot write " + path.string());
    return {};
}

Result<std::vector<TlsSessionResult>> read_tls_results(const std::string& data_dir, std::string_view day,
                                                       std::size_t* skipped) {
    if (!is_day(day)) return make_error(Errc::invalid_argument, "a day is YYYY-MM-DD");
    std::vector<TlsSessionResult> out;
    const auto path = day_file(data_dir, day);
    std::ifstream in(path);
    if (!in) return out;
    std::string line;
    while (std::getline(in, line)) {
        auto r = parse_tls_result(line);
        if (r)
            out.push_back(std::move(*r));
        else if (skipped)
            ++*skipped;
    }
    if (in.bad()) return make_error(Errc::io_error, "cannot read " + path.string());
    return out;
}

std::string tlsrpt_report(const TlsReportMeta& meta, std::string_view policy_domain,
                          const std::vector<TlsSessionResult>& results, std::size_t max_failure_details) {
    using PolicyKey = std::tuple<int, std::vector<std::string>, std::vector<std::string>>;
    using FailureKey = std::tuple<int, std::string, std::string, std::string, std::string>;
    struct Counts {
        std::uint64_t success = 0, failure = 0;
        std::map<FailureKey, std::uint64_t> failures;
    };
    std::map<PolicyKey, Counts> policies;
    for (const auto& r : results) {
        if (r.policy_domain != policy_domain || r.time < meta.start || r.time > meta.end) continue;
        Counts& c = policies[PolicyKey{static_cast<int>(r.policy_type), r.policy_string, r.mx_host}];
        if (r.success) {
            ++c.success;
            continue;
        }
        ++c.failure;
        ++c.failures[FailureKey{static_cast<int>(r.result_type), r.sending_mta_ip, r.receiving_mx_hostname,
                                r.receiving_ip, r.failure_reason_code}];
    }
    json list = json::array();
    for (const auto& [key, c] : policies) {
        const auto& [type, strings, mx] = key;
        json policy = {{"policy-type", kPolicyTypes[type]}, {"policy-domain", policy_domain}};
        if (!strings.empty()) policy["policy-string"] = strings;
        if (!mx.empty()) policy["mx-host"] = mx;
        json entry = {{"policy", policy},
                      {"summary",
                       {{"total-successful-session-count", c.success}, {"total-failure-session-count", c.failure}}}};
        std::vector<std::pair<FailureKey, std::uint64_t>> groups(c.failures.begin(), c.failures.end());
        std::stable_sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
        if (groups.size() > max_failure_details) groups.resize(max_failure_details);
        if (!groups.empty()) {
            json details = json::array();
            for (const auto& [f, count] : groups) {
                const auto& [result_type, sending, mx_name, receiving, reason] = f;
                json d = {{"result-type", kResultTypes[result_type]}, {"failed-session-count", count}};
                if (!sending.empty()) d["sending-mta-ip"] = sending;
                if (!mx_name.empty()) d["receiving-mx-hostname"] = mx_name;
                if (!receiving.empty()) d["receiving-ip"] = receiving;
                if (!reason.empty()) d["failure-reason-code"] = reason;
                details.push_back(std::move(d));
            }
            entry["failure-details"] = std::move(details);
        }
        list.push_back(std::move(entry));
    }
    json report = {{"organization-name", meta.organization_name},
                   {"date-range",
                    {{"start-datetime", utc(meta.start, "%Y-%m-%dT%H:%M:%SZ")},
                     {"end-datetime", utc(meta.end, "%Y-%m-%dT%H:%M:%SZ")}}},
                   {"contact-info", meta.contact_info},
                   {"report-id", meta.report_id},
                   {"policies", std::move(list)}};
    return report.dump(2, ' ', false, json::error_handler_t::replace);
}

std::string tlsrpt_message(const TlsReportMeta& meta, std::string_view policy_domain, std::string_view submitter,
                           std::string_view from, std::string_view to, std::string_view report_json,
                           std::string_view date, std::string_view message_id) {
    // 5.3: "submitter!policy-domain!begin-timestamp!end-timestamp[!unique-id].json" (Unix seconds).
    const std::string filename =
        fmt::format("{}!{}!{}!{}!{}.json", submitter, policy_domain, meta.start, meta.end, meta.report_id);
    const std::string boundary = "tlsrpt-" + meta.report_id;
    std::string m;
    m += fmt::format("From: <{}>\r\nTo: <{}>\r\nDate: {}\r\nMessage-ID: {}\r\n", from, to, date, message_id);
    m += fmt::format("Subject: Report Domain: {} Submitter: {} Report-ID: <{}>\r\n", policy_domain, submitter,
                     meta.report_id);
    m += fmt::format("TLS-Report-Domain: {}\r\nTLS-Report-Submitter: {}\r\n", policy_domain, submitter);
    m += fmt::format("MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
                     " boundary=\"{}\"\r\n\r\n",
                     boundary);
    m += fmt::format("--{}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
                     "This is an aggregate TLS report from {} (RFC 8460) for {},\r\n"
                     "from {} to {}.\r\n\r\n",
                     boundary, submitter, policy_domain, utc(meta.start, "%Y-%m-%dT%H:%M:%SZ"),
                     utc(meta.end, "%Y-%m-%dT%H:%M:%SZ"));
    m += fmt::format("--{}\r\nContent-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: base64\r\n"
                     "Content-Disposition: attachment;\r\n filename=\"{}\"\r\n\r\n",
                     boundary, filename);
    m += mail::base64_encode(report_json) + "\r\n";
    m += fmt::format("--{}--\r\n", boundary);
    return m;
}

}  // namespace magpie::mailauth
