#include "delivery/tracker.h"

#include <fmt/format.h>

#include "base/strings.h"
#include "base/time.h"

namespace magpie::delivery {
namespace {

// RFC 5322 dates, UTC: what the reports and the mail headers show too.
std::string when(std::int64_t unix_seconds) {
    return unix_seconds <= 0 ? "-" : rfc5322_date(unix_seconds);
}

std::string sender(const QueueEntry& e) {
    return e.reverse_path.empty() ? "<> (a report)" : "<" + e.reverse_path + ">";
}

}  // namespace

std::string format_list(const std::vector<QueueEntry>& entries) {
    std::string out;
    for (const auto& e : entries) {
        out += fmt::format("{} {} {} octets from {}{}\n", e.id, when(e.queued_at), e.size, sender(e),
                           e.held ? " HELD" : "");
        for (const auto& r : e.recipients) {
            out += fmt::format("    {} {}", r.address, state_name(r.state));
            if (r.state == RecipientState::deferred)
                out += fmt::format(" (next {})", when(r.next_attempt_at));
            if (!r.last_reply.empty()) out += ": " + r.last_reply;
            out += "\n";
        }
    }
    return out;
}

std::string format_entry(const QueueEntry& e) {
    std::string out = fmt::format("entry {}\nfrom {}\nqueued {}\nsize {} octets\n", e.id, sender(e),
                                  when(e.queued_at), e.size);
    if (e.held) out += "held: not attempted until released\n";
    if (!e.dsn_envid.empty() || !e.dsn_ret.empty())
        out += fmt::format("dsn ret={} envid={}\n", e.dsn_ret, e.dsn_envid);
    for (const auto& r : e.recipients) {
        out += fmt::format("\nrecipient {}: {}", r.address, state_name(r.state));
        if (!r.status.empty()) out += " " + r.status;
        if (r.state == RecipientState::deferred || r.state == RecipientState::queued)
            out += fmt::format(", next attempt {}", when(r.next_attempt_at));
        out += "\n";
        if (!r.notify.empty()) out += fmt::format("  notify {}\n", r.notify);
        for (std::size_t i = 0; i < r.attempts.size(); ++i) {
            const auto& a = r.attempts[i];
            out +=
                fmt::format("  attempt {} at {}: host {}{}, {}, connection {}\n    reply: {}\n", i + 1,
                            when(a.at), a.host, a.address.empty() ? "" : " [" + a.address + "]",
                            a.tls.empty() ? (a.address.empty() ? "no connection" : "no TLS") : "TLS " + a.tls,
                            a.connection.empty() ? "-" : a.connection, a.reply);
        }
        if (!r.attempts.empty() && !r.attempts.back().transcript.empty()) {
            out += "  last conversation:\n";
            for (auto line : split(r.attempts.back().transcript, '\n')) {
                if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
                if (!line.empty()) out += fmt::format("    {}\n", line);
            }
        }
    }
    return out;
}

}  // namespace magpie::delivery
