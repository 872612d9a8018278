// The bank workload's nemesis as a schedule: a pure function of a seed and
// the deployment's shape, so a seed prints and replays the same faults.
// Faults run one at a time, each followed by a quiet gap; a fault that
// names a role ("the leader of shard 2") is resolved to a node when it runs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rl::bank {

enum class FaultKind : std::uint8_t {
    kill_leader,     // SIGKILL a shard's leader; restart it at the end
    kill_follower,   // SIGKILL one of its followers; restart it at the end
    kill_shard,      // SIGKILL every node of a shard at once; restart them all
    isolate_leader,  // cut a shard's leader off from every other node; heal
    split,           // every shard split minority | majority, minorities together; heal
    delay_leader,    // delay every packet from a shard's leader (tc netem); heal
};

// "kill-leader", "kill-follower", "kill-shard", "isolate-leader", "split", "delay"
const char* fault_name(FaultKind kind);
std::optional<FaultKind> parse_fault(const std::string& name);
const std::vector<FaultKind>& all_faults();

struct Fault {
    FaultKind kind = FaultKind::kill_leader;
    std::uint64_t shard = 0;   // the shard it aims at (split: every shard)
    std::int64_t start_ms = 0;  // since the workload's start
    std::int64_t duration_ms = 0;
    std::uint64_t pick = 0;    // kill_follower: which follower (index modulo their number)
    std::vector<std::uint64_t> minority;  // split: the nodes on the small side
    std::uint32_t delay_ms = 0;   // delay_leader
    std::uint32_t jitter_ms = 0;  // delay_leader
};

struct ScheduleSpec {
    std::uint64_t seed = 0;
    std::int64_t duration_ms = 60'000;  // faults start and end within it
    std::map<std::uint64_t, std::vector<std::uint64_t>> shards;  // shard -> its nodes, ascending
    std::vector<FaultKind> kinds;  // drawn in turns of a shuffled order, so each comes up
    std::int64_t first_ms = 2'000;  // quiet start
    std::int64_t fault_ms_min = 2'000, fault_ms_max = 6'000;
    std::int64_t gap_ms_min = 1'000, gap_ms_max = 3'000;
};

// Throws std::invalid_argument for a spec it cannot serve (no shards, no
// kinds, a shard without nodes, a bad range).
std::vector<Fault> make_schedule(const ScheduleSpec& spec);

// One line: "t=12.3s +4.0s kill-leader shard 2".
std::string describe(const Fault& fault);

}  // namespace rl::bank
