// Draws from a simulator's one seeded PRNG. Every draw a run makes comes
// from here or from the PRNG directly, in a fixed order, so a seed replays
// the same run.
#pragma once

#include "config/random.hpp"
#include "config/types.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

namespace rl::simcommon {

using rl::chance;
using rl::uniform;

template <class T, std::size_t N>
T pick(std::mt19937_64& r, const T (&options)[N]) {
    return options[uniform(r, 0, N - 1)];
}

std::optional<NodeId> pick_node(std::mt19937_64& r, const std::vector<NodeId>& ids);

}  // namespace rl::simcommon
