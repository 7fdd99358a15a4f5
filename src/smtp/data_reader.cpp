#include "smtp/data_reader.h"

#include <algorithm>
#include <cstring>

namespace magpie::smtp {

DataReader::DataReader(DataReaderOptions options) : options_(options) {}

void DataReader::put(std::string_view octets) {
    // Beyond the limit the octets are counted and dropped, so memory never exceeds max_message_size; once
    // the message is sure to be refused nothing more is kept either.
    bool refused =
        line_too_long_ || (bare_line_ending_ && options_.bare_line_ending == BareLineEnding::reject);
    if (size_ < options_.max_message_size && !refused) {
        auto room = static_cast<std::size_t>(options_.max_message_size - size_);
        data_.append(octets.substr(0, room));
    }
    size_ += octets.size();
}

void DataReader::end_line() {
    put("\r\n");
    line_length_ = 0;
    dot_line_ = false;
}

// A CR or LF outside a CRLF pair. With normalize it ends the line as if it were CRLF, but the next
// line is not a line start for end-of-data or dot-unstuffing: only a real CRLF makes one.
void DataReader::bare() {
    bare_line_ending_ = true;
    if (options_.bare_line_ending == BareLineEnding::normalize) {
        end_line();
    } else {
        // The octet stays part of the line, so "<CRLF>.<LF><CRLF>" is a two-octet line, not the end.
        ++line_length_;
        if (line_length_ + 2 > options_.max_text_line) line_too_long_ = true;
    }
    at_line_start_ = false;
}

std::size_t DataReader::consume(std::string_view bytes) {
    std::size_t i = 0;
    while (i < bytes.size() && !done_) {
        char c = bytes[i];
        if (!pending_cr_ && !at_line_start_ && c != '\r' && c != '\n') {
            // Fast path: the rest of a line up to the next CR or LF, appended in one piece (found with memchr,
            // and 8-bit octets with a loop the compiler vectorizes: issue 17, a 64 KiB message is 900 lines).
            // At most a window at a time, so that lines ended by bare LFs (or bare CRs) cost no more than
            // that each: the first search would otherwise run to the end of the input at every line.
            constexpr std::size_t window = 512;
            const char* line = bytes.data() + i;
            std::size_t rest = std::min(bytes.size() - i, window);
            const auto* cr = static_cast<const char*>(std::memchr(line, '\r', rest));
            std::size_t length = cr != nullptr ? static_cast<std::size_t>(cr - line) : rest;
            if (const auto* lf = static_cast<const char*>(std::memchr(line, '\n', length)); lf != nullptr)
                length = static_cast<std::size_t>(lf - line);
            unsigned char bits = 0;
            for (std::size_t k = 0; k < length; ++k) bits |= static_cast<unsigned char>(line[k]);
            const bool high = (bits & 0x80) != 0;
            const std::size_t end = i + length;
            line_length_ += length;
            // RFC 5321 4.5.3.1.6: 1000 octets including the CRLF.
            if (line_length_ + 2 > options_.max_text_line) line_too_long_ = true;
            saw_8bit_ = saw_8bit_ || high;
            put(bytes.substr(i, length));
            i = end;
            continue;
        }
        ++i;
        if (pending_cr_) {
            pending_cr_ = false;
            if (c == '\n') {
                // RFC 5321 4.1.1.4: only CRLF "." CRLF ends the data.
                if (options_.dot_stuffed && dot_line_ && line_length_ == 1) {
                    done_ = true;
                    break;
                }
                end_line();
                at_line_start_ = true;
                continue;
            }
            bare();
        }
        if (c == '\r') {
            pending_cr_ = true;
            continue;
        }
        if (c == '\n') {
            bare();
            continue;
        }
        ++line_length_;
        if (line_length_ + 2 > options_.max_text_line) line_too_long_ = true;
        if (static_cast<unsigned char>(c) >= 0x80) saw_8bit_ = true;
        if (at_line_start_) {
            at_line_start_ = false;
            // RFC 5321 4.5.2: the first dot of a line is transparency (or the end marker); drop it.
            if (options_.dot_stuffed && c == '.') {
                dot_line_ = true;
                continue;
            }
        }
        put(std::string_view(&c, 1));
    }
    return i;
}

void DataReader::finish() {
    if (pending_cr_) {
        pending_cr_ = false;
        bare();
    }
    if (line_length_ > 0) {
        end_line();
        at_line_start_ = true;
    }
}

}  // namespace magpie::smtp
