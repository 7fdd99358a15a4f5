// Fuzzes the IMAP client's response reader and connection state machine with arbitrary server bytes, cut
// into feeds of input-chosen sizes. Checks what `magpie mail` relies on: memory stays within the limits,
// how the stream is cut never changes the responses, every response's typed reading (FETCH, ENVELOPE,
// BODYSTRUCTURE, LIST, SEARCH, UIDPLUS codes) returns a value or an error and never crashes, and the
// client never writes a command before the greeting nor a literal's bytes before "+"; and our server's
// writer and this client's reader (and this client's writer and our server's parser) agree on names and
// strings.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/strings.h"
#include "imap/client/client.h"
#include "imap/client/data.h"
#include "imap/client/response.h"
#include "imap/parser.h"
#include "imap/writer.h"
#include "mail/imap_view.h"
#include "mail/mime.h"

namespace {

using namespace magpie::imap::client;

void check_at(bool condition, int line) {
    if (condition) return;
    std::fprintf(stderr, "check failed at line %d\n", line);
    std::abort();
}
#define check(condition) check_at((condition), __LINE__)

ResponseLimits small_limits() {
    ResponseLimits limits;
    limits.max_line_octets = 512;
    limits.max_literal_octets = 2048;
    limits.max_response_octets = 4096;
    limits.max_depth = 12;
    return limits;
}

void describe_value(const Value& v, std::string& out) {
    out += std::to_string(static_cast<int>(v.kind)) + ":" + v.text;
    if (v.is_list()) {
        out += "(";
        for (const auto& item : v.items) describe_value(item, out);
        out += ")";
    }
    out += ' ';
}

// One line per response, enough to compare two runs; also exercises the typed readings.
std::string describe(const Response& response) {
    std::string out;
    if (const auto* u = std::get_if<Untagged>(&response)) {
        out = "* " + (u->number ? std::to_string(*u->number) + " " : "") + u->name + " " + u->text.code +
              "[" + u->text.code_args + "]" + u->text.text + " ";
        for (const auto& v : u->data) describe_value(v, out);
        if (auto f = parse_fetch(*u)) {
            check(f->sequence == *u->number);
            if (f->body_structure) (void)f->body_structure->filename();
        }
        (void)parse_list(*u);
        (void)parse_search(*u);
        for (const auto& v : u->data) {
            (void)parse_envelope(v);
            (void)parse_body_structure(v);
        }
    } else if (const auto* t = std::get_if<Tagged>(&response)) {
        out = t->tag + " " + std::to_string(static_cast<int>(t->status)) + t->text.code + t->text.text;
        (void)parse_append_uid(t->text);
        (void)parse_copy_uid(t->text);
    } else if (const auto* c = std::get_if<Continuation>(&response)) {
        out = "+ " + c->text;
    } else {
        out = "malformed " + std::get<Malformed>(response).reason;
    }
    return out;
}

std::vector<std::string> run(std::string_view input, const std::vector<std::size_t>& cuts, bool* fatal) {
    const auto limits = small_limits();
    ResponseParser parser(limits);
    std::vector<std::string> out;
    std::size_t pos = 0;
    for (std::size_t i = 0; pos < input.size(); ++i) {
        std::size_t n = cuts.empty() ? input.size() : std::max<std::size_t>(1, cuts[i % cuts.size()]);
        n = std::min(n, input.size() - pos);
        parser.feed(input.substr(pos, n));
        pos += n;
        while (auto r = parser.next()) out.push_back(describe(*r));
        if (!parser.fatal()) check(parser.buffered() <= limits.max_response_octets + n);
    }
    *fatal = parser.fatal().has_value();
    return out;
}

void drive_client(std::string_view input, const std::vector<std::size_t>& cuts) {
    ClientLimits limits;
    limits.response = small_limits();
    limits.max_untagged_per_command = 64;
    Client client(limits);
    Command append("APPEND");
    append.mailbox("INBOX").literal("literal bytes");
    (void)client.submit(append);
    (void)client.submit(Command("NOOP"));
    std::size_t pos = 0;
    for (std::size_t i = 0; pos < input.size(); ++i) {
        std::size_t n = cuts.empty() ? input.size() : std::max<std::size_t>(1, cuts[i % cuts.size()]);
        n = std::min(n, input.size() - pos);
        client.feed(input.substr(pos, n));
        pos += n;
        std::string out = client.take_output();
        if (!client.greeted()) check(out.empty());
        while (client.poll_event()) {
        }
    }
    client.connection_closed("end of input");
    check(client.closed());
}

// Our server's writer and our client's reader agree: a mailbox name (any UTF-8, in modified UTF-7 or as
// UTF-8) and a string (quoted or literal) the server writes reach the client as they were; a name, a
// user name and a password the client writes reach the server's parser as they were.
void check_interop(std::string_view value) {
    if (value.find('\0') != std::string_view::npos) return;  // NUL goes out as 0x80 (writer.h), on purpose
    const bool utf8_name = magpie::is_valid_utf8(value);
    for (bool utf8 : {false, true}) {
        magpie::imap::ResponseWriter writer(utf8);
        if (utf8_name)
            writer.untagged().atom("LIST").open_list().close_list().string("/").mailbox(value).end();
        writer.untagged().number(1).atom("FETCH").open_list().atom("BODY[]").string(value).close_list().end();
        ResponseParser parser(ResponseLimits{});
        parser.feed(writer.take());
        if (utf8_name) {
            auto list = parser.next();
            check(list && std::holds_alternative<Untagged>(*list));
            auto entry = parse_list(std::get<Untagged>(*list), utf8);
            check(entry && entry->name == value);
        }
        auto fetch = parser.next();
        check(fetch && std::holds_alternative<Untagged>(*fetch));
        auto data = parse_fetch(std::get<Untagged>(*fetch));
        check(data && data->sections.count("BODY[]") == 1 && data->sections.at("BODY[]") == value);
        check(!parser.next());

        Command select("SELECT");
        select.mailbox(value, utf8);
        Command login("LOGIN");
        login.astring(value).astring(std::string(value) + "x");
        magpie::imap::Parser server;
        server.set_utf8_mailbox_names(utf8);
        for (const Command* command : {&select, &login}) {
            if (command->error()) {
                check(command == &select && !utf8_name);
                continue;
            }
            for (const auto& piece : command->finish("t")) {
                server.feed(piece.text);
                if (!piece.literal) continue;
                // The announcement is the client's to write (client.cpp: {n} or {n+}).
                server.feed("{" + std::to_string(piece.literal->size()) + "}\r\n");
                server.feed(*piece.literal);
            }
            std::optional<magpie::imap::Event> event;
            while ((event = server.next()) &&
                   std::holds_alternative<magpie::imap::ContinuationRequest>(*event)) {
            }
            check(event && std::holds_alternative<magpie::imap::Command>(*event));
            const auto& body = std::get<magpie::imap::Command>(*event).body;
            if (command == &select) {
                check(std::get<magpie::imap::Select>(body).mailbox == value);
            } else {
                const auto& got = std::get<magpie::imap::Login>(body);
                check(got.user == value && got.password == std::string(value) + "x");
            }
        }
    }
}

// Whatever message our server describes, our client reads the ENVELOPE and BODYSTRUCTURE it writes
// (mail/imap_view.h): every sender address and every leaf part arrives.
void check_views(std::string_view raw) {
    magpie::mail::ParseLimits limits;
    limits.max_depth = 16;
    limits.max_parts = 200;
    magpie::mail::Message message = magpie::mail::Message::parse(raw, limits);
    std::string line = "* 1 FETCH (ENVELOPE " + magpie::mail::imap_envelope(message) + " BODYSTRUCTURE " +
                       magpie::mail::imap_body_structure(message, true) + ")\r\n";
    ResponseParser parser(ResponseLimits{});
    parser.feed(line);
    auto response = parser.next();
    check(response && std::holds_alternative<Untagged>(*response));
    auto data = parse_fetch(std::get<Untagged>(*response));
    check(data && data->envelope && data->body_structure);
    std::size_t leaves = 0, message_leaves = 0;
    for (const auto& part : message.parts()) {
        if (part.kind == magpie::mail::PartKind::leaf) ++message_leaves;
    }
    auto count = [&](auto& self, const BodyStructure& node) -> void {
        // (A multipart without a boundary is a leaf, written as a basic body of type "multipart".)
        if (node.children.empty()) ++leaves;
        for (const auto& child : node.children) self(self, child);
    };
    count(count, *data->body_structure);
    check(leaves == message_leaves);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // The first bytes choose the cuts; the rest is the server's stream.
    std::size_t header = size > 0 ? std::min<std::size_t>(data[0] % 8, size - 1) : 0;
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i <= header; ++i) cuts.push_back(data[i] % 64 + 1);
    std::size_t skip = size > 0 ? header + 1 : 0;
    std::string_view input(reinterpret_cast<const char*>(data) + skip, size - skip);

    bool whole_fatal = false, cut_fatal = false;
    auto whole = run(input, {}, &whole_fatal);
    auto cut = run(input, cuts, &cut_fatal);
    check(whole == cut);
    check(whole_fatal == cut_fatal);
    drive_client(input, cuts);
    if (input.size() <= 4096) {
        check_interop(input);
        check_views(input);
    }
    return 0;
}
