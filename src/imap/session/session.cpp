// The session's event loop, the state table, and the commands of the any / not-authenticated states plus
// SELECT, CLOSE and the selected view's untagged updates.
#include "imap/session/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <type_traits>
#include <utility>

#include "auth/authenticator.h"
#include "base/strings.h"
#include "imap/session/spool_sink.h"
#include "imap/session/support.h"
#include "store/object_id.h"

namespace magpie::imap {
namespace {

using namespace session_support;

// Which states a command is valid in (RFC 9051 6): one bit per state.
enum StateBits : unsigned {
    in_not_authenticated = 1,
    in_authenticated = 2,
    in_selected = 4,
    in_any = 7,
    in_authenticated_or_selected = 6,
};

template <class T, class... Ts>
constexpr bool is_one_of = (std::is_same_v<T, Ts> || ...);

// The one table of valid states per command.
template <class T>
constexpr unsigned valid_states() {
    if constexpr (is_one_of<T, Capability, Noop, Logout, Id>)
        return in_any;
    else if constexpr (is_one_of<T, StartTls, Authenticate, Login>)
        return in_not_authenticated;
    else if constexpr (is_one_of<T, Check, Close, Unselect, Expunge, Search, Fetch, Store, Copy, Move>)
        return in_selected;
    else
        return in_authenticated_or_selected;
}

unsigned state_bit(Session::State state) {
    switch (state) {
        case Session::State::not_authenticated:
            return in_not_authenticated;
        case Session::State::authenticated:
            return in_authenticated;
        case Session::State::selected:
            return in_selected;
        case Session::State::logout:
            return 0;
    }
    return 0;
}

// RFC 9051 7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH by sequence number.
bool allows_expunge_updates(const CommandBody& body) {
    if (const auto* fetch = std::get_if<Fetch>(&body)) return fetch->uid;
    if (const auto* store = std::get_if<Store>(&body)) return store->uid;
    if (const auto* search = std::get_if<Search>(&body)) return search->uid;
    return true;
}

const std::vector<std::string> kSystemFlags = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"};

}  // namespace

Session::Session(SessionConfig config, std::string peer_ip, SpoolOpener open_spool)
    : config_(std::move(config)),
      peer_ip_(std::move(peer_ip)),
      open_spool_(std::move(open_spool)),
      parser_(config_.limits) {
    // Large APPEND literals of a logged-in user go to a store spool as they arrive (never whole in memory);
    // before login, or with a store that has no spool, they are held as before (bounded by the limits).
    parser_.spool_appends(config_.spool_append_octets,
                          [this](std::uint64_t, bool binary) -> std::unique_ptr<LiteralSink> {
                              if (!account_ || !open_spool_) return nullptr;
                              auto spool = open_spool_();
                              if (!spool) return nullptr;
                              return std::make_unique<SpoolSink>(std::move(*spool), binary);
                          });
    output_ = status_response("*", StatusKind::ok, "CAPABILITY " + capabilities(),
                              fmt::format("{} Magpie IMAP4rev2 server ready", config_.hostname));
}

// ---- The IO loop's side.

void Session::feed(std::string_view bytes) {
    if (state_ == State::logout || action_ == Action::close) return;
    parser_.feed(bytes);
    pump();
}

std::string Session::take_output() {
    output_mark_ = 0;
    return std::exchange(output_, {});
}

bool Session::has_work() const {
    return (!pending_.empty() || fetch_) && action_ == Action::none && !waiting();
}

std::optional<StoreRequest> Session::take_request() {
    return std::exchange(request_, std::nullopt);
}

void Session::answer(StoreAnswer answer, std::int64_t now) {
    now_ = now;
    if (!then_) return;
    auto then = std::exchange(then_, nullptr);
    then(answer);
    if (waiting()) return;  // it asked again
    if (finish_after_) {
        const bool allow_updates = *std::exchange(finish_after_, std::nullopt);
        finish_command(allow_updates);
        if (waiting()) return;
    }
    pump();
}

bool Session::wants_input() const {
    if (state_ == State::logout || action_ == Action::close) return false;
    // A literal being read must complete, so only stop reading while a command is already waiting.
    return (pending_.empty() && !fetch_) || parser_.buffered_octets() < config_.max_pending_input_octets;
}

Session::Action Session::take_action() {
    return std::exchange(action_, Action::none);
}

void Session::tls_started() {
    config_.tls_active = true;
    pump();
}

std::optional<std::int64_t> Session::account_id() const {
    if (!account_) return std::nullopt;
    return account_->id;
}

void Session::idle_timeout() {
    output_ += status_response("*", StatusKind::bye, "", "Autologout; idle for too long");
    state_ = State::logout;
    action_ = Action::close;
}

void Session::idle_keepalive() {
    if (idling()) output_ += status_response("*", StatusKind::ok, "", "Still here");
}

void Session::shutting_down() {
    output_ += status_response("*", StatusKind::bye, "", "Server shutting down");
    state_ = State::logout;
    action_ = Action::close;
}

void Session::mailbox_changed(std::int64_t now) {
    now_ = now;
    // Outside IDLE the next command's end carries the updates (refresh_view runs there anyway).
    if (idling() && state_ == State::selected && !waiting()) refresh_view([] {});
}

// Moves parser events into pending_, at most one at a time: a command may switch the parser's mode (SASL,
// IDLE, UTF-8 names, STARTTLS discarding what follows) and that must apply to the bytes after it.
void Session::pump() {
    if (state_ == State::logout || action_ != Action::none) return;
    while (pending_.empty()) {
        auto event = parser_.next();
        if (!event) return;
        if (std::holds_alternative<ContinuationRequest>(*event)) {
            output_ += ContinuationRequest::line;
            continue;
        }
        pending_.push_back(std::move(*event));
    }
}

void Session::run(std::int64_t now) {
    now_ = now;
    if (waiting()) return;
    output_mark_ = output_.size();  // a FETCH writes at most max_output_octets_per_run from here
    if (fetch_) {
        resume_fetch();
        if (fetch_ || waiting()) return;  // more next time: the IO loop writes this slice first
        pump();
    }
    while (!pending_.empty() && action_ == Action::none && state_ != State::logout) {
        Event event = std::move(pending_.front());
        pending_.pop_front();
        if (auto* command = std::get_if<Command>(&event)) {
            execute(*command);
            if (fetch_) return;  // a FETCH slice is written; run() continues it
        } else if (auto* response = std::get_if<SaslResponse>(&event)) {
            on_sasl_response(*response);
            if (waiting())
                finish_after_ = false;  // the exchange goes on in its SaslStep's answer
            else
                finish_command(false);
        } else if (std::holds_alternative<IdleDone>(event)) {
            on_idle_done();
        } else if (auto* error = std::get_if<ParseError>(&event)) {
            on_parse_error(*error);
            finish_command(false);
        }
        if (waiting()) return;  // answer() carries on
        pump();
    }
}

void Session::finish_command(bool allow_updates) {
    if (allow_updates && state_ == State::selected && !idling()) {
        refresh_view([this] { output_ += std::exchange(tagged_, {}); });
        return;
    }
    output_ += std::exchange(tagged_, {});
}

void Session::reply(const std::string& tag, StatusKind kind, std::string_view code, std::string_view text) {
    tagged_ += status_response(tag, kind, code, text);
}

void Session::reply_store_error(const std::string& tag, const Error& error) {
    switch (error.code) {
        case Errc::not_found:
            reply(tag, StatusKind::no, "NONEXISTENT", "No such mailbox");
            return;
        case Errc::already_exists:
            reply(tag, StatusKind::no, "ALREADYEXISTS", "Mailbox already exists");
            return;
        case Errc::permission_denied:
            reply(tag, StatusKind::no, "NOPERM", "Not allowed");
            return;
        case Errc::invalid_argument:
            reply(tag, StatusKind::bad, "", error.message);
            return;
        case Errc::limit_exceeded:
            reply(tag, StatusKind::no, "LIMIT", error.message);
            return;
        case Errc::unavailable:
            reply(tag, StatusKind::no, "UNAVAILABLE", "Try again later");
            return;
        default:
            reply(tag, StatusKind::no, "SERVERBUG", "Internal error");
            return;
    }
}

std::string Session::capabilities() const {
    std::string caps = "IMAP4rev1 IMAP4rev2";
    if (state_ == State::not_authenticated) {
        if (!config_.tls_active && config_.starttls_available) caps += " STARTTLS";
        if (login_allowed())
            caps += " AUTH=PLAIN AUTH=SCRAM-SHA-256";
        else
            caps += " LOGINDISABLED";
        caps += " SASL-IR";
    }
    const auto& limits = parser_.limits();
    caps += limits.max_non_sync_literal_octets >= limits.max_literal_octets ? " LITERAL+" : " LITERAL-";
    caps +=
        " ENABLE ID IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE"
        " ESEARCH SEARCHRES CONDSTORE QRESYNC BINARY STATUS=SIZE QUOTA QUOTA=RES-STORAGE OBJECTID";
    caps += fmt::format(" APPENDLIMIT={}", limits.max_literal_octets);
    return caps;
}

// ---- Dispatch.

void Session::execute(Command& command) {
    const std::string& tag = command.tag;
    const unsigned valid =
        std::visit([](const auto& c) { return valid_states<std::decay_t<decltype(c)>>(); }, command.body);
    if ((valid & state_bit(state_)) == 0) {
        // Only three ways to be in the wrong state: not logged in yet, logged in already, or no mailbox.
        const char* why = state_ == State::not_authenticated ? "Log in first"
                          : (valid & in_not_authenticated)   ? "Already logged in"
                                                             : "No mailbox selected";
        reply(tag, StatusKind::bad, "",
              fmt::format("{} not allowed now: {}", command_name(command.body), why));
        finish_command(true);
        return;
    }
    const bool allow_updates = allows_expunge_updates(command.body);
    // A mailbox name that does not decode names no mailbox (RFC 3501 5.1.3): NO, never BAD, and never a
    // store lookup (its raw octets could spell another mailbox's UTF-8 name). SELECT checks it itself
    // because a failed SELECT still closes the selected mailbox.
    if (command.undecodable_mailbox && !std::holds_alternative<Select>(command.body)) {
        const bool creates = std::holds_alternative<Create>(command.body) ||
                             std::holds_alternative<Rename>(command.body) ||
                             std::holds_alternative<Subscribe>(command.body);
        reply(tag, StatusKind::no, creates ? "CANNOT" : "NONEXISTENT", *command.undecodable_mailbox);
        finish_command(allow_updates);
        return;
    }
    std::visit(
        [&](auto& c) {
            using T = std::decay_t<decltype(c)>;
            if constexpr (std::is_same_v<T, Capability>)
                on_capability(tag);
            else if constexpr (std::is_same_v<T, Noop>)
                on_noop(tag);
            else if constexpr (std::is_same_v<T, Check>)
                on_noop(tag);
            else if constexpr (std::is_same_v<T, Logout>)
                on_logout(tag);
            else if constexpr (std::is_same_v<T, StartTls>)
                on_starttls(tag);
            else if constexpr (std::is_same_v<T, Authenticate>)
                on_authenticate(tag, c);
            else if constexpr (std::is_same_v<T, Login>)
                on_login(tag, c);
            else if constexpr (std::is_same_v<T, Enable>)
                on_enable(tag, c);
            else if constexpr (std::is_same_v<T, Id>)
                on_id(tag, c);
            else if constexpr (std::is_same_v<T, Namespace>)
                on_namespace(tag);
            else if constexpr (std::is_same_v<T, Idle>)
                on_idle(tag);
            else if constexpr (std::is_same_v<T, Select>)
                on_select(tag, c, command.undecodable_mailbox);
            else if constexpr (std::is_same_v<T, Close>)
                on_close(tag, true);
            else if constexpr (std::is_same_v<T, Unselect>)
                on_close(tag, false);
            else if constexpr (std::is_same_v<T, Create>)
                on_create(tag, c);
            else if constexpr (std::is_same_v<T, Delete>)
                on_delete(tag, c);
            else if constexpr (std::is_same_v<T, Rename>)
                on_rename(tag, c);
            else if constexpr (std::is_same_v<T, Subscribe>)
                on_subscribe(tag, c.mailbox, true);
            else if constexpr (std::is_same_v<T, Unsubscribe>)
                on_subscribe(tag, c.mailbox, false);
            else if constexpr (std::is_same_v<T, List>)
                on_list(tag, c);
            else if constexpr (std::is_same_v<T, Lsub>)
                on_lsub(tag, c);
            else if constexpr (std::is_same_v<T, Status>)
                on_status(tag, c);
            else if constexpr (std::is_same_v<T, Append>)
                on_append(tag, c);
            else if constexpr (std::is_same_v<T, Expunge>)
                on_expunge(tag, c);
            else if constexpr (std::is_same_v<T, Search>)
                on_search(tag, c);
            else if constexpr (std::is_same_v<T, Fetch>)
                on_fetch(tag, c);
            else if constexpr (std::is_same_v<T, Store>)
                on_store(tag, c);
            else if constexpr (std::is_same_v<T, Copy>)
                on_copy(tag, c.set, c.uid, c.mailbox, false);
            else if constexpr (std::is_same_v<T, Move>)
                on_copy(tag, c.set, c.uid, c.mailbox, true);
            else if constexpr (std::is_same_v<T, GetQuota>)
                on_get_quota(tag, c);
            else if constexpr (std::is_same_v<T, GetQuotaRoot>)
                on_get_quota_root(tag, c);
            else if constexpr (std::is_same_v<T, SetQuota>)
                reply(tag, StatusKind::no, "NOPERM", "Quota limits are set by the administrator");
            else
                static_assert(!sizeof(T), "a command without a handler");
        },
        command.body);
    if (fetch_) return;  // unfinished FETCH: continue_fetch() writes the rest, then the tagged reply
    if (waiting()) {
        finish_after_ = allow_updates;  // the command goes on in its continuation
        return;
    }
    finish_command(allow_updates);
}

void Session::on_parse_error(const ParseError& error) {
    if (idling()) {
        // RFC 2177 3: anything but DONE ends the IDLE with an error.
        reply(*idle_tag_, StatusKind::bad, "", "Expected DONE");
        idle_tag_.reset();
        return;
    }
    if (sasl_) {
        sasl_.reset();
        reply(sasl_tag_, StatusKind::bad, "",
              error.message.empty() ? "Invalid SASL response" : error.message);
        return;
    }
    tagged_ += error_response(error);
    if (error.close_connection) {
        tagged_ += status_response("*", StatusKind::bye, "", "Cannot continue reading this connection");
        state_ = State::logout;
        action_ = Action::close;
    }
}

// ---- Any state.

void Session::on_capability(const std::string& tag) {
    ResponseWriter w = writer();
    w.untagged().atom("CAPABILITY").atom(capabilities()).end();
    emit(w);
    reply(tag, StatusKind::ok, "", "CAPABILITY completed");
}

void Session::on_noop(const std::string& tag) {
    reply(tag, StatusKind::ok, "", "Done");
}

void Session::on_logout(const std::string& tag) {
    output_ += status_response("*", StatusKind::bye, "", "Logging out");
    reply(tag, StatusKind::ok, "", "LOGOUT completed");
    state_ = State::logout;
    action_ = Action::close;
    view_.reset();
}

void Session::on_id(const std::string& tag, const Id&) {
    ResponseWriter w = writer();
    w.untagged().atom("ID").open_list().string("name").string("Magpie").string("version").string("0.1.0");
    w.close_list().end();
    emit(w);
    reply(tag, StatusKind::ok, "", "ID completed");
}

// ---- Not authenticated.

void Session::on_starttls(const std::string& tag) {
    if (config_.tls_active) {
        reply(tag, StatusKind::bad, "", "TLS is already active");
        return;
    }
    if (!config_.starttls_available) {
        reply(tag, StatusKind::no, "", "STARTTLS is not available");
        return;
    }
    reply(tag, StatusKind::ok, "", "Begin TLS negotiation now");
    // RFC 9051 6.2.1: anything the client pipelined after STARTTLS is dropped, never run under TLS.
    parser_ = Parser(config_.limits);
    pending_.clear();
    action_ = Action::start_tls;
}

void Session::on_login(const std::string& tag, const Login& command) {
    if (!login_allowed()) {
        reply(tag, StatusKind::no, "PRIVACYREQUIRED", "LOGIN is disabled until TLS is active");
        return;
    }
    ask(request::Login{command.user, command.password, peer_ip_, now_}, [this, tag](Result<store::Account> account) {
        if (!account) {
            switch (account.error().code) {
                case Errc::auth_failed:
                case Errc::permission_denied:
                case Errc::invalid_argument:
                    reply(tag, StatusKind::no, "AUTHENTICATIONFAILED", "Invalid credentials");
                    return;
                default:
                    reply(tag, StatusKind::no, "UNAVAILABLE", "Login temporarily refused; try again later");
                    return;
            }
        }
        authenticated(*account, tag);
    });
}

void Session::on_authenticate(const std::string& tag, const Authenticate& command) {
    if (!login_allowed()) {
        reply(tag, StatusKind::no, "PRIVACYREQUIRED", "Authentication is disabled until TLS is active");
        return;
    }
    auto server = auth::SaslServer::create(command.mechanism);
    if (!server) {
        reply(tag, StatusKind::no, "", "Unsupported authentication mechanism");
        return;
    }
    sasl_ = std::make_shared<auth::SaslServer>(std::move(*server));
    sasl_tag_ = tag;
    sasl_outcome(sasl_->start_encoded(command.initial_response));
}

void Session::on_sasl_response(const SaslResponse& response) {
    if (!sasl_) return;
    sasl_outcome(sasl_->step_encoded(response.text));
}

void Session::sasl_outcome(auth::SaslOutcome outcome) {
    if (outcome.kind == auth::SaslOutcome::Kind::challenge) {
        output_ += continuation_response(auth::encode_sasl_base64(outcome.data));
        parser_.expect_sasl_response();
        return;
    }
    // A password to check, SCRAM keys to look up, or the end to count: the login pool's work.
    ask(request::SaslStep{sasl_, std::move(outcome), peer_ip_, now_},
        [this](Result<request::SaslStep::Answer> stepped) {
            if (!stepped) {
                sasl_.reset();
                reply(sasl_tag_, StatusKind::no, "UNAVAILABLE", "Authentication temporarily refused; try again later");
                return;
            }
            if (stepped->outcome.kind == auth::SaslOutcome::Kind::challenge) {
                sasl_outcome(std::move(stepped->outcome));
                return;
            }
            sasl_finished(stepped->outcome, stepped->account);
        });
}

void Session::sasl_finished(const auth::SaslOutcome& outcome, const std::optional<store::Account>& account) {
    sasl_.reset();
    if (outcome.kind == auth::SaslOutcome::Kind::success) {
        if (!account) {
            reply(sasl_tag_, StatusKind::no, "AUTHENTICATIONFAILED", "Invalid credentials");
            return;
        }
        authenticated(*account, sasl_tag_);
        return;
    }
    switch (outcome.error.code) {
        case Errc::invalid_argument:
            reply(sasl_tag_, StatusKind::bad, "", "Authentication exchange cancelled or malformed");
            return;
        case Errc::auth_failed:
        case Errc::permission_denied:
        case Errc::not_found:
            reply(sasl_tag_, StatusKind::no, "AUTHENTICATIONFAILED", "Invalid credentials");
            return;
        default:
            reply(sasl_tag_, StatusKind::no, "UNAVAILABLE",
                  "Authentication temporarily refused; try again later");
            return;
    }
}

void Session::authenticated(const store::Account& account, const std::string& tag) {
    account_ = account;
    state_ = State::authenticated;
    reply(tag, StatusKind::ok, "CAPABILITY " + capabilities(), "Logged in");
}

// ---- Authenticated.

void Session::on_enable(const std::string& tag, const Enable& command) {
    std::vector<std::string> enabled;
    for (const auto& capability : command.capabilities) {
        if (capability == "IMAP4REV2") {
            if (!rev2_) enabled.emplace_back("IMAP4rev2");
            rev2_ = true;
            utf8_ = true;
            parser_.set_utf8_mailbox_names(true);
        } else if (capability == "CONDSTORE") {
            if (!condstore_) enabled.emplace_back("CONDSTORE");
            enable_condstore();
        } else if (capability == "QRESYNC") {
            if (!qresync_) enabled.emplace_back("QRESYNC");
            qresync_ = true;
            enable_condstore();
        }
    }
    ResponseWriter w = writer();
    w.untagged().atom("ENABLED");
    for (const auto& name : enabled) w.atom(name);
    w.end();
    emit(w);
    reply(tag, StatusKind::ok, "", "ENABLE completed");
}

void Session::enable_condstore() {
    if (condstore_) return;
    condstore_ = true;
    // RFC 7162 3.1: the first CONDSTORE-enabling command while a mailbox is selected (other than SELECT,
    // which says it itself) tells the client where the mailbox stands, before its own responses.
    if (view_)
        output_ += status_response("*", StatusKind::ok,
                                   fmt::format("HIGHESTMODSEQ {}", view_->highest_modseq), "Highest");
}

void Session::on_namespace(const std::string& tag) {
    // RFC 2342: one personal namespace, the account's own mailboxes; no other users', no shared ones.
    output_ += "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n";
    reply(tag, StatusKind::ok, "", "NAMESPACE completed");
}

void Session::on_idle(const std::string& tag) {
    if (state_ == State::selected) {
        refresh_view([this, tag] { enter_idle(tag); });
        return;
    }
    enter_idle(tag);
}

void Session::enter_idle(const std::string& tag) {
    output_ += continuation_response("idling");
    parser_.expect_idle_done();
    idle_tag_ = tag;
}

void Session::on_idle_done() {
    if (!idle_tag_) return;
    reply(*idle_tag_, StatusKind::ok, "", "IDLE terminated");
    idle_tag_.reset();
    finish_command(true);
}

void Session::on_select(const std::string& tag, const Select& command,
                        const std::optional<std::string>& undecodable_name) {
    if (view_) {
        view_.reset();
        state_ = State::authenticated;
        // RFC 9051 7.1 / RFC 7162 3.2.11: updates after this belong to the new mailbox.
        if (rev2_ || qresync_)
            output_ += status_response("*", StatusKind::ok, "CLOSED", "Previous mailbox closed");
    }
    if (undecodable_name) {
        reply(tag, StatusKind::no, "NONEXISTENT", *undecodable_name);
        return;
    }
    if (command.qresync && !qresync_) {
        reply(tag, StatusKind::bad, "", "QRESYNC is not enabled");
        return;
    }
    if (command.condstore) condstore_ = true;
    request::OpenMailbox open{account_->id, canonical_mailbox(command.mailbox), command.read_only, std::nullopt};
    if (command.qresync) open.changes_since = command.qresync->mod_seq;
    ask(std::move(open), [this, tag, command](Result<request::OpenMailbox::Answer> opened) {
        if (!opened) {
            reply_store_error(tag, opened.error());
            return;
        }
        on_selected(tag, command, *opened);
    });
}

void Session::on_selected(const std::string& tag, const Select& command, request::OpenMailbox::Answer& opened) {
    View view;
    view.mailbox = opened.mailbox;
    view.read_only = command.read_only;
    view.highest_modseq = opened.mailbox.highest_modseq;
    std::uint32_t uid_next = opened.mailbox.uidnext;
    for (auto& m : opened.states) {
        uid_next = std::max(uid_next, m.uid + 1);
        view.messages.push_back(ViewMessage{m.uid, m.modseq, std::move(m.flags), false});
    }
    view.mailbox.uidnext = uid_next;
    // RFC 3501 2.3.1.2: the first session to SELECT claims the recent messages (kept in the store, so the
    // claim survives restarts); EXAMINE looks without claiming: the newest `recent` messages.
    std::size_t recent_count = 0;
    if (command.read_only) {
        recent_count = std::min<std::size_t>(opened.recent, view.messages.size());
        for (std::size_t i = view.messages.size() - recent_count; i < view.messages.size(); ++i)
            view.messages[i].recent = true;
    } else if (opened.recent_from) {
        for (auto& m : view.messages) {
            m.recent = m.uid >= *opened.recent_from;
            if (m.recent) ++recent_count;
        }
    }
    std::optional<std::size_t> first_unseen;
    for (std::size_t i = 0; i < view.messages.size() && !first_unseen; ++i)
        if (!has_flag(view.messages[i].flags, "\\Seen")) first_unseen = i + 1;
    view_ = std::move(view);
    state_ = State::selected;

    view_->announced_flags = mailbox_flags();
    ResponseWriter w = writer();
    w.untagged().atom("FLAGS").flags(view_->announced_flags).end();
    w.untagged().number(view_->messages.size()).atom("EXISTS").end();
    if (!rev2_) w.untagged().number(recent_count).atom("RECENT").end();
    if (rev2_) {
        // RFC 9051 6.3.2: a LIST response naming the mailbox as the server spells it.
        w.untagged().atom("LIST").open_list();
        if (auto use = special_use_attribute(view_->mailbox.special_use); !use.empty()) w.atom(use);
        w.close_list().string("/").mailbox(view_->mailbox.name).end();
    }
    emit(w);
    if (!rev2_ && first_unseen)
        output_ +=
            status_response("*", StatusKind::ok, fmt::format("UNSEEN {}", *first_unseen), "First unseen");
    output_ += status_response("*", StatusKind::ok, fmt::format("UIDVALIDITY {}", view_->mailbox.uidvalidity),
                               "UIDs valid");
    output_ +=
        status_response("*", StatusKind::ok, fmt::format("UIDNEXT {}", uid_next), "Predicted next UID");
    // RFC 8474 4.3: the mailbox's id, the same across RENAME.
    output_ += status_response("*", StatusKind::ok,
                               fmt::format("MAILBOXID ({})", store::mailbox_object_id(view_->mailbox.id)), "Ok");
    write_permanent_flags();
    // RFC 7162 3.1.2.1: every mailbox here has mod-sequences (the store starts a new one at 1 and moved
    // older ones to at least 1), so it is always HIGHESTMODSEQ, never NOMODSEQ (which tells clients to
    // drop their cache); the max() only keeps that promise should a backend still say 0.
    output_ += status_response(
        "*", StatusKind::ok,
        fmt::format("HIGHESTMODSEQ {}", std::max<std::uint64_t>(view_->highest_modseq, 1)), "Highest");

    // RFC 7162 3.2.5: what changed since the client's last known MODSEQ, when UIDVALIDITY still holds.
    if (command.qresync && command.qresync->uid_validity == view_->mailbox.uidvalidity) {
        const auto& params = *command.qresync;
        if (const auto& changes = opened.changes) {
            std::vector<std::uint32_t> vanished;
            const std::uint32_t largest = view_->messages.empty() ? uid_next : view_->messages.back().uid;
            for (std::uint32_t uid : changes->expunged) {
                if (index_of_uid(uid)) continue;
                if (!params.known_uids || params.known_uids->contains(uid, std::max(largest, uid)))
                    vanished.push_back(uid);
            }
            if (!vanished.empty()) {
                ResponseWriter v = writer();
                v.untagged()
                    .atom("VANISHED")
                    .atom("(EARLIER)")
                    .sequence_set(SequenceSet::from_numbers(vanished))
                    .end();
                emit(v);
            }
            for (const auto& m : changes->changed) {
                auto index = index_of_uid(m.uid);
                if (!index) continue;
                if (params.known_uids && !params.known_uids->contains(m.uid, std::max(largest, m.uid)))
                    continue;
                write_flags_update(*index, true);
            }
        }
    }
    reply(tag, StatusKind::ok, command.read_only ? "READ-ONLY" : "READ-WRITE",
          fmt::format("{} completed", command.read_only ? "EXAMINE" : "SELECT"));
}

void Session::on_close(const std::string& tag, bool expunge) {
    // RFC 9051 6.4.1: CLOSE expunges silently (no EXPUNGE responses); UNSELECT (RFC 3691) does not.
    auto closed = [this, tag, expunge] {
        view_.reset();
        state_ = State::authenticated;
        reply(tag, StatusKind::ok, "", expunge ? "CLOSE completed" : "UNSELECT completed");
    };
    if (expunge && !view_->read_only) {
        ask(request::Expunge{view_->mailbox.id, std::nullopt},
            [this, tag, closed](Result<std::vector<std::uint32_t>> result) {
                if (!result) {
                    reply_store_error(tag, result.error());
                    return;
                }
                closed();
            });
        return;
    }
    closed();
}

// ---- The selected view.

std::optional<std::size_t> Session::index_of_uid(std::uint32_t uid) const {
    const auto& messages = view_->messages;
    auto it = std::lower_bound(messages.begin(), messages.end(), uid,
                               [](const ViewMessage& m, std::uint32_t u) { return m.uid < u; });
    if (it == messages.end() || it->uid != uid) return std::nullopt;
    return static_cast<std::size_t>(it - messages.begin());
}

std::optional<std::vector<std::size_t>> Session::resolve_set(const std::string& tag, const SequenceSet& set,
                                                             bool uid) {
    std::vector<std::size_t> indexes;
    const auto& messages = view_->messages;
    if (set.is_saved()) {
        // RFC 5182 2.1: "$" names the saved UIDs still present, whether the command uses UIDs or numbers.
        for (std::uint32_t u : saved_uids_)
            if (auto index = index_of_uid(u)) indexes.push_back(*index);
        return indexes;
    }
    if (uid) {
        const std::uint32_t largest = messages.empty() ? 0 : messages.back().uid;
        const SequenceSet resolved = set.resolved(largest);
        for (const auto& range : resolved.ranges()) {
            auto it = std::lower_bound(messages.begin(), messages.end(), range.first,
                                       [](const ViewMessage& m, std::uint32_t u) { return m.uid < u; });
            for (; it != messages.end() && it->uid <= range.last; ++it)
                indexes.push_back(static_cast<std::size_t>(it - messages.begin()));
        }
        return indexes;
    }
    const auto count = static_cast<std::uint32_t>(messages.size());
    const SequenceSet resolved = set.resolved(count);
    for (const auto& range : resolved.ranges()) {
        if (range.last > count || range.first == 0) {
            reply(tag, StatusKind::bad, "", "Invalid message sequence number");
            return std::nullopt;
        }
        for (std::uint32_t n = range.first; n <= range.last; ++n) indexes.push_back(n - 1);
    }
    return indexes;
}

std::vector<std::string> Session::flags_for_client(const ViewMessage& message) const {
    std::vector<std::string> flags = message.flags;
    if (!rev2_ && message.recent) flags.emplace_back("\\Recent");
    return flags;
}

std::vector<std::string> Session::mailbox_flags() const {
    std::vector<std::string> flags = kSystemFlags;
    for (const auto& m : view_->messages)
        for (const auto& f : m.flags)
            if (!f.starts_with('\\') && !has_flag(flags, f)) flags.push_back(f);
    return flags;
}

void Session::write_permanent_flags() {
    if (view_->read_only) {
        output_ += status_response("*", StatusKind::ok, "PERMANENTFLAGS ()", "No permanent flags permitted");
        return;
    }
    ResponseWriter flags = writer();
    auto permanent = view_->announced_flags;
    permanent.emplace_back("\\*");
    flags.atom("PERMANENTFLAGS").flags(permanent);
    output_ += status_response("*", StatusKind::ok, flags.buffer(), "Flags permitted");
}

void Session::announce_keywords(const std::vector<std::string>& flags) {
    bool added = false;
    for (const auto& flag : flags) {
        if (flag.starts_with('\\') || has_flag(view_->announced_flags, flag)) continue;
        view_->announced_flags.push_back(flag);
        added = true;
    }
    if (!added) return;
    // RFC 3501 7.2.6 / RFC 9051 7.3.5: the client learns of a keyword before any FETCH that shows it.
    ResponseWriter w = writer();
    w.untagged().atom("FLAGS").flags(view_->announced_flags).end();
    emit(w);
    write_permanent_flags();
}

void Session::write_flags_update(std::size_t index, bool with_uid) {
    const auto& m = view_->messages[index];
    announce_keywords(m.flags);
    ResponseWriter w = writer();
    w.untagged().number(index + 1).atom("FETCH").open_list();
    // RFC 7162 3.1: once CONDSTORE is on, every untagged FETCH carries the UID and the MODSEQ.
    if (with_uid || condstore_on()) w.atom("UID").number(m.uid);
    w.atom("FLAGS").flags(flags_for_client(m));
    if (condstore_on()) w.atom("MODSEQ").open_list().number(m.modseq).close_list();
    w.close_list().end();
    emit(w);
}

void Session::write_expunged(const std::vector<std::uint32_t>& uids) {
    if (uids.empty()) return;  // every command's refresh: no pass over a large view for nothing
    std::vector<std::uint32_t> sorted = uids;
    std::ranges::sort(sorted);
    auto& messages = view_->messages;
    // One pass: in ascending order each EXPUNGE's number is its old position less those already gone
    // (RFC 9051 7.5.1: every EXPUNGE renumbers the messages after it).
    std::vector<std::uint32_t> gone;
    ResponseWriter w = writer();
    std::size_t kept = 0;
    auto next = sorted.begin();
    for (std::size_t i = 0; i < messages.size(); ++i) {
        while (next != sorted.end() && *next < messages[i].uid) ++next;
        if (next != sorted.end() && *next == messages[i].uid) {
            // RFC 7162 3.2.10: with QRESYNC enabled, VANISHED replaces EXPUNGE.
            if (!qresync_) w.untagged().number(kept + 1).atom("EXPUNGE").end();
            gone.push_back(messages[i].uid);
            continue;
        }
        if (kept != i) messages[kept] = std::move(messages[i]);
        ++kept;
    }
    messages.resize(kept);
    if (qresync_ && !gone.empty())
        w.untagged().atom("VANISHED").sequence_set(SequenceSet::from_numbers(gone)).end();
    emit(w);
    std::erase_if(saved_uids_, [&](std::uint32_t u) { return std::ranges::binary_search(gone, u); });
}

void Session::refresh_view(std::function<void()> then) {
    if (!view_) {
        then();
        return;
    }
    const std::uint32_t largest = view_->messages.empty() ? 0 : view_->messages.back().uid;
    ask(request::Refresh{view_->mailbox.id, view_->highest_modseq, largest, !view_->read_only},
        [this, then = std::move(then)](Result<request::Refresh::Answer> refreshed) {
            apply_changes(refreshed);
            then();
        });
}

void Session::apply_changes(const Result<request::Refresh::Answer>& refreshed) {
    if (!view_) return;
    if (!refreshed) {
        if (refreshed.error().code != Errc::not_found) return;  // try again at the next command
        // Another session deleted the selected mailbox: nothing this view says holds any more, and
        // RFC 9051 has no untagged way to say so short of ending the connection.
        output_ += status_response("*", StatusKind::bye, "", "The selected mailbox was deleted");
        view_.reset();
        state_ = State::logout;
        action_ = Action::close;
        return;
    }
    const store::MailboxChanges* changes = &refreshed->changes;
    write_expunged(changes->expunged);
    const std::size_t before = view_->messages.size();
    std::vector<std::size_t> updated;
    std::uint32_t uid_next = view_->mailbox.uidnext;
    for (const auto& m : changes->changed) {
        if (auto index = index_of_uid(m.uid)) {
            auto& known = view_->messages[*index];
            if (m.modseq <= known.modseq) continue;  // our own STORE, already reported
            known.modseq = m.modseq;
            if (known.flags == m.flags && !condstore_on()) continue;
            known.flags = m.flags;
            updated.push_back(*index);
        } else if (view_->messages.empty() || m.uid > view_->messages.back().uid) {
            announce_keywords(m.flags);
            view_->messages.push_back(ViewMessage{m.uid, m.modseq, m.flags, false});
            uid_next = std::max(uid_next, m.uid + 1);
        }
    }
    if (view_->messages.size() > before) {
        std::size_t recent_count = 0;
        if (!view_->read_only) {
            // New mail is recent to the session that claims it first (RFC 3501 2.3.1.2).
            if (const auto& recent_from = refreshed->recent_from) {
                for (std::size_t i = before; i < view_->messages.size(); ++i)
                    view_->messages[i].recent = view_->messages[i].uid >= *recent_from;
            }
        }
        for (const auto& m : view_->messages) recent_count += m.recent ? 1 : 0;
        ResponseWriter w = writer();
        w.untagged().number(view_->messages.size()).atom("EXISTS").end();
        if (!rev2_) w.untagged().number(recent_count).atom("RECENT").end();
        emit(w);
    }
    view_->mailbox.uidnext = uid_next;
    for (std::size_t index : updated) write_flags_update(index, false);
    view_->highest_modseq = std::max(view_->highest_modseq, changes->highest_modseq);
}

}  // namespace magpie::imap
