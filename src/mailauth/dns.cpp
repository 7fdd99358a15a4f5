#include "mailauth/dns.h"

namespace magpie::mailauth {

mail::dkim::KeyLookup Dns::dkim_key_lookup() {
    return [this](std::string_view name) -> mail::dkim::TxtAnswer {
        auto records = lookup(RecordType::txt, name);
        if (!records) {
            // A name that cannot be asked has no key, like NXDOMAIN (RFC 6376 6.1.2: PERMFAIL).
            if (records.error().code == Errc::invalid_argument)
                return make_error(Errc::not_found, records.error().message);
            return records.error();
        }
        if (records->empty()) return make_error(Errc::not_found, "no TXT record at " + std::string(name));
        return std::move(*records);
    };
}

Result<dns::Resolver::SecureRecords> Dns::lookup_secure(RecordType type, std::string_view name) {
    auto records = lookup(type, name);
    if (!records) return records.error();
    return dns::Resolver::SecureRecords{std::move(*records), false};
}

Result<dns::Resolver::SecureRecords> ResolverDns::lookup_secure(RecordType type, std::string_view name) {
    return resolver_.lookup_secure_blocking(type, name);
}

Result<std::vector<std::string>> ResolverDns::lookup(RecordType type, std::string_view name) {
    return resolver_.lookup_blocking(type, name);
}

}  // namespace magpie::mailauth
