// An APPEND literal spooled to the store as it arrives (issue 11): the parser hands its octets to a SpoolSink,
// which writes them to a store::BlobSpool (a file under blobs/ for the embedded store), turning each bare LF
// into CRLF on the way as APPEND stores messages (mail::bare_lf_to_crlf, one octet of state across pieces).
// A literal8 is spooled as sent; at APPEND its binary parts are re-encoded, streamed from the mapped spool
// through a second, non-binary SpoolSink.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "base/result.h"
#include "imap/command.h"
#include "store/blob.h"

namespace magpie::imap {

class SpoolSink final : public LiteralSink {
public:
    SpoolSink(std::unique_ptr<store::BlobSpool> spool, bool binary) : spool_(std::move(spool)), binary_(binary) {}

    void write(std::string_view octets) override;

    // The spool with every octet written, or the first write's error (then the APPEND answers NO).
    Result<std::unique_ptr<store::BlobSpool>> finish();

private:
    std::unique_ptr<store::BlobSpool> spool_;
    bool binary_ = false;
    bool after_cr_ = false;  // the last octet written was CR
    std::optional<Error> error_;
};

}  // namespace magpie::imap
