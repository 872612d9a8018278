// The bank workload's clients: many closed loops on one io_context, each
// sending transfers (within and across shards) and linearizable balance
// reads to whichever node of the item's shard it believes leads, retrying
// one operation with the same txid (docs/design.md section 6.4) on
// `unavailable`, `timeout`, a silent node or a lost connection, at the
// leader hint or the next member, until the operation's deadline. What each
// operation's client learned is recorded as it ends (history.hpp).
#pragma once

#include "config/config.hpp"
#include "tools/bank/history.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <vector>

namespace rl::bank {

struct WorkloadSpec {
    std::uint32_t clients = 16;
    std::chrono::milliseconds duration{60'000};     // no operation starts after it
    std::chrono::milliseconds op_timeout{5'000};    // one operation with all its retries
    std::chrono::milliseconds attempt_timeout{1'500};  // one request to one node
    double read_share = 0.3;   // operations that are balance reads
    double cross_share = 0.4;  // transfers whose TO is in another shard than FROM
    std::int64_t amount_max = 20;  // amounts drawn from 1..amount_max
    std::uint64_t seed = 1;
    std::uint64_t items_per_shard = 100;  // the first N items of every shard are in play
};

struct WorkloadStats {
    std::uint64_t sessions_opened = 0;
    std::uint64_t sessions_failed = 0;    // transfers not sent: no session with their shard in time
    std::uint64_t retries = 0;            // attempts after an operation's first
};

// The items in play (the first `per_shard` of each shard) and their
// balance at the start: the config's initial_balance.
std::map<std::uint64_t, std::int64_t> initial_balances(const config::Config& config, std::uint64_t per_shard);

// Runs the workload until `spec.duration` has passed and every operation
// has ended, or `stop` turns true (then operations in flight end at once,
// as unknown). `start` is time zero of every recorded time.
void run_workload(const config::Config& config, const WorkloadSpec& spec, std::chrono::steady_clock::time_point start,
                  const std::atomic<bool>& stop, std::vector<Transfer>& transfers, std::vector<Read>& reads,
                  WorkloadStats& stats);

}  // namespace rl::bank
