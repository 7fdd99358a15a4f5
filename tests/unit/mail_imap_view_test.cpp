#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <memory>

#include "base/strings.h"
#include "mail/imap_view.h"
#include "mail/structure.h"
#include "mail/summary.h"

namespace magpie::mail {
namespace {

// RFC 3501 7.4.2 FETCH example, rebuilt so that sizes and line counts match it exactly. A line count is the
// number of line ends in the part's octets, and the CRLF before a boundary is the boundary's (RFC 2046
// 5.1.1), so each part ends with a line end of its own before the delimiter's.
std::string rfc3501_message() {
    std::string text1;
    for (int i = 0; i < 22; ++i) text1 += std::string(50, 'a') + "\r\n";
    text1 += "123456\r\n";  // 1152 octets, 23 lines
    std::string text2;
    for (int i = 0; i < 72; ++i) text2 += std::string(61, 'Q') + "\r\n";
    text2 += std::string(16, 'Q') + "\r\n";  // 4554 octets, 73 lines
    return "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
           "From: Terry Gray <gray@cac.washington.edu>\r\n"
           "Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
           "To: imap@cac.washington.edu\r\n"
           "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
           "Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: MULTIPART/MIXED; BOUNDARY=\"xyz\"\r\n"
           "\r\n"
           "--xyz\r\n"
           "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
           "Content-Transfer-Encoding: 7BIT\r\n"
           "\r\n" + text1 + "\r\n"
           "--xyz\r\n"
           "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff\r\n"
           "Content-ID: <960723163407.20117h@cac.washington.edu>\r\n"
           "Content-Description: Compiser\r\n"
           "Content-Transfer-Encoding: BASE64\r\n"
           "\r\n" + text2 + "\r\n"
           "--xyz--\r\n";
}


// A strict reader of the IMAP syntax that BODY, BODYSTRUCTURE and ENVELOPE use (RFC 3501 9): it fails the
// test on anything a client parser could trip over (spacing, quoting, literal counts, field counts).
struct Node {
    enum Kind { list, nil, number, string } kind = nil;
    std::string text;
    std::vector<std::unique_ptr<Node>> items;
    std::vector<bool> space_before;  // for lists: was item i preceded by SP
};

class ImapReader {
public:
    explicit ImapReader(std::string_view s) : s_(s) {}

    std::unique_ptr<Node> read() {
        auto n = std::make_unique<Node>();
        if (i_ >= s_.size()) return fail("unexpected end");
        char c = s_[i_];
        if (c == '(') {
            ++i_;
            n->kind = Node::list;
            bool first = true;
            while (i_ < s_.size() && s_[i_] != ')') {
                bool space = false;
                if (!first) {
                    if (s_[i_] == ' ') {
                        space = true;
                        ++i_;
                    } else if (s_[i_] != '(') {
                        return fail("missing space");
                    }
                }
                auto item = read();
                if (!item) return nullptr;
                n->items.push_back(std::move(item));
                n->space_before.push_back(space);
                first = false;
            }
            if (i_ >= s_.size()) return fail("unclosed list");
            ++i_;
        } else if (c == '"') {
            ++i_;
            n->kind = Node::string;
            while (i_ < s_.size() && s_[i_] != '"') {
                if (s_[i_] == '\\') ++i_;
                if (i_ >= s_.size() || s_[i_] == '\r' || s_[i_] == '\n' || static_cast<unsigned char>(s_[i_]) >= 0x80)
                    return fail("bad quoted char");
                n->text.push_back(s_[i_++]);
            }
            if (i_ >= s_.size()) return fail("unclosed quote");
            ++i_;
        } else if (c == '{') {
            std::size_t close = s_.find("}\r\n", i_);
            if (close == std::string_view::npos) return fail("bad literal");
            auto count = parse_uint(s_.substr(i_ + 1, close - i_ - 1));
            if (!count || close + 3 + *count > s_.size()) return fail("bad literal count");
            n->kind = Node::string;
            n->text = std::string(s_.substr(close + 3, *count));
            i_ = close + 3 + *count;
        } else if (s_.substr(i_, 3) == "NIL") {
            i_ += 3;
        } else if (c >= '0' && c <= '9') {
            n->kind = Node::number;
            while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') n->text.push_back(s_[i_++]);
        } else {
            return fail("unexpected character");
        }
        return n;
    }

    bool at_end() const { return i_ == s_.size(); }
    std::string error;

private:
    std::unique_ptr<Node> fail(const char* what) {
        error = std::string(what) + " at " + std::to_string(i_);
        return nullptr;
    }
    std::string_view s_;
    std::size_t i_ = 0;
};

bool is_nstring(const Node& n) { return n.kind == Node::nil || n.kind == Node::string; }
bool is_params(const Node& n) {
    if (n.kind == Node::nil) return true;
    if (n.kind != Node::list || n.items.empty() || n.items.size() % 2) return false;
    for (const auto& i : n.items) {
        if (i->kind != Node::string) return false;
    }
    return true;
}

void check_envelope(const Node& e) {
    ASSERT_EQ(e.kind, Node::list);
    ASSERT_EQ(e.items.size(), 10u);
    for (std::size_t i : {0u, 1u, 8u, 9u}) EXPECT_TRUE(is_nstring(*e.items[i]));
    for (std::size_t i = 2; i < 8; ++i) {
        const Node& list = *e.items[i];
        if (list.kind == Node::nil) continue;
        ASSERT_EQ(list.kind, Node::list);
        EXPECT_FALSE(list.items.empty());
        for (std::size_t a = 0; a < list.items.size(); ++a) {
            const Node& addr = *list.items[a];
            ASSERT_EQ(addr.kind, Node::list);
            ASSERT_EQ(addr.items.size(), 4u);
            for (const auto& f : addr.items) EXPECT_TRUE(is_nstring(*f));
            EXPECT_FALSE(list.space_before[a]);  // address structures are adjacent: 1*address
        }
    }
}

void check_extension_tail(const Node& b, std::size_t from) {
    // body-fld-dsp, body-fld-lang, body-fld-loc
    ASSERT_GE(b.items.size(), from + 3);
    const Node& dsp = *b.items[from];
    if (dsp.kind != Node::nil) {
        ASSERT_EQ(dsp.kind, Node::list);
        ASSERT_EQ(dsp.items.size(), 2u);
        EXPECT_EQ(dsp.items[0]->kind, Node::string);
        EXPECT_TRUE(is_params(*dsp.items[1]));
    }
    const Node& lang = *b.items[from + 1];
    EXPECT_TRUE(is_nstring(lang) || lang.kind == Node::list);
    EXPECT_TRUE(is_nstring(*b.items[from + 2]));
}

void check_body(const Node& b, bool extended) {
    ASSERT_EQ(b.kind, Node::list);
    ASSERT_FALSE(b.items.empty());
    if (b.items[0]->kind == Node::list) {  // body-type-mpart: 1*body SP media-subtype
        std::size_t i = 0;
        while (i < b.items.size() && b.items[i]->kind == Node::list) {
            if (i > 0) {
                EXPECT_FALSE(b.space_before[i]);
            }
            check_body(*b.items[i], extended);
            ++i;
        }
        ASSERT_LT(i, b.items.size());
        EXPECT_EQ(b.items[i]->kind, Node::string);
        EXPECT_TRUE(b.space_before[i]);
        if (extended) {
            ASSERT_EQ(b.items.size(), i + 5);
            EXPECT_TRUE(is_params(*b.items[i + 1]));
            check_extension_tail(b, i + 2);
        } else {
            EXPECT_EQ(b.items.size(), i + 1);
        }
        return;
    }
    ASSERT_GE(b.items.size(), 7u);
    EXPECT_EQ(b.items[0]->kind, Node::string);
    EXPECT_EQ(b.items[1]->kind, Node::string);
    EXPECT_TRUE(is_params(*b.items[2]));
    EXPECT_TRUE(is_nstring(*b.items[3]));
    EXPECT_TRUE(is_nstring(*b.items[4]));
    EXPECT_EQ(b.items[5]->kind, Node::string);
    EXPECT_EQ(b.items[6]->kind, Node::number);
    std::size_t next = 7;
    std::string type = to_lower(b.items[0]->text), subtype = to_lower(b.items[1]->text);
    if (type == "message" && (subtype == "rfc822" || subtype == "global")) {
        ASSERT_GE(b.items.size(), 10u);
        check_envelope(*b.items[7]);
        check_body(*b.items[8], extended);
        EXPECT_EQ(b.items[9]->kind, Node::number);
        next = 10;
    } else if (type == "text") {
        ASSERT_GE(b.items.size(), 8u);
        EXPECT_EQ(b.items[7]->kind, Node::number);
        next = 8;
    }
    if (extended) {
        ASSERT_EQ(b.items.size(), next + 4);
        EXPECT_TRUE(is_nstring(*b.items[next]));
        check_extension_tail(b, next + 1);
    } else {
        EXPECT_EQ(b.items.size(), next);
    }
}

void check_imap_syntax(const std::string& name, std::string_view text, bool envelope, bool extended) {
    SCOPED_TRACE(name + ": " + std::string(text.substr(0, 300)));
    ImapReader reader(text);
    auto node = reader.read();
    ASSERT_TRUE(node) << reader.error;
    EXPECT_TRUE(reader.at_end());
    if (envelope) {
        check_envelope(*node);
    } else {
        check_body(*node, extended);
    }
}

int failures_of(const std::function<void()>& check) {
    ::testing::TestPartResultArray results;
    {
        ::testing::ScopedFakeTestPartResultReporter reporter(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
        check();
    }
    return results.size();
}

TEST(ImapView, SyntaxCheckerRejectsMalformedStructures) {
    EXPECT_GT(failures_of([] {
                  check_imap_syntax("no lines", "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 3)", false, false);
              }),
              0);
    EXPECT_GT(failures_of([] {
                  check_imap_syntax("spaced parts",
                                    "((\"a\" \"b\" NIL NIL NIL \"7bit\" 3) (\"a\" \"b\" NIL NIL NIL \"7bit\" 3) \"mixed\")",
                                    false, false);
              }),
              0);
    EXPECT_GT(failures_of([] { check_imap_syntax("literal", "({9}\r\nab)", true, false); }), 0);
    EXPECT_EQ(failures_of([] {
                  check_imap_syntax("good", "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 3 1)", false, false);
              }),
              0);
}

TEST(ImapView, EveryCorpusMessageYieldsWellFormedImapSyntax) {
    std::filesystem::path dir = std::filesystem::path(MAGPIE_TEST_DATA_DIR) / "mail" / "corpus";
    std::size_t checked = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::ifstream in(e.path(), std::ios::binary);
        std::string raw((std::istreambuf_iterator<char>(in)), {});
        Message m = Message::parse(raw);
        std::string name = e.path().filename().string();
        check_imap_syntax(name, imap_envelope(m), true, false);
        check_imap_syntax(name, imap_body_structure(m, false), false, false);
        check_imap_syntax(name, imap_body_structure(m, true), false, true);
        ++checked;
    }
    EXPECT_GE(checked, 20u);
    check_imap_syntax("rfc3501", imap_body_structure(Message::parse(rfc3501_message()), true), false, true);
}

TEST(ImapView, EnvelopeMatchesRfc3501Example) {
    std::string raw = rfc3501_message();
    Message m = Message::parse(raw);
    EXPECT_EQ(imap_envelope(m),
              "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" "
              "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" "
              "\"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" "
              "\"cac.washington.edu\")) ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL "
              "\"KLENSIN\" \"MIT.EDU\")) NIL NIL \"<B27397-0100000@cac.washington.edu>\")");
}

TEST(ImapView, BodyMatchesRfc3501Example) {
    std::string raw = rfc3501_message();
    Message m = Message::parse(raw);
    EXPECT_EQ(imap_body_structure(m, false),
              "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23)(\"TEXT\" \"PLAIN\" "
              "(\"CHARSET\" \"US-ASCII\" \"NAME\" \"cc.diff\") \"<960723163407.20117h@cac.washington.edu>\" "
              "\"Compiser\" \"BASE64\" 4554 73) \"MIXED\")");
}

TEST(ImapView, BodyStructureCarriesExtensionData) {
    std::string_view raw =
        "Content-Type: multipart/mixed; boundary=b\r\nContent-Language: en, de\r\n\r\n"
        "--b\r\nContent-Type: application/pdf; name=\"a b.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename=\"a b.pdf\"\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
        "Content-Location: http://example.com/a\r\n\r\nAAAA\r\n--b--\r\n";
    Message m = Message::parse(raw);
    EXPECT_EQ(imap_body_structure(m, true),
              "((\"application\" \"pdf\" (\"name\" \"a b.pdf\") NIL NIL \"base64\" 4 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
              "(\"attachment\" (\"filename\" \"a b.pdf\")) NIL \"http://example.com/a\") \"mixed\" (\"boundary\" "
              "\"b\") NIL (\"en\" \"de\") NIL)");
}

TEST(ImapView, DefaultsSinglePartAndEncapsulatedMessage) {
    std::string_view raw =
        "Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n"
        "Subject: inner\r\nFrom: a@b\r\n\r\nhello\r\n";
    Message m = Message::parse(raw);
    EXPECT_EQ(imap_body_structure(m, false),
              "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 36 (NIL \"inner\" ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" "
              "\"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL "
              "NIL \"7bit\" 7 1) 4)");
}

TEST(ImapView, EncodedMessagePartStillHasEnvelopeAndBody) {
    Message m = Message::parse("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp5\r\n");
    EXPECT_EQ(imap_body_structure(m, false),
              "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 22 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" "
              "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) 1)");
    EXPECT_EQ(imap_body_structure(m, true),
              "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 22 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" "
              "\"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 1 NIL NIL NIL NIL)");
}

TEST(ImapView, EncodingIsTheMechanismTokenOnly) {
    Message m = Message::parse("Content-Transfer-Encoding: Base64 (it is)\r\nContent-Type: application/x\r\n\r\nAA==");
    EXPECT_EQ(imap_body_structure(m, false), "(\"application\" \"x\" NIL NIL NIL \"Base64\" 4)");
}

TEST(ImapView, FirstTransferEncodingFieldDecidesBothLabelAndDecoding) {
    // BODYSTRUCTURE names the first field; BINARY must decode by the same one, not by a later field.
    std::string_view raw = "Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n\r\naGk=";
    Message m = Message::parse(raw);
    EXPECT_EQ(imap_body_structure(m, false), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"base64\" 4 0)");
    EXPECT_EQ(*fetch_binary(m.parts(), raw, {1}), "hi");
}

TEST(ImapView, QuotesAndLiteralsInStrings) {
    EXPECT_EQ(imap_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    EXPECT_EQ(imap_string("caf\xC3\xA9"), "{5}\r\ncaf\xC3\xA9");
    // CHAR8 excludes NUL (RFC 3501 9): U+FFFD stands in for it.
    EXPECT_EQ(imap_string(std::string_view("a\0b", 3)), "{5}\r\na\xEF\xBF\xBD" "b");
    EXPECT_EQ(imap_nstring(""), "NIL");
    EXPECT_EQ(imap_string(""), "\"\"");
}

TEST(ImapView, EnvelopeGroupsAndMissingFields) {
    Message m = Message::parse("To: Team: a@b, c@d;, e@f\r\nBcc: undisclosed-recipients:;\r\n\r\n");
    EXPECT_EQ(imap_envelope(m),
              "(NIL NIL NIL NIL NIL ((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")(NIL NIL NIL NIL)"
              "(NIL NIL \"e\" \"f\")) NIL ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL)");
}

TEST(ImapView, ParsesSectionSpecs) {
    auto s = parse_section("1.2.HEADER.FIELDS (From \"To\")");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->part, (std::vector<std::uint32_t>{1, 2}));
    EXPECT_EQ(s->text, SectionSpec::Text::header_fields);
    EXPECT_EQ(s->fields, (std::vector<std::string>{"From", "To"}));
    EXPECT_EQ(parse_section("text")->text, SectionSpec::Text::text);
    EXPECT_TRUE(parse_section("")->part.empty());
    EXPECT_FALSE(parse_section("MIME"));
    EXPECT_FALSE(parse_section("0"));
    EXPECT_FALSE(parse_section("1."));
    EXPECT_FALSE(parse_section("HEADER.FIELDS ()"));
    EXPECT_FALSE(parse_section("BOGUS"));
}

constexpr std::string_view kNested =
    "Subject: top\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
    "--b\r\nContent-Type: message/rfc822\r\n\r\n"
    "Subject: inner\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n"
    "--c\r\n\r\nalt1\r\n--c\r\nContent-Type: text/html\r\n\r\n<b>alt2</b>\r\n--c--\r\n"
    "\r\n--b\r\nContent-Transfer-Encoding: base64\r\nContent-Type: application/octet-stream\r\n\r\naGVsbG8=\r\n"
    "--b--\r\n";

std::string section(std::span<const Part> parts, std::string_view raw, std::string_view spec) {
    auto parsed = parse_section(spec);
    EXPECT_TRUE(parsed) << spec;
    auto data = fetch_section(parts, raw, *parsed);
    if (!data) return "<error>";
    EXPECT_EQ(data->size(), data->materialize(raw).size());
    return data->materialize(raw);
}

void check_sections(std::span<const Part> parts, std::string_view raw) {
    EXPECT_EQ(section(parts, raw, ""), raw);
    EXPECT_EQ(section(parts, raw, "HEADER"), "Subject: top\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n");
    EXPECT_EQ(section(parts, raw, "HEADER.FIELDS (SUBJECT)"), "Subject: top\r\n\r\n");
    EXPECT_EQ(section(parts, raw, "HEADER.FIELDS.NOT (SUBJECT)"), "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
    EXPECT_EQ(section(parts, raw, "1"), "first");
    EXPECT_EQ(section(parts, raw, "1.MIME"), "Content-Type: text/plain\r\n\r\n");
    EXPECT_EQ(section(parts, raw, "2.HEADER"),
              "Subject: inner\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n");
    EXPECT_EQ(section(parts, raw, "2.1"), "alt1");
    EXPECT_EQ(section(parts, raw, "2.2"), "<b>alt2</b>");
    EXPECT_EQ(section(parts, raw, "2.2.MIME"), "Content-Type: text/html\r\n\r\n");
    EXPECT_TRUE(section(parts, raw, "2.TEXT").starts_with("--c\r\n"));
    EXPECT_EQ(section(parts, raw, "3"), "aGVsbG8=");
    EXPECT_EQ(section(parts, raw, "4"), "");      // no such part: empty
    EXPECT_EQ(section(parts, raw, "1.1"), "");
    EXPECT_EQ(section(parts, raw, "1.HEADER"), "<error>");  // not a message/rfc822
    EXPECT_EQ(*fetch_binary(parts, raw, {3}), "hello");
    EXPECT_EQ(*binary_size(parts, raw, {3}), 5u);
    EXPECT_FALSE(fetch_binary(parts, raw, {2, 9}));
    // A multipart is identity-encoded (RFC 2045 6.4): its BINARY is its body as it is.
    EXPECT_EQ(*fetch_binary(parts, raw, {2, 1}), "alt1");
    EXPECT_EQ(*fetch_binary(parts, raw, {2}), section(parts, raw, "2"));
    std::string_view inner_multipart = "Subject: x\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
                                       "Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\na\r\n--i--\r\n--o--\r\n";
    Message m = Message::parse(inner_multipart);
    EXPECT_EQ(*fetch_binary(m.parts(), inner_multipart, {1}), "--i\r\n\r\na\r\n--i--");
    EXPECT_EQ(*binary_size(m.parts(), inner_multipart, {1}), 15u);
}

TEST(ImapView, ResolvesSectionsFromParsedMessage) {
    Message m = Message::parse(kNested);
    check_sections(m.parts(), kNested);
}

// A multipart that cannot be split (no boundary parameter, no delimiter line, only the close delimiter) is
// described as Dovecot describes it: a multipart of one empty text/plain part, whose sections are empty;
// its octets stay reachable as BODY[TEXT] (or BODY[n] when nested).
TEST(ImapView, AnUnsplittableMultipartIsOneEmptyTextPartAsDovecotSays) {
    const std::string_view empty_child = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0";
    for (std::string_view raw : {
             std::string_view("Subject: a\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\ntext\r\n--x--\r\n"),
             std::string_view("Subject: b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b--\r\n"),
             std::string_view("Subject: c\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nno delimiter\r\n")}) {
        Message m = Message::parse(raw);
        const std::string structure = imap_body_structure(m, true);
        EXPECT_TRUE(structure.starts_with("(" + std::string(empty_child) + " NIL NIL NIL NIL) \"mixed\" ")) << structure;
        EXPECT_TRUE(imap_body_structure(m, false).starts_with("(" + std::string(empty_child) + ") \"mixed\")"))
            << imap_body_structure(m, false);
        EXPECT_EQ(section(m.parts(), raw, "1"), "") << raw;
        EXPECT_EQ(section(m.parts(), raw, "1.MIME"), "") << raw;
        EXPECT_EQ(section(m.parts(), raw, "TEXT"), raw.substr(raw.find("\r\n\r\n") + 4));
        EXPECT_FALSE(fetch_binary(m.parts(), raw, {1}));  // no such part (the session answers it empty)
    }
    std::string_view nested = "Subject: n\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
                              "Content-Type: multipart/alternative\r\n\r\ninner\r\n--o--\r\n";
    Message m = Message::parse(nested);
    EXPECT_EQ(imap_body_structure(m, false), "((" + std::string(empty_child) + ") \"alternative\") \"mixed\")");
    EXPECT_EQ(section(m.parts(), nested, "1"), "inner");
    EXPECT_EQ(section(m.parts(), nested, "1.1"), "");
}

// ENVELOPE carries the octets of the fields (RFC 3501 7.4.2 nstrings; RFC 6855 for UTF-8), never a
// conversion: raw UTF-8 and raw Latin-1 arrive as the sender wrote them, as literals (8-bit), as Dovecot does.
TEST(ImapView, EnvelopeKeepsRawEightBitOctets) {
    for (std::string_view subject : {std::string_view("Gr\xc3\xbc\xc3\x9f" "e"), std::string_view("caf\xe9")}) {
        const std::string raw = "Subject: " + std::string(subject) + "\r\nFrom: J\xf6rg <j@x.example>\r\n\r\nbody\r\n";
        Message m = Message::parse(raw);
        const std::string envelope = imap_envelope(m, m.root());
        EXPECT_TRUE(envelope.starts_with("(NIL {" + std::to_string(subject.size()) + "}\r\n" + std::string(subject) + " "))
            << envelope;
        EXPECT_NE(envelope.find("(({4}\r\nJ\xf6rg NIL \"j\" \"x.example\"))"), std::string::npos) << envelope;
    }
}

TEST(ImapView, SinglePartMessageHasPartOne) {
    std::string_view raw = "Subject: x\r\n\r\nbody";
    Message m = Message::parse(raw);
    EXPECT_EQ(section(m.parts(), raw, "1"), "body");
    EXPECT_EQ(section(m.parts(), raw, "TEXT"), "body");
    EXPECT_EQ(section(m.parts(), raw, "2"), "");
    std::string_view bare = "Subject: x";  // no blank line, no line end
    Message b = Message::parse(bare);
    EXPECT_EQ(section(b.parts(), bare, "HEADER"), "Subject: x");  // its octets, nothing added
    EXPECT_EQ(section(b.parts(), bare, "HEADER.FIELDS (subject)"), "Subject: x\r\n\r\n");
}

TEST(ImapView, SlicesSectionsForPartialFetch) {
    std::string_view raw = "A: 1\r\nB: 2\r\nC: 3";
    Message m = Message::parse(raw);
    auto data = fetch_section(m.parts(), raw, *parse_section("HEADER.FIELDS (A C)"));
    ASSERT_TRUE(data);
    std::string whole = data->materialize(raw);
    EXPECT_EQ(whole, "A: 1\r\nC: 3\r\n\r\n");
    for (std::size_t offset = 0; offset <= whole.size() + 1; ++offset) {
        for (std::size_t length = 0; length <= whole.size() + 1; ++length) {
            std::string expected = offset < whole.size() ? whole.substr(offset, length) : "";
            EXPECT_EQ(data->slice(offset, length).materialize(raw), expected) << offset << " " << length;
        }
    }
}

// The text part of a one-part message, or part n of a multipart: its BODYSTRUCTURE (basic form).
std::string structure_of(std::string_view raw) { return imap_body_structure(Message::parse(raw), false); }

TEST(ImapViewLines, CrlfBeforeBoundaryIsNotALineOfThePart) {
    // RFC 2046 5.1.1: the CRLF before "--b" is the delimiter's, so BODY[1] is "abc" and has no line end.
    std::string_view raw = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc\r\n--b--\r\n";
    Message m = Message::parse(raw);
    EXPECT_EQ(section(m.parts(), raw, "1"), "abc");
    EXPECT_EQ(imap_body_structure(m, false),
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"mixed\")");
}

TEST(ImapViewLines, CountsTheLineEndsOfExactlyTheServedOctets) {
    // A part whose text ends with its own CRLF keeps it: one line end before the delimiter's.
    EXPECT_EQ(structure_of("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc\r\n\r\n--b--\r\n"),
              "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1) \"mixed\")");
    // An unterminated last line at the end of the message is not a line end either.
    EXPECT_EQ(structure_of("Subject: x\r\n\r\nhello"), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)");
    EXPECT_EQ(structure_of("Subject: x\r\n\r\na\r\nb"), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 1)");
    EXPECT_EQ(structure_of("Subject: x\r\n\r\na\r\nb\r\n"), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 2)");
    // Bare LF ends a line too; an empty body has none.
    EXPECT_EQ(structure_of("Subject: x\n\na\nb\n"), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 2)");
    EXPECT_EQ(structure_of("Subject: x\r\n\r\n"), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
}

TEST(ImapViewLines, EncapsulatedMessageBeforeABoundaryCountsTheSameWay) {
    std::string_view raw =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
        "Subject: in\r\n\r\nx\r\ny\r\n--b--\r\n";
    Message m = Message::parse(raw);
    EXPECT_EQ(section(m.parts(), raw, "1"), "Subject: in\r\n\r\nx\r\ny");
    std::string body = imap_body_structure(m, false);
    // The inner text "x" CRLF "y" has one line end; the message/rfc822 part's 18 octets have three.
    EXPECT_NE(body.find("\"7bit\" 4 1) 3)"), std::string::npos) << body;
}

std::string dotted(const std::vector<std::uint32_t>& numbers) {
    std::string out;
    for (auto n : numbers) out += (out.empty() ? "" : ".") + std::to_string(n);
    return out;
}

// Walks a BODYSTRUCTURE and checks each line count against the line ends of BODY[section].
void check_line_counts(const Node& b, std::vector<std::uint32_t> path, std::span<const Part> parts,
                       std::string_view raw, std::size_t& checked) {
    ASSERT_EQ(b.kind, Node::list);
    if (b.items[0]->kind == Node::list) {
        for (std::uint32_t i = 0; i < b.items.size() && b.items[i]->kind == Node::list; ++i) {
            auto child = path;
            child.push_back(i + 1);
            check_line_counts(*b.items[i], child, parts, raw, checked);
        }
        return;
    }
    std::string type = to_lower(b.items[0]->text), subtype = to_lower(b.items[1]->text);
    SectionSpec spec;
    spec.part = path.empty() ? std::vector<std::uint32_t>{1} : path;
    std::string octets = fetch_section(parts, raw, spec)->materialize(raw);
    auto line_ends = std::to_string(std::count(octets.begin(), octets.end(), '\n'));
    if (type == "text") {
        EXPECT_EQ(b.items[7]->text, line_ends) << "part " << dotted(spec.part);
        ++checked;
    } else if (type == "message" && subtype == "rfc822" && b.items.size() >= 10) {
        EXPECT_EQ(b.items[9]->text, line_ends) << "part " << dotted(spec.part);
        ++checked;
        const Node& inner = *b.items[8];
        auto inner_path = spec.part;
        if (inner.items[0]->kind != Node::list) inner_path.push_back(1);
        check_line_counts(inner, inner_path, parts, raw, checked);
    }
}

TEST(ImapViewLines, EveryCorpusLineCountIsTheLineEndsOfItsSection) {
    std::filesystem::path dir = std::filesystem::path(MAGPIE_TEST_DATA_DIR) / "mail" / "corpus";
    std::size_t checked = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::ifstream in(e.path(), std::ios::binary);
        std::string raw((std::istreambuf_iterator<char>(in)), {});
        Message m = Message::parse(raw);
        std::string body = imap_body_structure(m, false);
        SCOPED_TRACE(e.path().filename().string() + ": " + body);
        ImapReader reader(body);
        auto node = reader.read();
        ASSERT_TRUE(node) << reader.error;
        check_line_counts(*node, {}, m.parts(), raw, checked);
    }
    std::string nested = imap_body_structure(Message::parse(kNested), false);
    check_line_counts(*ImapReader(nested).read(), {}, Message::parse(kNested).parts(), kNested, checked);
    EXPECT_GE(checked, 40u);
}

TEST(ImapViewParams, JoinsRfc2231SectionsIntoOneParameterAsDovecotDoes) {
    std::string_view raw =
        "Content-Type: application/pdf; name*0*=UTF-8''%EC%95%A8; name*1*=%EB%A6%AC.pdf\r\n"
        "Content-Disposition: attachment; filename*0=\"foo\"; filename*1=\"bar.pdf\"\r\n\r\nxx\r\n";
    Message m = Message::parse(raw);
    EXPECT_EQ(imap_body_structure(m, true),
              "(\"application\" \"pdf\" (\"name*\" \"UTF-8''%EC%95%A8%EB%A6%AC.pdf\") NIL NIL \"7bit\" 4 NIL "
              "(\"attachment\" (\"filename\" \"foobar.pdf\")) NIL NIL)");
    // The decoded view of the same parameter is the UTF-8 name a reader shows.
    EXPECT_EQ(m.content_type(m.root()).params.get("name"), "\xEC\x95\xA8\xEB\xA6\xAC.pdf");
}

std::vector<RawParameter> joined(std::string_view params) {
    return join_rfc2231_sections(parse_parameters(params).raw);
}

std::string flat(const std::vector<RawParameter>& list) {
    std::string out;
    for (const auto& p : list) out += p.name + "=" + p.value + ";";
    return out;
}

TEST(ImapViewParams, JoinKeepsOrderSpellingAndEncodingRules) {
    // Sections out of order are sorted; the name keeps its spelling; plain parameters come first.
    EXPECT_EQ(flat(joined("NAME*1*=%EB%A6%AC.pdf; zz=1; NAME*0*=UTF-8''%EC%95%A8")),
              "zz=1;NAME*=UTF-8''%EC%95%A8%EB%A6%AC.pdf;");
    // A plain section inside an encoded value: an empty charset'language' prefix, its '%' escaped.
    EXPECT_EQ(flat(joined("b*0=\"q%\"; b*1*=%41")), "b*=''q%25%41;");
    // Names differing only in case are one parameter (RFC 2045 5.1).
    EXPECT_EQ(flat(joined("t*0=a; T*1=b")), "t=ab;");
    // Joined names in byte order of their spelling, upper case first, wherever they stood.
    EXPECT_EQ(flat(joined("zz=1; gap*1=x; TITLE*1*=%41; TITLE*0=q")), "zz=1;TITLE*=''q%41;gap*1=x;");
    // One extended value without sections stays as written.
    EXPECT_EQ(flat(joined("title*=us-ascii'en'This%20is")), "title*=us-ascii'en'This%20is;");
    // A gap or a repeated number: the sections are not one value, so they stay as written.
    EXPECT_EQ(flat(joined("c*1=gap")), "c*1=gap;");
    EXPECT_EQ(flat(joined("d*0=a; d*2=c")), "d*0=a;d*2=c;");
    EXPECT_EQ(flat(joined("e*0=a; e*0=b")), "e*0=a;e*0=b;");
    // Not an RFC 2231 name: kept as an ordinary parameter.
    EXPECT_EQ(flat(joined("f*x=1; *0=2")), "f*x=1;*0=2;");
    EXPECT_EQ(flat(joined("")), "");
}

TEST(ImapViewParams, TextPartWithoutCharsetGetsUsAsciiBesideItsParameters) {
    auto params_of = [](std::string_view content_type) {
        std::string s = structure_of("Content-Type: " + std::string(content_type) + "\r\n\r\nhi\r\n");
        return s.substr(0, s.find(" NIL NIL"));
    };
    EXPECT_EQ(params_of("text/plain; format=flowed"), "(\"text\" \"plain\" (\"format\" \"flowed\" \"charset\" \"us-ascii\")");
    EXPECT_EQ(params_of("TEXT/Plain; name=a"), "(\"TEXT\" \"Plain\" (\"name\" \"a\" \"charset\" \"us-ascii\")");
    EXPECT_EQ(params_of("text/plain"), "(\"text\" \"plain\" (\"charset\" \"us-ascii\")");
    // A charset given in any case is kept as it is, and nothing is added.
    EXPECT_EQ(params_of("text/html; CHARSET=utf-8; format=flowed"),
              "(\"text\" \"html\" (\"CHARSET\" \"utf-8\" \"format\" \"flowed\")");
    // Not text: no charset invented.
    EXPECT_EQ(params_of("application/pdf; name=a"), "(\"application\" \"pdf\" (\"name\" \"a\")");
    EXPECT_EQ(structure_of("Content-Type: image/png\r\n\r\nhi\r\n"), "(\"image\" \"png\" NIL NIL NIL \"7bit\" 4)");
    // No Content-Type at all: text/plain; charset=us-ascii (RFC 2045 5.2).
    EXPECT_EQ(structure_of("Subject: x\r\n\r\nhi\r\n"), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 4 1)");
}

TEST(ImapViewParams, DefaultCharsetOnlyInAContentTypeOfText) {
    // A multipart's parameters and a disposition's never get one.
    std::string_view raw =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; format=fixed\r\n"
        "Content-Disposition: inline; size=3\r\n\r\nabc\r\n--b--\r\n";
    EXPECT_EQ(imap_body_structure(Message::parse(raw), true),
              "((\"text\" \"plain\" (\"format\" \"fixed\" \"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL "
              "(\"inline\" (\"size\" \"3\")) NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
}

TEST(ImapViewSections, HeaderOfAMessageWithoutBlankLineIsExactlyItsOctets) {
    std::string_view raw = "Subject: nohdrend\r\nFrom: a@b";
    Message m = Message::parse(raw);
    EXPECT_EQ(section(m.parts(), raw, "HEADER"), raw);
    EXPECT_EQ(section(m.parts(), raw, "TEXT"), "");
    EXPECT_EQ(section(m.parts(), raw, "1.MIME"), raw);  // a one-part message: its header is part 1's MIME header
    // Terminated fields but no blank line: the same, nothing added.
    std::string_view ended = "Subject: nohdrend\r\nFrom: a@b\r\n";
    EXPECT_EQ(section(Message::parse(ended).parts(), ended, "HEADER"), ended);
    // HEADER.FIELDS still ends with the blank line RFC 3501 6.4.5 gives it.
    EXPECT_EQ(section(m.parts(), raw, "HEADER.FIELDS (From)"), "From: a@b\r\n\r\n");
    EXPECT_EQ(section(m.parts(), raw, "HEADER.FIELDS (X-None)"), "\r\n");
}

TEST(ImapViewSections, NestedHeadersWithoutBlankLineAreExactlyTheirOctets) {
    std::string_view raw =
        "Subject: a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
        "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y\r\n--b--\r\n";
    Message m = Message::parse(raw);
    EXPECT_EQ(section(m.parts(), raw, "1.MIME"), "Content-Type: text/plain");
    EXPECT_EQ(section(m.parts(), raw, "1"), "");
    EXPECT_EQ(section(m.parts(), raw, "2.HEADER"), "Subject: inner\r\nFrom: x@y");
    EXPECT_EQ(section(m.parts(), raw, "2.TEXT"), "");
}

TEST(ImapViewSections, HeaderAndTextTogetherAreTheWholeMessageForEveryCorpusMessage) {
    std::filesystem::path dir = std::filesystem::path(MAGPIE_TEST_DATA_DIR) / "mail" / "corpus";
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        std::ifstream in(e.path(), std::ios::binary);
        std::string raw((std::istreambuf_iterator<char>(in)), {});
        Message m = Message::parse(raw);
        EXPECT_EQ(section(m.parts(), raw, "HEADER") + section(m.parts(), raw, "TEXT"), raw) << e.path().filename();
    }
}

TEST(Structure, RoundTripServesSameSectionsWithoutReparsing) {
    Message m = Message::parse(kNested);
    std::string blob = serialize_structure(m);
    auto s = Structure::parse(blob);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->body_structure(), imap_body_structure(m, true));
    EXPECT_EQ(s->body(), imap_body_structure(m, false));
    EXPECT_EQ(s->envelope(), imap_envelope(m));
    EXPECT_EQ(s->message_size(), kNested.size());
    ASSERT_EQ(s->parts().size(), m.parts().size());
    Structure moved = std::move(*s);
    check_sections(moved.parts(), kNested);
    EXPECT_EQ(summarize(kNested).structure, blob);
}

// A large message is served from its blob without being read whole: with only the octets
// section_lookup_range() names at hand, every section resolves to the ranges the whole message gives.
TEST(Structure, SectionsFromAWindowMatchTheWholeMessage) {
    Message m = Message::parse(kNested);
    for (const char* text : {"", "HEADER", "TEXT", "1", "2", "2.HEADER", "2.TEXT", "2.1", "2.2.MIME",
                             "HEADER.FIELDS (Subject)", "HEADER.FIELDS.NOT (Subject From)",
                             "2.HEADER.FIELDS (Subject)", "2.HEADER.FIELDS.NOT (To)", "9.HEADER.FIELDS (X)"}) {
        SectionSpec spec = *parse_section(text);
        auto whole = fetch_section(m.parts(), kNested, spec);
        ASSERT_TRUE(whole) << text;
        ByteRange lookup = section_lookup_range(m.parts(), spec);
        std::string_view window = std::string_view(kNested).substr(lookup.offset, lookup.length);
        auto windowed = fetch_section(m.parts(), window, lookup.offset, kNested.size(), spec);
        ASSERT_TRUE(windowed) << text;
        EXPECT_EQ(windowed->materialize(kNested), whole->materialize(kNested)) << text;
        EXPECT_EQ(windowed->size(), whole->size()) << text;
    }
}

TEST(Structure, MismatchedMessageBytesNeverReadOutOfBounds) {
    // Found by fuzzing: a structure used with bytes shorter than the message it describes.
    Message m = Message::parse(kNested);
    auto s = Structure::parse(serialize_structure(m));
    ASSERT_TRUE(s);
    std::string_view shorter = kNested.substr(0, 20);
    for (const char* text : {"", "HEADER", "TEXT", "1", "2.HEADER", "2.1", "2.2.MIME", "HEADER.FIELDS (Subject)"}) {
        auto data = fetch_section(s->parts(), shorter, *parse_section(text));
        ASSERT_TRUE(data) << text;
        EXPECT_LE(data->materialize(shorter).size(), shorter.size() + 4) << text;
    }
    EXPECT_TRUE(fetch_binary(s->parts(), shorter, {3}));
}

TEST(Structure, RejectsEveryTruncationAndBadMagic) {
    Message m = Message::parse(kNested);
    std::string blob = serialize_structure(m);
    for (std::size_t n = 0; n < blob.size(); ++n) {
        EXPECT_FALSE(Structure::parse(blob.substr(0, n))) << n;
    }
    std::string bad = blob;
    bad[0] = 'X';
    EXPECT_FALSE(Structure::parse(bad));
    EXPECT_FALSE(Structure::parse(blob + "x"));
}

}  // namespace
}  // namespace magpie::mail
