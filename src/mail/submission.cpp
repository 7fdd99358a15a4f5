#include "mail/submission.h"

#include <array>
#include <vector>

#include "base/strings.h"
#include "base/time.h"
#include "mail/address.h"

namespace magpie::mail {

namespace {

// RFC 5322 3.6: fields that may occur at most once.
constexpr std::array<std::string_view, 11> kAtMostOnce = {"Date",        "From",       "Sender", "Reply-To",
                                                          "To",          "Cc",         "Bcc",    "Message-ID",
                                                          "In-Reply-To", "References", "Subject"};

std::size_t count_fields(const std::vector<HeaderField>& fields, std::string_view name) {
    std::size_t n = 0;
    for (const auto& field : fields)
        if (iequals(trim(field.name), name)) ++n;
    return n;
}

const HeaderField* find_field(const std::vector<HeaderField>& fields, std::string_view name) {
    for (const auto& field : fields)
        if (iequals(trim(field.name), name)) return &field;
    return nullptr;
}

Result<void> check_lines(std::string_view header, std::size_t max_line) {
    std::size_t start = 0;
    while (start < header.size()) {
        std::size_t lf = header.find('\n', start);
        std::size_t end = lf == std::string_view::npos ? header.size() : lf;
        std::size_t length = end - start;
        if (length > 0 && header[end - 1] == '\r') --length;
        if (length > max_line) return make_error(Errc::limit_exceeded, "header line too long");
        start = end + 1;
    }
    return {};
}

}  // namespace

Result<std::string> complete_submission(std::string_view message, const SubmissionOptions& options,
                                        const BuildEnv& env) {
    std::vector<HeaderField> fields;
    HeaderScan scan = scan_header(message, 0, message.size(), options.limits, fields);
    if (scan.limit_hit) return make_error(Errc::limit_exceeded, "header too large");
    std::string_view header = message.substr(0, scan.header_end);
    MAGPIE_TRY(check_lines(header, options.max_line_octets));
    if (!is_ascii(header)) {
        if (!options.smtputf8) return make_error(Errc::invalid_argument, "8-bit header field needs SMTPUTF8");
        if (!is_valid_utf8(header))
            return make_error(Errc::invalid_argument, "header field is not valid UTF-8");
    }

    for (std::string_view name : kAtMostOnce) {
        if (count_fields(fields, name) > 1)
            return make_error(Errc::invalid_argument, "more than one " + std::string(name) + " field");
    }
    const HeaderField* from = find_field(fields, "From");
    if (!from) return make_error(Errc::invalid_argument, "no From field");
    std::size_t authors = mailboxes(parse_address_list(from->raw_value)).size();
    if (authors == 0) return make_error(Errc::invalid_argument, "From field has no address");
    // RFC 5322 3.6.2: several authors need a Sender saying who sent it.
    if (authors > 1 && !find_field(fields, "Sender"))
        return make_error(Errc::invalid_argument, "From with several mailboxes needs a Sender field");

    std::string out;
    out.reserve(message.size() + 200);
    // Copy the header, leaving out Bcc when asked.
    std::size_t pos = 0;
    bool has_destination = find_field(fields, "To") || find_field(fields, "Cc");
    for (const auto& field : fields) {
        if (iequals(trim(field.name), "Bcc")) {
            if (!options.strip_bcc) {
                has_destination = true;
                continue;
            }
            out.append(message.substr(pos, field.offset - pos));
            pos = field.offset + field.length;
        }
    }
    out.append(message.substr(pos, scan.header_end - pos));
    if (!out.empty() && out.back() != '\n') out.append("\r\n");  // a last field without its line end

    if (!has_destination) out.append("To: undisclosed-recipients:;\r\n");
    if (!find_field(fields, "Date")) out.append("Date: " + rfc5322_date(env.now) + "\r\n");  // RFC 6409 8.3
    if (!find_field(fields, "Message-ID")) {
        if (!env.random) return make_error(Errc::internal, "BuildEnv without a random source");
        out.append("Message-ID: " + generate_message_id(env) + "\r\n");  // RFC 6409 8.4
    }
    std::string_view rest = message.substr(scan.header_end);
    // A body that followed the header without a blank line gets one, so it stays the body.
    if (scan.body_offset == scan.header_end && !rest.empty()) out.append("\r\n");
    out.append(rest);
    return out;
}

std::vector<std::string> author_addresses(std::string_view message) {
    std::vector<HeaderField> fields;
    scan_header(message, 0, message.size(), ParseLimits{}, fields);
    Header header(fields);
    const HeaderField* from = header.find("From");
    if (!from) return {};
    const HeaderField* sender = header.find("Sender");
    std::vector<std::string> out;
    for (const auto& mailbox : mailboxes(parse_address_list((sender ? sender : from)->unfolded()))) {
        out.push_back(mailbox.local_part + "@" + mailbox.domain);
    }
    return out;
}

}  // namespace magpie::mail
