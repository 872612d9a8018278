// Peer messages of the election layer. Plain structs with a cereal
// serialize(); transport/messages.hpp gathers them into the wire variant.
// kWireType is the frame's type byte (docs/design.md section 3): election owns
// the range 20..59; a value, once shipped, never changes meaning.
//
// Every message carries the sender's epoch first, so the core can fence
// stale senders before looking at anything else (docs/design.md section 9, habit 3).
#pragma once

#include "config/types.hpp"

#include <cereal/types/vector.hpp>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

namespace rl::election {

// Upper bound on the members of one shard. Bounds every id list on the wire
// (docs/design.md section 9, habit 7: limits on everything); a shard config above it is refused.
inline constexpr std::size_t kShardMembersMax = 64;

// No message may carry this epoch: nothing could ever be stood for above it,
// so one bad frame could otherwise exhaust the epochs.
inline constexpr Epoch kEpochMax{~std::uint64_t{0}};

// Where a node's replicated log ends. Ordered epoch first, then index (Raft's
// "more up to date" rule), so the promise round can pick the best log.
struct LogPosition {
    Epoch last_epoch;     // epoch of the last entry in the log; 0 when empty
    LogIndex last_index;  // index of the last entry; 0 when empty

    auto operator<=>(const LogPosition&) const = default;

    template <class Archive>
    void serialize(Archive& ar) { ar(last_epoch, last_index); }
};

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

// Bully: "I am starting an election", sent to every live member with a
// higher id than the sender.
struct BullyElection {
    static constexpr std::uint8_t kWireType = 21;
    Epoch epoch;  // the sender's current epoch (fencing)

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch); }
};

// Bully: a higher id's answer to BullyElection: "I am alive and take over;
// wait for my announcement".
struct BullyOk {
    static constexpr std::uint8_t kWireType = 22;
    Epoch epoch;  // the sender's current epoch (fencing)

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch); }
};

// Bully: the winner's announcement, sent to all members once it holds a
// majority of promises for `epoch`; also the answer of a live leader to a
// BullyElection.
struct BullyCoordinator {
    static constexpr std::uint8_t kWireType = 23;
    Epoch epoch;    // the epoch the sender leads (fencing)
    NodeId leader;  // the sender itself; a receiver ignores any other value

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, leader); }
};

// Ring phase 1: travels once around the id-ordered ring collecting the ids
// of the members that want a new leader.
struct RingElection {
    static constexpr std::uint8_t kWireType = 24;
    Epoch epoch;                // the forwarding node's current epoch (fencing)
    NodeId initiator;           // who started this election; it ends the trip
    std::uint32_t hops = 0;     // forwards so far; a message past members.size() hops is dropped
    std::vector<NodeId> ids;    // distinct members collected so far, at most members.size()

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, initiator, hops, ids); }
};

// Ring phase 2: the initiator sends the winner (highest collected id) once
// around the ring; the winner runs the promise round for the next epoch.
struct RingCoordinator {
    static constexpr std::uint8_t kWireType = 25;
    Epoch epoch;             // the forwarding node's current epoch; the winner stands for a higher one
    NodeId initiator;        // who completed phase 1; it ends the trip
    NodeId winner;           // the highest id phase 1 collected
    std::uint32_t hops = 0;  // forwards so far; a message past members.size() hops is dropped

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, initiator, winner, hops); }
};

// Ring: the successor's receipt for a RingElection or RingCoordinator. A
// successor that does not acknowledge in time is skipped like a dead one,
// which also covers links that fail in one direction only.
struct RingAck {
    static constexpr std::uint8_t kWireType = 28;
    Epoch epoch;              // the sender's current epoch (fencing)
    NodeId initiator;         // `initiator` of the message acknowledged
    std::uint32_t hops = 0;   // `hops` of the message acknowledged
    bool coordinator = false; // true: acknowledges a RingCoordinator; false: a RingElection

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, initiator, hops, coordinator); }
};

// The pre-vote, first half of the safety step common to both algorithms
// (docs/design.md section 5; Raft's PreVote, Ongaro's dissertation section 9.6):
// the winner asks every member whether it would promise `proposed`. The
// proposal is only that: nobody adopts it, persists it or answers it with a
// promise, so an attempt the majority refuses raises no epoch anywhere, and
// a live leader is never deposed by a node that merely stopped hearing it.
struct PreVoteRequest {
    static constexpr std::uint8_t kWireType = 29;
    Epoch epoch;     // the sender's current epoch (fencing); the attempt has not raised it
    Epoch proposed;  // the epoch the sender would stand for: always epoch + 1

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, proposed); }
};

// Answer to PreVoteRequest. Binds nobody and is never persisted.
struct PreVoteReply {
    static constexpr std::uint8_t kWireType = 30;
    Epoch epoch;           // the sender's current epoch (fencing)
    Epoch proposed;        // the request's, so the candidate matches the answer to its attempt
    bool granted = false;  // true: the sender hears no live leader, so it would promise `proposed`
    NodeId leader;         // a refusal's reason when not kNoNode: the live leader the sender hears

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, proposed, granted, leader); }
};

// The promise round, second half of the safety step (docs/design.md section 5):
// after a majority granted its pre-vote, the winner asks every member to
// promise `epoch`.
struct PromiseRequest {
    static constexpr std::uint8_t kWireType = 26;
    Epoch epoch;  // the epoch the sender stands for; it is also the sender's current epoch

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch); }
};

// Answer to PromiseRequest. A grant is on the sender's disk before it leaves.
struct PromiseReply {
    static constexpr std::uint8_t kWireType = 27;
    Epoch epoch;          // the sender's current epoch; equals the requested one when granted
    bool granted = false; // true: the sender will never promise this epoch or a lower one again
    NodeId leader;        // a refusal's reason when not kNoNode: the live leader the sender hears
    LogPosition log;      // the sender's log position, so the winner can adopt the best log

    template <class Archive>
    void serialize(Archive& ar) { ar(epoch, granted, leader, log); }
};

using ElectionMessage = std::variant<Heartbeat, BullyElection, BullyOk, BullyCoordinator, RingElection,
                                     RingCoordinator, RingAck, PreVoteRequest, PreVoteReply, PromiseRequest,
                                     PromiseReply>;

}  // namespace rl::election
