#include "mail/quoted_printable.h"

#include <cstddef>

namespace magpie::mail {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";
// RFC 2045 6.7 rule 5: encoded lines are at most 76 characters; a soft break's '=' counts.
constexpr std::size_t kMaxLine = 76;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

class Encoder {
public:
    Encoder(std::string_view in, bool binary) : in_(in), binary_(binary) {
        out_.reserve(in.size() * 5 / 4 + 8);
    }

    std::string run() {
        std::size_t i = 0;
        while (i < in_.size()) {
            if (!binary_ && is_crlf(i)) {
                out_.append("\r\n");
                column_ = 0;
                i += 2;
                continue;
            }
            emit_octet(i);
            ++i;
        }
        return std::move(out_);
    }

private:
    bool is_crlf(std::size_t i) const { return in_[i] == '\r' && i + 1 < in_.size() && in_[i + 1] == '\n'; }

    // True when the octet at i is the last one before a hard break (or the end of the input).
    bool ends_line(std::size_t i) const {
        std::size_t next = i + 1;
        return next == in_.size() || (!binary_ && is_crlf(next));
    }

    bool must_encode(std::size_t i) const {
        char c = in_[i];
        auto u = static_cast<unsigned char>(c);
        if (is_blank(c)) return ends_line(i);  // rule 3: no white space at the end of an encoded line
        if (u < 33 || u > 126 || c == '=') return true;
        if (column_ == 0) {
            // Not required by RFC 2045, but a leading '.' meets careless SMTP relays and a leading "From "
            // meets mbox files; encoding them costs two octets and changes nothing for the reader.
            if (c == '.') return true;
            if (c == 'F' && in_.substr(i, 5) == "From ") return true;
            // No encoded line may start with "--": inside a multipart it could read as a boundary delimiter
            // (RFC 2046 5.1.1), and the encoder cannot know the boundaries around the body it encodes.
            if (c == '-' && i + 1 < in_.size() && in_[i + 1] == '-') return true;
        }
        return false;
    }

    void emit_octet(std::size_t i) {
        bool encode = must_encode(i);
        std::size_t width = encode ? 3 : 1;
        // A line that ends here with a hard break may use all 76 columns; otherwise keep one for '='.
        std::size_t limit = ends_line(i) ? kMaxLine : kMaxLine - 1;
        if (column_ + width > limit) {
            out_.append("=\r\n");
            column_ = 0;
            encode = must_encode(i);  // the line start rules may now apply
            width = encode ? 3 : 1;
        }
        if (encode) {
            auto u = static_cast<unsigned char>(in_[i]);
            out_.push_back('=');
            out_.push_back(kHex[u >> 4]);
            out_.push_back(kHex[u & 15]);
        } else {
            out_.push_back(in_[i]);
        }
        column_ += width;
    }

    std::string_view in_;
    bool binary_;
    std::string out_;
    std::size_t column_ = 0;
};

// Decodes one encoded line without its line break and without its trailing white space.
void decode_line(std::string_view line, std::string& out) {
    std::size_t i = 0;
    while (i < line.size()) {
        std::size_t eq = line.find('=', i);
        if (eq == std::string_view::npos) {
            out.append(line.substr(i));
            return;
        }
        out.append(line.substr(i, eq - i));
        if (eq + 2 < line.size() && hex_value(line[eq + 1]) >= 0 && hex_value(line[eq + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(line[eq + 1]) * 16 + hex_value(line[eq + 2])));
            i = eq + 3;
        } else {
            out.push_back('=');  // a bad escape is kept as it stands
            i = eq + 1;
        }
    }
}

}  // namespace

std::string qp_encode(std::string_view bytes, bool binary) {
    return Encoder(bytes, binary).run();
}

std::string qp_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t lf = text.find('\n', pos);
        std::string_view line;
        std::string_view line_break;
        if (lf == std::string_view::npos) {
            line = text.substr(pos);
            pos = text.size();
        } else {
            line = text.substr(pos, lf - pos);
            pos = lf + 1;
            if (!line.empty() && line.back() == '\r') {
                line.remove_suffix(1);
                line_break = "\r\n";
            } else {
                line_break = "\n";
            }
        }
        // RFC 2045 6.7 rule 3: trailing white space was added in transport and is deleted.
        while (!line.empty() && is_blank(line.back())) line.remove_suffix(1);
        if (!line.empty() && line.back() == '=') {
            line.remove_suffix(1);  // soft break: the next line continues this one
            decode_line(line, out);
        } else {
            decode_line(line, out);
            out.append(line_break);
        }
    }
    return out;
}

}  // namespace magpie::mail
