#include "mail/auto_reply.h"

#include <algorithm>
#include <array>

#include "base/strings.h"

namespace magpie::mail {
namespace {

constexpr std::array kListFields = {"List-Id",   "List-Help",   "List-Unsubscribe", "List-Subscribe",
                                    "List-Post", "List-Owner",  "List-Archive"};
constexpr std::array kRecipientFields = {"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"};

// RFC 3834 2 names these local parts as ones a responder must not answer.
bool automatic_sender(std::string_view reverse_path) {
    const std::string local = to_lower(reverse_path.substr(0, reverse_path.rfind('@')));
    return local == "mailer-daemon" || local == "postmaster" || local == "listserv" || local == "majordomo" ||
           local.starts_with("owner-") || local.ends_with("-request") || local.ends_with("-owner") ||
           local.starts_with("bounce") || local == "noreply" || local == "no-reply";
}

}  // namespace

bool may_auto_reply(const Message& message, std::string_view reverse_path, const std::vector<std::string>& recipients) {
    if (reverse_path.empty() || reverse_path.find('@') == std::string_view::npos || automatic_sender(reverse_path)) {
        return false;
    }
    const Header header = message.header();
    if (const auto* auto_submitted = header.find("Auto-Submitted")) {
        std::string value = to_lower(trim(auto_submitted->unfolded()));
        if (value.substr(0, value.find_first_of(" \t(;")) != "no") return false;
    }
    if (const auto* precedence = header.find("Precedence")) {
        std::string value = to_lower(trim(precedence->unfolded()));
        if (value == "bulk" || value == "list" || value == "junk") return false;
    }
    for (const char* name : kListFields) {
        if (header.find(name) != nullptr) return false;
    }
    for (const char* name : kRecipientFields) {
        for (const auto* field : header.find_all(name)) {
            const std::string value = to_lower(field->unfolded());
            for (const auto& address : recipients) {
                if (!address.empty() && value.find(to_lower(address)) != std::string::npos) return true;
            }
        }
    }
    return false;
}

Draft auto_reply_draft(const Message& original, const AutoReplyText& reply) {
    Draft draft;
    draft.from = reply.from;
    draft.to = {MailboxSpec{"", reply.to}};
    const Header header = original.header();
    draft.subject = reply.subject ? *reply.subject : "Auto: " + header.decoded("Subject");
    const std::string message_id(trim(header.value("Message-ID")));
    if (!message_id.empty()) {
        draft.in_reply_to = message_id;
        const std::string references(trim(header.value("References")));
        draft.references = references.empty() ? message_id : references + " " + message_id;
    }
    draft.text = reply.text;
    draft.html = reply.html;
    if (!draft.text && !draft.html) draft.text = "";
    draft.extra_fields.emplace_back("Auto-Submitted", "auto-replied");
    return draft;
}

bool vacation_active(bool enabled, std::optional<std::int64_t> from, std::optional<std::int64_t> to, std::int64_t now) {
    return enabled && (!from || *from <= now) && (!to || now < *to);
}

std::size_t json_string_octets(std::string_view text) {
    std::size_t octets = 2;
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        octets += u == '"' || u == '\\' ? 2 : u < 0x20 ? 6 : u >= 0x80 ? 3 : 1;
    }
    return octets;
}

bool note_replied(std::vector<std::string>& replied, std::string_view sender, std::size_t max_senders,
                  std::size_t max_octets) {
    if (std::ranges::any_of(replied, [&](const std::string& s) { return iequals(s, sender); })) return false;
    if (max_senders == 0) return true;
    // The array's brackets, and each element with its comma.
    std::size_t octets = 2 + json_string_octets(sender) + 1;
    for (const auto& s : replied) octets += json_string_octets(s) + 1;
    std::size_t forget = 0;
    while (forget < replied.size() && (replied.size() - forget >= max_senders || octets > max_octets)) {
        octets -= json_string_octets(replied[forget]) + 1;
        ++forget;
    }
    replied.erase(replied.begin(), replied.begin() + static_cast<std::ptrdiff_t>(forget));
    if (octets > max_octets) return true;  // this sender alone is over the bound: answered, not remembered
    replied.emplace_back(sender);
    return true;
}

}  // namespace magpie::mail
