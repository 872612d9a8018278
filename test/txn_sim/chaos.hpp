// One seeded random run of the transaction simulator: the shape (3 or 5
// nodes, Bully or Ring, how often it compacts) from the seed, then rounds of
// chaos under client load (drops, duplicates, delays and reordering,
// symmetric and asymmetric partitions, crashes at any point of the
// persist/sync/send order, delayed syncs, restarts), each followed by a
// quiet phase that checks liveness and the quiescent accounting.
#pragma once

#include "sim.hpp"

namespace rl::txn::sim {

struct RandomRun {
    std::uint64_t seed = 1;
    std::size_t shards = 1;  // of 3 nodes each when more than one, with transfers across them
    int chaos_rounds = 2;
    bool strict_durability = false;
    bool slow_links = false;  // some fault phases delay messages up to 300 ms
    bool trace = false;
};

// Throws SimFailure on any violated invariant; returns the run's counters.
SimStats random_run(const RandomRun& run);

// Heals everything, restarts down nodes (at least a majority of every
// shard up), stops new client operations and requires, within the liveness
// bound, that every pending one completes, every up node applies the whole
// committed history and no cross-shard transaction is left undecided (the
// participant asks on its own); then checks the quiescent accounting,
// requires every cross-shard record to be forgotten within the bound too,
// and lets clients go on.
void quiet(Sim& sim);

}  // namespace rl::txn::sim
