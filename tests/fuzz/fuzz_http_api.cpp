// The JMAP core on arbitrary bytes: the request body through the bounded JSON parse, the request checks,
// result references and dispatch (core/echo plus a method returning nested data to point into), and the
// HTTP helpers (Authorization, EventSource query). Nothing may crash, hang or grow without bound.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/api.h"
#include "http/message.h"

namespace {

magpie::http::Dispatcher& dispatcher() {
    static magpie::http::Dispatcher* d = [] {
        magpie::http::ApiLimits limits;
        limits.max_calls_in_request = 16;
        limits.json.max_depth = 32;
        limits.json.max_string_octets = 4096;
        auto* made = new magpie::http::Dispatcher(limits);
        made->add_capability("urn:fuzz");
        made->add("Fuzz/get", "urn:fuzz", [](const nlohmann::json& args, magpie::http::CallContext&)
                                              -> magpie::http::MethodOutcome {
            if (args.contains("fail")) return magpie::http::MethodError{"invalidArguments", "asked to"};
            return nlohmann::json{{"list", {{{"id", "a"}, {"n", {1, 2}}}, {{"id", "b"}, {"n", {3}}}}}, {"ids", {"a", "b"}}};
        });
        return made;
    }();
    return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto outcome = dispatcher().handle(text, "s");
    if (auto* response = std::get_if<nlohmann::json>(&outcome)) (void)magpie::http::to_json_text(*response);
    (void)magpie::http::parse_authorization(text);
    (void)magpie::http::parse_event_source_query(text);
    return 0;
}
