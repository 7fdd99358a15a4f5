// Fuzzes the whole reading path: MIME tree, IMAP views, every section, BINARY, the serialized structure
// (which must round-trip and serve the same sections) and the delivery summary.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/strings.h"
#include "mail/decode.h"
#include "mail/imap_view.h"
#include "mail/mime.h"
#include "mail/structure.h"
#include "mail/summary.h"

using namespace magpie::mail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view raw(reinterpret_cast<const char*>(data), size);
    ParseLimits limits;
    limits.max_parts = 200;
    limits.max_depth = 16;
    Message m = Message::parse(raw, limits);
    for (const Part& p : m.parts()) {
        if (p.header_offset > p.body_offset || p.body_offset > p.end || p.end > raw.size()) __builtin_trap();
        if (p.kind == PartKind::leaf && std::string_view(p.type).size() < 64) (void)decode_text(m, p);
    }
    std::string blob = serialize_structure(m);
    auto s = Structure::parse(blob);
    if (!s || s->parts().size() != m.parts().size()) __builtin_trap();
    static const char* kSpecs[] = {"", "HEADER", "TEXT", "1", "1.MIME", "2", "1.1", "1.2.HEADER", "2.TEXT",
                                   "HEADER.FIELDS (From Subject)", "1.HEADER.FIELDS.NOT (To)", "3.1.2"};
    for (const char* text : kSpecs) {
        auto spec = parse_section(text);
        auto a = fetch_section(m.parts(), raw, *spec);
        auto b = fetch_section(s->parts(), raw, *spec);
        if (a.ok() != b.ok()) __builtin_trap();
        if (a && a->materialize(raw) != b->materialize(raw)) __builtin_trap();
        if (!spec->part.empty()) {
            auto bin = fetch_binary(m.parts(), raw, spec->part);
            auto bin_size = binary_size(m.parts(), raw, spec->part);
            if (bin.ok() != bin_size.ok() || (bin && bin->size() != *bin_size)) __builtin_trap();
        }
    }
    Summary summary = summarize(raw, limits);
    for (const std::string* text : {&summary.subject, &summary.from, &summary.to, &summary.cc, &summary.date,
                                    &summary.message_id, &summary.in_reply_to, &summary.references}) {
        if (!magpie::is_valid_utf8(*text)) __builtin_trap();  // decoded fields are always UTF-8
    }
    return 0;
}
