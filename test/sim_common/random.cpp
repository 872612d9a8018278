#include "random.hpp"

namespace rl::simcommon {

std::optional<NodeId> pick_node(std::mt19937_64& r, const std::vector<NodeId>& ids) {
    if (ids.empty()) return std::nullopt;
    return ids[uniform(r, 0, ids.size() - 1)];
}

}  // namespace rl::simcommon
