#include "http/email_view.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "base/strings.h"
#include "base/time.h"
#include "mail/address.h"
#include "mail/charset.h"
#include "mail/date.h"
#include "mail/decode.h"
#include "mail/encoded_word.h"
#include "mail/mime.h"

namespace magpie::http {
namespace {

using nlohmann::json;

constexpr std::size_t kPreviewCodePoints = 256;  // RFC 8621 4.1.4: "up to 256 characters"

const std::vector<std::string> kDefaultBodyProperties = {"partId", "blobId",      "size", "name",     "type",
                                                         "charset", "disposition", "cid",  "language", "location"};
const std::vector<std::string> kConvenience = {"messageId", "inReplyTo", "references", "sender", "from",
                                               "to",        "cc",        "bcc",        "replyTo", "subject",
                                               "sentAt",    "headers"};
const std::vector<std::string> kBody = {"bodyStructure", "textBody", "htmlBody", "attachments",
                                        "hasAttachment", "preview",  "bodyValues"};

// "header:Name[:asForm][:all]" (RFC 8621 4.1.3).
struct HeaderProperty {
    std::string name;
    std::string form = "Raw";
    bool all = false;
};

std::optional<HeaderProperty> parse_header_property(std::string_view property) {
    if (!property.starts_with("header:")) return std::nullopt;
    property.remove_prefix(7);
    HeaderProperty out;
    std::vector<std::string_view> pieces;
    while (true) {
        std::size_t colon = property.find(':');
        pieces.push_back(property.substr(0, colon));
        if (colon == std::string_view::npos) break;
        property.remove_prefix(colon + 1);
    }
    if (pieces.empty() || pieces[0].empty() || pieces.size() > 3) return std::nullopt;
    for (unsigned char c : pieces[0]) {
        if (c <= 0x20 || c >= 0x7f) return std::nullopt;  // RFC 5322 2.2 field names
    }
    out.name = std::string(pieces[0]);
    for (std::size_t i = 1; i < pieces.size(); ++i) {
        if (pieces[i] == "all" && i == pieces.size() - 1) {
            out.all = true;
        } else if (i == 1 && pieces[i].starts_with("as")) {
            out.form = std::string(pieces[i].substr(2));
            static const std::vector<std::string> forms = {"Raw", "Text", "Addresses", "GroupedAddresses",
                                                           "MessageIds", "Date", "URLs"};
            if (std::ranges::find(forms, out.form) == forms.end()) return std::nullopt;
        } else {
            return std::nullopt;
        }
    }
    return out;
}

json nullable(const std::string& text) { return text.empty() ? json() : json(text); }

// RFC 8621 4.1.2.1 (Raw): the octets as they are when they are UTF-8 (RFC 6532); a run that is not becomes
// U+FFFD and a NUL is dropped. No charset guess here: Raw promises the field's own octets.
std::string raw_text(std::string_view value) {
    std::string kept;
    kept.reserve(value.size());
    for (char c : value) {
        if (c != '\0') kept.push_back(c);
    }
    return mail::sanitize_utf8(kept);
}

// The parsed forms (Text, Addresses, MessageIds, URLs, a part's name) are the server's reading of the
// field: UTF-8 as it is, and octets that are not UTF-8 read as Windows-1252 (as the Text form and display
// names already are, mail::decode_encoded_words), so unlabelled Latin-1 reads as what its sender meant.
std::string parsed_text(std::string_view value) { return mail::guess_to_utf8(value); }

json email_address(const mail::Mailbox& mailbox) {
    return json{{"name", nullable(mailbox.name)}, {"email", parsed_text(mailbox.addr_spec())}};
}

std::string two(int value) { return fmt::format("{:02}", value); }

// "2014-10-30T14:12:00+08:00": the writer's own time and offset (RFC 8621 4.1.2.6).
std::string date_with_offset(const mail::DateTime& date) {
    std::string local = utc_date(date.unix_seconds + date.zone_minutes * 60);
    local.pop_back();  // the 'Z'
    int minutes = date.zone_minutes < 0 ? -date.zone_minutes : date.zone_minutes;
    return fmt::format("{}{}{}:{}", local, date.zone_minutes < 0 ? '-' : '+', two(minutes / 60), two(minutes % 60));
}

json parse_form(const mail::HeaderField& field, const std::string& form) {
    if (form == "Raw") return raw_text(field.raw_value);
    if (form == "Text") return field.decoded();
    if (form == "Addresses") {
        json out = json::array();
        for (const auto& mailbox : mail::mailboxes(mail::parse_address_list(field.unfolded()))) {
            out.push_back(email_address(mailbox));
        }
        return out;
    }
    if (form == "GroupedAddresses") {
        json out = json::array();
        json loose = json::array();
        for (const auto& address : mail::parse_address_list(field.unfolded())) {
            if (!address.is_group) {
                for (const auto& m : address.members) out.push_back({{"name", nullptr}, {"addresses", {email_address(m)}}});
                continue;
            }
            json members = json::array();
            for (const auto& m : address.members) members.push_back(email_address(m));
            out.push_back({{"name", address.group_name}, {"addresses", members}});
        }
        return out;
    }
    if (form == "MessageIds") {
        auto ids = mail::parse_message_ids(field.unfolded());
        if (ids.empty()) return nullptr;
        json out = json::array();
        for (auto& id : ids) {
            if (id.size() >= 2 && id.front() == '<' && id.back() == '>') id = id.substr(1, id.size() - 2);
            out.push_back(parsed_text(id));
        }
        return out;
    }
    if (form == "Date") {
        auto date = mail::parse_date(field.unfolded());
        return date ? json(date_with_offset(*date)) : json();
    }
    // URLs (RFC 2369 List-* fields): "<url>, <url>".
    std::string value = field.unfolded();
    json out = json::array();
    std::size_t at = 0;
    while ((at = value.find('<', at)) != std::string::npos) {
        std::size_t end = value.find('>', at);
        if (end == std::string::npos) break;
        out.push_back(parsed_text(value.substr(at + 1, end - at - 1)));
        at = end + 1;
    }
    return out.empty() ? json() : out;
}

json header_value(const mail::Header& header, const HeaderProperty& property) {
    auto fields = header.find_all(property.name);
    if (property.all) {
        json out = json::array();
        for (const auto* field : fields) out.push_back(parse_form(*field, property.form));
        return out;
    }
    if (fields.empty()) return nullptr;
    return parse_form(*fields.back(), property.form);  // RFC 8621 4.1.3: the last instance
}

json raw_headers(const mail::Header& header) {
    json out = json::array();
    for (const auto& field : header.fields()) {
        out.push_back({{"name", std::string(field.name)}, {"value", raw_text(field.raw_value)}});
    }
    return out;
}

class View {
public:
    View(std::string_view bytes, std::string_view blob_id, const BodyValueOptions& options)
        : message_(mail::Message::parse(bytes)), blob_id_(blob_id), options_(options) {
        std::vector<std::uint32_t> text, html;
        std::vector<std::uint32_t>* text_ptr = &text;
        std::vector<std::uint32_t>* html_ptr = &html;
        parse_structure({0}, "mixed", false, html_ptr, text_ptr, attachments_);
        text_ = std::move(text);
        html_ = std::move(html);
    }

    json property(const std::string& name) {
        mail::Header header = message_.header();
        if (auto h = parse_header_property(name)) return header_value(header, *h);
        if (name == "headers") return raw_headers(header);
        if (name == "messageId") return header_value(header, {"Message-ID", "MessageIds", false});
        if (name == "inReplyTo") return header_value(header, {"In-Reply-To", "MessageIds", false});
        if (name == "references") return header_value(header, {"References", "MessageIds", false});
        if (name == "sender" || name == "from" || name == "to" || name == "cc" || name == "bcc") {
            return header_value(header, {name, "Addresses", false});
        }
        if (name == "replyTo") return header_value(header, {"Reply-To", "Addresses", false});
        if (name == "subject") return header_value(header, {"Subject", "Text", false});
        if (name == "sentAt") return header_value(header, {"Date", "Date", false});
        if (name == "bodyStructure") return part_json(0, true);
        if (name == "textBody") return part_list(text_);
        if (name == "htmlBody") return part_list(html_);
        if (name == "attachments") return part_list(attachments_);
        if (name == "hasAttachment") return !attachments_.empty();
        if (name == "preview") return preview();
        if (name == "bodyValues") return body_values();
        return nullptr;
    }

private:
    const mail::Part& part(std::uint32_t index) const { return message_.parts()[index]; }

    std::string type_of(std::uint32_t index) const {
        auto type = message_.content_type(part(index));
        return type.type + "/" + type.subtype;
    }

    // A part's children as JMAP sees them: a multipart's parts; a message/rfc822 is a leaf here.
    std::vector<std::uint32_t> children(std::uint32_t index) const {
        std::vector<std::uint32_t> out;
        if (part(index).kind != mail::PartKind::multipart) return out;
        for (std::uint32_t c = part(index).first_child; c != mail::kNoPart; c = part(c).next_sibling) out.push_back(c);
        return out;
    }

    std::string file_name(std::uint32_t index) const {
        std::string name = message_.content_disposition(part(index)).params.get("filename");
        if (name.empty()) name = message_.content_type(part(index)).params.get("name");
        // Many senders put RFC 2047 words in parameters, which RFC 2231 does not allow; decode them anyway.
        // Without encoded words this reads unlabelled 8-bit octets as the Text form does.
        return mail::decode_encoded_words(name);
    }

    static bool inline_media(const std::string& type) {
        return type.starts_with("image/") || type.starts_with("audio/") || type.starts_with("video/");
    }

    // RFC 8621 4.1.4's parseStructure, as written there.
    void parse_structure(const std::vector<std::uint32_t>& parts, const std::string& multipart_type, bool in_alternative,
                         std::vector<std::uint32_t>* html_body, std::vector<std::uint32_t>* text_body,
                         std::vector<std::uint32_t>& attachments) {
        const long text_length = text_body ? static_cast<long>(text_body->size()) : -1;
        const long html_length = html_body ? static_cast<long>(html_body->size()) : -1;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            const std::uint32_t p = parts[i];
            const std::string type = type_of(p);
            const bool is_multipart = part(p).kind == mail::PartKind::multipart;
            const bool attachment_disposition = message_.content_disposition(part(p)).kind == "attachment";
            const bool is_inline = !attachment_disposition &&
                                   (type == "text/plain" || type == "text/html" || inline_media(type)) &&
                                   (i == 0 || (multipart_type != "related" && (inline_media(type) || file_name(p).empty())));
            if (is_multipart) {
                const std::string sub = message_.content_type(part(p)).subtype;
                parse_structure(children(p), sub, in_alternative || sub == "alternative", html_body, text_body,
                                attachments);
            } else if (is_inline) {
                if (multipart_type == "alternative") {
                    if (type == "text/plain") {
                        if (text_body) text_body->push_back(p);
                    } else if (type == "text/html") {
                        if (html_body) html_body->push_back(p);
                    } else {
                        attachments.push_back(p);
                    }
                    continue;
                }
                if (in_alternative) {
                    if (type == "text/plain") html_body = nullptr;
                    if (type == "text/html") text_body = nullptr;
                }
                if (text_body) text_body->push_back(p);
                if (html_body) html_body->push_back(p);
                if ((!text_body || !html_body) && inline_media(type)) attachments.push_back(p);
            } else {
                attachments.push_back(p);
            }
        }
        if (multipart_type == "alternative" && text_body && html_body) {
            if (text_length == static_cast<long>(text_body->size()) && html_length != static_cast<long>(html_body->size())) {
                for (auto i = static_cast<std::size_t>(html_length); i < html_body->size(); ++i) text_body->push_back((*html_body)[i]);
            }
            if (html_length == static_cast<long>(html_body->size()) && text_length != static_cast<long>(text_body->size())) {
                for (auto i = static_cast<std::size_t>(text_length); i < text_body->size(); ++i) html_body->push_back((*text_body)[i]);
            }
        }
    }

    json part_json(std::uint32_t index, bool with_sub_parts) const {
        const auto& p = part(index);
        const bool multipart = p.kind == mail::PartKind::multipart;
        const auto content_type = message_.content_type(p);
        const auto disposition = message_.content_disposition(p);
        mail::Header header = message_.header(p);
        json all = json::object();
        all["partId"] = multipart ? json() : json(std::to_string(index));
        all["blobId"] = multipart ? json() : json(part_blob_id(blob_id_, index));
        all["size"] = multipart ? 0 : mail::decoded_transfer_size(message_.body(p), p.encoding);
        all["headers"] = raw_headers(header);
        all["name"] = nullable(file_name(index));
        all["type"] = content_type.type + "/" + content_type.subtype;
        std::string charset = content_type.params.get("charset");
        all["charset"] = !charset.empty() ? json(to_lower(charset)) : content_type.type == "text" ? json("us-ascii") : json();
        all["disposition"] = nullable(disposition.kind);
        std::string cid = header.value("Content-ID");
        if (cid.size() >= 2 && cid.front() == '<' && cid.back() == '>') cid = cid.substr(1, cid.size() - 2);
        all["cid"] = nullable(cid);
        std::string language = header.value("Content-Language");
        if (language.empty()) {
            all["language"] = nullptr;
        } else {
            json languages = json::array();
            std::size_t start = 0;
            while (start <= language.size()) {
                std::size_t comma = language.find(',', start);
                std::string one(trim(std::string_view(language).substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
                if (!one.empty()) languages.push_back(one);
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
            all["language"] = languages;
        }
        all["location"] = nullable(header.value("Content-Location"));
        json out = json::object();
        const auto& wanted = options_.body_properties ? *options_.body_properties : kDefaultBodyProperties;
        for (const auto& name : wanted) {
            if (auto h = parse_header_property(name)) {
                out[name] = header_value(header, *h);
            } else if (all.contains(name)) {
                out[name] = all[name];
            }
        }
        if (with_sub_parts && multipart && (!options_.body_properties || std::ranges::find(wanted, "subParts") != wanted.end())) {
            json sub = json::array();
            for (auto c : children(index)) sub.push_back(part_json(c, true));
            out["subParts"] = sub;
        }
        return out;
    }

    json part_list(const std::vector<std::uint32_t>& parts) const {
        json out = json::array();
        for (auto p : parts) out.push_back(part_json(p, false));
        return out;
    }

    static std::string truncate_utf8(std::string text, std::size_t max_bytes, bool& truncated) {
        truncated = false;
        if (max_bytes == 0 || text.size() <= max_bytes) return text;
        std::size_t cut = max_bytes;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
        text.resize(cut);
        truncated = true;
        return text;
    }

    json body_values() const {
        std::vector<std::uint32_t> wanted;
        if (options_.fetch_all) {
            for (std::uint32_t i = 0; i < message_.parts().size(); ++i) {
                if (part(i).kind == mail::PartKind::leaf && message_.content_type(part(i)).type == "text") wanted.push_back(i);
            }
        } else {
            if (options_.fetch_text) wanted.insert(wanted.end(), text_.begin(), text_.end());
            if (options_.fetch_html) wanted.insert(wanted.end(), html_.begin(), html_.end());
        }
        json out = json::object();
        for (auto p : wanted) {
            // Only text parts have values (RFC 8621 4.1.4); an inline image in textBody has none.
            if (message_.content_type(part(p)).type != "text") continue;
            bool truncated = false;
            std::string value = truncate_utf8(mail::decode_text(message_, part(p)), options_.max_bytes, truncated);
            out[std::to_string(p)] = {{"value", value}, {"isEncodingProblem", false}, {"isTruncated", truncated}};
        }
        return out;
    }

    static std::string strip_html(std::string_view html) {
        std::string out;
        bool in_tag = false;
        for (char c : html) {
            if (c == '<') {
                in_tag = true;
            } else if (c == '>') {
                in_tag = false;
                out.push_back(' ');
            } else if (!in_tag) {
                out.push_back(c);
            }
        }
        return out;
    }

public:
    // The text of the textBody parts (htmlBody's, tags stripped, when there is no text), separated by
    // newlines: what a body search and a snippet look in.
    std::string body_text() const {
        const std::vector<std::uint32_t>& source = !text_.empty() ? text_ : html_;
        std::string out;
        for (auto p : source) {
            std::string type = type_of(p);
            if (type != "text/plain" && type != "text/html") continue;
            std::string text = mail::decode_text(message_, part(p));
            if (!out.empty()) out.push_back('\n');
            out += type == "text/html" ? strip_html(text) : text;
        }
        return out;
    }

private:
    json preview() const {
        const std::vector<std::uint32_t>& source = !text_.empty() ? text_ : html_;
        for (auto p : source) {
            std::string type = type_of(p);
            if (type != "text/plain" && type != "text/html") continue;
            std::string text = mail::decode_text(message_, part(p));
            if (type == "text/html") text = strip_html(text);
            std::string out;
            std::size_t code_points = 0;
            bool space = false;
            for (unsigned char c : text) {
                if (std::isspace(c)) {
                    space = !out.empty();
                    continue;
                }
                if ((c & 0xC0) != 0x80) {
                    if (code_points + (space ? 1 : 0) >= kPreviewCodePoints) break;
                    if (space) {
                        out.push_back(' ');
                        ++code_points;
                        space = false;
                    }
                    ++code_points;
                }
                out.push_back(static_cast<char>(c));
            }
            return out;
        }
        return "";
    }

    mail::Message message_;
    std::string blob_id_;
    const BodyValueOptions& options_;
    std::vector<std::uint32_t> text_, html_, attachments_;
};

}  // namespace

bool is_message_property(std::string_view property) {
    return parse_header_property(property).has_value() ||
           std::ranges::find(kConvenience, property) != kConvenience.end() ||
           std::ranges::find(kBody, property) != kBody.end();
}

json email_view(std::string_view bytes, std::string_view blob_id, const std::vector<std::string>& properties,
                const BodyValueOptions& options) {
    View view(bytes, blob_id, options);
    json out = json::object();
    for (const auto& name : properties) {
        if (is_message_property(name)) out[name] = view.property(name);
    }
    return out;
}

std::string email_body_text(std::string_view bytes) {
    const BodyValueOptions options;
    return View(bytes, "", options).body_text();
}

std::string part_blob_id(std::string_view message_blob_id, std::uint32_t part_index) {
    return fmt::format("{}.{}", message_blob_id, part_index);
}

std::optional<std::pair<std::string, std::uint32_t>> split_part_blob_id(std::string_view blob_id) {
    std::size_t dot = blob_id.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    std::string_view index = blob_id.substr(dot + 1);
    if (index.empty() || index.size() > 6 || index.find_first_not_of("0123456789") != std::string_view::npos) {
        return std::nullopt;
    }
    return std::make_pair(std::string(blob_id.substr(0, dot)), static_cast<std::uint32_t>(std::stoul(std::string(index))));
}

std::optional<std::string> part_content(std::string_view bytes, std::uint32_t part_index) {
    auto message = mail::Message::parse(bytes);
    if (part_index >= message.parts().size()) return std::nullopt;
    const auto& part = message.parts()[part_index];
    if (part.kind == mail::PartKind::multipart) return std::nullopt;
    if (part.kind == mail::PartKind::message) return std::string(message.body(part));
    return mail::decode_body(message, part);
}

std::string utc_date(std::int64_t unix_seconds) {
    // Howard Hinnant's civil_from_days.
    std::int64_t days = unix_seconds >= 0 ? unix_seconds / 86400 : (unix_seconds - 86399) / 86400;
    std::int64_t seconds = unix_seconds - days * 86400;
    days += 719468;
    const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const auto doe = static_cast<unsigned>(days - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned day = doy - (153 * mp + 2) / 5 + 1;
    const unsigned month = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t year = static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", year, month, day, seconds / 3600, seconds / 60 % 60,
                       seconds % 60);
}

std::optional<std::int64_t> parse_utc_date(std::string_view s) {
    // YYYY-MM-DDTHH:MM:SS[.fraction]Z
    if (s.size() < 20 || s.back() != 'Z') return std::nullopt;
    const std::string_view shape = "dddd-dd-ddTdd:dd:dd";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(s[i])) : s[i] != shape[i]) return std::nullopt;
    }
    if (s.size() > 20) {
        if (s[19] != '.' || s.size() == 21 || s.size() > 30) return std::nullopt;
        for (std::size_t i = 20; i + 1 < s.size(); ++i) {
            if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
        }
    }
    auto number = [&](std::size_t at, std::size_t length) { return std::stoi(std::string(s.substr(at, length))); };
    int year = number(0, 4), month = number(5, 2), day = number(8, 2);
    int hour = number(11, 2), minute = number(14, 2), second = number(17, 2);
    if (month < 1 || month > 12 || day < 1 || static_cast<unsigned>(day) > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 60) {
        return std::nullopt;
    }
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

}  // namespace magpie::http
