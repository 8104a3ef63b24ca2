#include "gossip/membership.h"

#include <algorithm>

namespace kv::gossip {

StaticMembership::StaticMembership(std::vector<Member> members) : members_(std::move(members)) {
    std::sort(members_.begin(), members_.end(),
              [](const Member& a, const Member& b) { return a.id < b.id; });
}

Result<std::vector<Member>> parse_member_list(std::string_view text) {
    std::vector<Member> members;
    while (!text.empty()) {
        const size_t comma = text.find(',');
        std::string_view entry = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
        if (entry.empty()) continue;
        const size_t eq = entry.find('=');
        if (eq == std::string_view::npos || eq == 0 || eq + 1 == entry.size()) {
            return Status(ErrorCode::invalid_argument,
                          "member '" + std::string(entry) + "' is not of the form id=endpoint");
        }
        Member m{std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1))};
        for (const auto& other : members) {
            if (other.id == m.id) {
                return Status(ErrorCode::invalid_argument, "member id '" + m.id + "' appears twice");
            }
        }
        members.push_back(std::move(m));
    }
    return members;
}

}  // namespace kv::gossip
