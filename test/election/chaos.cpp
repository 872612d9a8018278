#include "chaos.hpp"

#include "test/sim_common/chaos.hpp"

#include <string>

namespace rl::election::sim {
namespace {

using simcommon::pick;

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

// docs/design.md section 5 liveness: with a connected majority, a leader that every up
// node agrees on exists within 2 x (suspect_after + election_timeout) of the
// network becoming stable, and in a stable network it then stays. A view is
// only taken as settled once it has held for suspect_after +
// election_timeout: one agreed on just after the heal may still rest on the
// chaos (a leader about to be suspected for its silence while it was cut
// off), and replacing it then is correct. Any change after the deadline is
// a failure.
void quiet(Sim& sim) {
    simcommon::stabilize(sim);
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
    // Crashes of a process on a live host (peers are refused) or of a whole
    // host (peers hear silence), or a mix.
    config.live_host_crashes = pick(shape, {0.0, 0.5, 1.0});
    Sim sim(config);
    simcommon::boot_and_rounds(sim, run.chaos_rounds, quiet,
                               [](Sim& s) { simcommon::chaos(s, 200, random_faults); });
    return sim.stats();
}

}  // namespace rl::election::sim
