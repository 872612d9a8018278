// Latency percentiles for the load tools (rlbench, rlcompare): the value
// at rank p * (n - 1) of the samples, found in place without a full sort.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rl::tools {

// 0 for no samples; reorders `v`.
inline std::uint32_t percentile(std::vector<std::uint32_t>& v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

}  // namespace rl::tools
