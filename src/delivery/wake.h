// How another process (`magpie queue add|flush|retry|release`) tells a running magpied that the queue
// changed: it closes a written `<data_dir>/queue.wake`, which magpied watches (inotify), so the queue is
// looked at now rather than at the next poll. Best effort: polling still finds everything.
#pragma once

#include <filesystem>
#include <string_view>

namespace magpie::delivery {

inline constexpr std::string_view wake_file_name = "queue.wake";

void notify_queue_changed(const std::filesystem::path& data_dir);

}  // namespace magpie::delivery
