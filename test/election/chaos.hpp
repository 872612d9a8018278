// One seeded random run of the simulator: start, then rounds of chaos
// (drops, duplicates, delays and reordering, symmetric and asymmetric
// partitions, crashes at any point of the persist/send order, restarts),
// each followed by a quiet phase that checks liveness.
#pragma once

#include "sim.hpp"

namespace rl::election::sim {

struct RandomRun {
    std::uint64_t seed = 1;
    config::ElectionAlgorithm algorithm = config::ElectionAlgorithm::bully;
    int chaos_rounds = 2;
    bool trace = false;
};

// Throws SimFailure on any violated invariant; returns the run's counters.
SimStats random_run(const RandomRun& run);

}  // namespace rl::election::sim
