// The fault switches as tools send them (docs/design.md section 6.8): `fail`
// and `recover` to one node, `reset` to every shard of a config through
// whichever node answers (the node passes it to the shard's leader, as it
// does a transfer). Used by `rlcat fail|recover|reset` and by the test-set
// runner (tools/testfile_runner.hpp).
#pragma once

#include "config/config.hpp"
#include "tools/client.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rl::tools {

// Sends `action` to the node at `endpoint` only (no other node can answer
// for it). Returns its reply; throws ConnectError or TimeoutError.
transport::ClientReply switch_fault(const std::string& cluster_name, const std::string& endpoint,
                                    transport::FaultAction action, Clock::time_point deadline);

// The reply each shard of `config` gave to its ResetRequest, in shard order.
// A shard that still records cross-shard transactions answers
// `unavailable`, which `client` retries until `deadline`. Stops at the
// first shard whose reply is not a ResetReply (that reply is the last).
std::vector<transport::ClientReply> reset_shards(RetryingClient& client, const config::Config& config,
                                                 Clock::time_point deadline);

// One object for the replies of reset_shards: `ok, shards` (each `shard,
// applied_at`), or the failing shard's error with "shard N: " in front of
// its message.
nlohmann::ordered_json resets_json(const std::vector<transport::ClientReply>& replies);

}  // namespace rl::tools
