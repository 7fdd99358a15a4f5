#include "smtp/data_reader.h"

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
            // Fast path: the rest of a line up to the next CR or LF, appended in one piece.
            std::size_t end = i;
            bool high = false;
            while (end < bytes.size() && bytes[end] != '\r' && bytes[end] != '\n') {
                high |= static_cast<unsigned char>(bytes[end]) >= 0x80;
                ++end;
            }
            std::size_t length = end - i;
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
