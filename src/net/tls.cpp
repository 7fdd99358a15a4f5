#include "net/tls.h"

#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/file.h"

namespace magpie::net {
namespace {

std::string openssl_error() {
    unsigned long code = ERR_get_error();
    if (code == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    return buf;
}

// The PEM text of a key or certificate, written through a memory BIO so the file is written in one piece.
template <class Write>
Result<std::string> to_pem(Write write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!bio || write(bio.get()) != 1) return make_error(Errc::internal, "PEM encoding: " + openssl_error());
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

Result<std::shared_ptr<asio::ssl::context>> make_server_tls_context(const std::filesystem::path& certificate,
                                                                    const std::filesystem::path& private_key) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* native = ctx->native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                    SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(native, certificate.c_str()) != 1) {
        return make_error(Errc::io_error,
                          fmt::format("TLS certificate {}: {}", certificate.string(), openssl_error()));
    }
    if (SSL_CTX_use_PrivateKey_file(native, private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
        return make_error(Errc::io_error,
                          fmt::format("TLS private key {}: {} (certificate {})", private_key.string(),
                                      openssl_error(), certificate.string()));
    }
    if (SSL_CTX_check_private_key(native) != 1) {
        return make_error(Errc::invalid_argument,
                          fmt::format("TLS private key {} does not match the certificate {}",
                                      private_key.string(), certificate.string()));
    }
    return ctx;
}

Result<void> generate_self_signed(const std::filesystem::path& certificate,
                                  const std::filesystem::path& private_key, const std::string& hostname) {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
    if (!key) return make_error(Errc::internal, "EC key generation: " + openssl_error());

    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    X509_set_version(cert.get(), 2);
    unsigned char serial[16];
    std::FILE* urandom = std::fopen("/dev/urandom", "rb");
    if (!urandom || std::fread(serial, 1, sizeof serial, urandom) != sizeof serial) {
        if (urandom) std::fclose(urandom);
        return make_error(Errc::io_error, "cannot read /dev/urandom");
    }
    std::fclose(urandom);
    serial[0] &= 0x7F;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(hostname.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);

    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
    std::string san = "DNS:" + hostname;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
    if (!ext) return make_error(Errc::invalid_argument, "bad host name for a certificate: " + hostname);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
        return make_error(Errc::internal, "certificate signing: " + openssl_error());
    }

    auto key_pem = to_pem([&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    if (!key_pem) return key_pem.error();
    auto cert_pem = to_pem([&](BIO* bio) { return PEM_write_bio_X509(bio, cert.get()); });
    if (!cert_pem) return cert_pem.error();
    // Each file is whole or absent after a crash. Between the two renames the new key and an old (or no)
    // certificate can meet: the pair no longer loads, which the demo treats as damage and regenerates.
    MAGPIE_TRY(write_file_durably(private_key, *key_pem, 0600));
    MAGPIE_TRY(write_file_durably(certificate, *cert_pem, 0644));
    return {};
}

}  // namespace magpie::net
