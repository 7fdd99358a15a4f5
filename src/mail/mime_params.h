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
