#include "tools/bank/nemesis.hpp"

#include <algorithm>
#include <thread>

namespace rl::bank {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::int64_t ms_since(Clock::time_point start) {
    return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

// Waits until `at` or `stop`; the schedule's clock, not a test's condition.
void wait_until(Clock::time_point at, const std::atomic<bool>& stop) {
    while (!stop && Clock::now() < at) std::this_thread::sleep_for(std::min<Clock::duration>(milliseconds(50), at - Clock::now()));
}

std::string node_list(const std::vector<std::uint64_t>& nodes, const char* sep) {
    std::string out;
    for (std::uint64_t n : nodes) out += (out.empty() ? "" : sep) + std::to_string(n);
    return out;
}

// One fault in progress: what it did, so that it can be undone.
struct Injected {
    std::vector<std::uint64_t> killed;
    bool partitioned = false;
};

void note(TimelineEvent& e, const Ran& r) {
    if (r.code == 0 || !e.ok) return;
    e.ok = false;
    e.error = r.command + " exited " + std::to_string(r.code) + ": " + tail_lines(r.output, 3);
}

// The leader of `shard`, or (when none answers as leader) its first node,
// said so in the timeline.
std::uint64_t leader_or_first(const ClusterControl& c, std::uint64_t shard, TimelineEvent& e) {
    if (const auto l = c.leader_of(shard, milliseconds(3000))) return *l;
    e.what += " (no leader found; chose the first node)";
    return c.config().shard(ShardId{shard})->nodes.front().value;
}

Injected inject(const ClusterControl& c, const Fault& f, TimelineEvent& e) {
    Injected done;
    const auto& members = c.config().shard(ShardId{f.shard == 0 ? 1 : f.shard})->nodes;
    std::vector<std::uint64_t> targets;
    switch (f.kind) {
        case FaultKind::kill_leader: targets.push_back(leader_or_first(c, f.shard, e)); break;
        case FaultKind::kill_follower: {
            const std::uint64_t leader = leader_or_first(c, f.shard, e);
            std::vector<std::uint64_t> followers;
            for (NodeId id : members) {
                if (id.value != leader) followers.push_back(id.value);
            }
            targets.push_back(followers.empty() ? leader : followers[f.pick % followers.size()]);
            break;
        }
        case FaultKind::kill_shard:
            for (NodeId id : members) targets.push_back(id.value);
            break;
        case FaultKind::isolate_leader:
        case FaultKind::delay_leader: {
            const std::uint64_t leader = leader_or_first(c, f.shard, e);
            e.what += " -> node " + std::to_string(leader);
            done.partitioned = true;
            const auto ms = std::to_string(f.delay_ms), jitter = std::to_string(f.jitter_ms);
            note(e, f.kind == FaultKind::isolate_leader ? c.partition({"isolate", std::to_string(leader)})
                                                        : c.partition({"delay", std::to_string(leader), ms, jitter}));
            return done;
        }
        case FaultKind::split: {
            std::vector<std::uint64_t> rest;
            for (const auto& [id, node] : c.config().nodes()) {
                if (std::find(f.minority.begin(), f.minority.end(), id.value) == f.minority.end()) rest.push_back(id.value);
            }
            done.partitioned = true;
            note(e, c.partition({"split", node_list(f.minority, ",") + "|" + node_list(rest, ",")}));
            return done;
        }
    }
    e.what += " -> killed " + node_list(targets, ",");
    for (std::uint64_t n : targets) {
        const Ran r = c.kill(n);
        note(e, r);
        if (r.code == 0) done.killed.push_back(n);
    }
    return done;
}

void undo(const ClusterControl& c, const Injected& done, TimelineEvent& e, std::set<std::uint64_t>& down) {
    if (done.partitioned) note(e, c.partition({"heal"}));
    for (std::uint64_t n : done.killed) {
        const Ran r = c.restart(n);
        note(e, r);
        if (r.code != 0) down.insert(n);
    }
}

}  // namespace

std::vector<TimelineEvent> run_nemesis(const ClusterControl& cluster, const std::vector<Fault>& schedule,
                                       Clock::time_point start, const std::atomic<bool>& stop,
                                       std::set<std::uint64_t>& down) {
    std::vector<TimelineEvent> timeline;
    for (const Fault& f : schedule) {
        wait_until(start + milliseconds(f.start_ms), stop);
        if (stop) break;
        TimelineEvent e;
        e.kind = f.kind;
        e.what = describe(f);
        e.start_ms = ms_since(start);
        const Injected done = inject(cluster, f, e);
        wait_until(start + milliseconds(f.start_ms + f.duration_ms), stop);
        undo(cluster, done, e, down);
        e.end_ms = ms_since(start);
        timeline.push_back(std::move(e));
    }
    return timeline;
}

}  // namespace rl::bank
