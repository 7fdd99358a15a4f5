#include "cli/password_input.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "base/strings.h"

namespace magpie::cli {
namespace {

constexpr std::size_t kMaxPasswordOctets = 1024;

// One line from `fd` (a terminal) with echo off, the prompt written to `out`.
Result<std::string> prompt_hidden(int fd, int out, std::string_view prompt) {
    (void)!::write(out, prompt.data(), prompt.size());
    termios old{};
    bool restore = ::tcgetattr(fd, &old) == 0;
    if (restore) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    std::string line;
    char c = 0;
    bool ended = false;
    while (line.size() <= kMaxPasswordOctets) {
        if (::read(fd, &c, 1) != 1) break;
        if (c == '\n') {
            ended = true;
            break;
        }
        line += c;
    }
    if (restore) ::tcsetattr(fd, TCSAFLUSH, &old);
    (void)!::write(out, "\n", 1);
    if (!ended && line.empty()) return make_error(Errc::invalid_argument, "no password given");
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

}  // namespace

Result<std::string> read_new_password() {
    std::string password;
    if (::isatty(STDIN_FILENO)) {
        auto first = prompt_hidden(STDIN_FILENO, STDERR_FILENO, "New password: ");
        if (!first) return first.error();
        auto second = prompt_hidden(STDIN_FILENO, STDERR_FILENO, "Again: ");
        if (!second) return second.error();
        if (*first != *second) return make_error(Errc::invalid_argument, "the passwords differ");
        password = std::move(*first);
    } else {
        if (!std::getline(std::cin, password)) return make_error(Errc::invalid_argument, "no password on standard input");
        if (!password.empty() && password.back() == '\r') password.pop_back();
    }
    if (password.empty()) return make_error(Errc::invalid_argument, "empty password");
    if (password.size() > 1024) return make_error(Errc::invalid_argument, "password longer than 1024 octets");
    if (!is_valid_utf8(password)) return make_error(Errc::invalid_argument, "password is not valid UTF-8");
    for (unsigned char c : password) {
        if (c < 0x20 || c == 0x7F) return make_error(Errc::invalid_argument, "password contains control characters");
    }
    return password;
}

Result<std::string> read_password_from_terminal(const std::string& prompt) {
    int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) return make_error(Errc::invalid_argument, "no terminal to ask for the password on");
    auto password = prompt_hidden(fd, fd, prompt);
    ::close(fd);
    return password;
}

}  // namespace magpie::cli
