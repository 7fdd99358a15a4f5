#include "mail/summary.h"

#include "mail/address.h"
#include "mail/charset.h"
#include "mail/date.h"
#include "mail/encoded_word.h"
#include "mail/mime.h"
#include "mail/structure.h"

namespace magpie::mail {
namespace {

std::string join_ids(const std::vector<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) {
        if (!out.empty()) out.push_back(' ');
        out += id;
    }
    return out;
}

}  // namespace

Summary summarize(std::string_view message, const ParseLimits& limits) {
    Message parsed = Message::parse(message, limits);
    Header header = parsed.header();
    Summary s;
    s.subject = decode_encoded_words(header.value("Subject"));
    s.from = format_address_list(parse_address_list(header.value("From")));
    s.to = format_address_list(parse_address_list(header.value("To")));
    s.cc = format_address_list(parse_address_list(header.value("Cc")));
    s.date = guess_to_utf8(header.value("Date"));
    if (auto when = parse_date(s.date)) s.sent_at = when->unix_seconds;
    if (const HeaderField* f = header.find("Message-ID")) {
        auto ids = parse_message_ids(f->raw_value, 1);
        if (!ids.empty()) s.message_id = guess_to_utf8(ids.front());
    }
    if (const HeaderField* f = header.find("In-Reply-To")) s.in_reply_to = guess_to_utf8(join_ids(parse_message_ids(f->raw_value)));
    if (const HeaderField* f = header.find("References")) s.references = guess_to_utf8(join_ids(parse_message_ids(f->raw_value)));
    s.structure = serialize_structure(parsed);
    return s;
}

}  // namespace magpie::mail
