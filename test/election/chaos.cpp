#include "chaos.hpp"

#include <algorithm>
#include <iterator>

namespace rl::election::sim {
namespace {

template <class T, std::size_t N>
T pick(std::mt19937_64& r, const T (&options)[N]) {
    return options[r() % N];
}

std::optional<NodeId> pick_node(std::mt19937_64& r, const std::vector<NodeId>& ids) {
    if (ids.empty()) return std::nullopt;
    return ids[r() % ids.size()];
}

std::vector<NodeId> down_nodes(const Sim& sim) {
    std::vector<NodeId> out;
    for (NodeId id : sim.ids()) {
        if (!sim.is_up(id)) out.push_back(id);
    }
    return out;
}

// Two or three groups of random sizes; sometimes the leader alone.
void random_partition(Sim& sim) {
    auto& r = sim.rng();
    std::vector<NodeId> ids = sim.ids();
    std::shuffle(ids.begin(), ids.end(), r);
    const auto leaders = sim.leaders();
    if (!leaders.empty() && r() % 3 == 0) {
        std::vector<NodeId> rest;
        for (NodeId id : ids) {
            if (id != leaders.front()) rest.push_back(id);
        }
        return sim.partition({{leaders.front()}, rest});
    }
    const std::size_t groups = r() % 4 == 0 ? 3 : 2;
    std::vector<std::vector<NodeId>> parts(groups);
    for (NodeId id : ids) parts[r() % groups].push_back(id);
    sim.partition(parts);
}

// Asymmetric: one direction of one link, or everything into one node.
void random_cut(Sim& sim) {
    auto& r = sim.rng();
    const auto ids = sim.ids();
    if (ids.size() < 2) return;
    const NodeId to = ids[r() % ids.size()];
    if (r() % 3 == 0) {
        for (NodeId from : ids) {
            if (from != to) sim.cut(from, to);
        }
        return;
    }
    NodeId from = ids[r() % ids.size()];
    if (from != to) sim.cut(from, to);
}

NetFaults random_faults(std::mt19937_64& r) {
    NetFaults f;
    f.drop = pick(r, {0.0, 0.02, 0.1, 0.3});
    f.duplicate = pick(r, {0.0, 0.05, 0.2});
    f.delay_min_ms = 1;
    f.delay_max_ms = pick(r, {3ull, 10ull, 30ull, 80ull});
    f.crash_before_persist = pick(r, {0.0, 0.01, 0.05});
    f.crash_after_persist = pick(r, {0.0, 0.01, 0.05});
    return f;
}

void random_action(Sim& sim) {
    auto& r = sim.rng();
    const auto roll = r() % 100;
    if (roll < 20) return random_partition(sim);
    if (roll < 30) return random_cut(sim);
    if (roll < 45) return sim.heal();
    if (roll < 55) {
        if (auto id = pick_node(r, sim.up_nodes())) sim.crash(*id);
        return;
    }
    if (roll < 65) {
        if (auto id = pick_node(r, sim.leaders())) sim.crash(*id);
        return;
    }
    if (roll < 85) {
        if (auto id = pick_node(r, down_nodes(sim))) sim.start(*id);
        return;
    }
    sim.set_faults(random_faults(r));
}

void chaos(Sim& sim) {
    auto& r = sim.rng();
    sim.set_faults(random_faults(r));
    const std::uint64_t end = sim.now_ms() + 200 + r() % 1200;
    while (sim.now_ms() < end) {
        sim.run_for(std::min<std::uint64_t>(10 + r() % 200, end - sim.now_ms()));
        random_action(sim);
    }
}

// DESIGN.md 5 liveness: with a connected majority, a leader that every up
// node agrees on exists within 2 x (suspect_after + election_timeout) of the
// network becoming stable, and in a stable network it then stays. A view is
// only taken as settled once it has held for suspect_after +
// election_timeout: one agreed on just after the heal may still rest on the
// chaos (a leader about to be suspected for its silence while it was cut
// off), and replacing it then is correct. Any change after the deadline is
// a failure.
void quiet(Sim& sim) {
    auto& r = sim.rng();
    sim.heal();
    sim.set_faults(NetFaults{});
    for (NodeId id : down_nodes(sim)) {
        if (r() % 4 != 0) sim.start(id);
    }
    while (sim.up_nodes().size() <= sim.ids().size() / 2) sim.start(*pick_node(r, down_nodes(sim)));
    const std::uint64_t stable_ms = sim.now_ms();
    const std::uint64_t deadline_ms =
        stable_ms + sim.liveness_bound_ms() + sim.max_delay_ever_ms() + sim.config().tick_ms;
    const auto& t = sim.config().timing;
    const std::uint64_t hold_ms = (t.suspect_after_ticks + t.election_timeout_ticks) * sim.config().tick_ms;
    const auto up = sim.up_nodes();
    const auto agreed = [&] { return sim.agreed_leader(up); };
    const auto failure = [&](const std::string& what) {
        return SimFailure("t=" + std::to_string(sim.now_ms()) + "ms: " + what + " (network stable since t=" +
                          std::to_string(stable_ms) + "ms)");
    };
    for (;;) {
        const auto view = agreed();
        if (!view) {
            if (sim.now_ms() >= deadline_ms) throw failure("no agreed leader within the liveness bound");
            sim.run_until([&] { return agreed().has_value(); }, deadline_ms - sim.now_ms());
            continue;
        }
        if (!sim.run_until([&] { return agreed() != view; }, hold_ms)) return;  // settled
        if (sim.now_ms() > deadline_ms) throw failure("leadership changed in a stable network");
    }
}

}  // namespace

SimStats random_run(const RandomRun& run) {
    std::mt19937_64 shape(run.seed);
    SimConfig config;
    config.nodes = pick(shape, {1ul, 2ul, 3ul, 3ul, 3ul, 4ul, 5ul, 5ul, 5ul, 5ul, 6ul, 7ul});
    config.algorithm = run.algorithm;
    config.seed = shape();
    config.trace = run.trace;
    Sim sim(config);
    // Nodes come up over the first 300 ms, in random order.
    auto order = sim.ids();
    std::shuffle(order.begin(), order.end(), sim.rng());
    for (NodeId id : order) {
        sim.start(id);
        sim.run_for(sim.rng()() % 100);
    }
    quiet(sim);
    for (int i = 0; i < run.chaos_rounds; ++i) {
        chaos(sim);
        quiet(sim);
    }
    return sim.stats();
}

}  // namespace rl::election::sim
