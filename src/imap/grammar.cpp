#include "imap/grammar.h"

#include <cstring>
#include <utility>

#include "base/strings.h"
#include "base/time.h"
#include "imap/mutf7.h"

namespace magpie::imap {
namespace {

// RFC 2971 3.3: at most 30 field-value pairs in ID.
constexpr std::size_t kMaxIdFields = 30;
// RFC 9051 9: number64 and mod-sequence-value are at most 2^63 - 1.
constexpr std::uint64_t kMaxNumber64 = 0x7FFFFFFFFFFFFFFFull;

// ATOM-CHAR = any CHAR except atom-specials: "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]" (RFC 9051 9).
bool is_atom_char(int c) {
    if (c <= 0x20 || c >= 0x7F) return false;
    return std::strchr("(){%*\"\\]", c) == nullptr;
}
bool is_astring_char(int c) {
    return is_atom_char(c) || c == ']';
}
bool is_list_char(int c) {
    return is_atom_char(c) || c == '%' || c == '*' || c == ']';
}
bool is_digit(int c) {
    return c >= '0' && c <= '9';
}
bool is_sequence_char(int c) {
    return is_digit(c) || c == ':' || c == ',' || c == '*' || c == '$';
}
bool is_base64_char(int c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' || c == '/' ||
           c == '=';
}

int month_from_name(std::string_view name) {
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i) {
        if (iequals(name, kMonths[i])) return i + 1;
    }
    return 0;
}

// The five system flags of RFC 9051 2.3.2 (and rev1's \Recent) in their canonical spelling, so handlers
// compare flags exactly; keywords keep the client's spelling.
std::string canonical_flag(std::string_view flag) {
    static constexpr const char* kSystem[] = {"\\Answered", "\\Flagged", "\\Deleted",
                                              "\\Seen",     "\\Draft",   "\\Recent"};
    for (const char* system : kSystem) {
        if (iequals(flag, system)) return system;
    }
    return std::string(flag);
}

class Reader {
public:
    Reader(CommandText& command, const Limits& limits, bool utf8_names)
        : s_(command.text), literals_(command.literals), limits_(limits), utf8_names_(utf8_names) {}

    const std::string& error() const { return error_; }
    bool ok() const { return error_.empty(); }
    bool at_end() const { return pos_ >= s_.size(); }

    bool fail(std::string message) {
        if (error_.empty()) error_ = std::move(message);
        return false;
    }

    int peek() const { return at_end() ? -1 : static_cast<unsigned char>(s_[pos_]); }

    bool consume(char c) {
        if (peek() != static_cast<unsigned char>(c)) return false;
        ++pos_;
        return true;
    }

    bool expect(char c) {
        if (consume(c)) return true;
        if (c == ' ') return fail("expected a space");
        return fail(std::string("expected '") + c + "'");
    }

    bool sp() { return expect(' '); }

    template <class Pred>
    std::string_view read_while(Pred pred) {
        std::size_t start = pos_;
        while (!at_end() && pred(peek())) ++pos_;
        return s_.substr(start, pos_ - start);
    }

    std::size_t position() const { return pos_; }
    void rewind(std::size_t pos) { pos_ = pos; }

    // Reads an atom (keyword) without failing; empty when none is there.
    std::string_view keyword() { return read_while(is_atom_char); }

    bool atom(std::string& out) {
        std::string_view atom = read_while(is_atom_char);
        if (atom.empty()) return fail("expected an atom");
        out.assign(atom);
        return true;
    }

    // Peeks the next atom and consumes it when it equals word (case-insensitively).
    bool accept_keyword(std::string_view word) {
        std::size_t start = pos_;
        if (iequals(keyword(), word)) return true;
        pos_ = start;
        return false;
    }

    bool number(std::uint32_t& out) {
        std::string_view digits = read_while(is_digit);
        auto value = parse_uint(digits);
        if (!value || *value > 0xFFFFFFFFu) return fail("expected a number");
        out = static_cast<std::uint32_t>(*value);
        return true;
    }

    bool nz_number(std::uint32_t& out) {
        if (!number(out)) return false;
        if (out == 0) return fail("expected a non-zero number");
        return true;
    }

    bool number64(std::uint64_t& out) {
        std::string_view digits = read_while(is_digit);
        auto value = parse_uint(digits);
        if (!value || *value > kMaxNumber64) return fail("expected a 63-bit number");
        out = *value;
        return true;
    }

    // quoted = DQUOTE *QUOTED-CHAR DQUOTE; 8-bit octets are kept as sent (UTF-8 under IMAP4rev2).
    bool quoted(std::string& out) {
        if (!expect('"')) return false;
        out.clear();
        for (;;) {
            int c = peek();
            if (c == -1 || c == 0 || c == '\r' || c == '\n') return fail("unterminated quoted string");
            ++pos_;
            if (c == '"') return true;
            if (c == '\\') {
                int escaped = peek();
                if (escaped != '"' && escaped != '\\') return fail("invalid escape in quoted string");
                ++pos_;
                c = escaped;
            }
            out.push_back(static_cast<char>(c));
        }
    }

    // A literal stands as one NUL octet in the text; the framer checked its size.
    bool literal(std::string& out, bool allow_binary = false, bool* binary = nullptr, bool move = false,
                 std::shared_ptr<LiteralSink>* sink = nullptr) {
        if (peek() != 0) return fail("expected a literal");
        if (next_literal_ >= literals_.size()) return fail("internal: literal missing");
        CommandText::Literal& literal = literals_[next_literal_++];
        ++pos_;
        if (literal.binary && !allow_binary) return fail("literal8 is only allowed in APPEND");
        // Only an APPEND's message may be spooled (it alone is taken with move).
        if (literal.sink && !move) return fail("literal too large here");
        // RFC 9051 9: literal = "{" number64 ["+"] "}" CRLF *CHAR8; CHAR8 excludes NUL.
        if (!literal.binary && (literal.has_nul || std::memchr(literal.data.data(), 0, literal.data.size()) != nullptr)) {
            return fail("NUL octet in a literal");
        }
        if (binary != nullptr) *binary = literal.binary;
        if (move) {
            out = std::move(literal.data);
            if (sink != nullptr) *sink = std::move(literal.sink);
        } else {
            out = literal.data;
        }
        return true;
    }

    bool string(std::string& out) {
        if (peek() == '"') return quoted(out);
        if (peek() == 0) return literal(out);
        return fail("expected a string");
    }

    bool astring(std::string& out) {
        if (peek() == '"' || peek() == 0) return string(out);
        std::string_view atom = read_while(is_astring_char);
        if (atom.empty()) return fail("expected an atom or a string");
        out.assign(atom);
        return true;
    }

    bool nstring(std::optional<std::string>& out) {
        if (peek() == '"' || peek() == 0) {
            std::string value;
            if (!string(value)) return false;
            out = std::move(value);
            return true;
        }
        if (accept_keyword("NIL")) {
            out.reset();
            return true;
        }
        return fail("expected a string or NIL");
    }

    // RFC 3501 5.1.3 / RFC 9051 5.1: modified UTF-7 unless UTF-8 names are on. A name that does not
    // decode (or holds a control character) is still syntax, a string: it names no mailbox, so it is
    // kept as sent and recorded in undecodable_name for the session's NO (as Dovecot does), never a BAD.
    // Returns false only when `raw` could not be read at all.
    bool decode_name(std::string raw, std::string& out) {
        auto undecodable = [&](std::string reason) {
            if (!undecodable_name) undecodable_name = std::move(reason);
            ++undecodable_names;
            out = std::move(raw);
            return true;
        };
        for (unsigned char c : raw) {
            if (c < 0x20 || c == 0x7F) return undecodable("Mailbox name holds a control character");
        }
        if (utf8_names_) {
            if (!is_valid_utf8(raw)) return undecodable("Mailbox name is not valid UTF-8");
            out = std::move(raw);
            return true;
        }
        auto decoded = mutf7_decode(raw);
        if (!decoded) return undecodable("Mailbox name is not valid modified UTF-7");
        out = std::move(*decoded);
        return true;
    }

    // mailbox = "INBOX" / astring; INBOX is case-insensitive (RFC 9051 5.1).
    bool mailbox(std::string& out) {
        std::string raw;
        if (!astring(raw)) return false;
        if (iequals(raw, "INBOX")) {
            out = "INBOX";
            return true;
        }
        return decode_name(std::move(raw), out);
    }

    // list-mailbox = 1*list-char / string
    bool list_mailbox(std::string& out) {
        std::string raw;
        if (peek() == '"' || peek() == 0) {
            if (!string(raw)) return false;
        } else {
            std::string_view chars = read_while(is_list_char);
            if (chars.empty()) return fail("expected a mailbox pattern");
            raw.assign(chars);
        }
        return decode_name(std::move(raw), out);
    }

    // flag = "\" atom / atom (keywords and system flags); "\*" only when allow_wildcard.
    bool flag(std::string& out) {
        std::string text;
        if (consume('\\')) {
            if (!atom(text)) return fail("expected a flag");
            out = canonical_flag("\\" + text);
            return true;
        }
        if (!atom(text)) return fail("expected a flag");
        out = std::move(text);
        return true;
    }

    // flag-list = "(" [flag *(SP flag)] ")"
    bool flag_list(std::vector<std::string>& out) {
        if (!expect('(')) return false;
        if (consume(')')) return true;
        for (;;) {
            std::string one;
            if (!flag(one)) return false;
            out.push_back(std::move(one));
            if (consume(')')) return true;
            if (!sp()) return false;
        }
    }

    bool sequence_set(SequenceSet& out) {
        std::string_view text = read_while(is_sequence_char);
        auto set = SequenceSet::parse(text, limits_.max_sequence_set_ranges);
        if (!set) return fail(set.error().message);
        out = std::move(*set);
        return true;
    }

    // date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year
    bool date(Date& out) {
        bool is_quoted = consume('"');
        std::string_view day = read_while(is_digit);
        if (day.empty() || day.size() > 2 || !consume('-')) return fail("invalid date");
        std::string_view month =
            read_while([](int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); });
        if (!consume('-')) return fail("invalid date");
        std::string_view year = read_while(is_digit);
        if (year.size() != 4) return fail("invalid date");
        if (is_quoted && !consume('"')) return fail("invalid date");
        out.day = static_cast<int>(*parse_uint(day));
        out.month = month_from_name(month);
        out.year = static_cast<int>(*parse_uint(year));
        if (out.month == 0 || out.day < 1 ||
            out.day > static_cast<int>(days_in_month(out.year, static_cast<unsigned>(out.month)))) {
            return fail("invalid date");
        }
        return true;
    }

    // date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
    bool date_time(DateTime& out) {
        std::string text;
        if (!quoted(text)) return false;
        // "dd-Mon-yyyy hh:mm:ss +zzzz", the day possibly " d"; some clients drop the pad: "d-Mon-...".
        if (text.size() == 25) text.insert(text.begin(), ' ');
        if (text.size() != 26) return fail("invalid date-time");
        auto digits = [&](std::size_t at, std::size_t n, int& value) {
            auto parsed = parse_uint(std::string_view(text).substr(at, n));
            if (!parsed) return false;
            value = static_cast<int>(*parsed);
            return true;
        };
        int day = 0, month = 0, year = 0, hour = 0, minute = 0, second = 0, zone_h = 0, zone_m = 0;
        bool ok = (text[0] == ' ' ? digits(1, 1, day) : digits(0, 2, day)) && text[2] == '-' &&
                  text[6] == '-' && digits(7, 4, year) && text[11] == ' ' && digits(12, 2, hour) &&
                  text[14] == ':' && digits(15, 2, minute) && text[17] == ':' && digits(18, 2, second) &&
                  text[20] == ' ' && (text[21] == '+' || text[21] == '-') && digits(22, 2, zone_h) &&
                  digits(24, 2, zone_m);
        month = month_from_name(std::string_view(text).substr(3, 3));
        if (!ok || month == 0 || day < 1 ||
            day > static_cast<int>(days_in_month(year, static_cast<unsigned>(month))) || hour > 23 ||
            minute > 59 || second > 60 || zone_m > 59) {
            return fail("invalid date-time");
        }
        int zone = (zone_h * 60 + zone_m) * (text[21] == '-' ? -1 : 1);
        out.zone_minutes = zone;
        out.unix_seconds =
            days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
            hour * 3600 + minute * 60 + second - static_cast<std::int64_t>(zone) * 60;
        return true;
    }

    bool status_item(StatusItem& out) {
        std::string_view name = keyword();
        static constexpr std::pair<const char*, StatusItem> kItems[] = {
            {"MESSAGES", StatusItem::messages},
            {"RECENT", StatusItem::recent},
            {"UIDNEXT", StatusItem::uid_next},
            {"UIDVALIDITY", StatusItem::uid_validity},
            {"UNSEEN", StatusItem::unseen},
            {"DELETED", StatusItem::deleted},
            {"SIZE", StatusItem::size},
            {"HIGHESTMODSEQ", StatusItem::highest_mod_seq},
            {"APPENDLIMIT", StatusItem::append_limit},
            {"DELETED-STORAGE", StatusItem::deleted_storage},
            {"MAILBOXID", StatusItem::mailbox_id},
        };
        for (const auto& [text, item] : kItems) {
            if (iequals(name, text)) {
                out = item;
                return true;
            }
        }
        return fail("unknown status item");
    }

    // "(" status-att *(SP status-att) ")"
    bool status_items(std::vector<StatusItem>& out) {
        if (!expect('(')) return false;
        for (;;) {
            StatusItem item;
            if (!status_item(item)) return false;
            out.push_back(item);
            if (consume(')')) return true;
            if (!sp()) return false;
        }
    }

    bool search_key(SearchKey& key, std::size_t depth);
    bool fetch_item(FetchItem& item);
    bool section(Section& section, bool binary);

    std::size_t search_keys = 0;
    // Names read that do not decode (see decode_name), and why the first one does not.
    std::size_t undecodable_names = 0;
    std::optional<std::string> undecodable_name;

private:
    std::string_view s_;
    std::vector<CommandText::Literal>& literals_;
    const Limits& limits_;
    bool utf8_names_;
    std::size_t pos_ = 0;
    std::size_t next_literal_ = 0;
    std::string error_;
};

bool Reader::search_key(SearchKey& key, std::size_t depth) {
    if (++search_keys > limits_.max_search_keys) return fail("too many search keys");
    if (depth > limits_.max_nesting_depth) return fail("search criteria nested too deeply");
    if (consume('(')) {
        key.kind = SearchKey::Kind::and_;
        for (;;) {
            SearchKey child;
            if (!search_key(child, depth + 1)) return false;
            key.children.push_back(std::move(child));
            if (consume(')')) return true;
            if (!sp()) return false;
        }
    }
    if (is_digit(peek()) || peek() == '*' || peek() == '$') {
        key.kind = SearchKey::Kind::sequence_set;
        return sequence_set(key.set);
    }
    using K = SearchKey::Kind;
    std::string name = to_upper(keyword());
    static constexpr std::pair<const char*, K> kPlain[] = {
        {"ALL", K::all},
        {"ANSWERED", K::answered},
        {"DELETED", K::deleted},
        {"DRAFT", K::draft},
        {"FLAGGED", K::flagged},
        {"SEEN", K::seen},
        {"RECENT", K::recent},
        {"NEW", K::new_},
        {"OLD", K::old},
        {"UNANSWERED", K::unanswered},
        {"UNDELETED", K::undeleted},
        {"UNDRAFT", K::undraft},
        {"UNFLAGGED", K::unflagged},
        {"UNSEEN", K::unseen},
    };
    for (const auto& [text, kind] : kPlain) {
        if (name == text) {
            key.kind = kind;
            return true;
        }
    }
    static constexpr std::pair<const char*, K> kString[] = {
        {"BCC", K::bcc},         {"BODY", K::body}, {"CC", K::cc}, {"FROM", K::from},
        {"SUBJECT", K::subject}, {"TEXT", K::text}, {"TO", K::to},
    };
    for (const auto& [text, kind] : kString) {
        if (name == text) {
            key.kind = kind;
            return sp() && astring(key.text);
        }
    }
    static constexpr std::pair<const char*, K> kDate[] = {
        {"BEFORE", K::before},          {"ON", K::on},          {"SINCE", K::since},
        {"SENTBEFORE", K::sent_before}, {"SENTON", K::sent_on}, {"SENTSINCE", K::sent_since},
    };
    for (const auto& [text, kind] : kDate) {
        if (name == text) {
            key.kind = kind;
            return sp() && date(key.date);
        }
    }
    if (name == "KEYWORD" || name == "UNKEYWORD") {
        key.kind = name == "KEYWORD" ? K::keyword : K::unkeyword;
        return sp() && atom(key.text);
    }
    if (name == "HEADER") {
        key.kind = K::header;
        return sp() && astring(key.text) && sp() && astring(key.value);
    }
    if (name == "LARGER" || name == "SMALLER") {
        key.kind = name == "LARGER" ? K::larger : K::smaller;
        return sp() && number64(key.number);
    }
    if (name == "EMAILID" || name == "THREADID") {
        // RFC 8474 6: objectid = 1*255(ALPHA / DIGIT / "_" / "-"), an atom.
        key.kind = name == "EMAILID" ? K::email_id : K::thread_id;
        return sp() && atom(key.text) && (key.text.size() <= 255 || fail("objectid longer than 255"));
    }
    if (name == "UID") {
        key.kind = K::uid;
        return sp() && sequence_set(key.set);
    }
    if (name == "MODSEQ") {
        // RFC 7162 3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer
        key.kind = K::mod_seq;
        if (!sp()) return false;
        if (peek() == '"') {
            SearchKey::ModSeqEntry entry;
            if (!quoted(entry.name) || !sp()) return false;
            entry.type = to_lower(keyword());
            if (entry.type != "priv" && entry.type != "shared" && entry.type != "all") {
                return fail("invalid MODSEQ entry type");
            }
            key.mod_seq_entry = std::move(entry);
            if (!sp()) return false;
        }
        return number64(key.number);
    }
    if (name == "NOT") {
        key.kind = K::not_;
        key.children.resize(1);
        return sp() && search_key(key.children[0], depth + 1);
    }
    if (name == "OR") {
        key.kind = K::or_;
        key.children.resize(2);
        return sp() && search_key(key.children[0], depth + 1) && sp() &&
               search_key(key.children[1], depth + 1);
    }
    if (name.empty()) return fail("expected a search key");
    return fail("unknown search key " + name);
}

// section = "[" [section-spec] "]"; section-binary = "[" [section-part] "]"
bool Reader::section(Section& section, bool binary) {
    if (!expect('[')) return false;
    if (consume(']')) return true;
    bool need_text = false;
    if (is_digit(peek())) {
        for (;;) {
            std::uint32_t part = 0;
            if (!nz_number(part)) return false;
            section.part.push_back(part);
            if (section.part.size() > limits_.max_nesting_depth)
                return fail("section part nested too deeply");
            if (!consume('.')) break;
            if (!is_digit(peek())) {
                need_text = true;
                break;
            }
        }
    } else {
        need_text = true;
    }
    if (need_text) {
        if (binary) return fail("BINARY takes only a part number");
        std::string name = to_upper(
            read_while([](int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.'; }));
        if (name == "HEADER") {
            section.text = Section::Text::header;
        } else if (name == "TEXT") {
            section.text = Section::Text::text;
        } else if (name == "MIME" && !section.part.empty()) {
            section.text = Section::Text::mime;
        } else if (name == "HEADER.FIELDS" || name == "HEADER.FIELDS.NOT") {
            section.text =
                name == "HEADER.FIELDS" ? Section::Text::header_fields : Section::Text::header_fields_not;
            // header-list = "(" header-fld-name *(SP header-fld-name) ")"
            if (!sp() || !expect('(')) return false;
            for (;;) {
                std::string field;
                if (!astring(field)) return false;
                section.fields.push_back(std::move(field));
                if (consume(')')) break;
                if (!sp()) return false;
            }
        } else {
            return fail("invalid section");
        }
    }
    return expect(']');
}

bool Reader::fetch_item(FetchItem& item) {
    using K = FetchItem::Kind;
    std::string name = to_upper(read_while([](int c) { return is_atom_char(c) && c != '[' && c != '<'; }));
    static constexpr std::pair<const char*, K> kSimple[] = {
        {"ENVELOPE", K::envelope},
        {"FLAGS", K::flags},
        {"INTERNALDATE", K::internal_date},
        {"RFC822", K::rfc822},
        {"RFC822.HEADER", K::rfc822_header},
        {"RFC822.SIZE", K::rfc822_size},
        {"RFC822.TEXT", K::rfc822_text},
        {"BODYSTRUCTURE", K::body_structure},
        {"UID", K::uid},
        {"MODSEQ", K::mod_seq},
        {"EMAILID", K::email_id},
        {"THREADID", K::thread_id},
    };
    for (const auto& [text, kind] : kSimple) {
        if (name == text) {
            item.kind = kind;
            return true;
        }
    }
    bool partial_allowed = true;
    if (name == "BODY" && peek() != '[') {
        item.kind = K::body;
        return true;
    }
    if (name == "BODY" || name == "BODY.PEEK") {
        item.kind = K::body_section;
        item.peek = name == "BODY.PEEK";
        if (!section(item.section, false)) return false;
    } else if (name == "BINARY" || name == "BINARY.PEEK") {
        item.kind = K::binary;
        item.peek = name == "BINARY.PEEK";
        if (!section(item.section, true)) return false;
    } else if (name == "BINARY.SIZE") {
        item.kind = K::binary_size;
        partial_allowed = false;
        if (!section(item.section, true)) return false;
    } else {
        return fail(name.empty() ? "expected a fetch item" : "unknown fetch item " + name);
    }
    // partial = "<" number64 "." nz-number64 ">"
    if (partial_allowed && consume('<')) {
        Partial partial;
        if (!number64(partial.offset) || !expect('.') || !number64(partial.length) || !expect('>'))
            return false;
        if (partial.length == 0) return fail("partial length must not be zero");
        item.partial = partial;
    }
    return true;
}

// One parser per command name: each reads what follows the name (starting at the SP, if any).
class CommandReader {
public:
    explicit CommandReader(Reader& r) : r_(r) {}

    bool read(std::string_view name, CommandBody& out) {
        std::string upper = to_upper(name);
        if (upper == "CAPABILITY") return done(out, Capability{});
        if (upper == "NOOP") return done(out, Noop{});
        if (upper == "LOGOUT") return done(out, Logout{});
        if (upper == "STARTTLS") return done(out, StartTls{});
        if (upper == "NAMESPACE") return done(out, Namespace{});
        if (upper == "IDLE") return done(out, Idle{});
        if (upper == "CHECK") return done(out, Check{});
        if (upper == "CLOSE") return done(out, Close{});
        if (upper == "UNSELECT") return done(out, Unselect{});
        if (upper == "EXPUNGE") return done(out, Expunge{});
        if (upper == "AUTHENTICATE") return authenticate(out);
        if (upper == "LOGIN") return login(out);
        if (upper == "ENABLE") return enable(out);
        if (upper == "SELECT" || upper == "EXAMINE") return select(out, upper == "EXAMINE");
        if (upper == "CREATE") return create(out);
        if (upper == "DELETE") return one_mailbox<Delete>(out);
        if (upper == "SUBSCRIBE") return one_mailbox<Subscribe>(out);
        if (upper == "UNSUBSCRIBE") return one_mailbox<Unsubscribe>(out);
        if (upper == "GETQUOTAROOT") return one_mailbox<GetQuotaRoot>(out);
        if (upper == "RENAME") return rename(out);
        if (upper == "LIST") return list(out);
        if (upper == "LSUB") return lsub(out);
        if (upper == "STATUS") return status(out);
        if (upper == "APPEND") return append(out);
        if (upper == "SEARCH") return search(out, false);
        if (upper == "FETCH") return fetch(out, false);
        if (upper == "STORE") return store(out, false);
        if (upper == "COPY") return copy<Copy>(out, false);
        if (upper == "MOVE") return copy<Move>(out, false);
        if (upper == "UID") return uid(out);
        if (upper == "ID") return id(out);
        if (upper == "GETQUOTA") return getquota(out);
        if (upper == "SETQUOTA") return setquota(out);
        if (upper.empty()) return r_.fail("expected a command name");
        return r_.fail("unknown command " + upper);
    }

private:
    template <class T>
    bool done(CommandBody& out, T value) {
        out = std::move(value);
        return true;
    }

    template <class T>
    bool one_mailbox(CommandBody& out) {
        T value;
        if (!r_.sp() || !r_.mailbox(value.mailbox)) return false;
        return done(out, std::move(value));
    }

    // RFC 9051 6.2.2, RFC 4959: "AUTHENTICATE" SP auth-type [SP (base64 / "=")]
    bool authenticate(CommandBody& out) {
        Authenticate value;
        std::string mechanism;
        if (!r_.sp() || !r_.atom(mechanism)) return false;
        value.mechanism = to_upper(mechanism);
        if (r_.consume(' ')) {
            std::string_view response = r_.read_while(is_base64_char);
            if (response.empty()) return r_.fail("invalid initial response");
            value.initial_response = response == "=" ? std::string() : std::string(response);
        }
        return done(out, std::move(value));
    }

    bool login(CommandBody& out) {
        Login value;
        if (!r_.sp() || !r_.astring(value.user) || !r_.sp() || !r_.astring(value.password)) return false;
        return done(out, std::move(value));
    }

    // RFC 5161: "ENABLE" 1*(SP capability)
    bool enable(CommandBody& out) {
        Enable value;
        do {
            std::string capability;
            if (!r_.sp() || !r_.atom(capability)) return false;
            value.capabilities.push_back(to_upper(capability));
        } while (r_.peek() == ' ');
        return done(out, std::move(value));
    }

    // RFC 7162 3.1.8 and 3.2.5: select-params = SP "(" select-param *(SP select-param) ")"
    bool select(CommandBody& out, bool read_only) {
        Select value;
        value.read_only = read_only;
        if (!r_.sp() || !r_.mailbox(value.mailbox)) return false;
        if (r_.consume(' ')) {
            if (!r_.expect('(')) return false;
            for (;;) {
                if (r_.accept_keyword("CONDSTORE")) {
                    value.condstore = true;
                } else if (r_.accept_keyword("QRESYNC")) {
                    if (value.qresync) return r_.fail("QRESYNC given twice");
                    QresyncParams params;
                    if (!qresync(params)) return false;
                    value.qresync = std::move(params);
                } else {
                    return r_.fail("unknown select parameter");
                }
                if (r_.consume(')')) break;
                if (!r_.sp()) return false;
            }
        }
        return done(out, std::move(value));
    }

    // "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
    bool qresync(QresyncParams& params) {
        if (!r_.sp() || !r_.expect('(') || !r_.nz_number(params.uid_validity) || !r_.sp() ||
            !r_.number64(params.mod_seq)) {
            return false;
        }
        if (r_.consume(' ')) {
            if (r_.peek() != '(') {
                SequenceSet known;
                if (!r_.sequence_set(known)) return false;
                params.known_uids = std::move(known);
                if (r_.consume(' ') && !seq_match(params)) return false;
            } else if (!seq_match(params)) {
                return false;
            }
        }
        return r_.expect(')');
    }

    // seq-match-data = "(" known-sequence-set SP known-uid-set ")"
    bool seq_match(QresyncParams& params) {
        SequenceSet numbers, uids;
        if (!r_.expect('(') || !r_.sequence_set(numbers) || !r_.sp() || !r_.sequence_set(uids) ||
            !r_.expect(')')) {
            return false;
        }
        params.sequence_match = std::make_pair(std::move(numbers), std::move(uids));
        return true;
    }

    // CREATE mailbox [SP "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"] (RFC 4466, RFC 6154 3)
    bool create(CommandBody& out) {
        Create value;
        if (!r_.sp() || !r_.mailbox(value.mailbox)) return false;
        if (r_.consume(' ')) {
            if (!r_.expect('(')) return false;
            if (!r_.accept_keyword("USE")) return r_.fail("unknown CREATE parameter");
            if (!r_.sp() || !r_.expect('(')) return false;
            if (!r_.consume(')')) {
                for (;;) {
                    std::string use;
                    if (!r_.expect('\\') || !r_.atom(use)) return false;
                    value.special_use.push_back("\\" + use);
                    if (r_.consume(')')) break;
                    if (!r_.sp()) return false;
                }
            }
            if (!r_.expect(')')) return false;
        }
        return done(out, std::move(value));
    }

    bool rename(CommandBody& out) {
        Rename value;
        if (!r_.sp() || !r_.mailbox(value.from) || !r_.sp() || !r_.mailbox(value.to)) return false;
        return done(out, std::move(value));
    }

    // RFC 5258: "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
    bool list(CommandBody& out) {
        List value;
        if (!r_.sp()) return false;
        if (r_.consume('(')) {
            value.extended = true;
            if (!r_.consume(')')) {
                for (;;) {
                    if (r_.accept_keyword("SUBSCRIBED")) {
                        value.selection.subscribed = true;
                    } else if (r_.accept_keyword("REMOTE")) {
                        value.selection.remote = true;
                    } else if (r_.accept_keyword("RECURSIVEMATCH")) {
                        value.selection.recursive_match = true;
                    } else if (r_.accept_keyword("SPECIAL-USE")) {
                        value.selection.special_use = true;
                    } else {
                        // RFC 5258 3: an unrecognised selection option is a BAD.
                        return r_.fail("unknown LIST selection option");
                    }
                    if (r_.consume(')')) break;
                    if (!r_.sp()) return false;
                }
            }
            // RFC 5258 3.1: RECURSIVEMATCH alone (or with only REMOTE) is a BAD.
            if (value.selection.recursive_match && !value.selection.subscribed &&
                !value.selection.special_use) {
                return r_.fail("RECURSIVEMATCH needs another selection option");
            }
            if (!r_.sp()) return false;
        }
        std::string reference;
        if (!r_.astring(reference) || !r_.decode_name(std::move(reference), value.reference) || !r_.sp()) {
            return false;
        }
        // A reference or pattern that does not decode matches no name: it is dropped, and LIST answers
        // OK with what the others match (RFC 3501 5.1.3; Dovecot does the same).
        const bool reference_decodes = r_.undecodable_names == 0;
        auto add_pattern = [&]() {
            const std::size_t before = r_.undecodable_names;
            std::string pattern;
            if (!r_.list_mailbox(pattern)) return false;
            if (reference_decodes && r_.undecodable_names == before)
                value.patterns.push_back(std::move(pattern));
            return true;
        };
        if (r_.consume('(')) {
            value.extended = true;
            for (;;) {
                if (!add_pattern()) return false;
                if (r_.consume(')')) break;
                if (!r_.sp()) return false;
            }
        } else {
            if (!add_pattern()) return false;
        }
        if (r_.consume(' ')) {
            if (!r_.accept_keyword("RETURN") || !r_.sp() || !r_.expect('(')) {
                return r_.fail("expected RETURN options");
            }
            value.extended = true;
            if (!r_.consume(')')) {
                for (;;) {
                    if (r_.accept_keyword("SUBSCRIBED")) {
                        value.returns.subscribed = true;
                    } else if (r_.accept_keyword("CHILDREN")) {
                        value.returns.children = true;
                    } else if (r_.accept_keyword("SPECIAL-USE")) {
                        value.returns.special_use = true;
                    } else if (r_.accept_keyword("STATUS")) {
                        // RFC 5819: "STATUS" SP "(" status-att *(SP status-att) ")"
                        std::vector<StatusItem> items;
                        if (!r_.sp() || !r_.status_items(items)) return false;
                        value.returns.status = std::move(items);
                    } else {
                        return r_.fail("unknown LIST return option");
                    }
                    if (r_.consume(')')) break;
                    if (!r_.sp()) return false;
                }
            }
        }
        return done(out, std::move(value));
    }

    bool lsub(CommandBody& out) {
        Lsub value;
        std::string reference;
        if (!r_.sp() || !r_.astring(reference) || !r_.decode_name(std::move(reference), value.reference) ||
            !r_.sp() || !r_.list_mailbox(value.pattern)) {
            return false;
        }
        value.matches_nothing = r_.undecodable_names > 0;  // as in LIST
        return done(out, std::move(value));
    }

    bool status(CommandBody& out) {
        Status value;
        if (!r_.sp() || !r_.mailbox(value.mailbox) || !r_.sp() || !r_.status_items(value.items)) return false;
        return done(out, std::move(value));
    }

    // "APPEND" SP mailbox [SP flag-list] [SP date-time] SP (literal / literal8)
    bool append(CommandBody& out) {
        Append value;
        if (!r_.sp() || !r_.mailbox(value.mailbox) || !r_.sp()) return false;
        if (r_.peek() == '(') {
            if (!r_.flag_list(value.flags) || !r_.sp()) return false;
        }
        if (r_.peek() == '"') {
            DateTime when;
            if (!r_.date_time(when) || !r_.sp()) return false;
            value.internal_date = when;
        }
        if (r_.peek() != 0) return r_.fail("APPEND needs the message as a literal");
        if (!r_.literal(value.message, true, &value.binary, true, &value.spooled)) return false;
        return done(out, std::move(value));
    }

    // "SEARCH" [SP "RETURN" SP "(" [opts] ")"] SP ["CHARSET" SP charset SP] search-key *(SP search-key)
    bool search(CommandBody& out, bool uid) {
        Search value;
        value.uid = uid;
        if (!r_.sp()) return false;
        if (r_.accept_keyword("RETURN")) {
            SearchReturn options;
            if (!r_.sp() || !r_.expect('(')) return false;
            if (!r_.consume(')')) {
                for (;;) {
                    if (r_.accept_keyword("MIN")) {
                        options.min = true;
                    } else if (r_.accept_keyword("MAX")) {
                        options.max = true;
                    } else if (r_.accept_keyword("ALL")) {
                        options.all = true;
                    } else if (r_.accept_keyword("COUNT")) {
                        options.count = true;
                    } else if (r_.accept_keyword("SAVE")) {
                        options.save = true;
                    } else {
                        return r_.fail("unknown SEARCH return option");
                    }
                    if (r_.consume(')')) break;
                    if (!r_.sp()) return false;
                }
            }
            // RFC 4731 3.1: RETURN () is RETURN (ALL).
            if (!options.min && !options.max && !options.all && !options.count && !options.save)
                options.all = true;
            value.return_options = options;
            if (!r_.sp()) return false;
        }
        if (r_.accept_keyword("CHARSET")) {
            std::string charset;
            if (!r_.sp()) return false;
            if (r_.peek() == '"') {
                if (!r_.quoted(charset)) return false;
            } else if (!r_.atom(charset)) {
                return false;
            }
            value.charset = to_upper(charset);
            if (!r_.sp()) return false;
        }
        std::vector<SearchKey> keys;
        do {
            if (!keys.empty() && !r_.sp()) return false;
            SearchKey key;
            if (!r_.search_key(key, 1)) return false;
            keys.push_back(std::move(key));
        } while (r_.peek() == ' ');
        if (keys.size() == 1) {
            value.criteria = std::move(keys[0]);
        } else {
            value.criteria.kind = SearchKey::Kind::and_;
            value.criteria.children = std::move(keys);
        }
        return done(out, std::move(value));
    }

    // "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")")
    //   [SP "(" fetch-modifier *(SP fetch-modifier) ")"]
    bool fetch(CommandBody& out, bool uid) {
        using K = FetchItem::Kind;
        Fetch value;
        value.uid = uid;
        if (!r_.sp() || !r_.sequence_set(value.set) || !r_.sp()) return false;
        auto add = [&](std::initializer_list<K> kinds) {
            for (K kind : kinds) {
                FetchItem item;
                item.kind = kind;
                value.items.push_back(item);
            }
        };
        // RFC 9051 6.4.5: the macros and what they expand to.
        if (r_.accept_keyword("ALL")) {
            add({K::flags, K::internal_date, K::rfc822_size, K::envelope});
        } else if (r_.accept_keyword("FAST")) {
            add({K::flags, K::internal_date, K::rfc822_size});
        } else if (r_.accept_keyword("FULL")) {
            add({K::flags, K::internal_date, K::rfc822_size, K::envelope, K::body});
        } else if (r_.consume('(')) {
            for (;;) {
                FetchItem item;
                if (!r_.fetch_item(item)) return false;
                value.items.push_back(std::move(item));
                if (r_.consume(')')) break;
                if (!r_.sp()) return false;
            }
        } else {
            FetchItem item;
            if (!r_.fetch_item(item)) return false;
            value.items.push_back(std::move(item));
        }
        if (r_.consume(' ')) {
            if (!r_.expect('(')) return false;
            for (;;) {
                if (r_.accept_keyword("CHANGEDSINCE")) {
                    std::uint64_t mod_seq = 0;
                    if (!r_.sp() || !r_.number64(mod_seq)) return false;
                    value.changed_since = mod_seq;
                } else if (r_.accept_keyword("VANISHED")) {
                    value.vanished = true;
                } else {
                    return r_.fail("unknown FETCH modifier");
                }
                if (r_.consume(')')) break;
                if (!r_.sp()) return false;
            }
            // RFC 7162 3.2.6: VANISHED only in UID FETCH, and only together with CHANGEDSINCE.
            if (value.vanished && (!uid || !value.changed_since)) {
                return r_.fail("VANISHED needs UID FETCH and CHANGEDSINCE");
            }
        }
        return done(out, std::move(value));
    }

    // "STORE" SP sequence-set [SP "(" "UNCHANGEDSINCE" SP mod-sequence-valzer ")"] SP store-att-flags
    bool store(CommandBody& out, bool uid) {
        Store value;
        value.uid = uid;
        if (!r_.sp() || !r_.sequence_set(value.set) || !r_.sp()) return false;
        if (r_.consume('(')) {
            std::uint64_t mod_seq = 0;
            if (!r_.accept_keyword("UNCHANGEDSINCE")) return r_.fail("unknown STORE modifier");
            if (!r_.sp() || !r_.number64(mod_seq) || !r_.expect(')') || !r_.sp()) return false;
            value.unchanged_since = mod_seq;
        }
        // store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
        if (r_.consume('+')) {
            value.mode = Store::Mode::add;
        } else if (r_.consume('-')) {
            value.mode = Store::Mode::remove;
        }
        std::string name = to_upper(r_.keyword());
        if (name == "FLAGS.SILENT") {
            value.silent = true;
        } else if (name != "FLAGS") {
            return r_.fail("expected FLAGS, +FLAGS or -FLAGS");
        }
        if (!r_.sp()) return false;
        if (r_.peek() == '(') {
            if (!r_.flag_list(value.flags)) return false;
        } else {
            do {
                if (!value.flags.empty() && !r_.sp()) return false;
                std::string flag;
                if (!r_.flag(flag)) return false;
                value.flags.push_back(std::move(flag));
            } while (r_.peek() == ' ');
        }
        return done(out, std::move(value));
    }

    template <class T>
    bool copy(CommandBody& out, bool uid) {
        T value;
        value.uid = uid;
        if (!r_.sp() || !r_.sequence_set(value.set) || !r_.sp() || !r_.mailbox(value.mailbox)) return false;
        return done(out, std::move(value));
    }

    // "UID" SP (copy / move / fetch / search / store / uid-expunge)
    bool uid(CommandBody& out) {
        if (!r_.sp()) return false;
        std::string name = to_upper(r_.keyword());
        if (name == "FETCH") return fetch(out, true);
        if (name == "SEARCH") return search(out, true);
        if (name == "STORE") return store(out, true);
        if (name == "COPY") return copy<Copy>(out, true);
        if (name == "MOVE") return copy<Move>(out, true);
        if (name == "EXPUNGE") {
            Expunge value;
            SequenceSet set;
            if (!r_.sp() || !r_.sequence_set(set)) return false;
            value.uids = std::move(set);
            return done(out, std::move(value));
        }
        return r_.fail("unknown UID command " + name);
    }

    // RFC 2971: "ID" SP ("(" [string SP nstring *(SP string SP nstring)] ")" / nil)
    bool id(CommandBody& out) {
        Id value;
        if (!r_.sp()) return false;
        if (r_.accept_keyword("NIL")) return done(out, std::move(value));
        if (!r_.expect('(')) return false;
        value.fields.emplace();
        if (!r_.consume(')')) {
            for (;;) {
                std::string field;
                std::optional<std::string> field_value;
                if (!r_.string(field) || !r_.sp() || !r_.nstring(field_value)) return false;
                if (value.fields->size() >= kMaxIdFields) return r_.fail("too many ID fields");
                value.fields->emplace_back(std::move(field), std::move(field_value));
                if (r_.consume(')')) break;
                if (!r_.sp()) return false;
            }
        }
        return done(out, std::move(value));
    }

    bool getquota(CommandBody& out) {
        GetQuota value;
        if (!r_.sp() || !r_.astring(value.root)) return false;
        return done(out, std::move(value));
    }

    // RFC 9208: "SETQUOTA" SP quota-root SP "(" [resource-name SP number64 *(SP ...)] ")"
    bool setquota(CommandBody& out) {
        SetQuota value;
        if (!r_.sp() || !r_.astring(value.root) || !r_.sp() || !r_.expect('(')) return false;
        if (!r_.consume(')')) {
            for (;;) {
                std::string resource;
                std::uint64_t limit = 0;
                if (!r_.atom(resource) || !r_.sp() || !r_.number64(limit)) return false;
                value.limits.emplace_back(to_upper(resource), limit);
                if (r_.consume(')')) break;
                if (!r_.sp()) return false;
            }
        }
        return done(out, std::move(value));
    }

    Reader& r_;
};

}  // namespace

bool is_valid_tag(std::string_view tag) {
    if (tag.empty()) return false;
    for (char c : tag) {
        if (!is_astring_char(static_cast<unsigned char>(c)) || c == '+') return false;
    }
    return true;
}

Result<Command> parse_command(CommandText& command, const Limits& limits, bool utf8_mailbox_names) {
    Reader reader(command, limits, utf8_mailbox_names);
    Command out;
    std::string_view tag = reader.read_while([](int c) { return is_astring_char(c) && c != '+'; });
    if (!is_valid_tag(tag)) return make_error(Errc::invalid_argument, "invalid tag");
    out.tag.assign(tag);
    if (!reader.sp()) return make_error(Errc::invalid_argument, "expected a space after the tag");
    std::string_view name = reader.keyword();
    CommandReader commands(reader);
    if (commands.read(name, out.body) && !reader.at_end()) reader.fail("unexpected text after the command");
    if (!reader.ok()) return make_error(Errc::invalid_argument, reader.error());
    // LIST and LSUB drop their undecodable patterns themselves; anywhere else such a name names nothing.
    if (!std::holds_alternative<List>(out.body) && !std::holds_alternative<Lsub>(out.body))
        out.undecodable_mailbox = std::move(reader.undecodable_name);
    return out;
}

}  // namespace magpie::imap
