#include "imap/client/data.h"

#include <algorithm>

#include "base/strings.h"
#include "imap/mutf7.h"
#include "mail/encoded_word.h"
#include "mail/header_encode.h"
#include "mail/mime_params.h"

namespace magpie::imap::client {
namespace {

Error bad(std::string what) {
    return make_error(Errc::invalid_argument, std::move(what));
}

Result<std::vector<EnvelopeAddress>> parse_addresses(const Value& value) {
    std::vector<EnvelopeAddress> out;
    if (value.is_nil()) return out;
    if (!value.is_list()) return bad("envelope address list is not a list");
    for (const auto& a : value.items) {
        if (!a.is_list() || a.items.size() != 4) return bad("envelope address is not four fields");
        // RFC 9051 7.5.2: a NIL host marks a group's start (mailbox = group name) or end; skip both.
        if (a.items[3].is_nil()) continue;
        EnvelopeAddress address;
        address.name = mail::decode_encoded_words(a.items[0].str());
        address.mailbox = std::string(a.items[2].str());
        address.host = std::string(a.items[3].str());
        out.push_back(std::move(address));
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> parse_parameter_list(const Value& value) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!value.is_list()) return out;
    for (std::size_t i = 0; i + 1 < value.items.size(); i += 2)
        out.emplace_back(to_lower(value.items[i].str()), std::string(value.items[i + 1].str()));
    return out;
}

// body-ext-1part / body-ext-mpart: the disposition comes after MD5 (leaf) or after the parameters
// (multipart); `index` is where the disposition would be.
void read_disposition(const Value& node, std::size_t index, BodyStructure& body) {
    if (index >= node.items.size() || !node.items[index].is_list()) return;
    const Value& d = node.items[index];
    if (d.items.empty()) return;
    body.disposition = to_lower(d.items[0].str());
    if (d.items.size() > 1) body.disposition_parameters = parse_parameter_list(d.items[1]);
}

std::string child_section(const std::string& parent, std::size_t index) {
    std::string n = std::to_string(index + 1);
    return parent.empty() ? n : parent + "." + n;
}

// A parameter list as a header would carry it, so the mail library undoes RFC 2231 for us.
std::string parameters_as_header(const std::vector<std::pair<std::string, std::string>>& params) {
    std::string text;
    for (const auto& [name, value] : params) {
        bool clean = std::ranges::none_of(value, [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
        if (!clean) continue;
        text += "; " + name + "=";
        text += name.ends_with('*') ? value : mail::quoted_string(value);
    }
    return text;
}

std::uint32_t to_u32(std::uint64_t n) {
    return static_cast<std::uint32_t>(n);
}

}  // namespace

std::string EnvelopeAddress::addr_spec() const {
    return host.empty() ? mailbox : mailbox + "@" + host;
}

std::string EnvelopeAddress::display() const {
    return name.empty() ? addr_spec() : name + " <" + addr_spec() + ">";
}

std::string BodyStructure::parameter(std::string_view name) const {
    for (const auto& [n, v] : parameters)
        if (iequals(n, name)) return v;
    return {};
}

std::string BodyStructure::filename() const {
    auto from = [](const std::vector<std::pair<std::string, std::string>>& params, std::string_view name) {
        auto list = mail::parse_parameters(parameters_as_header(params));
        return mail::decode_encoded_words(list.get(name));
    };
    std::string name = from(disposition_parameters, "filename");
    if (name.empty()) name = from(parameters, "name");
    return name;
}

bool BodyStructure::is_attachment() const {
    if (is_multipart()) return false;
    if (disposition == "attachment") return true;
    return type != "text" && type != "multipart" && !filename().empty();
}

Result<Envelope> parse_envelope(const Value& value) {
    if (!value.is_list() || value.items.size() < 10) return bad("ENVELOPE is not a list of ten fields");
    const auto& f = value.items;
    Envelope e;
    e.date = std::string(f[0].str());
    e.subject = mail::decode_encoded_words(f[1].str());
    std::vector<EnvelopeAddress>* lists[] = {&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc};
    for (std::size_t i = 0; i < 6; ++i) {
        auto addresses = parse_addresses(f[2 + i]);
        if (!addresses) return addresses.error();
        *lists[i] = std::move(*addresses);
    }
    e.in_reply_to = std::string(f[8].str());
    e.message_id = std::string(f[9].str());
    return e;
}

Result<BodyStructure> parse_body_structure(const Value& value, std::string section) {
    if (!value.is_list() || value.items.empty()) return bad("BODYSTRUCTURE is not a list");
    const auto& f = value.items;
    BodyStructure body;
    body.section = section;
    if (f[0].is_list()) {
        // body-type-mpart: 1*body SP media-subtype [SP body-ext-mpart]
        std::size_t i = 0;
        for (; i < f.size() && f[i].is_list(); ++i) {
            auto child = parse_body_structure(f[i], child_section(section, i));
            if (!child) return child.error();
            body.children.push_back(std::move(*child));
        }
        body.type = "multipart";
        if (i < f.size()) body.subtype = to_lower(f[i].str());
        if (i + 1 < f.size()) body.parameters = parse_parameter_list(f[i + 1]);
        read_disposition(value, i + 2, body);
        return body;
    }
    // body-type-1part: type subtype params id description encoding size [lines] [extensions]
    if (f.size() < 7) return bad("single-part BODYSTRUCTURE with fewer than seven fields");
    body.type = to_lower(f[0].str());
    body.subtype = to_lower(f[1].str());
    body.parameters = parse_parameter_list(f[2]);
    body.id = std::string(f[3].str());
    body.description = mail::decode_encoded_words(f[4].str());
    body.encoding = to_lower(f[5].str());
    body.size = f[6].as_number().value_or(0);
    std::size_t extensions = 7;
    if (body.type == "message" && (body.subtype == "rfc822" || body.subtype == "global") && f.size() >= 10) {
        // envelope, body, lines follow the basic fields (RFC 9051 7.5.2 body-type-msg).
        // A multipart inside numbers its parts from this section; a single part inside is section.1.
        bool multipart = !f[8].items.empty() && f[8].items[0].is_list();
        auto child = parse_body_structure(f[8], multipart ? section : child_section(section, 0));
        if (!child) return child.error();
        body.children.push_back(std::move(*child));
        extensions = 10;
    } else if (body.type == "text") {
        extensions = 8;
    }
    // body-ext-1part: md5 then disposition.
    read_disposition(value, extensions + 1, body);
    return body;
}

Result<FetchData> parse_fetch(const Untagged& response) {
    if (response.name != "FETCH" || !response.number) return bad("not a FETCH response");
    if (response.data.size() != 1 || !response.data[0].is_list()) return bad("FETCH data is not one list");
    FetchData data;
    data.sequence = *response.number;
    const auto& items = response.data[0].items;
    if (items.size() % 2 != 0) return bad("FETCH item without a value");
    for (std::size_t i = 0; i < items.size(); i += 2) {
        std::string name = to_upper(items[i].str());
        const Value& v = items[i + 1];
        if (name == "UID") {
            auto n = v.as_number();
            if (!n || *n == 0 || *n > UINT32_MAX) return bad("FETCH UID is not a number");
            data.uid = to_u32(*n);
        } else if (name == "FLAGS") {
            if (!v.is_list()) return bad("FETCH FLAGS is not a list");
            std::vector<std::string> flags;
            for (const auto& flag : v.items) flags.emplace_back(flag.str());
            data.flags = std::move(flags);
        } else if (name == "RFC822.SIZE") {
            data.size = v.as_number();
        } else if (name == "INTERNALDATE") {
            data.internal_date = std::string(v.str());
        } else if (name == "ENVELOPE") {
            auto e = parse_envelope(v);
            if (!e) return e.error();
            data.envelope = std::move(*e);
        } else if (name == "BODYSTRUCTURE" || name == "BODY") {
            auto b = parse_body_structure(v);
            if (!b) return b.error();
            data.body_structure = std::move(*b);
        } else if (name.starts_with("BODY[") || name.starts_with("BINARY[") || name.starts_with("RFC822")) {
            // "BODY[1]<0>": the origin says where a partial fetch started; the key drops it.
            std::size_t close = name.rfind(']');
            std::string key = close == std::string::npos ? name : name.substr(0, close + 1);
            data.sections[key] = std::string(v.str());
        }
    }
    return data;
}

Result<ListEntry> parse_list(const Untagged& response, bool utf8) {
    if ((response.name != "LIST" && response.name != "LSUB") || response.data.size() < 3)
        return bad("not a LIST response");
    ListEntry entry;
    if (!response.data[0].is_list()) return bad("LIST attributes are not a list");
    for (const auto& a : response.data[0].items) entry.attributes.emplace_back(a.str());
    entry.delimiter = std::string(response.data[1].str());
    entry.name = std::string(response.data[2].str());
    if (utf8) return entry;
    if (auto decoded = mutf7_decode(entry.name)) entry.name = std::move(*decoded);
    return entry;
}

Result<std::vector<std::uint32_t>> expand_sequence_set(std::string_view set, std::size_t max) {
    std::vector<std::uint32_t> out;
    for (auto range : split(set, ',')) {
        auto colon = range.find(':');
        auto first = parse_uint(range.substr(0, colon));
        auto last = colon == std::string_view::npos ? first : parse_uint(range.substr(colon + 1));
        if (!first || !last || *first == 0 || *last == 0 || *first > UINT32_MAX || *last > UINT32_MAX)
            return bad("bad sequence set");
        auto lo = std::min(*first, *last), hi = std::max(*first, *last);
        if (hi - lo + 1 > max - out.size()) return bad("sequence set too large");
        for (auto n = lo; n <= hi; ++n) out.push_back(to_u32(n));
    }
    return out;
}

Result<std::vector<std::uint32_t>> parse_search(const Untagged& response) {
    std::vector<std::uint32_t> out;
    if (response.name == "SEARCH") {
        for (const auto& v : response.data) {
            if (v.is_list()) continue;  // (MODSEQ n), RFC 7162 3.1.5
            auto n = v.as_number();
            if (!n || *n == 0 || *n > UINT32_MAX) return bad("SEARCH result is not a number");
            out.push_back(to_u32(*n));
        }
        return out;
    }
    if (response.name == "ESEARCH") {
        for (std::size_t i = 0; i + 1 < response.data.size(); ++i)
            if (iequals(response.data[i].str(), "ALL"))
                return expand_sequence_set(response.data[i + 1].str());
        return out;
    }
    return bad("not a SEARCH response");
}

Result<UidCode> parse_append_uid(const ResponseText& text) {
    if (text.code != "APPENDUID") return bad("no APPENDUID code");
    auto words = split_words(text.code_args, false);
    if (words.size() != 2) return bad("APPENDUID needs two fields");
    auto validity = parse_uint(words[0]);
    auto uids = expand_sequence_set(words[1]);
    if (!validity || !uids) return bad("unreadable APPENDUID");
    return UidCode{to_u32(*validity), std::move(*uids)};
}

Result<UidCode> parse_copy_uid(const ResponseText& text) {
    if (text.code != "COPYUID") return bad("no COPYUID code");
    auto words = split_words(text.code_args, false);
    if (words.size() != 3) return bad("COPYUID needs three fields");
    auto validity = parse_uint(words[0]);
    auto uids = expand_sequence_set(words[2]);
    if (!validity || !uids) return bad("unreadable COPYUID");
    return UidCode{to_u32(*validity), std::move(*uids)};
}

}  // namespace magpie::imap::client
