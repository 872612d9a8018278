// The parts of the core common to both algorithms: the epoch gate, the
// pre-vote and the promise round, check-quorum, stickiness, timers and the
// invariants.
// Bully and Ring live in bully.cpp and ring.cpp.
#include "election/core.hpp"

#include "config/check.hpp"
#include "config/random.hpp"
#include "election/quorum.hpp"

#include <algorithm>
#include <utility>

namespace rl::election {
namespace {

bool contains(const std::vector<NodeId>& ids, NodeId id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// Validates the parameters once (programmer errors: the config layer has
// already refused bad files) and sorts the members into ring order.
Params checked(Params p) {
    require(p.timing.heartbeat_ticks > 0 && p.timing.suspect_after_ticks > 0 &&
                p.timing.election_timeout_ticks > 0,
            "timing: every timeout is at least one tick");
    require(!p.members.empty() && p.members.size() <= kShardMembersMax, "members: 1..kShardMembersMax");
    std::sort(p.members.begin(), p.members.end());
    require(std::adjacent_find(p.members.begin(), p.members.end()) == p.members.end(), "members: distinct");
    require(!contains(p.members, kNoNode), "members: no kNoNode");
    require(contains(p.members, p.self), "members: self included");
    return p;
}

std::vector<NodeId> others(const Params& p) {
    std::vector<NodeId> out;
    for (NodeId id : p.members) {
        if (id != p.self) out.push_back(id);
    }
    return out;
}

}  // namespace

Core::Core(Params params, Durable restored)
    : params_(checked(std::move(params))),
      fd_(others(params_), params_.timing.suspect_after_ticks),
      durable_(restored),
      rng_(params_.seed),
      // Stickiness (docs/design.md section 5): a node that (re)starts listens one full
      // suspect timeout before it may stand. By then it has heard any live
      // leader, and its detector has judged every peer.
      listen_ticks_left_(params_.timing.suspect_after_ticks),
      view_{restored.epoch, kNoNode, RoleKind::follower},
      checked_epoch_(restored.epoch) {
    require(restored.promised <= restored.epoch, "restored state: promised <= epoch");
    // A one-node shard is its own majority: it leads at once.
    if (params_.members.size() == 1) stand();
    finish();
}

RoleKind Core::role_kind() const {
    if (std::holds_alternative<Leader>(role_)) return RoleKind::leader;
    if (std::holds_alternative<Candidate>(role_)) return RoleKind::candidate;
    return RoleKind::follower;
}

Output Core::take_output() { return std::exchange(out_, Output{}); }

void Core::step(NodeId from, const ElectionMessage& msg) {
    const Epoch theirs = std::visit([](const auto& m) { return m.epoch; }, msg);
    if (from == params_.self || !is_member(from)) {
        bad_message(from, "not_a_peer");
    } else if (theirs == kEpochMax) {
        bad_message(from, "epoch_out_of_range");
    } else {
        for (const auto& ev : fd_.heard(from)) on_detector(ev);
        std::visit([&](const auto& m) { on_message(from, m); }, msg);
    }
    finish();
}

void Core::peer_refused(NodeId peer) {
    if (peer != params_.self && is_member(peer)) {
        for (const auto& ev : fd_.refused(peer)) on_detector(ev, "refused");
        // React now rather than at the next tick: the tick would do the same.
        if (params_.algorithm == config::ElectionAlgorithm::bully && soliciting() && !bully_higher_alive()) {
            stand();
        } else if (std::holds_alternative<Follower>(role_) && retry_ticks_left_ == 0 && may_stand()) {
            start_election();
        }
    }
    finish();
}

void Core::tick() {
    for (const auto& ev : fd_.tick()) on_detector(ev);
    tick_timers();
    if (std::holds_alternative<Leader>(role_)) {
        tick_leader();
    } else if (auto* c = std::get_if<Candidate>(&role_)) {
        tick_candidate(*c);
    } else if (retry_ticks_left_ == 0 && may_stand()) {
        start_election();
    }
    // Every node heartbeats, not only the leader, so that failure detection
    // is symmetric and check-quorum can count followers. A node in its
    // promise round skips them: its PromiseRequests prove it alive, and a
    // leaderless heartbeat of the epoch it is about to lead, arriving late,
    // would read as "no longer leading". So every leaderless heartbeat of an
    // epoch from that epoch's leader is sent after its leadership ended.
    if (heartbeat_ticks_left_ == 0) {
        if (promising() == nullptr) broadcast(heartbeat());
        heartbeat_ticks_left_ = params_.timing.heartbeat_ticks;
    }
    --heartbeat_ticks_left_;
    finish();
}

// What tick() does, read backwards: a candidate's stage and a ring handoff
// count down to a send (ticked every time, they are short-lived); the
// heartbeat goes out on the tick that finds heartbeat_ticks_left_ at 0; a
// suspicion can end a leadership (check-quorum) or let a follower stand;
// and a follower without a live leader stands once its listening and
// backoff periods are over.
std::uint64_t Core::ticks_until_due() const {
    if (std::holds_alternative<Candidate>(role_) || !ring_handoffs_.empty()) return 1;
    // A refused redial suspects at once, between ticks: a leader that lost
    // its majority so steps down on the next one.
    if (std::holds_alternative<Leader>(role_) && !has_live_majority()) return 1;
    std::uint64_t due = std::min(heartbeat_ticks_left_ + 1, fd_.ticks_until_suspect());
    if (std::holds_alternative<Follower>(role_) && !hears_live_leader(kNoNode)) {
        due = std::min(due, std::max<std::uint64_t>({1, listen_ticks_left_, retry_ticks_left_}));
    }
    return due;
}

// ---- the one gate ----

// Every message passes here first (docs/design.md section 9, habit 3, docs/design.md section 5 fencing):
// a lower epoch is rejected and its sender told ours; a higher one is
// adopted, which ends any leadership or candidacy in the older epoch. Only
// established epochs reach the gate: since no node raises its epoch before
// a majority granted its pre-vote, whatever epoch a message carries was
// agreed to; a pre-vote's proposal is a field of its own that never comes
// here. An attempt (pre-vote or promise request) from a higher epoch that
// arrives while a live leader is heard is refused before the gate.
bool Core::admit(NodeId from, Epoch theirs) {
    if (theirs < epoch()) {
        emit(EventKind::fenced, from);
        // In a promise round the PromiseRequest already told every member
        // our epoch; a heartbeat now would be a leaderless one (see tick()).
        if (promising() == nullptr) send(from, heartbeat());
        return false;
    }
    if (theirs > epoch()) adopt_epoch(theirs, from);
    return true;
}

void Core::adopt_epoch(Epoch e, NodeId from) {
    become_follower("higher_epoch");  // ends a leadership of the old epoch, not of `e`
    durable_.epoch = e;               // persisted, so the epoch never decreases across restarts
    durable_dirty_ = true;
    emit(EventKind::epoch_adopted, from);
    leader_ = kNoNode;  // nobody is known to lead the new epoch yet
    ring_abort();       // ring messages of the old epoch would only be fenced
}

void Core::recognise_leader(NodeId leader) {
    // A claim that arrives after this epoch's leadership ended is stale:
    // there is at most one leader per epoch, and it is gone.
    if (epoch() <= ended_) return;
    if (std::holds_alternative<Leader>(role_) || (leader_ != kNoNode && leader_ != leader)) {
        // Two leaders claimed for one epoch: a broken or malicious peer.
        return bad_message(leader, "second_leader_claim");
    }
    become_follower("leader_known");
    leader_ = leader;
    failed_attempts_ = 0;
    retry_ticks_left_ = 0;
    ok_from_ = kNoNode;
    withheld_vote_ = false;
    refused_prevotes_.clear();
    // Stickiness has done its work: the restarted node heard the live leader,
    // and hearing it keeps the node from standing while it lives. Should it
    // crash soon after, this node may stand at once rather than stay silent
    // to the others' ELECTION for the rest of its listening period.
    listen_ticks_left_ = 0;
    ring_abort();
}

void Core::become_follower(const char* reason) {
    if (std::holds_alternative<Follower>(role_)) return;
    emit(EventKind::stepped_down, kNoNode, kNoNode, reason);
    if (leader_ == params_.self) end_leadership();
    role_ = Follower{};
}

void Core::end_leadership() {
    leader_ = kNoNode;
    ended_ = epoch();
}

void Core::on_detector(const DetectorEvent& ev, const char* reason) {
    if (ev.kind == DetectorEvent::Kind::recover) return emit(EventKind::peer_recovered, ev.peer);
    emit(EventKind::peer_suspected, ev.peer, kNoNode, reason);
    // A suspected leader is no longer "a live leader" (docs/design.md section 5): forget
    // it, so this node may promise and stand, and grant now what it refused
    // for that leader's sake a moment ago.
    if (ev.peer == leader_) {
        leader_ = kNoNode;
        grant_refused_prevotes();
        // Ring: an election we passed on unvoted for its sake may have failed
        // for want of our id; run our own now instead of waiting it out.
        if (std::exchange(withheld_vote_, false) && std::holds_alternative<Follower>(role_)) retry_ticks_left_ = 0;
    }
    // Bully: the higher id whose OK we wait on is gone; its COORDINATOR will
    // not come, so try again now rather than after an election timeout.
    if (ev.peer == ok_from_) {
        ok_from_ = kNoNode;
        if (std::holds_alternative<Follower>(role_)) retry_ticks_left_ = 0;
    }
    // Ring: a hand-off waiting on the suspected successor goes on to the
    // next one now, not after its acknowledgement timeout.
    std::vector<RingHandoff> stuck;
    std::erase_if(ring_handoffs_, [&](RingHandoff& h) {
        if (h.to != ev.peer) return false;
        stuck.push_back(std::move(h));
        return true;
    });
    for (auto& h : stuck) ring_pass(std::move(h.msg), h.receipt, h.tries);
}

// The pre-votes this node refused because it heard the leader it now
// suspects: their candidates would be granted if they asked again, so they
// are told now (a grant binds nothing; docs/design.md section 5, "Fast crash
// detection"). Survivors that suspect the dead leader a few ticks apart do
// not cost the first candidate its round.
void Core::grant_refused_prevotes() {
    for (const auto& [candidate, proposed] : std::exchange(refused_prevotes_, {})) {
        if (proposed != epoch().next() || hears_live_leader(candidate)) continue;
        emit(EventKind::prevote_granted, candidate, kNoNode, "leader_suspected");
        send(candidate, PreVoteReply{epoch(), proposed, true, kNoNode});
    }
}

void Core::on_message(NodeId from, const Heartbeat& m) {
    const bool newer = m.epoch > epoch();
    if (!admit(from, m.epoch)) return;
    if (m.leader == from) {
        recognise_leader(from);
        // A follower answers its leader's heartbeat with its own at once, in
        // the turn that answers the log's heartbeat too: while the leader
        // lives, the follower's timer need not wake it (docs/design.md
        // section 6.10). A tick of slack keeps a leader heartbeat that
        // comes a little late from doubling it.
        if (leader_ == from && std::holds_alternative<Follower>(role_)) {
            broadcast(heartbeat());
            heartbeat_ticks_left_ = params_.timing.heartbeat_ticks + 1;
        }
        return;
    }
    // The leader itself says it no longer leads this epoch (it stepped down
    // on check-quorum or restarted): it is not a live leader any more.
    if (from == leader_) return end_leadership();
    // A member tells of a newer epoch that already has a leader (we just
    // rejoined after a partition): give that leader one suspect timeout to
    // reach us before standing against it (stickiness, docs/design.md section 5).
    if (newer && m.leader != kNoNode && m.leader != params_.self) {
        retry_ticks_left_ = std::max(retry_ticks_left_, params_.timing.suspect_after_ticks);
    }
}

// ---- timers ----

void Core::tick_timers() {
    if (listen_ticks_left_ > 0) --listen_ticks_left_;
    if (retry_ticks_left_ > 0) --retry_ticks_left_;
    tick_ring();
}

// Check-quorum (docs/design.md section 5): a leader that does not hear a majority within
// suspect_after steps down, so a minority side has no leader.
void Core::tick_leader() {
    if (has_live_majority()) return;
    become_follower("check_quorum");
    // Tell the followers at once rather than letting them time out.
    broadcast(heartbeat());
}

void Core::tick_candidate(Candidate& c) {
    // Bully: every higher id we asked is suspected by now; none will answer.
    if (params_.algorithm == config::ElectionAlgorithm::bully && std::holds_alternative<Soliciting>(c.stage) &&
        !bully_higher_alive()) {
        return stand();
    }
    if (params_.algorithm == config::ElectionAlgorithm::ring && std::holds_alternative<Soliciting>(c.stage) &&
        ring_retrip_in_ > 0 && --ring_retrip_in_ == 0) {
        ring_pass(RingElection{epoch(), params_.self, 1, {params_.self}}, RingAck{epoch(), params_.self, 1, false});
    }
    if (--c.ticks_left > 0) return;
    if (std::holds_alternative<PreVoting>(c.stage)) return fail_attempt("prevote_timeout");
    if (std::holds_alternative<Promising>(c.stage)) return fail_attempt("promise_timeout");
    // Bully: no higher id answered in time, so this node is the highest
    // live id and stands. Ring: the ELECTION was lost on the way.
    if (params_.algorithm == config::ElectionAlgorithm::bully) return stand();
    fail_attempt("ring_timeout");
}

void Core::start_election() {
    emit(EventKind::election_started);
    ok_from_ = kNoNode;
    if (params_.algorithm == config::ElectionAlgorithm::bully) return start_bully();
    start_ring();
}

void Core::fail_attempt(const char* reason) {
    emit(EventKind::election_failed, kNoNode, kNoNode, reason);
    role_ = Follower{};
    ++failed_attempts_;
    retry_ticks_left_ = backoff_ticks();
}

// Exponential backoff with seeded jitter between attempts, so that nodes
// that collided pick different moments next time: a quarter of the election
// timeout doubled per consecutive failure, capped at the timeout, plus up to
// another quarter at random.
std::uint64_t Core::backoff_ticks() {
    const std::uint64_t timeout = params_.timing.election_timeout_ticks;
    const std::uint64_t base = std::max<std::uint64_t>(1, timeout / 4);
    const std::uint32_t doublings = std::min<std::uint32_t>(failed_attempts_ - 1, 3);
    const std::uint64_t span = std::min(timeout, base << doublings);
    return span + uniform(rng_, 0, base);
}

// A higher id's OK must come back within a fifth of the election timeout;
// a quarter is for the pre-vote, half for the promise round.
std::uint64_t Core::answer_wait_ticks() const {
    return std::max<std::uint64_t>(1, params_.timing.election_timeout_ticks / 5);
}

std::uint64_t Core::prevote_wait_ticks() const {
    return std::max<std::uint64_t>(1, params_.timing.election_timeout_ticks / 4);
}

std::uint64_t Core::promise_wait_ticks() const {
    return std::max<std::uint64_t>(1, params_.timing.election_timeout_ticks / 2);
}

// ---- the pre-vote (docs/design.md section 5, "Safety"; Raft's PreVote) ----

// The winner of either algorithm only proposes the next epoch at first
// (Ongaro's dissertation section 9.6, etcd raft's MsgPreVote). Its epoch, and
// everyone else's, stays where it is until a majority says it would
// promise: a node that merely stopped hearing a live leader (a restart, a
// link still in reconnect backoff) is refused by the majority that hears
// it, and the attempt leaves no higher epoch behind to depose that leader.
void Core::stand() {
    const Epoch proposed = epoch().next();
    role_ = Candidate{PreVoting{proposed, {}, {}}, prevote_wait_ticks()};
    emit(EventKind::prevote_round);
    broadcast(PreVoteRequest{epoch(), proposed});
    count_prevote(*pre_voting(), params_.self);
}

void Core::on_message(NodeId from, const PreVoteRequest& m) {
    if (m.proposed != m.epoch.next()) return bad_message(from, "bad_prevote");
    // Hearing a live leader, refuse and adopt nothing, not even the
    // sender's epoch when it is higher: an attempt never deposes a leader
    // this node hears (etcd raft ignores votes inside a leader's lease).
    const NodeId live = hears_live_leader(from) ? leader_ : kNoNode;
    if (live != kNoNode && m.epoch >= epoch()) {
        emit(EventKind::prevote_refused, from, live, "live_leader");
        std::erase_if(refused_prevotes_, [&](const auto& r) { return r.first == from; });
        if (live != params_.self) refused_prevotes_.emplace_back(from, m.proposed);
        return send(from, PreVoteReply{epoch(), m.proposed, false, live});
    }
    if (!admit(from, m.epoch)) return;
    if (!bully_yield_to(from)) {
        emit(EventKind::prevote_refused, from, kNoNode, "higher_id_standing");
        return send(from, PreVoteReply{epoch(), m.proposed, false, kNoNode});
    }
    // Binds nothing and is not persisted: the promise round decides.
    emit(EventKind::prevote_granted, from);
    send(from, PreVoteReply{epoch(), m.proposed, true, kNoNode});
}

void Core::on_message(NodeId from, const PreVoteReply& m) {
    if (!admit(from, m.epoch)) return;
    PreVoting* v = pre_voting();
    if (v == nullptr || v->proposed != m.proposed) return;  // a late answer to an attempt that is over
    if (m.granted) return count_prevote(*v, from);
    if (contains(v->refused, from)) return;
    v->refused.push_back(from);
    emit(EventKind::prevote_refused, from, m.leader, "refused");
    if (majority_lost(v->refused.size(), params_.members.size())) fail_attempt("prevote_refused");
}

void Core::count_prevote(PreVoting& v, NodeId from) {
    if (contains(v.granted, from)) return;  // a duplicate
    v.granted.push_back(from);
    if (is_majority(v.granted.size(), params_.members.size())) promise_round();
}

// ---- the promise round (docs/design.md section 5, "Safety") ----

// A majority granted the pre-vote: the winner now stands for the epoch it
// proposed, above any it has seen or promised. Its own promise is part of
// the same persist, which the shell writes before any PromiseRequest leaves.
void Core::promise_round() {
    const Epoch e = epoch().next();
    require(pre_voting() != nullptr && pre_voting()->proposed == e, "the promise round follows its pre-vote");
    durable_ = Durable{e, e};
    durable_dirty_ = true;
    leader_ = kNoNode;
    ring_abort();
    role_ = Candidate{Promising{e, {params_.self}, {}, log_, params_.self}, promise_wait_ticks()};
    emit(EventKind::promise_round);
    broadcast(PromiseRequest{e});
    if (is_majority(1, params_.members.size())) become_leader();
}

void Core::on_message(NodeId from, const PromiseRequest& m) {
    // While this node hears a live leader it neither promises nor lets a
    // candidate's higher epoch depose that leader (docs/design.md section 5; Raft 9.6).
    if (m.epoch > epoch() && hears_live_leader(from)) return refuse(from, "live_leader");
    if (!admit(from, m.epoch)) return;
    // Only an epoch higher than any promised: one promise per epoch, so two
    // candidates for one epoch can never both hold a majority.
    if (durable_.promised >= m.epoch) return refuse(from, "not_higher");
    if (hears_live_leader(from)) return refuse(from, "live_leader");
    grant(from, m.epoch);
}

void Core::grant(NodeId candidate, Epoch e) {
    ok_from_ = kNoNode;     // the retry below is for this candidate now
    durable_.promised = e;  // in Output::persist, on disk before the reply leaves
    durable_dirty_ = true;
    emit(EventKind::promised, candidate);
    send(candidate, PromiseReply{e, true, kNoNode, log_});
    // Give the candidate its round before standing ourselves.
    retry_ticks_left_ = std::max(retry_ticks_left_, params_.timing.election_timeout_ticks);
}

void Core::refuse(NodeId candidate, const char* reason) {
    const NodeId live = hears_live_leader(candidate) ? leader_ : kNoNode;
    emit(EventKind::promise_refused, candidate, live, reason);
    send(candidate, PromiseReply{epoch(), false, live, log_});
}

void Core::on_message(NodeId from, const PromiseReply& m) {
    if (!admit(from, m.epoch)) return;
    Promising* p = promising();
    if (p == nullptr || p->epoch != m.epoch) return;  // a late answer to an attempt that is over
    if (m.granted) return count_grant(*p, from, m.log);
    if (contains(p->refused, from)) return;
    p->refused.push_back(from);
    emit(EventKind::promise_refused, from, m.leader, "refused");
    if (majority_lost(p->refused.size(), params_.members.size())) fail_attempt("refused");
}

void Core::count_grant(Promising& p, NodeId from, LogPosition log) {
    if (contains(p.granted, from)) return;  // a duplicate
    p.granted.push_back(from);
    if (log > p.best_log) {
        p.best_log = log;
        p.best_log_holder = from;
    }
    if (is_majority(p.granted.size(), params_.members.size())) become_leader();
}

void Core::become_leader() {
    Promising p = *promising();
    std::sort(p.granted.begin(), p.granted.end());
    role_ = Leader{p.epoch, p.granted};
    leader_ = params_.self;
    failed_attempts_ = 0;
    retry_ticks_left_ = 0;
    emit(EventKind::became_leader);
    out_.elected = Elected{p.epoch, p.best_log, p.best_log_holder, std::move(p.granted)};
    // Announce at once: Bully's COORDINATOR; Ring announced its winner
    // before the round, so a heartbeat naming the leader suffices.
    if (params_.algorithm == config::ElectionAlgorithm::bully) {
        broadcast(BullyCoordinator{epoch(), params_.self});
    } else {
        broadcast(heartbeat());
    }
    heartbeat_ticks_left_ = params_.timing.heartbeat_ticks;
}

// ---- predicates ----

// May this node start an election now? Not alone, not while listening after
// a restart (stickiness), not while a live leader is heard, and not without
// a live majority: a minority could never win its pre-vote.
bool Core::may_stand() const {
    return params_.members.size() > 1 && listen_ticks_left_ == 0 && !hears_live_leader(kNoNode) &&
           has_live_majority();
}

// A live leader is this node leading, or a known leader of the current epoch
// that the failure detector does not suspect. `except` is a node asking for
// promises: asking proves it no longer leads.
bool Core::hears_live_leader(NodeId except) const {
    if (std::holds_alternative<Leader>(role_)) return true;
    return leader_ != kNoNode && leader_ != except && !fd_.suspected(leader_);
}

// Bully: is any higher id not suspected? Those are the ones that may answer.
bool Core::bully_higher_alive() const {
    return std::any_of(params_.members.begin(), params_.members.end(),
                       [&](NodeId id) { return id > params_.self && !fd_.suspected(id); });
}

// Bully, a pre-vote arriving while this node stands too (soliciting or in its
// own pre-vote): the higher id wins without a contest. From a higher id this
// node yields (and waits for it as for an OK) and the caller grants; from a
// lower one it returns false and the caller refuses, so the two never both
// reach the promise round for one epoch and lose it to each other.
bool Core::bully_yield_to(NodeId from) {
    if (params_.algorithm != config::ElectionAlgorithm::bully || (!soliciting() && pre_voting() == nullptr)) return true;
    if (from < params_.self) return false;
    become_follower("higher_id_standing");
    ok_from_ = from;
    retry_ticks_left_ = std::max(retry_ticks_left_, params_.timing.election_timeout_ticks);
    return true;
}

bool Core::has_live_majority() const { return is_majority(1 + fd_.live_peers(), params_.members.size()); }

bool Core::is_member(NodeId id) const {
    return std::binary_search(params_.members.begin(), params_.members.end(), id);
}

// Bully and Ring messages are only valid in a shard running that algorithm.
bool Core::runs(config::ElectionAlgorithm a, NodeId from) {
    if (params_.algorithm == a) return true;
    bad_message(from, "wrong_algorithm");
    return false;
}

PreVoting* Core::pre_voting() {
    auto* c = std::get_if<Candidate>(&role_);
    return c == nullptr ? nullptr : std::get_if<PreVoting>(&c->stage);
}

Promising* Core::promising() {
    auto* c = std::get_if<Candidate>(&role_);
    return c == nullptr ? nullptr : std::get_if<Promising>(&c->stage);
}

bool Core::soliciting() const {
    const auto* c = std::get_if<Candidate>(&role_);
    return c != nullptr && std::holds_alternative<Soliciting>(c->stage);
}

// ---- output ----

void Core::send(NodeId to, ElectionMessage msg) { out_.messages.push_back(Envelope{to, std::move(msg)}); }

void Core::broadcast(const ElectionMessage& msg) {
    for (NodeId id : params_.members) {
        if (id != params_.self) send(id, msg);
    }
}

void Core::emit(EventKind kind, NodeId peer, NodeId leader, const char* reason) {
    out_.events.push_back(Event{kind, epoch(), peer, leader, reason});
}

// Closes every step and tick: queue the persist, report a changed view,
// check the invariants.
void Core::finish() {
    if (durable_dirty_) {
        out_.persist = durable_;
        durable_dirty_ = false;
    }
    const LeaderChange now{epoch(), leader_, role_kind()};
    if (now != view_) {
        if (now.epoch != view_.epoch || now.leader != view_.leader) emit(EventKind::leader_changed, kNoNode, leader_);
        view_ = now;
        out_.leader_change = now;
    }
    check_invariants();
}

// Local invariants after every step and tick (docs/design.md section 9, habit 6).
void Core::check_invariants() {
    require(epoch() >= checked_epoch_, "epoch never decreases");
    checked_epoch_ = epoch();
    require(durable_.promised <= durable_.epoch, "promised never exceeds epoch");
    require((leader_ == params_.self) == std::holds_alternative<Leader>(role_), "self is leader iff leading");
    if (const auto* l = std::get_if<Leader>(&role_)) {
        require(l->epoch == epoch() && durable_.promised == epoch(), "leader only in its own promised epoch");
        require(is_majority(l->quorum.size(), params_.members.size()), "leader only with a majority of promises");
    }
    if (const PreVoting* v = pre_voting()) {
        require(v->proposed == epoch().next(), "a pre-vote proposes the next epoch and raises none");
        require(!v->granted.empty() && v->granted.front() == params_.self, "pre-voter granted itself first");
        require(!is_majority(v->granted.size(), params_.members.size()), "a majority starts the promise round");
    }
    if (const Promising* p = promising()) {
        require(p->epoch == epoch() && durable_.promised == epoch(), "candidate stands for its current epoch");
        require(!p->granted.empty() && p->granted.front() == params_.self, "candidate promised itself first");
        require(!is_majority(p->granted.size(), params_.members.size()), "a majority makes a leader at once");
    }
    require(leader_ == kNoNode || (is_member(leader_) && ended_ < epoch()), "leader is a member of a live epoch");
    require(std::all_of(ring_handoffs_.begin(), ring_handoffs_.end(),
                        [&](const RingHandoff& h) { return h.receipt.epoch == epoch(); }),
            "ring handoffs carry the current epoch");
}

}  // namespace rl::election
