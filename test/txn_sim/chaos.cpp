#include "chaos.hpp"

#include "test/sim_common/chaos.hpp"

#include <string>

namespace rl::txn::sim {
namespace {

using simcommon::pick;

// `slow_links`: a fifth of the fault phases delay every message up to
// 300 ms, as a peer link's queue does across a reconnect (rlnode holds
// frames while it redials), so that requests between shards arrive long
// after their answers.
NetFaults random_faults(std::mt19937_64& r, bool slow_links) {
    NetFaults f;
    f.drop = pick(r, {0.0, 0.02, 0.1, 0.3});
    f.duplicate = pick(r, {0.0, 0.05, 0.2});
    f.delay_max_ms = pick(r, {3ull, 10ull, 30ull, 80ull});
    f.crash_in_write = pick(r, {0.0, 0.0, 0.002});
    f.crash_in_sync = pick(r, {0.0, 0.0, 0.002});
    f.crash_after_sync = pick(r, {0.0, 0.0, 0.002});
    f.disk_error = pick(r, {0.0, 0.0, 0.002, 0.02});
    f.defer_sync = pick(r, {0.0, 0.3, 0.8});
    if (slow_links && r() % 5 == 0) f.delay_max_ms = 300;
    return f;
}

}  // namespace

void quiet(Sim& sim) {
    simcommon::stabilize(sim);
    // stabilize() counts a majority of all nodes; every shard needs its own.
    for (std::size_t k = 1; k <= sim.shard_count(); ++k) {
        const ShardId shard{k};
        while (sim.shard_up(shard).size() < election::majority(sim.config().nodes)) {
            std::vector<NodeId> down;
            for (NodeId id : sim.shard_nodes(shard)) {
                if (!sim.is_up(id)) down.push_back(id);
            }
            sim.start(*simcommon::pick_node(sim.rng(), down));
        }
    }
    sim.set_clients_active(false);
    // A client may be waiting out its timeout on an answer that was lost,
    // then needs a leader: its timeout plus the election bound, twice over.
    const std::uint64_t bound_ms =
        2 * (sim.config().client_timeout_ms + sim.liveness_bound_ms()) + sim.max_delay_ever_ms();
    const std::uint64_t stable_ms = sim.now_ms();
    if (!sim.run_until([&] { return sim.clients_idle() && sim.converged() && sim.settled(); }, bound_ms)) {
        throw SimFailure("t=" + std::to_string(sim.now_ms()) + "ms: " +
                         (!sim.clients_idle()  ? "client operations still pending"
                          : !sim.converged() ? "up nodes did not converge"
                                             : "cross-shard transactions still undecided, held or pending") +
                         " in a stable network since t=" + std::to_string(stable_ms) + "ms");
    }
    sim.check_quiescent();
    if (sim.shard_count() > 1 && !sim.run_until([&] { return sim.converged() && sim.forgotten(); }, bound_ms)) {
        throw SimFailure("t=" + std::to_string(sim.now_ms()) +
                         "ms: decided cross-shard records not forgotten in a stable network since t=" +
                         std::to_string(stable_ms) + "ms");
    }
    sim.set_clients_active(true);
}

SimStats random_run(const RandomRun& run) {
    std::mt19937_64 shape(run.seed);
    SimConfig config;
    config.nodes = pick(shape, {3ul, 3ul, 5ul});
    if (run.shards > 1) {
        config.shards = run.shards;
        config.nodes = 3;
    }
    config.algorithm = shape() % 2 ? config::ElectionAlgorithm::ring : config::ElectionAlgorithm::bully;
    config.snapshot_after_entries = pick(shape, {3ull, 10ull, 50000ull});
    config.clients = pick(shape, {2ul, 3ul, 5ul});
    // Often fewer sessions kept than the clients open over a run.
    config.sessions_max = pick(shape, {2u, 4u, 20u});
    config.dedup_window = pick(shape, {2u, 8u});
    config.seed = shape();
    config.trace = run.trace;
    config.strict_durability = run.strict_durability;
    Sim sim(config);
    const auto faults = [&](std::mt19937_64& r) { return random_faults(r, run.slow_links); };
    simcommon::boot_and_rounds(sim, run.chaos_rounds, quiet, [&](Sim& s) { simcommon::chaos(s, 300, faults); });
    return sim.stats();
}

}  // namespace rl::txn::sim
