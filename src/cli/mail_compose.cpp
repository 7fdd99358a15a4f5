#include "cli/mail_compose.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "base/strings.h"
#include "mail/address.h"
#include "mail/decode.h"
#include "mail/message.h"

namespace magpie::cli::mail_ui {
namespace {

Error invalid(std::string message) {
    return make_error(Errc::invalid_argument, std::move(message));
}

// Decoded header text can hold anything an encoded word carried ("=?UTF-8?Q?a=0D=0ABcc:_x?="): a reply
// must not write it back as a line break, so control characters become spaces.
std::string without_controls(std::string text) {
    for (char& c : text)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
    return text;
}

std::vector<mail::MailboxSpec> specs(std::string_view field_value) {
    std::vector<mail::MailboxSpec> out;
    for (const auto& m : mail::mailboxes(mail::parse_address_list(field_value))) {
        if (m.local_part.empty() || m.domain.empty()) continue;
        std::string address = m.addr_spec();
        if (address.find_first_of("\r\n") != std::string::npos) continue;
        out.push_back(mail::MailboxSpec{without_controls(m.name), std::move(address)});
    }
    return out;
}

bool same_address(std::string_view a, std::string_view b) {
    return iequals(a, b);
}

bool contains(const std::vector<mail::MailboxSpec>& list, std::string_view address) {
    return std::ranges::any_of(list, [&](const auto& m) { return same_address(m.address, address); });
}

// Lines of `text` without their line ends (CRLF or LF); a final line end adds no empty line.
std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string_view line =
            text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        if (nl == std::string_view::npos) break;
        pos = nl + 1;
    }
    return lines;
}

// ---- HTML to text ---------------------------------------------------------------------------------------

class TextRenderer {
public:
    std::string finish() {
        while (!out_.empty() && (out_.back() == '\n' || out_.back() == ' ')) out_.pop_back();
        if (!out_.empty()) out_ += '\n';
        return std::move(out_);
    }

    void walk(xmlNode* node, std::size_t depth) {
        for (; node != nullptr; node = node->next) {
            if (node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) {
                text(reinterpret_cast<const char*>(node->content));
            } else if (node->type == XML_ELEMENT_NODE) {
                element(node, depth);
            }
        }
    }

private:
    void element(xmlNode* node, std::size_t depth) {
        std::string name = to_lower(reinterpret_cast<const char*>(node->name));
        if (name == "script" || name == "style" || name == "head" || name == "title" || depth > 200) return;
        if (name == "br") {
            out_ += '\n';
            space_ = false;
            return;
        }
        if (name == "img") {
            if (auto* alt = xmlGetProp(node, reinterpret_cast<const xmlChar*>("alt"))) {
                text(reinterpret_cast<const char*>(alt));
                xmlFree(alt);
            }
            return;
        }
        const bool paragraph = name == "p" || name == "blockquote" || name == "pre" || name == "table" ||
                               (name.size() == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6');
        const bool block = paragraph || name == "div" || name == "ul" || name == "ol" || name == "li" ||
                           name == "tr" || name == "hr" || name == "section" || name == "article" ||
                           name == "header" || name == "footer" || name == "dt" || name == "dd";
        if (block) newlines(paragraph ? 2 : 1);
        if (name == "li") pending_prefix_ = "- ";
        if (name == "td" || name == "th") space_ = true;
        bool was_pre = pre_;
        if (name == "pre") pre_ = true;
        std::size_t before = out_.size();
        walk(node->children, depth + 1);
        pre_ = was_pre;
        if (name == "a") {
            if (auto* href = xmlGetProp(node, reinterpret_cast<const xmlChar*>("href"))) {
                std::string target = reinterpret_cast<const char*>(href);
                xmlFree(href);
                std::string shown = out_.substr(before);
                std::string bare = target.starts_with("mailto:") ? target.substr(7) : target;
                if (!target.empty() && target[0] != '#' && shown.find(bare) == std::string::npos)
                    text(" <" + target + ">");
            }
        }
        if (block) newlines(paragraph ? 2 : 1);
    }

    void newlines(int n) { pending_newlines_ = std::max(pending_newlines_, n); }

    void text(std::string_view s) {
        for (char c : s) {
            bool white = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
            if (white && !pre_) {
                space_ = true;
                continue;
            }
            flush();
            out_ += c;
        }
    }

    void flush() {
        if (pending_newlines_ > 0 && !out_.empty()) {
            while (!out_.empty() && out_.back() == ' ') out_.pop_back();
            int have = 0;
            for (auto it = out_.rbegin(); it != out_.rend() && *it == '\n' && have < 2; ++it) ++have;
            for (int i = have; i < pending_newlines_; ++i) out_ += '\n';
        } else if (space_ && !out_.empty() && out_.back() != '\n' && out_.back() != ' ') {
            out_ += ' ';
        }
        pending_newlines_ = 0;
        space_ = false;
        out_ += pending_prefix_;
        pending_prefix_.clear();
    }

    std::string out_;
    std::string pending_prefix_;
    int pending_newlines_ = 0;
    bool space_ = false;
    bool pre_ = false;
};

bool is_body_candidate(const mail::Message& message, const mail::Part& part) {
    if (part.kind != mail::PartKind::leaf || !iequals(part.type, "text")) return false;
    auto disposition = message.content_disposition(part);
    return disposition.kind != "attachment";
}

std::string part_filename(const mail::Message& message, const mail::Part& part) {
    std::string name = message.content_disposition(part).params.get("filename");
    if (name.empty()) name = message.content_type(part).params.get("name");
    return name;
}

}  // namespace

Result<void> check_header_input(std::string_view what, std::string_view value) {
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        return invalid(std::string(what) + " holds a line break or NUL: refused (header injection)");
    if (!is_valid_utf8(value)) return invalid(std::string(what) + " is not valid UTF-8");
    return {};
}

Result<std::vector<mail::MailboxSpec>> parse_recipients(std::string_view what, std::string_view text) {
    MAGPIE_TRY(check_header_input(what, text));
    std::vector<mail::MailboxSpec> out;
    for (const auto& address : mail::parse_address_list(text)) {
        for (const auto& m : address.members) {
            if (m.local_part.empty() || m.domain.empty())
                return invalid(std::string(what) + ": \"" + m.addr_spec() + "\" is not local@domain");
            out.push_back(mail::MailboxSpec{m.name, m.addr_spec()});
        }
    }
    if (out.empty() && !trim(text).empty())
        return invalid(std::string(what) + ": no address in \"" + std::string(text) + "\"");
    return out;
}

std::string html_to_text(std::string_view html) {
    if (html.empty()) return {};
    const int options = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                        HTML_PARSE_IGNORE_ENC;
    // The text was converted to UTF-8 already: the document's own charset hint must not apply again.
    htmlDocPtr doc =
        htmlReadMemory(html.data(), static_cast<int>(std::min<std::size_t>(html.size(), INT32_MAX)), nullptr,
                       "UTF-8", options);
    if (doc == nullptr) return std::string(html);
    TextRenderer renderer;
    renderer.walk(xmlDocGetRootElement(doc), 0);
    xmlFreeDoc(doc);
    return renderer.finish();
}

Readable readable(const mail::Message& message) {
    Readable r;
    auto header = message.header();
    r.from = mail::format_address_list(mail::parse_address_list(header.value("From")));
    r.to = mail::format_address_list(mail::parse_address_list(header.value("To")));
    r.cc = mail::format_address_list(mail::parse_address_list(header.value("Cc")));
    r.date = header.value("Date");
    r.subject = header.decoded("Subject");

    const mail::Part* plain = nullptr;
    const mail::Part* html = nullptr;
    for (const auto& part : message.parts()) {
        if (!is_body_candidate(message, part)) continue;
        if (!plain && iequals(part.subtype, "plain")) plain = &part;
        if (!html && iequals(part.subtype, "html")) html = &part;
    }
    const mail::Part* body = plain ? plain : html;
    if (plain) {
        // A terminal wants LF; the builder turns lines back into CRLF when the text is sent again.
        const std::string decoded = mail::decode_text(message, *plain);
        for (auto line : lines_of(decoded)) {
            r.text += line;
            r.text += '\n';
        }
    } else if (html) {
        r.text = html_to_text(mail::decode_text(message, *html));
        r.from_html = true;
    }
    for (const auto& part : message.parts()) {
        if (part.kind != mail::PartKind::leaf || &part == body) continue;
        auto disposition = message.content_disposition(part);
        std::string filename = part_filename(message, part);
        bool text_alternative =
            iequals(part.type, "text") && disposition.kind != "attachment" && filename.empty();
        if (text_alternative || (&part == &message.root())) continue;
        AttachmentInfo info;
        info.part = message.index_of(part);
        info.filename = filename.empty() ? "part-" + std::to_string(info.part) : filename;
        info.content_type = to_lower(part.type) + "/" + to_lower(part.subtype);
        info.size = mail::decoded_transfer_size(message.body(part), part.encoding);
        r.attachments.push_back(std::move(info));
    }
    return r;
}

std::string safe_filename(std::string_view name) {
    std::size_t slash = name.find_last_of("/\\");
    if (slash != std::string_view::npos) name = name.substr(slash + 1);
    std::string out;
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7F) ? '_' : c;
    }
    while (!out.empty() && (out.front() == '.' || out.front() == ' ')) out.erase(0, 1);
    if (out.size() > 200) out.resize(200);
    if (!is_valid_utf8(out)) out = "attachment";
    return out.empty() ? "attachment" : out;
}

std::string guess_media_type(const std::filesystem::path& file, const std::filesystem::path& mime_types) {
    std::string ext = to_lower(file.extension().string());
    if (ext.size() > 1) {
        ext.erase(0, 1);
        std::ifstream in(mime_types);
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty() || line[0] == '#') continue;
            std::istringstream words(line);
            std::string type, candidate;
            words >> type;
            while (words >> candidate)
                if (candidate == ext && type.find('/') != std::string::npos) return to_lower(type);
        }
    }
    return "application/octet-stream";
}

std::string reply_subject(std::string_view subject) {
    subject = trim(subject);
    if (istarts_with(subject, "re:") || istarts_with(subject, "aw:")) return std::string(subject);
    return "Re: " + std::string(subject);
}

std::string forward_subject(std::string_view subject) {
    subject = trim(subject);
    if (istarts_with(subject, "fwd:") || istarts_with(subject, "fw:")) return std::string(subject);
    return "Fwd: " + std::string(subject);
}

Original original_of(const mail::Message& message) {
    Original o;
    auto header = message.header();
    auto ids = mail::parse_message_ids(header.value("Message-ID"), 1);
    if (!ids.empty()) o.message_id = ids.front();
    std::string refs = header.value("References");
    if (refs.empty()) refs = header.value("In-Reply-To");
    auto ref_ids = mail::parse_message_ids(refs, 100);
    for (const auto& id : ref_ids) o.references += (o.references.empty() ? "" : " ") + id;
    o.subject = without_controls(header.decoded("Subject"));
    o.date = without_controls(header.value("Date"));
    o.from = specs(header.value("From"));
    o.reply_to = specs(header.value("Reply-To"));
    o.to = specs(header.value("To"));
    o.cc = specs(header.value("Cc"));
    o.from_display = mail::format_address_list(mail::parse_address_list(header.value("From")));
    if (!o.from.empty())
        o.from_name = o.from.front().name.empty() ? o.from.front().address : o.from.front().name;
    o.text = readable(message).text;
    return o;
}

mail::Draft draft_of(const mail::Message& message) {
    mail::Draft draft;
    auto header = message.header();
    draft.to = specs(header.value("To"));
    draft.cc = specs(header.value("Cc"));
    draft.bcc = specs(header.value("Bcc"));
    draft.subject = without_controls(header.decoded("Subject"));
    auto join = [](const std::vector<std::string>& ids) {
        std::string out;
        for (const auto& id : ids) out += (out.empty() ? "" : " ") + id;
        return out;
    };
    draft.in_reply_to = join(mail::parse_message_ids(header.value("In-Reply-To"), 100));
    draft.references = join(mail::parse_message_ids(header.value("References"), 100));
    auto shown = readable(message);
    draft.text = std::move(shown.text);
    for (const auto& a : shown.attachments) {
        mail::Attachment copy;
        copy.filename = a.filename;
        copy.content_type = a.content_type;
        copy.data = mail::decode_body(message, message.parts()[a.part]);
        draft.attachments.push_back(std::move(copy));
    }
    return draft;
}

void address_reply(const Original& original, bool all, std::string_view self, mail::Draft& draft) {
    draft.to = original.reply_to.empty() ? original.from : original.reply_to;
    // Replying to one's own message: the reply goes to whom it went to.
    if (all && draft.to.size() == 1 && same_address(draft.to.front().address, self)) {
        draft.to = original.to;
        std::erase_if(draft.to, [&](const auto& m) { return same_address(m.address, self); });
    }
    if (all) {
        for (const auto* list : {&original.to, &original.cc}) {
            for (const auto& m : *list) {
                if (same_address(m.address, self) || contains(draft.to, m.address) ||
                    contains(draft.cc, m.address))
                    continue;
                draft.cc.push_back(m);
            }
        }
    }
    draft.subject = reply_subject(original.subject);
    draft.in_reply_to = original.message_id;
    draft.references = original.references;
    if (!original.message_id.empty())
        draft.references += (draft.references.empty() ? "" : " ") + original.message_id;
}

std::string quote(const Original& original) {
    std::string out = "On " + (original.date.empty() ? std::string("an unknown date") : original.date) +
                      ", " + (original.from_name.empty() ? std::string("someone") : original.from_name) +
                      " wrote:\n";
    for (auto line : lines_of(original.text)) {
        out += line.empty() ? ">" : "> ";
        out += line;
        out += '\n';
    }
    return out;
}

std::string forward_block(const Original& original) {
    std::string out = "---------- Forwarded message ----------\n";
    out += "From: " + original.from_display + "\n";
    out += "Date: " + original.date + "\n";
    out += "Subject: " + original.subject + "\n";
    std::string to;
    for (const auto& m : original.to)
        to += (to.empty() ? "" : ", ") + (m.name.empty() ? m.address : m.name + " <" + m.address + ">");
    out += "To: " + to + "\n\n";
    out += original.text;
    if (!out.ends_with('\n')) out += '\n';
    return out;
}

}  // namespace magpie::cli::mail_ui
