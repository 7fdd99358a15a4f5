// Fuzzes reading a stored structure blob (it comes from disk, which may be corrupt): Structure::parse must
// reject or accept without crashing, and sections over an accepted blob must stay inside the message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mail/imap_view.h"
#include "mail/structure.h"

using namespace magpie::mail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view blob(reinterpret_cast<const char*>(data), size);
    auto s = Structure::parse(blob);
    if (!s) return 0;
    std::string message(s->message_size() > 1 << 16 ? 0 : s->message_size(), 'x');
    static const char* kSpecs[] = {"", "HEADER", "TEXT", "1", "1.MIME", "2.1", "1.HEADER", "HEADER.FIELDS (A)"};
    for (const char* text : kSpecs) {
        auto spec = parse_section(text);
        if (auto d = fetch_section(s->parts(), message, *spec)) (void)d->materialize(message);
        if (!spec->part.empty()) (void)fetch_binary(s->parts(), message, spec->part);
    }
    return 0;
}
