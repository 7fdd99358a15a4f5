#include "imap/session/spool_sink.h"

#include <string>

namespace magpie::imap {

void SpoolSink::write(std::string_view octets) {
    if (error_ || octets.empty()) return;
    if (binary_) {
        if (auto written = spool_->append(octets); !written) error_ = written.error();
        return;
    }
    // Bare LF -> CRLF in runs: the pieces between bare LFs go out as they are.
    std::string converted;
    std::size_t run = 0;
    for (std::size_t i = 0; i < octets.size(); ++i) {
        const bool previous_cr = i == 0 ? after_cr_ : octets[i - 1] == '\r';
        if (octets[i] == '\n' && !previous_cr) {
            converted.append(octets.substr(run, i - run));
            converted += "\r\n";
            run = i + 1;
        }
    }
    after_cr_ = octets.back() == '\r';
    Result<void> written = run == 0 ? spool_->append(octets) : Result<void>{};
    if (run > 0) {
        converted.append(octets.substr(run));
        written = spool_->append(converted);
    }
    if (!written) error_ = written.error();
}

Result<std::unique_ptr<store::BlobSpool>> SpoolSink::finish() {
    if (error_) return *error_;
    if (!spool_) return make_error(Errc::internal, "the spool was taken already");
    return std::move(spool_);
}

}  // namespace magpie::imap
