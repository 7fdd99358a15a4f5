// Fuzzes smtp::parse_path: any bytes in; a success must have consumed a bracketed path within the RFC 5321
// 4.5.3.1 limits, and its mailbox must parse again to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/path.h"

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 1) return 0;
    using namespace magpie::smtp;
    std::string_view input(reinterpret_cast<const char*>(bytes), size);
    PathOptions options{
        .allow_null = (input[0] & 1) != 0, .allow_postmaster = (input[0] & 2) != 0, .limits = {}};
    input.remove_prefix(1);
    auto path = parse_path(input, options);
    if (!path) return 0;
    check(path->consumed >= 2 && path->consumed <= input.size());
    check(path->consumed <= options.limits.max_path);
    check(input[0] == '<' && input[path->consumed - 1] == '>');
    check(path->is_null == path->mailbox.empty());
    if (path->is_null) {
        check(options.allow_null);
        return 0;
    }
    for (unsigned char c : path->mailbox) check(c >= 0x20 && c != 0x7f);
    // The mailbox without its source route is itself a valid path.
    std::string again = "<" + path->mailbox + ">";
    auto reparsed = parse_path(again, options);
    check(reparsed && reparsed->mailbox == path->mailbox && reparsed->consumed == again.size());
    return 0;
}
