// Ring (DESIGN.md 5, "Who"): members form a ring ordered by id. Phase 1: an
// ELECTION travels once around collecting the ids of the members that want
// a new leader; dead (suspected) successors are skipped, chains of them too.
// Phase 2: the initiator sends COORDINATOR with the highest collected id
// around; that winner runs the promise round. Concurrent elections are
// suppressed: a node forwards only the election with the highest initiator
// it has seen in the current round.
#include "election/core.hpp"

#include "election/quorum.hpp"

#include <algorithm>

namespace rl::election {

void Core::start_ring() {
    const NodeId next = ring_next();
    if (next == kNoNode) return fail_attempt("no_live_successor");
    ring_best_ = params_.self;
    ring_round_ticks_left_ = params_.timing.election_timeout_ticks;
    role_ = Candidate{Soliciting{}, params_.timing.election_timeout_ticks};
    send(next, RingElection{epoch(), params_.self, 1, {params_.self}});
}

void Core::on_message(NodeId from, const RingElection& m) {
    if (!runs(config::ElectionAlgorithm::ring, from)) return;
    if (!ring_valid(m)) return bad_message(from, "bad_ring_election");
    if (!admit(from, m.epoch)) return;
    if (m.initiator == params_.self) return ring_election_returned(m);
    const bool seen = std::find(m.ids.begin(), m.ids.end(), params_.self) != m.ids.end();
    // Around the ring without meeting its initiator: the initiator is dead.
    if (seen || m.hops >= params_.members.size()) return;
    // Suppression: only the highest initiator's election of a round survives.
    if (ring_best_ != kNoNode && m.initiator < ring_best_) return;
    ring_best_ = m.initiator;
    ring_round_ticks_left_ = params_.timing.election_timeout_ticks;
    if (soliciting()) become_follower("higher_initiator");
    // An election is under way: let it finish before trying our own.
    retry_ticks_left_ = std::max(retry_ticks_left_, params_.timing.election_timeout_ticks);
    RingElection fwd{epoch(), m.initiator, m.hops + 1, m.ids};
    // An id in the list is a vote for a new leader; a node that hears a live
    // leader (or is standing) passes the message on without voting, so a
    // node that merely lost touch with the leader cannot depose it.
    if (std::holds_alternative<Follower>(role_) && !hears_live_leader(kNoNode)) fwd.ids.push_back(params_.self);
    if (const NodeId next = ring_next(); next != kNoNode) send(next, std::move(fwd));
}

void Core::ring_election_returned(const RingElection& m) {
    if (!soliciting()) return;  // our attempt already ended; a late copy
    // Quorum: more than N/2 ids collected, or the winner could not win.
    if (!is_majority(m.ids.size(), params_.members.size())) return fail_attempt("ring_no_quorum");
    const NodeId winner = *std::max_element(m.ids.begin(), m.ids.end());
    emit(EventKind::winner_chosen, kNoNode, winner);
    role_ = Follower{};
    if (const NodeId next = ring_next(); next != kNoNode) {
        send(next, RingCoordinator{epoch(), params_.self, winner, 1});
    }
    ring_reset();
    if (winner == params_.self) return stand();
    // Give the winner its promise round before trying again.
    retry_ticks_left_ = params_.timing.election_timeout_ticks;
}

void Core::on_message(NodeId from, const RingCoordinator& m) {
    if (!runs(config::ElectionAlgorithm::ring, from)) return;
    if (!is_member(m.initiator) || !is_member(m.winner) || m.hops > params_.members.size()) {
        return bad_message(from, "bad_ring_coordinator");
    }
    if (!admit(from, m.epoch)) return;
    // Back home, or around the ring without meeting a dead initiator.
    if (m.initiator == params_.self || m.hops >= params_.members.size()) return;
    ring_reset();
    if (const NodeId next = ring_next(); next != kNoNode) {
        send(next, RingCoordinator{epoch(), m.initiator, m.winner, m.hops + 1});
    }
    if (m.winner != params_.self) {
        retry_ticks_left_ = std::max(retry_ticks_left_, params_.timing.election_timeout_ticks);
        return;
    }
    if (std::holds_alternative<Follower>(role_) && !hears_live_leader(kNoNode)) stand();
}

// Wire data is checked, never asserted: the list is bounded by the shard
// size, holds distinct members and starts with its initiator.
bool Core::ring_valid(const RingElection& m) const {
    const std::size_t n = params_.members.size();
    if (m.ids.empty() || m.ids.size() > n || m.hops > n || m.ids.front() != m.initiator) return false;
    for (std::size_t i = 0; i < m.ids.size(); ++i) {
        if (!is_member(m.ids[i])) return false;
        if (std::find(m.ids.begin(), m.ids.begin() + static_cast<std::ptrdiff_t>(i), m.ids[i]) !=
            m.ids.begin() + static_cast<std::ptrdiff_t>(i)) {
            return false;
        }
    }
    return true;
}

// The next member after self in id order that the failure detector does not
// suspect, skipping chains of dead ones; kNoNode when all others are.
NodeId Core::ring_next() const {
    const auto& ms = params_.members;
    const auto self_at = std::lower_bound(ms.begin(), ms.end(), params_.self) - ms.begin();
    for (std::size_t k = 1; k < ms.size(); ++k) {
        const NodeId id = ms[(static_cast<std::size_t>(self_at) + k) % ms.size()];
        if (!fd_.suspected(id)) return id;
    }
    return kNoNode;
}

void Core::ring_reset() {
    ring_best_ = kNoNode;
    ring_round_ticks_left_ = 0;
}

}  // namespace rl::election
