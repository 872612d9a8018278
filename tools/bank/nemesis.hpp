// Runs a nemesis schedule (schedule.hpp) against a live cluster: at each
// fault's start it resolves roles to nodes and breaks something through
// tools/rlcluster or tools/partition, at its end it undoes it (restart,
// heal). Blocking (subprocesses, status questions), so it runs on a thread
// of its own beside the workload's io_context; it shares nothing with the
// workload but the stop flag, and its timeline is read after join.
#pragma once

#include "tools/bank/cluster.hpp"
#include "tools/bank/schedule.hpp"

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace rl::bank {

struct TimelineEvent {
    std::int64_t start_ms = 0;  // since the workload's start
    std::int64_t end_ms = 0;    // when the fault was undone
    std::string what;           // the fault as scheduled, then the nodes it hit
    FaultKind kind = FaultKind::kill_leader;
    bool ok = true;             // every action succeeded
    std::string error;          // the first failed action's output
};

// Runs `schedule` from `start` until it ends or `stop` turns true; every
// fault begun is undone before it returns. Nodes whose restart failed are
// left in `down` for the final restart.
std::vector<TimelineEvent> run_nemesis(const ClusterControl& cluster, const std::vector<Fault>& schedule,
                                       std::chrono::steady_clock::time_point start, const std::atomic<bool>& stop,
                                       std::set<std::uint64_t>& down);

}  // namespace rl::bank
