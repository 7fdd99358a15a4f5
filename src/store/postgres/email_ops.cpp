// The Email view of the PostgreSQL backend (the twin of store/sqlite/email_ops.cpp; JMAP's Email and Thread,
// RFC 8621): reads by id, queries with filters and sorts, threads, changes since an account state, and
// Email/set's updates and destroys, which are IMAP's COPY / EXPUNGE / STORE on the Email's memberships under
// the same invariants. Reads run in one REPEATABLE READ snapshot; writes hold the account's row lock first
// (emails.h), so the account state and every MODSEQ are allocated in commit order across nodes.
#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <variant>

#include <fmt/format.h>

#include "base/strings.h"
#include "store/postgres/emails.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/rows.h"

namespace magpie::store::postgres {
namespace {

Result<std::uint64_t> state_of_account(Connection& db, std::int64_t account_id) {
    auto rows = db.exec("SELECT email_state FROM accounts WHERE id = $1", Params().add(account_id));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
    return static_cast<std::uint64_t>(rows->int64(0, 0));
}

// ---- Email/query: the filter tree and the sort as SQL over `emails e LEFT JOIN blobs b`, values bound from
// $2 on ($1 is the account). Header fields are bytea: matched with magpie_lower() (ASCII, as SQLite's lower()).
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
            case EmailFilter::Operator::all_of: return parts.empty() ? std::string("TRUE") : join(parts, " AND ");
            case EmailFilter::Operator::any_of: return parts.empty() ? std::string("FALSE") : join(parts, " OR ");
            case EmailFilter::Operator::none_of:
                return parts.empty() ? std::string("TRUE") : "NOT " + join(parts, " OR ");
            case EmailFilter::Operator::condition: break;
        }
        return std::string("TRUE");
    }

    // The collected values, after the account.
    void bind(Params& params) const {
        for (const auto& v : values_) {
            if (const auto* number = std::get_if<std::int64_t>(&v)) {
                params.add(*number);
            } else if (const auto* text = std::get_if<Text>(&v)) {
                params.add(std::string_view(text->value));
            } else {
                params.add_bytes(std::get<Bytes>(v).value);
            }
        }
    }
    int next_parameter() const { return static_cast<int>(values_.size()) + 2; }

private:
    struct Text {
        std::string value;
    };
    struct Bytes {
        std::string value;
    };

    static std::string join(const std::vector<std::string>& parts, const char* glue) {
        std::string out = "(";
        for (std::size_t i = 0; i < parts.size(); ++i) {
            if (i > 0) out += glue;
            out += parts[i];
        }
        return out + ")";
    }

    std::string number(std::int64_t value) {
        values_.emplace_back(value);
        return fmt::format("${}::bigint", values_.size() + 1);
    }
    std::string text(std::string value) {
        values_.emplace_back(Text{std::move(value)});
        return fmt::format("${}::text", values_.size() + 1);
    }
    std::string bytes(std::string value) {
        values_.emplace_back(Bytes{std::move(value)});
        return fmt::format("${}::bytea", values_.size() + 1);
    }

    // A flag as a test on the columns of the Email `alias`; nullopt for one that no Email can carry.
    std::optional<std::string> has_flag(const std::string& flag, const char* alias = "e") {
        auto parsed = parse_flags({flag}, flag_limits_);
        if (!parsed) return std::nullopt;
        if (parsed->system != 0) return fmt::format("({}.system_flags & {}) <> 0", alias, parsed->system);
        if (parsed->keywords.empty()) return std::nullopt;
        // Keywords are stored space-joined; atoms hold no space, so " k " finds exactly one (ASCII case-insensitive).
        return fmt::format("position({} in ' ' || lower({}.keywords) || ' ') > 0",
                           text(fmt::format(" {} ", to_lower(parsed->keywords.front()))), alias);
    }

    // RFC 8621 4.4.1 allInThreadHaveKeyword / someInThreadHaveKeyword / noneInThreadHaveKeyword, over the
    // Emails of the same thread (the thread index).
    std::string thread_keyword(const std::string& flag, bool all, bool negate) {
        auto test = has_flag(flag, "t");
        const std::string others =
            "SELECT 1 FROM emails t WHERE t.thread_id = e.thread_id AND t.account_id = e.account_id";
        if (all) return test ? fmt::format("NOT EXISTS({} AND NOT {})", others, *test) : std::string("FALSE");
        if (!test) return negate ? "TRUE" : "FALSE";
        return fmt::format("{}EXISTS({} AND {})", negate ? "NOT " : "", others, *test);
    }

    std::string contains(const char* column, const std::string& needle) {
        return fmt::format("position({} in magpie_lower({})) > 0", bytes(to_lower(needle)), column);
    }

    Result<std::string> condition(const EmailCondition& c) {
        std::vector<std::string> terms;
        if (c.in_mailbox) {
            terms.push_back(
                fmt::format("e.id IN (SELECT email_id FROM messages WHERE mailbox_id = {})", number(*c.in_mailbox)));
        }
        if (!c.in_mailbox_other_than.empty()) {
            values_.emplace_back(Text{int_array(c.in_mailbox_other_than)});
            terms.push_back(fmt::format("EXISTS(SELECT 1 FROM messages mo WHERE mo.email_id = e.id AND mo.mailbox_id "
                                        "<> ALL(${}::bigint[]))",
                                        values_.size() + 1));
        }
        if (c.has_keyword) terms.push_back(has_flag(*c.has_keyword).value_or("FALSE"));
        if (c.not_keyword) {
            auto test = has_flag(*c.not_keyword);
            terms.push_back(test ? "NOT " + *test : "TRUE");
        }
        if (c.before) terms.push_back("e.internal_date < " + number(*c.before));
        if (c.after) terms.push_back("e.internal_date >= " + number(*c.after));
        if (c.min_size) terms.push_back("e.size >= " + number(static_cast<std::int64_t>(*c.min_size)));
        if (c.max_size) terms.push_back("e.size < " + number(static_cast<std::int64_t>(*c.max_size)));
        if (!c.from.empty()) terms.push_back(contains("b.from_header", c.from));
        if (!c.to.empty()) terms.push_back(contains("b.to_header", c.to));
        if (!c.cc.empty()) terms.push_back(contains("b.cc_header", c.cc));
        if (!c.subject.empty()) terms.push_back(contains("b.subject", c.subject));
        if (!c.text.empty()) {
            const std::string needle = bytes(to_lower(c.text));
            terms.push_back(fmt::format(
                "(position({0} in magpie_lower(b.subject)) > 0 OR position({0} in magpie_lower(b.from_header)) > 0 OR "
                "position({0} in magpie_lower(b.to_header)) > 0 OR position({0} in magpie_lower(b.cc_header)) > 0)",
                needle));
        }
        if (c.all_in_thread_have_keyword) terms.push_back(thread_keyword(*c.all_in_thread_have_keyword, true, false));
        if (c.some_in_thread_have_keyword) terms.push_back(thread_keyword(*c.some_in_thread_have_keyword, false, false));
        if (c.none_in_thread_have_keyword) terms.push_back(thread_keyword(*c.none_in_thread_have_keyword, false, true));
        if (c.content.empty()) {
            std::string all = terms.empty() ? std::string("TRUE") : join(terms, " AND ");
            conditions_.push_back(Condition{all, -1});
            return all;
        }
        // The content conditions become a marker that content_sql() replaces: unknown (NULL) while the
        // candidates are found, then "e.id IN (the Emails whose bytes matched)".
        ContentNode node;
        node.cheap = terms.empty() ? std::string("TRUE") : join(terms, " AND ");
        node.conditions = c.content;
        values_.emplace_back(Text{"{}"});
        node.parameter = static_cast<int>(values_.size()) + 1;
        content_.push_back(std::move(node));
        conditions_.push_back(Condition{content_.back().cheap, static_cast<int>(content_.size()) - 1});
        return fmt::format("({} AND {}{}{})", content_.back().cheap, kMarker, content_.size() - 1, kMarker);
    }

public:
    // One condition with `content`: its other terms (`cheap`, SQL) and the ids bound for the matches.
    struct ContentNode {
        std::string cheap;
        std::vector<std::string> conditions;
        int parameter = 0;  // $n of the bigint[] of Emails whose bytes hold every condition
    };
    static constexpr const char* kMarker = "@@content";
    std::vector<ContentNode>& content_nodes() { return content_; }
    // Every condition of the filter in depth-first order: its terms but the content ones, and its content
    // node (-1 for none).
    struct Condition {
        std::string cheap;
        int content = -1;
    };
    const std::vector<Condition>& conditions() const { return conditions_; }

    // `where` with every content marker replaced: NULL (unknown) when `unknown`, else the bound ids.
    std::string content_sql(const std::string& where, bool unknown) const {
        std::string out = where;
        for (std::size_t j = 0; j < content_.size(); ++j) {
            const std::string marker = fmt::format("{}{}{}", kMarker, j, kMarker);
            // The parameter is named in both forms, so that its type is known.
            const std::string replacement =
                unknown ? fmt::format("(NULL::boolean AND ${}::bigint[] IS NOT NULL)", content_[j].parameter)
                        : fmt::format("e.id = ANY(${}::bigint[])", content_[j].parameter);
            const auto at = out.find(marker);
            if (at != std::string::npos) out.replace(at, marker.size(), replacement);
        }
        return out;
    }

    // Sets the ids bound for content node `j`.
    void set_content_ids(std::size_t j, const std::vector<std::int64_t>& ids) {
        values_[static_cast<std::size_t>(content_[j].parameter - 2)] = Text{int_array(ids)};
    }

private:
    std::vector<ContentNode> content_;
    std::vector<Condition> conditions_;
    std::size_t max_nodes_;
    FlagLimits flag_limits_;
    std::size_t nodes_ = 0;
    std::vector<std::variant<std::int64_t, Text, Bytes>> values_;
};

const char* sort_column(EmailSortKey key) {
    switch (key) {
        case EmailSortKey::received_at: return "e.internal_date";
        case EmailSortKey::sent_at: return "e.sent_at";
        case EmailSortKey::size: return "e.size";
        case EmailSortKey::from: return "magpie_lower(coalesce(b.from_header, ''::bytea))";
        case EmailSortKey::subject: return "e.base_subject";
    }
    return "e.internal_date";
}

std::vector<std::int64_t> int_column(const Rows& rows) {
    std::vector<std::int64_t> out;
    out.reserve(static_cast<std::size_t>(rows.size()));
    for (int i = 0; i < rows.size(); ++i) out.push_back(rows.int64(i, 0));
    return out;
}

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
    auto rows = db.exec(
        "SELECT state, email_id, thread_id, kind FROM email_log WHERE account_id = $1 AND state > $2 ORDER BY state",
        Params().add(account_id).add(static_cast<std::int64_t>(since)));
    if (!rows) return rows.error();
    std::vector<LogRow> out;
    std::uint64_t group_state = 0;
    for (int i = 0; i < rows->size(); ++i) {
        const auto state = static_cast<std::uint64_t>(rows->int64(i, 0));
        if (state != group_state) {
            // A new state begins: stop if the page is full (states are never split).
            if (out.size() >= max && !out.empty()) {
                changes.new_state = group_state;
                changes.has_more_changes = true;
                break;
            }
            group_state = state;
        }
        out.push_back(LogRow{rows->int64(i, 1), rows->int64(i, 2), static_cast<EmailChange>(rows->int64(i, 3))});
    }
    return out;
}

// Advances `next` past the conditions of `node` (an operand left unevaluated).
void skip(const EmailFilter& node, std::size_t& next) {
    if (node.op == EmailFilter::Operator::condition) {
        ++next;
        return;
    }
    for (const EmailFilter& operand : node.operands) skip(operand, next);
}

// Content conditions (EmailCondition::content) in the same snapshot as the query: the filter with every
// content condition unknown (SQL's NULL) finds the candidates, those whose outcome hangs on an unknown
// (three-valued logic: AND/OR/NOT keep a known outcome known). Each candidate's filter is then evaluated
// here, every condition's other terms from SQL, its content through the matcher over the blob's bytes, with
// AND and OR stopping at their first deciding operand and a condition at its first failing term, so that
// only the reads that decide are made (at most one per blob and condition, the matcher's budget counting
// them). The Emails whose content held are bound in place of the unknowns: an unevaluated condition (SQL
// sees it false) did not decide its candidate's outcome, and a decided Email's outcome does not hang on it.
Result<void> match_content(Connection& db, std::int64_t account_id, QuerySql& sql, const std::string& filter,
                           const EmailFilter& tree, const ContentMatcher& matcher,
                           std::map<std::pair<std::string, std::string>, bool>& answers,
                           const std::function<Result<std::string>(Connection&, std::string_view)>& read_blob) {
    auto& nodes = sql.content_nodes();
    const auto& conditions = sql.conditions();
    const std::string unknown = sql.content_sql(filter, /*unknown=*/true);
    std::string columns;
    for (const auto& condition : conditions) columns += fmt::format(", coalesce({}, FALSE)", condition.cheap);
    Params params;
    params.add(account_id);
    for (std::size_t j = 0; j < nodes.size(); ++j) sql.set_content_ids(j, {});
    sql.bind(params);
    auto rows = db.exec(fmt::format("SELECT e.id, e.blob_id{} FROM emails e LEFT JOIN blobs b ON b.id = e.blob_id "
                                    "WHERE e.account_id = $1 AND ({}) IS NULL ORDER BY e.blob_id",
                                    columns, unknown),
                        params);
    if (!rows) return rows.error();
    std::vector<std::vector<std::int64_t>> matched(nodes.size());
    std::string bytes_of;  // the blob whose bytes are in `bytes` (rows come by blob: each is read once)
    std::string bytes;
    for (int i = 0; i < rows->size(); ++i) {
        const std::string blob_id = rows->text(i, 1);
        auto holds = [&](const std::string& condition) -> Result<bool> {
            auto key = std::make_pair(blob_id, condition);
            if (auto known = answers.find(key); known != answers.end()) return known->second;
            if (bytes_of != blob_id) {
                auto read = read_blob(db, blob_id);
                if (!read) return read.error();
                bytes = std::move(*read);
                bytes_of = blob_id;
            }
            auto answer = matcher(bytes, condition);
            if (!answer) return answer.error();
            answers.emplace(std::move(key), *answer);
            return *answer;
        };
        std::size_t next = 0;  // the next condition, depth-first, as QuerySql numbered them
        std::function<Result<bool>(const EmailFilter&)> evaluate = [&](const EmailFilter& node) -> Result<bool> {
            if (node.op == EmailFilter::Operator::condition) {
                const std::size_t index = next++;
                if (!rows->boolean(i, static_cast<int>(index) + 2)) return false;
                const int content = conditions[index].content;
                if (content < 0) return true;
                for (const std::string& condition : nodes[static_cast<std::size_t>(content)].conditions) {
                    auto held = holds(condition);
                    if (!held) return held.error();
                    if (!*held) return false;
                }
                matched[static_cast<std::size_t>(content)].push_back(rows->int64(i, 0));
                return true;
            }
            // Operands after the deciding one are skipped, but still numbered.
            std::optional<bool> decided;
            bool any = false;
            for (const EmailFilter& operand : node.operands) {
                if (decided) {
                    skip(operand, next);
                    continue;
                }
                auto value = evaluate(operand);
                if (!value) return value.error();
                any = any || *value;
                if (node.op == EmailFilter::Operator::all_of && !*value) decided = false;
                if (node.op != EmailFilter::Operator::all_of && *value) decided = true;
            }
            switch (node.op) {
                case EmailFilter::Operator::all_of: return decided.value_or(true);
                case EmailFilter::Operator::any_of: return any;
                case EmailFilter::Operator::none_of: return !any;
                case EmailFilter::Operator::condition: break;
            }
            return false;
        };
        auto outcome = evaluate(tree);
        if (!outcome) return outcome.error();
    }
    for (std::size_t j = 0; j < nodes.size(); ++j) sql.set_content_ids(j, matched[j]);
    return {};
}

}  // namespace

struct PostgresStore::EmailChangeContext {
    std::int64_t account_id = 0;
    EmailLog log;
    Changes changes;
};

Result<std::uint64_t> PostgresStore::account_state(std::int64_t account_id) {
    return read<std::uint64_t>([&](Connection& db) { return state_of_account(db, account_id); });
}

Result<std::vector<Email>> PostgresStore::find_emails(std::int64_t account_id, const std::vector<std::int64_t>& ids) {
    if (ids.size() > options_.max_query_results) {
        return make_error(Errc::invalid_argument, fmt::format("more than {} ids", options_.max_query_results));
    }
    return read<std::vector<Email>>([&](Connection& db) -> Result<std::vector<Email>> {
        std::vector<Email> emails;
        auto rows = db.exec(
            "SELECT e.id, e.account_id, e.thread_id, e.blob_id, e.size, e.internal_date, e.sent_at, "
            "e.system_flags, e.keywords, e.state, b.subject, b.from_header, b.to_header, b.cc_header, "
            "b.date_header, b.message_id, b.in_reply_to, b.refs, b.structure FROM unnest($2::bigint[]) "
            "WITH ORDINALITY j(id, n) JOIN emails e ON e.id = j.id LEFT JOIN blobs b ON b.id = e.blob_id "
            "WHERE e.account_id = $1 ORDER BY j.n",
            Params().add(account_id).add(int_array(ids)));
        if (!rows) return rows.error();
        std::map<std::int64_t, std::vector<EmailMembership>> memberships;
        for (int i = 0; i < rows->size(); ++i) {
            Email email;
            email.id = rows->int64(i, 0);
            email.account_id = rows->int64(i, 1);
            email.thread_id = rows->int64(i, 2);
            email.blob_id = rows->text(i, 3);
            email.size = static_cast<std::uint64_t>(rows->int64(i, 4));
            email.received_at = rows->int64(i, 5);
            email.sent_at = rows->int64(i, 6);
            email.flags = flag_list(static_cast<std::uint32_t>(rows->int64(i, 7)), rows->text(i, 8));
            email.state = static_cast<std::uint64_t>(rows->int64(i, 9));
            if (!rows->null(i, 10)) {
                email.summary.subject = rows->bytes(i, 10);
                email.summary.from = rows->bytes(i, 11);
                email.summary.to = rows->bytes(i, 12);
                email.summary.cc = rows->bytes(i, 13);
                email.summary.date = rows->bytes(i, 14);
                email.summary.message_id = rows->bytes(i, 15);
                email.summary.in_reply_to = rows->bytes(i, 16);
                email.summary.references = rows->bytes(i, 17);
                email.summary.structure = rows->bytes(i, 18);
            }
            memberships.emplace(email.id, std::vector<EmailMembership>{});
            emails.push_back(std::move(email));
        }
        if (emails.empty()) return emails;
        std::vector<std::int64_t> found;
        for (const auto& [id, unused] : memberships) found.push_back(id);
        auto members = db.exec(
            "SELECT email_id, mailbox_id, uid, modseq FROM messages WHERE email_id = ANY($1::bigint[]) "
            "ORDER BY email_id, mailbox_id",
            Params().add(int_array(found)));
        if (!members) return members.error();
        for (int i = 0; i < members->size(); ++i) {
            memberships[members->int64(i, 0)].push_back(
                EmailMembership{members->int64(i, 1), static_cast<std::uint32_t>(members->int64(i, 2)),
                                static_cast<std::uint64_t>(members->int64(i, 3))});
        }
        for (Email& email : emails) email.mailboxes = memberships[email.id];
        return emails;
    });
}

Result<EmailQueryResult> PostgresStore::query_emails(std::int64_t account_id, const EmailQuery& query) {
    QuerySql sql(options_.max_filter_nodes, options_.flag_limits);
    auto filter = sql.filter(query.filter);
    if (!filter) return filter.error();
    auto& content = sql.content_nodes();
    if (!content.empty() && !query.content_matcher) {
        return make_error(Errc::invalid_argument, "a content condition needs a content matcher");
    }
    // Answers per blob and condition, kept across a retried read: the matcher is called once for each.
    std::map<std::pair<std::string, std::string>, bool> answers;
    const std::string where = sql.content_sql(*filter, /*unknown=*/false);
    std::vector<EmailSort> sort = query.sort;
    if (sort.empty()) sort.push_back(EmailSort{EmailSortKey::received_at, false});
    std::string columns;
    std::string order;
    for (std::size_t i = 0; i < sort.size(); ++i) {
        columns += fmt::format(", {} AS s{}", sort_column(sort[i].key), i);
        order += fmt::format("s{} {}, ", i, sort[i].ascending ? "ASC" : "DESC");
    }
    // RFC 8620 5.5 asks for a stable order: ties go by id, in the last key's direction.
    order += sort.back().ascending ? "id ASC" : "id DESC";
    std::string matched = fmt::format(
        "SELECT e.id AS id, e.thread_id AS thread_id{} FROM emails e LEFT JOIN blobs b ON b.id = e.blob_id "
        "WHERE e.account_id = $1 AND {}",
        columns, where);
    if (query.collapse_threads) {
        matched = fmt::format(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY thread_id ORDER BY {0}) AS thread_rank "
            "FROM ({1}) q0) q1 WHERE thread_rank = 1",
            order, matched);
    }
    const std::size_t limit = query.limit == 0 || query.limit > options_.max_query_results
                                  ? options_.max_query_results
                                  : query.limit;
    auto params = [&] {
        Params p;
        p.add(account_id);
        sql.bind(p);
        return p;
    };
    return read<EmailQueryResult>([&](Connection& db) -> Result<EmailQueryResult> {
        EmailQueryResult result;
        auto state = state_of_account(db, account_id);
        if (!state) return state.error();
        result.state = *state;
        if (!content.empty()) {
            MAGPIE_TRY(match_content(db, account_id, sql, *filter, query.filter, query.content_matcher, answers,
                                     [this](Connection& c, std::string_view blob_id) { return read_blob_in(c, blob_id); }));
        }
        auto count = db.exec(fmt::format("SELECT count(*) FROM ({}) q", matched), params());
        if (!count) return count.error();
        result.total = static_cast<std::uint64_t>(count->int64(0, 0));
        std::int64_t start = 0;
        const auto total = static_cast<std::int64_t>(result.total);
        if (query.anchor) {
            Params p = params();
            p.add(*query.anchor);
            auto anchor = db.exec(fmt::format("SELECT n FROM (SELECT id, row_number() OVER (ORDER BY {}) - 1 AS n "
                                              "FROM ({}) q) r WHERE id = ${}",
                                              order, matched, sql.next_parameter()),
                                  p);
            if (!anchor) return anchor.error();
            if (anchor->empty()) {
                return make_error(Errc::not_found, fmt::format("anchor {} is not in the results", *query.anchor));
            }
            start = std::max<std::int64_t>(0, anchor->int64(0, 0) + query.anchor_offset);
        } else if (query.position < 0) {
            start = std::max<std::int64_t>(0, total + query.position);
        } else {
            start = query.position;
        }
        result.position = static_cast<std::uint64_t>(std::min(start, total));
        if (start >= total) return result;
        Params p = params();
        p.add(static_cast<std::int64_t>(limit)).add(start);
        auto page = db.exec(fmt::format("SELECT id FROM ({}) q ORDER BY {} LIMIT ${} OFFSET ${}", matched, order,
                                        sql.next_parameter(), sql.next_parameter() + 1),
                            p);
        if (!page) return page.error();
        result.ids = int_column(*page);
        return result;
    });
}

Result<std::vector<EmailThread>> PostgresStore::find_threads(std::int64_t account_id,
                                                             const std::vector<std::int64_t>& thread_ids) {
    if (thread_ids.size() > options_.max_query_results) {
        return make_error(Errc::invalid_argument, fmt::format("more than {} ids", options_.max_query_results));
    }
    return read<std::vector<EmailThread>>([&](Connection& db) -> Result<std::vector<EmailThread>> {
        // One round trip for every thread asked: their Emails in received order, grouped by thread.
        auto rows = db.exec(
            "SELECT e.thread_id, e.id FROM emails e WHERE e.thread_id = ANY($2::bigint[]) AND e.account_id = $1 "
            "ORDER BY e.thread_id, e.internal_date, e.id",
            Params().add(account_id).add(int_array(thread_ids)));
        if (!rows) return rows.error();
        std::map<std::int64_t, std::vector<std::int64_t>> by_thread;
        for (int i = 0; i < rows->size(); ++i) by_thread[rows->int64(i, 0)].push_back(rows->int64(i, 1));
        std::vector<EmailThread> threads;
        for (std::int64_t id : thread_ids) {
            auto found = by_thread.find(id);
            if (found == by_thread.end()) continue;
            threads.push_back(EmailThread{id, found->second});
        }
        return threads;
    });
}

Result<EmailChanges> PostgresStore::email_changes(std::int64_t account_id, std::uint64_t since_state,
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

Result<EmailChanges> PostgresStore::thread_changes(std::int64_t account_id, std::uint64_t since_state,
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
        if (touched.empty()) return changes;
        std::vector<std::int64_t> ids;
        for (const auto& [thread_id, unused] : touched) ids.push_back(thread_id);
        auto live = db.exec("SELECT DISTINCT thread_id FROM emails WHERE account_id = $1 AND thread_id = ANY($2::bigint[])",
                            Params().add(account_id).add(int_array(ids)));
        if (!live) return live.error();
        std::set<std::int64_t> present;
        for (int i = 0; i < live->size(); ++i) present.insert(live->int64(i, 0));
        for (const auto& [thread_id, created] : touched) {
            if (!present.contains(thread_id)) {
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

Result<std::vector<Result<void>>> PostgresStore::for_each_email(
    std::int64_t account_id, std::size_t count,
    const std::function<Result<void>(Connection&, std::size_t, EmailChangeContext&)>& apply) {
    std::vector<Result<void>> results;
    results.reserve(count);
    const std::size_t chunk = std::max<std::size_t>(options_.max_messages_per_transaction, 1);
    for (std::size_t begin = 0; begin < count; begin += chunk) {
        const std::size_t end = std::min(count, begin + chunk);
        std::vector<Result<void>> part;
        auto done = write<void>([&](Connection& db, Changes& changes) -> Result<void> {
            part.clear();  // a transaction PostgreSQL reran (deadlock) starts over
            // The account first: every mailbox this chunk touches is the account's, locked after it.
            MAGPIE_TRY(lock_account(db, account_id));
            EmailChangeContext context;
            for (std::size_t i = begin; i < end; ++i) {
                MAGPIE_TRY(db.run("SAVEPOINT email_change"));
                EmailChangeContext attempt;
                attempt.log = context.log;
                auto applied = apply(db, i, attempt);
                if (applied) {
                    MAGPIE_TRY(db.run("RELEASE email_change"));
                    context.log = std::move(attempt.log);
                    for (const auto& [mailbox, change] : attempt.changes) changes[mailbox] = change;
                } else {
                    // A deadlock or a lost connection is the transaction's failure, not this update's.
                    if (is_retryable(applied.error()) || db.broken()) return applied.error();
                    // The refused update's writes (and any account state it took) are undone.
                    MAGPIE_TRY(db.run("ROLLBACK TO email_change; RELEASE email_change"));
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

Result<std::vector<Result<void>>> PostgresStore::update_emails(std::int64_t account_id,
                                                               const std::vector<EmailUpdate>& updates) {
    if (updates.size() > options_.max_query_results) {
        return make_error(Errc::limit_exceeded, fmt::format("more than {} updates", options_.max_query_results));
    }
    return for_each_email(account_id, updates.size(),
                          [&](Connection& db, std::size_t index, EmailChangeContext& context) -> Result<void> {
        const EmailUpdate& update = updates[index];
        auto email = db.exec(
            "SELECT thread_id, blob_id, size, internal_date, system_flags, keywords FROM emails "
            "WHERE id = $1 AND account_id = $2",
            Params().add(update.email_id).add(account_id));
        if (!email) return email.error();
        if (email->empty()) return make_error(Errc::not_found, fmt::format("no email {}", update.email_id));
        const std::int64_t thread_id = email->int64(0, 0);
        const std::string blob_id = email->text(0, 1);
        const auto size = static_cast<std::uint64_t>(email->int64(0, 2));
        const std::int64_t internal_date = email->int64(0, 3);
        const auto before_system = static_cast<std::uint32_t>(email->int64(0, 4));
        const std::string before_keywords = email->text(0, 5);

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
            auto members = db.exec("SELECT mailbox_id, uid, system_flags FROM messages WHERE email_id = $1",
                                   Params().add(update.email_id));
            if (!members) return members.error();
            std::map<std::int64_t, Doomed> found;
            for (int i = 0; i < members->size(); ++i) {
                found[members->int64(i, 0)] = Doomed{static_cast<std::uint32_t>(members->int64(i, 1)), size,
                                                     static_cast<std::uint32_t>(members->int64(i, 2)), update.email_id};
            }
            return found;
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
            const std::uint32_t uid = allocated->uid;
            MAGPIE_TRY(log_changes(db, mailbox_id, allocated->modseq, std::span<const std::uint32_t>(&uid, 1),
                                   ChangeKind::appended));
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

Result<std::vector<Result<void>>> PostgresStore::destroy_emails(std::int64_t account_id,
                                                                const std::vector<std::int64_t>& ids) {
    if (ids.size() > options_.max_query_results) {
        return make_error(Errc::limit_exceeded, fmt::format("more than {} ids", options_.max_query_results));
    }
    return for_each_email(account_id, ids.size(),
                          [&](Connection& db, std::size_t index, EmailChangeContext& context) -> Result<void> {
        const std::int64_t email_id = ids[index];
        auto members = db.exec(
            "SELECT m.mailbox_id, m.uid, m.size, m.system_flags FROM emails e JOIN messages m ON m.email_id = e.id "
            "WHERE e.id = $1 AND e.account_id = $2 ORDER BY m.mailbox_id",
            Params().add(email_id).add(account_id));
        if (!members) return members.error();
        if (members->empty()) return make_error(Errc::not_found, fmt::format("no email {}", email_id));
        // An EXPUNGE in each of its mailboxes; the last one destroys the Email.
        for (int i = 0; i < members->size(); ++i) {
            const std::int64_t mailbox_id = members->int64(i, 0);
            Doomed membership{static_cast<std::uint32_t>(members->int64(i, 1)),
                              static_cast<std::uint64_t>(members->int64(i, 2)),
                              static_cast<std::uint32_t>(members->int64(i, 3)), email_id};
            auto modseq = remove_memberships(db, mailbox_id, account_id, {membership}, context.log);
            if (!modseq) return modseq.error();
            context.changes[mailbox_id] = MailboxChange{account_id, *modseq};
        }
        return {};
    });
}

}  // namespace magpie::store::postgres
