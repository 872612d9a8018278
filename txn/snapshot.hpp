// A state snapshot: everything applied through last_index, as the bytes of
// ShardState::snapshot(). The WAL keeps it on disk; a leader sends it to a
// follower whose next entry it has compacted away.
#pragma once

#include "config/types.hpp"

#include <cereal/types/vector.hpp>

#include <cstdint>
#include <vector>

namespace rl::txn {

struct Snapshot {
    LogIndex last_index;              // the last entry the state includes; > 0
    Epoch last_epoch;                 // that entry's epoch (log matching, Raft section 7)
    std::vector<std::uint8_t> state;  // the state machine's bytes

    bool operator==(const Snapshot&) const = default;
    template <class Archive>
    void serialize(Archive& ar) { ar(last_index, last_epoch, state); }
};

}  // namespace rl::txn
