// Unit tests of one election core stepped by hand (docs/design.md section 9, habit 9): one
// behaviour per test, named for it. Small clusters are wired together with
// deliver_all(); everything else is hand-made messages and ticks.
#define BOOST_TEST_MODULE election_core
#include <boost/test/unit_test.hpp>

#include "election/core.hpp"

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <string>
#include <limits>
#include <utility>
#include <vector>

namespace rl::election {
namespace {

using config::ElectionAlgorithm;
constexpr Timing kTiming{5, 20, 30};  // heartbeat 50 ms, suspect 200 ms, election 300 ms at 10 ms ticks

NodeId n(std::uint64_t id) { return NodeId{id}; }
Epoch e(std::uint64_t v) { return Epoch{v}; }

Core make(std::uint64_t self, std::size_t size, ElectionAlgorithm a, Durable restored = {}, std::uint64_t seed = 7) {
    std::vector<NodeId> members;
    for (std::uint64_t id = 1; id <= size; ++id) members.push_back(n(id));
    return Core(Params{n(self), members, a, kTiming, seed}, restored);
}

void append(Output& into, Output&& more) {
    if (more.persist) into.persist = more.persist;
    for (auto& m : more.messages) into.messages.push_back(std::move(m));
    for (auto& ev : more.events) into.events.push_back(ev);
    if (more.leader_change) into.leader_change = more.leader_change;
    if (more.elected) into.elected = std::move(more.elected);
}

// Ticks `core` `ticks` times; before each tick every peer in `heard` sends
// it a heartbeat of its own epoch, so the detector keeps them alive.
Output tick_hearing(Core& core, std::initializer_list<std::uint64_t> heard, std::uint64_t ticks) {
    Output all = core.take_output();
    for (std::uint64_t t = 0; t < ticks; ++t) {
        for (std::uint64_t p : heard) core.step(n(p), Heartbeat{core.epoch(), kNoNode, LogIndex{0}});
        core.tick();
        append(all, core.take_output());
    }
    return all;
}

// The start-up listening period (stickiness) while hearing `heard`.
Output elapse_listen_period(Core& core, std::initializer_list<std::uint64_t> heard) {
    return tick_hearing(core, heard, kTiming.suspect_after_ticks);
}

Output elapse_election_timeout(Core& core, std::initializer_list<std::uint64_t> heard) {
    return tick_hearing(core, heard, kTiming.election_timeout_ticks);
}

Output step(Core& core, std::uint64_t from, const ElectionMessage& msg) {
    core.step(n(from), msg);
    return core.take_output();
}

// Each of `peers` grants the pre-vote `core` is running; once they make a
// majority, its promise round starts.
Output grant_prevote(Core& core, std::initializer_list<std::uint64_t> peers) {
    Output all = core.take_output();
    const Epoch current = core.epoch();
    for (std::uint64_t p : peers) append(all, step(core, p, PreVoteReply{current, current.next(), true, kNoNode}));
    return all;
}

// Stands after the listening period, hearing `heard`, and gets the pre-vote
// of `granting`: the node is in its promise round.
Output stand_with_prevote(Core& core, std::initializer_list<std::uint64_t> heard,
                          std::initializer_list<std::uint64_t> granting) {
    Output all = elapse_listen_period(core, heard);
    append(all, grant_prevote(core, granting));
    return all;
}

template <class M>
std::vector<std::pair<NodeId, M>> sent(const Output& out) {
    std::vector<std::pair<NodeId, M>> found;
    for (const auto& env : out.messages) {
        if (const auto* m = std::get_if<M>(&env.msg)) found.emplace_back(env.to, *m);
    }
    return found;
}

bool has_event(const Output& out, EventKind kind) {
    return std::any_of(out.events.begin(), out.events.end(), [&](const Event& ev) { return ev.kind == kind; });
}

bool suspects(const Core& c, std::uint64_t peer) {
    for (const auto& h : c.peers()) {
        if (h.id == n(peer)) return h.suspected;
    }
    return false;
}

// The host saw `peer`'s connection drop and its reconnect refused.
Output refuse(Core& core, std::uint64_t peer) {
    core.peer_refused(n(peer));
    return core.take_output();
}

// Routes every pending message among `cores` until none is left; messages
// to any other node are lost.
template <class... C>
void deliver_all(C&... cores) {
    std::vector<Core*> all{&cores...};
    for (int round = 0; round < 1000; ++round) {
        std::vector<std::pair<NodeId, Envelope>> flight;
        for (Core* c : all) {
            for (auto& env : c->take_output().messages) flight.emplace_back(c->self(), std::move(env));
        }
        if (flight.empty()) return;
        for (auto& [from, env] : flight) {
            for (Core* c : all) {
                if (c->self() == env.to) c->step(from, env.msg);
            }
        }
    }
    BOOST_FAIL("deliver_all: messages never stopped");
}

template <class... C>
void tick_all(std::uint64_t ticks, C&... cores) {
    for (std::uint64_t t = 0; t < ticks; ++t) {
        (cores.tick(), ...);
        deliver_all(cores...);
    }
}

// A few cores ticked together by hand, like tick_all, except that every
// message `lost(from, to)` names is dropped and every event is kept.
struct Wires {
    std::vector<Core*> cores;
    std::function<bool(NodeId, NodeId)> lost = [](NodeId, NodeId) { return false; };
    std::vector<std::pair<NodeId, Event>> events;  // (where, what), in order

    void tick(std::uint64_t ticks) {
        for (std::uint64_t t = 0; t < ticks; ++t) {
            for (Core* c : cores) c->tick();
            deliver();
        }
    }

    void deliver() {
        for (int round = 0; round < 1000; ++round) {
            std::vector<std::pair<NodeId, Envelope>> flight;
            for (Core* c : cores) {
                Output out = c->take_output();
                for (const Event& ev : out.events) events.emplace_back(c->self(), ev);
                for (auto& env : out.messages) flight.emplace_back(c->self(), std::move(env));
            }
            if (flight.empty()) return;
            for (auto& [from, env] : flight) {
                for (Core* c : cores) {
                    if (c->self() == env.to && !lost(from, env.to)) c->step(from, env.msg);
                }
            }
        }
        BOOST_FAIL("Wires::deliver: messages never stopped");
    }

    // Events of `kind` at node `at` (with `reason`, if given) since the start.
    std::size_t count(std::uint64_t at, EventKind kind, const std::string& reason = "") const {
        return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const auto& e) {
            return e.first == n(at) && e.second.kind == kind && (reason.empty() || reason == e.second.reason);
        }));
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(common)

BOOST_AUTO_TEST_CASE(one_node_cluster_leads_at_once) {
    Core c = make(1, 1, ElectionAlgorithm::bully);
    const Output out = c.take_output();
    BOOST_TEST(c.role_kind() == RoleKind::leader);
    BOOST_TEST(c.leader() == n(1));
    BOOST_TEST(c.epoch() == e(1));
    BOOST_TEST_REQUIRE(out.persist.has_value());
    BOOST_TEST((*out.persist == Durable{e(1), e(1)}));
    BOOST_TEST_REQUIRE(out.elected.has_value());
    BOOST_TEST(out.elected->epoch == e(1));
}

BOOST_AUTO_TEST_CASE(restarted_node_listens_one_suspect_timeout_before_standing) {
    Core c = make(3, 3, ElectionAlgorithm::bully);
    const Output listening = tick_hearing(c, {1, 2}, kTiming.suspect_after_ticks - 1);
    BOOST_TEST(sent<PreVoteRequest>(listening).empty());
    BOOST_TEST(c.role_kind() == RoleKind::follower);
    const Output after = tick_hearing(c, {1, 2}, 1);
    BOOST_TEST(sent<PreVoteRequest>(after).size() == 2u);
}

BOOST_AUTO_TEST_CASE(candidate_output_persists_its_own_promise_before_requesting) {
    Core c = make(3, 3, ElectionAlgorithm::bully, Durable{e(4), e(4)});
    const Output out = stand_with_prevote(c, {1, 2}, {1});
    BOOST_TEST_REQUIRE(out.persist.has_value());
    BOOST_TEST((*out.persist == Durable{e(5), e(5)}));
    for (const auto& [to, req] : sent<PromiseRequest>(out)) BOOST_TEST(req.epoch == e(5));
}

BOOST_AUTO_TEST_CASE(grant_is_in_the_same_output_as_the_persist_of_the_promise) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    const Output out = step(c, 3, PromiseRequest{e(1)});
    BOOST_TEST_REQUIRE(out.persist.has_value());
    BOOST_TEST(out.persist->promised == e(1));
    const auto replies = sent<PromiseReply>(out);
    BOOST_TEST_REQUIRE(replies.size() == 1u);
    BOOST_TEST(replies[0].second.granted);
}

BOOST_AUTO_TEST_CASE(promise_refused_for_an_epoch_not_higher_than_promised) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    step(c, 3, PromiseRequest{e(1)});
    const Output out = step(c, 2, PromiseRequest{e(1)});
    const auto replies = sent<PromiseReply>(out);
    BOOST_TEST_REQUIRE(replies.size() == 1u);
    BOOST_TEST(!replies[0].second.granted);
    BOOST_TEST(!out.persist.has_value());
    BOOST_TEST(c.durable().promised == e(1));
}

BOOST_AUTO_TEST_CASE(promise_refused_while_a_live_leader_is_heard_and_its_epoch_not_adopted) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    step(c, 3, Heartbeat{e(1), n(3), LogIndex{0}});
    const Output out = step(c, 2, PromiseRequest{e(2)});
    const auto replies = sent<PromiseReply>(out);
    BOOST_TEST_REQUIRE(replies.size() == 1u);
    BOOST_TEST(!replies[0].second.granted);
    BOOST_TEST(replies[0].second.leader == n(3));
    BOOST_TEST(c.epoch() == e(1));
    BOOST_TEST(c.leader() == n(3));
}

BOOST_AUTO_TEST_CASE(promise_granted_once_the_leader_is_suspected) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    step(c, 3, Heartbeat{e(1), n(3), LogIndex{0}});
    tick_hearing(c, {2}, kTiming.suspect_after_ticks);
    BOOST_TEST(c.leader() == kNoNode);
    const auto replies = sent<PromiseReply>(step(c, 2, PromiseRequest{e(2)}));
    BOOST_TEST_REQUIRE(replies.size() == 1u);
    BOOST_TEST(replies[0].second.granted);
}

BOOST_AUTO_TEST_CASE(lower_epoch_is_fenced_and_the_sender_told_the_current_epoch) {
    Core c = make(1, 3, ElectionAlgorithm::bully, Durable{e(3), e(3)});
    const Output out = step(c, 2, Heartbeat{e(1), n(2), LogIndex{0}});
    BOOST_TEST(c.leader() == kNoNode);
    BOOST_TEST(has_event(out, EventKind::fenced));
    const auto told = sent<Heartbeat>(out);
    BOOST_TEST_REQUIRE(told.size() == 1u);
    BOOST_TEST(told[0].first == n(2));
    BOOST_TEST(told[0].second.epoch == e(3));
}

BOOST_AUTO_TEST_CASE(higher_epoch_is_adopted_persisted_and_ends_leadership) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);
    BOOST_TEST_REQUIRE(b.role_kind() == RoleKind::leader);
    const Epoch led = b.epoch();
    const Output out = step(b, 3, Heartbeat{e(led.value + 1), kNoNode, LogIndex{0}});
    BOOST_TEST(b.role_kind() == RoleKind::follower);
    BOOST_TEST(b.leader() == kNoNode);
    BOOST_TEST_REQUIRE(out.persist.has_value());
    BOOST_TEST(out.persist->epoch == e(led.value + 1));
    BOOST_TEST(has_event(out, EventKind::stepped_down));
}

BOOST_AUTO_TEST_CASE(deposed_leader_follows_the_leader_of_the_higher_epoch) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);
    BOOST_TEST_REQUIRE(b.role_kind() == RoleKind::leader);
    const Epoch next = b.epoch().next();
    step(b, 3, Heartbeat{next, n(3), LogIndex{0}});
    BOOST_TEST(b.role_kind() == RoleKind::follower);
    BOOST_TEST(b.epoch() == next);
    BOOST_TEST(b.leader() == n(3));
}

BOOST_AUTO_TEST_CASE(higher_epoch_seen_by_the_log_layer_ends_leadership) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);
    BOOST_TEST_REQUIRE(b.role_kind() == RoleKind::leader);
    const Epoch next = b.epoch().next();
    b.observe(n(1), next);
    const Output out = b.take_output();
    BOOST_TEST(b.role_kind() == RoleKind::follower);
    BOOST_TEST(b.epoch() == next);
    BOOST_TEST_REQUIRE(out.persist.has_value());
    BOOST_TEST(out.persist->epoch == next);
}

BOOST_AUTO_TEST_CASE(resigned_leader_waits_an_election_timeout_before_standing_again) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);
    BOOST_TEST_REQUIRE(b.role_kind() == RoleKind::leader);
    b.resign("adoption_failed");
    BOOST_TEST(has_event(b.take_output(), EventKind::stepped_down));
    BOOST_TEST(b.leader() == kNoNode);
    const Output waiting = tick_hearing(b, {1}, kTiming.election_timeout_ticks - 1);
    BOOST_TEST(!has_event(waiting, EventKind::election_started));
    BOOST_TEST(has_event(tick_hearing(b, {1}, 1), EventKind::election_started));
}

BOOST_AUTO_TEST_CASE(leader_that_hears_no_majority_steps_down_after_suspect_timeout) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);
    BOOST_TEST_REQUIRE(b.role_kind() == RoleKind::leader);
    step(b, 1, Heartbeat{b.epoch(), n(2), LogIndex{0}});  // last heard from its follower now
    tick_hearing(b, {}, kTiming.suspect_after_ticks - 1);
    BOOST_TEST(b.role_kind() == RoleKind::leader);
    const Output out = tick_hearing(b, {}, 1);
    BOOST_TEST(b.role_kind() == RoleKind::follower);
    BOOST_TEST(has_event(out, EventKind::stepped_down));
}

BOOST_AUTO_TEST_CASE(leader_that_hears_a_majority_keeps_leading) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);
    tick_all(10 * kTiming.suspect_after_ticks, a, b);
    BOOST_TEST(b.role_kind() == RoleKind::leader);
    BOOST_TEST(a.leader() == n(2));
}

BOOST_AUTO_TEST_CASE(every_node_heartbeats_each_peer_every_heartbeat_period) {
    Core c = make(1, 3, ElectionAlgorithm::ring);
    const Output out = tick_hearing(c, {2, 3}, 3 * kTiming.heartbeat_ticks);
    const auto beats = sent<Heartbeat>(out);
    BOOST_TEST(std::count_if(beats.begin(), beats.end(), [](const auto& b) { return b.first == n(2); }) == 3);
    BOOST_TEST(std::count_if(beats.begin(), beats.end(), [](const auto& b) { return b.first == n(3); }) == 3);
}

BOOST_AUTO_TEST_CASE(new_leader_learns_the_best_log_of_its_promise_quorum) {
    Core c = make(5, 5, ElectionAlgorithm::bully);
    c.set_log_position(LogPosition{e(1), LogIndex{4}});
    stand_with_prevote(c, {1, 2, 3, 4}, {1, 2});
    BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::candidate);
    step(c, 2, PromiseReply{c.epoch(), true, kNoNode, LogPosition{e(1), LogIndex{9}}});
    const Output out = step(c, 1, PromiseReply{c.epoch(), true, kNoNode, LogPosition{e(1), LogIndex{2}}});
    BOOST_TEST(c.role_kind() == RoleKind::leader);
    BOOST_TEST_REQUIRE(out.elected.has_value());
    BOOST_TEST((out.elected->best_log == LogPosition{e(1), LogIndex{9}}));
    BOOST_TEST(out.elected->best_log_holder == n(2));
    BOOST_TEST((out.elected->quorum == std::vector<NodeId>{n(1), n(2), n(5)}));
    BOOST_TEST(sent<BullyCoordinator>(out).size() == 4u);
}

BOOST_AUTO_TEST_CASE(duplicate_grants_do_not_count_twice) {
    Core c = make(5, 5, ElectionAlgorithm::bully);
    stand_with_prevote(c, {1, 2, 3, 4}, {1, 2});
    step(c, 2, PromiseReply{c.epoch(), true, kNoNode, {}});
    step(c, 2, PromiseReply{c.epoch(), true, kNoNode, {}});
    BOOST_TEST(c.role_kind() == RoleKind::candidate);
}

BOOST_AUTO_TEST_CASE(refusals_from_a_majority_end_the_candidacy) {
    Core c = make(5, 5, ElectionAlgorithm::bully);
    stand_with_prevote(c, {1, 2, 3, 4}, {1, 2});
    const Epoch stood = c.epoch();
    step(c, 1, PromiseReply{stood, false, kNoNode, {}});
    step(c, 2, PromiseReply{stood, false, kNoNode, {}});
    BOOST_TEST(c.role_kind() == RoleKind::candidate);
    const Output out = step(c, 3, PromiseReply{stood, false, kNoNode, {}});
    BOOST_TEST(c.role_kind() == RoleKind::follower);
    BOOST_TEST(has_event(out, EventKind::election_failed));
    BOOST_TEST(c.epoch() == stood);  // epochs never go back
}

BOOST_AUTO_TEST_CASE(candidate_without_a_majority_of_answers_gives_up_within_an_election_timeout) {
    Core c = make(5, 5, ElectionAlgorithm::bully);
    stand_with_prevote(c, {1, 2, 3, 4}, {1, 2});
    BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::candidate);
    const Output out = elapse_election_timeout(c, {1, 2, 3, 4});
    BOOST_TEST(has_event(out, EventKind::election_failed));
}

BOOST_AUTO_TEST_CASE(restored_epoch_is_kept_and_the_next_candidacy_goes_above_it) {
    Core c = make(3, 3, ElectionAlgorithm::bully, Durable{e(4), e(6)});
    BOOST_TEST(c.epoch() == e(6));
    stand_with_prevote(c, {1, 2}, {1});
    BOOST_TEST(c.epoch() == e(7));
    BOOST_TEST(c.durable().promised == e(7));
}

BOOST_AUTO_TEST_CASE(message_from_a_non_member_is_dropped_as_bad_input) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    const Output out = step(c, 9, Heartbeat{e(5), n(9), LogIndex{0}});
    BOOST_TEST(has_event(out, EventKind::bad_message));
    BOOST_TEST(c.epoch() == e(0));
    BOOST_TEST(out.messages.empty());
}

BOOST_AUTO_TEST_CASE(epoch_that_cannot_be_exceeded_is_bad_input) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    const Output out = step(c, 2, PromiseRequest{e(std::numeric_limits<std::uint64_t>::max())});
    BOOST_TEST(has_event(out, EventKind::bad_message));
    BOOST_TEST(c.epoch() == e(0));
    BOOST_TEST(out.messages.empty());
}

BOOST_AUTO_TEST_CASE(follower_between_heartbeats_outputs_nothing) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    tick_hearing(c, {2, 3}, 1);  // the first tick heartbeats
    BOOST_TEST(tick_hearing(c, {2, 3}, 1).empty());
}

// A node sleeps through the ticks before ticks_until_due() (docs/design.md
// section 6.10): they output nothing, and the one it names acts: here the
// next heartbeat, until silence makes the first suspicion come sooner.
BOOST_AUTO_TEST_CASE(ticks_before_the_due_one_output_nothing) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    tick_hearing(c, {2, 3}, 1);  // the first tick heartbeats; the peers were just heard
    const auto quiet_until_due = [&](std::uint64_t want) {
        BOOST_TEST_REQUIRE(c.ticks_until_due() == want);
        for (std::uint64_t t = 1; t < want; ++t) {
            c.tick();
            BOOST_TEST(c.take_output().empty());
        }
        c.tick();
        return c.take_output();
    };
    for (int period = 0; period < 3; ++period) {
        BOOST_TEST(sent<Heartbeat>(quiet_until_due(kTiming.heartbeat_ticks)).size() == 2u);
    }
    // 16 ticks of silence: both peers are suspected 4 ticks from now.
    BOOST_TEST(has_event(quiet_until_due(kTiming.suspect_after_ticks - 16), EventKind::peer_suspected));
}

BOOST_AUTO_TEST_CASE(node_hearing_only_a_minority_never_stands) {
    Core c = make(5, 5, ElectionAlgorithm::bully);
    const Output out = tick_hearing(c, {1}, 10 * kTiming.election_timeout_ticks);
    BOOST_TEST(!has_event(out, EventKind::election_started));
    BOOST_TEST(c.epoch() == e(0));
}

BOOST_AUTO_TEST_CASE(leader_heartbeat_of_the_current_epoch_makes_it_known) {
    Core c = make(1, 3, ElectionAlgorithm::bully, Durable{e(2), e(2)});
    const Output out = step(c, 3, Heartbeat{e(2), n(3), LogIndex{0}});
    BOOST_TEST(c.leader() == n(3));
    BOOST_TEST_REQUIRE(out.leader_change.has_value());
    BOOST_TEST(out.leader_change->leader == n(3));
}

BOOST_AUTO_TEST_CASE(leader_saying_it_no_longer_leads_is_forgotten) {
    Core c = make(1, 3, ElectionAlgorithm::bully, Durable{e(2), e(2)});
    step(c, 3, Heartbeat{e(2), n(3), LogIndex{0}});
    step(c, 3, Heartbeat{e(2), kNoNode, LogIndex{0}});
    BOOST_TEST(c.leader() == kNoNode);
}

BOOST_AUTO_TEST_CASE(node_told_of_a_newer_epoch_with_a_leader_waits_one_suspect_timeout_for_it) {
    Core c = make(5, 5, ElectionAlgorithm::bully);
    tick_hearing(c, {1, 2, 3}, kTiming.suspect_after_ticks - 1);
    step(c, 3, Heartbeat{e(2), n(4), LogIndex{0}});  // 3 follows 4 in epoch 2; we have not heard 4
    BOOST_TEST(c.epoch() == e(2));
    const Output waiting = tick_hearing(c, {1, 2, 3}, kTiming.suspect_after_ticks - 1);
    BOOST_TEST(!has_event(waiting, EventKind::election_started));
    const Output after = tick_hearing(c, {1, 2, 3}, 1);
    BOOST_TEST(has_event(after, EventKind::election_started));
}

BOOST_AUTO_TEST_SUITE_END()

// The pre-vote (docs/design.md section 5; Raft's PreVote): an attempt only
// proposes its epoch until a majority grants it.
BOOST_AUTO_TEST_SUITE(prevote)

BOOST_AUTO_TEST_CASE(standing_proposes_the_next_epoch_and_raises_nothing) {
    Core c = make(3, 3, ElectionAlgorithm::bully, Durable{e(4), e(4)});
    const Output out = elapse_listen_period(c, {1, 2});
    const auto asked = sent<PreVoteRequest>(out);
    BOOST_TEST_REQUIRE(asked.size() == 2u);
    for (const auto& [to, req] : asked) {
        BOOST_TEST(req.epoch == e(4));
        BOOST_TEST(req.proposed == e(5));
    }
    BOOST_TEST(!out.persist.has_value());
    BOOST_TEST(sent<PromiseRequest>(out).empty());
    BOOST_TEST(c.epoch() == e(4));
    BOOST_TEST(c.role_kind() == RoleKind::candidate);
}

BOOST_AUTO_TEST_CASE(majority_of_prevotes_starts_the_promise_round_for_the_proposed_epoch) {
    Core c = make(5, 5, ElectionAlgorithm::bully, Durable{e(4), e(4)});
    elapse_listen_period(c, {1, 2, 3, 4});
    BOOST_TEST(grant_prevote(c, {1}).messages.empty());  // two of five: not yet
    const Output out = grant_prevote(c, {2});
    BOOST_TEST_REQUIRE(out.persist.has_value());
    BOOST_TEST((*out.persist == Durable{e(5), e(5)}));
    BOOST_TEST(sent<PromiseRequest>(out).size() == 4u);
    BOOST_TEST(has_event(out, EventKind::promise_round));
}

BOOST_AUTO_TEST_CASE(node_hearing_no_leader_grants_a_prevote_and_binds_nothing) {
    Core c = make(1, 3, ElectionAlgorithm::bully, Durable{e(2), e(2)});
    const Output out = step(c, 3, PreVoteRequest{e(2), e(3)});
    const auto replies = sent<PreVoteReply>(out);
    BOOST_TEST_REQUIRE(replies.size() == 1u);
    BOOST_TEST(replies[0].second.granted);
    BOOST_TEST(replies[0].second.proposed == e(3));
    BOOST_TEST(!out.persist.has_value());
    BOOST_TEST((c.durable() == Durable{e(2), e(2)}));
    // Still free to promise the proposed epoch to anyone.
    BOOST_TEST(sent<PromiseReply>(step(c, 2, PromiseRequest{e(3)}))[0].second.granted);
}

BOOST_AUTO_TEST_CASE(node_hearing_a_live_leader_refuses_a_prevote_and_adopts_nothing) {
    Core c = make(1, 3, ElectionAlgorithm::bully, Durable{e(1), e(1)});
    step(c, 3, Heartbeat{e(1), n(3), LogIndex{0}});
    // Even a sender already in a higher epoch moves nothing here.
    const Output out = step(c, 2, PreVoteRequest{e(2), e(3)});
    const auto replies = sent<PreVoteReply>(out);
    BOOST_TEST_REQUIRE(replies.size() == 1u);
    BOOST_TEST(!replies[0].second.granted);
    BOOST_TEST(replies[0].second.leader == n(3));
    BOOST_TEST(!out.persist.has_value());
    BOOST_TEST(c.epoch() == e(1));
    BOOST_TEST(c.leader() == n(3));
}

BOOST_AUTO_TEST_CASE(leader_refuses_a_prevote_and_keeps_its_epoch_and_role) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);
    BOOST_TEST_REQUIRE(b.role_kind() == RoleKind::leader);
    const Epoch led = b.epoch();
    const auto replies = sent<PreVoteReply>(step(b, 3, PreVoteRequest{led, led.next()}));
    BOOST_TEST_REQUIRE(replies.size() == 1u);
    BOOST_TEST(!replies[0].second.granted);
    BOOST_TEST(replies[0].second.leader == n(2));
    BOOST_TEST(b.role_kind() == RoleKind::leader);
    BOOST_TEST(b.epoch() == led);
}

BOOST_AUTO_TEST_CASE(prevote_refused_by_a_majority_fails_the_attempt_at_the_same_epoch) {
    Core c = make(3, 3, ElectionAlgorithm::bully, Durable{e(3), e(3)});
    elapse_listen_period(c, {1, 2});
    BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::candidate);
    step(c, 1, PreVoteReply{e(3), e(4), false, n(2)});
    BOOST_TEST(c.role_kind() == RoleKind::candidate);  // one refusal of three: a majority is still possible
    const Output out = step(c, 2, PreVoteReply{e(3), e(4), false, n(2)});
    BOOST_TEST(c.role_kind() == RoleKind::follower);
    BOOST_TEST(has_event(out, EventKind::election_failed));
    BOOST_TEST(!out.persist.has_value());
    BOOST_TEST(c.epoch() == e(3));
    // Its heartbeats still carry the old epoch: nobody is deposed by them.
    const auto beats = sent<Heartbeat>(tick_hearing(c, {1, 2}, kTiming.heartbeat_ticks));
    BOOST_TEST(!beats.empty());
    for (const auto& [to, hb] : beats) BOOST_TEST(hb.epoch == e(3));
}

BOOST_AUTO_TEST_CASE(prevote_unanswered_times_out_without_raising_the_epoch) {
    Core c = make(3, 3, ElectionAlgorithm::bully, Durable{e(3), e(3)});
    elapse_listen_period(c, {1, 2});
    const Output out = tick_hearing(c, {1, 2}, kTiming.election_timeout_ticks / 4);
    BOOST_TEST(has_event(out, EventKind::election_failed));
    BOOST_TEST(c.epoch() == e(3));
    BOOST_TEST(!out.persist.has_value());
}

BOOST_AUTO_TEST_CASE(prevote_from_a_lower_epoch_is_fenced) {
    Core c = make(1, 3, ElectionAlgorithm::bully, Durable{e(5), e(5)});
    const Output out = step(c, 2, PreVoteRequest{e(3), e(4)});
    BOOST_TEST(sent<PreVoteReply>(out).empty());
    BOOST_TEST(has_event(out, EventKind::fenced));
    BOOST_TEST_REQUIRE(sent<Heartbeat>(out).size() == 1u);
    BOOST_TEST(sent<Heartbeat>(out)[0].second.epoch == e(5));
}

BOOST_AUTO_TEST_CASE(prevote_proposing_anything_but_the_next_epoch_is_bad_input) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    const Output out = step(c, 2, PreVoteRequest{e(1), e(9)});
    BOOST_TEST(has_event(out, EventKind::bad_message));
    BOOST_TEST(out.messages.empty());
    BOOST_TEST(c.epoch() == e(0));
}

BOOST_AUTO_TEST_CASE(late_prevote_answer_to_an_attempt_that_is_over_is_ignored) {
    Core c = make(3, 3, ElectionAlgorithm::bully, Durable{e(3), e(3)});
    elapse_listen_period(c, {1, 2});
    step(c, 1, Heartbeat{e(3), n(1), LogIndex{0}});  // a leader appears: the attempt ends
    BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::follower);
    const Output out = grant_prevote(c, {2});
    BOOST_TEST(!out.persist.has_value());
    BOOST_TEST(c.epoch() == e(3));
    BOOST_TEST(c.leader() == n(1));
}

// The scenario behind the pre-vote: a follower rejoins (restarted, or let
// out of an isolation) while the leader's link to it is still down, so it
// hears the other follower but not the leader. It stands; the follower and
// the leader refuse; the leader keeps its role and epoch, and the rejoined
// node follows it as soon as the link is back.
BOOST_AUTO_TEST_CASE(rejoining_node_that_cannot_hear_the_leader_stands_and_is_refused) {
    for (const auto algorithm : {ElectionAlgorithm::bully, ElectionAlgorithm::ring}) {
        BOOST_TEST_CONTEXT((algorithm == ElectionAlgorithm::bully ? "bully" : "ring")) {
            Core a = make(1, 3, algorithm);
            Core b = make(2, 3, algorithm);
            Core c = make(3, 3, algorithm);
            tick_all(kTiming.suspect_after_ticks + kTiming.election_timeout_ticks, a, b, c);
            BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::leader);
            const Epoch led = c.epoch();
            Core rejoined = make(1, 3, algorithm, a.durable());
            Wires wires{{&rejoined, &b, &c}};
            wires.lost = [](NodeId from, NodeId to) { return from == n(3) && to == n(1); };
            wires.tick(kTiming.suspect_after_ticks + 3 * kTiming.election_timeout_ticks);
            BOOST_TEST(wires.count(1, EventKind::election_started) > 0u);
            if (algorithm == ElectionAlgorithm::bully) {
                BOOST_TEST(wires.count(2, EventKind::prevote_refused, "live_leader") > 0u);
                BOOST_TEST(wires.count(3, EventKind::prevote_refused, "live_leader") > 0u);
            } else {
                // Ring collects no vote from a member that hears a live leader,
                // and the leader's own handoff back to it is lost.
                BOOST_TEST(wires.count(1, EventKind::election_failed) > 0u);
            }
            BOOST_TEST(wires.count(1, EventKind::promise_round) == 0u);
            BOOST_TEST(wires.count(3, EventKind::stepped_down) == 0u);
            BOOST_TEST(wires.count(2, EventKind::epoch_adopted) == 0u);
            BOOST_TEST(c.role_kind() == RoleKind::leader);
            BOOST_TEST(c.epoch() == led);
            BOOST_TEST(b.leader() == n(3));
            BOOST_TEST(rejoined.epoch() == led);
            wires.lost = [](NodeId, NodeId) { return false; };
            wires.tick(kTiming.heartbeat_ticks);
            BOOST_TEST(rejoined.leader() == n(3));
            BOOST_TEST(c.epoch() == led);
        }
    }
}


// ---- fast crash detection (docs/design.md section 5) ----

BOOST_AUTO_TEST_CASE(refused_reconnect_suspects_the_peer_at_once_and_hearing_it_clears_it) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    step(c, 3, Heartbeat{e(1), n(3), LogIndex{0}});
    BOOST_TEST_REQUIRE(c.leader() == n(3));
    const Output out = refuse(c, 3);
    BOOST_TEST(suspects(c, 3));
    BOOST_TEST(c.leader() == kNoNode);  // a suspected leader is not a live one
    BOOST_TEST_REQUIRE(out.events.size() >= 1u);
    BOOST_TEST((out.events[0].kind == EventKind::peer_suspected && out.events[0].peer == n(3)));
    BOOST_TEST(std::string(out.events[0].reason) == "refused");
    BOOST_TEST(!has_event(refuse(c, 3), EventKind::peer_suspected));  // once
    const Output back = step(c, 3, Heartbeat{e(1), kNoNode, LogIndex{0}});
    BOOST_TEST(has_event(back, EventKind::peer_recovered));
    BOOST_TEST(!suspects(c, 3));
}

BOOST_AUTO_TEST_CASE(refusal_naming_self_or_a_non_member_is_ignored) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    c.take_output();
    BOOST_TEST(refuse(c, 1).empty());
    BOOST_TEST(refuse(c, 9).empty());
}

BOOST_AUTO_TEST_CASE(refused_leader_is_replaced_without_waiting_for_a_tick) {
    for (ElectionAlgorithm a : {ElectionAlgorithm::bully, ElectionAlgorithm::ring}) {
        Core c = make(2, 3, a);
        elapse_listen_period(c, {1, 3});
        step(c, 3, Heartbeat{e(1), n(3), LogIndex{0}});
        BOOST_TEST_REQUIRE(c.leader() == n(3));
        const Output out = refuse(c, 3);
        BOOST_TEST(has_event(out, EventKind::election_started));
        // Bully: 2 is the highest live id and stands; Ring: its ELECTION
        // skips the suspected 3 and goes to 1.
        if (a == ElectionAlgorithm::bully) {
            const auto asked = sent<PreVoteRequest>(out);
            BOOST_TEST_REQUIRE(asked.size() == 2u);
        } else {
            const auto passed = sent<RingElection>(out);
            BOOST_TEST_REQUIRE(passed.size() == 1u);
            BOOST_TEST(passed[0].first == n(1));
        }
    }
}

BOOST_AUTO_TEST_CASE(restarted_node_that_heard_the_leader_may_stand_once_it_is_refused) {
    Core c = make(2, 3, ElectionAlgorithm::bully, Durable{e(1), e(1)});
    step(c, 3, Heartbeat{e(1), n(3), LogIndex{0}});
    c.tick();
    BOOST_TEST(!has_event(c.take_output(), EventKind::election_started));  // the leader lives
    const Output out = refuse(c, 3);
    BOOST_TEST(has_event(out, EventKind::election_started));
}

BOOST_AUTO_TEST_CASE(listening_node_does_not_stand_on_a_refusal) {
    Core c = make(2, 3, ElectionAlgorithm::bully);
    const Output out = refuse(c, 3);  // still in its start-up listening period
    BOOST_TEST(has_event(out, EventKind::peer_suspected));
    BOOST_TEST(!has_event(out, EventKind::election_started));
}

BOOST_AUTO_TEST_CASE(prevote_refused_for_a_live_leader_is_granted_once_that_leader_is_suspected) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    step(c, 3, Heartbeat{e(1), n(3), LogIndex{0}});
    const auto refused = sent<PreVoteReply>(step(c, 2, PreVoteRequest{e(1), e(2)}));
    BOOST_TEST_REQUIRE(refused.size() == 1u);
    BOOST_TEST(!refused[0].second.granted);
    const auto late = sent<PreVoteReply>(refuse(c, 3));
    BOOST_TEST_REQUIRE(late.size() == 1u);
    BOOST_TEST(late[0].first == n(2));
    BOOST_TEST(late[0].second.granted);
    BOOST_TEST(late[0].second.proposed == e(2));
    BOOST_TEST(c.epoch() == e(1));  // binds nothing, adopts nothing
    BOOST_TEST(c.durable().promised == e(0));
}

BOOST_AUTO_TEST_CASE(refused_prevote_of_an_older_proposal_is_not_granted_late) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    step(c, 3, Heartbeat{e(1), n(3), LogIndex{0}});
    step(c, 2, PreVoteRequest{e(1), e(2)});
    step(c, 3, Heartbeat{e(2), n(3), LogIndex{0}});  // a newer epoch: the proposal is stale
    BOOST_TEST(sent<PreVoteReply>(refuse(c, 3)).empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bully)

BOOST_AUTO_TEST_CASE(highest_live_id_stands_at_once) {
    Core c = make(3, 3, ElectionAlgorithm::bully);
    const Output out = elapse_listen_period(c, {1, 2});
    BOOST_TEST(sent<BullyElection>(out).empty());
    BOOST_TEST(sent<PreVoteRequest>(out).size() == 2u);
}

BOOST_AUTO_TEST_CASE(lower_id_sends_election_to_live_higher_ids_only) {
    Core c = make(1, 4, ElectionAlgorithm::bully);
    const Output out = elapse_listen_period(c, {2, 3});  // 4 is silent, hence suspected
    const auto asked = sent<BullyElection>(out);
    BOOST_TEST_REQUIRE(asked.size() == 2u);
    BOOST_TEST(asked[0].first == n(2));
    BOOST_TEST(asked[1].first == n(3));
    BOOST_TEST(c.role_kind() == RoleKind::candidate);
}

BOOST_AUTO_TEST_CASE(no_ok_within_the_answer_wait_means_stand) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    elapse_listen_period(c, {2, 3});
    const Output out = tick_hearing(c, {2, 3}, kTiming.election_timeout_ticks / 5);
    BOOST_TEST(sent<PreVoteRequest>(out).size() == 2u);
}

BOOST_AUTO_TEST_CASE(ok_makes_the_candidate_wait_an_election_timeout_for_coordinator) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    elapse_listen_period(c, {2, 3});
    step(c, 3, BullyOk{e(0)});
    BOOST_TEST(c.role_kind() == RoleKind::follower);
    const Output waiting = tick_hearing(c, {2, 3}, kTiming.election_timeout_ticks - 1);
    BOOST_TEST(!has_event(waiting, EventKind::election_started));
    const Output retry = tick_hearing(c, {2, 3}, 1);
    BOOST_TEST(sent<BullyElection>(retry).size() == 2u);
}

BOOST_AUTO_TEST_CASE(coordinator_ends_the_wait_with_a_known_leader) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    elapse_listen_period(c, {2, 3});
    step(c, 3, BullyOk{e(0)});
    step(c, 3, BullyCoordinator{e(1), n(3)});
    BOOST_TEST(c.leader() == n(3));
    BOOST_TEST(c.epoch() == e(1));
}

BOOST_AUTO_TEST_CASE(higher_id_stays_silent_while_listening_and_answers_ok_once_standing) {
    Core c = make(3, 3, ElectionAlgorithm::bully);
    tick_hearing(c, {1, 2}, kTiming.suspect_after_ticks - 1);  // still listening: may not stand yet
    BOOST_TEST(sent<BullyOk>(step(c, 1, BullyElection{e(0)})).empty());
    tick_hearing(c, {1, 2}, 1);  // stands on its own now
    const Output out = step(c, 1, BullyElection{e(c.epoch().value)});
    BOOST_TEST(sent<BullyOk>(out).size() == 1u);
}

BOOST_AUTO_TEST_CASE(live_leader_answers_election_with_coordinator) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);
    BOOST_TEST_REQUIRE(b.role_kind() == RoleKind::leader);
    b.take_output();
    const auto answer = sent<BullyCoordinator>(step(b, 1, BullyElection{b.epoch()}));
    BOOST_TEST_REQUIRE(answer.size() == 1u);
    BOOST_TEST(answer[0].second.leader == n(2));
}

BOOST_AUTO_TEST_CASE(restarted_higher_id_does_not_preempt_the_live_leader) {
    Core a = make(1, 3, ElectionAlgorithm::bully);
    Core b = make(2, 3, ElectionAlgorithm::bully);
    tick_all(kTiming.suspect_after_ticks + 2, a, b);  // 3 is down: 2 leads
    BOOST_TEST_REQUIRE(b.role_kind() == RoleKind::leader);
    const Epoch led = b.epoch();
    Core c = make(3, 3, ElectionAlgorithm::bully);
    tick_all(10 * kTiming.election_timeout_ticks, a, b, c);
    BOOST_TEST(b.role_kind() == RoleKind::leader);
    BOOST_TEST(c.leader() == n(2));
    BOOST_TEST(c.epoch() == led);
}


BOOST_AUTO_TEST_CASE(candidate_does_not_wait_for_higher_ids_it_suspects) {
    Core c = make(3, 5, ElectionAlgorithm::bully);
    const Output asked = elapse_listen_period(c, {1, 2, 4, 5});
    BOOST_TEST_REQUIRE(sent<BullyElection>(asked).size() == 2u);
    BOOST_TEST(sent<PreVoteRequest>(refuse(c, 4)).empty());  // 5 may still answer
    const Output out = refuse(c, 5);
    BOOST_TEST(sent<PreVoteRequest>(out).size() == 4u);  // stands now, not after the answer wait
    BOOST_TEST(c.role_kind() == RoleKind::candidate);
}

BOOST_AUTO_TEST_CASE(candidate_whose_higher_ids_fall_silent_stands_on_that_tick) {
    Core c = make(3, 5, ElectionAlgorithm::bully);
    tick_hearing(c, {1, 2, 4, 5}, 3);
    // 4 and 5 fall silent; the listening period ends with ELECTION to both,
    // two ticks before they reach suspect_after and four before the answer
    // wait would end.
    BOOST_TEST_REQUIRE(sent<BullyElection>(tick_hearing(c, {1, 2}, kTiming.suspect_after_ticks - 3)).size() == 2u);
    BOOST_TEST(sent<PreVoteRequest>(tick_hearing(c, {1, 2}, 1)).empty());
    BOOST_TEST(sent<PreVoteRequest>(tick_hearing(c, {1, 2}, 1)).size() == 4u);
}

BOOST_AUTO_TEST_CASE(ok_sender_suspected_means_trying_again_at_once) {
    Core c = make(1, 3, ElectionAlgorithm::bully);
    elapse_listen_period(c, {2, 3});
    step(c, 3, BullyOk{e(0)});
    BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::follower);
    const Output out = refuse(c, 3);
    BOOST_TEST(has_event(out, EventKind::election_started));
    const auto asked = sent<BullyElection>(out);
    BOOST_TEST_REQUIRE(asked.size() == 1u);
    BOOST_TEST(asked[0].first == n(2));
}

BOOST_AUTO_TEST_CASE(standing_node_refuses_a_lower_prevote_and_yields_to_a_higher_one) {
    Core c = make(2, 3, ElectionAlgorithm::bully);
    elapse_listen_period(c, {1, 3});  // no leader: 2 asks 3
    BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::candidate);
    const auto lower = sent<PreVoteReply>(step(c, 1, PreVoteRequest{e(0), e(1)}));
    BOOST_TEST_REQUIRE(lower.size() == 1u);
    BOOST_TEST(!lower[0].second.granted);
    BOOST_TEST(c.role_kind() == RoleKind::candidate);
    const auto higher = sent<PreVoteReply>(step(c, 3, PreVoteRequest{e(0), e(1)}));
    BOOST_TEST_REQUIRE(higher.size() == 1u);
    BOOST_TEST(higher[0].second.granted);
    BOOST_TEST(c.role_kind() == RoleKind::follower);
    // It waits for 3 as for an OK; 3 suspected ends the wait at once.
    BOOST_TEST(has_event(refuse(c, 3), EventKind::election_started));
}

// The survivors of a dead leader learn of it a few ticks apart: the first
// to know stands and is refused by the other, which still hears the
// leader; once the other suspects it too, its late grant lets the first
// win in the same round, without a timeout or a second attempt.
BOOST_AUTO_TEST_CASE(survivors_suspecting_a_few_ticks_apart_elect_in_one_round) {
    for (std::uint64_t apart : {0, 1, 3}) {
        BOOST_TEST_CONTEXT("ticks apart: " << apart) {
            Core a = make(1, 3, ElectionAlgorithm::bully);
            Core b = make(2, 3, ElectionAlgorithm::bully);
            Core c = make(3, 3, ElectionAlgorithm::bully);
            tick_all(kTiming.suspect_after_ticks + 3, a, b, c);
            BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::leader);
            Wires wires{{&a, &b}};
            b.peer_refused(n(3));
            wires.deliver();
            wires.tick(apart);
            a.peer_refused(n(3));
            wires.deliver();
            wires.tick(kTiming.heartbeat_ticks);
            BOOST_TEST(b.role_kind() == RoleKind::leader);
            BOOST_TEST(a.leader() == n(2));
            BOOST_TEST(wires.count(2, EventKind::prevote_round) == 1u);
            BOOST_TEST(wires.count(1, EventKind::election_failed) + wires.count(2, EventKind::election_failed) == 0u);
        }
    }
}

BOOST_AUTO_TEST_CASE(retry_backoff_grows_and_its_jitter_follows_the_seed) {
    const auto gaps = [](std::uint64_t seed) {
        Core c = make(3, 3, ElectionAlgorithm::bully, {}, seed);
        std::vector<std::uint64_t> rounds_at;
        for (std::uint64_t t = 0; t < 20 * kTiming.election_timeout_ticks; ++t) {
            if (has_event(tick_hearing(c, {1, 2}, 1), EventKind::prevote_round)) rounds_at.push_back(t);
        }
        std::vector<std::uint64_t> out;
        for (std::size_t i = 1; i < rounds_at.size(); ++i) out.push_back(rounds_at[i] - rounds_at[i - 1]);
        return out;
    };
    const auto a = gaps(1);
    BOOST_TEST_REQUIRE(a.size() >= 4u);
    BOOST_TEST(a[3] > a[0]);
    BOOST_TEST((a != gaps(2)));
    BOOST_TEST((a == gaps(1)));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(ring)

BOOST_AUTO_TEST_CASE(initiator_sends_election_to_its_successor) {
    Core c = make(2, 5, ElectionAlgorithm::ring);
    const Output out = elapse_listen_period(c, {1, 3, 4, 5});
    const auto msgs = sent<RingElection>(out);
    BOOST_TEST_REQUIRE(msgs.size() == 1u);
    BOOST_TEST(msgs[0].first == n(3));
    BOOST_TEST((msgs[0].second.ids == std::vector<NodeId>{n(2)}));
}

BOOST_AUTO_TEST_CASE(skips_a_chain_of_dead_successors) {
    Core c = make(1, 5, ElectionAlgorithm::ring);
    const Output out = elapse_listen_period(c, {4, 5});  // 2 and 3 are silent
    const auto msgs = sent<RingElection>(out);
    BOOST_TEST_REQUIRE(msgs.size() == 1u);
    BOOST_TEST(msgs[0].first == n(4));
}

BOOST_AUTO_TEST_CASE(highest_id_wraps_around_to_the_lowest) {
    Core c = make(5, 5, ElectionAlgorithm::ring);
    const auto msgs = sent<RingElection>(elapse_listen_period(c, {1, 2, 3}));
    BOOST_TEST_REQUIRE(msgs.size() == 1u);
    BOOST_TEST(msgs[0].first == n(1));
}

BOOST_AUTO_TEST_CASE(suppresses_the_election_of_a_lower_initiator) {
    Core c = make(3, 5, ElectionAlgorithm::ring);
    elapse_listen_period(c, {1, 2, 4, 5});
    BOOST_TEST_REQUIRE(c.role_kind() == RoleKind::candidate);
    const Output out = step(c, 2, RingElection{e(0), n(2), 1, {n(2)}});
    BOOST_TEST(sent<RingElection>(out).empty());
    BOOST_TEST(c.role_kind() == RoleKind::candidate);
}

BOOST_AUTO_TEST_CASE(forwards_a_higher_initiator_adding_itself_and_abandons_its_own) {
    Core c = make(1, 5, ElectionAlgorithm::ring);
    elapse_listen_period(c, {2, 3, 4, 5});
    const Output out = step(c, 5, RingElection{e(0), n(4), 1, {n(4)}});
    const auto fwd = sent<RingElection>(out);
    BOOST_TEST_REQUIRE(fwd.size() == 1u);
    BOOST_TEST(fwd[0].first == n(2));
    BOOST_TEST((fwd[0].second.ids == std::vector<NodeId>{n(4), n(1)}));
    BOOST_TEST(fwd[0].second.hops == 2u);
    BOOST_TEST(c.role_kind() == RoleKind::follower);
}

BOOST_AUTO_TEST_CASE(node_rejoining_mid_election_adds_itself_and_forwards) {
    Core c = make(3, 5, ElectionAlgorithm::ring, Durable{e(2), e(2)});  // just restarted, still listening
    const Output out = step(c, 2, RingElection{e(2), n(1), 2, {n(1), n(2)}});
    const auto fwd = sent<RingElection>(out);
    BOOST_TEST_REQUIRE(fwd.size() == 1u);
    BOOST_TEST((fwd[0].second.ids == std::vector<NodeId>{n(1), n(2), n(3)}));
}

BOOST_AUTO_TEST_CASE(node_hearing_a_live_leader_forwards_without_voting) {
    Core c = make(3, 5, ElectionAlgorithm::ring, Durable{e(2), e(2)});
    step(c, 5, Heartbeat{e(2), n(5), LogIndex{0}});
    const auto fwd = sent<RingElection>(step(c, 2, RingElection{e(2), n(1), 2, {n(1), n(2)}}));
    BOOST_TEST_REQUIRE(fwd.size() == 1u);
    BOOST_TEST((fwd[0].second.ids == std::vector<NodeId>{n(1), n(2)}));
}

BOOST_AUTO_TEST_CASE(election_back_without_a_quorum_fails_the_attempt) {
    Core c = make(1, 5, ElectionAlgorithm::ring);
    elapse_listen_period(c, {2, 3, 4, 5});
    for (std::uint64_t gone : {3, 4, 5}) refuse(c, gone);  // no live majority left to wait for
    const Output out = step(c, 2, RingElection{e(0), n(1), 5, {n(1), n(2)}});
    BOOST_TEST(has_event(out, EventKind::election_failed));
    BOOST_TEST(sent<RingCoordinator>(out).empty());
    BOOST_TEST(c.role_kind() == RoleKind::follower);
}

// Live members passed it on unvoted (they still hear a leader this node
// suspects): it goes around again after 1, 2, 4, ... ticks within the attempt.
BOOST_AUTO_TEST_CASE(election_back_short_of_votes_goes_around_again_within_the_attempt) {
    Core c = make(1, 5, ElectionAlgorithm::ring);
    elapse_listen_period(c, {2, 3, 4, 5});
    const Output out = step(c, 5, RingElection{e(0), n(1), 5, {n(1), n(2)}});
    BOOST_TEST(!has_event(out, EventKind::election_failed));
    BOOST_TEST(c.role_kind() == RoleKind::candidate);
    step(c, 2, RingAck{e(0), n(1), 1, false});
    const auto again = sent<RingElection>(tick_hearing(c, {2, 3, 4, 5}, 1));
    BOOST_TEST_REQUIRE(again.size() == 1u);
    BOOST_TEST((again[0].second.ids == std::vector<NodeId>{n(1)}));
    const Output won = step(c, 5, RingElection{e(0), n(1), 5, {n(1), n(2), n(3)}});
    BOOST_TEST(sent<RingCoordinator>(won).size() == 1u);
}

BOOST_AUTO_TEST_CASE(election_back_with_a_quorum_sends_the_winner_around) {
    Core c = make(1, 5, ElectionAlgorithm::ring);
    elapse_listen_period(c, {2, 3, 4, 5});
    const Output out = step(c, 5, RingElection{e(0), n(1), 5, {n(1), n(2), n(4)}});
    const auto coord = sent<RingCoordinator>(out);
    BOOST_TEST_REQUIRE(coord.size() == 1u);
    BOOST_TEST(coord[0].first == n(2));
    BOOST_TEST(coord[0].second.winner == n(4));
    BOOST_TEST(sent<PromiseRequest>(out).empty());
}

BOOST_AUTO_TEST_CASE(winner_named_by_coordinator_stands) {
    Core c = make(4, 5, ElectionAlgorithm::ring);
    const Output out = step(c, 3, RingCoordinator{e(0), n(1), n(4), 3});
    BOOST_TEST(sent<PreVoteRequest>(out).size() == 4u);
    BOOST_TEST(sent<RingCoordinator>(out).empty());  // its pre-vote, then its PromiseRequests, tell the rest
}

BOOST_AUTO_TEST_CASE(coordinator_for_another_winner_is_acknowledged_and_forwarded) {
    Core c = make(2, 5, ElectionAlgorithm::ring);
    const Output out = step(c, 1, RingCoordinator{e(0), n(5), n(4), 1});
    const auto acks = sent<RingAck>(out);
    BOOST_TEST_REQUIRE(acks.size() == 1u);
    BOOST_TEST(acks[0].first == n(1));
    const auto fwd = sent<RingCoordinator>(out);
    BOOST_TEST_REQUIRE(fwd.size() == 1u);
    BOOST_TEST(fwd[0].first == n(3));
    BOOST_TEST(fwd[0].second.hops == 2u);
    BOOST_TEST(sent<PromiseRequest>(out).empty());
}

BOOST_AUTO_TEST_CASE(successor_that_does_not_acknowledge_is_skipped) {
    Core c = make(1, 5, ElectionAlgorithm::ring);
    const auto first = sent<RingElection>(elapse_listen_period(c, {2, 3, 4, 5}));
    BOOST_TEST_REQUIRE(first.size() == 1u);
    BOOST_TEST(first[0].first == n(2));
    const auto again = sent<RingElection>(tick_hearing(c, {2, 3, 4, 5}, kTiming.heartbeat_ticks));
    BOOST_TEST_REQUIRE(again.size() == 1u);
    BOOST_TEST(again[0].first == n(3));
}


BOOST_AUTO_TEST_CASE(handoff_to_a_successor_refused_meanwhile_goes_on_at_once) {
    Core c = make(1, 5, ElectionAlgorithm::ring);
    const auto first = sent<RingElection>(elapse_listen_period(c, {2, 3, 4, 5}));
    BOOST_TEST_REQUIRE(first.size() == 1u);
    BOOST_TEST(first[0].first == n(2));
    const auto again = sent<RingElection>(refuse(c, 2));
    BOOST_TEST_REQUIRE(again.size() == 1u);
    BOOST_TEST(again[0].first == n(3));
}

BOOST_AUTO_TEST_CASE(acknowledged_handoff_is_not_sent_again) {
    Core c = make(1, 5, ElectionAlgorithm::ring);
    elapse_listen_period(c, {2, 3, 4, 5});
    step(c, 2, RingAck{e(0), n(1), 1, false});
    BOOST_TEST(sent<RingElection>(tick_hearing(c, {2, 3, 4, 5}, kTiming.heartbeat_ticks)).empty());
}

BOOST_AUTO_TEST_CASE(oversized_duplicate_or_foreign_id_lists_are_rejected_as_bad_input) {
    Core c = make(3, 3, ElectionAlgorithm::ring);
    for (const auto& ids : {std::vector<NodeId>{n(1), n(2), n(3), n(1)}, std::vector<NodeId>{n(1), n(1)},
                            std::vector<NodeId>{n(1), n(7)}, std::vector<NodeId>{}}) {
        const Output out = step(c, 2, RingElection{e(9), n(1), 1, ids});
        BOOST_TEST(has_event(out, EventKind::bad_message));
        BOOST_TEST(out.messages.empty());
        BOOST_TEST(c.epoch() == e(0));  // garbage never moves the epoch
    }
}

BOOST_AUTO_TEST_CASE(election_of_a_dead_initiator_dies_after_one_trip) {
    Core c = make(3, 5, ElectionAlgorithm::ring);
    const Output out = step(c, 2, RingElection{e(0), n(1), 4, {n(1), n(3), n(4), n(5)}});
    BOOST_TEST(sent<RingElection>(out).empty());
}

BOOST_AUTO_TEST_CASE(bully_message_in_a_ring_shard_is_bad_input) {
    Core c = make(3, 3, ElectionAlgorithm::ring);
    const Output out = step(c, 1, BullyElection{e(0)});
    BOOST_TEST(has_event(out, EventKind::bad_message));
}

BOOST_AUTO_TEST_CASE(three_nodes_elect_the_highest_id) {
    Core a = make(1, 3, ElectionAlgorithm::ring);
    Core b = make(2, 3, ElectionAlgorithm::ring);
    Core c = make(3, 3, ElectionAlgorithm::ring);
    tick_all(kTiming.suspect_after_ticks + 3, a, b, c);
    BOOST_TEST(c.role_kind() == RoleKind::leader);
    BOOST_TEST(a.leader() == n(3));
    BOOST_TEST(b.leader() == n(3));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace rl::election
