#include "mail/dsn.h"

#include <fmt/format.h>

#include "base/strings.h"
#include "base/time.h"
#include "mail/downgrade.h"
#include "mail/message.h"

namespace magpie::mail {

namespace {

// RFC 3463 2: class "." subject "." detail, each 1-3 digits; the class is 2, 4 or 5.
bool valid_status(std::string_view status) {
    auto pieces = split(status, '.');
    if (pieces.size() != 3) return false;
    for (auto piece : pieces) {
        if (piece.empty() || piece.size() > 3 || !parse_uint(piece)) return false;
    }
    return pieces[0] == "2" || pieces[0] == "4" || pieces[0] == "5";
}

// RFC 3464 2.3.3/2.3.4: a success is 2.x.x and a delay 4.x.x; a failure is 5.x.x, or 4.x.x when delivery
// gave up after transient errors (the RFC's own example A.1 is "failed" with 4.0.0).
bool status_fits_action(char status_class, DsnAction action) {
    switch (action) {
        case DsnAction::failed:
            return status_class == '5' || status_class == '4';
        case DsnAction::delayed:
            return status_class == '4';
        default:
            return status_class == '2';
    }
}

// A host name as it may appear after "dns;": printable ASCII without white space.
bool valid_host(std::string_view host) {
    if (host.empty() || host.size() > 255) return false;
    for (char ch : host) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f || ch == ';') return false;
    }
    return true;
}

// RFC 6533 3: utf-8-addr-xtext, non-ASCII and the few ASCII octets with a meaning become \x{HEX}.
std::string utf8_addr_xtext(std::string_view address) {
    std::string out;
    std::size_t i = 0;
    while (i < address.size()) {
        auto c = static_cast<unsigned char>(address[i]);
        if (c < 0x80) {
            if (c > 0x20 && c < 0x7f && c != '+' && c != '=' && c != '\\') {
                out.push_back(static_cast<char>(c));
            } else {
                out += fmt::format("\\x{{{:X}}}", c);
            }
            ++i;
            continue;
        }
        // Input is valid UTF-8 (checked by the caller): decode one code point.
        std::size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        std::uint32_t cp = c & (0x7f >> n);
        for (std::size_t k = 1; k < n && i + k < address.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(address[i + k]) & 0x3f);
        out += fmt::format("\\x{{{:X}}}", cp);
        i += n;
    }
    return out;
}

// "rfc822; user@domain", or RFC 6533's "utf-8; ..." for an internationalised address.
Result<std::string> typed_address(std::string_view address) {
    if (!is_valid_utf8(address)) return make_error(Errc::invalid_argument, "recipient is not valid UTF-8");
    for (char ch : address) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f)
            return make_error(Errc::invalid_argument, "control character in recipient");
    }
    if (is_ascii(address)) return "rfc822; " + std::string(address);
    return "utf-8; " + utf8_addr_xtext(address);
}

// The ORCPT as given: "type;address". Missing type means rfc822; non-ASCII is escaped as RFC 6533 says.
Result<std::string> original_recipient_field(std::string_view value) {
    std::size_t semi = value.find(';');
    if (semi == std::string_view::npos) return typed_address(value);
    std::string_view type = trim(value.substr(0, semi));
    std::string_view address = trim(value.substr(semi + 1));
    if (!is_valid_utf8(address)) return make_error(Errc::invalid_argument, "ORCPT is not valid UTF-8");
    if (!is_ascii(type) || type.empty()) return make_error(Errc::invalid_argument, "bad ORCPT type");
    return std::string(type) + "; " + (is_ascii(address) ? std::string(address) : utf8_addr_xtext(address));
}

// A remote reply as one printable ASCII line, cut to a bound.
std::string diagnostic_text(std::string_view reply, std::size_t max_octets) {
    std::string out;
    for (char ch : reply.substr(0, max_octets)) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '\r' || c == '\n' || c == '\t') {
            if (!out.empty() && out.back() != ' ') out.push_back(' ');
        } else if (c < 0x20 || c >= 0x7f) {
            out.push_back('?');
        } else {
            out.push_back(ch);
        }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

DsnAction most_serious(const std::vector<DsnRecipient>& recipients) {
    bool delayed = false;
    for (const auto& r : recipients) {
        if (r.action == DsnAction::failed) return DsnAction::failed;
        delayed = delayed || r.action == DsnAction::delayed;
    }
    return delayed ? DsnAction::delayed : DsnAction::delivered;
}

class FieldBlock {
public:
    Result<void> add(std::string_view name, std::string_view value) {
        auto folded = fold_field(name, value);
        if (!folded) return folded.error();
        out_.append(*folded);
        return {};
    }
    std::string& text() { return out_; }

private:
    std::string out_;
};

// RFC 3464 2.2 and 2.3: per-message fields, then one block per recipient, blank lines between.
Result<std::string> delivery_status(const DsnReport& report, const DsnLimits& limits) {
    FieldBlock block;
    MAGPIE_TRY(block.add("Reporting-MTA", "dns; " + report.reporting_mta));
    if (!report.envelope_id.empty()) {
        std::string id = diagnostic_text(report.envelope_id, 100);
        MAGPIE_TRY(block.add("Original-Envelope-Id", id));
    }
    if (!report.received_from_mta.empty()) {
        if (!valid_host(report.received_from_mta))
            return make_error(Errc::invalid_argument, "bad Received-From-MTA host");
        MAGPIE_TRY(block.add("Received-From-MTA", "dns; " + report.received_from_mta));
    }
    if (report.arrival_date) MAGPIE_TRY(block.add("Arrival-Date", rfc5322_date(*report.arrival_date)));
    for (const auto& r : report.recipients) {
        block.text().append("\r\n");
        if (!r.original_recipient.empty()) {
            auto orcpt = original_recipient_field(r.original_recipient);
            if (!orcpt) return orcpt.error();
            MAGPIE_TRY(block.add("Original-Recipient", *orcpt));
        }
        auto final_recipient = typed_address(r.final_recipient);
        if (!final_recipient) return final_recipient.error();
        MAGPIE_TRY(block.add("Final-Recipient", *final_recipient));
        MAGPIE_TRY(block.add("Action", dsn_action_name(r.action)));
        MAGPIE_TRY(block.add("Status", r.status));
        if (!r.remote_mta.empty()) MAGPIE_TRY(block.add("Remote-MTA", "dns; " + r.remote_mta));
        if (!r.diagnostic_code.empty()) {
            MAGPIE_TRY(
                block.add("Diagnostic-Code",
                          "smtp; " + diagnostic_text(r.diagnostic_code, limits.max_diagnostic_octets)));
        }
        if (r.last_attempt) MAGPIE_TRY(block.add("Last-Attempt-Date", rfc5322_date(*r.last_attempt)));
        if (r.will_retry_until) MAGPIE_TRY(block.add("Will-Retry-Until", rfc5322_date(*r.will_retry_until)));
    }
    return std::move(block.text());
}

// Indented lines of at most 78 octets, broken at spaces where there are any, so the text part stays 7bit.
std::string wrap_lines(std::string_view text) {
    constexpr std::size_t kWidth = 74;  // after the four-space indent
    std::string out;
    while (!text.empty()) {
        std::size_t cut = text.size();
        if (cut > kWidth) {
            cut = text.rfind(' ', kWidth);
            if (cut == std::string_view::npos || cut == 0) cut = kWidth;
        }
        out.append("    ").append(text.substr(0, cut)).append("\r\n");
        text.remove_prefix(cut);
        while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    }
    return out;
}

std::string human_text(const DsnReport& report, DsnAction overall, const DsnLimits& limits) {
    std::string text = "This is the mail system at host " + report.reporting_mta + ".\r\n\r\n";
    switch (overall) {
        case DsnAction::failed:
            text +=
                "Your message could not be delivered to one or more recipients.\r\n"
                "The details are below, and the original message (or its header) is attached.\r\n";
            break;
        case DsnAction::delayed:
            text +=
                "Your message has not yet been delivered to one or more recipients.\r\n"
                "Delivery is still being tried: you do not need to send the message again.\r\n";
            break;
        default:
            text += "Your message was delivered as follows.\r\n";
            break;
    }
    for (const auto& r : report.recipients) {
        text += "\r\n<" + r.final_recipient + ">: ";
        switch (r.action) {
            case DsnAction::failed:
                text += "delivery failed";
                break;
            case DsnAction::delayed:
                text += "delivery delayed";
                break;
            case DsnAction::delivered:
                text += "delivered";
                break;
            case DsnAction::relayed:
                text += "relayed to a server that sends no notifications";
                break;
            case DsnAction::expanded:
                text += "delivered and expanded to more recipients";
                break;
        }
        text += " (" + r.status + ")\r\n";
        if (!r.diagnostic_code.empty()) {
            std::string who = r.remote_mta.empty() ? std::string("The server") : "The server " + r.remote_mta;
            text += wrap_lines(who +
                               " said: " + diagnostic_text(r.diagnostic_code, limits.max_diagnostic_octets));
        }
        if (r.will_retry_until)
            text += "    Delivery will be tried until " + rfc5322_date(*r.will_retry_until) + ".\r\n";
    }
    return text;
}

// The original, whole (message/rfc822) or its header only (text/rfc822-headers, RFC 6522 4).
Result<EncodedPart> returned_part(const DsnReport& report, const BuildOptions& options,
                                  const DsnLimits& limits) {
    std::string_view original = report.original_message;
    if (report.return_content == DsnReturn::full && original.size() <= limits.max_returned_octets) {
        auto fitted = fit_enclosed_message(original, options.transport);
        if (fitted) {
            auto part = make_leaf("message/rfc822", *fitted, false, options.transport, options.fold);
            if (part) return part;
        }
        // Not returnable whole on this transport: the header still tells the sender which message it was.
    }
    std::vector<HeaderField> fields;
    HeaderScan scan = scan_header(original, 0, original.size(), ParseLimits{}, fields);
    std::string_view header = original.substr(0, scan.header_end);
    return make_leaf("text/rfc822-headers", header, true, options.transport, options.fold);
}

}  // namespace

std::string_view dsn_action_name(DsnAction action) {
    switch (action) {
        case DsnAction::failed:
            return "failed";
        case DsnAction::delayed:
            return "delayed";
        case DsnAction::delivered:
            return "delivered";
        case DsnAction::relayed:
            return "relayed";
        case DsnAction::expanded:
            return "expanded";
    }
    return "failed";
}

Result<std::string> build_dsn(const DsnReport& report, const BuildOptions& options, const BuildEnv& env,
                              const DsnLimits& limits) {
    if (!env.random) return make_error(Errc::internal, "BuildEnv without a random source");
    if (!valid_host(report.reporting_mta))
        return make_error(Errc::invalid_argument, "bad Reporting-MTA host");
    if (report.recipients.empty()) return make_error(Errc::invalid_argument, "a DSN needs a recipient");
    if (report.recipients.size() > limits.max_recipients)
        return make_error(Errc::limit_exceeded, "too many recipients in one DSN");
    for (const auto& r : report.recipients) {
        if (!valid_status(r.status))
            return make_error(Errc::invalid_argument, "bad status code: " + r.status);
        if (!status_fits_action(r.status[0], r.action))
            return make_error(Errc::invalid_argument, "status " + r.status + " does not match the action");
        if (!r.remote_mta.empty() && !valid_host(r.remote_mta))
            return make_error(Errc::invalid_argument, "bad Remote-MTA host");
    }

    DsnAction overall = most_serious(report.recipients);
    MailboxSpec postmaster{"Mail Delivery System", report.postmaster.empty()
                                                       ? "MAILER-DAEMON@" + report.reporting_mta
                                                       : report.postmaster};
    std::string_view subject = overall == DsnAction::failed    ? "Undelivered Mail Returned to Sender"
                               : overall == DsnAction::delayed ? "Delayed Mail (still being retried)"
                                                               : "Delivery Status Notification";
    const bool utf8 = options.utf8_headers;
    FieldBlock top;
    MAGPIE_TRY(top.add("Date", rfc5322_date(env.now)));
    auto from = format_mailbox(postmaster, utf8);
    if (!from) return from.error();
    MAGPIE_TRY(top.add("From", *from));
    auto to = format_addr_spec(report.to, utf8);
    if (!to) return to.error();
    MAGPIE_TRY(top.add("To", *to));
    MAGPIE_TRY(top.add("Subject", subject));
    MAGPIE_TRY(top.add("Message-ID", generate_message_id(env)));
    MAGPIE_TRY(top.add("Auto-Submitted", "auto-replied"));  // RFC 3834 5: never answer this automatically

    std::vector<EncodedPart> parts;
    auto text = make_leaf("text/plain; charset=utf-8", human_text(report, overall, limits), true,
                          options.transport, options.fold);
    if (!text) return text.error();
    parts.push_back(std::move(text).value());
    auto status_fields = delivery_status(report, limits);
    if (!status_fields) return status_fields.error();
    auto status = make_leaf("message/delivery-status", *status_fields, true, options.transport, options.fold);
    if (!status) return status.error();
    parts.push_back(std::move(status).value());
    auto original = returned_part(report, options, limits);
    if (!original) return original.error();
    parts.push_back(std::move(original).value());

    auto report_part = make_multipart("report", std::move(parts), env, {"report-type=delivery-status"});
    if (!report_part) return report_part.error();
    return assemble_message(top.text(), *report_part);
}

}  // namespace magpie::mail
