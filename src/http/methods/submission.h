// EmailSubmission (RFC 8621 7): sending an Email through the same checks and queue as SMTP submission. The
// methods check what SMTP submission's session checks (the author in Sender:/From: and the envelope sender
// must be the user's address or an alias: forbiddenFrom, forbiddenMailFrom), then hand the bytes to a
// Submitter, which the server wires to its one outgoing path (delivery/outgoing.h: completion, Received,
// DKIM; local recipients to their INBOX and the rest into the store's queue, in one transaction). The
// EmailSubmission record is a JMAP object in the store ("s" + its id); its deliveryStatus is read from the
// queue entry at each /get (the delivery tracker's record), so a user sees delivered, deferred with the
// remote reply, or failed, per recipient. Sending is immediate: undoStatus is "final".
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "http/api.h"
#include "store/store.h"

namespace magpie::http {

struct OutgoingSubmission {
    std::string message;  // the Email's RFC 5322 bytes
    std::string mail_from;
    std::vector<std::string> rcpt_to;
};

struct SubmissionOutcome {
    std::int64_t queue_id = 0;        // 0 when every recipient was local
    std::vector<std::string> local;   // recipients delivered to local mailboxes
};

// Hands one prepared message to the group committer and calls `done` once with the outcome when it is durable
// (or failed), from any thread; it never waits itself.
using SubmissionSend = std::function<void(std::function<void(Result<SubmissionOutcome>)> done)>;
// Prepares one message for sending (store look-ups, completion, DKIM: on the calling thread) and returns how to
// send it; invalid_argument when the message cannot be completed (RFC 6409 8), with the reason. The sends of
// one EmailSubmission/set go out together as a Deferred (http/api.h), so no thread waits for their commit.
using Submitter = std::function<Result<SubmissionSend>(const store::Account&, const OutgoingSubmission&)>;

void add_submission_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account,
                            Submitter submitter);

}  // namespace magpie::http
