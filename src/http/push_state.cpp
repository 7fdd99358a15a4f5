#include "http/push_state.h"

#include <algorithm>

namespace magpie::http {

bool PushStateTracker::wanted(const std::string& type) const {
    return types_.empty() || std::ranges::find(types_, type) != types_.end();
}

void PushStateTracker::start(const Result<nlohmann::json>& states) {
    failed_ = !states || !states->is_object();
    if (!failed_) known_ = *states;
}

void PushStateTracker::assume(nlohmann::json states) {
    failed_ = false;
    known_ = std::move(states);
}

std::optional<nlohmann::json> PushStateTracker::next(const Result<nlohmann::json>& states) {
    if (!states || !states->is_object()) {
        failed_ = true;
        return std::nullopt;
    }
    failed_ = false;
    // RFC 8620 7.1: only the types the client asked for, and only those that changed.
    nlohmann::json changed = nlohmann::json::object();
    for (const auto& [type, value] : states->items()) {
        if (wanted(type) && (!known_ || known_->value(type, nlohmann::json()) != value)) changed[type] = value;
    }
    known_ = *states;
    if (changed.empty()) return std::nullopt;
    return changed;
}

}  // namespace magpie::http
