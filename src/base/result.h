// Result<T>: a value or an Error. Expected failures (bad input, unknown user, a full disk) travel as
// values through every module; exceptions are for bugs and resource exhaustion only.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace magpie {

// What kind of failure this is; callers branch on the code, logs and protocol replies use the message.
enum class Errc {
    invalid_argument,  // malformed input from a peer or a caller
    not_found,         // no such user, mailbox, message, blob
    already_exists,    // unique name taken
    limit_exceeded,    // a configured bound was hit
    permission_denied, // authenticated but not allowed, or relay denied
    auth_failed,       // wrong credentials
    io_error,          // the disk or the network failed
    corrupt,           // stored data does not match what it claims to be
    unavailable,       // temporarily cannot serve (shutting down, busy); retry later
    conflict,          // what the request was based on changed meanwhile; read it again and retry
    internal,          // a bug; logged loudly
};

const char* errc_name(Errc code);

struct Error {
    Errc code;
    std::string message;
};

inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { assert(ok()); return std::get<0>(v_); }
    const T& value() const& { assert(ok()); return std::get<0>(v_); }
    T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const { assert(!ok()); return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    bool ok() const { return !error_.has_value(); }
    explicit operator bool() const { return ok(); }
    const Error& error() const { assert(!ok()); return *error_; }

private:
    std::optional<Error> error_;
};

// Propagates an error from an expression returning Result<...>: MAGPIE_TRY(store.begin());
#define MAGPIE_TRY(expr)                                       \
    do {                                                       \
        auto magpie_try_result_ = (expr);                      \
        if (!magpie_try_result_) return magpie_try_result_.error(); \
    } while (0)

}  // namespace magpie
