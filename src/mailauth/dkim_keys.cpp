#include "mailauth/dkim_keys.h"

#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/strings.h"

namespace magpie::mailauth {

namespace {

constexpr std::size_t kMaxKeyFileOctets = 64 * 1024;

bool is_label_text(std::string_view s, bool dots) {
    if (s.empty() || s.size() > 253) return false;
    for (char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (dots && c == '.');
        if (!ok) return false;
    }
    return s.front() != '.' && s.front() != '-' && s.find("..") == std::string_view::npos;
}

Error io_error(const std::string& what, const std::filesystem::path& path) {
    return make_error(Errc::io_error, what + " " + path.string() + ": " + std::strerror(errno));
}

// mkdir -m 0700 for each missing level below data_dir, each new entry made durable in its parent.
Result<void> make_private_dir(const std::filesystem::path& dir, const KeygenOptions& options) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) return {};
    MAGPIE_TRY(make_private_dir(dir.parent_path(), options));
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return io_error("cannot create", dir);
    if (options.owner_uid >= 0 && ::chown(dir.c_str(), options.owner_uid, options.owner_gid) != 0)
        return io_error("cannot chown", dir);
    return fsync_directory(dir.parent_path());
}

Result<void> write_durably(const std::filesystem::path& path, std::string_view bytes,
                           const KeygenOptions& options) {
    std::filesystem::path temp = path;
    temp += ".tmp";
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return io_error("cannot create", temp);
    auto fail = [&](const char* what) {
        Error e = io_error(what, temp);
        ::close(fd);
        ::unlink(temp.c_str());
        return e;
    };
    if (int error = write_all(fd, bytes); error != 0) {
        errno = error;
        return fail("cannot write");
    }
    if (options.owner_uid >= 0 && ::fchown(fd, options.owner_uid, options.owner_gid) != 0)
        return fail("cannot chown");
    if (::fsync(fd) != 0) return fail("cannot fsync");
    if (::close(fd) != 0) {
        ::unlink(temp.c_str());
        return io_error("cannot close", temp);
    }
    // link() rather than rename(): it refuses to replace a key someone created meanwhile.
    if (::link(temp.c_str(), path.c_str()) != 0) {
        Error e = errno == EEXIST ? make_error(Errc::already_exists, path.string() + " already exists")
                                  : io_error("cannot link", path);
        ::unlink(temp.c_str());
        return e;
    }
    ::unlink(temp.c_str());
    return fsync_directory(path.parent_path());
}

Result<std::string> read_small_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return io_error("cannot read", path);
    std::string text;
    char buffer[4096];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (text.size() > kMaxKeyFileOctets)
            return make_error(Errc::corrupt, path.string() + " is too large for a key");
    }
    return text;
}

}  // namespace

std::filesystem::path dkim_key_dir(const std::filesystem::path& data_dir, std::string_view domain) {
    return data_dir / "dkim" / to_lower(domain);
}

Result<std::vector<StoredKey>> list_dkim_keys(const std::filesystem::path& data_dir,
                                              std::string_view domain_in) {
    std::string domain = to_lower(domain_in);
    if (!is_label_text(domain, true))
        return make_error(Errc::invalid_argument, "not a domain name: " + domain);
    std::vector<StoredKey> keys;
    std::filesystem::path dir = dkim_key_dir(data_dir, domain);
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return keys;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        if (entry.path().extension() != ".pem") continue;
        auto pem = read_small_file(entry.path());
        if (!pem) return pem.error();
        auto key = mail::dkim::PrivateKey::from_pem(*pem);
        if (!key) return make_error(Errc::corrupt, entry.path().string() + ": " + key.error().message);
        keys.push_back(
            StoredKey{entry.path().stem().string(), key->algorithm(), entry.path(), key->key_record()});
    }
    if (ec) return make_error(Errc::io_error, "cannot list " + dir.string() + ": " + ec.message());
    std::sort(keys.begin(), keys.end(),
              [](const StoredKey& a, const StoredKey& b) { return a.selector < b.selector; });
    return keys;
}

Result<std::vector<StoredKey>> create_dkim_keys(const std::filesystem::path& data_dir,
                                                std::string_view domain_in, const KeygenOptions& options) {
    std::string domain = to_lower(domain_in);
    if (!is_label_text(domain, true))
        return make_error(Errc::invalid_argument, "not a domain name: " + domain);
    if (!options.selector_suffix.empty() && !is_label_text(options.selector_suffix, false))
        return make_error(Errc::invalid_argument, "selector suffix must be letters, digits and '-'");
    std::filesystem::path dir = dkim_key_dir(data_dir, domain);
    std::vector<StoredKey> created;
    for (auto algorithm : {mail::dkim::Algorithm::rsa_sha256, mail::dkim::Algorithm::ed25519_sha256}) {
        std::string selector =
            (algorithm == mail::dkim::Algorithm::rsa_sha256 ? "r" : "e") + options.selector_suffix;
        std::filesystem::path path = dir / (selector + ".pem");
        std::error_code ec;
        if (std::filesystem::exists(path, ec))
            return make_error(Errc::already_exists,
                              "selector " + selector + " of " + domain + " already exists");
    }
    MAGPIE_TRY(make_private_dir(dir, options));
    for (auto algorithm : {mail::dkim::Algorithm::rsa_sha256, mail::dkim::Algorithm::ed25519_sha256}) {
        std::string selector =
            (algorithm == mail::dkim::Algorithm::rsa_sha256 ? "r" : "e") + options.selector_suffix;
        auto key = mail::dkim::PrivateKey::generate(algorithm, options.rsa_bits);
        if (!key) return key.error();
        std::filesystem::path path = dir / (selector + ".pem");
        MAGPIE_TRY(write_durably(path, key->to_pem(), options));
        created.push_back(StoredKey{selector, algorithm, path, key->key_record()});
    }
    return created;
}

Result<std::vector<StoredKey>> rotate_dkim_keys(const std::filesystem::path& data_dir, std::string_view domain,
                                                const KeygenOptions& options) {
    KeygenOptions attempt = options;
    for (char letter = 'a'; letter <= 'z'; ++letter) {
        if (letter != 'a') attempt.selector_suffix = options.selector_suffix + letter;
        auto created = create_dkim_keys(data_dir, domain, attempt);
        if (created || created.error().code != Errc::already_exists) return created;
    }
    return make_error(Errc::limit_exceeded, "no free selector left for suffix " + options.selector_suffix);
}

Result<void> remove_dkim_key(const std::filesystem::path& data_dir, std::string_view domain,
                             std::string_view selector) {
    if (!is_label_text(std::string(selector), false))
        return make_error(Errc::invalid_argument, "not a selector: " + std::string(selector));
    auto keys = list_dkim_keys(data_dir, domain);
    if (!keys) return keys.error();
    const StoredKey* found = nullptr;
    const StoredKey* newest_same_algorithm = nullptr;
    for (const auto& key : *keys) {
        if (key.selector == selector) found = &key;
    }
    if (!found) return make_error(Errc::not_found, "no DKIM key " + std::string(selector) + " for " + to_lower(domain));
    for (const auto& key : *keys) {  // sorted by selector: the last of an algorithm is the newest
        if (key.algorithm == found->algorithm) newest_same_algorithm = &key;
    }
    if (newest_same_algorithm == found)
        return make_error(Errc::permission_denied,
                          "selector " + found->selector + " is the newest of its kind and signs now; rotate first");
    if (::unlink(found->path.c_str()) != 0) return io_error("cannot remove", found->path);
    return fsync_directory(found->path.parent_path());
}

}  // namespace magpie::mailauth
