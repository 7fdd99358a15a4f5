#include "http/methods/blob.h"

#include <fmt/format.h>

#include "http/methods/email.h"
#include "http/methods/session.h"

namespace magpie::http {
namespace {

using nlohmann::json;

Response not_found(std::string detail) { return problem_response(Problem{404, "about:blank", std::move(detail), {}}); }

// "type=..." from a query string (others ignored); empty when absent or badly escaped.
std::string query_type(std::string_view query) {
    while (!query.empty()) {
        std::size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        if (pair.starts_with("type=")) {
            auto decoded = percent_decode(pair.substr(5));
            return decoded ? *decoded : std::string();
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

MethodOutcome blob_copy(store::Store& store, const store::Account& account, const json& args) {
    if (auto error = check_account_id(args, account)) return *error;
    auto from = args.find("fromAccountId");
    if (from == args.end() || !from->is_string()) return MethodError{"invalidArguments", "\"fromAccountId\" must be a string"};
    // An account sees no other account here, so a copy can only be from itself (where it changes nothing).
    if (*from != jmap_account_id(account)) return MethodError{"fromAccountNotFound", "no such account for this user"};
    auto ids = args.find("blobIds");
    if (ids == args.end() || !ids->is_array()) return MethodError{"invalidArguments", "\"blobIds\" must be an array"};
    json copied = json::object();
    json not_copied = json::object();
    for (const auto& id : *ids) {
        if (!id.is_string()) return MethodError{"invalidArguments", "\"blobIds\" must hold strings"};
        auto blob = read_jmap_blob(store, account, id.get<std::string>());
        if (blob) {
            copied[id.get<std::string>()] = id;
        } else if (blob.error().code == Errc::not_found) {
            not_copied[id.get<std::string>()] = {{"type", "notFound"}};
        } else {
            return MethodError{"serverFail", blob.error().message};
        }
    }
    return json{{"fromAccountId", *from},
                {"accountId", jmap_account_id(account)},
                {"copied", copied.empty() ? json() : copied},
                {"notCopied", not_copied.empty() ? json() : not_copied}};
}

}  // namespace

Response upload_blob(store::Store& store, const store::Account& account, std::string_view path_account_id,
                     std::string_view content_type, std::string_view body, const ApiLimits& limits, std::int64_t now) {
    if (path_account_id != jmap_account_id(account)) return not_found("no such account for this user");
    if (body.size() > limits.max_size_upload) {
        return problem_response(Problem{413, kProblemLimit,
                                        fmt::format("an upload is at most {} octets", limits.max_size_upload),
                                        "maxSizeUpload"});
    }
    std::string type = safe_media_type(content_type);
    auto uploaded = store.add_upload(account.id, body, type, now, now - kUploadLifetimeSeconds);
    if (!uploaded) {
        if (uploaded.error().code == Errc::limit_exceeded) {
            return problem_response(Problem{413, kProblemLimit, uploaded.error().message, "maxSizeUpload"});
        }
        return problem_response(Problem{500, "about:blank", "the upload was not stored", {}});
    }
    Response response;
    response.status = 201;
    response.body = to_json_text(json{{"accountId", jmap_account_id(account)},
                                      {"blobId", uploaded->blob_id},
                                      {"type", uploaded->type},
                                      {"size", uploaded->size}});
    return response;
}

Response download_blob(store::Store& store, const store::Account& account, std::string_view rest,
                       std::string_view query) {
    std::size_t first = rest.find('/');
    if (first == std::string_view::npos) return not_found("the download URL is /jmap/download/{accountId}/{blobId}/{name}");
    std::size_t second = rest.find('/', first + 1);
    if (second == std::string_view::npos) return not_found("the download URL is /jmap/download/{accountId}/{blobId}/{name}");
    auto account_id = percent_decode(rest.substr(0, first));
    auto blob_id = percent_decode(rest.substr(first + 1, second - first - 1));
    auto name = percent_decode(rest.substr(second + 1));
    if (!account_id || !blob_id || !name) return not_found("badly escaped download URL");
    if (*account_id != jmap_account_id(account)) return not_found("no such account for this user");
    auto content = read_jmap_blob(store, account, *blob_id);
    if (!content) {
        if (content.error().code == Errc::not_found) return not_found("no such blob");
        return problem_response(Problem{500, "about:blank", "the blob could not be read", {}});
    }
    Response response;
    response.content_type = safe_media_type(query_type(query));
    response.body = std::move(*content);
    response.headers.emplace_back("Content-Disposition", content_disposition(*name));
    // The bytes are the sender's: never run them as a page of this origin, whatever the type says.
    response.headers.emplace_back("Content-Security-Policy", "sandbox");
    return response;
}

void add_blob_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account) {
    dispatcher.add("Blob/copy", std::string(kCapabilityCore), [&store, account](const json& args, CallContext&) {
        return blob_copy(store, account, args);
    });
}

}  // namespace magpie::http
