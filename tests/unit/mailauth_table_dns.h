// A DNS for the mailauth tests: records from a table, NXDOMAIN for names with no record of any type,
// NODATA for names with records of other types, SERVFAIL for names listed as failing. Counts queries.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "mailauth/dns.h"

namespace magpie::mailauth::testing {

class TableDns : public Dns {
public:
    TableDns& add(RecordType type, std::string name, std::string value) {
        records_[{type, to_lower(name)}].push_back(std::move(value));
        names_.insert(to_lower(name));
        return *this;
    }
    TableDns& txt(std::string name, std::string value) {
        return add(RecordType::txt, std::move(name), std::move(value));
    }
    TableDns& a(std::string name, std::string value) {
        return add(RecordType::a, std::move(name), std::move(value));
    }
    TableDns& aaaa(std::string name, std::string value) {
        return add(RecordType::aaaa, std::move(name), std::move(value));
    }
    TableDns& mx(std::string name, std::string host) {
        return add(RecordType::mx, std::move(name), std::move(host));
    }
    TableDns& ptr(std::string address, std::string name) {
        return add(RecordType::ptr, std::move(address), std::move(name));
    }
    TableDns& servfail(std::string name) {
        failing_.insert(to_lower(name));
        return *this;
    }
    TableDns& tlsa(std::string name, std::string value) {
        return add(RecordType::tlsa, std::move(name), std::move(value));
    }
    // Answers for `name` (of any type) come with the AD bit: a validated signed zone.
    TableDns& secure(std::string name) {
        secure_.insert(to_lower(name));
        return *this;
    }

    Result<dns::Resolver::SecureRecords> lookup_secure(RecordType type, std::string_view name_in) override {
        auto records = lookup(type, name_in);
        if (!records) return records.error();
        std::string name = to_lower(name_in);
        if (name.ends_with('.')) name.pop_back();
        return dns::Resolver::SecureRecords{std::move(*records), secure_.count(name) > 0};
    }

    Result<std::vector<std::string>> lookup(RecordType type, std::string_view name_in) override {
        ++queries;
        std::string name = to_lower(name_in);
        if (name.ends_with('.')) name.pop_back();
        if (failing_.count(name)) return make_error(Errc::unavailable, "SERVFAIL for " + name);
        auto it = records_.find({type, name});
        if (it != records_.end()) return it->second;
        if (names_.count(name)) return std::vector<std::string>{};
        return make_error(Errc::not_found, name + ": NXDOMAIN");
    }

    int queries = 0;

private:
    std::map<std::pair<RecordType, std::string>, std::vector<std::string>> records_;
    std::set<std::string> names_;
    std::set<std::string> failing_;
    std::set<std::string> secure_;
};

}  // namespace magpie::mailauth::testing
