#include "mail/structure.h"

#include "mail/imap_view.h"

namespace magpie::mail {
namespace {

constexpr std::string_view kMagic = "MGS1";

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7F) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

void put_bytes(std::string& out, std::string_view s) {
    put_varint(out, s.size());
    out.append(s);
}

// Link to another part stored as index + 1 so that "none" is 0.
std::uint64_t link(std::uint32_t index) { return index == kNoPart ? 0 : std::uint64_t{index} + 1; }

class Reader {
public:
    explicit Reader(std::string_view s) : s_(s) {}

    bool varint(std::uint64_t& v) {
        v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos_ >= s_.size()) return false;
            auto byte = static_cast<unsigned char>(s_[pos_++]);
            v |= std::uint64_t{byte & 0x7Fu} << shift;
            if (!(byte & 0x80)) return true;
        }
        return false;
    }

    bool bytes(std::string_view& out) {
        std::uint64_t n = 0;
        if (!varint(n) || n > s_.size() - pos_) return false;
        out = s_.substr(pos_, n);
        pos_ += n;
        return true;
    }

    bool at_end() const { return pos_ == s_.size(); }

private:
    std::string_view s_;
    std::size_t pos_ = 0;
};

}  // namespace

std::string serialize_structure(const Message& message) {
    std::string out;
    out.reserve(512);
    out.append(kMagic);
    put_varint(out, message.bytes().size());
    put_varint(out, message.parts().size());
    for (const Part& p : message.parts()) {
        put_varint(out, p.header_offset);
        put_varint(out, p.body_offset - p.header_offset);
        put_varint(out, p.end - p.body_offset);
        put_varint(out, p.preamble_end - std::min(p.preamble_end, p.body_offset));
        put_varint(out, p.epilogue_offset - std::min(p.epilogue_offset, p.body_offset));
        put_varint(out, link(p.parent));
        put_varint(out, link(p.first_child));
        put_varint(out, link(p.next_sibling));
        put_varint(out, p.depth);
        put_varint(out, static_cast<std::uint64_t>(p.kind) | (static_cast<std::uint64_t>(p.encoding) << 2) |
                            (std::uint64_t{p.closed} << 5));
        put_bytes(out, p.type);
        put_bytes(out, p.subtype);
    }
    std::string body, body_structure;
    imap_body_and_structure(message, body, body_structure);
    put_bytes(out, imap_envelope(message));
    put_bytes(out, body);
    put_bytes(out, body_structure);
    return out;
}

Result<Structure> Structure::parse(std::string_view blob, const Limits& limits) {
    auto corrupt = [](const char* what) { return make_error(Errc::corrupt, std::string("structure: ") + what); };
    if (blob.size() > limits.max_octets) return corrupt("too large");
    if (blob.substr(0, kMagic.size()) != kMagic) return corrupt("bad magic");
    Structure s;
    s.blob_ = std::make_unique<std::string>(blob);
    Reader r(std::string_view(*s.blob_).substr(kMagic.size()));
    std::uint64_t size = 0, count = 0;
    if (!r.varint(size) || !r.varint(count)) return corrupt("truncated");
    if (count == 0 || count > limits.max_parts || count > blob.size()) return corrupt("bad part count");
    s.message_size_ = size;
    s.parts_.resize(count);
    for (std::uint64_t i = 0; i < count; ++i) {
        std::uint64_t v[10];
        for (auto& x : v) {
            if (!r.varint(x)) return corrupt("truncated part");
        }
        Part& p = s.parts_[i];
        if (v[0] > size || v[1] > size - v[0] || v[2] > size - v[0] - v[1]) return corrupt("part outside message");
        p.header_offset = v[0];
        p.body_offset = v[0] + v[1];
        p.end = p.body_offset + v[2];
        if (v[3] > v[2] || v[4] > v[2]) return corrupt("bad preamble or epilogue");
        p.preamble_end = p.body_offset + v[3];
        p.epilogue_offset = p.body_offset + v[4];
        auto unlink = [&](std::uint64_t l, std::uint32_t& out) {
            if (l > count) return false;
            out = l == 0 ? kNoPart : static_cast<std::uint32_t>(l - 1);
            // Children and siblings come later in depth-first order; this rules out cycles.
            return true;
        };
        if (!unlink(v[5], p.parent) || !unlink(v[6], p.first_child) || !unlink(v[7], p.next_sibling))
            return corrupt("bad link");
        if ((p.first_child != kNoPart && p.first_child <= i) || (p.next_sibling != kNoPart && p.next_sibling <= i) ||
            (p.parent != kNoPart && p.parent >= i) || (i > 0 && p.parent == kNoPart))
            return corrupt("links out of order");
        if (v[8] > 0xFFFF) return corrupt("bad depth");
        p.depth = static_cast<std::uint16_t>(v[8]);
        std::uint64_t kind = v[9] & 3, encoding = (v[9] >> 2) & 7;
        if (kind > 2 || encoding > 5 || (v[9] >> 6) != 0) return corrupt("bad flags");
        p.kind = static_cast<PartKind>(kind);
        p.encoding = static_cast<TransferEncoding>(encoding);
        p.closed = (v[9] >> 5) & 1;
        if ((p.kind == PartKind::leaf) != (p.first_child == kNoPart)) return corrupt("children do not match kind");
        if (!r.bytes(p.type) || !r.bytes(p.subtype)) return corrupt("truncated type");
    }
    if (!r.bytes(s.envelope_) || !r.bytes(s.body_) || !r.bytes(s.body_structure_) || !r.at_end())
        return corrupt("bad trailer");
    return s;
}

}  // namespace magpie::mail
