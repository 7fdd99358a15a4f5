// libFuzzer target: the write side of the message library. Header encoding and folding either fail cleanly
// or give 7-bit lines within 998 octets that our readers decode back to the input (unstructured text, a
// display name in a mailbox, a filename parameter); a built message is 7-bit and parses back to the same
// text; a bounce about any message with any diagnostic can be built and reads as its three parts; the 7-bit
// downgrade of any input either fails cleanly or is 7-bit with the same leaf bodies.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/strings.h"
#include "mail/address.h"
#include "mail/builder.h"
#include "mail/decode.h"
#include "mail/downgrade.h"
#include "mail/dsn.h"
#include "mail/encoded_word.h"
#include "mail/header_encode.h"
#include "mail/message.h"
#include "mail/mime.h"
#include "mail/mime_params.h"

namespace {

using namespace magpie;
using namespace magpie::mail;

void check_at(bool ok, int line) {
    if (ok) return;
    std::fprintf(stderr, "check failed at line %d\n", line);
    std::abort();
}
#define check(ok) check_at((ok), __LINE__)

void check_lines(std::string_view text, std::size_t max) {
    std::size_t column = 0;
    for (char c : text) {
        if (c == '\r') continue;
        column = c == '\n' ? 0 : column + 1;
        check(column <= max);
    }
}

// A phrase's words mean the same whatever white space separates them (RFC 5322 3.2.5).
std::string collapse_wsp(std::string_view s) {
    std::string out;
    for (char c : trim(s)) {
        bool space = c == ' ' || c == '\t';
        if (space && !out.empty() && out.back() == ' ') continue;
        out.push_back(space ? ' ' : c);
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);

    // Each header writer's output reads back, through our own readers, as the text it was given.
    if (auto words = encode_unstructured(input)) {
        check(is_ascii(*words));
        check(decode_encoded_words(*words) == input);
        auto folded = fold_field("Subject", *words);
        if (folded) {
            check_lines(*folded, 998);
            // A reader trims the white space around a field body (unfold), so only that may be lost.
            check(trim(decode_encoded_words(unfold(std::string_view(*folded).substr(8)))) == trim(input));
        }
    }
    if (auto phrase = encode_phrase(input)) {
        check(is_ascii(*phrase));
        if (auto mailbox = format_mailbox({std::string(input), "a@example.test"})) {
            auto list = parse_address_list(*mailbox);
            check(list.size() == 1 && list[0].members.size() == 1);
            check(list[0].members[0].addr_spec() == "a@example.test");
            check(collapse_wsp(list[0].members[0].name) == collapse_wsp(input));
        }
    }
    // An address written for a header is one mailbox there, with the same domain: no text a user or a
    // remote sender gives as an address becomes two recipients or a group (RFC 5322 3.4).
    if (auto spec = format_addr_spec(input)) {
        auto list = parse_address_list(*spec);
        check(list.size() == 1 && !list[0].is_group && list[0].members.size() == 1);
        check(list[0].members[0].domain == input.substr(input.rfind('@') + 1));
    }
    if (auto segments = encode_parameter("filename", input)) {
        for (const auto& segment : *segments) check(is_ascii(segment) && segment.size() <= 76);
        auto disposition = parse_content_disposition(join_parameters("attachment", *segments));
        check(disposition.kind == "attachment");
        check(disposition.params.get("filename") == input);
    }

    if (is_valid_utf8(input)) {
        Draft draft;
        draft.from = {"", "a@example.test"};
        draft.subject = std::string(input.substr(0, 200));
        while (!is_valid_utf8(draft.subject)) draft.subject.pop_back();  // the cut may split a character
        draft.text = std::string(input);
        draft.attachments.push_back({"f", "application/octet-stream", std::string(input), false, ""});
        BuildEnv env;
        auto state = std::make_shared<std::uint64_t>(size);
        env.random = [state]() { return ++*state * 0x9e3779b97f4a7c15ULL; };
        auto built = build_message(draft, {}, env);
        check(built.ok());
        check(is_ascii(*built));
        // Header lines fold at 78 where white space allows (a long run of spaces may not) and never pass
        // 998; body lines are always within 78 (quoted-printable or base64 otherwise).
        std::size_t header_end = built->find("\r\n\r\n");
        check(header_end != std::string::npos);
        check_lines(std::string_view(*built).substr(0, header_end), 998);
        check_lines(std::string_view(*built).substr(header_end), 78);
        Message parsed = Message::parse(*built);
        check(parsed.parts().size() == 3);
        check(decode_body(parsed, parsed.parts()[2]) == input);
    }

    // A bounce about any message, with any reply text from the remote server, can always be built, is 7-bit,
    // and reads as a multipart/report of exactly its three parts (RFC 3464, RFC 6522).
    {
        DsnReport report;
        report.reporting_mta = "mx.example.test";
        report.envelope_id = std::string(input.substr(0, 120));
        report.to = "s@example.test";
        report.original_message = std::string(input);
        report.return_content = size % 2 == 0 ? DsnReturn::full : DsnReturn::headers;
        DsnRecipient recipient;
        recipient.final_recipient = "r@example.test";
        recipient.status = "5.1.1";
        recipient.remote_mta = "mx.remote.test";
        recipient.diagnostic_code = std::string(input);
        report.recipients.push_back(recipient);
        BuildEnv env;
        auto state = std::make_shared<std::uint64_t>(size);
        env.random = [state]() { return ++*state * 0x9e3779b97f4a7c15ULL; };
        auto dsn = build_dsn(report, {}, env);
        check(dsn.ok());
        check(is_ascii(*dsn));
        check_lines(*dsn, 998);
        Message parsed = Message::parse(*dsn);
        const Part& root = parsed.parts()[0];
        check(root.is("multipart", "report") && root.closed);
        std::vector<const Part*> children;
        for (auto i = root.first_child; i != kNoPart; i = parsed.parts()[i].next_sibling)
            children.push_back(&parsed.parts()[i]);
        check(children.size() == 3);
        check(children[0]->is("text", "plain") && children[1]->is("message", "delivery-status"));
        check(children[2]->is("message", "rfc822") || children[2]->is("text", "rfc822-headers"));
    }

    if (auto seven_bit = downgrade_to_7bit(input)) {
        check(is_ascii(*seven_bit));
        Message before = Message::parse(input);
        Message after = Message::parse(*seven_bit);
        if (before.parts().size() != after.parts().size()) {
            // Only a message/global with an 8-bit header is encoded whole, and so loses its inner parts.
            bool has_global = false;
            for (const auto& part : before.parts()) has_global = has_global || part.is("message", "global");
            check(has_global);
            return 0;
        }
        for (std::size_t i = 0; i < before.parts().size(); ++i) {
            if (before.parts()[i].kind != PartKind::leaf || after.parts()[i].kind != PartKind::leaf) continue;
            check(decode_body(before, before.parts()[i]) == decode_body(after, after.parts()[i]));
        }
    }
    return 0;
}
