// Incremental reader of message content: the text after DATA (dot-stuffed, ended only by
// <CRLF>.<CRLF>, RFC 5321 4.1.1.4 / 4.5.2) or the raw octets of BDAT chunks (RFC 3030). It unstuffs dots,
// watches line endings (a bare CR or LF never ends anything: SMTP smuggling), line and message sizes,
// and keeps at most max_message_size octets in memory whatever the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace magpie::smtp {

// What to do with a CR or LF that is not part of a CRLF pair inside message content.
enum class BareLineEnding {
    reject,     // read to the real end, then refuse the message (nothing is stored)
    normalize,  // turn it into CRLF; it still never ends the data and never starts a dot-stuffed line
};

struct DataReaderOptions {
    std::size_t max_text_line = 1 << 20;  // octets including CRLF (RFC 5321 4.5.3.1.6: at least 1000)
    std::uint64_t max_message_size = 50ull << 20;
    BareLineEnding bare_line_ending = BareLineEnding::reject;
    bool dot_stuffed = true;  // DATA: true; BDAT chunks: false
};

class DataReader {
public:
    explicit DataReader(DataReaderOptions options);

    // Consumes octets and returns how many were used: in dot-stuffed mode it stops right after the
    // terminating <CRLF>.<CRLF> (the rest belongs to the next command); otherwise it uses everything.
    std::size_t consume(std::string_view bytes);
    // Dot-stuffed mode: the end of data was seen.
    bool done() const { return done_; }
    // BDAT mode, after the LAST chunk: settles a trailing CR and ends an unterminated last line with CRLF.
    void finish();

    bool saw_bare_line_ending() const { return bare_line_ending_; }
    bool line_too_long() const { return line_too_long_; }
    bool too_big() const { return size_ > options_.max_message_size; }
    bool saw_8bit() const { return saw_8bit_; }
    // Octets of content so far (after unstuffing), counted even beyond the limit.
    std::uint64_t size() const { return size_; }
    // The content, CRLF-terminated lines, dots unstuffed. Meaningful only when nothing above went wrong.
    std::string take_data() { return std::move(data_); }

private:
    void put(std::string_view octets);
    void end_line();
    void bare();

    DataReaderOptions options_;
    std::string data_;
    std::uint64_t size_ = 0;
    std::size_t line_length_ = 0;  // octets of the current line as sent, CRLF excluded
    bool at_line_start_ = true;    // right after a real CRLF (or at the start of the data)
    bool dot_line_ = false;        // the current line began with a dot that was removed
    bool pending_cr_ = false;      // a CR was seen; the next octet decides whether it is bare
    bool done_ = false;
    bool bare_line_ending_ = false;
    bool line_too_long_ = false;
    bool saw_8bit_ = false;
};

}  // namespace magpie::smtp
