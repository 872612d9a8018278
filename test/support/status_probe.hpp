// One node's status over a fresh client connection, for process tests
// that watch positions and leaders (docs/design.md section 7.3).
#pragma once

#include "test/support/cluster.hpp"
#include "tools/client.hpp"

#include <chrono>
#include <optional>

namespace rl::test {

// nullopt when the node does not answer within a second.
inline std::optional<transport::StatusReply> status_of(const LocalCluster& c, std::uint64_t node) {
    try {
        tools::Client client("test");
        const auto deadline = tools::Clock::now() + std::chrono::seconds(1);
        client.connect(c.endpoint(node), deadline);
        const auto reply = client.call(transport::StatusRequest{}, deadline);
        if (const auto* s = std::get_if<transport::StatusReply>(&reply)) return *s;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

}  // namespace rl::test
