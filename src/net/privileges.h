// Dropping root: magpied binds its ports as root when configured so, then becomes an unprivileged user
// for the rest of its life.
#pragma once

#include <filesystem>
#include <string>

#include "base/result.h"

namespace magpie::net {

// When running as root, hands `data_dir` to `user` and switches to it (supplementary groups, gid, uid, in
// that order) and checks that root cannot be regained. A no-op when not root or when `user` is empty.
Result<void> drop_privileges(const std::string& user, const std::filesystem::path& data_dir);

}  // namespace magpie::net
