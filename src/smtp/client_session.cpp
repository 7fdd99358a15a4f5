#include "smtp/client_session.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <utility>

#include "base/strings.h"
#include "mail/base64.h"
#include "mail/dot_stuffing.h"
#include "mail/downgrade.h"
#include "mail/transfer_choice.h"
#include "smtp/path.h"

namespace magpie::smtp {

// A result's text ends up in a delivery report's Diagnostic-Code and in `magpie queue show`: one
// readable line, not a 200 KB reply.
constexpr std::size_t kMaxResultText = 1000;
constexpr std::string_view kTruncated = "(transcript truncated)\n";

namespace {

std::string clip(std::string text) {
    if (text.size() <= kMaxResultText) return text;
    std::size_t cut = kMaxResultText;
    // Never split a UTF-8 sequence.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
    text.resize(cut);
    return text + "...";
}

void from_reply(RecipientResult& result, const Reply& reply) {
    result.code = reply.code;
    result.enhanced = reply.enhanced;
    result.text = clip(reply.text());
    if (reply.positive()) {
        result.outcome = Outcome::delivered;
    } else if (reply.permanent()) {
        result.outcome = Outcome::failed;
    } else {
        result.outcome = Outcome::deferred;  // 4xx, or a 3xx where a final answer belonged
    }
}

// An envelope address goes into a command line: parse it as the server would, so that nothing in it can
// end the line or smuggle a parameter.
bool valid_path(std::string_view address, bool allow_null) {
    if (address.empty()) return allow_null;
    std::string path = "<" + std::string(address) + ">";
    auto parsed =
        parse_path(path, PathOptions{.allow_null = allow_null, .allow_postmaster = true, .limits = {}});
    return parsed && parsed->consumed == path.size();
}

// RFC 3461 4: ENVID and ORCPT values are xtext, NOTIFY a keyword list: printable ASCII without '=' or
// space. Anything else is dropped rather than written into a command line.
bool valid_param_value(std::string_view value) {
    if (value.empty()) return false;
    return std::all_of(value.begin(), value.end(), [](char c) { return c > ' ' && c < 0x7f && c != '='; });
}

// The header section: up to the first empty line (the whole message when there is none).
std::string_view header_section(std::string_view data) {
    std::size_t end = std::min(data.find("\n\r\n"), data.find("\n\n"));
    return end == std::string_view::npos ? data : data.substr(0, end + 1);
}

// BDAT sends the bytes as they are (RFC 3030 2), so they must already be CRLF lines: bare CR and LF become
// CRLF and a last line gets its CRLF, as the DotStuffer does for DATA.
std::string crlf_lines(std::string_view data) {
    std::string out;
    out.reserve(data.size() + data.size() / 32 + 2);
    for (std::size_t i = 0; i < data.size(); ++i) {
        char c = data[i];
        if (c == '\r') {
            out.append("\r\n");
            if (i + 1 < data.size() && data[i + 1] == '\n') ++i;
        } else if (c == '\n') {
            out.append("\r\n");
        } else {
            out.push_back(c);
        }
    }
    if (!out.empty() && !out.ends_with("\r\n")) out.append("\r\n");
    return out;
}

}  // namespace

PeerExtensions parse_ehlo(const Reply& reply) {
    PeerExtensions ext;
    ext.esmtp = true;
    for (std::size_t i = 1; i < reply.lines.size(); ++i) {
        std::vector<std::string_view> words;
        for (auto word : split(trim(reply.lines[i]), ' ')) {
            if (!word.empty()) words.push_back(word);
        }
        if (words.empty()) continue;
        std::string keyword = to_upper(words[0]);
        if (keyword == "PIPELINING") {
            ext.pipelining = true;
        } else if (keyword == "SIZE") {
            ext.size = true;
            // RFC 1870 4: no number, or 0, means no fixed limit.
            if (words.size() > 1) ext.max_size = parse_uint(words[1]).value_or(0);
        } else if (keyword == "8BITMIME") {
            ext.eightbitmime = true;
        } else if (keyword == "SMTPUTF8") {
            ext.smtputf8 = true;
        } else if (keyword == "CHUNKING") {
            ext.chunking = true;
        } else if (keyword == "DSN") {
            ext.dsn = true;
        } else if (keyword == "STARTTLS") {
            ext.starttls = true;
        } else if (keyword == "ENHANCEDSTATUSCODES") {
            ext.enhanced_status_codes = true;
        } else if (keyword == "AUTH" || keyword.starts_with("AUTH=")) {
            // "AUTH=LOGIN PLAIN" is the pre-standard form some servers still send beside "AUTH LOGIN PLAIN".
            if (keyword.size() > 5)
                words.push_back(std::string_view(reply.lines[i]).substr(5, keyword.size() - 5));
            for (std::size_t w = 1; w < words.size(); ++w) {
                std::string mechanism = to_upper(words[w]);
                if (std::find(ext.auth.begin(), ext.auth.end(), mechanism) == ext.auth.end() &&
                    ext.auth.size() < 32)
                    ext.auth.push_back(std::move(mechanism));
            }
        }
    }
    return ext;
}

ClientSession::ClientSession(ClientConfig config)
    : config_(std::move(config)), reader_(config_.limits.reply), tls_active_(config_.tls_active) {}

void ClientSession::feed(std::string_view bytes) {
    while (!bytes.empty() && state_ != State::closed) {
        if (state_ == State::tls) {
            // RFC 3207 5 / CVE-2011-1431 in reverse: bytes sent in plaintext after the 220 to STARTTLS would
            // be read as the first TLS-protected replies. Never trust them.
            fail_connection(fmt::format("{} sent data after its STARTTLS reply", config_.peer_name), nullptr,
                            false, "4.7.0");
            return;
        }
        std::size_t used = reader_.consume(bytes);
        bytes.remove_prefix(used);
        if (!reader_.ready()) break;
        Result<Reply> reply = reader_.take();
        if (!reply) {
            fail_connection(fmt::format("{} sent a bad reply: {}", config_.peer_name, reply.error().message),
                            nullptr, false, "4.5.0");
            return;
        }
        handle(std::move(*reply));
    }
}

std::string ClientSession::take_output() {
    std::string out;
    std::size_t budget = std::max<std::size_t>(config_.limits.max_output_chunk, 1);
    while (!output_.empty()) {
        Output& piece = output_.front();
        if (!piece.message) {
            out += piece.bytes;
            output_.pop_front();
            continue;
        }
        if (budget == 0) break;
        std::string_view data = piece.message->message.data;
        std::size_t take = std::min(budget, piece.end - piece.offset);
        std::string_view slice = data.substr(piece.offset, take);
        if (piece.dot_stuffed) {
            piece.stuffer.feed(slice, out);
        } else {
            out.append(slice);
        }
        piece.offset += take;
        budget -= take;
        if (piece.offset < piece.end) break;
        if (piece.dot_stuffed) piece.stuffer.finish(out);
        output_.pop_front();
    }
    return out;
}

bool ClientSession::has_output() const {
    return !output_.empty();
}

std::optional<ClientEvent> ClientSession::poll_event() {
    if (events_.empty()) return std::nullopt;
    ClientEvent event = std::move(events_.front());
    events_.pop_front();
    return event;
}

void ClientSession::enqueue(OutgoingMessage message) {
    auto state = std::make_shared<MessageState>();
    state->message = std::move(message);
    state->results.resize(state->message.recipients.size());
    auto batch = std::make_unique<Batch>();
    batch->message = state;
    for (std::size_t i = 0; i < state->message.recipients.size(); ++i) batch->recipients.push_back(i);
    queue_.push_back(std::move(batch));
    if (state_ == State::closed || state_ == State::quit) {
        defer_everything(fmt::format("the connection to {} is closed", config_.peer_name), nullptr, "4.4.2");
        return;
    }
    if (state_ == State::ready) advance();
}

void ClientSession::quit() {
    quit_requested_ = true;
    if (state_ == State::ready && active_.empty() && queue_.empty()) send_quit();
}

void ClientSession::tls_started() {
    if (state_ != State::tls) return;
    tls_active_ = true;
    // RFC 3207 4.2: everything learnt before the handshake is forgotten; ask again.
    extensions_ = PeerExtensions{};
    command("EHLO " + config_.helo_name);
    state_ = State::ehlo;
}

void ClientSession::connection_failed(std::string_view reason) {
    if (state_ == State::closed) return;
    if (state_ == State::quit) {  // the peer closed after (or instead of) its 221: nothing is lost
        state_ = State::closed;
        return;
    }
    expected_.clear();
    output_.clear();
    defer_everything(fmt::format("connection to {} failed: {}", config_.peer_name, reason), nullptr, "4.4.2");
    state_ = State::closed;
}

ClientSession::Awaiting ClientSession::awaiting() const {
    switch (state_) {
        case State::closed:
            return Awaiting::nothing;
        case State::tls:
            return Awaiting::tls_handshake;
        case State::ready:
            break;
        default:
            return Awaiting::reply;
    }
    if (expected_.empty()) return Awaiting::nothing;
    // The wait covers every reply outstanding (pipelined ones come in order): an end of data among them
    // (the next transaction's envelope may follow it) gives the longer timeout.
    const bool end_of_data = std::ranges::any_of(expected_, [](const Expect& e) {
        return e.step == Step::data_end || (e.step == Step::bdat && e.last);
    });
    return end_of_data ? Awaiting::data_end : Awaiting::reply;
}

// ---- replies -------------------------------------------------------------------------------------------

void ClientSession::handle(Reply reply) {
    // A reply belongs to the transaction of the command it answers (pipelined ones come in order).
    Batch* about = nullptr;
    if (state_ == State::ready) {
        about = !expected_.empty() ? expected_.front().batch
                : active_.empty()  ? nullptr
                                   : active_.front().get();
    }
    for (std::size_t i = 0; i < reply.lines.size(); ++i) {
        const char separator = i + 1 == reply.lines.size() ? ' ' : '-';
        note(about, "S: ", fmt::format("{}{}{}", reply.code, separator, reply.lines[i]));
    }
    switch (state_) {
        case State::greeting:
            on_greeting(reply);
            return;
        case State::ehlo:
            on_ehlo(reply);
            return;
        case State::helo:
            on_helo(reply);
            return;
        case State::starttls:
            on_starttls(reply);
            return;
        case State::auth:
            on_auth(reply);
            return;
        case State::quit:
            on_quit(reply);
            return;
        case State::tls:
        case State::closed:
            return;
        case State::ready:
            break;
    }
    // RFC 5321 3.8: 421 may answer any command; the server closes the channel after it.
    if (reply.code == 421 || expected_.empty()) {
        std::string what = expected_.empty() ? "an unexpected reply" : "a 421 reply";
        fail_connection(fmt::format("{} sent {}", config_.peer_name, what), &reply, false, "4.4.2");
        return;
    }
    Expect expect = expected_.front();
    expected_.pop_front();
    Batch& batch = *expect.batch;
    --batch.outstanding;
    switch (expect.step) {
        case Step::rset:
            on_rset(reply);
            break;
        case Step::mail:
            on_mail(batch, reply);
            break;
        case Step::rcpt:
            on_rcpt(batch, reply, expect.index);
            break;
        case Step::data:
            on_data(batch, reply);
            break;
        case Step::data_end:
            on_data_end(batch, reply);
            break;
        case Step::bdat:
            on_bdat(batch, reply, expect.last);
            break;
        case Step::dot_only:
            break;  // the empty message sent to end a DATA nobody should have accepted (RFC 2920 3.1)
    }
    // (fail_connection may have ended every transaction: `batch` is not used after this point.)
    if (state_ == State::ready) advance();
}

void ClientSession::on_greeting(const Reply& reply) {
    if (reply.code == 220) {
        command("EHLO " + config_.helo_name);
        state_ = State::ehlo;
        return;
    }
    // RFC 5321 3.1: a 554 greeting still expects QUIT; 421 means the server is closing already.
    fail_connection(fmt::format("{} refused the connection", config_.peer_name), &reply, reply.code != 421,
                    "4.4.2");
}

void ClientSession::on_ehlo(const Reply& reply) {
    if (reply.positive()) {
        extensions_ = parse_ehlo(reply);
        after_hello();
    } else if (reply.permanent() && !tls_active_) {
        // RFC 5321 3.2: a server that does not know EHLO gets HELO. (Under TLS, EHLO worked before.)
        command("HELO " + config_.helo_name);
        state_ = State::helo;
    } else {
        fail_connection(fmt::format("{} refused EHLO", config_.peer_name), &reply, reply.code != 421,
                        "4.4.2");
    }
}

void ClientSession::on_helo(const Reply& reply) {
    if (!reply.positive()) {
        fail_connection(fmt::format("{} refused HELO", config_.peer_name), &reply, reply.code != 421,
                        "4.4.2");
        return;
    }
    extensions_ = PeerExtensions{};
    after_hello();
}

void ClientSession::on_starttls(const Reply& reply) {
    if (reply.code == 220) {
        state_ = State::tls;
        events_.push_back(TlsHandshake{});
        return;
    }
    if (config_.tls == TlsMode::required || reply.code == 421) {
        fail_connection(fmt::format("{} refused STARTTLS and TLS is required", config_.peer_name), &reply,
                        reply.code != 421, "4.7.4");
        return;
    }
    // Opportunistic TLS: the session goes on in plaintext, as before the command (RFC 3207 4).
    starttls_refused_ = true;
    after_hello();
}

void ClientSession::on_auth(const Reply& reply) {
    if (reply.code == 235) {  // RFC 4954 6
        authenticated_ = true;
        after_hello();
        return;
    }
    if (reply.code == 334 && auth_login_ && auth_step_ < 2) {
        // AUTH LOGIN: the first challenge asks for the user name, the second for the password.
        const ClientCredentials& credentials = *config_.auth;
        const std::string& secret = auth_step_ == 0 ? credentials.username : credentials.password;
        command(mail::base64_encode(secret, 0), "<secret>");
        ++auth_step_;
        return;
    }
    if (reply.code == 334) {
        command("*");  // RFC 4954 4: cancels the exchange; its 501 then ends the session below
        return;
    }
    fail_connection(fmt::format("{} refused the login", config_.peer_name), &reply, reply.code != 421,
                    "4.7.8");
}

void ClientSession::on_rset(const Reply& reply) {
    if (reply.positive()) return;
    // A connection where RSET fails is no place for another message (Postfix drops it too).
    fail_connection(fmt::format("{} refused RSET", config_.peer_name), &reply, expected_.empty(), "4.4.2");
}

void ClientSession::on_mail(Batch& batch, const Reply& reply) {
    batch.message->answered = true;
    if (!reply.positive()) batch.mail_refusal = reply;
}

void ClientSession::on_rcpt(Batch& batch, const Reply& reply, std::size_t index) {
    ++batch.rcpts_answered;
    batch.rcpt_replies[index] = reply;
    if (reply.positive()) {
        ++batch.accepted;
    } else if (reply.code == 452) {
        // RFC 5321 4.5.3.1.10: "too many recipients": the rest goes in another transaction.
        batch.too_many.push_back(index);
    }
}

void ClientSession::on_data(Batch& batch, const Reply& reply) {
    if (reply.code == 354) {
        // The DATA reply came before the next transaction could start, so `batch` is the newest: the
        // commands below and its transcript lines are its own.
        batch.end_sent = true;
        if (batch.accepted == 0 || batch.mail_refusal) {
            // RFC 2920 3.1: DATA was pipelined, nobody is to receive the message; end it empty.
            command(".");
            expect(batch, Step::dot_only);
            return;
        }
        MessageState& message = *batch.message;
        note(&batch, "C: ", fmt::format("<message, {} octets>", message.message.data.size()));
        output_.push_back(Output{.bytes = {},
                                 .message = batch.message,
                                 .offset = 0,
                                 .end = message.message.data.size(),
                                 .dot_stuffed = true,
                                 .stuffer = {}});
        expect(batch, Step::data_end);
        return;
    }
    if (reply.positive() || reply.intermediate()) {
        fail_connection(fmt::format("{} answered DATA with {}", config_.peer_name, reply.code), &reply, false,
                        "4.5.0");
        return;
    }
    batch.final_reply = reply;
}

void ClientSession::on_data_end(Batch& batch, const Reply& reply) {
    batch.final_reply = reply;
}

void ClientSession::on_bdat(Batch& batch, const Reply& reply, bool last) {
    if (batch.final_reply) return;  // RFC 3030 3: after a failed chunk the rest is refused too
    if (!reply.positive() || last) batch.final_reply = reply;
}

void ClientSession::on_quit(const Reply&) {
    state_ = State::closed;
    events_.push_back(Disconnect{});
}

// ---- connection set-up ---------------------------------------------------------------------------------

void ClientSession::after_hello() {
    if (!tls_active_ && !starttls_refused_ && config_.tls != TlsMode::disabled && extensions_.starttls) {
        command("STARTTLS");
        state_ = State::starttls;
        return;
    }
    if (!tls_active_ && config_.tls == TlsMode::required) {
        fail_connection(fmt::format("{} does not offer STARTTLS and TLS is required", config_.peer_name),
                        nullptr, true, "4.7.4");
        return;
    }
    if (config_.auth && !authenticated_) {
        start_auth();
        return;
    }
    state_ = State::ready;
    advance();
}

void ClientSession::start_auth() {
    if (!tls_active_) {
        // RFC 4954 4: never send a password in the clear.
        fail_connection(fmt::format("not logging in to {} without TLS", config_.peer_name), nullptr, true,
                        "4.7.11");
        return;
    }
    const auto& offered = extensions_.auth;
    const ClientCredentials& credentials = *config_.auth;
    state_ = State::auth;
    auth_step_ = 0;
    if (std::find(offered.begin(), offered.end(), "PLAIN") != offered.end()) {
        // RFC 4616 2: authzid NUL authcid NUL passwd, sent as the initial response (RFC 4954 4).
        std::string message;
        message.push_back('\0');
        message += credentials.username;
        message.push_back('\0');
        message += credentials.password;
        auth_login_ = false;
        command("AUTH PLAIN " + mail::base64_encode(message, 0), "AUTH PLAIN <secret>");
    } else if (std::find(offered.begin(), offered.end(), "LOGIN") != offered.end()) {
        auth_login_ = true;
        command("AUTH LOGIN");
    } else {
        fail_connection(fmt::format("{} offers neither AUTH PLAIN nor AUTH LOGIN", config_.peer_name),
                        nullptr, true, "4.7.4");
    }
}

// ---- transactions --------------------------------------------------------------------------------------

// Starts the next queued transaction when the connection may take one: none is running, or (PIPELINING,
// RFC 2920 3.1) the newest has sent the end of its content, so that the next envelope cannot be read as
// message text. With nothing running or queued: Idle, or QUIT when asked for. True when one started.
bool ClientSession::start_next() {
    if (state_ != State::ready) return false;
    if (!active_.empty() && !(pipelining() && active_.back()->end_sent)) return false;
    while (!queue_.empty()) {
        idle_reported_ = false;
        std::unique_ptr<Batch> batch = std::move(queue_.front());
        queue_.pop_front();
        MessageState& message = *batch->message;
        if (!message.prepared) {
            prepare(message);
            // Recipients refused here have their result; the rest go in transactions of at most
            // max_recipients_per_transaction.
            std::vector<std::size_t> pending;
            for (std::size_t index : batch->recipients)
                if (!message.results[index]) pending.push_back(index);
            const std::size_t limit = std::max<std::size_t>(config_.limits.max_recipients_per_transaction, 1);
            std::vector<std::unique_ptr<Batch>> more;
            for (std::size_t start = limit; start < pending.size(); start += limit) {
                auto extra = std::make_unique<Batch>();
                extra->message = batch->message;
                extra->recipients.assign(
                    pending.begin() + static_cast<std::ptrdiff_t>(start),
                    pending.begin() + static_cast<std::ptrdiff_t>(std::min(start + limit, pending.size())));
                more.push_back(std::move(extra));
            }
            if (pending.size() > limit) pending.resize(limit);
            batch->recipients = std::move(pending);
            message.open_batches += more.size();
            queue_.insert(queue_.begin(), std::make_move_iterator(more.begin()),
                          std::make_move_iterator(more.end()));
        }
        if (batch->recipients.empty()) {
            close_batch(message);
            continue;
        }
        batch->need_rset = transactions_ > 0;
        batch->bdat = chunking();
        batch->rcpt_replies.resize(batch->recipients.size());
        ++transactions_;
        active_.push_back(std::move(batch));
        return true;
    }
    if (active_.empty()) {
        if (quit_requested_) {
            send_quit();
        } else if (!idle_reported_) {
            idle_reported_ = true;
            events_.push_back(Idle{});
        }
    }
    return false;
}

// Decides, once per message and peer, how it goes: which MAIL parameters, whether it must be downgraded to
// 7 bit, and which recipients cannot be served by this peer at all (their results are set here).
void ClientSession::prepare(MessageState& state) {
    state.prepared = true;
    OutgoingMessage& message = state.message;
    auto fail = [&](std::size_t index, std::string_view enhanced, std::string text) {
        RecipientResult result;
        result.address = message.recipients[index].address;
        result.outcome = Outcome::failed;
        result.enhanced = std::string(enhanced);
        result.text = std::move(text);
        state.results[index] = std::move(result);
    };

    if (!valid_path(message.reverse_path, true)) {
        fail_remaining(state, "5.1.7", "the sender address cannot be written in an SMTP command");
        return;
    }
    for (std::size_t i = 0; i < message.recipients.size(); ++i) {
        if (!valid_path(message.recipients[i].address, false))
            fail(i, "5.1.3", "the recipient address cannot be written in an SMTP command");
    }

    // RFC 6531 3.2: an address or header field in UTF-8 needs a peer that offers SMTPUTF8. Nothing turns
    // such a message into one a non-SMTPUTF8 server may take (RFC 6530 downgrading is not standard).
    const bool utf8_sender = !is_ascii(message.reverse_path);
    const bool utf8_header = !is_ascii(header_section(message.data));
    bool utf8_used = utf8_sender || utf8_header;
    if ((utf8_sender || utf8_header) && !extensions_.smtputf8) {
        fail_remaining(state, "5.6.7",
                       fmt::format("the message needs SMTPUTF8 ({}) and {} does not offer it",
                                   utf8_sender ? "the sender address is UTF-8" : "header fields are UTF-8",
                                   config_.peer_name));
        return;
    }
    for (std::size_t i = 0; i < message.recipients.size(); ++i) {
        if (state.results[i] || is_ascii(message.recipients[i].address)) continue;
        utf8_used = true;
        if (!extensions_.smtputf8)
            fail(i, "5.6.7",
                 fmt::format("the recipient address is UTF-8 and {} does not offer SMTPUTF8",
                             config_.peer_name));
    }
    state.smtputf8_param = extensions_.smtputf8 && (message.smtputf8 || utf8_used);

    prepare_body(state);
}

// Every recipient still without a result fails for a reason of ours (no reply code).
void ClientSession::fail_remaining(MessageState& state, std::string_view enhanced, const std::string& text) {
    for (std::size_t i = 0; i < state.message.recipients.size(); ++i) {
        if (state.results[i]) continue;
        state.results[i] = RecipientResult{
            state.message.recipients[i].address, Outcome::failed, 0, std::string(enhanced), text, false};
    }
}

// The bytes as they go to this peer, and whether they are declared 8-bit.
void ClientSession::prepare_body(MessageState& state) {
    OutgoingMessage& message = state.message;
    // RFC 6152 3: 8-bit bodies only to a peer with 8BITMIME, else re-encoded; lines over 998 octets and
    // NULs never fit SMTP (RFC 5321 4.5.3.1.6), so they are re-encoded for every peer.
    const mail::BodyStats stats = mail::measure_body(message.data);
    const bool must_downgrade = stats.nul > 0 || stats.longest_line > mail::kMaxBodyLineOctets ||
                                (stats.eight_bit > 0 && !extensions_.eightbitmime);
    if (must_downgrade) {
        Result<std::string> downgraded = mail::downgrade_to_7bit(message.data);
        if (!downgraded) {
            fail_remaining(state, "5.6.3",
                           fmt::format("the message cannot be converted to 7 bit for {}: {}",
                                       config_.peer_name, downgraded.error().message));
            return;
        }
        message.data = std::move(*downgraded);
    }
    state.body_8bit = !must_downgrade && stats.eight_bit > 0;
    if (chunking() && (stats.bare_cr_or_lf > 0 || must_downgrade ||
                       (!message.data.empty() && !message.data.ends_with("\r\n"))))
        message.data = crlf_lines(message.data);

    // RFC 1870 6.1: a message larger than the peer's declared limit is not sent.
    if (extensions_.size && extensions_.max_size > 0 && message.data.size() > extensions_.max_size) {
        fail_remaining(state, "5.3.4",
                       fmt::format("the message ({} octets) exceeds the size limit of {} ({} octets)",
                                   message.data.size(), config_.peer_name, extensions_.max_size));
    }
}

// Sends what may go now: the newest transaction's whole envelope (and DATA) at once when pipelining, else
// one command per reply. The oldest transaction is finished once its replies are all in (the newest one
// also once it has nothing left to send), and the next one starts when start_next() allows.
void ClientSession::advance() {
    while (state_ == State::ready) {
        if (!active_.empty()) {
            Batch& newest = *active_.back();
            while (state_ == State::ready && (pipelining() || expected_.empty()) && send_one(newest)) {
            }
            if (state_ != State::ready) return;
        }
        if (!active_.empty() && active_.front()->outstanding == 0) {
            finish_transaction();
            continue;
        }
        if (!start_next()) return;
    }
}

bool ClientSession::send_one(Batch& batch) {
    const MessageState& state = *batch.message;
    const OutgoingMessage& message = state.message;
    if (batch.need_rset && !batch.rset_sent) {
        command("RSET");
        expect(batch, Step::rset);
        batch.rset_sent = true;
        return true;
    }
    if (!batch.mail_sent) {
        std::string line = fmt::format("MAIL FROM:<{}>", message.reverse_path);
        if (extensions_.size) line += fmt::format(" SIZE={}", message.data.size());
        if (state.body_8bit) line += " BODY=8BITMIME";
        if (state.smtputf8_param) line += " SMTPUTF8";
        if (extensions_.dsn) {
            if (message.dsn_ret == "FULL" || message.dsn_ret == "HDRS") line += " RET=" + message.dsn_ret;
            if (valid_param_value(message.dsn_envid)) line += " ENVID=" + message.dsn_envid;
        }
        command(line);
        expect(batch, Step::mail);
        batch.mail_sent = true;
        return true;
    }
    if (batch.mail_refusal) return false;
    if (batch.rcpts_sent < batch.recipients.size()) {
        std::size_t position = batch.rcpts_sent++;
        const OutgoingRecipient& recipient = message.recipients[batch.recipients[position]];
        std::string line = fmt::format("RCPT TO:<{}>", recipient.address);
        if (extensions_.dsn) {
            if (valid_param_value(recipient.notify)) line += " NOTIFY=" + recipient.notify;
            if (valid_param_value(recipient.orcpt)) line += " ORCPT=" + recipient.orcpt;
        }
        command(line);
        expect(batch, Step::rcpt, position);
        return true;
    }
    if (!batch.bdat) {
        if (batch.data_sent || (!pipelining() && batch.accepted == 0)) return false;
        command("DATA");
        expect(batch, Step::data);
        batch.data_sent = true;
        return true;
    }
    // BDAT carries the message itself, so it waits until the recipients are known to be wanted.
    if (batch.rcpts_answered < batch.recipients.size() || batch.accepted == 0 || batch.final_reply ||
        batch.last_chunk_sent)
        return false;
    send_bdat_chunk(batch);
    return true;
}

void ClientSession::send_bdat_chunk(Batch& batch) {
    const std::size_t total = batch.message->message.data.size();
    const std::size_t remaining = total - batch.chunk_offset;
    const std::size_t size = std::min(remaining, std::max<std::size_t>(config_.limits.bdat_chunk_size, 1));
    const bool last = size == remaining;
    command(fmt::format("BDAT {}{}", size, last ? " LAST" : ""));
    expect(batch, Step::bdat, 0, last);
    if (size > 0) {
        output_.push_back(Output{.bytes = {},
                                 .message = batch.message,
                                 .offset = batch.chunk_offset,
                                 .end = batch.chunk_offset + size,
                                 .dot_stuffed = false,
                                 .stuffer = {}});
    }
    batch.chunk_offset += size;
    batch.last_chunk_sent = last;
    batch.end_sent = last;
}

// Gives every recipient of the current transaction its result. With `failure` the connection failed:
// recipients without a final reply are deferred with its reason.
void ClientSession::finish_transaction(const Failure* failure) {
    std::unique_ptr<Batch> batch = std::move(active_.front());
    active_.pop_front();
    MessageState& state = *batch->message;
    auto retry = std::make_unique<Batch>();
    retry->message = batch->message;
    for (std::size_t position = 0; position < batch->recipients.size(); ++position) {
        const std::size_t index = batch->recipients[position];
        const std::optional<Reply>& rcpt = batch->rcpt_replies[position];
        RecipientResult result;
        result.address = state.message.recipients[index].address;
        result.dsn_passed_on = extensions_.dsn;
        const Reply* deciding = nullptr;
        if (batch->mail_refusal) {
            deciding = &*batch->mail_refusal;
        } else if (rcpt && !rcpt->positive()) {
            bool too_many =
                std::find(batch->too_many.begin(), batch->too_many.end(), position) != batch->too_many.end();
            if (too_many && batch->accepted > 0 && !failure) {
                retry->recipients.push_back(index);
                continue;
            }
            deciding = &*rcpt;
        } else if (rcpt && batch->final_reply) {
            deciding = &*batch->final_reply;
        }
        if (deciding) {
            from_reply(result, *deciding);
        } else {
            const std::string no_reply = fmt::format("no reply from {}", config_.peer_name);
            result =
                deferral(std::move(result.address), failure ? *failure : Failure{no_reply, nullptr, "4.4.2"});
        }
        state.results[index] = std::move(result);
    }
    if (!retry->recipients.empty()) {
        retry->message->open_batches++;
        retry->message->prepared = true;
        queue_.push_front(std::move(retry));
    }
    close_batch(state);
}

void ClientSession::close_batch(MessageState& state) {
    if (--state.open_batches > 0) return;
    MessageResult result;
    result.id = state.message.id;
    for (std::size_t i = 0; i < state.results.size(); ++i) {
        if (state.results[i]) {
            result.recipients.push_back(std::move(*state.results[i]));
        } else {  // cannot happen: every path above sets a result; a deferral is the safe answer
            result.recipients.push_back(RecipientResult{state.message.recipients[i].address,
                                                        Outcome::deferred, 0, "4.3.0",
                                                        "internal error: no result", false});
        }
    }
    result.transcript = setup_transcript_ + state.transcript;
    result.answered = state.answered;
    events_.push_back(std::move(result));
}

// The connection cannot carry mail: every message not yet answered is deferred (a 5xx about the
// connection, such as a 554 greeting, says nothing final about a recipient). `send_quit` when the
// stream is still in step, so that QUIT ends it politely.
void ClientSession::fail_connection(const std::string& reason, const Reply* reply, bool send_quit_now,
                                    std::string_view enhanced) {
    if (state_ == State::closed) return;
    if (state_ == State::quit) {
        state_ = State::closed;
        events_.push_back(Disconnect{});
        return;
    }
    const bool in_step = send_quit_now && expected_.empty() && state_ != State::tls;
    expected_.clear();
    defer_everything(reply ? fmt::format("{}: {}", reason, reply->summary()) : reason, reply, enhanced);
    if (in_step) {
        send_quit();
    } else {
        output_.clear();
        state_ = State::closed;
        events_.push_back(Disconnect{});
    }
}

void ClientSession::defer_everything(const std::string& reason, const Reply* reply,
                                     std::string_view enhanced) {
    const Failure failure{reason, reply, enhanced};
    while (!active_.empty()) finish_transaction(&failure);
    std::deque<std::unique_ptr<Batch>> queued = std::exchange(queue_, {});
    for (auto& batch : queued) {
        MessageState& state = *batch->message;
        for (std::size_t index : batch->recipients) {
            if (!state.results[index])
                state.results[index] = deferral(state.message.recipients[index].address, failure);
        }
        close_batch(state);
    }
}

RecipientResult ClientSession::deferral(std::string address, const Failure& failure) const {
    RecipientResult result;
    result.address = std::move(address);
    result.outcome = Outcome::deferred;
    result.code = failure.reply ? failure.reply->code : 0;
    // A deferral carries a 4.x.x code (RFC 3463 3.1), whatever the class of the peer's reply.
    result.enhanced = failure.reply && !failure.reply->enhanced.empty()
                          ? "4" + failure.reply->enhanced.substr(1)
                          : std::string(failure.enhanced);
    result.text = clip(failure.reason);
    result.dsn_passed_on = extensions_.dsn;
    return result;
}

void ClientSession::send_quit() {
    command("QUIT");
    state_ = State::quit;
}

// ---- output and transcript -----------------------------------------------------------------------------

void ClientSession::command(std::string_view line, std::string_view shown) {
    // Transaction commands are the newest transaction's; the rest (EHLO, AUTH, QUIT) the connection's.
    note(active_.empty() ? nullptr : active_.back().get(), "C: ", shown.empty() ? line : shown);
    if (output_.empty() || output_.back().message) output_.emplace_back();
    output_.back().bytes.append(line).append("\r\n");
}

void ClientSession::expect(Batch& batch, Step step, std::size_t index, bool last) {
    ++batch.outstanding;
    expected_.push_back(Expect{step, &batch, index, last});
}

void ClientSession::note(Batch* batch, std::string_view prefix, std::string_view line) {
    std::string& transcript = batch ? batch->message->transcript : setup_transcript_;
    if (transcript.ends_with(kTruncated)) return;
    if (transcript.size() + prefix.size() + line.size() + 1 > config_.limits.max_transcript) {
        transcript += kTruncated;
        return;
    }
    transcript.append(prefix).append(line).push_back('\n');
}

}  // namespace magpie::smtp
