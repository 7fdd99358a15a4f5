// Fuzzes imap::Parser with arbitrary client bytes, cut into feeds of input-chosen sizes, switching modes the
// way a session would (SASL after AUTHENTICATE, DONE after IDLE, UTF-8 names after ENABLE). Checks what the
// IO layer relies on: memory stays within the limits, error tags are valid tags or "*", how the stream is
// cut never changes the events, and names and sequence sets survive a write/parse round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/strings.h"
#include "imap/grammar.h"
#include "imap/mutf7.h"
#include "imap/parser.h"
#include "imap/writer.h"

namespace {

using namespace magpie;
using namespace magpie::imap;

void check(bool condition) {
    if (!condition) std::abort();
}

Limits small_limits() {
    Limits limits;
    limits.max_line_octets = 512;
    limits.max_literal_octets = 2048;
    limits.max_non_sync_literal_octets = 256;
    limits.max_nesting_depth = 8;
    limits.max_sequence_set_ranges = 16;
    limits.max_search_keys = 32;
    return limits;
}

// One line per event, enough to compare two runs.
std::string describe(const Event& event) {
    if (const auto* command = std::get_if<Command>(&event))
        return "C " + command->tag + " " + command_name(command->body);
    if (std::holds_alternative<ContinuationRequest>(event)) return "+";
    if (const auto* sasl = std::get_if<SaslResponse>(&event)) return "S " + sasl->text;
    if (std::holds_alternative<IdleDone>(event)) return "D";
    const auto& error = std::get<ParseError>(event);
    return "E " + error.tag + " " + error.code + " " + error.message;
}

void check_event(const Event& event, bool utf8) {
    if (const auto* error = std::get_if<ParseError>(&event)) {
        check(error->tag == "*" || is_valid_tag(error->tag));
        std::string reply = error_response(*error);
        check(reply.find('\n') == reply.size() - 1);
        return;
    }
    const auto* command = std::get_if<Command>(&event);
    if (command == nullptr) return;
    check(is_valid_tag(command->tag));
    const auto* select = std::get_if<Select>(&command->body);
    if (select && !command->undecodable_mailbox) {
        // A decoded name goes back out in the client's encoding and parses to the same name. (A name that does
        // not decode names no mailbox: the session answers NO without looking at it.)
        ResponseWriter writer(utf8);
        writer.mailbox(select->mailbox);
        std::string line = "t SELECT " + writer.take() + "\r\n";
        Parser again;
        again.set_utf8_mailbox_names(utf8);
        again.feed(line);
        auto reparsed = again.next();
        if (reparsed && std::holds_alternative<ContinuationRequest>(*reparsed)) reparsed = again.next();
        check(reparsed && std::holds_alternative<Command>(*reparsed));
        check(std::get<Select>(std::get<Command>(*reparsed).body).mailbox == select->mailbox);
        if (!utf8) {
            auto encoded = mutf7_encode(select->mailbox);
            check(encoded.ok());
        }
    }
    if (const auto* login = std::get_if<Login>(&command->body)) {
        // Whatever form the writer picks (atom, quoted, literal), the parser reads back the same octets.
        ResponseWriter writer(utf8);
        writer.tagged("t").atom("LOGIN").astring(login->user).astring(login->password).end();
        Parser again;
        again.feed(writer.take());
        std::optional<Event> reparsed;
        while ((reparsed = again.next()) && std::holds_alternative<ContinuationRequest>(*reparsed)) {
        }
        check(reparsed && std::holds_alternative<Command>(*reparsed));
        check(std::get<Login>(std::get<Command>(*reparsed).body) == *login);
    }
    if (const auto* fetch = std::get_if<Fetch>(&command->body)) {
        auto set = SequenceSet::parse(fetch->set.to_string(), 1 << 20);
        check(set.ok() && *set == fetch->set);
    }
}

std::vector<std::string> run(const std::uint8_t* data, std::size_t size, std::size_t chunk) {
    Limits limits = small_limits();
    Parser parser(limits);
    bool utf8 = false;
    std::vector<std::string> out;
    for (std::size_t at = 0; at < size; at += chunk) {
        std::size_t n = std::min(chunk, size - at);
        parser.feed(std::string_view(reinterpret_cast<const char*>(data + at), n));
        while (auto event = parser.next()) {
            check_event(*event, utf8);
            out.push_back(describe(*event));
            if (const auto* command = std::get_if<Command>(&*event)) {
                if (std::holds_alternative<Idle>(command->body)) parser.expect_idle_done();
                if (const auto* auth = std::get_if<Authenticate>(&command->body)) {
                    if (!auth->initial_response) parser.expect_sasl_response();
                }
                if (const auto* enable = std::get_if<Enable>(&command->body)) {
                    for (const std::string& name : enable->capabilities) {
                        if (name == "UTF8=ACCEPT" || name == "IMAP4REV2") utf8 = true;
                    }
                    parser.set_utf8_mailbox_names(utf8);
                }
            }
        }
        // Everything held is the unread part of this feed plus what the limits allow for one command.
        check(parser.buffered_octets() <= limits.max_line_octets + limits.max_literal_octets + chunk + 2);
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0 || size > 1 << 16) return 0;
    std::size_t chunk = 1 + data[0] % 17;
    auto whole = run(data + 1, size - 1, size);
    auto split = run(data + 1, size - 1, chunk);
    check(whole == split);
    return 0;
}
