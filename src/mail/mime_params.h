// Content-Type and Content-Disposition values (RFC 2045 5.1, RFC 2183) and their parameters, with RFC 2231
// continuations, charsets and languages decoded to UTF-8. Raw parameters are kept too: IMAP's
// BODYSTRUCTURE reports parameters as written.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace magpie::mail {

struct ParameterLimits {
    std::size_t max_parameters = 128;    // raw parameters kept per field
    std::size_t max_continuations = 999; // highest RFC 2231 section number accepted
};

// A parameter as written: name as written, value with quoting removed.
struct RawParameter {
    std::string name;
    std::string value;
};

// A parameter after RFC 2231 reassembly: lower-case name without "*", value in UTF-8.
struct Parameter {
    std::string name;
    std::string value;
    std::string charset;   // RFC 2231 charset, empty when none was given
    std::string language;  // RFC 2231 language, empty when none was given
};

struct ParameterList {
    std::vector<RawParameter> raw;
    std::vector<Parameter> decoded;

    const Parameter* find(std::string_view name) const;  // case-insensitive
    std::string get(std::string_view name) const;        // decoded value, empty when absent
};

// The parameters as IMAP's BODYSTRUCTURE lists them (RFC 3501 7.4.2 body-fld-param), in Dovecot's form:
// RFC 2231 sections of one name joined into one parameter, still encoded, so that a client decodes it as
// if it had been written whole: name*0*=UTF-8''%EC%95%A8; name*1*=%EB%A6%AC.pdf gives
// name* = UTF-8''%EC%95%A8%EB%A6%AC.pdf, and name*0="a"; name*1="b" gives name = ab. When any section is
// encoded the plain ones are %-escaped into it. Names whose sections are not numbered 0, 1, 2, ... without
// a gap or a repeat stay as written. Plain parameters come first in their order, then the joined ones in
// the byte order of their names as written (Dovecot's order).
std::vector<RawParameter> join_rfc2231_sections(const std::vector<RawParameter>& raw);

// Parses "; name=value; name*0*=..." (the text after the main value). Never fails; junk is skipped.
ParameterList parse_parameters(std::string_view text, const ParameterLimits& limits = {});

struct ContentType {
    std::string type = "text";     // lower case
    std::string subtype = "plain"; // lower case
    ParameterList params;
    bool present = false;          // false: defaulted (no field, or an unreadable one), RFC 2045 5.2

    bool is(std::string_view t, std::string_view s) const;
    bool is_multipart() const { return type == "multipart"; }
};

// RFC 2045 5.2: a missing or syntactically invalid Content-Type means text/plain; charset=us-ascii.
ContentType parse_content_type(std::string_view value, const ParameterLimits& limits = {});

struct ContentDisposition {
    std::string kind;  // lower case: "inline", "attachment", ...; empty when absent
    ParameterList params;
};

ContentDisposition parse_content_disposition(std::string_view value, const ParameterLimits& limits = {});

}  // namespace magpie::mail
