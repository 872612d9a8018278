// The chaos schedule both simulators run: random partitions (sometimes the
// leader alone), asymmetric cuts, heals, crashes of any node or of the
// leader, restarts and new faults, at random moments. Written once over any
// simulator with the interface below, so both draw from their seed in the
// same order.
#pragma once

#include "election/quorum.hpp"
#include "random.hpp"

#include "config/types.hpp"

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <random>
#include <vector>

namespace rl::simcommon {

template <class S>
concept ChaosTarget = requires(S& sim, NodeId id, const std::vector<std::vector<NodeId>>& groups) {
    { sim.rng() } -> std::same_as<std::mt19937_64&>;
    { sim.now_ms() } -> std::convertible_to<std::uint64_t>;
    { sim.ids() } -> std::same_as<std::vector<NodeId>>;
    { sim.up_nodes() } -> std::same_as<std::vector<NodeId>>;
    { sim.down_nodes() } -> std::same_as<std::vector<NodeId>>;
    { sim.leaders() } -> std::same_as<std::vector<NodeId>>;
    sim.start(id);
    sim.crash(id);
    sim.partition(groups);
    sim.cut(id, id);
    sim.heal();
    sim.run_for(std::uint64_t{0});
};

// Two or three groups of random sizes; sometimes the leader alone.
template <ChaosTarget S>
void random_partition(S& sim) {
    auto& r = sim.rng();
    std::vector<NodeId> ids = sim.ids();
    rl::shuffle(ids.begin(), ids.end(), r);
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
template <ChaosTarget S>
void random_cut(S& sim) {
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
    const NodeId from = ids[r() % ids.size()];
    if (from != to) sim.cut(from, to);
}

// One random step of the schedule; `random_faults(rng)` draws the
// simulator's own fault set.
template <ChaosTarget S, class RandomFaults>
void random_action(S& sim, const RandomFaults& random_faults) {
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
        if (auto id = pick_node(r, sim.down_nodes())) sim.start(*id);
        return;
    }
    sim.set_faults(random_faults(r));
}

// A chaos phase of min_ms plus up to 1.2 s: random actions 10 to 210 ms
// apart.
template <ChaosTarget S, class RandomFaults>
void chaos(S& sim, std::uint64_t min_ms, const RandomFaults& random_faults) {
    auto& r = sim.rng();
    sim.set_faults(random_faults(r));
    const std::uint64_t end = sim.now_ms() + min_ms + r() % 1200;
    while (sim.now_ms() < end) {
        sim.run_for(std::min<std::uint64_t>(10 + r() % 200, end - sim.now_ms()));
        random_action(sim, random_faults);
    }
}

// The start of a quiet phase: heals every link, clears the faults and
// restarts most down nodes, at least a majority up, so that liveness must
// follow.
template <ChaosTarget S>
void stabilize(S& sim) {
    auto& r = sim.rng();
    sim.heal();
    sim.set_faults({});
    for (NodeId id : sim.down_nodes()) {
        if (r() % 4 != 0) sim.start(id);
    }
    while (sim.up_nodes().size() < election::majority(sim.ids().size())) sim.start(*pick_node(r, sim.down_nodes()));
}

// A random run's life after its shape is drawn: nodes come up over the
// first 300 ms in random order, then quiet, then rounds of chaos, each
// followed by quiet.
template <ChaosTarget S, class Quiet, class Chaos>
void boot_and_rounds(S& sim, int chaos_rounds, const Quiet& quiet, const Chaos& chaos_round) {
    auto order = sim.ids();
    rl::shuffle(order.begin(), order.end(), sim.rng());
    for (NodeId id : order) {
        sim.start(id);
        sim.run_for(sim.rng()() % 100);
    }
    quiet(sim);
    for (int i = 0; i < chaos_rounds; ++i) {
        chaos_round(sim);
        quiet(sim);
    }
}

}  // namespace rl::simcommon
