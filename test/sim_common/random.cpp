#include "random.hpp"

namespace rl::simcommon {

bool chance(std::mt19937_64& r, double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(r) < p; }

std::uint64_t uniform(std::mt19937_64& r, std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(r);
}

std::optional<NodeId> pick_node(std::mt19937_64& r, const std::vector<NodeId>& ids) {
    if (ids.empty()) return std::nullopt;
    return ids[r() % ids.size()];
}

}  // namespace rl::simcommon
