#include <fmt/format.h>

#include "base/time.h"
#include "smtp/path.h"
#include "smtp/server_session.h"

namespace magpie::smtp {
namespace {

// Keeps a peer-chosen string inside a comment: no parentheses, backslashes or non-printables.
std::string comment_safe(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 255)) {
        auto u = static_cast<unsigned char>(c);
        bool ok = u > 0x20 && u < 0x7f && c != '(' && c != ')' && c != '\\';
        out.push_back(ok ? c : '?');
    }
    return out;
}

// The queue id is an Atom in the "id" clause (RFC 5321 4.4).
std::string atom_safe(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 100)) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == '_';
        out.push_back(ok ? c : '_');
    }
    return out;
}

}  // namespace

std::string received_header(const Envelope& envelope, std::string_view peer_ip,
                            std::string_view server_hostname, std::string_view queue_id,
                            std::int64_t unix_time) {
    // RFC 5321 4.4 TCP-info is an address literal: [192.0.2.1] or [IPv6:2001:db8::1].
    std::string peer = peer_ip.find(':') != std::string_view::npos ? fmt::format("[IPv6:{}]", peer_ip)
                                                                   : fmt::format("[{}]", peer_ip);
    // From-domain must be a Domain or an address literal; anything else the client said goes in a comment.
    const std::string& helo = envelope.helo;
    bool helo_ok = is_valid_domain(helo, false) || is_valid_address_literal(helo);
    std::string from = helo_ok ? fmt::format("{} ({})", helo, peer)
                               : fmt::format("unknown ({} helo={})", peer, comment_safe(helo));
    // RFC 3848 / RFC 6531 4.3 protocol names.
    std::string protocol;
    if (!envelope.esmtp) {
        protocol = "SMTP";
    } else if (envelope.smtputf8) {
        protocol = envelope.tls ? "UTF8SMTPS" : "UTF8SMTP";
    } else {
        protocol = envelope.tls ? "ESMTPS" : "ESMTP";
    }
    // RFC 3848: "A" for an authenticated client; the user goes in a comment (never anything secret).
    std::string authenticated;
    if (!envelope.auth_user.empty() && envelope.esmtp) {
        protocol += "A";
        authenticated = fmt::format(" (authenticated as {})", comment_safe(envelope.auth_user));
    }
    std::string header = fmt::format("Received: from {}\r\n\tby {} (Magpie) with {}{} id {}", from,
                                     server_hostname, protocol, authenticated, atom_safe(queue_id));
    // Naming the recipient only when there is one keeps other recipients private (as Postfix does).
    if (envelope.recipients.size() == 1)
        header += fmt::format("\r\n\tfor <{}>", envelope.recipients[0].address);
    header += fmt::format(";\r\n\t{}\r\n", rfc5322_date(unix_time));
    return header;
}

}  // namespace magpie::smtp
