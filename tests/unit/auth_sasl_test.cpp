#include <gtest/gtest.h>

#include <string>

#include "auth/password.h"
#include "auth/sasl.h"

namespace magpie::auth {
namespace {

using Kind = SaslOutcome::Kind;
using namespace std::string_literals;

// RFC 7677 3: user "user", password "pencil".
constexpr std::string_view kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
    "Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

store::ScramCredentials pencil() {
    return make_scram_credentials_with_salt("pencil", *decode_sasl_base64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
        .value();
}

SaslServer make(std::string_view mechanism, SaslOptions options = {}) {
    return SaslServer::create(mechanism, std::move(options)).value();
}

SaslServer scram_with_vector_nonce(bool success_data_allowed = false) {
    SaslOptions options;
    options.fixed_server_nonce = std::string(kServerNonce);
    options.success_data_allowed = success_data_allowed;
    return make("SCRAM-SHA-256", options);
}

// Runs client-first and the credential lookup, expecting the server-first challenge.
SaslOutcome scram_to_server_first(SaslServer& sasl, std::string_view client_first,
                                  const Result<store::ScramCredentials>& credentials) {
    auto out = sasl.start(client_first);
    EXPECT_EQ(out.kind, Kind::need_scram_credentials) << out.error.message;
    return sasl.scram_credentials(credentials);
}

TEST(SaslScram, FollowsRfc7677Vector) {
    auto sasl = scram_with_vector_nonce();
    auto out = sasl.start();
    ASSERT_EQ(out.kind, Kind::challenge);
    EXPECT_EQ(out.data, "");
    out = sasl.step(kClientFirst);
    ASSERT_EQ(out.kind, Kind::need_scram_credentials);
    EXPECT_EQ(out.authcid, "user");
    out = sasl.scram_credentials(pencil());
    ASSERT_EQ(out.kind, Kind::challenge);
    EXPECT_EQ(out.data, kServerFirst);
    out = sasl.step(kClientFinal);
    ASSERT_EQ(out.kind, Kind::challenge) << out.error.message;
    EXPECT_EQ(out.data, kServerFinal);
    out = sasl.step("");
    ASSERT_EQ(out.kind, Kind::success);
    EXPECT_EQ(out.authcid, "user");
    EXPECT_TRUE(sasl.finished());
}

TEST(SaslScram, CarriesServerFinalInSuccessWhenProtocolAllows) {
    auto sasl = scram_with_vector_nonce(true);
    auto out = scram_to_server_first(sasl, kClientFirst, pencil());
    ASSERT_EQ(out.data, kServerFirst);
    out = sasl.step(kClientFinal);
    ASSERT_EQ(out.kind, Kind::success);
    EXPECT_EQ(out.data, kServerFinal);
}

TEST(SaslScram, WorksThroughBase64WireForm) {
    auto sasl = scram_with_vector_nonce();
    auto out = sasl.start_encoded(encode_sasl_base64(kClientFirst));
    ASSERT_EQ(out.kind, Kind::need_scram_credentials);
    out = sasl.scram_credentials(pencil());
    EXPECT_EQ(encode_sasl_base64(out.data), encode_sasl_base64(kServerFirst));
    out = sasl.step_encoded(encode_sasl_base64(kClientFinal));
    ASSERT_EQ(out.kind, Kind::challenge);
    out = sasl.step_encoded("");
    EXPECT_EQ(out.kind, Kind::success);
}

TEST(SaslScram, RejectsWrongProof) {
    auto sasl = scram_with_vector_nonce();
    scram_to_server_first(sasl, kClientFirst, pencil());
    std::string final_message(kClientFinal);
    final_message.replace(final_message.size() - 10, 1, "A");  // one base64 digit of the proof changed
    ASSERT_NE(final_message, kClientFinal);
    auto out = sasl.step(final_message);
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::auth_failed);
    EXPECT_EQ(out.authcid, "user");
}

TEST(SaslScram, RejectsProofForAnotherPassword) {
    auto sasl = scram_with_vector_nonce();
    scram_to_server_first(
        sasl, kClientFirst,
        make_scram_credentials_with_salt("pencil2", *decode_sasl_base64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096));
    EXPECT_EQ(sasl.step(kClientFinal).error.code, Errc::auth_failed);
}

TEST(SaslScram, UnknownUserGetsStableFakeSaltAndFailsAtProof) {
    SaslOptions options;
    options.fixed_server_nonce = std::string(kServerNonce);
    options.mock_salt_key = "k";
    auto first = make("SCRAM-SHA-256", options);
    auto second = make("SCRAM-SHA-256", options);
    Error missing{Errc::not_found, "no such user"};
    auto a = scram_to_server_first(first, kClientFirst, missing);
    auto b = scram_to_server_first(second, kClientFirst, missing);
    ASSERT_EQ(a.kind, Kind::challenge);
    EXPECT_EQ(a.data, b.data);
    EXPECT_NE(a.data, kServerFirst);
    EXPECT_NE(a.data.find(",i=4096"), std::string::npos);
    auto out = first.step(kClientFinal);
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::auth_failed);
}

TEST(SaslScram, StoreFailureFailsAtOnce) {
    auto sasl = scram_with_vector_nonce();
    auto out = scram_to_server_first(sasl, kClientFirst, Error{Errc::limit_exceeded, "throttled"});
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::limit_exceeded);
}

TEST(SaslScram, RefusesChannelBindingRequest) {
    auto out = make("SCRAM-SHA-256").start("p=tls-unique,,n=user,r=abc");
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::invalid_argument);
}

TEST(SaslScram, AcceptsClientThatSupportsBindingButSawNone) {
    auto sasl = scram_with_vector_nonce();
    auto out = scram_to_server_first(sasl, "y,,n=user,r=rOprNGfwEbeRWgbNEkqO", pencil());
    ASSERT_EQ(out.kind, Kind::challenge);
    // The channel binding echo must be base64("y,,"), not "biws" (which is "n,,").
    out = sasl.step(kClientFinal);
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::invalid_argument);
}

TEST(SaslScram, RejectsMalformedClientFirst) {
    for (std::string_view bad :
         {"", "n", "x,,n=user,r=abc", "n,,r=abc,n=user", "n,,n=user", "n,,n=user,r=", "n,,m=ext,n=user,r=abc",
          "n,,n=us=41er,r=abc", "n,b=x,n=user,r=abc", "n,,n=,r=abc",
          "n,,n=user,r=a\x01"
          "b"}) {
        auto out = make("SCRAM-SHA-256").start(bad);
        EXPECT_EQ(out.kind, Kind::failure) << bad;
    }
}

TEST(SaslScram, DecodesEscapedUserName) {
    auto out = make("SCRAM-SHA-256").start("n,,n=a=2Cb=3Dc,r=abc");
    ASSERT_EQ(out.kind, Kind::need_scram_credentials);
    EXPECT_EQ(out.authcid, "a,b=c");
}

TEST(SaslScram, AuthzidMustNameTheUser) {
    EXPECT_EQ(make("SCRAM-SHA-256").start("n,a=user,n=user,r=abc").kind, Kind::need_scram_credentials);
    auto out = make("SCRAM-SHA-256").start("n,a=admin,n=user,r=abc");
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::permission_denied);
}

TEST(SaslScram, RejectsNonceMismatchAndBadChannelBinding) {
    auto sasl = scram_with_vector_nonce();
    scram_to_server_first(sasl, kClientFirst, pencil());
    std::string wrong_nonce(kClientFinal);
    wrong_nonce.replace(wrong_nonce.find("k0,"), 2, "k1");
    EXPECT_EQ(sasl.step(wrong_nonce).error.code, Errc::invalid_argument);

    auto other = scram_with_vector_nonce();
    scram_to_server_first(other, kClientFirst, pencil());
    std::string wrong_binding(kClientFinal);
    wrong_binding.replace(0, 6, "c=eSws");
    EXPECT_EQ(other.step(wrong_binding).error.code, Errc::invalid_argument);
}

TEST(SaslScram, RejectsDataAfterServerFinal) {
    auto sasl = scram_with_vector_nonce();
    scram_to_server_first(sasl, kClientFirst, pencil());
    ASSERT_EQ(sasl.step(kClientFinal).kind, Kind::challenge);
    EXPECT_EQ(sasl.step("x").kind, Kind::failure);
}

TEST(SaslScram, RandomServerNonceExtendsClientNonce) {
    auto sasl = make("SCRAM-SHA-256");
    auto out = scram_to_server_first(sasl, kClientFirst, pencil());
    ASSERT_TRUE(out.data.starts_with("r=rOprNGfwEbeRWgbNEkqO"));
    EXPECT_EQ(out.data.find(','), std::string("r=rOprNGfwEbeRWgbNEkqO").size() + 24);
}

TEST(SaslPlain, AcceptsMessageWithoutAuthzid) {
    auto sasl = make("PLAIN");
    auto out = sasl.start("\0user\0pencil"s);
    ASSERT_EQ(out.kind, Kind::verify_password);
    EXPECT_EQ(out.authcid, "user");
    EXPECT_EQ(out.password, "pencil");
    out = sasl.password_checked({});
    ASSERT_EQ(out.kind, Kind::success);
    EXPECT_EQ(out.authcid, "user");
    EXPECT_EQ(out.data, "");
}

TEST(SaslPlain, AcceptsAuthzidEqualToAuthcidOnly) {
    EXPECT_EQ(make("PLAIN").start("user\0user\0pencil"s).kind, Kind::verify_password);
    auto out = make("PLAIN").start("admin\0user\0pencil"s);
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::permission_denied);
}

TEST(SaslPlain, RejectsMalformedMessages) {
    for (const std::string& bad : {"userpencil"s, "\0userpencil"s, "\0user\0pencil\0"s, "a\0user\0pw\0x"s,
                                   "\0\0pencil"s, "\0user\0"s, ""s, "\0us\x01r\0pw"s}) {
        auto out = make("PLAIN").start(bad);
        ASSERT_EQ(out.kind, Kind::failure);
        EXPECT_EQ(out.error.code, Errc::invalid_argument);
    }
}

TEST(SaslPlain, WithoutInitialResponseSendsEmptyChallenge) {
    auto sasl = make("plain");
    auto out = sasl.start();
    ASSERT_EQ(out.kind, Kind::challenge);
    EXPECT_EQ(out.data, "");
    EXPECT_EQ(sasl.step("\0user\0pencil"s).kind, Kind::verify_password);
}

TEST(SaslPlain, WrongPasswordFailsWithCheckersError) {
    auto sasl = make("PLAIN");
    sasl.start("\0user\0pencil"s);
    auto out = sasl.password_checked(Error{Errc::auth_failed, "authentication failed"});
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::auth_failed);
    EXPECT_EQ(out.authcid, "user");
    EXPECT_TRUE(sasl.finished());
}

TEST(SaslPlain, EmptyInitialResponseIsNotAbsentOne) {
    auto out = make("PLAIN").start_encoded("=");
    EXPECT_EQ(out.kind, Kind::failure);
}

TEST(SaslLogin, AsksUsernameThenPassword) {
    auto sasl = make("LOGIN");
    auto out = sasl.start();
    ASSERT_EQ(out.kind, Kind::challenge);
    EXPECT_EQ(out.data, "Username:");
    out = sasl.step_encoded("dXNlcg==");  // "user"
    ASSERT_EQ(out.kind, Kind::challenge);
    EXPECT_EQ(out.data, "Password:");
    out = sasl.step_encoded("cGVuY2ls");  // "pencil"
    ASSERT_EQ(out.kind, Kind::verify_password);
    EXPECT_EQ(out.authcid, "user");
    EXPECT_EQ(out.password, "pencil");
    EXPECT_EQ(sasl.password_checked({}).kind, Kind::success);
}

TEST(SaslLogin, TakesUsernameAsInitialResponse) {
    auto sasl = make("LOGIN");
    auto out = sasl.start_encoded("dXNlcg==");
    ASSERT_EQ(out.kind, Kind::challenge);
    EXPECT_EQ(out.data, "Password:");
}

TEST(SaslLogin, RejectsEmptyPassword) {
    auto sasl = make("LOGIN");
    sasl.start("user");
    EXPECT_EQ(sasl.step("").kind, Kind::failure);
}

TEST(Sasl, StarCancels) {
    auto sasl = make("LOGIN");
    sasl.start();
    auto out = sasl.step_encoded("*");
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::invalid_argument);
    EXPECT_TRUE(sasl.finished());
}

TEST(Sasl, RejectsInvalidBase64Response) {
    for (std::string_view bad : {"dXNlcg", "dXN!cg==", "dXNlcg==\r\n", " dXNlcg==", "dXNlcg==dXNlcg=="}) {
        auto sasl = make("LOGIN");
        sasl.start();
        auto out = sasl.step_encoded(bad);
        ASSERT_EQ(out.kind, Kind::failure) << bad;
        EXPECT_EQ(out.error.code, Errc::invalid_argument);
    }
}

TEST(Sasl, ResponseOverLimitFails) {
    SaslOptions options;
    options.limits.max_response_octets = 16;
    auto sasl = make("PLAIN", options);
    sasl.start();
    auto out = sasl.step("\0user\0"s + std::string(11, 'p'));
    ASSERT_EQ(out.kind, Kind::failure);
    EXPECT_EQ(out.error.code, Errc::limit_exceeded);
    EXPECT_EQ(make("PLAIN", options).start_encoded(std::string(40, 'A')).error.code, Errc::limit_exceeded);
}

TEST(Sasl, IdentityOverLimitFails) {
    SaslOptions options;
    options.limits.max_identity_octets = 8;
    EXPECT_EQ(make("PLAIN", options).start("\0"s + std::string(9, 'u') + "\0pw"s).error.code,
              Errc::limit_exceeded);
}

TEST(Sasl, RefusesUnknownMechanismAndMatchesNamesCaselessly) {
    EXPECT_FALSE(SaslServer::create("CRAM-MD5"));
    EXPECT_FALSE(SaslServer::create("SCRAM-SHA-256-PLUS"));
    EXPECT_TRUE(SaslServer::create("scram-sha-256"));
    EXPECT_EQ(sasl_mechanism_name(*parse_sasl_mechanism("login")), "LOGIN");
}

TEST(Sasl, StepsOutOfOrderFail) {
    auto sasl = make("PLAIN");
    EXPECT_EQ(sasl.password_checked({}).kind, Kind::failure);
    auto other = make("PLAIN");
    other.start("\0user\0pw"s);
    EXPECT_EQ(other.step("again").kind, Kind::failure);  // waiting for the password check, not the client
    auto done = make("PLAIN");
    done.start("\0user\0pw"s);
    done.password_checked({});
    EXPECT_EQ(done.step("").kind, Kind::failure);
    EXPECT_EQ(done.start().kind, Kind::failure);
}

TEST(SaslBase64, DecodesStrictlyOnly) {
    EXPECT_EQ(*decode_sasl_base64(""), "");
    EXPECT_EQ(*decode_sasl_base64("Zm9v"), "foo");
    EXPECT_EQ(*decode_sasl_base64("Zm8="), "fo");
    EXPECT_EQ(*decode_sasl_base64("Zg=="), "f");
    EXPECT_FALSE(decode_sasl_base64("Zh=="));  // nonzero pad bits
    EXPECT_FALSE(decode_sasl_base64("Zm9="));  // nonzero pad bits
    EXPECT_FALSE(decode_sasl_base64("Zg="));
    EXPECT_FALSE(decode_sasl_base64("Z==="));
    EXPECT_FALSE(decode_sasl_base64("Zg==Zg=="));
    EXPECT_FALSE(decode_sasl_base64("Zm=v"));
    EXPECT_FALSE(decode_sasl_base64("Zm9v\n"));
    EXPECT_EQ(encode_sasl_base64("\0user\0pencil"s), "AHVzZXIAcGVuY2ls");
}

TEST(SaslBase64, RoundTripsEveryLengthAndByte) {
    std::string bytes;
    for (int i = 0; i < 300; ++i) {
        EXPECT_EQ(decode_sasl_base64(encode_sasl_base64(bytes)), bytes) << i;
        bytes += static_cast<char>(i * 7 + 3);
    }
}

TEST(Sasl, EmptyInitialResponseMatchesEqualsSign) {
    // IMAP's parser hands over "=" already turned into "" (RFC 4959); both mean an empty initial response.
    EXPECT_EQ(make("SCRAM-SHA-256").start_encoded("").kind, Kind::failure);
    EXPECT_EQ(make("SCRAM-SHA-256").start_encoded("=").kind, Kind::failure);
    EXPECT_EQ(make("SCRAM-SHA-256").start_encoded(std::nullopt).kind, Kind::challenge);
}

}  // namespace
}  // namespace magpie::auth
