#include "smtp/delivered.h"

#include <fmt/format.h>

#include <ctime>
#include <vector>

#include "base/time.h"
#include "mail/message.h"

namespace magpie::smtp {
namespace {

// Keeps a configured or generated name inside a msg-id's dot-atom-text (RFC 5322 3.6.4).
std::string id_safe(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 255)) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == '_';
        out.push_back(ok ? c : '_');
    }
    return out.empty() ? std::string("localhost") : out;
}

// Postfix's form: <YYYYMMDDhhmmss.queueid@hostname>, the time in UTC.
std::string message_id(const DeliveryStamp& stamp) {
    std::time_t t = static_cast<std::time_t>(stamp.unix_time);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("<{:04}{:02}{:02}{:02}{:02}{:02}.{}@{}>", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, id_safe(stamp.queue_id), id_safe(stamp.hostname));
}

// The fields a message without them gets; `header` is its own header section (empty when it has none).
std::string missing_fields(const mail::Header& header, const Envelope& envelope, const DeliveryStamp& stamp) {
    std::string out;
    if (!header.has("Message-ID")) out += fmt::format("Message-ID: {}\r\n", message_id(stamp));
    if (!header.has("Date")) out += fmt::format("Date: {}\r\n", rfc5322_date(stamp.unix_time));
    if (!header.has("From")) {
        // The reverse-path is an RFC 5321 Mailbox, which is a valid RFC 5322 addr-spec (quotes and
        // address literals included; UTF-8 only under SMTPUTF8, where RFC 6532 allows it).
        std::string sender = envelope.reverse_path.empty()
                                 ? fmt::format("MAILER-DAEMON@{}", id_safe(stamp.hostname))
                                 : envelope.reverse_path;
        out += fmt::format("From: {}\r\n", sender);
    }
    return out;
}

}  // namespace

std::string delivered_message(std::string_view trace_fields, const Envelope& envelope, std::string_view data,
                              const DeliveryStamp& stamp) {
    std::string out;
    out.reserve(trace_fields.size() + data.size() + 256);
    out += trace_fields;

    // Where the message's own header section ends. Only a field on the very first line starts one: a first
    // line of text, a folded line (which would continue the trace fields) or an mbox "From " line does not.
    std::vector<mail::HeaderField> fields;
    mail::HeaderScan scan = mail::scan_header(data, 0, data.size(), mail::ParseLimits{}, fields);
    bool has_header = !fields.empty() && fields.front().offset == 0;
    if (has_header && scan.limit_hit) {
        // A header section too large to scan whole: store it as it came rather than guess where it ends.
        out += data;
        return out;
    }
    bool add = stamp.add_missing == AddMissingHeaders::always ||
               (stamp.add_missing == AddMissingHeaders::headerless && !has_header);
    if (!has_header) {
        if (add) out += missing_fields(mail::Header{}, envelope, stamp);
        // The empty line that ends the (added) header section, unless the data begins with one already.
        if (!data.empty() && !data.starts_with("\r\n")) out += "\r\n";
        out += data;
        return out;
    }
    out += data.substr(0, scan.header_end);
    if (add) out += missing_fields(mail::Header(fields), envelope, stamp);
    // Ended by a line that is not a field and not empty: RFC 5322 2.1 wants the empty line (Postfix's
    // cleanup inserts it into the primary header the same way).
    if (scan.body_offset == scan.header_end && scan.header_end < data.size()) out += "\r\n";
    out += data.substr(scan.header_end);
    return out;
}

}  // namespace magpie::smtp
