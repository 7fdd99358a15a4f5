// TLS contexts for the listeners (OpenSSL 3): a server context from a certificate chain and key in PEM files,
// and the self-signed pair `magpied --demo` generates on first start.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "base/result.h"
#include "net/asio.h"

namespace magpie::net {

// TLS 1.2 or newer, server cipher preference, no compression, no renegotiation.
Result<std::shared_ptr<asio::ssl::context>> make_server_tls_context(const std::filesystem::path& certificate,
                                                                    const std::filesystem::path& private_key);

// Writes a fresh EC P-256 key and a self-signed certificate for `hostname` (also in subjectAltName), valid
// ten years, each file durably (write_file_durably): the key mode 0600, the certificate 0644.
Result<void> generate_self_signed(const std::filesystem::path& certificate,
                                  const std::filesystem::path& private_key, const std::string& hostname);

}  // namespace magpie::net
