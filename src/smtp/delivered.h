// The bytes final delivery stores for a received message: the trace fields on top (RFC 5321 4.4), then the
// message as the client sent it, kept a well-formed RFC 5322 message. A message whose first line is not a
// header field (plain text typed at a telnet prompt) gets the empty line that keeps its text a body instead
// of a continuation of the trace fields, and the Date, Message-ID and From that Postfix's cleanup adds to
// mail that lacks them (RFC 5322 3.6 requires Date and From). Sans-IO: time and ids come in as values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "smtp/server_session.h"

namespace magpie::smtp {

// Which missing header fields (Date, Message-ID, From) final delivery adds.
enum class AddMissingHeaders {
    never,       // none; a headerless message still gets its empty line
    headerless,  // only to a message with no header section at all (default): nothing signed can change
    always,      // to any message lacking them (Postfix's always_add_missing_headers = yes)
};

struct DeliveryStamp {
    std::string_view hostname;   // right side of an added Message-ID; domain of MAILER-DAEMON
    std::string_view queue_id;   // makes an added Message-ID unique (letters and digits)
    std::int64_t unix_time = 0;  // an added Date, and the Message-ID's time stamp
    AddMissingHeaders add_missing = AddMissingHeaders::headerless;
};

// `trace_fields`: CRLF-terminated fields to put first (Return-Path, Received). `data`: the content as
// MessageReceived carries it (CRLF lines). Added fields go where Postfix puts them: after the message's
// own fields, in the order Message-ID, Date, From (From: the envelope sender, or MAILER-DAEMON@hostname
// for the null sender). Where the header section is ended by a line that is neither a field nor empty,
// the empty line is inserted, as Postfix does for the primary header.
std::string delivered_message(std::string_view trace_fields, const Envelope& envelope, std::string_view data,
                              const DeliveryStamp& stamp);

}  // namespace magpie::smtp
