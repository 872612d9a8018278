// The election core of one node (docs/design.md section 5): a pure state machine
// in the style of etcd-io/raft and scylladb's raft::fsm. It owns no socket,
// clock, thread or global RNG. The node shell calls step() for every peer
// message, tick() once per tick_ms, and after either drains take_output():
// persist, then send, then log (docs/design.md section 9, habit 1).
//
// Who leads is picked by Bully or Ring; safety comes from the step common to
// both: the winner proposes epoch e and raises its epoch to e only once a
// majority granted the proposal (the pre-vote), then leads e only with a
// majority of durable promises for e; every message is fenced by epoch.
#pragma once

#include "config/config.hpp"
#include "config/types.hpp"
#include "election/failure_detector.hpp"
#include "election/messages.hpp"
#include "election/output.hpp"

#include <cstdint>
#include <random>
#include <variant>
#include <vector>

namespace rl::election {

// Timeouts in ticks; the node converts its *_ms settings with tick_ms.
struct Timing {
    std::uint64_t heartbeat_ticks;         // period of this node's heartbeats
    std::uint64_t suspect_after_ticks;     // silence after which a peer is suspected
    std::uint64_t election_timeout_ticks;  // budget of one election attempt
};

struct Params {
    NodeId self;
    std::vector<NodeId> members;  // the whole shard, self included; at most kShardMembersMax
    config::ElectionAlgorithm algorithm;
    Timing timing;
    std::uint64_t seed;  // seeds the jitter of the retry backoff; nothing else is random
};

// ---- roles (scylladb fsm style: one variant, no pile of booleans) ----

struct Follower {};

// The algorithm's own phase: Bully waits for an OK from a higher id, Ring
// waits for its ELECTION to come back around.
struct Soliciting {};

// The pre-vote for `proposed` (docs/design.md section 5; Raft's PreVote): the
// node's epoch stays where it is, nothing is persisted, and a refusal
// changes nobody's epoch.
struct PreVoting {
    Epoch proposed;               // always the node's epoch + 1
    std::vector<NodeId> granted;  // members that would promise `proposed`, self first
    std::vector<NodeId> refused;  // members that would not (they hear a live leader)
};

// The promise round for `epoch` (docs/design.md section 5), after a majority
// granted the pre-vote.
struct Promising {
    Epoch epoch;                   // the epoch stood for; also the node's current epoch
    std::vector<NodeId> granted;   // members that promised, self first
    std::vector<NodeId> refused;   // members that refused
    LogPosition best_log;          // the most up-to-date log among `granted`
    NodeId best_log_holder;        // who holds best_log
};

struct Candidate {
    std::variant<Soliciting, PreVoting, Promising> stage;
    std::uint64_t ticks_left;  // when it reaches 0 the stage times out
};

struct Leader {
    Epoch epoch;                 // the epoch led; always the node's current epoch
    std::vector<NodeId> quorum;  // the majority whose promises made this leadership
};

using Role = std::variant<Follower, Candidate, Leader>;

class Core {
public:
    // `restored` is what the node last persisted (Durable{} on first start);
    // its promised epoch may not exceed its epoch. A one-node shard leads at
    // once: drain take_output() right after.
    Core(Params params, Durable restored);

    // A message from peer `from`. Any message proves the peer alive.
    void step(NodeId from, const ElectionMessage& msg);
    // The host saw `peer`'s connection drop and a reconnect refused: a
    // crashed process on a live host, suspected at once rather than after
    // suspect_after (docs/design.md section 5, "Fast crash detection"). Only
    // speed rests on it; hearing the peer again clears the suspicion.
    void peer_refused(NodeId peer);
    // One tick of logical time.
    void tick();
    // The coming tick (1: the next one) that may produce output; the ticks
    // before it only count down (docs/design.md section 6.10). A lower
    // bound: never later than the first tick that acts, given no input.
    std::uint64_t ticks_until_due() const;
    // The log layer saw `theirs` on a message from `from`: the same epoch
    // gate as every election message (a higher epoch is adopted and ends any
    // leadership of ours).
    void observe(NodeId from, Epoch theirs);
    // The leader gives up its epoch (the log layer could not adopt the best
    // log of its quorum); it becomes a follower and may stand again later.
    void resign(const char* reason);
    // Everything produced since the last call, in handling order.
    Output take_output();

    // Set by the log layer; carried in promises so the winner adopts the best log.
    void set_log_position(LogPosition pos) { log_ = pos; }
    // Carried in heartbeats.
    void set_commit_index(LogIndex index) { commit_index_ = index; }

    const Role& role() const { return role_; }
    RoleKind role_kind() const;
    Epoch epoch() const { return durable_.epoch; }
    // Who leads epoch() as far as this node knows; kNoNode if nobody.
    NodeId leader() const { return leader_; }
    std::vector<PeerHealth> peers() const { return fd_.health(); }
    bool suspects(NodeId peer) const { return fd_.suspected(peer); }
    const Durable& durable() const { return durable_; }
    NodeId self() const { return params_.self; }
    const std::vector<NodeId>& members() const { return params_.members; }

private:
    // Message handlers; each one passes the epoch gate first.
    void on_message(NodeId from, const Heartbeat& m);
    void on_message(NodeId from, const BullyElection& m);
    void on_message(NodeId from, const BullyOk& m);
    void on_message(NodeId from, const BullyCoordinator& m);
    void on_message(NodeId from, const RingElection& m);
    void on_message(NodeId from, const RingCoordinator& m);
    void on_message(NodeId from, const RingAck& m);
    void on_message(NodeId from, const PreVoteRequest& m);
    void on_message(NodeId from, const PreVoteReply& m);
    void on_message(NodeId from, const PromiseRequest& m);
    void on_message(NodeId from, const PromiseReply& m);

    bool admit(NodeId from, Epoch theirs);
    void adopt_epoch(Epoch e, NodeId from);
    void recognise_leader(NodeId leader);
    void become_follower(const char* reason);
    void end_leadership();
    void on_detector(const DetectorEvent& ev, const char* reason = "");
    void grant_refused_prevotes();
    bool bully_higher_alive() const;
    bool bully_yield_to(NodeId from);

    void tick_timers();
    void tick_leader();
    void tick_candidate(Candidate& c);
    void start_election();
    void fail_attempt(const char* reason);
    std::uint64_t backoff_ticks();

    void stand();
    void count_prevote(PreVoting& v, NodeId from);
    void promise_round();
    void grant(NodeId candidate, Epoch e);
    void refuse(NodeId candidate, const char* reason);
    void count_grant(Promising& p, NodeId from, LogPosition log);
    void become_leader();

    void start_bully();
    void start_ring();
    void ring_election_returned(const RingElection& m);
    bool ring_valid(const RingElection& m) const;
    NodeId ring_next() const;
    void ring_pass(ElectionMessage msg, RingAck receipt, std::size_t tries = 0);
    void tick_ring();
    void ring_reset();
    void ring_abort();

    bool may_stand() const;
    bool hears_live_leader(NodeId except) const;
    bool has_live_majority() const;
    bool is_member(NodeId id) const;
    bool runs(config::ElectionAlgorithm a, NodeId from);
    PreVoting* pre_voting();
    Promising* promising();
    bool soliciting() const;

    Heartbeat heartbeat() const { return Heartbeat{epoch(), leader_, commit_index_}; }
    void send(NodeId to, ElectionMessage msg);
    void broadcast(const ElectionMessage& msg);
    void emit(EventKind kind, NodeId peer = kNoNode, NodeId leader = kNoNode, const char* reason = "");
    void bad_message(NodeId from, const char* reason) { emit(EventKind::bad_message, from, kNoNode, reason); }
    void finish();
    void check_invariants();

    std::uint64_t answer_wait_ticks() const;
    std::uint64_t prevote_wait_ticks() const;
    std::uint64_t promise_wait_ticks() const;

    Params params_;
    FailureDetector fd_;
    Durable durable_;
    bool durable_dirty_ = false;
    Role role_;
    NodeId leader_ = kNoNode;
    Epoch ended_;  // highest epoch whose leadership this node saw end; its leader is never recognised again
    LogPosition log_;
    LogIndex commit_index_;
    std::mt19937_64 rng_;

    std::uint64_t listen_ticks_left_;         // stickiness after (re)start
    std::uint64_t retry_ticks_left_ = 0;      // no new attempt of our own before this reaches 0
    std::uint32_t failed_attempts_ = 0;       // consecutive attempts without a leader (backoff)
    std::uint64_t heartbeat_ticks_left_ = 0;  // 0: heartbeat on the next tick
    NodeId ring_best_ = kNoNode;              // highest ring initiator seen in the current round
    NodeId ok_from_ = kNoNode;                // Bully: the higher id whose OK this follower waits on
    bool withheld_vote_ = false;              // Ring: passed an election on unvoted for the live leader's sake
    std::uint64_t ring_retrip_in_ = 0;        // Ring initiator: ticks until its election goes around again; 0: not due
    std::uint32_t ring_retrips_ = 0;          // trips of the current attempt after the first
    // Pre-votes refused because a live leader was heard, as (candidate,
    // proposed); granted late should that leader become suspected while the
    // proposal is still the next epoch. At most one per member.
    std::vector<std::pair<NodeId, Epoch>> refused_prevotes_;
    std::uint64_t ring_round_ticks_left_ = 0; // the round, and its suppression, end at 0

    // A ring message passed on and not yet acknowledged by its successor.
    struct RingHandoff {
        NodeId to;
        RingAck receipt;  // the acknowledgement that settles it
        ElectionMessage msg;
        std::uint64_t ticks_left;
        std::size_t tries;  // successors tried so far; at most members.size() - 1
    };
    std::vector<RingHandoff> ring_handoffs_;  // at most members.size()
    // Successors that did not acknowledge, skipped for one suspect timeout;
    // each member at most once.
    std::vector<std::pair<NodeId, std::uint64_t>> ring_unreachable_;

    Output out_;
    LeaderChange view_;   // last view reported in Output::leader_change
    Epoch checked_epoch_; // epoch at the last invariant check
};

}  // namespace rl::election
