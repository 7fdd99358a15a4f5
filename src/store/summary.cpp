#include "store/summary.h"

#include <utility>

#include "mail/summary.h"

namespace magpie::store {

MessageSummary summarize(std::string_view content) {
    mail::Summary s = mail::summarize(content);
    MessageSummary out;
    out.subject = std::move(s.subject);
    out.from = std::move(s.from);
    out.to = std::move(s.to);
    out.cc = std::move(s.cc);
    out.date = std::move(s.date);
    out.message_id = std::move(s.message_id);
    out.in_reply_to = std::move(s.in_reply_to);
    out.references = std::move(s.references);
    out.structure = std::move(s.structure);
    return out;
}

}  // namespace magpie::store
