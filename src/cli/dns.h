// `magpie dns DOMAIN`: every DNS record a domain served by this magpied needs, in zone-file syntax ready
// to paste; and `magpie dkim keygen DOMAIN`, which creates the DKIM keys those records publish.
#pragma once

#include <string>

#include "server/config.h"

namespace magpie::cli {

// Prints the records to stdout. `address` is the server's public IP for the PTR record; empty: the A and
// AAAA records of [server] hostname, looked up now. Returns the exit status.
int print_dns_records(const server::Config& config, const std::string& domain, const std::string& address);

// `magpie dns DOMAIN --check`: looks up every record `magpie dns` prints (at `dns_server` "host:port", or
// the system's resolver) and prints one line per record: "ok", "MISSING" or "WRONG", with what was expected
// and what was found. MX must name [server] hostname; SPF is evaluated for the server's addresses; each
// DKIM key on disk must be published (not revoked); DMARC must parse; the _mta-sts id must be that of the
// policy magpied serves now; the TLS-RPT record must be the only one and name mailto:/https: URIs; SRV
// records must give the port and host clients are told ([autoconfig]); the mta-sts, autoconfig and
// autodiscover names must be CNAMEs to the host (or have its addresses); each address's PTR must name the
// host and the host that address. Exit status 0 when everything is right, 1 otherwise.
int check_dns_records(const server::Config& config, const std::string& domain, const std::string& address,
                      const std::string& dns_server);

// Creates an RSA-2048 and an Ed25519 key under <data_dir>/dkim/DOMAIN/, owned by [server] user when run
// as root, and prints their records. Selectors are "r<suffix>" and "e<suffix>"; an empty suffix is
// today's date (YYYYMMDD, UTC). Returns the exit status.
int dkim_keygen(const server::Config& config, const std::string& domain, const std::string& selector_suffix);

// `magpie dkim rotate DOMAIN`: a new RSA and Ed25519 pair under new selectors (today's date, then
// "b", "c", ... on the same day); the old keys stay until `magpie dkim remove DOMAIN SELECTOR`, and
// `magpie dns` lists every key on disk, old and new, during the overlap. Returns the exit status.
int dkim_rotate(const server::Config& config, const std::string& domain, const std::string& selector_suffix);
int dkim_remove(const server::Config& config, const std::string& domain, const std::string& selector);
// One line per key: selector, algorithm, file.
int dkim_list(const server::Config& config, const std::string& domain);

// `magpie domain add`: the domain's first DKIM keys, unless it has some already. Returns the exit status.
int ensure_dkim_keys(const server::Config& config, const std::string& domain);

}  // namespace magpie::cli
