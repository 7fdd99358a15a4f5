// `magpie mail`'s message work without the network: reading a message for a person, replies and forwards
// (prefixes, threading headers, recipients, quoting), HTML to text, media types, safe file names, refusal of
// header injection, and the account file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/mail_account.h"
#include "cli/mail_compose.h"
#include "mail/builder.h"
#include "mail/mime.h"

namespace {

using namespace magpie;
using namespace magpie::cli::mail_ui;

const char kOriginal[] =
    "From: Ann Example <ann@example.test>\r\n"
    "To: bob@example.test, Carol <carol@example.test>\r\n"
    "Cc: dave@example.test\r\n"
    "Subject: =?UTF-8?Q?Caf=C3=A9?= plans\r\n"
    "Date: Mon, 2 Dec 2024 09:30:00 +0100\r\n"
    "Message-ID: <m2@example.test>\r\n"
    "References: <m0@example.test> <m1@example.test>\r\n"
    "In-Reply-To: <m1@example.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n"
    "\r\n"
    "--b\r\n"
    "Content-Type: multipart/alternative; boundary=c\r\n"
    "\r\n"
    "--c\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "First line\r\n"
    "\r\n"
    "Third line\r\n"
    "--c\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>First line</p>\r\n"
    "--c--\r\n"
    "--b\r\n"
    "Content-Type: application/pdf; name=plan.pdf\r\n"
    "Content-Disposition: attachment; filename=\"plan.pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAw==\r\n"
    "--b--\r\n";

TEST(CliMailRead, PicksThePlainTextAndListsAttachments) {
    auto message = mail::Message::parse(kOriginal);
    auto r = readable(message);
    EXPECT_EQ(r.subject, "Café plans");
    EXPECT_EQ(r.text, "First line\n\nThird line\n");
    EXPECT_FALSE(r.from_html);
    ASSERT_EQ(r.attachments.size(), 1u);
    EXPECT_EQ(r.attachments[0].filename, "plan.pdf");
    EXPECT_EQ(r.attachments[0].content_type, "application/pdf");
    EXPECT_EQ(r.attachments[0].size, 4u);
}

TEST(CliMailRead, RendersHtmlWhenThereIsNoPlainText) {
    const char html[] =
        "Content-Type: text/html; charset=iso-8859-1\r\n\r\n"
        "<html><head><title>t</title><script>x()</script></head><body><h2>Caf\xe9</h2><p>See <a "
        "href=\"https://a.example/\">this</a> and <a href=\"mailto:z@a.example\">z@a.example</a>.<br>Bye</p>"
        "<ol><li>one</li><li>two</li></ol></body></html>";
    auto r = readable(mail::Message::parse(html));
    EXPECT_TRUE(r.from_html);
    EXPECT_EQ(r.text, "Café\n\nSee this <https://a.example/> and z@a.example.\nBye\n\n- one\n- two\n");
}

TEST(CliMailReply, SubjectPrefixesAreNotDoubled) {
    EXPECT_EQ(reply_subject("Lunch"), "Re: Lunch");
    EXPECT_EQ(reply_subject("RE: Lunch"), "RE: Lunch");
    EXPECT_EQ(reply_subject("  Aw: Essen"), "Aw: Essen");
    EXPECT_EQ(forward_subject("Lunch"), "Fwd: Lunch");
    EXPECT_EQ(forward_subject("FW: Lunch"), "FW: Lunch");
}

TEST(CliMailReply, ThreadsAndAddressesTheSender) {
    auto original = original_of(mail::Message::parse(kOriginal));
    mail::Draft draft;
    address_reply(original, false, "bob@example.test", draft);
    ASSERT_EQ(draft.to.size(), 1u);
    EXPECT_EQ(draft.to[0].address, "ann@example.test");
    EXPECT_TRUE(draft.cc.empty());
    EXPECT_EQ(draft.subject, "Re: Café plans");
    EXPECT_EQ(draft.in_reply_to, "<m2@example.test>");
    EXPECT_EQ(draft.references, "<m0@example.test> <m1@example.test> <m2@example.test>");
}

TEST(CliMailReply, ReplyAllCopiesEveryoneButMe) {
    auto original = original_of(mail::Message::parse(kOriginal));
    mail::Draft draft;
    address_reply(original, true, "BOB@example.test", draft);
    ASSERT_EQ(draft.to.size(), 1u);
    ASSERT_EQ(draft.cc.size(), 2u);
    EXPECT_EQ(draft.cc[0].address, "carol@example.test");
    EXPECT_EQ(draft.cc[0].name, "Carol");
    EXPECT_EQ(draft.cc[1].address, "dave@example.test");
}

TEST(CliMailReply, ReplyToOwnMessageGoesToItsRecipients) {
    auto original = original_of(mail::Message::parse(kOriginal));
    mail::Draft draft;
    address_reply(original, true, "ann@example.test", draft);
    ASSERT_EQ(draft.to.size(), 2u);
    EXPECT_EQ(draft.to[0].address, "bob@example.test");
    EXPECT_EQ(draft.cc.size(), 1u);
}

TEST(CliMailReply, ReplyToFieldWins) {
    auto original = original_of(
        mail::Message::parse("From: a@x.test\r\nReply-To: list@x.test\r\nSubject: s\r\n\r\nbody\r\n"));
    mail::Draft draft;
    address_reply(original, false, "me@x.test", draft);
    ASSERT_EQ(draft.to.size(), 1u);
    EXPECT_EQ(draft.to[0].address, "list@x.test");
    EXPECT_EQ(draft.references, "");
}

TEST(CliMailReply, LineBreaksHiddenInEncodedWordsDoNotReachTheReply) {
    auto original =
        original_of(mail::Message::parse("From: =?UTF-8?Q?Eve=0D=0ABcc:_victim@x.test?= <eve@x.test>\r\n"
                                         "Subject: =?UTF-8?Q?hi=0D=0ABcc:_victim@x.test?=\r\n\r\nbody\r\n"));
    mail::Draft draft;
    address_reply(original, false, "me@x.test", draft);
    ASSERT_EQ(draft.to.size(), 1u);
    EXPECT_TRUE(check_header_input("name", draft.to[0].name));
    EXPECT_TRUE(check_header_input("subject", draft.subject));
    draft.from = {"", "me@x.test"};
    draft.text = "ok";
    mail::BuildEnv env;
    env.random = [] { return std::uint64_t{42}; };
    auto built = mail::build_message(draft, mail::BuildOptions{}, env);
    ASSERT_TRUE(built);
    EXPECT_EQ(built->find("\r\nBcc:"), std::string::npos);
}

TEST(CliMailReply, QuotesWithAttributionAndPrefixes) {
    auto original = original_of(mail::Message::parse(kOriginal));
    EXPECT_EQ(quote(original),
              "On Mon, 2 Dec 2024 09:30:00 +0100, Ann Example wrote:\n> First line\n>\n> Third line\n");
}

TEST(CliMailForward, BlockNamesTheOriginal) {
    auto block = forward_block(original_of(mail::Message::parse(kOriginal)));
    EXPECT_NE(block.find("From: Ann Example <ann@example.test>\n"), std::string::npos);
    EXPECT_NE(block.find("Subject: Café plans\n"), std::string::npos);
    EXPECT_NE(block.find("To: bob@example.test, Carol <carol@example.test>\n\nFirst line"),
              std::string::npos);
}

TEST(CliMailDraft, ASavedDraftComesBackWithItsRecipientsThreadingTextAndAttachments) {
    mail::Draft saved;
    saved.from = {"", "me@x.test"};
    saved.to = {{"Ann", "ann@example.test"}};
    saved.cc = {{"", "carol@example.test"}};
    saved.bcc = {{"", "eve@example.test"}};
    saved.subject = "Re: Café plans";
    saved.in_reply_to = "<orig@example.test>";
    saved.references = "<first@example.test> <orig@example.test>";
    saved.text = "Half a reply\n";
    mail::Attachment csv;
    csv.filename = "plan.csv";
    csv.content_type = "text/csv";
    csv.data = "a,b\n1,2\n";
    saved.attachments.push_back(csv);
    mail::BuildEnv env;
    env.random = [] { return std::uint64_t{7}; };
    mail::BuildOptions with_bcc;
    with_bcc.write_bcc = true;
    auto built = mail::build_message(saved, with_bcc, env);
    ASSERT_TRUE(built) << built.error().message;
    auto draft = draft_of(mail::Message::parse(*built));
    ASSERT_EQ(draft.to.size(), 1u);
    EXPECT_EQ(draft.to[0].address, "ann@example.test");
    EXPECT_EQ(draft.to[0].name, "Ann");
    ASSERT_EQ(draft.cc.size(), 1u);
    EXPECT_EQ(draft.cc[0].address, "carol@example.test");
    ASSERT_EQ(draft.bcc.size(), 1u);
    EXPECT_EQ(draft.bcc[0].address, "eve@example.test");
    EXPECT_EQ(draft.subject, "Re: Café plans");
    EXPECT_EQ(draft.in_reply_to, "<orig@example.test>");
    EXPECT_EQ(draft.references, "<first@example.test> <orig@example.test>");
    EXPECT_EQ(draft.text, "Half a reply\n");
    ASSERT_EQ(draft.attachments.size(), 1u);
    EXPECT_EQ(draft.attachments[0].filename, "plan.csv");
    EXPECT_EQ(draft.attachments[0].content_type, "text/csv");
    EXPECT_EQ(draft.attachments[0].data, "a,b\r\n1,2\r\n");  // text is sent with CRLF line ends
    EXPECT_TRUE(draft.message_id.empty());  // sending it makes a new message, with a new Message-ID
}

TEST(CliMailInput, LineBreaksInHeaderInputAreRefused) {
    EXPECT_TRUE(check_header_input("subject", "Hello"));
    EXPECT_FALSE(check_header_input("subject", "Hello\r\nBcc: x@y.test"));
    EXPECT_FALSE(check_header_input("subject", "Hello\nX: y"));
    EXPECT_FALSE(check_header_input("subject", std::string("a\0b", 3)));
    EXPECT_FALSE(parse_recipients("--to", "a@b.test\r\nBcc: c@d.test"));
    EXPECT_FALSE(parse_recipients("--to", "not an address"));
    auto ok = parse_recipients("--to", "Ann <a@b.test>, c@d.test");
    ASSERT_TRUE(ok);
    ASSERT_EQ(ok->size(), 2u);
    EXPECT_EQ((*ok)[0].name, "Ann");
}

TEST(CliMailFiles, SafeFilenamesStayInTheirDirectory) {
    EXPECT_EQ(safe_filename("../../etc/passwd"), "passwd");
    EXPECT_EQ(safe_filename("C:\\x\\evil.exe"), "evil.exe");
    EXPECT_EQ(safe_filename(".bashrc"), "bashrc");
    EXPECT_EQ(safe_filename("a\nb"), "a_b");
    EXPECT_EQ(safe_filename(".."), "attachment");
}

TEST(CliMailFiles, MediaTypeComesFromTheTable) {
    auto table = std::filesystem::temp_directory_path() / "climail-mime.types";
    std::ofstream(table) << "# comment\napplication/pdf\t\tpdf\nimage/jpeg jpeg jpg jpe\n";
    EXPECT_EQ(guess_media_type("x/Photo.JPG", table), "image/jpeg");
    EXPECT_EQ(guess_media_type("a.pdf", table), "application/pdf");
    EXPECT_EQ(guess_media_type("a.unknown", table), "application/octet-stream");
    EXPECT_EQ(guess_media_type("noext", table), "application/octet-stream");
    std::filesystem::remove(table);
}

TEST(CliMailAccount, ReadsTheFileAndFillsDefaultPorts) {
    auto path = std::filesystem::temp_directory_path() / "climail-account.toml";
    std::ofstream(path) << "address = \"Ann <ann@example.test>\"\npassword_env = \"X\"\n"
                           "[imap]\nhost = \"imap.example.test\"\ntls = \"implicit\"\n"
                           "[smtp]\nhost = \"smtp.example.test\"\nauth = false\n";
    auto account = load_account(path, true);
    ASSERT_TRUE(account) << account.error().message;
    ASSERT_TRUE(finish_account(*account));
    EXPECT_EQ(account->address, "ann@example.test");
    EXPECT_EQ(account->name, "Ann");
    EXPECT_EQ(account->imap.port, 993);
    EXPECT_EQ(account->smtp.port, 587);
    EXPECT_FALSE(account->smtp_auth);
    EXPECT_EQ(account->login(), "ann@example.test");
    std::filesystem::remove(path);
}

TEST(CliMailAccount, RefusesAPasswordInTheFileAndUnknownKeys) {
    auto path = std::filesystem::temp_directory_path() / "climail-bad.toml";
    std::ofstream(path) << "address = \"a@b.test\"\npassword = \"secret\"\n";
    auto account = load_account(path, true);
    ASSERT_FALSE(account);
    EXPECT_NE(account.error().message.find("password_command"), std::string::npos);
    std::ofstream(path) << "address = \"a@b.test\"\n[imap]\nhots = \"x\"\n";
    EXPECT_FALSE(load_account(path, true));
    std::ofstream(path) << "address = \"a@b.test\"\n[imap]\ntls = \"maybe\"\n";
    EXPECT_FALSE(load_account(path, true));
    std::filesystem::remove(path);
    EXPECT_FALSE(load_account(path, true));
    EXPECT_TRUE(load_account(path, false));
}

TEST(CliMailAccount, PasswordComesFromTheCommandThenTheEnvironment) {
    Account account;
    account.password_env = "CLIMAIL_TEST_PASSWORD";
    ::setenv("CLIMAIL_TEST_PASSWORD", "from env", 1);
    auto password = obtain_password(account);
    ASSERT_TRUE(password);
    EXPECT_EQ(*password, "from env");
    account.password_command = "printf 'from command\\nsecond line\\n'";
    password = obtain_password(account);
    ASSERT_TRUE(password);
    EXPECT_EQ(*password, "from command");
    account.password_command = "exit 3";
    EXPECT_FALSE(obtain_password(account));
    ::unsetenv("CLIMAIL_TEST_PASSWORD");
}

}  // namespace
