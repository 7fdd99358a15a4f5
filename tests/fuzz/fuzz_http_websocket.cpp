// JMAP over WebSocket on arbitrary bytes: the input, split at its first byte's offset, fed to the RFC 6455
// frame reader in two pieces, and every text message it yields read as an RFC 8887 message; also the input
// as a pushState token. Nothing may crash or hang; no message is over the reader's bound; text is UTF-8;
// a failed reader yields nothing more.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "base/strings.h"
#include "http/jmap_websocket.h"
#include "http/push.h"
#include "http/websocket.h"

namespace {

void check_at(bool condition, int line) {
    if (condition) return;
    std::fprintf(stderr, "check failed at line %d\n", line);
    std::abort();
}
#define check(condition) check_at((condition), __LINE__)

constexpr std::uint64_t kMaxMessage = 4096;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace ws = magpie::http::websocket;
    std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t split = size == 0 ? 0 : static_cast<std::size_t>(data[0]) % (size + 1);
    ws::Reader reader(kMaxMessage);
    for (std::string_view piece : {input.substr(0, split), input.substr(split)}) {
        reader.feed(piece);
        while (auto message = reader.next()) {
            check(reader.error() == 0);
            check(message->payload.size() <= kMaxMessage);
            if (message->opcode == ws::Opcode::text) {
                check(magpie::is_valid_utf8(message->payload));
                (void)magpie::http::parse_ws_message(message->payload, magpie::http::JsonLimits{16, 1024});
            }
        }
    }
    if (reader.error()) check(!reader.next());
    if (auto states = magpie::http::parse_push_state(input)) check(states->is_object());
    return 0;
}
