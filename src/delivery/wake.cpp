#include "delivery/wake.h"

#include <fcntl.h>
#include <unistd.h>

namespace magpie::delivery {

void notify_queue_changed(const std::filesystem::path& data_dir) {
    int fd = ::open((data_dir / wake_file_name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);  // IN_CLOSE_WRITE is what magpied waits for
}

}  // namespace magpie::delivery
