// Email properties from message bytes (RFC 8621 4.1): header forms, parseStructure's choice of textBody,
// htmlBody and attachments, body values with truncation, part blobs and UTCDate.
#include <gtest/gtest.h>

#include "http/email_view.h"

namespace magpie::http {
namespace {

using nlohmann::json;

constexpr std::string_view kMessage =
    "From: \"Alice A.\" <alice@example.test>\r\n"
    "To: Team: bob@example.test, carol@example.test;, dave@example.test\r\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from the\r\n  office\r\n"
    "Date: Thu, 30 Oct 2014 14:12:00 +0800\r\n"
    "Message-ID: <one@example.test>\r\n"
    "References: <a@x> <b@x>\r\n"
    "List-Unsubscribe: <mailto:leave@example.test>, <https://example.test/leave>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=outer\r\n"
    "\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Hello   caf=C3=A9\r\n"
    "--inner\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>Hello <b>caf\xc3\xa9</b></p>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: application/pdf; name=\"report.pdf\"\r\n"
    "Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "JVBERi0x\r\n"
    "--outer--\r\n";

json view(const std::vector<std::string>& properties, BodyValueOptions options = {}) {
    return email_view(kMessage, "b10b", properties, options);
}

TEST(HttpEmailView, HeaderFormsFollowRfc8621Section4_1_2) {
    json v = view({"from", "to", "subject", "sentAt", "messageId", "references", "inReplyTo",
                   "header:To:asGroupedAddresses", "header:List-Unsubscribe:asURLs", "header:Subject",
                   "header:X-Missing:all"});
    EXPECT_EQ(v["from"], json::parse(R"([{"name":"Alice A.","email":"alice@example.test"}])"));
    EXPECT_EQ(v["to"].size(), 3u);
    EXPECT_EQ(v["subject"], "Grüße from the  office");  // unfolding removes the CRLF only
    EXPECT_EQ(v["sentAt"], "2014-10-30T14:12:00+08:00");
    EXPECT_EQ(v["messageId"], json::parse(R"(["one@example.test"])"));
    EXPECT_EQ(v["references"], json::parse(R"(["a@x","b@x"])"));
    EXPECT_TRUE(v["inReplyTo"].is_null());
    EXPECT_EQ(v["header:To:asGroupedAddresses"][0]["name"], "Team");
    EXPECT_EQ(v["header:To:asGroupedAddresses"][0]["addresses"].size(), 2u);
    EXPECT_EQ(v["header:To:asGroupedAddresses"][1]["name"], nullptr);
    EXPECT_EQ(v["header:List-Unsubscribe:asURLs"],
              json::parse(R"(["mailto:leave@example.test","https://example.test/leave"])"));
    EXPECT_EQ(v["header:Subject"], " =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from the\r\n  office");
    EXPECT_EQ(v["header:X-Missing:all"], json::array());
    EXPECT_FALSE(is_message_property("header:Subject:asNothing"));
    EXPECT_FALSE(is_message_property("header:Bad Name"));
    EXPECT_TRUE(is_message_property("header:Subject:asText:all"));
}

TEST(HttpEmailView, AlternativeBodiesAndAnAttachment) {
    BodyValueOptions options;
    options.fetch_text = true;
    options.fetch_html = true;
    json v = view({"textBody", "htmlBody", "attachments", "hasAttachment", "preview", "bodyValues", "bodyStructure"},
                  options);
    ASSERT_EQ(v["textBody"].size(), 1u);
    EXPECT_EQ(v["textBody"][0]["type"], "text/plain");
    ASSERT_EQ(v["htmlBody"].size(), 1u);
    EXPECT_EQ(v["htmlBody"][0]["type"], "text/html");
    ASSERT_EQ(v["attachments"].size(), 1u);
    EXPECT_EQ(v["attachments"][0]["name"], "report.pdf");
    EXPECT_EQ(v["attachments"][0]["disposition"], "attachment");
    EXPECT_EQ(v["attachments"][0]["size"], 6);
    EXPECT_TRUE(v["attachments"][0]["charset"].is_null());
    EXPECT_EQ(v["hasAttachment"], true);
    EXPECT_EQ(v["preview"], "Hello café");
    const std::string text_id = v["textBody"][0]["partId"];
    EXPECT_EQ(v["bodyValues"][text_id]["value"], "Hello   café");  // the CRLF before a boundary is the boundary's
    EXPECT_EQ(v["bodyStructure"]["type"], "multipart/mixed");
    EXPECT_EQ(v["bodyStructure"]["subParts"][0]["subParts"].size(), 2u);
    EXPECT_TRUE(v["bodyStructure"]["partId"].is_null());

    auto blob = split_part_blob_id(v["attachments"][0]["blobId"].get<std::string>());
    ASSERT_TRUE(blob);
    EXPECT_EQ(blob->first, "b10b");
    EXPECT_EQ(part_content(kMessage, blob->second), "%PDF-1");
}

TEST(HttpEmailView, BodyValuesAreTruncatedOnACharacterBoundary) {
    BodyValueOptions options;
    options.fetch_text = true;
    options.max_bytes = 10;
    json v = view({"textBody", "bodyValues"}, options);
    const std::string id = v["textBody"][0]["partId"];
    EXPECT_EQ(v["bodyValues"][id]["value"], "Hello   ca");
    EXPECT_EQ(v["bodyValues"][id]["isTruncated"], true);
    options.max_bytes = 12;  // "Hello   caf" is 11 octets and "é" two more: no half character
    v = view({"textBody", "bodyValues"}, options);
    EXPECT_EQ(v["bodyValues"][id]["value"], "Hello   caf");
}

// What a client receives: the JSON text the API writes (invalid UTF-8 would become U+FFFD there), parsed.
json on_the_wire(const json& value) {
    return json::parse(value.dump(-1, ' ', false, json::error_handler_t::replace));
}

// 8-bit octets in header fields without encoded words (RFC 6532 3: UTF-8 is allowed there; Latin-1 still
// arrives): valid UTF-8 is kept as it is in every form; octets that are not UTF-8 are read as Windows-1252
// in the parsed forms (Text, Addresses, MessageIds, a part's name), and the Raw form replaces them with
// U+FFFD and drops NUL, as RFC 8621 4.1.2.1 says.
TEST(HttpEmailView, EightBitHeaderValuesKeepUtf8AndGuessOnlyInParsedForms) {
    const std::vector<std::string> properties = {"subject", "from", "to", "messageId", "header:Subject:asText",
                                                 "header:Subject", "header:From:asAddresses", "headers",
                                                 "attachments"};
    constexpr std::string_view utf8 =
        "Subject: Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln\r\nFrom: J\xc3\xb6rg <j\xc3\xb6rg@example.test>\r\n"
        "To: \xe5\xb1\xb1\xe7\x94\xb0 <yamada@example.test>\r\nMessage-ID: <caf\xc3\xa9@example.test>\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n"
        "--b\r\nContent-Type: application/pdf; name=\"K\xc3\xb6ln.pdf\"\r\n\r\nx\r\n--b--\r\n";
    json u = on_the_wire(email_view(utf8, "b1", properties, {}));
    EXPECT_EQ(u["subject"], "Grüße aus Köln");
    EXPECT_EQ(u["header:Subject:asText"], "Grüße aus Köln");
    EXPECT_EQ(u["header:Subject"], " Grüße aus Köln");
    EXPECT_EQ(u["from"], json::parse(R"([{"name":"Jörg","email":"jörg@example.test"}])"));
    EXPECT_EQ(u["to"][0]["name"], "山田");
    EXPECT_EQ(u["messageId"], json::parse(R"(["café@example.test"])"));
    EXPECT_EQ(u["headers"][0]["value"], " Grüße aus Köln");
    EXPECT_EQ(u["attachments"][0]["name"], "Köln.pdf");

    static constexpr char latin1[] =
        "Subject: caf\xe9 cr\xe8me\r\nFrom: J\xf6rg <j\xf6rg@example.test>\r\nMessage-ID: <caf\xe9@example.test>\r\n"
        "X-Nul: a\0b\xe9\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n"
        "--b\r\nContent-Type: application/pdf; name=\"K\xf6ln.pdf\"\r\n\r\nx\r\n--b--\r\n";
    json l = on_the_wire(email_view(std::string_view(latin1, sizeof latin1 - 1), "b2",
                                    {"subject", "from", "messageId", "header:Subject", "header:X-Nul", "attachments"},
                                    {}));
    EXPECT_EQ(l["subject"], "café crème");
    EXPECT_EQ(l["from"], json::parse(R"([{"name":"Jörg","email":"jörg@example.test"}])"));
    EXPECT_EQ(l["messageId"], json::parse(R"(["café@example.test"])"));
    EXPECT_EQ(l["attachments"][0]["name"], "Köln.pdf");
    EXPECT_EQ(l["header:Subject"], " caf\xef\xbf\xbd cr\xef\xbf\xbdme");  // Raw: U+FFFD, no guess
    EXPECT_EQ(l["header:X-Nul"], " ab\xef\xbf\xbd");                      // Raw: NUL dropped
}

TEST(HttpEmailView, UtcDatesRoundTrip) {
    EXPECT_EQ(utc_date(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(utc_date(1414649520), "2014-10-30T06:12:00Z");
    EXPECT_EQ(parse_utc_date("2014-10-30T06:12:00Z"), 1414649520);
    EXPECT_EQ(parse_utc_date("2014-10-30T06:12:00.123Z"), 1414649520);
    EXPECT_FALSE(parse_utc_date("2014-02-30T06:12:00Z"));
    EXPECT_FALSE(parse_utc_date("2014-10-30 06:12:00Z"));
    EXPECT_FALSE(parse_utc_date("yesterday"));
}

}  // namespace
}  // namespace magpie::http
