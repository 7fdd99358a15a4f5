// TCP keepalive for accepted connections. NATs and mobile carriers drop a silent TCP flow after 5 to 15
// minutes (an IMAP IDLE that waits for mail, an SMTP client waiting on a slow store), and neither side
// learns of it; probes every few minutes keep the mapping alive and detect a peer that is gone. The
// kernel's default (first probe after 2 hours) is far too late, so the timings are set on each listening
// socket: Linux copies a listener's socket options into every socket it accepts (SO_KEEPALIVE, the
// TCP_KEEP* timings, TCP_NODELAY), one set of system calls per listener instead of five per connection
// (issue 17: a connection per message under smtp-source).
#pragma once

#include <chrono>

#include "base/result.h"
#include "net/asio.h"

namespace magpie::net {

struct KeepAlive {
    std::chrono::seconds idle{120};     // silence before the first probe (TCP_KEEPIDLE); below NAT timeouts
    std::chrono::seconds interval{30};  // between unanswered probes (TCP_KEEPINTVL)
    int probes = 4;                     // unanswered probes before the kernel resets (TCP_KEEPCNT)
};

// Sets SO_KEEPALIVE and the three timings on a socket (`fd`: a listening one, or one connected). Errors:
// io_error naming the option.
Result<void> enable_keepalive(int fd, const KeepAlive& options);

}  // namespace magpie::net
