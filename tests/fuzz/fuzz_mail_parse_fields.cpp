// Fuzzes the structured-field parsers on one header value: addresses, dates, msg-ids, Content-Type and
// Content-Disposition with RFC 2231, and RFC 2047 words. Decoded output must always be valid UTF-8, and an
// address written again by addr_spec() reads back as itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/strings.h"
#include "mail/address.h"
#include "mail/date.h"
#include "mail/encoded_word.h"
#include "mail/message.h"
#include "mail/mime_params.h"

using namespace magpie::mail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view value(reinterpret_cast<const char*>(data), size);
    for (const Address& a : parse_address_list(value)) {
        if (!magpie::is_valid_utf8(a.group_name)) __builtin_trap();
        for (const Mailbox& m : a.members) {
            if (!magpie::is_valid_utf8(m.name)) __builtin_trap();
            (void)m.display();
            // addr_spec() writes the address again (quoting the local part where RFC 5322 3.4.1 needs it),
            // as JMAP, IMAP and replies use it: it reads back as the same one address.
            if (m.domain.empty()) continue;
            auto again = parse_address_list(m.addr_spec());
            if (again.size() != 1 || again[0].is_group || again[0].members.size() != 1) __builtin_trap();
            if (again[0].members[0].local_part != m.local_part || again[0].members[0].domain != m.domain)
                __builtin_trap();
        }
    }
    (void)parse_date(value);
    (void)parse_message_ids(value);
    ContentType ct = parse_content_type(value);
    for (const Parameter& p : ct.params.decoded) {
        if (!magpie::is_valid_utf8(p.value)) __builtin_trap();
    }
    (void)parse_content_disposition(value);
    if (!magpie::is_valid_utf8(decode_encoded_words(value))) __builtin_trap();
    return 0;
}
