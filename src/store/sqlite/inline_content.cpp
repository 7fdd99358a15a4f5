#include "store/sqlite/inline_content.h"

#include <algorithm>
#include <memory>

#include <fmt/format.h>
#include <zstd.h>

#include "store/sqlite/rows.h"

namespace magpie::store::sqlite {

namespace {

// Below this a frame's own header and the literals' overhead leave little to gain.
constexpr std::size_t kMinCompressible = 512;

}  // namespace

std::optional<std::string> compress_inline(std::string_view content, int level) {
    if (level <= 0 || content.size() < kMinCompressible) return std::nullopt;
    std::string frame(ZSTD_compressBound(content.size()), '\0');
    // One-shot with a thread-local context: a context costs about 1 MiB to build, and this runs per message.
    thread_local std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> context(ZSTD_createCCtx(), &ZSTD_freeCCtx);
    if (!context) return std::nullopt;
    std::size_t written = ZSTD_compressCCtx(context.get(), frame.data(), frame.size(), content.data(), content.size(),
                                            std::min(level, kMaxCompressionLevel));
    if (ZSTD_isError(written) || written > content.size() - content.size() / 8) return std::nullopt;
    frame.resize(written);
    return frame;
}

Result<std::string> expand_inline(std::int64_t location, std::string stored, std::uint64_t size,
                                  std::uint64_t max_bytes) {
    if (size > max_bytes)
        return make_error(Errc::corrupt, fmt::format("stated size {} is above the limit of {} bytes", size, max_bytes));
    if (location == kLocationInline) {
        if (stored.size() != size)
            return make_error(Errc::corrupt, fmt::format("{} bytes stored, expected {}", stored.size(), size));
        return stored;
    }
    if (location != kLocationInlineZstd)
        return make_error(Errc::invalid_argument, fmt::format("location {} is not inline", location));
    // The frame records its content size; it must be the blob's (at most max_bytes, checked above).
    unsigned long long framed = ZSTD_getFrameContentSize(stored.data(), stored.size());
    if (framed != size) return make_error(Errc::corrupt, "compressed content does not match its size");
    std::string content(size, '\0');
    thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), &ZSTD_freeDCtx);
    if (!context) return make_error(Errc::io_error, "no zstd decompression context");
    std::size_t read = ZSTD_decompressDCtx(context.get(), content.data(), content.size(), stored.data(), stored.size());
    if (ZSTD_isError(read) || read != size)
        return make_error(Errc::corrupt, fmt::format("compressed content does not decode: {}",
                                                     ZSTD_isError(read) ? ZSTD_getErrorName(read) : "short"));
    return content;
}

}  // namespace magpie::store::sqlite
