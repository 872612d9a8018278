#include "tools/bank/schedule.hpp"

#include "config/random.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace rl::bank {

namespace {

struct Named {
    FaultKind kind;
    const char* name;
};

constexpr Named kNames[] = {{FaultKind::kill_leader, "kill-leader"},       {FaultKind::kill_follower, "kill-follower"},
                            {FaultKind::kill_shard, "kill-shard"},         {FaultKind::isolate_leader, "isolate-leader"},
                            {FaultKind::split, "split"},                   {FaultKind::delay_leader, "delay"}};

std::string seconds(std::int64_t ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
    return buf;
}

void validate(const ScheduleSpec& s) {
    if (s.shards.empty()) throw std::invalid_argument("the schedule needs at least one shard");
    for (const auto& [shard, nodes] : s.shards) {
        if (nodes.empty()) throw std::invalid_argument("shard " + std::to_string(shard) + " has no nodes");
    }
    if (s.kinds.empty()) throw std::invalid_argument("the schedule needs at least one kind of fault");
    if (s.fault_ms_min <= 0 || s.fault_ms_min > s.fault_ms_max || s.gap_ms_min < 0 || s.gap_ms_min > s.gap_ms_max ||
        s.first_ms < 0) {
        throw std::invalid_argument("fault and gap ranges must be positive and ordered");
    }
}

// Per shard, a random minority (f of its 2f+1 nodes, at least one node),
// all of them on one side.
std::vector<std::uint64_t> draw_minority(const ScheduleSpec& s, Rng& rng) {
    std::vector<std::uint64_t> side;
    for (const auto& [shard, nodes] : s.shards) {
        std::vector<std::uint64_t> shuffled = nodes;
        shuffle(shuffled.begin(), shuffled.end(), rng);
        const std::size_t f = std::max<std::size_t>(1, (nodes.size() - 1) / 2);
        side.insert(side.end(), shuffled.begin(), shuffled.begin() + static_cast<std::ptrdiff_t>(f));
    }
    std::sort(side.begin(), side.end());
    return side;
}

Fault draw_fault(const ScheduleSpec& s, FaultKind kind, std::int64_t start_ms, Rng& rng) {
    Fault f;
    f.kind = kind;
    f.start_ms = start_ms;
    f.duration_ms = static_cast<std::int64_t>(
        uniform(rng, static_cast<std::uint64_t>(s.fault_ms_min), static_cast<std::uint64_t>(s.fault_ms_max)));
    auto it = s.shards.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(uniform(rng, 0, s.shards.size() - 1)));
    f.shard = it->first;
    f.pick = uniform(rng, 0, 1000);
    if (kind == FaultKind::split) {
        f.shard = 0;
        f.minority = draw_minority(s, rng);
    }
    if (kind == FaultKind::delay_leader) {
        f.delay_ms = static_cast<std::uint32_t>(uniform(rng, 50, 300));
        f.jitter_ms = f.delay_ms / 4;
    }
    return f;
}

}  // namespace

const char* fault_name(FaultKind kind) {
    for (const Named& n : kNames) {
        if (n.kind == kind) return n.name;
    }
    return "?";
}

std::optional<FaultKind> parse_fault(const std::string& name) {
    for (const Named& n : kNames) {
        if (name == n.name) return n.kind;
    }
    return std::nullopt;
}

const std::vector<FaultKind>& all_faults() {
    static const std::vector<FaultKind> all = [] {
        std::vector<FaultKind> v;
        for (const Named& n : kNames) v.push_back(n.kind);
        return v;
    }();
    return all;
}

std::vector<Fault> make_schedule(const ScheduleSpec& spec) {
    validate(spec);
    Rng rng(spec.seed);
    std::vector<Fault> out;
    std::vector<FaultKind> turn;
    std::int64_t at = spec.first_ms;
    while (true) {
        if (turn.empty()) {
            turn = spec.kinds;
            shuffle(turn.begin(), turn.end(), rng);
        }
        Fault f = draw_fault(spec, turn.back(), at, rng);
        if (f.start_ms + f.duration_ms > spec.duration_ms) break;
        turn.pop_back();
        at = f.start_ms + f.duration_ms +
             static_cast<std::int64_t>(uniform(rng, static_cast<std::uint64_t>(spec.gap_ms_min),
                                               static_cast<std::uint64_t>(spec.gap_ms_max)));
        out.push_back(std::move(f));
    }
    return out;
}

std::string describe(const Fault& f) {
    std::string line = "t=" + seconds(f.start_ms) + " +" + seconds(f.duration_ms) + " " + fault_name(f.kind);
    if (f.kind == FaultKind::split) {
        std::string side;
        for (std::uint64_t n : f.minority) side += (side.empty() ? "" : ",") + std::to_string(n);
        return line + " minority " + side;
    }
    line += " shard " + std::to_string(f.shard);
    if (f.kind == FaultKind::delay_leader) {
        line += " " + std::to_string(f.delay_ms) + "ms jitter " + std::to_string(f.jitter_ms) + "ms";
    }
    return line;
}

}  // namespace rl::bank
