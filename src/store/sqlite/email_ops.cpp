// The Email view of the embedded backend (issue 11; JMAP's Email and Thread, RFC 8621): reads by id,
// queries with filters and sorts, threads, changes since an account state, and Email/set's updates and
// destroys, which are IMAP's COPY / EXPUNGE / STORE on the Email's memberships under the same invariants.
#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <variant>

#include <fmt/format.h>
#include <sqlite3.h>

#include "base/strings.h"
#include "store/sqlite/emails.h"
#include "store/sqlite/queries.h"
#include "store/sqlite/rows.h"
#include "store/sqlite/sqlite_store.h"

namespace magpie::store::sqlite {
namespace {

std::string json_ids(std::span<const std::int64_t> ids) {
    std::string json = "[";
    for (std::int64_t id : ids) {
        if (json.size() > 1) json += ',';
        json += std::to_string(id);
    }
    json += ']';
    return json;
}

Result<std::uint64_t> state_of_account(Connection& db, std::int64_t account_id) {
    auto statement = db.prepare("SELECT email_state FROM accounts WHERE id = ?1");
    if (!statement) return statement.error();
    auto row = statement->bind(1, account_id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
    return static_cast<std::uint64_t>(statement->column_int64(0));
}

// ---- Email/query: the filter tree and the sort as SQL over `emails e LEFT JOIN blobs b`, values bound.
class QuerySql {
public:
    QuerySql(std::size_t max_nodes, const FlagLimits& flag_limits) : max_nodes_(max_nodes), flag_limits_(flag_limits) {}

    Result<std::string> filter(const EmailFilter& node) {
        if (++nodes_ > max_nodes_) {
            return make_error(Errc::limit_exceeded, fmt::format("filter of more than {} nodes", max_nodes_));
        }
        if (node.op == EmailFilter::Operator::condition) return condition(node.condition);
        std::vector<std::string> parts;
        for (const EmailFilter& operand : node.operands) {
            auto part = filter(operand);
            if (!part) return part.error();
            parts.push_back(std::move(*part));
        }
        switch (node.op) {
            case EmailFilter::Operator::all_of: return parts.empty() ? std::string("1") : join(parts, " AND ");
            case EmailFilter::Operator::any_of: return parts.empty() ? std::string("0") : join(parts, " OR ");
            case EmailFilter::Operator::none_of:
                return parts.empty() ? std::string("1") : "NOT " + join(parts, " OR ");
            case EmailFilter::Operator::condition: break;
        }
        return std::string("1");
    }

    // Binds the collected values from ?2 on (?1 is the account).
    void bind(Statement& statement) const {
        for (std::size_t i = 0; i < values_.size(); ++i) {
            const int index = static_cast<int>(i) + 2;
            if (const auto* number = std::get_if<std::int64_t>(&values_[i])) {
                statement.bind(index, *number);
            } else {
                statement.bind_text(index, std::get<std::string>(values_[i]));
            }
        }
    }
    int next_parameter() const { return static_cast<int>(values_.size()) + 2; }

private:
    static std::string join(const std::vector<std::string>& parts, const char* glue) {
        std::string out = "(";
        for (std::size_t i = 0; i < parts.size(); ++i) {
            if (i > 0) out += glue;
            out += parts[i];
        }
        return out + ")";
    }

    std::string value(std::int64_t number) {
        values_.emplace_back(number);
        return fmt::format("?{}", values_.size() + 1);
    }
    std::string value(std::string text) {
        values_.emplace_back(std::move(text));
        return fmt::format("?{}", values_.size() + 1);
    }

    // A flag as a test on the columns of the Email `alias`; nullopt for one that no Email can carry.
    std::optional<std::string> has_flag(const std::string& flag, const char* alias = "e") {
        auto parsed = parse_flags({flag}, flag_limits_);
        if (!parsed) return std::nullopt;
        if (parsed->system != 0) return fmt::format("({}.system_flags & {}) <> 0", alias, parsed->system);
        if (parsed->keywords.empty()) return std::nullopt;
        // Keywords are stored space-joined; atoms hold no space, so " k " finds exactly one (ASCII case-insensitive).
        return fmt::format("instr(' ' || lower({}.keywords) || ' ', {}) > 0", alias,
                           value(fmt::format(" {} ", to_lower(parsed->keywords.front()))));
    }

    // RFC 8621 4.4.1 allInThreadHaveKeyword / someInThreadHaveKeyword / noneInThreadHaveKeyword, over the
    // emails_thread index.
    std::string thread_keyword(const std::string& flag, bool all, bool negate) {
        auto test = has_flag(flag, "t");
        const std::string others = "SELECT 1 FROM emails t WHERE t.thread_id = e.thread_id AND t.account_id = e.account_id";
        if (all) return test ? fmt::format("NOT EXISTS({} AND NOT {})", others, *test) : std::string("0");
        if (!test) return negate ? "1" : "0";
        return fmt::format("{}EXISTS({} AND {})", negate ? "NOT " : "", others, *test);
    }

    std::string contains(const char* column, const std::string& text) {
        return fmt::format("instr(lower({}), {}) > 0", column, value(to_lower(text)));
    }

    Result<std::string> condition(const EmailCondition& c) {
        std::vector<std::string> terms;
        if (c.in_mailbox) {
            terms.push_back(fmt::format("e.id IN (SELECT email_id FROM messages WHERE mailbox_id = {})", value(*c.in_mailbox)));
        }
        if (!c.in_mailbox_other_than.empty()) {
            terms.push_back(fmt::format("EXISTS(SELECT 1 FROM messages mo WHERE mo.email_id = e.id AND mo.mailbox_id "
                                        "NOT IN (SELECT value FROM json_each({})))",
                                        value(json_ids(c.in_mailbox_other_than))));
        }
        if (c.has_keyword) terms.push_back(has_flag(*c.has_keyword).value_or("0"));
        if (c.not_keyword) {
            auto test = has_flag(*c.not_keyword);
            terms.push_back(test ? "NOT " + *test : "1");
        }
        if (c.before) terms.push_back("e.internal_date < " + value(*c.before));
        if (c.after) terms.push_back("e.internal_date >= " + value(*c.after));
        if (c.min_size) terms.push_back("e.size >= " + value(static_cast<std::int64_t>(*c.min_size)));
        if (c.max_size) terms.push_back("e.size < " + value(static_cast<std::int64_t>(*c.max_size)));
        if (!c.from.empty()) terms.push_back(contains("b.from_header", c.from));
        if (!c.to.empty()) terms.push_back(contains("b.to_header", c.to));
        if (!c.cc.empty()) terms.push_back(contains("b.cc_header", c.cc));
        if (!c.subject.empty()) terms.push_back(contains("b.subject", c.subject));
        if (!c.text.empty()) {
            const std::string needle = value(to_lower(c.text));
            terms.push_back(fmt::format("(instr(lower(b.subject), {0}) > 0 OR instr(lower(b.from_header), {0}) > 0 OR "
                                        "instr(lower(b.to_header), {0}) > 0 OR instr(lower(b.cc_header), {0}) > 0)",
                                        needle));
        }
        if (c.all_in_thread_have_keyword) terms.push_back(thread_keyword(*c.all_in_thread_have_keyword, true, false));
        if (c.some_in_thread_have_keyword) terms.push_back(thread_keyword(*c.some_in_thread_have_keyword, false, false));
        if (c.none_in_thread_have_keyword) terms.push_back(thread_keyword(*c.none_in_thread_have_keyword, false, true));
        if (c.content.empty()) return terms.empty() ? std::string("1") : join(terms, " AND ");
        // The blob reads come only after every cheap term held: the planner may evaluate an AND's terms in
        // any order (a term on `e` alone before the join to `b`), but CASE evaluates in the order written.
        has_content_ = true;
        std::vector<std::string> reads;
        for (const std::string& content : c.content) reads.push_back(fmt::format("magpie_content(e.blob_id, {})", value(content)));
        if (terms.empty()) return join(reads, " AND ");
        const std::string cheap = join(terms, " AND ");
        return fmt::format("({} AND CASE WHEN {} THEN {} ELSE 0 END)", cheap, cheap, join(reads, " AND "));
    }

public:
    bool has_content() const { return has_content_; }

private:
    bool has_content_ = false;

    std::size_t max_nodes_;
    FlagLimits flag_limits_;
    std::size_t nodes_ = 0;
    std::vector<std::variant<std::int64_t, std::string>> values_;
};

const char* sort_column(EmailSortKey key) {
    switch (key) {
        case EmailSortKey::received_at: return "e.internal_date";
        case EmailSortKey::sent_at: return "e.sent_at";
        case EmailSortKey::size: return "e.size";
        case EmailSortKey::from: return "lower(coalesce(b.from_header, ''))";
        case EmailSortKey::subject: return "e.base_subject";
    }
    return "e.internal_date";
}

// Steps a statement whose rows are single integers.
Result<std::vector<std::int64_t>> int_column(Statement& statement) {
    std::vector<std::int64_t> out;
    for (;;) {
        auto row = statement.step();
        if (!row) return row.error();
        if (!*row) return out;
        out.push_back(statement.column_int64(0));
    }
}

// magpie_content(blob_id, condition): the caller's ContentMatcher over the blob's bytes, read on the
// query's own connection (a second pooled reader could deadlock a full pool). Answers are kept per blob and
// condition, so the count and the page queries read a blob once; the last blob read is kept for the next
// condition on it.
struct ContentSearch {
    const ContentMatcher* matcher = nullptr;
    std::function<Result<std::string>(std::string_view blob_id)> read;
    std::map<std::pair<std::string, std::string>, bool> answers;
    std::string last_blob_id, last_bytes;
    std::optional<Error> error;

    Result<bool> answer(const std::string& blob_id, const std::string& condition) {
        auto key = std::make_pair(blob_id, condition);
        if (auto it = answers.find(key); it != answers.end()) return it->second;
        if (blob_id != last_blob_id) {
            auto bytes = read(blob_id);
            if (!bytes) return bytes.error();
            last_blob_id = blob_id;
            last_bytes = std::move(*bytes);
        }
        auto matched = (*matcher)(last_bytes, condition);
        if (!matched) return matched.error();
        answers.emplace(std::move(key), *matched);
        return *matched;
    }
};

void content_function(sqlite3_context* context, int, sqlite3_value** args) {
    auto* search = static_cast<ContentSearch*>(sqlite3_user_data(context));
    auto text = [](sqlite3_value* value) {
        const auto* bytes = sqlite3_value_text(value);
        return bytes == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(bytes),
                                                              static_cast<std::size_t>(sqlite3_value_bytes(value)));
    };
    auto answer = search->answer(text(args[0]), text(args[1]));
    if (!answer) {
        search->error = answer.error();
        sqlite3_result_error(context, answer.error().message.c_str(), -1);
        return;
    }
    sqlite3_result_int(context, *answer ? 1 : 0);
}

// Registers magpie_content on a pooled connection for one query and removes it after, so that no later
// query on that connection calls into a search that is gone.
class ContentFunction {
public:
    ContentFunction(Connection& db, ContentSearch* search) : db_(db) {
        sqlite3_create_function_v2(db_.handle(), "magpie_content", 2, SQLITE_UTF8, search, content_function, nullptr,
                                   nullptr, nullptr);
    }
    ~ContentFunction() {
        sqlite3_create_function_v2(db_.handle(), "magpie_content", 2, SQLITE_UTF8, nullptr, nullptr, nullptr, nullptr,
                                   nullptr);
    }
    ContentFunction(const ContentFunction&) = delete;
    ContentFunction& operator=(const ContentFunction&) = delete;

private:
    Connection& db_;
};

struct LogRow {
    std::int64_t email_id = 0, thread_id = 0;
    EmailChange kind = EmailChange::updated;
};
// The rows of email_log after `since`, whole states at a time, at most `max` rows unless one state alone
// has more; fills the states and has_more_changes of `changes`.
Result<std::vector<LogRow>> log_since(Connection& db, std::int64_t account_id, std::uint64_t since, std::size_t max,
                                      EmailChanges& changes) {
    auto current = state_of_account(db, account_id);
    if (!current) return current.error();
    if (since > *current) {
        return make_error(Errc::invalid_argument, fmt::format("state {} is newer than the account's {}", since, *current));
    }
    changes.old_state = since;
    changes.new_state = *current;
    auto statement = db.prepare(kEmailLogSince);
    if (!statement) return statement.error();
    statement->bind(1, account_id).bind(2, static_cast<std::int64_t>(since));
    std::vector<LogRow> rows;
    std::uint64_t group_state = 0;
    for (;;) {
        auto row = statement->step();
        if (!row) return row.error();
        if (!*row) break;
        const auto state = static_cast<std::uint64_t>(statement->column_int64(0));
        if (state != group_state) {
            // A new state begins: stop if the page is full (states are never split).
            if (rows.size() >= max && !rows.empty()) {
                changes.new_state = group_state;
                changes.has_more_changes = true;
                break;
            }
            group_state = state;
        }
        rows.push_back(LogRow{statement->column_int64(1), statement->column_int64(2),
                              static_cast<EmailChange>(statement->column_int64(3))});
    }
    return rows;
}

}  // namespace

struct SqliteStore::EmailChangeContext {
    std::int64_t account_id = 0;
    EmailLog log;
    Changes changes;
};

Result<std::uint64_t> SqliteStore::account_state(std::int64_t account_id) {
    return read<std::uint64_t>([&](Connection& db) { return state_of_account(db, account_id); });
}

Result<std::vector<Email>> SqliteStore::find_emails(std::int64_t account_id, const std::vector<std::int64_t>& ids) {
    if (ids.size() > options_.max_query_results) {
        return make_error(Errc::invalid_argument, fmt::format("more than {} ids", options_.max_query_results));
    }
    return read<std::vector<Email>>([&](Connection& db) -> Result<std::vector<Email>> {
        std::vector<Email> emails;
        std::map<std::int64_t, std::vector<EmailMembership>> memberships;
        {
            auto statement = db.prepare(
                "SELECT e.id, e.account_id, e.thread_id, e.blob_id, e.size, e.internal_date, e.sent_at, "
                "e.system_flags, e.keywords, e.state, b.subject, b.from_header, b.to_header, b.cc_header, "
                "b.date_header, b.message_id, b.in_reply_to, b.refs, b.structure FROM json_each(?2) j "
                "CROSS JOIN emails e LEFT JOIN blobs b ON b.id = e.blob_id WHERE e.id = j.value AND e.account_id = ?1 "
                "ORDER BY j.key");
            if (!statement) return statement.error();
            statement->bind(1, account_id).bind_text(2, json_ids(ids));
            for (;;) {
                auto row = statement->step();
                if (!row) return row.error();
                if (!*row) break;
                Email email;
                email.id = statement->column_int64(0);
                email.account_id = statement->column_int64(1);
                email.thread_id = statement->column_int64(2);
                email.blob_id = statement->column_text(3);
                email.size = static_cast<std::uint64_t>(statement->column_int64(4));
                email.received_at = statement->column_int64(5);
                email.sent_at = statement->column_int64(6);
                email.flags = flag_list(static_cast<std::uint32_t>(statement->column_int64(7)), statement->column_text(8));
                email.state = static_cast<std::uint64_t>(statement->column_int64(9));
                email.summary.subject = statement->column_text(10);
                email.summary.from = statement->column_text(11);
                email.summary.to = statement->column_text(12);
                email.summary.cc = statement->column_text(13);
                email.summary.date = statement->column_text(14);
                email.summary.message_id = statement->column_text(15);
                email.summary.in_reply_to = statement->column_text(16);
                email.summary.references = statement->column_text(17);
                email.summary.structure = statement->column_text(18);
                memberships.emplace(email.id, std::vector<EmailMembership>{});
                emails.push_back(std::move(email));
            }
        }
        if (emails.empty()) return emails;
        std::vector<std::int64_t> found;
        for (const auto& [id, unused] : memberships) found.push_back(id);
        auto statement = db.prepare(
            "SELECT m.email_id, m.mailbox_id, m.uid, m.modseq FROM json_each(?1) j CROSS JOIN messages m "
            "WHERE m.email_id = j.value ORDER BY m.email_id, m.mailbox_id");
        if (!statement) return statement.error();
        statement->bind_text(1, json_ids(found));
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) break;
            memberships[statement->column_int64(0)].push_back(
                EmailMembership{statement->column_int64(1), static_cast<std::uint32_t>(statement->column_int64(2)),
                                static_cast<std::uint64_t>(statement->column_int64(3))});
        }
        for (Email& email : emails) {
            email.mailboxes = memberships[email.id];
            std::ranges::sort(email.mailboxes, {}, &EmailMembership::mailbox_id);
        }
        return emails;
    });
}

// The count, the anchor and the page of a query whose SQL is built, in one read snapshot.
// The first pages of one mailbox in receivedAt order, what every client asks first (RFC 8621 4.4 with
// inMailbox alone): the total is the mailbox's kept counter (an Email is in a mailbox at most once), and
// the page walks the account's Emails down the emails_received index, stopping after `limit` of them are in
// the mailbox. nullopt when that walk would not pay: a mailbox holding a small part of the account, whose
// few Emails the general query sorts at little cost.
Result<std::optional<EmailQueryResult>> mailbox_first_page(Connection& db, std::int64_t account_id,
                                                           std::int64_t mailbox_id, std::int64_t position,
                                                           std::size_t limit) {
    EmailQueryResult result;
    auto state = state_of_account(db, account_id);
    if (!state) return state.error();
    result.state = *state;
    auto counts = db.prepare(
        "SELECT coalesce(sum(CASE WHEN id = ?2 THEN message_count END), 0), coalesce(sum(message_count), 0) "
        "FROM mailboxes WHERE account_id = ?1");
    if (!counts) return counts.error();
    auto row = counts->bind(1, account_id).bind(2, mailbox_id).step();
    if (!row) return row.error();
    const std::int64_t in_mailbox = counts->column_int64(0);
    const std::int64_t memberships = counts->column_int64(1);  // at least the account's Emails
    // Walking the index visits about (position + limit) * memberships / in_mailbox Emails.
    if (in_mailbox == 0 || in_mailbox * 8 < memberships) return std::optional<EmailQueryResult>();
    result.total = static_cast<std::uint64_t>(in_mailbox);
    result.position = static_cast<std::uint64_t>(std::min(position, in_mailbox));
    if (position >= in_mailbox) return std::optional<EmailQueryResult>(std::move(result));
    auto page = db.prepare(kMailboxPageByReceived);
    if (!page) return page.error();
    page->bind(1, account_id).bind(2, mailbox_id).bind(3, static_cast<std::int64_t>(limit)).bind(4, position);
    auto ids = int_column(*page);
    if (!ids) return ids.error();
    result.ids = std::move(*ids);
    return std::optional<EmailQueryResult>(std::move(result));
}

// inMailbox alone, in the default order (receivedAt descending), from a position: mailbox_first_page's case.
std::optional<std::int64_t> only_in_mailbox(const EmailQuery& query) {
    if (query.collapse_threads || query.anchor || query.position < 0 || query.content_matcher) return std::nullopt;
    if (query.sort.size() > 1 ||
        (query.sort.size() == 1 && (query.sort[0].key != EmailSortKey::received_at || query.sort[0].ascending))) {
        return std::nullopt;
    }
    if (query.filter.op != EmailFilter::Operator::condition) return std::nullopt;
    const EmailCondition& c = query.filter.condition;
    if (!c.in_mailbox || !c.in_mailbox_other_than.empty() || c.has_keyword || c.not_keyword || c.before || c.after ||
        c.min_size || c.max_size || !c.from.empty() || !c.to.empty() || !c.cc.empty() || !c.subject.empty() ||
        !c.text.empty() || c.all_in_thread_have_keyword || c.some_in_thread_have_keyword ||
        c.none_in_thread_have_keyword || !c.content.empty()) {
        return std::nullopt;
    }
    return *c.in_mailbox;
}

Result<EmailQueryResult> run_query(Connection& db, std::int64_t account_id, const EmailQuery& query, const QuerySql& sql, const std::string& matched,
                             const std::string& order, std::size_t limit) {
    EmailQueryResult result;
    auto state = state_of_account(db, account_id);
    if (!state) return state.error();
    result.state = *state;
    {
        auto count = db.prepare_once(fmt::format("SELECT count(*) FROM ({})", matched));
        if (!count) return count.error();
        count->bind(1, account_id);
        sql.bind(*count);
        auto row = count->step();
        if (!row) return row.error();
        result.total = static_cast<std::uint64_t>(count->column_int64(0));
    }
    std::int64_t start = 0;
    const auto total = static_cast<std::int64_t>(result.total);
    if (query.anchor) {
        auto anchor = db.prepare_once(fmt::format(
            "SELECT n FROM (SELECT id, row_number() OVER (ORDER BY {}) - 1 AS n FROM ({})) WHERE id = ?{}", order,
            matched, sql.next_parameter()));
        if (!anchor) return anchor.error();
        anchor->bind(1, account_id);
        sql.bind(*anchor);
        anchor->bind(sql.next_parameter(), *query.anchor);
        auto row = anchor->step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, fmt::format("anchor {} is not in the results", *query.anchor));
        start = std::max<std::int64_t>(0, anchor->column_int64(0) + query.anchor_offset);
    } else if (query.position < 0) {
        start = std::max<std::int64_t>(0, total + query.position);
    } else {
        start = query.position;
    }
    result.position = static_cast<std::uint64_t>(std::min(start, total));
    if (start >= total) return result;
    auto page = db.prepare_once(fmt::format("SELECT id FROM ({}) ORDER BY {} LIMIT ?{} OFFSET ?{}", matched, order,
                                            sql.next_parameter(), sql.next_parameter() + 1));
    if (!page) return page.error();
    page->bind(1, account_id);
    sql.bind(*page);
    page->bind(sql.next_parameter(), static_cast<std::int64_t>(limit)).bind(sql.next_parameter() + 1, start);
    auto ids = int_column(*page);
    if (!ids) return ids.error();
    result.ids = std::move(*ids);
    return result;
}

Result<EmailQueryResult> SqliteStore::query_emails(std::int64_t account_id, const EmailQuery& query) {
    QuerySql sql(options_.max_filter_nodes, options_.flag_limits);
    auto where = sql.filter(query.filter);
    if (!where) return where.error();
    std::vector<EmailSort> sort = query.sort;
    if (sort.empty()) sort.push_back(EmailSort{EmailSortKey::received_at, false});
    std::string columns;
    std::string order;
    for (std::size_t i = 0; i < sort.size(); ++i) {
        columns += fmt::format(", {} AS s{}", sort_column(sort[i].key), i);
        order += fmt::format("s{} {}, ", i, sort[i].ascending ? "ASC" : "DESC");
    }
    // RFC 8620 5.5 asks for a stable order: ties go by id, in the last key's direction, so that an index on
    // (account_id, internal_date) (rowid last) yields the default order without sorting the whole result.
    order += sort.back().ascending ? "id ASC" : "id DESC";
    std::string matched = fmt::format(
        "SELECT e.id AS id, e.thread_id AS thread_id{} FROM emails e LEFT JOIN blobs b ON b.id = e.blob_id "
        "WHERE e.account_id = ?1 AND {}",
        columns, *where);
    if (query.collapse_threads) {
        matched = fmt::format(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY thread_id ORDER BY {0}) AS thread_rank "
            "FROM ({1})) WHERE thread_rank = 1",
            order, matched);
    }
    const std::size_t limit = query.limit == 0 || query.limit > options_.max_query_results
                                  ? options_.max_query_results
                                  : query.limit;
    if (sql.has_content() && !query.content_matcher) {
        return make_error(Errc::invalid_argument, "a content condition needs a content matcher");
    }
    const auto mailbox = only_in_mailbox(query);
    return read<EmailQueryResult>([&](Connection& db) -> Result<EmailQueryResult> {
        if (mailbox) {
            auto page = mailbox_first_page(db, account_id, *mailbox, query.position, limit);
            if (!page) return page.error();
            if (*page) return std::move(**page);
        }
        ContentSearch search;
        search.matcher = &query.content_matcher;
        search.read = [&](std::string_view blob_id) { return read_blob_in(db, blob_id); };
        std::optional<ContentFunction> function;
        if (sql.has_content()) function.emplace(db, &search);
        auto found = run_query(db, account_id, query, sql, matched, order, limit);
        if (!found && search.error) return *search.error;
        return found;
    });
}

Result<std::vector<EmailThread>> SqliteStore::find_threads(std::int64_t account_id,
                                                           const std::vector<std::int64_t>& thread_ids) {
    if (thread_ids.size() > options_.max_query_results) {
        return make_error(Errc::invalid_argument, fmt::format("more than {} ids", options_.max_query_results));
    }
    return read<std::vector<EmailThread>>([&](Connection& db) -> Result<std::vector<EmailThread>> {
        std::vector<EmailThread> threads;
        for (std::int64_t id : thread_ids) {
            auto statement = db.prepare(kThreadEmails);
            if (!statement) return statement.error();
            statement->bind(1, id).bind(2, account_id);
            auto emails = int_column(*statement);
            if (!emails) return emails.error();
            if (emails->empty()) continue;
            threads.push_back(EmailThread{id, std::move(*emails)});
        }
        return threads;
    });
}

Result<EmailChanges> SqliteStore::email_changes(std::int64_t account_id, std::uint64_t since_state,
                                                std::size_t max_changes) {
    return read<EmailChanges>([&](Connection& db) -> Result<EmailChanges> {
        EmailChanges changes;
        auto rows = log_since(db, account_id, since_state, max_changes, changes);
        if (!rows) return rows.error();
        std::map<std::int64_t, std::set<EmailChange>> seen;
        for (const LogRow& row : *rows) seen[row.email_id].insert(row.kind);
        for (const auto& [id, kinds] : seen) {
            const bool created = kinds.contains(EmailChange::created);
            const bool destroyed = kinds.contains(EmailChange::destroyed);
            if (created && destroyed) continue;  // never seen by the client: nothing to tell (RFC 8620 5.2)
            if (destroyed) {
                changes.destroyed.push_back(id);
            } else if (created) {
                changes.created.push_back(id);
            } else {
                changes.updated.push_back(id);
            }
        }
        return changes;
    });
}

Result<EmailChanges> SqliteStore::thread_changes(std::int64_t account_id, std::uint64_t since_state,
                                                 std::size_t max_changes) {
    return read<EmailChanges>([&](Connection& db) -> Result<EmailChanges> {
        EmailChanges changes;
        auto rows = log_since(db, account_id, since_state, max_changes, changes);
        if (!rows) return rows.error();
        // A thread is created with its first Email (whose id it bears), changes when Emails join or leave it,
        // and is gone when it has none left.
        std::map<std::int64_t, bool> touched;  // thread id -> created since
        for (const LogRow& row : *rows) {
            touched[row.thread_id] |= row.kind == EmailChange::created && row.email_id == row.thread_id;
        }
        for (const auto& [thread_id, created] : touched) {
            auto statement = db.prepare("SELECT 1 FROM emails WHERE thread_id = ?1 AND account_id = ?2 LIMIT 1");
            if (!statement) return statement.error();
            auto row = statement->bind(1, thread_id).bind(2, account_id).step();
            if (!row) return row.error();
            if (!*row) {
                if (!created) changes.destroyed.push_back(thread_id);
            } else if (created) {
                changes.created.push_back(thread_id);
            } else {
                changes.updated.push_back(thread_id);
            }
        }
        return changes;
    });
}

Result<std::vector<Result<void>>> SqliteStore::for_each_email(
    std::size_t count, const std::function<Result<void>(Connection&, std::size_t, EmailChangeContext&)>& apply) {
    std::vector<Result<void>> results;
    results.reserve(count);
    const std::size_t chunk = std::max<std::size_t>(options_.max_messages_per_transaction, 1);
    for (std::size_t begin = 0; begin < count; begin += chunk) {
        const std::size_t end = std::min(count, begin + chunk);
        std::vector<Result<void>> part;
        auto done = write<void>([&](Connection& db, Changes& changes) -> Result<void> {
            part.clear();
            EmailChangeContext context;
            for (std::size_t i = begin; i < end; ++i) {
                MAGPIE_TRY(db.exec("SAVEPOINT email_change"));
                EmailChangeContext attempt;
                attempt.log = context.log;
                auto applied = apply(db, i, attempt);
                if (applied) {
                    MAGPIE_TRY(db.exec("RELEASE email_change"));
                    context.log = std::move(attempt.log);
                    for (const auto& [mailbox, change] : attempt.changes) changes[mailbox] = change;
                } else {
                    // The refused update's writes (and any account state it took) are undone; the log keeps
                    // only states that outlive the rollback.
                    MAGPIE_TRY(db.exec("ROLLBACK TO email_change; RELEASE email_change"));
                }
                part.push_back(std::move(applied));
            }
            return {};
        });
        if (!done) return done.error();
        std::ranges::move(part, std::back_inserter(results));
    }
    return results;
}

Result<std::vector<Result<void>>> SqliteStore::update_emails(std::int64_t account_id,
                                                             const std::vector<EmailUpdate>& updates) {
    if (updates.size() > options_.max_query_results) {
        return make_error(Errc::limit_exceeded, fmt::format("more than {} updates", options_.max_query_results));
    }
    return for_each_email(updates.size(), [&](Connection& db, std::size_t index, EmailChangeContext& context) -> Result<void> {
        const EmailUpdate& update = updates[index];
        auto email = db.prepare(
            "SELECT thread_id, blob_id, size, internal_date, system_flags, keywords FROM emails "
            "WHERE id = ?1 AND account_id = ?2");
        if (!email) return email.error();
        auto found = email->bind(1, update.email_id).bind(2, account_id).step();
        if (!found) return found.error();
        if (!*found) return make_error(Errc::not_found, fmt::format("no email {}", update.email_id));
        const std::int64_t thread_id = email->column_int64(0);
        const std::string blob_id = email->column_text(1);
        const auto size = static_cast<std::uint64_t>(email->column_int64(2));
        const std::int64_t internal_date = email->column_int64(3);
        const auto before_system = static_cast<std::uint32_t>(email->column_int64(4));
        const std::string before_keywords = email->column_text(5);
        MAGPIE_TRY(email->run());

        // The new flags: replaced, then patched.
        FlagSet flags;
        flags.system = before_system;
        for (std::string_view k : split(before_keywords, ' ')) {
            if (!k.empty()) flags.keywords.emplace_back(k);
        }
        if (update.set_flags) {
            auto replaced = parse_flags(*update.set_flags, options_.flag_limits);
            if (!replaced) return replaced.error();
            flags = std::move(*replaced);
        }
        auto added = parse_flags(update.add_flags, options_.flag_limits);
        if (!added) return added.error();
        auto removed = parse_flags(update.remove_flags, options_.flag_limits);
        if (!removed) return removed.error();
        flags.system = (flags.system | added->system) & ~removed->system;
        for (const std::string& k : added->keywords) {
            if (std::ranges::none_of(flags.keywords, [&](const std::string& have) { return iequals(have, k); })) {
                flags.keywords.push_back(k);
            }
        }
        std::erase_if(flags.keywords, [&](const std::string& k) {
            return std::ranges::any_of(removed->keywords, [&](const std::string& gone) { return iequals(gone, k); });
        });
        if (flags.keywords.size() > options_.flag_limits.max_keywords) {
            return make_error(Errc::limit_exceeded, fmt::format("more than {} keywords", options_.flag_limits.max_keywords));
        }
        const std::string keywords = join_keywords(flags.keywords);
        // \Deleted is each membership's own (emails.h): an update that names it sets or clears it in every
        // mailbox; one that does not leaves each mailbox's as it is.
        const bool deleted_named = ((added->system | removed->system) & flag_deleted) != 0 ||
                                   (update.set_flags && (flags.system & flag_deleted) != 0);
        const std::uint32_t email_system = flags.system & ~kMembershipFlags;

        // The memberships now (with their own flags, for the counters), and the mailboxes wanted.
        auto memberships = [&]() -> Result<std::map<std::int64_t, Doomed>> {
            std::map<std::int64_t, Doomed> found;
            auto members = db.prepare("SELECT mailbox_id, uid, system_flags FROM messages WHERE email_id = ?1");
            if (!members) return members.error();
            members->bind(1, update.email_id);
            for (;;) {
                auto row = members->step();
                if (!row) return row.error();
                if (!*row) return found;
                found[members->column_int64(0)] =
                    Doomed{static_cast<std::uint32_t>(members->column_int64(1)), size,
                           static_cast<std::uint32_t>(members->column_int64(2)), update.email_id};
            }
        };
        auto listed = memberships();
        if (!listed) return listed.error();
        std::map<std::int64_t, Doomed> current = std::move(*listed);
        std::set<std::int64_t> wanted;
        if (update.set_mailboxes) {
            wanted.insert(update.set_mailboxes->begin(), update.set_mailboxes->end());
        } else {
            for (const auto& [mailbox, unused] : current) wanted.insert(mailbox);
        }
        wanted.insert(update.add_mailboxes.begin(), update.add_mailboxes.end());
        for (std::int64_t gone : update.remove_mailboxes) wanted.erase(gone);
        if (wanted.empty()) return make_error(Errc::invalid_argument, "an email must stay in at least one mailbox");
        for (std::int64_t mailbox_id : wanted) {
            if (current.contains(mailbox_id)) continue;
            auto mailbox = select_mailbox(db, mailbox_id);
            if (!mailbox || mailbox->account_id != account_id) {
                return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
            }
        }

        if (email_system != before_system || keywords != before_keywords || deleted_named) {
            auto reflagged = reflag_emails(db, 0, {Reflagged{update.email_id, flags.system, keywords}}, deleted_named);
            if (!reflagged) return reflagged.error();
            for (const auto& [mailbox, modseq] : *reflagged) context.changes[mailbox] = MailboxChange{account_id, modseq};
            listed = memberships();  // their flags, as the counters of a removal below must see them
            if (!listed) return listed.error();
            current = std::move(*listed);
        }
        const std::uint32_t new_membership_system = deleted_named ? flags.system : email_system;
        // Added mailboxes are a COPY there (a new UID, "appended"); removed ones an EXPUNGE.
        for (std::int64_t mailbox_id : wanted) {
            if (current.contains(mailbox_id)) continue;
            auto allocated = allocate_message(db, mailbox_id, size, new_membership_system);
            if (!allocated) return allocated.error();
            MAGPIE_TRY(insert_message(db, MessageRow{mailbox_id, update.email_id, allocated->uid, allocated->modseq,
                                                     blob_id, size, internal_date, new_membership_system, keywords}));
            MAGPIE_TRY(log_change(db, mailbox_id, allocated->modseq, allocated->uid, ChangeKind::appended));
            context.changes[mailbox_id] = MailboxChange{account_id, allocated->modseq};
        }
        for (const auto& [mailbox_id, membership] : current) {
            if (wanted.contains(mailbox_id)) continue;
            auto modseq = remove_memberships(db, mailbox_id, account_id, {membership}, context.log);
            if (!modseq) return modseq.error();
            context.changes[mailbox_id] = MailboxChange{account_id, *modseq};
        }
        return context.log.record(db, account_id, update.email_id, thread_id, EmailChange::updated);
    });
}

Result<std::vector<Result<void>>> SqliteStore::destroy_emails(std::int64_t account_id,
                                                              const std::vector<std::int64_t>& ids) {
    if (ids.size() > options_.max_query_results) {
        return make_error(Errc::limit_exceeded, fmt::format("more than {} ids", options_.max_query_results));
    }
    return for_each_email(ids.size(), [&](Connection& db, std::size_t index, EmailChangeContext& context) -> Result<void> {
        const std::int64_t email_id = ids[index];
        std::vector<std::pair<std::int64_t, Doomed>> memberships;
        {
            auto members = db.prepare(
                "SELECT m.mailbox_id, m.uid, m.size, m.system_flags FROM emails e JOIN messages m ON m.email_id = e.id "
                "WHERE e.id = ?1 AND e.account_id = ?2");
            if (!members) return members.error();
            members->bind(1, email_id).bind(2, account_id);
            for (;;) {
                auto row = members->step();
                if (!row) return row.error();
                if (!*row) break;
                memberships.emplace_back(members->column_int64(0),
                                         Doomed{static_cast<std::uint32_t>(members->column_int64(1)),
                                                static_cast<std::uint64_t>(members->column_int64(2)),
                                                static_cast<std::uint32_t>(members->column_int64(3)), email_id});
            }
        }
        if (memberships.empty()) return make_error(Errc::not_found, fmt::format("no email {}", email_id));
        // An EXPUNGE in each of its mailboxes; the last one destroys the Email.
        for (const auto& [mailbox_id, membership] : memberships) {
            auto modseq = remove_memberships(db, mailbox_id, account_id, {membership}, context.log);
            if (!modseq) return modseq.error();
            context.changes[mailbox_id] = MailboxChange{account_id, *modseq};
        }
        return {};
    });
}

}  // namespace magpie::store::sqlite
