#include "smtp/server_session.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "base/strings.h"
#include "mail/address.h"
#include "mail/message.h"
#include "smtp/path.h"

namespace magpie::smtp {
namespace {

// Input capacity an empty buffer may keep (a command line's worth); more is freed once consumed.
constexpr std::size_t idle_input_capacity = 1024;

// RFC 3461 4: xtext = *( xchar / hexchar ), xchar = "!".."~" except "+" and "=", hexchar = "+" 2HEXDIG
// (upper case).
bool is_xtext(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '+') {
            if (i + 2 >= s.size()) return false;
            for (std::size_t k = 1; k <= 2; ++k) {
                char h = s[i + k];
                if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F'))) return false;
            }
            i += 2;
            continue;
        }
        if (c < '!' || c > '~' || c == '=') return false;
    }
    return true;
}

// RFC 3461 4.2 / 4.4: ORCPT at most 500 characters, ENVID at most 100.
constexpr std::size_t max_orcpt_length = 500;
constexpr std::size_t max_envid_length = 100;

// RFC 5321 4.1.1: esmtp-param = esmtp-keyword ["=" esmtp-value]; keywords are case-insensitive.
struct Param {
    std::string keyword;  // upper case
    std::string_view value;
    bool has_value = false;
};

std::optional<std::vector<Param>> parse_params(std::string_view text) {
    std::vector<Param> params;
    for (auto piece : split(text, ' ')) {
        if (piece.empty()) continue;
        Param param;
        auto eq = piece.find('=');
        std::string_view keyword = piece.substr(0, eq);
        if (keyword.empty() || !is_ascii(piece)) return std::nullopt;
        for (char c : keyword) {
            bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
            if (!ok) return std::nullopt;
        }
        param.keyword = to_upper(keyword);
        if (eq != std::string_view::npos) {
            param.value = piece.substr(eq + 1);
            param.has_value = true;
            if (param.value.empty() || param.value.find('=') != std::string_view::npos) return std::nullopt;
        }
        for (const auto& seen : params) {
            if (seen.keyword == param.keyword) return std::nullopt;  // a parameter given twice
        }
        params.push_back(std::move(param));
    }
    return params;
}

// Text from elsewhere (a queue id, a store message) must not break the one-line reply.
std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 200)) {
        auto u = static_cast<unsigned char>(c);
        out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
    }
    return out;
}

bool is_8bit_allowed(std::string_view verb) {
    return iequals(verb, "MAIL") || iequals(verb, "RCPT");
}

}  // namespace

ServerSession::ServerSession(ServerConfig config, std::string peer_ip, Millis now)
    : config_(std::move(config)), peer_ip_(std::move(peer_ip)), now_(now) {
    envelope_.tls = config_.tls_active;
    // RFC 5321 4.2: the greeting; enhanced codes start after EHLO (RFC 2034 3).
    output_ += fmt::format("220 {} ESMTP Magpie\r\n", config_.hostname);
}

void ServerSession::feed(std::string_view bytes, Millis now) {
    if (state_ == State::closed) return;
    // RFC 3207 4.2 / CVE-2011-0411: plaintext that follows STARTTLS is never executed.
    if (waiting_ == Waiting::tls) return;
    now_ = std::max(now_, now);
    // Octets that come after a deadline are too late, however the IO layer's timer and read raced.
    if (deadline_passed()) return;
    if (input_.empty() && waiting_ == Waiting::nothing) {
        // Message content with nothing buffered before it is read straight from the caller's bytes, not
        // copied into the input buffer first (issue 17: one copy and one buffer less per read of content).
        if (state_ == State::data) {
            std::size_t used = reader_->consume(bytes);
            bytes.remove_prefix(used);
            credit_content(used);
            if (reader_->done()) on_data_end();
        } else if (state_ == State::chunk && chunk_remaining_ > 0) {
            auto take = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_remaining_, bytes.size()));
            if (chunk_refusal_ == ChunkRefusal::none) reader_->consume(bytes.substr(0, take));
            bytes.remove_prefix(take);
            chunk_remaining_ -= take;
            credit_content(take);
            if (chunk_remaining_ == 0) on_chunk_end();
        }
    }
    // The rest (commands, or content behind them) is buffered and processed in order.
    input_.append(bytes);
    process();
}

std::string ServerSession::take_output() {
    return std::exchange(output_, std::string());
}

std::optional<Event> ServerSession::poll_event() {
    if (events_.empty()) return std::nullopt;
    Event event = std::move(events_.front());
    events_.pop_front();
    return event;
}

bool ServerSession::wants_input() const {
    if (state_ == State::closed || waiting_ == Waiting::tls) return false;
    return input_.size() - input_pos_ < config_.limits.max_buffered_input;
}

std::optional<Millis> ServerSession::input_deadline() const {
    if (state_ == State::closed || waiting_ != Waiting::nothing) return std::nullopt;
    std::optional<Millis> earliest;
    for (const auto& deadline : {line_deadline_, content_deadline_, transaction_deadline_}) {
        if (deadline && (!earliest || *deadline < *earliest)) earliest = deadline;
    }
    return earliest;
}

bool ServerSession::deadline_passed() {
    auto deadline = input_deadline();
    if (!deadline || now_ <= *deadline) return false;
    timed_out(now_);
    return true;
}

void ServerSession::timed_out(Millis now) {
    if (state_ == State::closed) return;
    now_ = std::max(now_, now);
    // Which bound ran out, for the client's log and ours; every one is the same temporary failure
    // (RFC 5321 4.5.3.2: the server may close after its timeouts; 421 tells an honest sender to retry).
    std::string_view why = "timeout exceeded";
    if (transaction_deadline_ && now_ >= *transaction_deadline_) {
        why = "transaction time limit exceeded";
    } else if (content_deadline_ && now_ >= *content_deadline_) {
        why = "message content arrives too slowly";
    } else if (line_deadline_ && now_ >= *line_deadline_) {
        why = "command line arrives too slowly";
    }
    close_with(421, "4.4.2", fmt::format("{} Error: {}", config_.hostname, why));
}

// Content octets buy time (Postfix's smtpd_min_data_rate): 1/min_data_rate seconds each, but the credit
// never reaches further than idle_timeout ahead, so a stall is still caught within idle_timeout.
void ServerSession::credit_content(std::size_t octets) {
    if (!content_deadline_ || octets == 0) return;
    const auto& limits = config_.limits;
    Millis ceiling = now_ + limits.idle_timeout;
    if (limits.min_data_rate == 0) {
        content_deadline_ = ceiling;
        return;
    }
    // `octets` is at most one feed's worth, so the product cannot overflow.
    auto credit = Millis(static_cast<Millis::rep>(octets * std::uint64_t{1000} / limits.min_data_rate));
    content_deadline_ = std::min(*content_deadline_ + credit, ceiling);
}

void ServerSession::process() {
    while (state_ != State::closed && waiting_ == Waiting::nothing) {
        bool progressed = false;
        switch (state_) {
            case State::data:
                progressed = step_data();
                break;
            case State::chunk:
                progressed = step_chunk();
                break;
            default:
                progressed = step_command();
                break;
        }
        if (!progressed) break;
    }
    if (state_ == State::closed) {
        input_.clear();
        input_pos_ = 0;
        return;
    }
    if (input_pos_ > 0) {
        input_.erase(0, input_pos_);
        input_pos_ = 0;
    }
    // Consumed input leaves no buffer behind: the capacity a message's content grew would otherwise stay with
    // the connection while it waits for the next command (issue 17: an idle connection holds no read buffer).
    if (input_.empty() && input_.capacity() > idle_input_capacity) std::string().swap(input_);
    // A command line has begun (or an over-long one is being skipped): its clock runs from now. Octets
    // held behind an outstanding event are not the client's delay.
    bool partial_line = state_ != State::data && state_ != State::chunk &&
                        (!input_.empty() || skipping_long_line_) && waiting_ == Waiting::nothing;
    if (!partial_line) {
        line_deadline_.reset();
    } else if (!line_deadline_) {
        line_deadline_ = now_ + config_.limits.idle_timeout;
    }
}

bool ServerSession::step_command() {
    const std::size_t max_command = config_.limits.max_command_line;
    const std::size_t max_auth = std::max(max_command, config_.limits.max_auth_line);
    std::string_view pending(input_.data() + input_pos_, input_.size() - input_pos_);
    // AUTH with an initial response and SASL response lines may be longer than a command (RFC 4954 4).
    bool auth_line = auth_exchange_ || (auth_offered() && istarts_with(pending, "AUTH "));
    const std::size_t max_line = auth_line ? max_auth : max_command;
    std::size_t newline = input_.find('\n', input_pos_);
    if (skipping_long_line_) {
        // RFC 5321 4.5.3.1.4: refuse the over-long line once, without buffering it.
        if (newline == std::string::npos) {
            input_pos_ = input_.size();
            return false;
        }
        input_pos_ = newline + 1;
        skipping_long_line_ = false;
        line_deadline_.reset();
        if (std::exchange(skipping_auth_line_, false)) {
            auth_exchange_ = false;
            bad_command(500, "5.5.6", "Error: authentication exchange line is too long");
        } else {
            bad_command(500, "5.5.2", "Error: line too long");
        }
        return true;
    }
    if (newline == std::string::npos) {
        if (input_.size() - input_pos_ >= max_line) {
            skipping_long_line_ = true;
            skipping_auth_line_ = auth_line;
            input_pos_ = input_.size();
        }
        return false;
    }
    std::string_view line(input_.data() + input_pos_, newline + 1 - input_pos_);
    input_pos_ = newline + 1;
    line_deadline_.reset();
    // RFC 5321 4.5.3.1.10 "500 Line too long"; x.5.6 belongs to AUTH (RFC 4954), so syntax: 5.5.2.
    if (line.size() > max_line) {
        if (auth_line) {
            auth_exchange_ = false;
            bad_command(500, "5.5.6", "Error: authentication exchange line is too long");
        } else {
            bad_command(500, "5.5.2", "Error: line too long");
        }
        return true;
    }
    if (auth_exchange_) {
        on_auth_response(line);
        return true;
    }
    handle_line(line);
    return true;
}

bool ServerSession::step_data() {
    std::string_view available(input_.data() + input_pos_, input_.size() - input_pos_);
    if (available.empty()) return false;
    std::size_t used = reader_->consume(available);
    input_pos_ += used;
    credit_content(used);
    if (!reader_->done()) return false;
    on_data_end();
    return true;
}

bool ServerSession::step_chunk() {
    if (chunk_remaining_ > 0) {
        std::size_t available = input_.size() - input_pos_;
        if (available == 0) return false;
        auto take = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_remaining_, available));
        if (chunk_refusal_ == ChunkRefusal::none)
            reader_->consume(std::string_view(input_.data() + input_pos_, take));
        input_pos_ += take;
        chunk_remaining_ -= take;
        credit_content(take);
        if (chunk_remaining_ > 0) return false;
    }
    on_chunk_end();
    return true;
}

void ServerSession::handle_line(std::string_view line) {
    line.remove_suffix(1);  // the LF
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    } else if (config_.bare_line_ending == BareLineEnding::reject) {
        bad_command(500, "5.5.2", "Error: bare <LF> received");
        return;
    }
    for (unsigned char c : line) {
        if (c < 0x20 || c == 0x7f) {
            bad_command(500, "5.5.2", "Error: control character in command");
            return;
        }
    }
    std::size_t space = line.find(' ');
    std::string_view verb = line.substr(0, space);
    std::string_view args =
        space == std::string_view::npos ? std::string_view() : trim(line.substr(space + 1));
    if (!is_ascii(line) && (!is_8bit_allowed(verb) || !is_valid_utf8(line))) {
        bad_command(500, "5.5.2", "Error: 8-bit characters in command");
        return;
    }

    Command command = Command::unknown;
    static constexpr std::pair<std::string_view, Command> verbs[] = {
        {"EHLO", Command::ehlo},
        {"HELO", Command::helo},
        {"MAIL", Command::mail},
        {"RCPT", Command::rcpt},
        {"DATA", Command::data},
        {"BDAT", Command::bdat},
        {"RSET", Command::rset},
        {"NOOP", Command::noop},
        {"QUIT", Command::quit},
        {"VRFY", Command::vrfy},
        {"HELP", Command::help},
        {"STARTTLS", Command::starttls},
        // Known to RFC 5321 and its extensions but deliberately not offered here.
        {"EXPN", Command::not_implemented},
        {"TURN", Command::not_implemented},
        {"ETRN", Command::not_implemented},
        {"ATRN", Command::not_implemented},
        {"SEND", Command::not_implemented},
        {"SOML", Command::not_implemented},
        {"SAML", Command::not_implemented},
        {"AUTH", Command::auth},
        {"VERB", Command::not_implemented},
    };
    for (const auto& [name, value] : verbs) {
        if (iequals(verb, name)) command = value;
    }
    // BDAT must learn its chunk size before any refusal, so it checks the sequence itself.
    if (command != Command::bdat && !sequence_ok(command)) return;
    if (is_junk(command) && !junk_allowed()) return;

    switch (command) {
        case Command::ehlo:
            on_ehlo(args, true);
            break;
        case Command::helo:
            on_ehlo(args, false);
            break;
        case Command::mail:
            on_mail(args);
            break;
        case Command::rcpt:
            on_rcpt(args);
            break;
        case Command::data:
            on_data(args);
            break;
        case Command::bdat:
            on_bdat(args);
            break;
        case Command::rset:
            on_rset(args);
            break;
        case Command::noop:
            on_noop();
            break;
        case Command::quit:
            on_quit(args);
            break;
        case Command::vrfy:
            on_vrfy(args);
            break;
        case Command::help:
            on_help();
            break;
        case Command::starttls:
            on_starttls(args);
            break;
        case Command::auth:
            on_auth(args);
            break;
        case Command::not_implemented:
            bad_command(502, "5.5.1", "Error: command not implemented");
            break;
        case Command::unknown:
            bad_command(500, "5.5.2", "Error: command not recognized");
            break;
    }
}

// The one place that knows which command may come in which state (RFC 5321 4.1.4, RFC 3030 3).
bool ServerSession::sequence_ok(Command command) {
    std::string_view refusal;
    switch (command) {
        case Command::mail:
            if (state_ == State::fresh)
                refusal = "Error: send HELO/EHLO first";
            else if (state_ != State::ready)
                refusal = "Error: nested MAIL command";
            break;
        case Command::rcpt:
            if (state_ != State::mail && state_ != State::rcpt) refusal = "Error: need MAIL command";
            break;
        case Command::data:
            if (state_ == State::bdat)
                refusal = "Error: DATA after BDAT in the same transaction";
            else if (state_ != State::mail && state_ != State::rcpt)
                refusal = "Error: need RCPT command";
            break;
        case Command::bdat:
            if (state_ != State::mail && state_ != State::rcpt && state_ != State::bdat) {
                refusal = "Error: need RCPT command";
            }
            break;
        case Command::starttls:
            if (state_ != State::fresh && state_ != State::ready)
                refusal = "Error: MAIL transaction in progress";
            break;
        default:
            break;
    }
    if (refusal.empty()) return true;
    bad_command(503, "5.5.1", refusal);
    return false;
}

void ServerSession::on_ehlo(std::string_view args, bool extended) {
    if (args.empty()) {
        bad_command(501, "5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        return;
    }
    // RFC 5321 4.1.4: EHLO/HELO also resets any transaction, like RSET.
    reset_transaction();
    envelope_.helo = std::string(args);
    envelope_.esmtp = extended;
    state_ = State::ready;
    if (!extended) {
        output_ += fmt::format("250 {}\r\n", config_.hostname);
        return;
    }
    std::vector<std::string> lines = {
        config_.hostname, "PIPELINING", fmt::format("SIZE {}", config_.limits.max_message_size),
        "8BITMIME",       "SMTPUTF8",   "ENHANCEDSTATUSCODES",
        "CHUNKING",       "DSN",
    };
    if (config_.starttls_offered && !config_.tls_active) lines.emplace_back("STARTTLS");
    // RFC 4954 4 / RFC 6409 4.3: not before TLS, so that no password crosses the network in clear text.
    if (auth_offered()) lines.emplace_back("AUTH PLAIN LOGIN SCRAM-SHA-256");
    for (std::size_t i = 0; i < lines.size(); ++i) {
        output_ += fmt::format("250{}{}\r\n", i + 1 == lines.size() ? ' ' : '-', lines[i]);
    }
}

void ServerSession::on_mail(std::string_view args) {
    if (config_.submission && auth_user_.empty()) {
        // RFC 4954 6: 530 5.7.0 Authentication required.
        bad_command(530, "5.7.0", "Error: authentication required");
        return;
    }
    if (!istarts_with(args, "FROM:")) {
        bad_command(501, "5.5.4", "Syntax: MAIL FROM:<address>");
        return;
    }
    // Postfix's default tolerance of envelope forms (see parse_envelope_argument); nothing at all is a
    // syntax error of the command, as in Postfix.
    auto argument = parse_envelope_argument(
        args.substr(5), PathOptions{.allow_null = true, .allow_postmaster = false, .limits = {}});
    if (!argument && trim(args.substr(5)).empty()) {
        bad_command(501, "5.5.4", "Syntax: MAIL FROM:<address>");
        return;
    }
    if (!argument) {
        bad_command(501, "5.1.7", "Bad sender address syntax: " + argument.error().message);
        return;
    }
    const ParsedPath* path = &argument->path;
    std::string_view param_text = argument->parameters;
    auto params = parse_params(param_text);
    if ((!param_text.empty() && param_text.front() != ' ') || !params) {
        bad_command(501, "5.5.4", "Error: malformed MAIL parameters");
        return;
    }

    bool body_8bit = false;
    bool smtputf8 = false;
    std::string ret;
    std::string envid;
    for (const auto& param : *params) {
        if (param.keyword == "SIZE") {
            // RFC 1870 6: refuse early what could never be accepted.
            auto size = param.has_value ? parse_uint(param.value) : std::nullopt;
            if (!size) {
                bad_command(501, "5.5.4", "Error: bad SIZE parameter");
                return;
            }
            if (*size > config_.limits.max_message_size) {
                reply(552, "5.3.4", "Error: message size exceeds fixed limit");
                return;
            }
        } else if (param.keyword == "BODY") {
            // RFC 6152; BINARYMIME (RFC 3030) is not offered.
            if (iequals(param.value, "7BIT")) {
                body_8bit = false;
            } else if (iequals(param.value, "8BITMIME")) {
                body_8bit = true;
            } else if (iequals(param.value, "BINARYMIME")) {
                bad_command(555, "5.5.4", "Error: BODY=BINARYMIME is not supported");
                return;
            } else {
                bad_command(501, "5.5.4", "Error: bad BODY parameter");
                return;
            }
        } else if (param.keyword == "SMTPUTF8") {
            if (param.has_value) {
                bad_command(501, "5.5.4", "Error: SMTPUTF8 takes no value");
                return;
            }
            smtputf8 = true;
        } else if (param.keyword == "RET") {
            if (!iequals(param.value, "FULL") && !iequals(param.value, "HDRS")) {
                bad_command(501, "5.5.4", "Error: bad RET parameter");
                return;
            }
            ret = to_upper(param.value);
        } else if (param.keyword == "ENVID") {
            if (!param.has_value || param.value.size() > max_envid_length || !is_xtext(param.value)) {
                bad_command(501, "5.5.4", "Error: bad ENVID parameter");
                return;
            }
            envid = std::string(param.value);
        } else if (param.keyword == "AUTH" && config_.submission) {
            // RFC 4954 5: AUTH=<> or AUTH=xtext-mailbox comes with the AUTH extension (Sendmail and Exchange
            // send it after authenticating); it only asserts who submitted the message, and is not trusted
            // here: the authenticated user is.
            if (!param.has_value || !is_xtext(param.value)) {
                bad_command(501, "5.5.4", "Error: bad AUTH parameter");
                return;
            }
        } else {
            bad_command(555, "5.5.4", "Error: unsupported MAIL parameter");
            return;
        }
    }
    // RFC 6531 3.5: a non-ASCII address needs SMTPUTF8 on this very command.
    if (path->non_ascii && !smtputf8) {
        reply(553, "5.6.7", "Error: non-ASCII sender address without SMTPUTF8");
        return;
    }
    if (config_.submission && !owns_address(path->mailbox)) {
        // RFC 6409 8.1 leaves the rule to the site; ours: a user sends only as itself or one of its aliases.
        reply(553, "5.7.1",
              fmt::format("<{}>: Sender address rejected: not owned by user {} (MAIL FROM must be the "
                          "authenticated user's address or one of its aliases)",
                          printable(path->mailbox), auth_user_));
        return;
    }
    envelope_.reverse_path = path->mailbox;
    envelope_.auth_user = auth_user_;
    envelope_.body_8bit = body_8bit;
    envelope_.smtputf8 = smtputf8;
    envelope_.dsn_ret = std::move(ret);
    envelope_.dsn_envid = std::move(envid);
    state_ = State::mail;
    transaction_deadline_ = now_ + config_.limits.max_transaction_time;
    reply(250, "2.1.0", "OK");
}

void ServerSession::on_rcpt(std::string_view args) {
    if (!istarts_with(args, "TO:")) {
        bad_command(501, "5.5.4", "Syntax: RCPT TO:<address>");
        return;
    }
    auto argument = parse_envelope_argument(
        args.substr(3), PathOptions{.allow_null = false, .allow_postmaster = true, .limits = {}});
    if (!argument && trim(args.substr(3)).empty()) {
        bad_command(501, "5.5.4", "Syntax: RCPT TO:<address>");
        return;
    }
    if (!argument) {
        bad_command(501, "5.1.3", "Bad recipient address syntax: " + argument.error().message);
        return;
    }
    const ParsedPath* path = &argument->path;
    std::string_view param_text = argument->parameters;
    auto params = parse_params(param_text);
    if ((!param_text.empty() && param_text.front() != ' ') || !params) {
        bad_command(501, "5.5.4", "Error: malformed RCPT parameters");
        return;
    }
    Recipient recipient;
    recipient.address = path->mailbox;
    for (const auto& param : *params) {
        if (param.keyword == "NOTIFY") {
            // RFC 3461 4.1: "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY.
            std::string value = to_upper(param.value);
            bool ok = param.has_value;
            if (ok && value != "NEVER") {
                auto items = split(value, ',');
                for (std::size_t i = 0; i < items.size() && ok; ++i) {
                    ok = (items[i] == "SUCCESS" || items[i] == "FAILURE" || items[i] == "DELAY") &&
                         std::count(items.begin(), items.end(), items[i]) == 1;
                }
            }
            if (!ok) {
                bad_command(501, "5.5.4", "Error: bad NOTIFY parameter");
                return;
            }
            recipient.notify = std::move(value);
        } else if (param.keyword == "ORCPT") {
            // RFC 3461 4.2: addr-type ";" xtext
            auto semicolon = param.value.find(';');
            bool ok = param.has_value && param.value.size() <= max_orcpt_length &&
                      semicolon != std::string_view::npos && semicolon > 0 &&
                      semicolon + 1 < param.value.size() && is_xtext(param.value.substr(semicolon + 1));
            if (!ok) {
                bad_command(501, "5.5.4", "Error: bad ORCPT parameter");
                return;
            }
            recipient.orcpt = std::string(param.value);
        } else {
            bad_command(555, "5.5.4", "Error: unsupported RCPT parameter");
            return;
        }
    }
    if (path->non_ascii && !envelope_.smtputf8) {
        reply(553, "5.6.7", "Error: non-ASCII recipient address without SMTPUTF8");
        return;
    }
    // RFC 5321 4.5.3.1.10: 452 for too many recipients; the client retries the rest later.
    if (envelope_.recipients.size() >= config_.limits.max_recipients) {
        reply(452, "4.5.3", "Error: too many recipients");
        return;
    }
    pending_rcpt_ = std::move(recipient);
    waiting_ = Waiting::rcpt;
    events_.push_back(RcptCheck{pending_rcpt_.address});
}

void ServerSession::rcpt_checked(RcptVerdict verdict) {
    if (state_ == State::closed) return;
    if (waiting_ == Waiting::vrfy) {
        waiting_ = Waiting::nothing;
        const std::string& address = pending_rcpt_.address;
        switch (verdict) {
            case RcptVerdict::accept:
                reply(250, "2.1.5", fmt::format("<{}>", address));
                break;
            case RcptVerdict::unknown_user:
                bad_command(550, "5.1.1",
                            fmt::format("<{}>: Recipient address rejected: User unknown", address));
                break;
            case RcptVerdict::temporary_failure:
                reply(451, "4.3.0", fmt::format("<{}>: Temporary lookup failure", address));
                break;
            default:
                reply(252, "2.5.0", "Cannot verify user, but will accept message and attempt delivery");
                break;
        }
        after_answer();
        return;
    }
    if (waiting_ != Waiting::rcpt) return;
    waiting_ = Waiting::nothing;
    const std::string address = pending_rcpt_.address;
    switch (verdict) {
        case RcptVerdict::accept:
            envelope_.recipients.push_back(std::move(pending_rcpt_));
            state_ = State::rcpt;
            reply(250, "2.1.5", "OK");
            break;
        // Refused recipients count as errors, as in Postfix: a client guessing addresses (directory
        // harvest) or probing for an open relay is cut off after max_bad_commands of them.
        case RcptVerdict::unknown_user:
            bad_command(550, "5.1.1", fmt::format("<{}>: Recipient address rejected: User unknown", address));
            break;
        case RcptVerdict::relay_denied:
            bad_command(554, "5.7.1", fmt::format("<{}>: Relay access denied", address));
            break;
        case RcptVerdict::temporary_failure:
            reply(451, "4.3.0", fmt::format("<{}>: Temporary lookup failure", address));
            break;
        case RcptVerdict::mailbox_full:
            reply(452, "4.2.2", fmt::format("<{}>: Mailbox full", address));
            break;
    }
    pending_rcpt_ = Recipient{};
    after_answer();
}

void ServerSession::on_data(std::string_view args) {
    if (!args.empty()) {
        bad_command(501, "5.5.4", "Syntax: DATA");
        return;
    }
    if (state_ == State::mail) {
        reply(554, "5.5.1", "Error: no valid recipients");
        return;
    }
    start_reader(true);
    state_ = State::data;
    content_deadline_ = now_ + config_.limits.idle_timeout;
    output_ += "354 End data with <CR><LF>.<CR><LF>\r\n";
}

void ServerSession::on_data_end() {
    content_deadline_.reset();
    finish_message();
}

void ServerSession::on_bdat(std::string_view args) {
    // RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CRLF, chunk-size = 1*DIGIT
    auto parts = split(args, ' ');
    std::optional<std::uint64_t> size = parts.empty() ? std::nullopt : parse_uint(parts[0]);
    bool last = parts.size() == 2 && iequals(parts[1], "LAST");
    if (!size) {
        // Without a size the chunk cannot be skipped; what follows is read as commands.
        bad_command(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
        return;
    }
    chunk_remaining_ = *size;
    chunk_size_ = *size;
    chunk_last_ = last;
    chunk_return_state_ = state_;
    chunk_refusal_ = ChunkRefusal::none;
    if (parts.size() > 2 || (parts.size() == 2 && !last)) {
        // The size is readable, so the chunk is read (and dropped) before the refusal: its octets are
        // never taken for commands (RFC 3030 2, as for every other refused chunk).
        chunk_refusal_ = ChunkRefusal::syntax;
    } else if (state_ != State::mail && state_ != State::rcpt && state_ != State::bdat) {
        chunk_refusal_ = ChunkRefusal::sequence;
    } else if (state_ == State::mail) {
        chunk_refusal_ = ChunkRefusal::no_recipients;
    } else if (bdat_failed_) {
        chunk_refusal_ = ChunkRefusal::failed_earlier;
    } else if (*size > config_.limits.max_message_size - bdat_octets_) {  // accepted chunks never pass it
        // RFC 3030 3: a chunk that cannot fit is still read (and dropped) so the stream stays in step,
        // then refused; the session goes on and the transaction is failed until RSET (or BDAT LAST).
        chunk_refusal_ = ChunkRefusal::too_big;
    } else if (state_ == State::rcpt) {
        start_reader(false);
    }
    // Discarded octets are held to the same pace as kept ones: a refusal is no way to stall.
    content_deadline_ = now_ + config_.limits.idle_timeout;
    state_ = State::chunk;
}

void ServerSession::on_chunk_end() {
    content_deadline_.reset();
    switch (chunk_refusal_) {
        case ChunkRefusal::syntax:
            state_ = chunk_return_state_;
            bad_command(501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
            return;
        case ChunkRefusal::sequence:
            state_ = chunk_return_state_;
            bad_command(503, "5.5.1", "Error: need RCPT command");
            return;
        case ChunkRefusal::no_recipients:
            state_ = chunk_return_state_;
            reply(554, "5.5.1", "Error: no valid recipients");
            return;
        case ChunkRefusal::failed_earlier:
            // RFC 3030 3: after a failed chunk the rest of the transaction is refused until it ends.
            state_ = State::bdat;
            reply(503, "5.5.1", "Error: an earlier BDAT chunk failed, send RSET");
            if (chunk_last_) {
                reset_transaction();
                state_ = State::ready;
            }
            return;
        case ChunkRefusal::too_big:
            state_ = State::bdat;
            bdat_failed_ = true;
            reply(552, "5.3.4", "Error: message size exceeds fixed limit");
            if (chunk_last_) {
                reset_transaction();
                state_ = State::ready;
            }
            return;
        case ChunkRefusal::none:
            break;
    }
    // RFC 3030 2: the reply counts the octets of the chunks as sent (a CR held back to see whether an LF
    // follows is received all the same).
    bdat_octets_ += chunk_size_;
    if (!chunk_last_) {
        state_ = State::bdat;
        if (reader_->too_big()) {
            bdat_failed_ = true;
            reply(552, "5.3.4", "Error: message size exceeds fixed limit");
        } else {
            reply(250, "2.0.0", fmt::format("OK: {} octets received", bdat_octets_));
        }
        return;
    }
    reader_->finish();
    finish_message();
}

// The end of DATA or of BDAT LAST: refuse (nothing stored) or hand the message to the IO layer.
void ServerSession::finish_message() {
    DataReader& reader = *reader_;
    bool refused = true;
    if (reader.saw_bare_line_ending() && config_.bare_line_ending == BareLineEnding::reject) {
        // Postfix's smtpd_forbid_bare_newline=reject answers the same way (550, syntax error 5.5.2).
        reply(550, "5.5.2", "Error: bare <CR> or <LF> in message data (SMTP smuggling defence)");
    } else if (reader.too_big()) {
        reply(552, "5.3.4", "Error: message size exceeds fixed limit");
    } else if (reader.line_too_long()) {
        // A line over max_text_line (RFC 5321 4.5.3.1.6 allows limits above 1000): refused like any
        // content over a size limit of this system (552, RFC 3463 5.3.4); x.5.6 would be AUTH's.
        reply(552, "5.3.4", "Error: message line too long");
    } else {
        refused = false;
    }
    std::string from_refusal;
    if (!refused && config_.submission && !from_header_allowed(reader.data(), from_refusal)) {
        refused = true;
        output_ += from_refusal;
    }
    if (refused) {
        reset_transaction();
        state_ = State::ready;
        return;
    }
    envelope_.undeclared_8bit = reader.saw_8bit() && !envelope_.body_8bit;
    MessageReceived message{envelope_, reader.take_data()};
    reset_transaction();
    state_ = State::ready;
    waiting_ = Waiting::store;
    events_.push_back(std::move(message));
}

void ServerSession::stored(Result<std::string> queue_id) {
    if (state_ == State::closed || waiting_ != Waiting::store) return;
    waiting_ = Waiting::nothing;
    if (queue_id) {
        // A client that delivers mail is not a prober: its error count starts again.
        bad_commands_ = 0;
        junk_commands_ = 0;
        reply(250, "2.0.0", "OK " + printable(*queue_id));
    } else {
        const Error& error = queue_id.error();
        switch (error.code) {
            case Errc::limit_exceeded:
                reply(452, "4.3.1", "Error: insufficient system storage");
                break;
            case Errc::invalid_argument:
                reply(554, "5.6.0", "Error: message refused: " + printable(error.message));
                break;
            // Refused by policy (DMARC p=reject, RFC 7489 10.3): 550 5.7.1, as receivers answer it.
            case Errc::permission_denied:
                reply(550, "5.7.1", "Error: message refused: " + printable(error.message));
                break;
            default:
                reply(451, "4.3.0", "Error: temporary failure, try again later");
                break;
        }
    }
    after_answer();
}

void ServerSession::on_rset(std::string_view args) {
    if (!args.empty()) {
        bad_command(501, "5.5.4", "Syntax: RSET");
        return;
    }
    reset_transaction();
    if (state_ != State::fresh) state_ = State::ready;
    reply(250, "2.0.0", "OK");
}

void ServerSession::on_noop() {
    reply(250, "2.0.0", "OK");
}  // RFC 5321 4.1.1.9: any argument is ignored

void ServerSession::on_quit(std::string_view args) {
    if (!args.empty()) {
        bad_command(501, "5.5.4", "Syntax: QUIT");
        return;
    }
    close_with(221, "2.0.0", fmt::format("{} closing connection", config_.hostname));
}

void ServerSession::on_vrfy(std::string_view args) {
    if (args.empty()) {
        bad_command(501, "5.5.4", "Syntax: VRFY address");
        return;
    }
    // RFC 5321 3.5.3 / 7.3: 252 says nothing about which users exist.
    if (!config_.vrfy_enabled) {
        reply(252, "2.5.0", "Cannot verify user, but will accept message and attempt delivery");
        return;
    }
    std::string path = args.front() == '<' ? std::string(args) : "<" + std::string(args) + ">";
    auto parsed = parse_path(path, PathOptions{.allow_null = false, .allow_postmaster = true, .limits = {}});
    if (!parsed || parsed->consumed != path.size()) {
        bad_command(501, "5.1.3", "Error: bad address syntax");
        return;
    }
    pending_rcpt_ = Recipient{parsed->mailbox, {}, {}};
    waiting_ = Waiting::vrfy;
    events_.push_back(RcptCheck{parsed->mailbox});
}

void ServerSession::on_help() {
    reply(214, "2.0.0",
          config_.submission
              ? "Commands: EHLO HELO AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS"
              : "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS");
}

void ServerSession::on_starttls(std::string_view args) {
    if (!args.empty()) {
        bad_command(501, "5.5.4", "Syntax: STARTTLS");
        return;
    }
    if (config_.tls_active) {
        bad_command(554, "5.5.1", "Error: TLS already active");
        return;
    }
    if (!config_.starttls_offered) {
        bad_command(502, "5.5.1", "Error: command not implemented");
        return;
    }
    reply(220, "2.0.0", "Ready to start TLS");
    // CVE-2011-0411: whatever was pipelined behind STARTTLS arrived in plaintext; drop it.
    input_pos_ = input_.size();
    waiting_ = Waiting::tls;
    events_.push_back(StartTls{});
}

void ServerSession::tls_started() {
    if (state_ == State::closed || waiting_ != Waiting::tls) return;
    waiting_ = Waiting::nothing;
    config_.tls_active = true;
    // RFC 3207 4.2: forget everything learnt before the handshake, including the EHLO.
    reset_transaction();
    envelope_ = Envelope{};
    envelope_.tls = true;
    auth_user_.clear();
    auth_addresses_.clear();
    auth_exchange_ = false;
    state_ = State::fresh;
    input_.clear();
    input_pos_ = 0;
    skipping_long_line_ = false;
    after_answer();
}

void ServerSession::shutting_down() {
    if (state_ == State::closed) return;
    // Let an answer the IO layer is already working on (a stored message above all) reach the client.
    if (waiting_ == Waiting::rcpt || waiting_ == Waiting::vrfy || waiting_ == Waiting::store ||
        waiting_ == Waiting::auth) {
        drain_then_close_ = true;
        return;
    }
    close_with(421, "4.3.2",
               fmt::format("{} Service shutting down, closing transmission channel", config_.hostname));
}

void ServerSession::after_answer() {
    if (state_ == State::closed) return;
    if (drain_then_close_) {
        close_with(421, "4.3.2",
                   fmt::format("{} Service shutting down, closing transmission channel", config_.hostname));
        return;
    }
    process();
}

void ServerSession::reply(int code, std::string_view enhanced, std::string_view text) {
    output_ += fmt::format("{} {} {}\r\n", code, enhanced, text);
}

// Commands that move no mail forward (Postfix's "junk commands"): a client can hold a connection
// with them forever, one just inside each idle_timeout.
bool ServerSession::is_junk(Command command) {
    return command == Command::noop || command == Command::rset || command == Command::vrfy ||
           command == Command::help;
}

// Past max_junk_commands each one also counts as an error (as Postfix's smtpd_junk_command_limit does),
// so max_bad_commands ends the session; false when it has. The command itself is still answered.
bool ServerSession::junk_allowed() {
    if (++junk_commands_ <= config_.limits.max_junk_commands) return true;
    if (++bad_commands_ <= config_.limits.max_bad_commands) return true;
    close_with(421, "4.7.0", fmt::format("{} Error: too many errors", config_.hostname));
    return false;
}

// Protocol errors count towards max_bad_commands; past it the session ends (a client that keeps
// sending garbage is broken or probing).
void ServerSession::bad_command(int code, std::string_view enhanced, std::string_view text) {
    ++bad_commands_;
    if (bad_commands_ > config_.limits.max_bad_commands) {
        close_with(421, "4.7.0", fmt::format("{} Error: too many errors", config_.hostname));
        return;
    }
    reply(code, enhanced, text);
}

void ServerSession::close_with(int code, std::string_view enhanced, std::string_view text) {
    reply(code, enhanced, text);
    state_ = State::closed;
    waiting_ = Waiting::nothing;
    reader_.reset();
    input_pos_ = input_.size();
    events_.push_back(Close{});
}

void ServerSession::reset_transaction() {
    envelope_.reverse_path.clear();
    envelope_.recipients.clear();
    envelope_.body_8bit = false;
    envelope_.smtputf8 = false;
    envelope_.dsn_ret.clear();
    envelope_.dsn_envid.clear();
    envelope_.undeclared_8bit = false;
    reader_.reset();
    bdat_failed_ = false;
    bdat_octets_ = 0;
    chunk_refusal_ = ChunkRefusal::none;
    chunk_remaining_ = 0;
    content_deadline_.reset();
    transaction_deadline_.reset();
}

void ServerSession::start_reader(bool dot_stuffed) {
    reader_.emplace(DataReaderOptions{
        .max_text_line = config_.limits.max_text_line,
        .max_message_size = config_.limits.max_message_size,
        .bare_line_ending = config_.bare_line_ending,
        .dot_stuffed = dot_stuffed,
    });
}

// ---- AUTH (RFC 4954) and the submission policy (RFC 6409).

bool ServerSession::auth_offered() const {
    return config_.submission && auth_user_.empty() && (config_.tls_active || config_.auth_plaintext_allowed);
}

void ServerSession::on_auth(std::string_view args) {
    if (!config_.submission) {
        bad_command(502, "5.5.1", "Error: command not implemented");
        return;
    }
    if (state_ == State::fresh) {
        bad_command(503, "5.5.1", "Error: send EHLO first");
        return;
    }
    // RFC 4954 4: no AUTH once authenticated, and none during a mail transaction.
    if (!auth_user_.empty()) {
        bad_command(503, "5.5.1", "Error: already authenticated");
        return;
    }
    if (state_ != State::ready) {
        bad_command(503, "5.5.1", "Error: MAIL transaction in progress");
        return;
    }
    if (!config_.tls_active && !config_.auth_plaintext_allowed) {
        // RFC 4954 6: 538 5.7.11 Encryption required for requested authentication mechanism.
        bad_command(538, "5.7.11", "Error: encryption required for authentication, use STARTTLS first");
        return;
    }
    auto parts = split(args, ' ');
    if (args.empty() || parts.size() > 2 || parts[0].empty() || (parts.size() == 2 && parts[1].empty())) {
        bad_command(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
        return;
    }
    AuthBegin begin{std::string(parts[0]), std::nullopt};
    if (parts.size() == 2) begin.initial_response = std::string(parts[1]);
    waiting_ = Waiting::auth;
    events_.push_back(std::move(begin));
}

void ServerSession::on_auth_response(std::string_view line) {
    line.remove_suffix(1);  // the LF
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    waiting_ = Waiting::auth;
    events_.push_back(AuthResponse{std::string(line)});
}

void ServerSession::auth_answered(AuthAnswer answer) {
    if (state_ == State::closed || waiting_ != Waiting::auth) return;
    waiting_ = Waiting::nothing;
    auth_exchange_ = false;
    using Kind = AuthAnswer::Kind;
    switch (answer.kind) {
        case Kind::challenge:
            auth_exchange_ = true;
            // Base64 from the IO layer; a stray CR or LF must still not break the reply.
            std::erase_if(answer.challenge, [](char c) { return c == '\r' || c == '\n'; });
            output_ += fmt::format("334 {}\r\n", answer.challenge);
            break;
        case Kind::success:
            auth_user_ = std::move(answer.user);
            auth_addresses_ = std::move(answer.addresses);
            reply(235, "2.7.0", "Authentication successful");
            break;
        // Failed tries count as errors: a password guesser is cut off after max_bad_commands (the login
        // throttle, shared with IMAP, limits it across connections).
        case Kind::failed:
            bad_command(535, "5.7.8", "Error: authentication credentials invalid");
            break;
        case Kind::cancelled:
            bad_command(501, "5.0.0", "Error: authentication cancelled");
            break;
        case Kind::malformed:
            bad_command(501, "5.5.2", "Error: cannot decode the authentication response");
            break;
        case Kind::too_long:
            bad_command(500, "5.5.6", "Error: authentication exchange line is too long");
            break;
        case Kind::unsupported:
            bad_command(504, "5.5.4", "Error: unrecognized authentication mechanism");
            break;
        case Kind::temporary:
            reply(454, "4.7.0", "Error: temporary authentication failure, try again later");
            break;
    }
    after_answer();
}

bool ServerSession::owns_address(std::string_view address) const {
    if (address.empty()) return false;  // a user agent does not send reports (null sender)
    for (const auto& own : auth_addresses_) {
        if (iequals(own, address)) return true;
    }
    return false;
}

// The header's author (Sender: when present, otherwise every From: mailbox, RFC 5322 3.6.2) must be one of
// the user's addresses. A message without From: is refused here with 550 5.6.0 (RFC 5322 3.6 requires it).
bool ServerSession::from_header_allowed(std::string_view data, std::string& refusal) const {
    std::vector<mail::HeaderField> fields;
    mail::scan_header(data, 0, data.size(), mail::ParseLimits{}, fields);
    mail::Header header(fields);
    const mail::HeaderField* from = header.find("From");
    if (!from) {
        refusal = "550 5.6.0 Error: message has no From: header field (RFC 5322 3.6 requires one)\r\n";
        return false;
    }
    const mail::HeaderField* sender = header.find("Sender");
    auto list = mail::mailboxes(mail::parse_address_list((sender ? sender : from)->unfolded()));
    if (list.empty()) {
        refusal = fmt::format("550 5.6.0 Error: no address in the {}: header field\r\n",
                              sender ? "Sender" : "From");
        return false;
    }
    for (const auto& mailbox : list) {
        std::string address = mailbox.local_part + "@" + mailbox.domain;
        if (owns_address(address)) continue;
        refusal = fmt::format(
            "553 5.7.1 <{}>: {}: address not owned by user {} (the {}: header field must be the "
            "authenticated "
            "user's address or one of its aliases)\r\n",
            printable(address), sender ? "Sender" : "From", auth_user_, sender ? "Sender" : "From");
        return false;
    }
    return true;
}

}  // namespace magpie::smtp
