// The DNS questions SPF, DKIM and DMARC ask, behind one interface so the policies stay testable with a
// table and the server can answer them from dns::Resolver. Lookups are synchronous: the evaluations run
// off the network threads (a worker, or the CLI), never on an io_context thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "dns/resolver.h"
#include "mail/dkim.h"

namespace magpie::mailauth {

using dns::RecordType;

class Dns {
public:
    virtual ~Dns() = default;
    // Records as dns::Resolver::lookup() gives them: TXT strings joined, addresses as text, MX hosts by
    // preference, PTR names for an address. An empty list is NODATA. Errors: not_found for NXDOMAIN,
    // invalid_argument for a name that cannot be asked, anything else is temporary.
    virtual Result<std::vector<std::string>> lookup(RecordType type, std::string_view name) = 0;
    // The same question asked with DNSSEC (dns::Resolver::lookup_secure_blocking): `authenticated` only when
    // the resolver set the AD bit. This default answers lookup()'s records, never authenticated.
    virtual Result<dns::Resolver::SecureRecords> lookup_secure(RecordType type, std::string_view name);

    // The DKIM key lookup in the shape mail::dkim::verify() takes.
    mail::dkim::KeyLookup dkim_key_lookup();
};

// Dns over a dns::Resolver with its blocking loop. The Resolver must outlive it; one thread at a time.
class ResolverDns : public Dns {
public:
    explicit ResolverDns(dns::Resolver& resolver) : resolver_(resolver) {}
    Result<std::vector<std::string>> lookup(RecordType type, std::string_view name) override;
    Result<dns::Resolver::SecureRecords> lookup_secure(RecordType type, std::string_view name) override;

private:
    dns::Resolver& resolver_;
};

}  // namespace magpie::mailauth
