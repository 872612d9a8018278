#include "chaos.hpp"

#include "test/sim_common/chaos.hpp"

#include <string>

namespace rl::txn::sim {
namespace {

using simcommon::pick;

NetFaults random_faults(std::mt19937_64& r) {
    NetFaults f;
    f.drop = pick(r, {0.0, 0.02, 0.1, 0.3});
    f.duplicate = pick(r, {0.0, 0.05, 0.2});
    f.delay_max_ms = pick(r, {3ull, 10ull, 30ull, 80ull});
    f.crash_in_write = pick(r, {0.0, 0.0, 0.002});
    f.crash_in_sync = pick(r, {0.0, 0.0, 0.002});
    f.crash_after_sync = pick(r, {0.0, 0.0, 0.002});
    f.disk_error = pick(r, {0.0, 0.0, 0.002, 0.02});
    f.defer_sync = pick(r, {0.0, 0.3, 0.8});
    return f;
}

}  // namespace

void quiet(Sim& sim) {
    simcommon::stabilize(sim);
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
    config.snapshot_after_entries = pick(shape, {3ull, 10ull, 50000ull});
    config.clients = pick(shape, {2ul, 3ul, 5ul});
    // Often fewer sessions kept than the clients open over a run.
    config.sessions_max = pick(shape, {2u, 4u, 20u});
    config.dedup_window = pick(shape, {2u, 8u});
    config.seed = shape();
    config.trace = run.trace;
    config.strict_durability = run.strict_durability;
    Sim sim(config);
    simcommon::boot_and_rounds(sim, run.chaos_rounds, quiet,
                               [](Sim& s) { simcommon::chaos(s, 300, random_faults); });
    return sim.stats();
}

}  // namespace rl::txn::sim
