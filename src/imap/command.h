// Every IMAP client command the server understands, one struct per command, as the parser yields them
// (RFC 9051 6 and the extensions listed in README.md). Strings are raw octets as sent; mailbox names are
// UTF-8 (decoded from modified UTF-7 unless UTF-8 names are on), with "INBOX" in any case spelled "INBOX".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "imap/fetch.h"
#include "imap/search.h"
#include "imap/sequence_set.h"

namespace magpie::imap {

// Where the parser puts a large APPEND literal instead of memory (issue 11): the session gives one that
// writes to a spool file, so a 30 MB APPEND is never held whole. write() runs as the octets arrive (on the
// IO thread: a page-cache write, never an fsync); a failure is kept by the sink and reported by its owner
// when the command runs.
class LiteralSink {
public:
    virtual ~LiteralSink() = default;
    virtual void write(std::string_view octets) = 0;
};

// date-time of RFC 9051 9 ("17-Jul-1996 02:44:25 -0700"), as the instant and the zone it was written in.
struct DateTime {
    std::int64_t unix_seconds = 0;
    int zone_minutes = 0;  // -0700 is -420
    bool operator==(const DateTime&) const = default;
};

// Commands without arguments.
struct Capability {
    bool operator==(const Capability&) const = default;
};
struct Noop {
    bool operator==(const Noop&) const = default;
};
struct Logout {
    bool operator==(const Logout&) const = default;
};
struct StartTls {
    bool operator==(const StartTls&) const = default;
};
struct Namespace {
    bool operator==(const Namespace&) const = default;
};  // RFC 2342
struct Idle {
    bool operator==(const Idle&) const = default;
};  // RFC 2177; then DONE
struct Check {
    bool operator==(const Check&) const = default;
};  // rev1 only
struct Close {
    bool operator==(const Close&) const = default;
};
struct Unselect {
    bool operator==(const Unselect&) const = default;
};  // RFC 3691

// AUTHENTICATE mechanism [initial-response] (RFC 9051 6.2.2, SASL-IR RFC 4959). The initial response is
// the base64 text as sent, "" for "=" (an empty response); decoding is the SASL mechanism's job.
struct Authenticate {
    std::string mechanism;  // upper-cased
    std::optional<std::string> initial_response;
    bool operator==(const Authenticate&) const = default;
};

struct Login {
    std::string user;
    std::string password;
    bool operator==(const Login&) const = default;
};

// ENABLE (RFC 5161): capability names, upper-cased.
struct Enable {
    std::vector<std::string> capabilities;
    bool operator==(const Enable&) const = default;
};

// QRESYNC select parameter (RFC 7162 3.2.5).
struct QresyncParams {
    std::uint32_t uid_validity = 0;
    std::uint64_t mod_seq = 0;
    std::optional<SequenceSet> known_uids;
    // (known-sequence-set known-uid-set): message numbers and the UIDs the client believes they have.
    std::optional<std::pair<SequenceSet, SequenceSet>> sequence_match;
    bool operator==(const QresyncParams&) const = default;
};

// SELECT and EXAMINE (read_only) with the CONDSTORE / QRESYNC parameters of RFC 7162.
struct Select {
    std::string mailbox;
    bool read_only = false;
    bool condstore = false;
    std::optional<QresyncParams> qresync;
    bool operator==(const Select&) const = default;
};

// CREATE, with CREATE-SPECIAL-USE's "USE (\Drafts ...)" (RFC 6154 3).
struct Create {
    std::string mailbox;
    std::vector<std::string> special_use;
    bool operator==(const Create&) const = default;
};

struct Delete {
    std::string mailbox;
    bool operator==(const Delete&) const = default;
};

struct Rename {
    std::string from;
    std::string to;
    bool operator==(const Rename&) const = default;
};

struct Subscribe {
    std::string mailbox;
    bool operator==(const Subscribe&) const = default;
};

struct Unsubscribe {
    std::string mailbox;
    bool operator==(const Unsubscribe&) const = default;
};

// STATUS data items (RFC 9051 6.3.11; SIZE RFC 8438, HIGHESTMODSEQ RFC 7162, APPENDLIMIT RFC 7889,
// DELETED-STORAGE RFC 9208).
enum class StatusItem {
    messages,
    recent,  // rev1 only
    uid_next,
    uid_validity,
    unseen,
    deleted,
    size,
    highest_mod_seq,
    append_limit,
    deleted_storage,
    mailbox_id,  // MAILBOXID (RFC 8474 4.2)
};

// LIST, basic and extended (RFC 9051 6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE
// RFC 6154). `extended` is set when any extended syntax was used, because then the replies change
// (e.g. CHILDINFO, and no implicit \NonExistent filtering of parents).
struct List {
    struct Selection {
        bool subscribed = false;
        bool remote = false;
        bool recursive_match = false;
        bool special_use = false;
        bool operator==(const Selection&) const = default;
    };
    struct Return {
        bool subscribed = false;
        bool children = false;
        bool special_use = false;
        std::optional<std::vector<StatusItem>> status;
        bool operator==(const Return&) const = default;
    };
    std::string reference;
    std::vector<std::string> patterns;  // those that decode (see Command::undecodable_mailbox); may be empty
    Selection selection;
    Return returns;
    bool extended = false;
    bool operator==(const List&) const = default;
};

struct Lsub {
    std::string reference;
    std::string pattern;
    bool matches_nothing = false;  // the reference or pattern is not a decodable name: LSUB lists nothing
    bool operator==(const Lsub&) const = default;
};

struct Status {
    std::string mailbox;
    std::vector<StatusItem> items;
    bool operator==(const Status&) const = default;
};

// APPEND of one message (RFC 9051 6.3.12); binary when sent as literal8 (RFC 3516 4.4).
struct Append {
    std::string mailbox;
    std::vector<std::string> flags;
    std::optional<DateTime> internal_date;
    std::string message;                  // empty when `spooled` holds it
    std::shared_ptr<LiteralSink> spooled;  // the message, when the parser spooled it (Parser::spool_appends)
    bool binary = false;
    bool operator==(const Append&) const = default;
};

// EXPUNGE, or UID EXPUNGE set (RFC 9051 6.4.9) when uids is present.
struct Expunge {
    std::optional<SequenceSet> uids;
    bool operator==(const Expunge&) const = default;
};

// SEARCH: the criteria are one tree; several top-level keys are an and_ node.
struct Search {
    bool uid = false;
    std::optional<std::string> charset;          // upper-cased
    std::optional<SearchReturn> return_options;  // present when RETURN (...) was given (ESEARCH)
    SearchKey criteria;
    bool operator==(const Search&) const = default;
};

// FETCH with the RFC 7162 modifiers (CHANGEDSINCE, VANISHED: UID FETCH only, needs CHANGEDSINCE).
struct Fetch {
    bool uid = false;
    SequenceSet set;
    std::vector<FetchItem> items;
    std::optional<std::uint64_t> changed_since;
    bool vanished = false;
    bool operator==(const Fetch&) const = default;
};

struct Store {
    enum class Mode { replace, add, remove };  // FLAGS, +FLAGS, -FLAGS
    bool uid = false;
    SequenceSet set;
    std::optional<std::uint64_t> unchanged_since;  // RFC 7162 3.1.3
    Mode mode = Mode::replace;
    bool silent = false;
    std::vector<std::string> flags;
    bool operator==(const Store&) const = default;
};

struct Copy {
    bool uid = false;
    SequenceSet set;
    std::string mailbox;
    bool operator==(const Copy&) const = default;
};

// MOVE (RFC 6851).
struct Move {
    bool uid = false;
    SequenceSet set;
    std::string mailbox;
    bool operator==(const Move&) const = default;
};

// ID (RFC 2971): NIL or field/value pairs; a value may be NIL.
struct Id {
    std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> fields;
    bool operator==(const Id&) const = default;
};

// QUOTA (RFC 9208).
struct GetQuota {
    std::string root;
    bool operator==(const GetQuota&) const = default;
};

struct GetQuotaRoot {
    std::string mailbox;
    bool operator==(const GetQuotaRoot&) const = default;
};

struct SetQuota {
    std::string root;
    std::vector<std::pair<std::string, std::uint64_t>> limits;  // resource name upper-cased, limit
    bool operator==(const SetQuota&) const = default;
};

using CommandBody =
    std::variant<Capability, Noop, Logout, StartTls, Authenticate, Login, Enable, Select, Create, Delete,
                 Rename, Subscribe, Unsubscribe, List, Lsub, Namespace, Status, Append, Idle, Check, Close,
                 Unselect, Expunge, Search, Fetch, Store, Copy, Move, Id, GetQuota, GetQuotaRoot, SetQuota>;

struct Command {
    std::string tag;
    CommandBody body;
    // Set when a mailbox argument is not valid modified UTF-7 (UTF-8 once enabled) or holds a control
    // character: the reason, fit for "tag NO <reason>". Such a name is syntax but names no mailbox
    // (RFC 3501 5.1.3), so the session answers NO, not BAD. LIST and LSUB drop such patterns instead.
    std::optional<std::string> undecodable_mailbox;
};

// The command's name as a client would write it ("UID FETCH", "EXAMINE"), for logs and replies.
std::string command_name(const CommandBody& body);

}  // namespace magpie::imap
