// The JMAP core on arbitrary bytes: the request body through the bounded JSON parse, the request checks,
// result references and dispatch (Core/echo plus a method returning nested data to point into), and the
// HTTP helpers (Authorization, EventSource query, download names and types), and the Email properties
// computed from message bytes (http/email_view.h: every header form, parseStructure, body values, parts),
// both on the raw input and through a method with implicit responses (as EmailSubmission/set makes).
// Nothing may crash, hang or grow without bound; a view's body values stay within maxBodyValueBytes and its
// JSON text is valid JSON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "http/api.h"
#include "http/email_view.h"
#include "http/message.h"

namespace {

void check_at(bool condition, int line) {
    if (condition) return;
    std::fprintf(stderr, "check failed at line %d\n", line);
    std::abort();
}
#define check(condition) check_at((condition), __LINE__)

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
        // Email/parse's shape: a message given in the request, viewed with the asked properties; an implicit
        // response follows (EmailSubmission/set's onSuccessUpdateEmail).
        made->add("Fuzz/parse", "urn:fuzz", [](const nlohmann::json& args, magpie::http::CallContext& context)
                                                -> magpie::http::MethodOutcome {
            auto message = args.find("message");
            auto properties = args.find("properties");
            if (message == args.end() || !message->is_string() || properties == args.end() || !properties->is_array()) {
                return magpie::http::MethodError{"invalidArguments", "message and properties"};
            }
            std::vector<std::string> names;
            for (const auto& p : *properties) {
                if (p.is_string() && magpie::http::is_message_property(p.get<std::string>())) names.push_back(p.get<std::string>());
            }
            magpie::http::BodyValueOptions options;
            options.fetch_all = args.value("all", false) == true;
            options.max_bytes = 64;
            context.implicit_responses.emplace_back("Fuzz/implicit", nlohmann::json::object());
            return magpie::http::email_view(message->get_ref<const std::string&>(), "b", names, options);
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
    (void)magpie::http::content_disposition(text);
    (void)magpie::http::safe_media_type(text);
    (void)magpie::http::parse_utc_date(text);
    (void)magpie::http::split_part_blob_id(text);
    if (size <= 65536) {
        static const std::vector<std::string> all = {
            "headers", "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo",
            "subject", "sentAt", "bodyStructure", "textBody", "htmlBody", "attachments", "hasAttachment", "preview",
            "bodyValues", "header:To:asGroupedAddresses:all", "header:List-Post:asURLs", "header:Date:asDate",
            "header:X:asText"};
        magpie::http::BodyValueOptions options;
        options.fetch_all = true;
        options.max_bytes = 100;
        auto view = magpie::http::email_view(text, "b", all, options);
        // maxBodyValueBytes bounds each value (RFC 8621 4.2), cut on a character boundary.
        for (const auto& [id, body] : view["bodyValues"].items()) {
            check(body["value"].get_ref<const std::string&>().size() <= options.max_bytes);
        }
        // Raw 8-bit octets (an address, a header's raw value) are replaced when written, never passed on.
        check(nlohmann::json::accept(magpie::http::to_json_text(view)));
        (void)magpie::http::part_content(text, static_cast<std::uint32_t>(size % 7));
    }
    return 0;
}
