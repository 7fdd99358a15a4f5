#include "mailauth/tlsrpt.h"

#include "base/strings.h"

namespace magpie::mailauth {

Result<TlsRptRecord> parse_tlsrpt_record(std::string_view txt) {
    TlsRptRecord record;
    bool first = true, has_rua = false;
    for (auto field : split(txt, ';')) {
        field = trim(field);
        if (field.empty()) continue;
        std::size_t eq = field.find('=');
        if (eq == std::string_view::npos)
            return make_error(Errc::invalid_argument, "field \"" + std::string(field) + "\" has no '='");
        std::string_view key = trim(field.substr(0, eq)), value = trim(field.substr(eq + 1));
        if (first) {
            if (key != "v" || value != "TLSRPTv1")
                return make_error(Errc::invalid_argument, "does not start with v=TLSRPTv1");
            first = false;
            continue;
        }
        if (key != "rua") continue;
        if (has_rua) return make_error(Errc::invalid_argument, "rua given twice");
        has_rua = true;
        for (auto uri : split(value, ',')) {
            uri = trim(uri);
            if (!istarts_with(uri, "mailto:") && !istarts_with(uri, "https://"))
                return make_error(Errc::invalid_argument,
                                  "rua \"" + std::string(uri) + "\" is neither mailto: nor https:");
            if (uri.size() <= 8 || (istarts_with(uri, "mailto:") && uri.find('@') == std::string_view::npos))
                return make_error(Errc::invalid_argument, "rua \"" + std::string(uri) + "\" names no address");
            record.rua.emplace_back(uri);
        }
    }
    if (first) return make_error(Errc::invalid_argument, "empty record");
    if (record.rua.empty()) return make_error(Errc::invalid_argument, "no rua=");
    return record;
}

Result<TlsRptRecord> select_tlsrpt_record(const std::vector<std::string>& txt_records) {
    std::vector<std::string_view> candidates;
    for (const auto& txt : txt_records)
        if (trim(txt).starts_with("v=TLSRPTv1")) candidates.push_back(txt);
    if (candidates.empty()) return make_error(Errc::not_found, "no v=TLSRPTv1 record");
    if (candidates.size() > 1)
        return make_error(Errc::invalid_argument, "more than one v=TLSRPTv1 record (RFC 8460 3: none is used)");
    return parse_tlsrpt_record(candidates.front());
}

}  // namespace magpie::mailauth
