#include "chaos.hpp"

#include <algorithm>

namespace rl::txn::sim {
namespace {

template <class T, std::size_t N>
T pick(std::mt19937_64& r, const T (&options)[N]) {
    return options[r() % N];
}

std::optional<NodeId> pick_node(std::mt19937_64& r, const std::vector<NodeId>& ids) {
    if (ids.empty()) return std::nullopt;
    return ids[r() % ids.size()];
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

NetFaults random_faults(std::mt19937_64& r) {
    NetFaults f;
    f.drop = pick(r, {0.0, 0.02, 0.1, 0.3});
    f.duplicate = pick(r, {0.0, 0.05, 0.2});
    f.delay_max_ms = pick(r, {3ull, 10ull, 30ull, 80ull});
    f.crash_before_persist = pick(r, {0.0, 0.0, 0.002});
    f.crash_before_sync = pick(r, {0.0, 0.0, 0.002});
    f.crash_after_sync = pick(r, {0.0, 0.0, 0.002});
    f.defer_sync = pick(r, {0.0, 0.3, 0.8});
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
        if (auto id = pick_node(r, sim.down_nodes())) sim.start(*id);
        return;
    }
    sim.set_faults(random_faults(r));
}

void chaos(Sim& sim) {
    auto& r = sim.rng();
    sim.set_faults(random_faults(r));
    const std::uint64_t end = sim.now_ms() + 300 + r() % 1200;
    while (sim.now_ms() < end) {
        sim.run_for(std::min<std::uint64_t>(10 + r() % 200, end - sim.now_ms()));
        random_action(sim);
    }
}

}  // namespace

void quiet(Sim& sim) {
    auto& r = sim.rng();
    sim.heal();
    sim.set_faults(NetFaults{});
    for (NodeId id : sim.down_nodes()) {
        if (r() % 4 != 0) sim.start(id);
    }
    while (sim.up_nodes().size() <= sim.ids().size() / 2) sim.start(*pick_node(r, sim.down_nodes()));
    sim.set_clients_active(false);
    // A client may be waiting out its timeout on an answer that was lost,
    // then needs a leader: its timeout plus the election bound, twice over.
    const std::uint64_t bound_ms =
        2 * (sim.config().client_timeout_ms + sim.liveness_bound_ms()) + sim.max_delay_ever_ms();
    const std::uint64_t stable_ms = sim.now_ms();
    if (!sim.run_until([&] { return sim.clients_idle() && sim.converged(); }, bound_ms)) {
        throw SimFailure("t=" + std::to_string(sim.now_ms()) + "ms: " +
                         (sim.clients_idle() ? "up nodes did not converge" : "client operations still pending") +
                         " in a stable network since t=" + std::to_string(stable_ms) + "ms");
    }
    sim.check_quiescent();
    sim.set_clients_active(true);
}

SimStats random_run(const RandomRun& run) {
    std::mt19937_64 shape(run.seed);
    SimConfig config;
    config.nodes = pick(shape, {3ul, 3ul, 5ul});
    config.algorithm = shape() % 2 ? config::ElectionAlgorithm::ring : config::ElectionAlgorithm::bully;
    config.compact_after_entries = pick(shape, {3ull, 10ull, 50000ull});
    config.clients = pick(shape, {2ul, 3ul, 5ul});
    config.seed = shape();
    config.trace = run.trace;
    config.strict_durability = run.strict_durability;
    Sim sim(config);
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

}  // namespace rl::txn::sim
