// What the election core hands its shell after step() and tick(), in the
// order the shell must handle it (docs/design.md section 9, habit 1, etcd's Ready): persist,
// then send, then log and react.
#pragma once

#include "config/types.hpp"
#include "election/messages.hpp"

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <vector>

namespace rl::election {

// The state that must survive a restart (docs/design.md section 5, "Epochs").
struct Durable {
    Epoch promised;  // highest epoch this node promised, to a candidate or to itself; never promised again
    Epoch epoch;     // highest epoch this node adopted; never below `promised`, so epochs only grow

    bool operator==(const Durable&) const = default;

    template <class Archive>
    void serialize(Archive& ar) { ar(promised, epoch); }
};

enum class RoleKind { follower, candidate, leader };
const char* to_string(RoleKind r);
std::ostream& operator<<(std::ostream& os, RoleKind r);

struct Envelope {
    NodeId to;            // a member of the shard, never the sender itself
    ElectionMessage msg;  // send only after Output::persist is on disk
};

enum class EventKind {
    peer_suspected,    // peer: silent for more than suspect_after
    peer_recovered,    // peer: heard again
    election_started,  // the node started an election attempt of its algorithm
    winner_chosen,     // leader: the winner the algorithm picked (ring phase 1 done)
    election_failed,   // reason: why the attempt ended without a leader
    prevote_round,     // epoch: the node asks every member whether it would promise epoch + 1
    prevote_granted,   // peer: the candidate this node would promise epoch + 1 (binds nothing)
    prevote_refused,   // peer: the candidate refused; reason, leader: the live leader heard
    promise_round,     // epoch: a majority granted the pre-vote; the node asks every member to promise it
    promised,          // peer: the candidate this node promised `epoch` to
    promise_refused,   // peer: the candidate refused; reason, leader: the live leader heard
    became_leader,     // epoch: the node holds a majority of promises for it
    stepped_down,      // reason: why the node stopped leading or standing
    epoch_adopted,     // epoch: the higher epoch seen on a message from peer
    leader_changed,    // epoch, leader: the node's view of who leads (kNoNode: nobody)
    fenced,            // peer: sent a message from a lower epoch; told our epoch
    bad_message,       // peer: malformed or impossible input, dropped; reason
};
const char* to_string(EventKind k);

// One line of the node's key=value log. Fields a kind does not use keep
// their defaults and are not printed.
struct Event {
    EventKind kind;
    Epoch epoch;               // the node's epoch when the event happened
    NodeId peer = kNoNode;     // the other node involved, if any
    NodeId leader = kNoNode;   // the leader involved, if any
    const char* reason = "";   // a static string naming the rule at work
};
// Prints "event=<kind> epoch=<e> [peer=<p>] [leader=<l>] [reason=<r>]".
std::ostream& operator<<(std::ostream& os, const Event& e);

// The node's view of leadership, reported whenever any part of it changes.
struct LeaderChange {
    Epoch epoch;    // the node's current epoch
    NodeId leader;  // who leads `epoch` as far as the node knows; kNoNode if nobody
    RoleKind role;  // the node's own role

    bool operator==(const LeaderChange&) const = default;
};

// Reported once when this node becomes leader, for the log layer: it must
// adopt the most up-to-date log of the promise quorum before appending.
struct Elected {
    Epoch epoch;                  // the epoch this node now leads
    LogPosition best_log;         // the most up-to-date log position among the promises
    NodeId best_log_holder;       // a node holding best_log (this node if it is itself the best)
    std::vector<NodeId> quorum;   // the nodes whose promises made the majority, ascending
};

struct Output {
    std::optional<Durable> persist;      // write and fsync this before sending any of `messages`
    std::vector<Envelope> messages;      // then send these, in order
    std::vector<Event> events;           // then log these
    std::optional<LeaderChange> leader_change;  // the latest view, if it changed
    std::optional<Elected> elected;      // set when this node became leader

    bool empty() const;
};

}  // namespace rl::election
