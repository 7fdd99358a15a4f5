#include "imap/command.h"

namespace magpie::imap {
namespace {

std::string with_uid(bool uid, const char* name) {
    return uid ? std::string("UID ") + name : std::string(name);
}

std::string name_of(const Capability&) {
    return "CAPABILITY";
}
std::string name_of(const Noop&) {
    return "NOOP";
}
std::string name_of(const Logout&) {
    return "LOGOUT";
}
std::string name_of(const StartTls&) {
    return "STARTTLS";
}
std::string name_of(const Authenticate&) {
    return "AUTHENTICATE";
}
std::string name_of(const Login&) {
    return "LOGIN";
}
std::string name_of(const Enable&) {
    return "ENABLE";
}
std::string name_of(const Select& c) {
    return c.read_only ? "EXAMINE" : "SELECT";
}
std::string name_of(const Create&) {
    return "CREATE";
}
std::string name_of(const Delete&) {
    return "DELETE";
}
std::string name_of(const Rename&) {
    return "RENAME";
}
std::string name_of(const Subscribe&) {
    return "SUBSCRIBE";
}
std::string name_of(const Unsubscribe&) {
    return "UNSUBSCRIBE";
}
std::string name_of(const List&) {
    return "LIST";
}
std::string name_of(const Lsub&) {
    return "LSUB";
}
std::string name_of(const Namespace&) {
    return "NAMESPACE";
}
std::string name_of(const Status&) {
    return "STATUS";
}
std::string name_of(const Append&) {
    return "APPEND";
}
std::string name_of(const Idle&) {
    return "IDLE";
}
std::string name_of(const Check&) {
    return "CHECK";
}
std::string name_of(const Close&) {
    return "CLOSE";
}
std::string name_of(const Unselect&) {
    return "UNSELECT";
}
std::string name_of(const Expunge& c) {
    return c.uids ? "UID EXPUNGE" : "EXPUNGE";
}
std::string name_of(const Search& c) {
    return with_uid(c.uid, "SEARCH");
}
std::string name_of(const Fetch& c) {
    return with_uid(c.uid, "FETCH");
}
std::string name_of(const Store& c) {
    return with_uid(c.uid, "STORE");
}
std::string name_of(const Copy& c) {
    return with_uid(c.uid, "COPY");
}
std::string name_of(const Move& c) {
    return with_uid(c.uid, "MOVE");
}
std::string name_of(const Id&) {
    return "ID";
}
std::string name_of(const GetQuota&) {
    return "GETQUOTA";
}
std::string name_of(const GetQuotaRoot&) {
    return "GETQUOTAROOT";
}
std::string name_of(const SetQuota&) {
    return "SETQUOTA";
}

}  // namespace

std::string command_name(const CommandBody& body) {
    return std::visit([](const auto& command) { return name_of(command); }, body);
}

}  // namespace magpie::imap
