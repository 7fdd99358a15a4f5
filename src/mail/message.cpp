#include "mail/message.h"

#include <cstring>

#include "base/strings.h"
#include "mail/encoded_word.h"

namespace magpie::mail {
namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// End of the line starting at `pos` (index of the '\n', or `end` when the last line has no line end).
std::size_t line_end(std::string_view s, std::size_t pos, std::size_t end) {
    const void* nl = std::memchr(s.data() + pos, '\n', end - pos);
    return nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - s.data()) : end;
}

// RFC 5322 3.6.8 field-name: printable US-ASCII except ':'. Returns the name length (without the
// obsolete WSP before the colon, RFC 5322 4.5.8) and sets `colon`, or 0 when the line is not a field.
std::size_t field_name_length(std::string_view line, std::size_t& colon) {
    std::size_t i = 0;
    while (i < line.size()) {
        auto c = static_cast<unsigned char>(line[i]);
        if (c == ':' || c <= 32 || c >= 127) break;
        ++i;
    }
    std::size_t name_len = i;
    while (i < line.size() && is_wsp(line[i])) ++i;
    if (name_len == 0 || i >= line.size() || line[i] != ':') return 0;
    colon = i;
    return name_len;
}

}  // namespace

std::string unfold(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') continue;
        if (c == '\n') continue;
        out.push_back(c);
    }
    return std::string(trim(out));
}

std::string HeaderField::unfolded() const { return unfold(raw_value); }

std::string HeaderField::decoded() const { return decode_encoded_words(unfold(raw_value)); }

HeaderScan scan_header(std::string_view message, std::size_t begin, std::size_t end, const ParseLimits& limits,
                       std::vector<HeaderField>& out) {
    HeaderScan scan;
    end = std::min(end, message.size());
    std::size_t pos = std::min(begin, end);
    const std::size_t octet_limit = limits.max_header_octets;
    std::size_t fields = 0;
    bool first = true;
    HeaderField* current = nullptr;  // field that continuation lines extend
    while (pos < end) {
        if (pos - begin >= octet_limit) {
            scan.limit_hit = true;
            break;
        }
        std::size_t eol = line_end(message, pos, end);
        std::size_t next = eol < end ? eol + 1 : end;
        std::size_t content_end = eol;
        if (content_end > pos && message[content_end - 1] == '\r') --content_end;
        std::string_view line = message.substr(pos, content_end - pos);
        if (line.empty()) {  // the blank line: header ends, body starts after it
            scan.header_end = pos;
            scan.body_offset = next;
            return scan;
        }
        if (is_wsp(line[0])) {
            if (current) {
                // RFC 5322 2.2.3: a folded line continues the previous field.
                current->raw_value = message.substr(current->raw_value.data() - message.data(),
                                                    content_end - (current->raw_value.data() - message.data()));
                current->length = next - current->offset;
            }
            // A continuation before any field (or of an ignored field) is skipped.
            pos = next;
            first = false;
            continue;
        }
        std::size_t colon = 0;
        std::size_t name_len = field_name_length(line, colon);
        if (name_len == 0) {
            // An mbox separator line, only at the very start of the bytes: in a MIME part such a line is text.
            if (first && begin == 0 && line.size() >= 5 && line.substr(0, 5) == "From ") {
                pos = next;
                first = false;
                continue;
            }
            break;  // not a header line: the body starts here, with no blank line
        }
        first = false;
        if (fields >= limits.max_header_fields) {
            scan.limit_hit = true;
            current = nullptr;
        } else {
            out.push_back(HeaderField{line.substr(0, name_len), line.substr(colon + 1), pos, next - pos});
            current = &out.back();
            ++fields;
        }
        pos = next;
    }
    scan.header_end = pos;
    scan.body_offset = pos;
    return scan;
}

std::vector<std::string> parse_message_ids(std::string_view value, std::size_t max_ids) {
    std::vector<std::string> ids;
    std::size_t i = 0;
    int comment_depth = 0;
    while (i < value.size() && ids.size() < max_ids) {
        char c = value[i];
        if (comment_depth > 0) {
            if (c == '\\') ++i;
            else if (c == '(') ++comment_depth;
            else if (c == ')') --comment_depth;
            ++i;
        } else if (c == '(') {
            comment_depth = 1;
            ++i;
        } else if (c == '"') {  // obs-phrase words in In-Reply-To: skip quoted strings whole
            ++i;
            while (i < value.size() && value[i] != '"') i += value[i] == '\\' ? 2 : 1;
            ++i;
        } else if (c == '<') {
            std::size_t close = value.find('>', i);
            if (close == std::string_view::npos) break;
            std::string id;
            for (char ch : value.substr(i, close - i + 1)) {
                if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') id.push_back(ch);  // obs-id-left CFWS
            }
            ids.push_back(std::move(id));
            i = close + 1;
        } else {
            ++i;
        }
    }
    if (ids.empty() && max_ids > 0) {
        std::string unfolded = unfold(value);
        std::string_view v = unfolded;
        if (!v.empty()) ids.emplace_back(v.substr(0, v.find_first_of(" \t")));
    }
    return ids;
}

const HeaderField* Header::find(std::string_view name) const {
    for (const auto& f : fields_) {
        if (iequals(f.name, name)) return &f;
    }
    return nullptr;
}

std::vector<const HeaderField*> Header::find_all(std::string_view name) const {
    std::vector<const HeaderField*> all;
    for (const auto& f : fields_) {
        if (iequals(f.name, name)) all.push_back(&f);
    }
    return all;
}

std::string Header::value(std::string_view name) const {
    const HeaderField* f = find(name);
    return f ? f->unfolded() : std::string();
}

std::string Header::decoded(std::string_view name) const {
    const HeaderField* f = find(name);
    return f ? f->decoded() : std::string();
}

}  // namespace magpie::mail
