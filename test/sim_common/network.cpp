#include "network.hpp"

#include <algorithm>

namespace rl::simcommon {

Links::Links(std::size_t nodes) : cut_(nodes, std::vector<bool>(nodes, false)) {}

void Links::partition(const std::vector<std::vector<NodeId>>& groups) {
    const std::size_t n = cut_.size();
    std::vector<std::size_t> group_of(n, groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
        for (NodeId id : groups[g]) group_of.at(id.value - 1) = g;
    }
    for (std::size_t a = 0; a < n; ++a) {
        for (std::size_t b = 0; b < n; ++b) cut_[a][b] = group_of[a] != group_of[b];
    }
}

void Links::cut(NodeId from, NodeId to) { cut_.at(from.value - 1).at(to.value - 1) = true; }

void Links::heal() {
    for (auto& row : cut_) std::fill(row.begin(), row.end(), false);
}

}  // namespace rl::simcommon
