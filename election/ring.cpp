// Ring (docs/design.md section 5, "Who"): members form a ring ordered by id. Phase 1: an
// ELECTION travels once around collecting the ids of the members that want
// a new leader; the initiator sees its own id come back and needs more than
// N/2 ids. Phase 2: it sends COORDINATOR with the highest collected id
// around; that winner runs the promise round (a winning initiator stands at
// once). Dead successors are skipped, chains of them too: those the failure
// detector suspects, and those that do not acknowledge a handoff within a
// heartbeat period (a link dead in one direction). Concurrent elections are
// suppressed: a node forwards only the election with the highest initiator
// it has seen in the current round.
#include "election/core.hpp"

#include "election/quorum.hpp"

#include <algorithm>

namespace rl::election {

void Core::start_ring() {
    if (ring_next() == kNoNode) return fail_attempt("no_live_successor");
    ring_best_ = params_.self;
    ring_round_ticks_left_ = params_.timing.election_timeout_ticks;
    ring_retrip_in_ = 0;
    ring_retrips_ = 0;
    role_ = Candidate{Soliciting{}, params_.timing.election_timeout_ticks};
    ring_pass(RingElection{epoch(), params_.self, 1, {params_.self}}, RingAck{epoch(), params_.self, 1, false});
}

void Core::on_message(NodeId from, const RingElection& m) {
    if (!runs(config::ElectionAlgorithm::ring, from)) return;
    if (!ring_valid(m)) return bad_message(from, "bad_ring_election");
    if (!admit(from, m.epoch)) return;
    send(from, RingAck{epoch(), m.initiator, m.hops, false});
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
    if (std::holds_alternative<Follower>(role_) && !hears_live_leader(kNoNode)) {
        fwd.ids.push_back(params_.self);
    } else if (hears_live_leader(kNoNode) && !std::holds_alternative<Leader>(role_)) {
        // Should that leader be suspected soon, this election lacked our
        // vote: we run our own then, without waiting (see on_detector).
        withheld_vote_ = true;
    }
    const RingAck receipt{epoch(), fwd.initiator, fwd.hops, false};
    ring_pass(std::move(fwd), receipt);
}

void Core::ring_election_returned(const RingElection& m) {
    if (!soliciting()) return;  // our attempt already ended; a late copy
    // Quorum: more than N/2 ids collected, or the winner could not win. The
    // round is over either way: a lower initiator's election that follows
    // (a member that withheld its vote then) is no longer suppressed here.
    if (!is_majority(m.ids.size(), params_.members.size())) {
        // Our detector counts a live majority, so live members passed it on
        // unvoted: they still hear the leader we suspect, their detectors a
        // few ticks behind ours. Go around again within this attempt, after
        // 1, 2, 4, ... ticks, rather than losing a whole backoff (docs/design.md
        // section 5, "Fast crash detection"); the attempt's timeout bounds it.
        if (has_live_majority()) {
            ring_retrip_in_ = std::uint64_t{1} << std::min<std::uint32_t>(ring_retrips_++, 16);
            return;
        }
        ring_reset();
        return fail_attempt("ring_no_quorum");
    }
    const NodeId winner = *std::max_element(m.ids.begin(), m.ids.end());
    emit(EventKind::winner_chosen, kNoNode, winner);
    role_ = Follower{};
    ring_reset();
    // A winning initiator announces itself with the PromiseRequests, which
    // carry the new epoch; a COORDINATOR of the old one would only be fenced.
    if (winner == params_.self) return stand();
    ring_pass(RingCoordinator{epoch(), params_.self, winner, 1}, RingAck{epoch(), params_.self, 1, true});
    // Give the winner its promise round before trying again.
    retry_ticks_left_ = params_.timing.election_timeout_ticks;
}

void Core::on_message(NodeId from, const RingCoordinator& m) {
    if (!runs(config::ElectionAlgorithm::ring, from)) return;
    if (!is_member(m.initiator) || !is_member(m.winner) || m.hops > params_.members.size()) {
        return bad_message(from, "bad_ring_coordinator");
    }
    if (!admit(from, m.epoch)) return;
    send(from, RingAck{epoch(), m.initiator, m.hops, true});
    // Back home, or around the ring without meeting a dead initiator.
    if (m.initiator == params_.self || m.hops >= params_.members.size()) return;
    ring_reset();
    if (m.winner == params_.self) {
        // The winner's PromiseRequests tell the rest of the ring, in the new epoch.
        if (std::holds_alternative<Follower>(role_) && !hears_live_leader(kNoNode)) stand();
        return;
    }
    ring_pass(RingCoordinator{epoch(), m.initiator, m.winner, m.hops + 1},
              RingAck{epoch(), m.initiator, m.hops + 1, true});
    // The winner is running its promise round: give it the time.
    retry_ticks_left_ = std::max(retry_ticks_left_, params_.timing.election_timeout_ticks);
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

void Core::on_message(NodeId from, const RingAck& m) {
    if (!runs(config::ElectionAlgorithm::ring, from)) return;
    if (!admit(from, m.epoch)) return;
    std::erase_if(ring_handoffs_, [&](const RingHandoff& h) {
        return h.to == from && h.receipt.initiator == m.initiator && h.receipt.hops == m.hops &&
               h.receipt.coordinator == m.coordinator;
    });
    std::erase_if(ring_unreachable_, [&](const auto& u) { return u.first == from; });
}

// The next member after self in id order that is neither suspected by the
// failure detector nor unreachable, skipping chains of dead ones; kNoNode
// when all others are.
NodeId Core::ring_next() const {
    const auto& ms = params_.members;
    const auto self_at = static_cast<std::size_t>(std::lower_bound(ms.begin(), ms.end(), params_.self) - ms.begin());
    for (std::size_t k = 1; k < ms.size(); ++k) {
        const NodeId id = ms[(self_at + k) % ms.size()];
        const bool unreachable = std::any_of(ring_unreachable_.begin(), ring_unreachable_.end(),
                                             [&](const auto& u) { return u.first == id; });
        if (!fd_.suspected(id) && !unreachable) return id;
    }
    return kNoNode;
}

// Sends a ring message to the next live successor and keeps it until that
// successor acknowledges. Bounded: the oldest unacknowledged one is given up.
void Core::ring_pass(ElectionMessage msg, RingAck receipt, std::size_t tries) {
    const NodeId next = ring_next();
    if (next == kNoNode || tries >= params_.members.size()) return;
    if (ring_handoffs_.size() == params_.members.size()) ring_handoffs_.erase(ring_handoffs_.begin());
    ring_handoffs_.push_back(RingHandoff{next, receipt, msg, params_.timing.heartbeat_ticks, tries + 1});
    send(next, std::move(msg));
}

// A successor silent for a heartbeat period after a handoff is treated as
// dead (docs/design.md section 5: skip dead successors) and the message goes to the one
// after it. This catches links that fail one way, which the failure
// detector cannot see from this side.
void Core::tick_ring() {
    if (ring_round_ticks_left_ > 0 && --ring_round_ticks_left_ == 0) ring_best_ = kNoNode;
    std::erase_if(ring_unreachable_, [](auto& u) { return --u.second == 0; });
    std::vector<RingHandoff> expired;
    for (auto it = ring_handoffs_.begin(); it != ring_handoffs_.end();) {
        if (--it->ticks_left > 0) {
            ++it;
            continue;
        }
        expired.push_back(std::move(*it));
        it = ring_handoffs_.erase(it);
    }
    for (auto& h : expired) {
        std::erase_if(ring_unreachable_, [&](const auto& u) { return u.first == h.to; });
        ring_unreachable_.emplace_back(h.to, params_.timing.suspect_after_ticks);
        ring_pass(std::move(h.msg), h.receipt, h.tries);
    }
}

// The round is over: no suppression any more.
void Core::ring_reset() {
    ring_best_ = kNoNode;
    ring_round_ticks_left_ = 0;
}

// The election is over (a leader is known, or this node moved to a newer
// epoch): nothing of it needs passing on any more. Every change of epoch
// comes here, so a pending handoff always carries the current epoch.
void Core::ring_abort() {
    ring_reset();
    ring_handoffs_.clear();
    ring_unreachable_.clear();
}

}  // namespace rl::election
