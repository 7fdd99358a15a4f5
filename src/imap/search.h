// The SEARCH criteria of RFC 9051 6.4.4 as a typed tree (plus MODSEQ from RFC 7162 3.1.5 and "$" from
// RFC 5182), and the ESEARCH RETURN options (RFC 9051 6.4.4.1 / RFC 4731). The parser builds it; the
// handler evaluates it against the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "imap/sequence_set.h"

namespace magpie::imap {

// A calendar day as written in a search date ("1-Feb-1994"); no time, no zone (RFC 9051 6.4.4).
struct Date {
    int year = 0;
    int month = 0;  // 1..12
    int day = 0;    // 1..31, checked against the month
    bool operator==(const Date&) const = default;
};

struct SearchKey {
    enum class Kind {
        all,
        answered,
        deleted,
        draft,
        flagged,
        seen,
        recent,
        new_,
        old,  // flag tests (recent/new/old: rev1)
        unanswered,
        undeleted,
        undraft,
        unflagged,
        unseen,
        keyword,
        unkeyword,  // text = the keyword
        bcc,
        body,
        cc,
        from,
        subject,
        text,
        to,      // text = the string
        header,  // text = field, value = string
        before,
        on,
        since,
        sent_before,
        sent_on,
        sent_since,  // date
        larger,
        smaller,       // number = octets
        uid,           // set (UIDs)
        sequence_set,  // set (message numbers or $)
        mod_seq,       // number = mod-sequence
        email_id,      // text = objectid (RFC 8474 6: EMAILID)
        thread_id,     // text = objectid (RFC 8474 6: THREADID)
        not_,          // children[0]
        or_,           // children[0], children[1]
        and_,          // children (a parenthesised list)
    };

    // RFC 7162 3.1.5: MODSEQ may name a metadata entry and its type; only the value is used for search.
    struct ModSeqEntry {
        std::string name;  // e.g. "/flags/\\draft"
        std::string type;  // "priv", "shared" or "all"
        bool operator==(const ModSeqEntry&) const = default;
    };

    Kind kind = Kind::all;
    std::string text;
    std::string value;
    std::uint64_t number = 0;
    Date date;
    SequenceSet set;
    std::optional<ModSeqEntry> mod_seq_entry;
    std::vector<SearchKey> children;

    bool operator==(const SearchKey&) const = default;
};

// ESEARCH result options: RETURN () means ALL (RFC 4731 3.1); SAVE is RFC 5182.
struct SearchReturn {
    bool min = false;
    bool max = false;
    bool all = false;
    bool count = false;
    bool save = false;
    bool operator==(const SearchReturn&) const = default;
};

}  // namespace magpie::imap
