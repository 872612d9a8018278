// Peer messages of the election layer. Plain structs with a cereal
// serialize(); transport/messages.hpp gathers them into the wire variant.
// kWireType is the frame's type byte (DESIGN.md section 3): election owns
// the range 20..59; a value, once shipped, never changes meaning.
#pragma once

#include "config/types.hpp"

#include <cstdint>
#include <variant>

namespace rl::election {

// Sent by every node to each peer of its shard every heartbeat_ms. Any frame
// from a peer proves it alive; this one also spreads who leads.
struct Heartbeat {
    static constexpr std::uint8_t kWireType = 20;
    Epoch epoch;            // the sender's current epoch (fencing, discovery)
    NodeId leader;          // who the sender believes leads `epoch`; kNoNode if none
    LogIndex commit_index;  // the sender's commit index (0 until the log exists)

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, leader, commit_index); }
};

using ElectionMessage = std::variant<Heartbeat>;

}  // namespace rl::election
