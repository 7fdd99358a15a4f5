// RFC 5322 3.4 address lists (mailboxes and groups) with the obsolete forms of 4.4 (routes, CFWS between
// words, missing domains) and RFC 6532 UTF-8. Display names come both decoded (RFC 2047, to UTF-8) and as
// written (unquoted, encoded words intact) because IMAP's ENVELOPE wants the latter.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace magpie::mail {

struct Mailbox {
    std::string name;        // display name decoded to UTF-8; a trailing comment serves when there is no phrase
    std::string raw_name;    // the same as written: quotes removed, encoded words not decoded
    std::string route;       // obsolete source route (RFC 5322 4.4) "@a.example,@b.example", no colon
    std::string local_part;  // unquoted
    std::string domain;      // a domain literal keeps its brackets; empty when the address had none

    // "local@domain", the local part quoted again when RFC 5322 3.4.1 requires it.
    std::string addr_spec() const;
    // "Name <local@domain>" (name decoded) or the bare addr-spec; always valid UTF-8.
    std::string display() const;
};

// One element of an address list: a single mailbox, or a group with its (possibly empty) member list.
struct Address {
    bool is_group = false;
    std::string group_name;      // decoded
    std::string raw_group_name;  // as written
    std::vector<Mailbox> members; // for a group: its members; otherwise exactly one mailbox
};

struct AddressLimits {
    std::size_t max_addresses = 10000;  // mailboxes in one list; the rest are dropped
};

// Parses an unfolded (or raw, folding is white space) address-list field value. Never fails: what cannot
// be read as an address is skipped up to the next comma.
std::vector<Address> parse_address_list(std::string_view value, const AddressLimits& limits = {});

// Every mailbox of the list, group members flattened in order.
std::vector<Mailbox> mailboxes(const std::vector<Address>& list);

// The list for display: "Name <a@b>, Group: c@d;" with names decoded to UTF-8.
std::string format_address_list(const std::vector<Address>& list);

}  // namespace magpie::mail
