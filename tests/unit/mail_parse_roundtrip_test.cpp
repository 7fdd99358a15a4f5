// Round trips across the two halves of the library: whatever the writers (header_encode.h, base64.h,
// quoted_printable.h, builder.h) produce, the readers here give back exactly, on random input.
#include <gtest/gtest.h>

#include <random>

#include "mail/address.h"
#include "base/strings.h"
#include "mail/base64.h"
#include "mail/builder.h"
#include "mail/decode.h"
#include "mail/encoded_word.h"
#include "mail/header_encode.h"
#include "mail/message.h"
#include "mail/mime.h"
#include "mail/mime_params.h"
#include "mail/quoted_printable.h"
#include "mail/summary.h"

namespace magpie::mail {
namespace {

// Words of printable characters from several scripts, separated by single spaces.
std::string random_text(std::mt19937_64& rng, std::size_t max_words) {
    static const std::uint32_t ranges[][2] = {
        {'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {'!', '/'}, {0xC0, 0xFF}, {0x391, 0x3C9}, {0x4E00, 0x4EFF}, {0x1F600, 0x1F64F}};
    std::string out;
    std::size_t words = 1 + rng() % max_words;
    for (std::size_t w = 0; w < words; ++w) {
        if (w) out.push_back(' ');
        std::size_t len = 1 + rng() % 12;
        for (std::size_t i = 0; i < len; ++i) {
            const auto& r = ranges[rng() % std::size(ranges)];
            append_utf8(out, r[0] + static_cast<std::uint32_t>(rng() % (r[1] - r[0] + 1)));
        }
    }
    return out;
}

std::string random_bytes(std::mt19937_64& rng, std::size_t max) {
    std::string out(rng() % max, '\0');
    for (char& c : out) c = static_cast<char>(rng());
    return out;
}

TEST(RoundTrip, Base64AndQuotedPrintableOnRandomBytes) {
    std::mt19937_64 rng(1);
    for (int i = 0; i < 500; ++i) {
        std::string bytes = random_bytes(rng, 600);
        EXPECT_EQ(decode_transfer(base64_encode(bytes), TransferEncoding::base64), bytes);
        EXPECT_EQ(decoded_transfer_size(base64_encode(bytes), TransferEncoding::base64), bytes.size());
        EXPECT_EQ(decode_transfer(qp_encode(bytes, true), TransferEncoding::quoted_printable), bytes);
    }
}

TEST(RoundTrip, FoldedEncodedSubjectDecodesToTheOriginal) {
    std::mt19937_64 rng(2);
    for (int i = 0; i < 300; ++i) {
        std::string text = random_text(rng, 30);
        auto encoded = encode_unstructured(text);
        ASSERT_TRUE(encoded) << text;
        auto field = fold_field("Subject", *encoded);
        ASSERT_TRUE(field);
        std::string message = *field + "\r\nbody";
        Message m = Message::parse(message);
        EXPECT_EQ(decode_encoded_words(m.header().value("Subject")), text) << *field;
    }
}

TEST(RoundTrip, EncodedDisplayNamesParseBack) {
    std::mt19937_64 rng(3);
    for (int i = 0; i < 300; ++i) {
        MailboxSpec spec{random_text(rng, 5), "user" + std::to_string(i) + "@example.com"};
        auto written = format_mailbox_list({spec, MailboxSpec{"", "x@y.example"}});
        ASSERT_TRUE(written) << spec.name;
        auto boxes = mailboxes(parse_address_list(*written));
        ASSERT_EQ(boxes.size(), 2u) << *written;
        EXPECT_EQ(boxes[0].name, spec.name) << *written;
        EXPECT_EQ(boxes[0].addr_spec(), spec.address);
        EXPECT_EQ(boxes[1].addr_spec(), "x@y.example");
    }
}

TEST(RoundTrip, Rfc2231ParametersParseBack) {
    std::mt19937_64 rng(4);
    for (int i = 0; i < 300; ++i) {
        std::string value = random_text(rng, 20);
        auto segments = encode_parameter("filename", value);
        ASSERT_TRUE(segments) << value;
        auto cd = parse_content_disposition(join_parameters("attachment", *segments));
        EXPECT_EQ(cd.params.get("filename"), value) << join_parameters("attachment", *segments);
    }
}

TEST(RoundTrip, BuiltMessageParsesBackToItsDraft) {
    std::mt19937_64 rng(5);
    BuildEnv env;
    env.now = 1700000000;
    env.random = [&rng] { return rng(); };
    env.domain = "example.com";
    for (int i = 0; i < 40; ++i) {
        Draft d;
        d.from = MailboxSpec{random_text(rng, 3), "from@example.com"};
        d.to = {MailboxSpec{random_text(rng, 3), "to@example.net"}};
        d.subject = random_text(rng, 12);
        d.text = random_text(rng, 200) + "\r\n";
        d.html = "<p>" + random_text(rng, 50) + "</p>\r\n";
        Attachment a;
        a.filename = random_text(rng, 2) + ".bin";
        a.data = random_bytes(rng, 3000);
        d.attachments.push_back(a);
        BuildOptions options;
        auto built = build_message(d, options, env);
        ASSERT_TRUE(built) << built.error().message;
        Summary s = summarize(*built);
        EXPECT_EQ(s.subject, d.subject);
        Message m = Message::parse(*built);
        EXPECT_FALSE(m.limit_hit());
        const Part& root = m.root();
        ASSERT_EQ(root.kind, PartKind::multipart);
        const Part& alternative = m.parts()[root.first_child];
        ASSERT_EQ(alternative.kind, PartKind::multipart);
        const Part& text = m.parts()[alternative.first_child];
        const Part& html = m.parts()[text.next_sibling];
        EXPECT_EQ(decode_text(m, text), *d.text);
        EXPECT_EQ(decode_text(m, html), *d.html);
        const Part& attachment = m.parts()[alternative.next_sibling];
        EXPECT_EQ(decode_body(m, attachment), a.data);
        EXPECT_EQ(m.content_disposition(attachment).params.get("filename"), a.filename);
        auto from = mailboxes(parse_address_list(m.header().value("From")));
        ASSERT_EQ(from.size(), 1u);
        EXPECT_EQ(from[0].name, d.from.name);
    }
}

}  // namespace
}  // namespace magpie::mail
