#include "delivery/queue.h"

namespace magpie::delivery {

std::string_view state_name(RecipientState state) {
    switch (state) {
        case RecipientState::queued: return "queued";
        case RecipientState::deferred: return "deferred";
        case RecipientState::delivered: return "delivered";
        case RecipientState::failed: return "failed";
    }
    return "queued";
}

std::optional<RecipientState> parse_state(std::string_view name) {
    for (auto s : {RecipientState::queued, RecipientState::deferred, RecipientState::delivered,
                   RecipientState::failed}) {
        if (state_name(s) == name) return s;
    }
    return std::nullopt;
}

}  // namespace magpie::delivery
