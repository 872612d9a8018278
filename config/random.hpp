// Draws from a seeded std::mt19937_64 that give the same values with every
// standard library. The engine's output sequence is fixed by the C++
// standard; std::uniform_int_distribution, std::uniform_real_distribution
// and std::shuffle are not, so a seed would replay differently elsewhere
// (docs/design.md section 7.2). Every draw in the project goes through here.
#pragma once

#include <cstdint>
#include <iterator>
#include <random>
#include <utility>

namespace rl {

using Rng = std::mt19937_64;

// Uniform in [lo, hi] (inclusive), by rejection: no modulo bias.
inline std::uint64_t uniform(Rng& r, std::uint64_t lo, std::uint64_t hi) {
    const std::uint64_t span = hi - lo;
    if (span == UINT64_MAX) return r();
    const std::uint64_t n = span + 1;
    // The largest multiple of n that fits; draws at or above it are redrawn.
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t x = r();
    while (x >= limit) x = r();
    return lo + x % n;
}

// A double in [0, 1) from the top 53 bits of one draw.
inline double fraction(Rng& r) { return static_cast<double>(r() >> 11) * 0x1.0p-53; }

// True with probability p; draws nothing when p <= 0, so a fault that is
// off does not shift the draws of a run.
inline bool chance(Rng& r, double p) { return p > 0 && fraction(r) < p; }

// Fisher-Yates over [first, last) with uniform().
template <class It>
void shuffle(It first, It last, Rng& r) {
    const auto n = static_cast<std::uint64_t>(std::distance(first, last));
    for (std::uint64_t i = n; i > 1; --i) {
        using std::swap;
        swap(first[i - 1], first[uniform(r, 0, i - 1)]);
    }
}

}  // namespace rl
