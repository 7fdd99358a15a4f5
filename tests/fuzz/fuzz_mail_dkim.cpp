// libFuzzer target: DKIM's text handling never misbehaves on any input (tag lists, signature fields, key
// records, canonicalization, verification), and a message we sign always verifies with our own verifier.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mail/dkim.h"

namespace {

using namespace magpie::mail::dkim;

void check(bool ok) {
    if (!ok) std::abort();
}

// RFC 8463 A.2's key, so every run signs the same way.
const PrivateKey& key() {
    static const PrivateKey k =
        PrivateKey::from_ed25519_seed_base64("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=").value();
    return k;
}

void check_canonical_body(std::string_view input) {
    for (Canon canon : {Canon::simple, Canon::relaxed}) {
        std::string body = canonicalize_body(input, canon);
        check(body.empty() ? canon == Canon::relaxed : body.ends_with("\r\n"));
        check(!body.ends_with("\r\n\r\n"));
        if (canon == Canon::relaxed) check(body.find(" \r\n") == std::string::npos);
        check(canonicalize_body(input, canon, 7).size() <= 7);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 64 * 1024) return 0;
    std::string_view input(reinterpret_cast<const char*>(data), size);

    (void)parse_tag_list(input);
    (void)parse_signature(input);
    (void)parse_key_record(input);
    check(strip_b_value(input).size() <= input.size());
    check_canonical_body(input);
    std::string header = canonicalize_header(input, Canon::relaxed);
    check(header.ends_with("\r\n"));

    auto lookup = [](std::string_view) -> TxtAnswer { return std::vector<std::string>{key().key_record()}; };
    for (const auto& result : verify(input, lookup, 1700000000))
        check(!result.reason.empty() || result.status == Status::pass);

    // Sign, then verify: whatever sign() accepts, our own verifier passes.
    for (Canon canon : {Canon::simple, Canon::relaxed}) {
        SignOptions options;
        options.domain = "example.com";
        options.selector = "s";
        options.header_canon = canon;
        options.body_canon = canon;
        auto field = sign(input, key(), options);
        if (!field) continue;
        auto results = verify(*field + std::string(input), lookup, 1700000000);
        check(!results.empty());
        check(results[0].status == Status::pass || results[0].reason == "too many signed header fields");
    }
    return 0;
}
