#include "cli/password_input.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "base/strings.h"

namespace magpie::cli {
namespace {

Result<std::string> prompt_hidden(const char* prompt) {
    std::fputs(prompt, stderr);
    std::fflush(stderr);
    termios old{};
    bool restore = ::tcgetattr(STDIN_FILENO, &old) == 0;
    if (restore) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::string line;
    bool ok = static_cast<bool>(std::getline(std::cin, line));
    if (restore) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::fputs("\n", stderr);
    if (!ok) return make_error(Errc::invalid_argument, "no password given");
    return line;
}

}  // namespace

Result<std::string> read_new_password() {
    std::string password;
    if (::isatty(STDIN_FILENO)) {
        auto first = prompt_hidden("New password: ");
        if (!first) return first.error();
        auto second = prompt_hidden("Again: ");
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

}  // namespace magpie::cli
