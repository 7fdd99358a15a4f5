// A Store for unit tests of code that calls only a few of its methods: every method a Store must have answers
// "not used by this test" (Errc::internal), and a test derives from it and overrides what the code under test
// calls. (Store's other methods already answer `unsupported` by default.)
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace magpie::store {

class UnusedStore : public Store {
public:
    Result<Domain> add_domain(std::string_view) override { return unused(); }
    Result<void> delete_domain(std::string_view) override { return unused(); }
    Result<std::vector<Domain>> list_domains() override { return unused(); }
    Result<Account> add_account(std::string_view, std::string_view, const ScramCredentials&) override {
        return unused();
    }
    Result<void> set_password(std::string_view, std::string_view, const ScramCredentials&) override {
        return unused();
    }
    Result<void> set_disabled(std::string_view, bool) override { return unused(); }
    Result<void> delete_account(std::string_view) override { return unused(); }
    Result<std::vector<Account>> list_accounts(std::string_view) override { return unused(); }
    Result<Account> find_account(std::string_view) override { return unused(); }
    Result<void> add_alias(std::string_view, std::string_view) override { return unused(); }
    Result<void> delete_alias(std::string_view) override { return unused(); }
    Result<std::vector<Alias>> list_aliases(std::string_view) override { return unused(); }
    Result<RecipientResult> resolve_recipient(std::string_view) override { return unused(); }
    Result<std::uint64_t> directory_version() override { return unused(); }
    Result<std::vector<Mailbox>> list_mailboxes(std::int64_t) override { return unused(); }
    Result<Mailbox> find_mailbox(std::int64_t, std::string_view) override { return unused(); }
    void deliver(Delivery, std::function<void(Result<Delivered>)> done) override { done(unused()); }
    Result<std::vector<Message>> list_messages(std::int64_t) override { return unused(); }
    Result<Message> find_message(std::int64_t, std::uint32_t) override { return unused(); }
    Result<std::string> read_blob(std::string_view) override { return unused(); }
    void set_change_listener(ChangeListener) override {}
    StoreStats stats() const override { return {}; }

protected:
    static Error unused() { return make_error(Errc::internal, "not used by this test"); }
};

}  // namespace magpie::store
