#include "cli/mail.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

#include "base/file.h"
#include "base/strings.h"
#include "cli/mail_account.h"
#include "cli/mail_compose.h"
#include "cli/mail_net.h"
#include "imap/client/data.h"
#include "mail/builder.h"
#include "mail/date.h"
#include "mail/decode.h"
#include "mail/mime.h"

namespace magpie::cli {

using mail_ui::Account;
using mail_ui::ImapConnection;
namespace ic = imap::client;

// Every flag of every subcommand; each subcommand registers the ones it reads.
struct MailCommands::Options {
    // The account (on `mail` itself).
    std::string account_file, server, imap_host, smtp_host, imap_tls, smtp_tls, user, from, ca_file;
    std::string password_env, password_command;
    std::uint16_t imap_port = 0, smtp_port = 0;
    bool no_smtp_auth = false;
    // Messages.
    std::string mailbox = "INBOX";
    std::vector<std::uint32_t> uids;
    // Composing.
    std::vector<std::string> to, cc, bcc, attachments;
    std::string subject, body_file;
    bool all = false, attach_original = false;
    // Listing.
    std::size_t page = 1, page_size = 20;
    // save / move / delete / flag.
    std::string dest_mailbox, eml_file, attachment_dir;
    bool expunge = false;
    std::vector<std::string> set_flags, clear_flags;
    // search.
    std::string s_from, s_to, s_cc, s_subject, s_text, s_body, s_since, s_before;
    bool s_unseen = false, s_seen = false, s_flagged = false;
    bool raw = false;
    bool save_sent = true;
    // Drafts: save instead of sending; continue the draft of this UID in the Drafts mailbox.
    bool save_draft = false;
    std::uint32_t resume_uid = 0;
};

namespace {

constexpr std::size_t kMaxInputOctets = 64u << 20;  // a body or an attachment read from a file or stdin

int fail(const std::string& message, int code = 1) {
    std::cerr << "magpie mail: " << message << "\n";
    return code;
}

int fail(const Error& error) {
    return fail(error.message, error.code == Errc::invalid_argument ? 2 : 1);
}

using Options = MailCommands::Options;

// ---- input ----------------------------------------------------------------------------------------------

Result<std::string> read_stream(std::istream& in, const std::string& what) {
    std::string out;
    char buffer[65536];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        out.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (out.size() > kMaxInputOctets)
            return make_error(Errc::limit_exceeded, what + " is larger than 64 MiB");
    }
    return out;
}

Result<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(Errc::not_found, "cannot read " + path);
    return read_stream(in, path);
}

// $VISUAL or $EDITOR on a temporary file that starts as `initial`.
Result<std::string> edit(const std::string& initial) {
    const char* editor = std::getenv("VISUAL");
    if (editor == nullptr || *editor == '\0') editor = std::getenv("EDITOR");
    if (editor == nullptr || *editor == '\0')
        return make_error(Errc::invalid_argument,
                          "no body: pipe it to standard input, give --body-file, or set $EDITOR");
    const char* tmp = std::getenv("TMPDIR");
    std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/magpie-mail-XXXXXX";
    int fd = ::mkstemp(path.data());
    if (fd < 0) return make_error(Errc::io_error, "cannot create a temporary file");
    bool written = write_all(fd, initial) == 0;
    ::close(fd);
    if (!written) return make_error(Errc::io_error, "cannot write " + path);
    // The editor command may hold arguments ("code --wait"): the shell splits it; the file is "$1".
    std::string command = std::string(editor) + " \"$1\"";
    pid_t pid = ::fork();
    if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", command.c_str(), "sh", path.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ::unlink(path.c_str());
        return make_error(Errc::io_error, "the editor failed; nothing sent");
    }
    auto text = read_file(path);
    ::unlink(path.c_str());
    return text;
}

// The body a person wrote: --body-file (or "-"), else piped standard input, else the editor on `initial`.
// `quoted` is added below piped or file text (the editor shows it to edit).
Result<std::string> compose_body(const Options& o, const std::string& quoted) {
    Result<std::string> text = std::string();
    if (o.body_file == "-" || (o.body_file.empty() && !::isatty(STDIN_FILENO))) {
        text = read_stream(std::cin, "standard input");
    } else if (!o.body_file.empty()) {
        text = read_file(o.body_file);
    } else {
        return edit(quoted.empty() ? std::string() : "\n\n" + quoted);
    }
    if (!text) return text;
    if (!is_valid_utf8(*text)) return make_error(Errc::invalid_argument, "the body is not valid UTF-8");
    if (quoted.empty()) return text;
    std::string body = std::move(*text);
    if (!body.empty() && !body.ends_with('\n')) body += '\n';
    return body + "\n" + quoted;
}

// "FILE" or "FILE;type=TYPE/SUBTYPE".
Result<mail::Attachment> read_attachment(const std::string& spec) {
    std::string path = spec;
    std::string type;
    if (auto at = spec.rfind(";type="); at != std::string::npos) {
        path = spec.substr(0, at);
        type = to_lower(spec.substr(at + 6));
        MAGPIE_TRY(mail_ui::check_header_input("attachment type", type));
        if (type.find('/') == std::string::npos || type.find_first_of(" ;\"") != std::string::npos)
            return make_error(Errc::invalid_argument, "attachment type must be type/subtype: " + type);
    }
    auto data = read_file(path);
    if (!data) return data.error();
    mail::Attachment attachment;
    attachment.filename = std::filesystem::path(path).filename().string();
    MAGPIE_TRY(mail_ui::check_header_input("attachment name", attachment.filename));
    attachment.content_type = type.empty() ? mail_ui::guess_media_type(path) : type;
    attachment.data = std::move(*data);
    return attachment;
}

// ---- the account ----------------------------------------------------------------------------------------

Result<Account> account_from(const Options& o) {
    bool explicit_file = !o.account_file.empty();
    std::filesystem::path path =
        explicit_file ? std::filesystem::path(o.account_file) : mail_ui::default_account_path();
    auto account = mail_ui::load_account(path, explicit_file);
    if (!account) return account.error();
    Account a = std::move(*account);
    auto set = [](std::string& field, const std::string& value) {
        if (!value.empty()) field = value;
    };
    set(a.imap.host, o.server);
    set(a.smtp.host, o.server);
    set(a.imap.host, o.imap_host);
    set(a.smtp.host, o.smtp_host);
    set(a.user, o.user);
    set(a.address, o.from);
    set(a.ca_file, o.ca_file);
    set(a.password_env, o.password_env);
    set(a.password_command, o.password_command);
    if (o.imap_port) a.imap.port = o.imap_port;
    if (o.smtp_port) a.smtp.port = o.smtp_port;
    if (o.no_smtp_auth) a.smtp_auth = false;
    for (auto [text, endpoint] : {std::pair{&o.imap_tls, &a.imap}, std::pair{&o.smtp_tls, &a.smtp}}) {
        if (text->empty()) continue;
        auto security = mail_ui::parse_security(*text);
        if (!security) return security.error();
        endpoint->security = *security;
    }
    MAGPIE_TRY(mail_ui::finish_account(a));
    return a;
}

// ---- IMAP helpers ---------------------------------------------------------------------------------------

std::string uid_set(const std::vector<std::uint32_t>& uids) {
    std::string out;
    for (auto uid : uids) out += (out.empty() ? "" : ",") + std::to_string(uid);
    return out;
}

Result<ic::Completed> select(ImapConnection& imap, const std::string& mailbox, bool read_only) {
    ic::Command command(read_only ? "EXAMINE" : "SELECT");
    command.mailbox(mailbox);
    return imap.run(command);
}

// The whole message; `peek` leaves \Seen alone (RFC 9051 6.4.5).
Result<std::string> fetch_message(ImapConnection& imap, std::uint32_t uid, bool peek,
                                  const std::string& mailbox) {
    ic::Command command("UID FETCH");
    command.raw(std::to_string(uid)).raw(peek ? "(UID BODY.PEEK[])" : "(UID BODY[])");
    auto done = imap.run(command);
    if (!done) return done.error();
    for (const auto& u : done->untagged) {
        if (u.name != "FETCH") continue;
        auto data = ic::parse_fetch(u);
        if (!data || data->uid != uid) continue;
        auto it = data->sections.find("BODY[]");
        if (it != data->sections.end()) return it->second;
    }
    return make_error(Errc::not_found, fmt::format("no message with UID {} in {}", uid, mailbox));
}

// Runs a COPY or MOVE into `dest`, creating it when the server says TRYCREATE (RFC 9051 7.1).
Result<ic::Completed> into_mailbox(ImapConnection& imap, const char* verb, const std::string& set,
                                   const std::string& dest) {
    ic::Command command(verb);
    command.raw(set).mailbox(dest);
    auto done = imap.run(command, true);
    if (!done || done->status == ic::Status::ok) return done;
    if (done->text.code != "TRYCREATE")
        return make_error(Errc::not_found, std::string(verb) + " failed: " + done->text.text);
    ic::Command create("CREATE");
    create.mailbox(dest);
    MAGPIE_TRY(imap.run(create));
    return imap.run(command);
}

Result<void> expunge(ImapConnection& imap, const std::string& set) {
    ic::Command store("UID STORE");
    store.raw(set).raw("+FLAGS.SILENT (\\Deleted)");
    MAGPIE_TRY(imap.run(store));
    // Without UIDPLUS, EXPUNGE also removes other messages someone marked \Deleted: the only way there is.
    ic::Command expunge(imap.has_capability("UIDPLUS") ? "UID EXPUNGE" : "EXPUNGE");
    if (imap.has_capability("UIDPLUS")) expunge.raw(set);
    MAGPIE_TRY(imap.run(expunge));
    return {};
}

std::string special_mailbox(ImapConnection& imap, std::string_view attribute, const std::string& fallback) {
    ic::Command list("LIST");
    list.string("").string("*");
    auto done = imap.run(list);
    if (!done) return fallback;
    for (const auto& u : done->untagged) {
        auto entry = ic::parse_list(u);
        if (entry &&
            std::ranges::any_of(entry->attributes, [&](const auto& a) { return iequals(a, attribute); }))
            return entry->name;
    }
    return fallback;
}

std::string short_date(const std::string& date) {
    auto parsed = mail::parse_date(date);
    if (!parsed) return std::string(16, ' ');
    std::time_t local = static_cast<std::time_t>(parsed->unix_seconds + parsed->zone_minutes * 60);
    std::tm tm{};
    ::gmtime_r(&local, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M", &tm);
    return buffer;
}

std::string flag_letters(const std::vector<std::string>& flags) {
    auto has = [&](std::string_view f) {
        return std::ranges::any_of(flags, [&](const auto& x) { return iequals(x, f); });
    };
    std::string out;
    out += has("\\Seen") ? ' ' : 'N';
    out += has("\\Flagged") ? 'F' : ' ';
    out += has("\\Answered") ? 'A' : ' ';
    out += has("\\Deleted") ? 'D' : ' ';
    return out;
}

// Prints one line per message, in the order of `uids`: UID, flags, date, sender, subject, "@" for
// attachments.
Result<void> print_summaries(ImapConnection& imap, const std::vector<std::uint32_t>& uids) {
    if (uids.empty()) return {};
    ic::Command fetch("UID FETCH");
    fetch.raw(uid_set(uids)).raw("(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)");
    auto done = imap.run(fetch);
    if (!done) return done.error();
    std::map<std::uint32_t, ic::FetchData> by_uid;
    for (const auto& u : done->untagged) {
        if (u.name != "FETCH") continue;
        auto data = ic::parse_fetch(u);
        if (data && data->uid) by_uid[*data->uid] = std::move(*data);
    }
    for (auto uid : uids) {
        auto it = by_uid.find(uid);
        if (it == by_uid.end() || !it->second.envelope) continue;
        const auto& d = it->second;
        const auto& e = *d.envelope;
        std::string from =
            e.from.empty() ? "" : (e.from[0].name.empty() ? e.from[0].addr_spec() : e.from[0].name);
        bool attached = false;
        std::function<void(const ic::BodyStructure&)> scan = [&](const ic::BodyStructure& b) {
            attached = attached || b.is_attachment();
            for (const auto& c : b.children) scan(c);
        };
        if (d.body_structure) scan(*d.body_structure);
        std::cout << fmt::format("{:>6} {} {} {:<24.24} {}{}\n", uid,
                                 flag_letters(d.flags.value_or(std::vector<std::string>{})),
                                 short_date(e.date), from, e.subject, attached ? " @" : "");
    }
    return {};
}

std::vector<std::uint32_t> page_of(std::vector<std::uint32_t> uids, const Options& o) {
    std::ranges::sort(uids, std::greater<>());
    std::size_t first = (std::max<std::size_t>(o.page, 1) - 1) * o.page_size;
    if (first >= uids.size()) return {};
    std::size_t last = std::min(uids.size(), first + o.page_size);
    return std::vector<std::uint32_t>(uids.begin() + static_cast<std::ptrdiff_t>(first),
                                      uids.begin() + static_cast<std::ptrdiff_t>(last));
}

Result<std::vector<std::uint32_t>> uid_search(ImapConnection& imap, const ic::Command& command) {
    auto done = imap.run(command);
    if (!done) return done.error();
    std::vector<std::uint32_t> uids;
    for (const auto& u : done->untagged) {
        if (u.name != "SEARCH" && u.name != "ESEARCH") continue;
        auto found = ic::parse_search(u);
        if (!found) return found.error();
        uids.insert(uids.end(), found->begin(), found->end());
    }
    return uids;
}

// ---- sending ----------------------------------------------------------------------------------------------

Result<void> add_recipients(const Options& o, mail::Draft& draft) {
    for (auto [list, out, what] : {std::tuple{&o.to, &draft.to, "--to"}, std::tuple{&o.cc, &draft.cc, "--cc"},
                                   std::tuple{&o.bcc, &draft.bcc, "--bcc"}}) {
        for (const auto& text : *list) {
            auto parsed = mail_ui::parse_recipients(what, text);
            if (!parsed) return parsed.error();
            out->insert(out->end(), parsed->begin(), parsed->end());
        }
    }
    for (const auto& spec : o.attachments) {
        auto attachment = read_attachment(spec);
        if (!attachment) return attachment.error();
        draft.attachments.push_back(std::move(*attachment));
    }
    return {};
}

// What each subcommand gets: the account, the password, and an IMAP connection when it reads mail.
struct Context {
    const Options& o;
    Account account;
    std::string password;
    std::unique_ptr<ImapConnection> imap;
};

// Opens the IMAP connection when this command has none yet (sending needs it only to file copies).
Result<void> ensure_imap(Context& c) {
    if (c.imap) return {};
    auto imap = ImapConnection::open(c.account, c.password);
    if (!imap) return imap.error();
    c.imap = std::move(*imap);
    return {};
}

// APPENDs `bytes` with `flags` to `mailbox`, creating it when the server says TRYCREATE (RFC 9051 6.3.12).
Result<void> append_to(Context& c, const std::string& mailbox, std::string_view flags, const std::string& bytes) {
    MAGPIE_TRY(ensure_imap(c));
    ic::Command append("APPEND");
    append.mailbox(mailbox).raw(std::string(flags)).literal(bytes);
    auto done = c.imap->run(append, true);
    if (done && done->status != ic::Status::ok && done->text.code == "TRYCREATE") {
        ic::Command create("CREATE");
        create.mailbox(mailbox);
        if (c.imap->run(create)) done = c.imap->run(append);
    }
    if (!done) return done.error();
    if (done->status != ic::Status::ok) return make_error(Errc::unavailable, done->text.text);
    return {};
}

// Files what was sent in the Sent mailbox (the one LIST marks \Sent, RFC 6154), as every other client does.
// A failure here is a warning: the message has gone already.
void save_sent(Context& c, const std::string& bytes) {
    if (!c.o.save_sent || c.account.sent_mailbox == "none" || c.account.imap.host.empty()) return;
    if (auto opened = ensure_imap(c); !opened) {
        std::cerr << "magpie mail: sent, but not saved in Sent: " << opened.error().message << "\n";
        return;
    }
    std::string sent =
        c.account.sent_mailbox.empty() ? special_mailbox(*c.imap, "\\Sent", "Sent") : c.account.sent_mailbox;
    if (auto filed = append_to(c, sent, "(\\Seen)", bytes); !filed)
        std::cerr << "magpie mail: sent, but not saved in " << sent << ": " << filed.error().message << "\n";
}

// The Drafts mailbox: the one LIST marks \Drafts (RFC 6154), else "Drafts".
Result<std::string> drafts_mailbox(Context& c) {
    MAGPIE_TRY(ensure_imap(c));
    return special_mailbox(*c.imap, "\\Drafts", "Drafts");
}

// The draft of --resume, read from Drafts: what the person wrote before, to finish now.
Result<mail::Draft> resumed_draft(Context& c) {
    auto drafts = drafts_mailbox(c);
    if (!drafts) return drafts.error();
    if (auto r = select(*c.imap, *drafts, true); !r) return r.error();
    auto bytes = fetch_message(*c.imap, c.o.resume_uid, true, *drafts);
    if (!bytes) return bytes.error();
    return mail_ui::draft_of(mail::Message::parse(*bytes));
}

// Removes the draft --resume continued, once its successor is sent or saved. A failure is a warning.
void drop_resumed_draft(Context& c) {
    if (c.o.resume_uid == 0) return;
    auto drafts = drafts_mailbox(c);
    Result<void> dropped = drafts ? Result<void>{} : Result<void>{drafts.error()};
    if (drafts) {
        if (auto r = select(*c.imap, *drafts, false); !r) dropped = r.error();
    }
    if (dropped) dropped = expunge(*c.imap, std::to_string(c.o.resume_uid));
    if (!dropped)
        std::cerr << "magpie mail: the old draft (UID " << c.o.resume_uid << ") stays: " << dropped.error().message
                  << "\n";
}

// Saves the message in Drafts (flagged \Draft, RFC 9051 2.3.2) instead of sending it, Bcc included: it is
// the person's own copy. Prints the mailbox; `send --resume UID` continues it.
int store_draft(Context& c, mail::Draft& draft) {
    const Account& account = c.account;
    draft.from = mail::MailboxSpec{account.name, account.address};
    auto env = mail::system_build_env(account.address.substr(account.address.rfind('@') + 1));
    mail::BuildOptions with_bcc;
    with_bcc.write_bcc = true;
    auto bytes = mail::build_message(draft, with_bcc, env);
    if (!bytes) return fail(bytes.error());
    auto drafts = drafts_mailbox(c);
    if (!drafts) return fail(drafts.error());
    if (auto saved = append_to(c, *drafts, "(\\Draft \\Seen)", *bytes); !saved) return fail(saved.error());
    std::cout << "saved as a draft in " << *drafts << "\n";
    drop_resumed_draft(c);
    return 0;
}

// Builds and submits; prints each recipient's answer, then files a copy in Sent. 0 when every recipient was
// accepted.
int send_draft(Context& c, mail::Draft& draft) {
    const Account& account = c.account;
    draft.from = mail::MailboxSpec{account.name, account.address};
    if (draft.to.empty() && draft.cc.empty() && draft.bcc.empty()) return fail("no recipients", 2);
    auto env = mail::system_build_env(account.address.substr(account.address.rfind('@') + 1));
    // One Message-ID and Date for what goes out and the copy filed in Sent, which alone names the Bcc
    // recipients (RFC 5322 3.6.3).
    if (draft.message_id.empty()) draft.message_id = mail::generate_message_id(env);
    if (!draft.date) draft.date = env.now;
    auto bytes = mail::build_message(draft, mail::BuildOptions{}, env);
    if (!bytes) return fail(bytes.error());
    mail::BuildOptions with_bcc;
    with_bcc.write_bcc = true;
    auto filed = draft.bcc.empty() ? bytes : mail::build_message(draft, with_bcc, env);
    if (!filed) return fail(filed.error());
    smtp::OutgoingMessage message;
    message.id = "1";
    message.reverse_path = account.address;
    for (const auto& r : mail::envelope_recipients(draft))
        message.recipients.push_back(smtp::OutgoingRecipient{r, "", ""});
    message.data = std::move(*bytes);
    const std::string copy = std::move(*filed);
    auto results = mail_ui::submit_message(account, c.password, std::move(message));
    if (!results) return fail(results.error());
    bool all_accepted = true;
    for (const auto& r : *results) {
        bool ok = r.outcome == smtp::Outcome::delivered;
        all_accepted = all_accepted && ok;
        std::cout << (ok ? "accepted " : "refused ") << r.address;
        if (!ok)
            std::cout << ": " << (r.code ? std::to_string(r.code) + " " : "") << r.enhanced << " " << r.text;
        std::cout << "\n";
    }
    if (std::ranges::any_of(*results, [](const auto& r) { return r.outcome == smtp::Outcome::delivered; }))
        save_sent(c, copy);
    return all_accepted ? 0 : 1;
}

// Sends the message, or with --draft saves it in Drafts; a resumed draft goes once its successor is out.
int finish(Context& c, mail::Draft& draft) {
    if (c.o.save_draft) return store_draft(c, draft);
    int sent = send_draft(c, draft);
    if (sent == 0) drop_resumed_draft(c);
    return sent;
}

// ---- subcommands
// --------------------------------------------------------------------------------------------

int cmd_send(Context& c) {
    mail::Draft draft;
    if (c.o.resume_uid != 0) {
        auto resumed = resumed_draft(c);
        if (!resumed) return fail(resumed.error());
        draft = std::move(*resumed);
    }
    if (auto r = mail_ui::check_header_input("subject", c.o.subject); !r) return fail(r.error());
    if (c.o.resume_uid == 0 || !c.o.subject.empty()) draft.subject = c.o.subject;
    if (auto r = add_recipients(c.o, draft); !r) return fail(r.error());
    // A resumed draft keeps its text unless new text is given; the editor starts from it.
    const bool given = !c.o.body_file.empty() || !::isatty(STDIN_FILENO);
    auto body = c.o.resume_uid != 0 && !given ? edit(draft.text.value_or("")) : compose_body(c.o, "");
    if (!body) return fail(body.error());
    draft.text = std::move(*body);
    return finish(c, draft);
}

int cmd_list(Context& c) {
    if (auto r = select(*c.imap, c.o.mailbox, true); !r) return fail(r.error());
    auto uids = uid_search(*c.imap, ic::Command("UID SEARCH").raw("ALL"));
    if (!uids) return fail(uids.error());
    auto page = page_of(*uids, c.o);
    std::cout << fmt::format("{}: {} messages, page {} of {}\n", c.o.mailbox, uids->size(), c.o.page,
                             std::max<std::size_t>(1, (uids->size() + c.o.page_size - 1) / c.o.page_size));
    auto printed = print_summaries(*c.imap, page);
    return printed ? 0 : fail(printed.error());
}

int cmd_read(Context& c) {
    if (auto r = select(*c.imap, c.o.mailbox, false); !r) return fail(r.error());
    auto bytes = fetch_message(*c.imap, c.o.uids.front(), false, c.o.mailbox);
    if (!bytes) return fail(bytes.error());
    if (c.o.raw) return write_all(STDOUT_FILENO, *bytes) == 0 ? 0 : 1;
    auto message = mail::Message::parse(*bytes);
    auto r = mail_ui::readable(message);
    std::cout << "From: " << r.from << "\nTo: " << r.to << "\n";
    if (!r.cc.empty()) std::cout << "Cc: " << r.cc << "\n";
    std::cout << "Date: " << r.date << "\nSubject: " << r.subject << "\n\n" << r.text;
    if (!r.text.empty() && !r.text.ends_with('\n')) std::cout << "\n";
    if (!r.attachments.empty()) std::cout << "\nAttachments:\n";
    for (std::size_t i = 0; i < r.attachments.size(); ++i) {
        const auto& a = r.attachments[i];
        std::cout << fmt::format("  {}. {} ({}, {} bytes)\n", i + 1, a.filename, a.content_type, a.size);
    }
    return 0;
}

int cmd_reply(Context& c) {
    if (auto r = select(*c.imap, c.o.mailbox, false); !r) return fail(r.error());
    const auto uid = c.o.uids.front();
    auto bytes = fetch_message(*c.imap, uid, true, c.o.mailbox);
    if (!bytes) return fail(bytes.error());
    auto original = mail_ui::original_of(mail::Message::parse(*bytes));
    mail::Draft draft;
    mail_ui::address_reply(original, c.o.all, c.account.address, draft);
    if (auto r = add_recipients(c.o, draft); !r) return fail(r.error());
    auto body = compose_body(c.o, mail_ui::quote(original));
    if (!body) return fail(body.error());
    draft.text = std::move(*body);
    int sent = finish(c, draft);
    if (sent == 0 && !c.o.save_draft) {
        // RFC 9051 2.3.2: \Answered tells every client this message got its reply.
        ic::Command store("UID STORE");
        store.raw(std::to_string(uid)).raw("+FLAGS.SILENT (\\Answered)");
        (void)c.imap->run(store);
    }
    return sent;
}

int cmd_forward(Context& c) {
    if (auto r = select(*c.imap, c.o.mailbox, true); !r) return fail(r.error());
    auto bytes = fetch_message(*c.imap, c.o.uids.front(), true, c.o.mailbox);
    if (!bytes) return fail(bytes.error());
    auto message = mail::Message::parse(*bytes);
    auto original = mail_ui::original_of(message);
    mail::Draft draft;
    draft.subject = mail_ui::forward_subject(original.subject);
    // A forward is not a reply, but References lets threading clients place it (RFC 5322 3.6.4).
    draft.references = original.references;
    if (!original.message_id.empty())
        draft.references += (draft.references.empty() ? "" : " ") + original.message_id;
    if (auto r = add_recipients(c.o, draft); !r) return fail(r.error());
    std::string below;
    if (c.o.attach_original) {
        mail::Attachment enclosed;
        enclosed.filename =
            mail_ui::safe_filename(original.subject.empty() ? "message" : original.subject) + ".eml";
        enclosed.content_type = "message/rfc822";
        enclosed.data = *bytes;
        draft.attachments.push_back(std::move(enclosed));
    } else {
        below = mail_ui::forward_block(original);
        for (const auto& a : mail_ui::readable(message).attachments) {
            const auto& part = message.parts()[a.part];
            mail::Attachment copy;
            copy.filename = a.filename;
            copy.content_type = a.content_type;
            copy.data = mail::decode_body(message, part);
            draft.attachments.push_back(std::move(copy));
        }
    }
    auto body = compose_body(c.o, below);
    if (!body) return fail(body.error());
    draft.text = std::move(*body);
    return finish(c, draft);
}

Result<void> save_attachments(const std::string& bytes, const std::string& dir) {
    auto message = mail::Message::parse(bytes);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    for (const auto& a : mail_ui::readable(message).attachments) {
        std::string name = mail_ui::safe_filename(a.filename);
        std::filesystem::path path = std::filesystem::path(dir) / name;
        for (int n = 2; std::filesystem::exists(path, ec); ++n)
            path = std::filesystem::path(dir) / fmt::format("{} ({}){}",
                                                            std::filesystem::path(name).stem().string(), n,
                                                            std::filesystem::path(name).extension().string());
        MAGPIE_TRY(write_file_durably(path, mail::decode_body(message, message.parts()[a.part]), 0644));
        std::cout << "saved " << path.string() << "\n";
    }
    return {};
}

int cmd_save(Context& c) {
    const bool to_mailbox = !c.o.dest_mailbox.empty();
    if (to_mailbox + !c.o.eml_file.empty() + !c.o.attachment_dir.empty() != 1)
        return fail("say where: --to-mailbox NAME, --eml FILE or --attachments DIR", 2);
    if (auto r = select(*c.imap, c.o.mailbox, !to_mailbox); !r) return fail(r.error());
    if (to_mailbox) {
        auto copied = into_mailbox(*c.imap, "UID COPY", uid_set(c.o.uids), c.o.dest_mailbox);
        return copied ? 0 : fail(copied.error());
    }
    for (auto uid : c.o.uids) {
        auto bytes = fetch_message(*c.imap, uid, true, c.o.mailbox);
        if (!bytes) return fail(bytes.error());
        Result<void> saved = c.o.eml_file.empty() ? save_attachments(*bytes, c.o.attachment_dir)
                                                  : write_file_durably(c.o.eml_file, *bytes, 0644);
        if (!saved) return fail(saved.error());
    }
    return 0;
}

Result<void> move_messages(ImapConnection& imap, const std::string& set, const std::string& dest) {
    if (imap.has_capability("MOVE")) {
        MAGPIE_TRY(into_mailbox(imap, "UID MOVE", set, dest));
        return {};
    }
    MAGPIE_TRY(into_mailbox(imap, "UID COPY", set, dest));
    return expunge(imap, set);
}

int cmd_move(Context& c) {
    if (auto r = select(*c.imap, c.o.mailbox, false); !r) return fail(r.error());
    auto moved = move_messages(*c.imap, uid_set(c.o.uids), c.o.dest_mailbox);
    return moved ? 0 : fail(moved.error());
}

int cmd_delete(Context& c) {
    if (auto r = select(*c.imap, c.o.mailbox, false); !r) return fail(r.error());
    std::string trash = c.account.trash_mailbox.empty() ? special_mailbox(*c.imap, "\\Trash", "Trash")
                                                        : c.account.trash_mailbox;
    const std::string set = uid_set(c.o.uids);
    auto done =
        c.o.expunge || c.o.mailbox == trash ? expunge(*c.imap, set) : move_messages(*c.imap, set, trash);
    return done ? 0 : fail(done.error());
}

// "seen" or "\Seen" for the system flags (RFC 9051 2.3.2); anything else must be a keyword atom.
Result<std::string> flag_name(const std::string& text) {
    static const char* system[] = {"Seen", "Answered", "Flagged", "Deleted", "Draft"};
    std::string bare = text.starts_with('\\') ? text.substr(1) : text;
    for (const char* name : system)
        if (iequals(bare, name)) return std::string("\\") + name;
    if (text.starts_with('\\') || !ic::is_astring_atom(text) || text.find_first_of("[]") != std::string::npos)
        return make_error(Errc::invalid_argument, "not a flag: " + text);
    return text;
}

int cmd_flag(Context& c) {
    if (c.o.set_flags.empty() && c.o.clear_flags.empty()) return fail("give --set FLAG or --clear FLAG", 2);
    if (auto r = select(*c.imap, c.o.mailbox, false); !r) return fail(r.error());
    const std::string set = uid_set(c.o.uids);
    for (auto [flags, op] :
         {std::pair{&c.o.set_flags, "+FLAGS.SILENT"}, std::pair{&c.o.clear_flags, "-FLAGS.SILENT"}}) {
        if (flags->empty()) continue;
        std::string list;
        for (const auto& f : *flags) {
            auto name = flag_name(f);
            if (!name) return fail(name.error());
            list += (list.empty() ? "" : " ") + *name;
        }
        ic::Command store("UID STORE");
        store.raw(set).raw(op).raw("(" + list + ")");
        if (auto r = c.imap->run(store); !r) return fail(r.error());
    }
    auto printed = print_summaries(*c.imap, c.o.uids);
    return printed ? 0 : fail(printed.error());
}

// "2024-01-31" to IMAP's date "31-Jan-2024" (RFC 9051 9, date).
Result<std::string> imap_date(const std::string& text) {
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int y = 0, m = 0, d = 0;
    char extra = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || m < 1 || m > 12 || d < 1 ||
        d > 31)
        return make_error(Errc::invalid_argument, "dates are YYYY-MM-DD, not " + text);
    return fmt::format("{}-{}-{}", d, months[m - 1], y);
}

Result<ic::Command> search_command(const Options& o) {
    ic::Command command("UID SEARCH");
    bool utf8 = false;
    for (const auto* s : {&o.s_from, &o.s_to, &o.s_cc, &o.s_subject, &o.s_text, &o.s_body})
        utf8 = utf8 || !is_ascii(*s);
    if (utf8) command.raw("CHARSET UTF-8");
    for (auto [key, value] :
         {std::pair{"FROM", &o.s_from}, std::pair{"TO", &o.s_to}, std::pair{"CC", &o.s_cc},
          std::pair{"SUBJECT", &o.s_subject}, std::pair{"TEXT", &o.s_text}, std::pair{"BODY", &o.s_body}}) {
        if (value->empty()) continue;
        if (!is_valid_utf8(*value))
            return make_error(Errc::invalid_argument, std::string(key) + " is not valid UTF-8");
        command.raw(key).string(*value);
    }
    for (auto [key, value] : {std::pair{"SINCE", &o.s_since}, std::pair{"BEFORE", &o.s_before}}) {
        if (value->empty()) continue;
        auto date = imap_date(*value);
        if (!date) return date.error();
        command.raw(key).raw(*date);
    }
    if (o.s_unseen) command.raw("UNSEEN");
    if (o.s_seen) command.raw("SEEN");
    if (o.s_flagged) command.raw("FLAGGED");
    command.raw("NOT DELETED");
    return command;
}

int cmd_search(Context& c) {
    auto command = search_command(c.o);
    if (!command) return fail(command.error());
    if (auto r = select(*c.imap, c.o.mailbox, true); !r) return fail(r.error());
    auto uids = uid_search(*c.imap, *command);
    if (!uids) return fail(uids.error());
    std::cout << fmt::format("{}: {} found\n", c.o.mailbox, uids->size());
    auto printed = print_summaries(*c.imap, page_of(*uids, c.o));
    return printed ? 0 : fail(printed.error());
}

int cmd_mailboxes(Context& c) {
    ic::Command list("LIST");
    list.string("").string("*");
    auto done = c.imap->run(list);
    if (!done) return fail(done.error());
    for (const auto& u : done->untagged) {
        auto entry = ic::parse_list(u);
        if (!entry) continue;
        std::string attributes;
        for (const auto& a : entry->attributes) attributes += " " + a;
        std::cout << entry->name << (attributes.empty() ? "" : " (" + attributes.substr(1) + ")") << "\n";
    }
    return 0;
}

// ---- the table
// ----------------------------------------------------------------------------------------------

enum Needs : unsigned { kUids = 1, kOneUid = 2, kCompose = 4, kMailbox = 8, kPaging = 16, kImap = 32 };

struct Verb {
    const char* name;
    const char* help;
    unsigned needs;
    int (*run)(Context&);
    void (*options)(CLI::App&, Options&);
};

void no_options(CLI::App&, Options&) {}

const Verb kVerbs[] = {
    {"send", "send a message (body from stdin, --body-file or $EDITOR)", kCompose, cmd_send,
     [](CLI::App& a, Options& o) {
         a.add_option("-s,--subject", o.subject, "the subject");
         a.add_option("--resume", o.resume_uid,
                      "continue the draft of this UID in Drafts (its recipients, text and attachments), then "
                      "send it or, with --draft, save it again; the old draft goes")
             ->check(CLI::Range(1u, 4294967295u));
     }},
    {"list", "list a mailbox, newest first, a page at a time", kMailbox | kPaging | kImap, cmd_list,
     no_options},
    {"read", "show a message: its text (HTML rendered) and its attachments", kOneUid | kMailbox | kImap,
     cmd_read,
     [](CLI::App& a, Options& o) { a.add_flag("--raw", o.raw, "the message as stored, unchanged"); }},
    {"reply", "reply to a message, quoting it", kOneUid | kMailbox | kCompose | kImap, cmd_reply,
     [](CLI::App& a, Options& o) {
         a.add_flag("--all", o.all, "also to everyone the original went to (Cc)");
     }},
    {"forward", "forward a message inline, or with --attach as message/rfc822",
     kOneUid | kMailbox | kCompose | kImap, cmd_forward,
     [](CLI::App& a, Options& o) {
         a.add_flag("--attach", o.attach_original, "enclose the original as an attachment");
     }},
    {"save", "copy messages to a mailbox, or write one as .eml, or its attachments to files",
     kUids | kMailbox | kImap, cmd_save,
     [](CLI::App& a, Options& o) {
         a.add_option("--to-mailbox", o.dest_mailbox, "copy into this mailbox (created when missing)");
         a.add_option("--eml", o.eml_file, "write the message to this file");
         a.add_option("--attachments", o.attachment_dir, "write the attachments into this directory");
     }},
    {"move", "move messages to another mailbox", kUids | kMailbox | kImap, cmd_move,
     [](CLI::App& a, Options& o) {
         a.add_option("--to", o.dest_mailbox, "the destination mailbox")->required();
     }},
    {"delete", "move messages to Trash, or with --expunge remove them for good", kUids | kMailbox | kImap,
     cmd_delete,
     [](CLI::App& a, Options& o) {
         a.add_flag("--expunge", o.expunge, "remove at once instead of moving to Trash");
     }},
    {"flag", "set or clear flags (seen, flagged, answered, draft, deleted, or a keyword)",
     kUids | kMailbox | kImap, cmd_flag,
     [](CLI::App& a, Options& o) {
         a.add_option("--set", o.set_flags, "flags to set");
         a.add_option("--clear", o.clear_flags, "flags to clear");
     }},
    {"search", "find messages (criteria are ANDed)", kMailbox | kPaging | kImap, cmd_search,
     [](CLI::App& a, Options& o) {
         a.add_option("--from", o.s_from, "in From");
         a.add_option("--to", o.s_to, "in To");
         a.add_option("--cc", o.s_cc, "in Cc");
         a.add_option("--subject", o.s_subject, "in Subject");
         a.add_option("--text", o.s_text, "anywhere in the header or body");
         a.add_option("--body", o.s_body, "in the body");
         a.add_option("--since", o.s_since, "YYYY-MM-DD");
         a.add_option("--before", o.s_before, "YYYY-MM-DD");
         a.add_flag("--unseen", o.s_unseen, "not read yet");
         a.add_flag("--seen", o.s_seen, "read");
         a.add_flag("--flagged", o.s_flagged, "flagged");
     }},
    {"mailboxes", "list the mailboxes", kImap, cmd_mailboxes, no_options},
};

void add_account_options(CLI::App& mail, Options& o) {
    mail.add_option("--account", o.account_file, "account file (default ~/.config/magpie/mail.toml)");
    mail.add_option("--server", o.server, "IMAP and SMTP host");
    mail.add_option("--imap-host", o.imap_host, "the IMAP server (overrides --server)");
    mail.add_option("--imap-port", o.imap_port, "default 993 (implicit TLS) or 143");
    mail.add_option("--imap-tls", o.imap_tls, "implicit, starttls or plain (loopback only)");
    mail.add_option("--smtp-host", o.smtp_host, "the submission server (overrides --server)");
    mail.add_option("--smtp-port", o.smtp_port, "default 465 (implicit TLS) or 587");
    mail.add_option("--smtp-tls", o.smtp_tls, "implicit, starttls or plain (loopback only)");
    mail.add_flag("--no-smtp-auth", o.no_smtp_auth, "submit without AUTH");
    mail.add_option("--user", o.user, "login name (default: the address)");
    mail.add_option("--from", o.from, "your address, \"Name <local@domain>\"");
    mail.add_option("--ca-file", o.ca_file, "trust the CAs in this PEM file");
    mail.add_option("--password-env", o.password_env, "read the password from this environment variable");
    mail.add_option("--password-command", o.password_command,
                    "run this command; its first line is the password");
}

void add_verb_options(CLI::App& sub, const Verb& verb, Options& o) {
    if (verb.needs & (kUids | kOneUid)) {
        auto* uids = sub.add_option("uid", o.uids, "message UID(s), as `list` shows them")->required();
        if (verb.needs & kOneUid) uids->expected(1);
    }
    if (verb.needs & kMailbox) sub.add_option("-m,--mailbox", o.mailbox, "the mailbox (default INBOX)");
    if (verb.needs & kPaging) {
        sub.add_option("--page", o.page, "page number, 1 = newest")->check(CLI::Range(1, 1000000));
        sub.add_option("--page-size", o.page_size, "messages per page")->check(CLI::Range(1, 10000));
    }
    if (verb.needs & kCompose) {
        sub.add_option("--to", o.to, "recipients (repeat, or a comma-separated list)");
        sub.add_option("--cc", o.cc, "copies (repeat, or a list)");
        sub.add_option("--bcc", o.bcc, "blind copies: delivered, named only in your Sent copy");
        sub.add_option("-a,--attachment", o.attachments, "a file to attach: FILE or FILE;type=TYPE/SUBTYPE");
        sub.add_option("--body-file", o.body_file, "the body from this file (- for stdin)");
        sub.add_flag("!--no-save-sent", o.save_sent, "do not file a copy in the Sent mailbox");
        sub.add_flag("--draft", o.save_draft, "save it in Drafts instead of sending (send --resume continues it)");
    }
    verb.options(sub, o);
}

}  // namespace

MailCommands::MailCommands(CLI::App& app) : options_(std::make_unique<Options>()) {
    mail_ = app.add_subcommand("mail", "read and send mail over IMAP and SMTP, with any server");
    mail_->require_subcommand(1);
    add_account_options(*mail_, *options_);
    for (const auto& verb : kVerbs)
        add_verb_options(*mail_->add_subcommand(verb.name, verb.help), verb, *options_);
}

MailCommands::~MailCommands() = default;

int MailCommands::run() {
    const Verb* verb = nullptr;
    for (const auto& v : kVerbs)
        if (mail_->get_subcommand(v.name)->parsed()) verb = &v;
    if (verb == nullptr) return fail("no subcommand", 2);
    auto account = account_from(*options_);
    if (!account) return fail(account.error());
    if ((verb->needs & kImap) && account->imap.host.empty())
        return fail("no IMAP server: set [imap] host or --server", 2);
    const bool drafts = options_->save_draft || options_->resume_uid != 0;
    if ((verb->needs & kCompose) && account->smtp.host.empty() && !options_->save_draft)
        return fail("no SMTP server: set [smtp] host or --server", 2);
    if (drafts && account->imap.host.empty()) return fail("no IMAP server for Drafts: set [imap] host or --server", 2);
    Context context{*options_, std::move(*account), {}, nullptr};
    const bool saves_sent = (verb->needs & kCompose) && options_->save_sent &&
                            !context.account.imap.host.empty() && context.account.sent_mailbox != "none";
    const bool needs_password = (verb->needs & kImap) || context.account.smtp_auth || saves_sent || drafts;
    if (needs_password) {
        auto password = mail_ui::obtain_password(context.account);
        if (!password) return fail(password.error());
        context.password = std::move(*password);
    }
    if (verb->needs & kImap) {
        auto imap = ImapConnection::open(context.account, context.password);
        if (!imap) return fail(imap.error());
        context.imap = std::move(*imap);
    }
    int code = verb->run(context);
    if (context.imap) context.imap->logout();
    return code;
}

}  // namespace magpie::cli
