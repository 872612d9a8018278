// Strong identifier types shared by every layer. A NodeId is never an Epoch:
// mixing them up is a compile error, not a split brain.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace rl {

template <class Tag>
struct Strong {
    std::uint64_t value = 0;

    constexpr Strong() = default;
    constexpr explicit Strong(std::uint64_t v) : value(v) {}

    constexpr auto operator<=>(const Strong&) const = default;

    // The following and preceding value, for counters such as log indexes
    // and epochs. prev() of 0 is a programmer error the caller rules out.
    constexpr Strong next() const { return Strong{value + 1}; }
    constexpr Strong prev() const { return Strong{value - 1}; }

    template <class Archive>
    void serialize(Archive& ar) { ar(value); }

    friend std::ostream& operator<<(std::ostream& os, const Strong& s) { return os << s.value; }
};

struct NodeIdTag {};
struct ShardIdTag {};
struct ItemIdTag {};
struct EpochTag {};
struct LogIndexTag {};

using NodeId = Strong<NodeIdTag>;      // 0 means "no node"
using ShardId = Strong<ShardIdTag>;
using ItemId = Strong<ItemIdTag>;
using Epoch = Strong<EpochTag>;        // 0 is "before any election"
using LogIndex = Strong<LogIndexTag>;  // 0 is "empty log"

inline constexpr NodeId kNoNode{0};

}  // namespace rl

template <class Tag>
struct std::hash<rl::Strong<Tag>> {
    std::size_t operator()(const rl::Strong<Tag>& s) const noexcept {
        return std::hash<std::uint64_t>{}(s.value);
    }
};
