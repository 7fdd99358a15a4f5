#include "mail/charset.h"

#include <cerrno>
#include <iconv.h>

#include <vector>

#include "base/strings.h"

namespace magpie::mail {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

void append_code_point(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

std::string latin1_to_utf8(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() + bytes.size() / 4);
    for (unsigned char c : bytes) append_code_point(out, c);
    return out;
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return 1;
    std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || c > 0xF4 || i + len > s.size()) return 0;
    return is_valid_utf8(s.substr(i, len)) ? len : 0;
}

// Charset names (lower case, "-" and "_" dropped) that need no conversion or a trivial one.
std::string normalize(std::string_view charset) {
    std::string out;
    for (char c : charset) {
        if (c == '-' || c == '_') continue;
        out.push_back(ascii_lower(c));
    }
    return out;
}

// iconv_open loads a gconv module each time (a dlopen), which costs more than converting a whole message:
// keep a few open descriptors per thread, reset before each use. Bounded, so memory stays bounded.
class IconvCache {
public:
    ~IconvCache() {
        for (auto& e : entries_) iconv_close(e.cd);
    }

    // nullopt when iconv does not know the charset.
    std::optional<iconv_t> get(std::string_view charset) {
        std::string key = normalize(charset);
        for (auto& e : entries_) {
            if (e.key == key) {
                iconv(e.cd, nullptr, nullptr, nullptr, nullptr);
                return e.cd;
            }
        }
        std::string name(charset);
        iconv_t cd = iconv_open("UTF-8", name.c_str());
        if (cd == reinterpret_cast<iconv_t>(-1)) return std::nullopt;
        if (entries_.size() >= kMaxEntries) {
            iconv_close(entries_.front().cd);
            entries_.erase(entries_.begin());
        }
        entries_.push_back(Entry{std::move(key), cd});
        return cd;
    }

private:
    static constexpr std::size_t kMaxEntries = 8;
    struct Entry {
        std::string key;
        iconv_t cd;
    };
    std::vector<Entry> entries_;
};

std::optional<std::string> via_iconv(std::string_view bytes, std::string_view charset) {
    thread_local IconvCache cache;
    auto opened = cache.get(charset);
    if (!opened) return std::nullopt;
    iconv_t cd = *opened;
    std::string out;
    out.resize(bytes.size() * 2 + 16);
    char* in = const_cast<char*>(bytes.data());
    std::size_t in_left = bytes.size();
    std::size_t used = 0;
    while (in_left > 0) {
        char* dst = out.data() + used;
        std::size_t dst_left = out.size() - used;
        std::size_t r = iconv(cd, &in, &in_left, &dst, &dst_left);
        used = out.size() - dst_left;
        if (r != static_cast<std::size_t>(-1)) break;
        if (errno == E2BIG) {
            out.resize(out.size() * 2);
        } else {
            // EILSEQ or EINVAL (truncated input): one replacement character per bad octet, then go on.
            if (out.size() - used < kReplacement.size()) out.resize(out.size() * 2);
            out.replace(used, kReplacement.size(), kReplacement);
            used += kReplacement.size();
            ++in;
            --in_left;
            iconv(cd, nullptr, nullptr, nullptr, nullptr);
        }
    }
    // Flush any shift state (ISO-2022-JP returns to ASCII).
    for (;;) {
        char* dst = out.data() + used;
        std::size_t dst_left = out.size() - used;
        std::size_t r = iconv(cd, nullptr, nullptr, &dst, &dst_left);
        used = out.size() - dst_left;
        if (r != static_cast<std::size_t>(-1) || errno != E2BIG) break;
        out.resize(out.size() * 2);
    }
    out.resize(used);
    return sanitize_utf8(out);
}

}  // namespace

std::string sanitize_utf8(std::string_view bytes) {
    if (is_valid_utf8(bytes)) return std::string(bytes);
    std::string out;
    out.reserve(bytes.size() + 8);
    for (std::size_t i = 0; i < bytes.size();) {
        std::size_t len = utf8_sequence_length(bytes, i);
        if (len == 0) {
            out.append(kReplacement);
            ++i;
        } else {
            out.append(bytes.substr(i, len));
            i += len;
        }
    }
    return out;
}

std::optional<std::string> to_utf8(std::string_view bytes, std::string_view charset) {
    std::string name = normalize(charset);
    if (name == "usascii" || name == "ascii" || name == "utf8" || name.empty()) {
        return sanitize_utf8(bytes);
    }
    if (is_ascii(bytes) && name.find("utf16") == std::string::npos && name.find("utf32") == std::string::npos &&
        name.find("ucs") == std::string::npos && name.find("utf7") == std::string::npos &&
        name.find("2022") == std::string::npos && name.find("hz") == std::string::npos) {
        return std::string(bytes);  // ASCII-compatible charsets map 7-bit bytes to themselves
    }
    if (name == "iso88591" || name == "latin1") {
        // C1 controls (0x80-0x9F) in "Latin-1" mail are Windows-1252 punctuation (the WHATWG Encoding
        // Standard maps the label the same way); nobody sends the controls on purpose.
        for (unsigned char c : bytes) {
            if (c >= 0x80 && c < 0xA0) return via_iconv(bytes, "WINDOWS-1252");
        }
        return latin1_to_utf8(bytes);
    }
    // Labels whose real-world text uses the vendor superset (WHATWG Encoding Standard).
    if (name == "gb2312" || name == "gbk" || name == "xgbk") return via_iconv(bytes, "CP936");
    if (name == "ksc56011987" || name == "euckr" || name == "ksc5601") return via_iconv(bytes, "CP949");
    if (name == "shiftjis" || name == "sjis" || name == "xsjis" || name == "mskanji") return via_iconv(bytes, "CP932");
    if (name == "iso88599") return via_iconv(bytes, "WINDOWS-1254");
    return via_iconv(bytes, trim(charset));
}

std::string guess_to_utf8(std::string_view bytes) {
    if (is_valid_utf8(bytes)) return std::string(bytes);
    if (auto cp1252 = via_iconv(bytes, "WINDOWS-1252")) return std::move(*cp1252);
    return latin1_to_utf8(bytes);
}

std::string to_utf8_lenient(std::string_view bytes, std::string_view charset) {
    if (auto converted = to_utf8(bytes, charset)) return std::move(*converted);
    return guess_to_utf8(bytes);
}

}  // namespace magpie::mail
