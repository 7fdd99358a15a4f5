#include "mail/builder.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <random>

#include "base/strings.h"
#include "base/time.h"
#include "mail/downgrade.h"

namespace magpie::mail {

namespace {

// A boundary collides with content only by astronomical chance; a few retries make it certain.
constexpr int kBoundaryAttempts = 8;

bool is_mime_token(std::string_view s) {
    if (s.empty()) return false;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f ||
            std::string_view("()<>@,;:\\\"/[]?=").find(ch) != std::string_view::npos)
            return false;
    }
    return true;
}

Result<void> check_media_type(std::string_view type) {
    std::size_t slash = type.find('/');
    if (slash == std::string_view::npos || !is_mime_token(type.substr(0, slash)) ||
        !is_mime_token(type.substr(slash + 1)))
        return make_error(Errc::invalid_argument, "bad media type: " + std::string(type));
    return {};
}

// A msg-id as written by a caller: "<left@right>" in printable ASCII without white space (RFC 5322 3.6.4).
Result<void> check_msg_id(std::string_view id) {
    if (id.size() < 5 || id.front() != '<' || id.back() != '>' || id.find('@') == std::string_view::npos)
        return make_error(Errc::invalid_argument, "bad Message-ID: " + std::string(id));
    for (char ch : id) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f) return make_error(Errc::invalid_argument, "bad Message-ID");
    }
    return {};
}

// In-Reply-To and References: msg-ids separated by spaces, nothing else (RFC 5322 3.6.4).
Result<void> check_msg_id_list(std::string_view ids) {
    for (std::string_view id : split(ids, ' ')) {
        if (id.empty()) continue;
        MAGPIE_TRY(check_msg_id(id));
    }
    return {};
}

// RFC 2046 5.2: these message types take no encoding but 7bit, 8bit or binary.
bool is_identity_only_type(std::string_view type) {
    return istarts_with(type, "message/rfc822") || istarts_with(type, "message/partial") ||
           istarts_with(type, "message/external-body");
}

class FieldWriter {
public:
    explicit FieldWriter(const FoldLimits& fold) : fold_(fold) {}

    Result<void> add(std::string_view name, std::string_view value) {
        auto folded = fold_field(name, value, fold_);
        if (!folded) return folded.error();
        out_.append(*folded);
        return {};
    }

    Result<void> add_result(std::string_view name, const Result<std::string>& value) {
        if (!value) return value.error();
        return add(name, *value);
    }

    std::string take() { return std::move(out_); }

private:
    FoldLimits fold_;
    std::string out_;
};

Result<EncodedPart> make_attachment(const Attachment& attachment, const BuildOptions& options) {
    MAGPIE_TRY(check_media_type(attachment.content_type));
    std::string type = to_lower(attachment.content_type);
    std::vector<std::string> name_parameters;
    std::string disposition = attachment.inline_disposition ? "inline" : "attachment";
    FieldWriter extra(options.fold);
    if (!attachment.filename.empty()) {
        // Content-Disposition filename is the standard (RFC 2183); Content-Type name is what old readers use.
        auto filename = encode_parameter("filename", attachment.filename, options.utf8_headers);
        if (!filename) return filename.error();
        auto name = encode_parameter("name", attachment.filename, options.utf8_headers);
        if (!name) return name.error();
        name_parameters = std::move(name).value();
        disposition = join_parameters(disposition, *filename);
    }
    MAGPIE_TRY(extra.add("Content-Disposition", disposition));
    if (!attachment.content_id.empty()) {
        std::string id = "<" + attachment.content_id + ">";
        MAGPIE_TRY(check_msg_id(id));
        MAGPIE_TRY(extra.add("Content-ID", id));
    }
    bool text = istarts_with(type, "text/");
    if (iequals(type, "message/rfc822")) {
        auto enclosed = fit_enclosed_message(attachment.data, options.transport);
        if (!enclosed) return enclosed.error();
        return make_leaf(join_parameters(type, name_parameters), *enclosed, false, options.transport,
                         options.fold, extra.take());
    }
    return make_leaf(join_parameters(type, name_parameters), attachment.data, text, options.transport,
                     options.fold, extra.take());
}

}  // namespace

BuildEnv system_build_env(std::string domain) {
    auto device = std::make_shared<std::random_device>();
    BuildEnv env;
    env.now = unix_now();
    env.random = [device]() {
        return (static_cast<std::uint64_t>((*device)()) << 32) ^ static_cast<std::uint64_t>((*device)());
    };
    env.domain = std::move(domain);
    return env;
}

std::string generate_message_id(const BuildEnv& env) {
    std::uint64_t a = env.random();
    std::uint64_t b = env.random();
    return fmt::format("<{:x}.{:016x}{:016x}@{}>", static_cast<std::uint64_t>(env.now), a, b, env.domain);
}

std::string generate_boundary(const BuildEnv& env) {
    // "=_" is impossible in base64 (no '=' before data ends, no '_') and in quoted-printable ('=' is always
    // followed by hex or a line break), so only identity-encoded parts need checking.
    std::uint64_t a = env.random();
    std::uint64_t b = env.random();
    return fmt::format("=_{:016x}{:016x}", a, b);
}

std::string canonical_crlf(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 32);
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\r') {
            out.append("\r\n");
            if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
        } else if (c == '\n') {
            out.append("\r\n");
        } else {
            out.push_back(c);
        }
    }
    return out;
}

bool has_bare_lf(std::string_view text) {
    for (std::size_t i = text.find('\n'); i != std::string_view::npos; i = text.find('\n', i + 1)) {
        if (i == 0 || text[i - 1] != '\r') return true;
    }
    return false;
}

std::string bare_lf_to_crlf(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 32);
    std::size_t from = 0;
    for (std::size_t i = text.find('\n'); i != std::string_view::npos; i = text.find('\n', i + 1)) {
        out.append(text, from, i - from);
        out.append(i > 0 && text[i - 1] == '\r' ? "\n" : "\r\n");
        from = i + 1;
    }
    out.append(text, from);
    return out;
}

Result<EncodedPart> make_leaf(std::string_view content_type, std::string_view content, bool text,
                              Transport transport, const FoldLimits& fold, std::string extra_fields) {
    std::string canonical = text ? canonical_crlf(content) : std::string(content);
    TransferEncoding encoding;
    if (is_identity_only_type(content_type)) {
        BodyStats stats = measure_body(canonical);
        bool lines_ok =
            stats.nul == 0 && stats.bare_cr_or_lf == 0 && stats.longest_line <= kMaxBodyLineOctets;
        if (transport == Transport::binary) {
            encoding = TransferEncoding::binary;
        } else if (lines_ok && stats.eight_bit == 0) {
            encoding = TransferEncoding::seven_bit;
        } else if (lines_ok && transport == Transport::eight_bit) {
            encoding = TransferEncoding::eight_bit;
        } else {
            return make_error(Errc::invalid_argument,
                              "message part does not fit the transport without downgrade");
        }
    } else {
        encoding = choose_transfer_encoding(canonical, text, transport);
        // RFC 5322 2.1.1: lines SHOULD stay within 78; quoted-printable soft breaks keep long lines short
        // without changing the content (a 7bit or 8bit body has no bare CR or LF to disturb).
        bool identity = encoding == TransferEncoding::seven_bit || encoding == TransferEncoding::eight_bit;
        if (identity && measure_body(canonical).longest_line > fold.soft_line_octets)
            encoding = TransferEncoding::quoted_printable;
    }
    FieldWriter fields(fold);
    MAGPIE_TRY(fields.add("Content-Type", content_type));
    MAGPIE_TRY(fields.add("Content-Transfer-Encoding", transfer_encoding_name(encoding)));
    EncodedPart part;
    part.header = fields.take() + extra_fields;
    part.body = apply_transfer_encoding(canonical, encoding);
    return part;
}

Result<EncodedPart> make_multipart(std::string_view subtype, std::vector<EncodedPart> parts,
                                   const BuildEnv& env, const std::vector<std::string>& extra_parameters) {
    std::string boundary;
    for (int attempt = 0;; ++attempt) {
        if (attempt == kBoundaryAttempts)
            return make_error(Errc::internal, "no boundary free of the content");
        boundary = generate_boundary(env);
        std::string delimiter = "--" + boundary;
        bool clash = false;
        for (const auto& part : parts) {
            clash = clash || part.body.find(delimiter) != std::string::npos ||
                    part.header.find(delimiter) != std::string::npos;
        }
        if (!clash) break;
    }
    std::vector<std::string> parameters = *encode_parameter("boundary", boundary);
    parameters.insert(parameters.end(), extra_parameters.begin(), extra_parameters.end());
    FieldWriter fields(FoldLimits{});
    MAGPIE_TRY(fields.add("Content-Type", join_parameters("multipart/" + to_lower(subtype), parameters)));

    EncodedPart out;
    out.header = fields.take();
    std::size_t size = 0;
    for (const auto& part : parts) size += part.header.size() + part.body.size() + boundary.size() + 10;
    out.body.reserve(size + boundary.size() + 8);
    // RFC 2046 5.1.1: the CRLF before "--boundary" belongs to the delimiter, not to the part.
    for (const auto& part : parts) {
        out.body.append("--").append(boundary).append("\r\n");
        out.body.append(part.header).append("\r\n").append(part.body).append("\r\n");
    }
    out.body.append("--").append(boundary).append("--\r\n");
    return out;
}

std::string assemble_message(std::string_view top_fields, const EncodedPart& body) {
    std::string out;
    out.reserve(top_fields.size() + body.header.size() + body.body.size() + 24);
    out.append(top_fields);
    out.append("MIME-Version: 1.0\r\n");
    out.append(body.header);
    out.append("\r\n");
    out.append(body.body);
    if (!out.ends_with("\r\n")) out.append("\r\n");
    return out;
}

Result<std::string> build_message(const Draft& draft, const BuildOptions& options, const BuildEnv& env) {
    if (!env.random) return make_error(Errc::internal, "BuildEnv without a random source");
    if (draft.attachments.size() > options.max_attachments)
        return make_error(Errc::limit_exceeded, "too many attachments");
    std::size_t estimate = draft.subject.size();
    if (draft.text) estimate += draft.text->size();
    if (draft.html) estimate += draft.html->size();
    for (const auto& attachment : draft.attachments) estimate += attachment.data.size() / 3 * 4;
    if (estimate > options.max_message_octets) return make_error(Errc::limit_exceeded, "message too large");

    const bool utf8 = options.utf8_headers;
    FieldWriter fields(options.fold);
    MAGPIE_TRY(fields.add("Date", rfc5322_date(draft.date.value_or(env.now))));
    // No From at all is a draft still being written (JMAP Email/set, RFC 8621 4.6); sending checks it.
    if (!draft.from.address.empty() || !draft.from.name.empty())
        MAGPIE_TRY(fields.add_result("From", format_mailbox(draft.from, utf8)));
    if (draft.sender) MAGPIE_TRY(fields.add_result("Sender", format_mailbox(*draft.sender, utf8)));
    if (!draft.reply_to.empty())
        MAGPIE_TRY(fields.add_result("Reply-To", format_mailbox_list(draft.reply_to, utf8)));
    if (!draft.to.empty()) MAGPIE_TRY(fields.add_result("To", format_mailbox_list(draft.to, utf8)));
    if (!draft.cc.empty()) MAGPIE_TRY(fields.add_result("Cc", format_mailbox_list(draft.cc, utf8)));
    if (!draft.bcc.empty() && options.write_bcc)
        MAGPIE_TRY(fields.add_result("Bcc", format_mailbox_list(draft.bcc, utf8)));
    if (draft.to.empty() && draft.cc.empty() && (draft.bcc.empty() || !options.write_bcc)) {
        MAGPIE_TRY(fields.add("To", "undisclosed-recipients:;"));  // RFC 5322 3.6.3: a destination field
    }
    MAGPIE_TRY(fields.add_result("Subject", encode_unstructured(draft.subject, utf8)));
    std::string message_id = draft.message_id.empty() ? generate_message_id(env) : draft.message_id;
    MAGPIE_TRY(check_msg_id(message_id));
    MAGPIE_TRY(fields.add("Message-ID", message_id));
    if (!draft.in_reply_to.empty()) {
        MAGPIE_TRY(check_msg_id_list(draft.in_reply_to));
        MAGPIE_TRY(fields.add("In-Reply-To", draft.in_reply_to));
    }
    if (!draft.references.empty()) {
        MAGPIE_TRY(check_msg_id_list(draft.references));
        MAGPIE_TRY(fields.add("References", draft.references));
    }
    for (const auto& [name, value] : draft.extra_fields) {
        if (istarts_with(name, "content-") || iequals(name, "mime-version"))
            return make_error(Errc::invalid_argument, "the builder writes " + name + " itself");
        MAGPIE_TRY(fields.add_result(name, encode_unstructured(value, utf8)));
    }

    for (const auto* body : {&draft.text, &draft.html}) {
        if (*body && !is_valid_utf8(**body))
            return make_error(Errc::invalid_argument, "body is not valid UTF-8");
    }
    std::vector<EncodedPart> alternatives;
    if (draft.text || !draft.html) {
        auto part = make_leaf("text/plain; charset=utf-8", draft.text.value_or(""), true, options.transport,
                              options.fold);
        if (!part) return part.error();
        alternatives.push_back(std::move(part).value());
    }
    if (draft.html) {
        auto part = make_leaf("text/html; charset=utf-8", *draft.html, true, options.transport, options.fold);
        if (!part) return part.error();
        alternatives.push_back(std::move(part).value());
    }
    EncodedPart body;
    if (alternatives.size() == 1) {
        body = std::move(alternatives.front());
    } else {
        // RFC 2046 5.1.4: the plainest alternative first.
        auto multipart = make_multipart("alternative", std::move(alternatives), env);
        if (!multipart) return multipart.error();
        body = std::move(multipart).value();
    }
    if (!draft.attachments.empty()) {
        std::vector<EncodedPart> mixed;
        mixed.push_back(std::move(body));
        for (const auto& attachment : draft.attachments) {
            auto part = make_attachment(attachment, options);
            if (!part) return part.error();
            mixed.push_back(std::move(part).value());
        }
        auto multipart = make_multipart("mixed", std::move(mixed), env);
        if (!multipart) return multipart.error();
        body = std::move(multipart).value();
    }
    std::string message = assemble_message(fields.take(), body);
    if (message.size() > options.max_message_octets)
        return make_error(Errc::limit_exceeded, "message too large");
    return message;
}

Result<std::string> fit_enclosed_message(std::string_view message, Transport transport) {
    if (transport == Transport::binary) return std::string(message);
    BodyStats stats = measure_body(message);
    bool fits = stats.nul == 0 && stats.bare_cr_or_lf == 0 && stats.longest_line <= kMaxBodyLineOctets &&
                (stats.eight_bit == 0 || transport == Transport::eight_bit);
    if (fits) return std::string(message);
    // Binary or over-long parts, or 8-bit ones for a 7-bit hop: re-encode those parts (the result is 7-bit,
    // which an 8-bit hop takes too), then give the 7-bit lines left their canonical CRLF ends.
    auto seven_bit = downgrade_to_7bit(message);
    if (!seven_bit) return seven_bit.error();
    return canonical_crlf(*seven_bit);
}

std::vector<std::string> envelope_recipients(const Draft& draft) {
    std::vector<std::string> out;
    for (const auto* list : {&draft.to, &draft.cc, &draft.bcc}) {
        for (const auto& mailbox : *list) {
            if (std::find(out.begin(), out.end(), mailbox.address) == out.end())
                out.push_back(mailbox.address);
        }
    }
    return out;
}

}  // namespace magpie::mail
