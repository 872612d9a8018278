// Simulator suites. scenarios/*: the scenarios of docs/design.md section 5, both
// algorithms, a few seeds each. random/*: thousands of seeded chaos runs per
// algorithm; disabled by default so each runs as its own ctest entry.
//
// Arguments after "--": --seed=S (one seed), --seeds=K --first-seed=F (a
// batch), --algorithm=bully|ring (scenarios only), --trace (print every
// event). A failure prints the command that replays it exactly.
#define BOOST_TEST_MODULE election_sim
#include <boost/test/unit_test.hpp>

#include "chaos.hpp"
#include "sim.hpp"

#include "test/sim_common/cli.hpp"

#include <functional>
#include <optional>
#include <string>

namespace rl::election::sim {
namespace {

using config::ElectionAlgorithm;
namespace utf = boost::unit_test;

const char* name(ElectionAlgorithm a) { return a == ElectionAlgorithm::bully ? "bully" : "ring"; }

struct Args : simcommon::SeedArgs {
    std::optional<ElectionAlgorithm> algorithm;  // scenarios only
};

Args args() {
    Args a{simcommon::seed_args(2000)};
    simcommon::for_each_arg([&](const std::string& arg) {
        if (auto v = simcommon::flag_value(arg, "--algorithm")) {
            a.algorithm = *v == "ring" ? ElectionAlgorithm::ring : ElectionAlgorithm::bully;
        }
    });
    return a;
}

std::string replay_command(std::uint64_t seed, std::optional<ElectionAlgorithm> a) {
    return simcommon::replay_command(seed, a ? std::string(" --algorithm=") + name(*a) : std::string());
}

// Runs `body` for both algorithms and seeds 1..5 (or as the arguments say),
// turning a SimFailure into a test error that names the replay command.
void each_case(const std::function<void(ElectionAlgorithm, std::uint64_t)>& body) {
    const Args a = args();
    for (ElectionAlgorithm alg : {ElectionAlgorithm::bully, ElectionAlgorithm::ring}) {
        if (a.algorithm && *a.algorithm != alg) continue;
        const std::uint64_t first = a.seed.value_or(1);
        const std::uint64_t last = a.seed ? first : first + 4;
        for (std::uint64_t seed = first; seed <= last; ++seed) {
            const std::string cmd = replay_command(seed, alg);
            BOOST_TEST_CONTEXT(name(alg) << " seed " << seed << "; replay: " << cmd) {
                try {
                    body(alg, seed);
                } catch (const SimFailure& e) {
                    BOOST_ERROR(e.what());
                }
            }
        }
    }
}

SimConfig make_config(ElectionAlgorithm a, std::uint64_t seed, std::size_t nodes = 5) {
    SimConfig c;
    c.nodes = nodes;
    c.algorithm = a;
    c.seed = seed;
    c.trace = args().trace;
    return c;
}

std::optional<std::pair<Epoch, NodeId>> agreed_up(const Sim& sim) { return sim.agreed_leader(sim.up_nodes()); }

// Starts every node and waits until all agree on one leader.
std::pair<Epoch, NodeId> settle(Sim& sim) {
    sim.start_all();
    BOOST_REQUIRE(sim.run_until([&] { return agreed_up(sim).has_value(); }, sim.liveness_bound_ms()));
    return *agreed_up(sim);
}

std::vector<NodeId> all_but(const Sim& sim, NodeId out) {
    std::vector<NodeId> rest;
    for (NodeId id : sim.ids()) {
        if (id != out) rest.push_back(id);
    }
    return rest;
}

std::uint64_t ticks_ms(const Sim& sim, std::uint64_t ticks) { return ticks * sim.config().tick_ms; }

}  // namespace

BOOST_AUTO_TEST_SUITE(scenarios)

// docs/design.md section 5: detection takes suspect_after; the election itself two
// election timeouts at most.
BOOST_AUTO_TEST_CASE(killed_leader_is_replaced_within_two_election_timeouts_of_detection) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        Sim sim(make_config(a, seed));
        const auto [epoch, leader] = settle(sim);
        sim.crash(leader);
        const std::uint64_t bound =
            sim.step_down_bound_ms() + ticks_ms(sim, 2 * sim.config().timing.election_timeout_ticks);
        const bool replaced = sim.run_until(
            [&] {
                const auto now = agreed_up(sim);
                return now && now->first > epoch;
            },
            bound);
        BOOST_TEST(replaced);
    });
}

// docs/design.md section 5, "Fast crash detection": the leader's process
// dies on a live host, so its peers' redials are refused; they agree on a
// new leader within half of suspect_after of the crash. The same crash on a
// dead host is only silence: nobody stands before suspect_after.
BOOST_AUTO_TEST_CASE(leader_killed_on_a_live_host_is_replaced_well_within_suspect_after) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        for (std::size_t nodes : {3, 5}) {
            BOOST_TEST_CONTEXT(nodes << " nodes") {
                Sim sim(make_config(a, seed, nodes));
                const auto [epoch, leader] = settle(sim);
                sim.run_for(ticks_ms(sim, sim.config().timing.election_timeout_ticks));
                const std::uint64_t killed_at = sim.now_ms();
                const std::uint64_t refusals = sim.stats().refusals;
                sim.kill(leader);
                const bool replaced = sim.run_until(
                    [&] {
                        const auto now = agreed_up(sim);
                        return now && now->first > epoch;
                    },
                    ticks_ms(sim, sim.config().timing.suspect_after_ticks / 2));
                BOOST_TEST(replaced, "no new leader " << sim.now_ms() - killed_at << " ms after the kill");
                BOOST_TEST(sim.stats().refusals > refusals);
            }
        }
    });
}

BOOST_AUTO_TEST_CASE(leader_crashed_with_its_host_is_not_replaced_before_suspect_after) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        Sim sim(make_config(a, seed));
        const auto [epoch, leader] = settle(sim);
        sim.run_for(ticks_ms(sim, sim.config().timing.election_timeout_ticks));
        const std::uint64_t elections = sim.stats().elections_started;
        sim.crash_silently(leader);
        // Its last heartbeat may have left up to a heartbeat before the crash.
        const auto& t = sim.config().timing;
        sim.run_for(ticks_ms(sim, t.suspect_after_ticks - t.heartbeat_ticks - 1));
        BOOST_TEST(sim.stats().elections_started == elections);
        BOOST_TEST(sim.stats().refusals == 0u);
        BOOST_TEST(sim.run_until(
            [&] {
                const auto now = agreed_up(sim);
                return now && now->first > epoch;
            },
            sim.step_down_bound_ms() + sim.liveness_bound_ms()));
    });
}

BOOST_AUTO_TEST_CASE(partition_two_three_only_the_three_side_leads_then_heal_joins_it) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        Sim sim(make_config(a, seed));
        const auto [epoch, leader] = settle(sim);
        // Odd seeds put the old leader on the minority side, even ones on the majority side.
        std::vector<NodeId> two;
        if (seed % 2 == 1) two.push_back(leader);
        for (NodeId id : sim.ids()) {
            if (id != leader && two.size() < 2) two.push_back(id);
        }
        std::vector<NodeId> three;
        for (NodeId id : sim.ids()) {
            if (std::find(two.begin(), two.end(), id) == two.end()) three.push_back(id);
        }
        sim.partition({two, three});
        sim.run_for(sim.step_down_bound_ms() + sim.liveness_bound_ms());
        const auto majority = sim.agreed_leader(three);
        BOOST_TEST_REQUIRE(majority.has_value());
        for (NodeId id : two) {
            BOOST_TEST(sim.core(id).role_kind() != RoleKind::leader);
            BOOST_TEST(sim.core(id).epoch() == epoch);  // the minority never stood
        }
        sim.heal();
        BOOST_TEST(sim.run_until([&] { return sim.agreed_leader(sim.ids()).has_value(); },
                                 ticks_ms(sim, 2 * sim.config().timing.heartbeat_ticks)));
        BOOST_TEST((sim.agreed_leader(sim.ids()) == majority));  // the same leader and epoch, no new election
    });
}

BOOST_AUTO_TEST_CASE(restarted_follower_rejoins_without_a_new_election) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        Sim sim(make_config(a, seed));
        const auto settled = settle(sim);
        const NodeId follower = settled.second == NodeId{1} ? NodeId{2} : NodeId{1};
        sim.crash(follower);
        sim.run_for(500);
        sim.start(follower);
        sim.run_for(sim.liveness_bound_ms());
        BOOST_TEST((agreed_up(sim) == settled));
        BOOST_TEST(sim.leader_history().size() == 1u);
    });
}

// The leader's messages to one follower are lost (its link to a restarted
// node still in reconnect backoff) while everything else flows: that
// follower stands, the others and the leader refuse, and neither the
// leader nor its epoch change (the live-leader guard checks this after
// every event). Odd seeds restart the follower first.
BOOST_AUTO_TEST_CASE(follower_that_cannot_hear_the_leader_does_not_depose_it) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        Sim sim(make_config(a, seed, seed % 3 == 0 ? 3 : 5));
        const auto settled = settle(sim);
        sim.run_for(sim.liveness_bound_ms());  // long enough for the guard to arm
        const NodeId follower = settled.second == NodeId{1} ? NodeId{2} : NodeId{1};
        if (seed % 2 == 1) sim.crash(follower);
        sim.cut(settled.second, follower);
        if (seed % 2 == 1) sim.start(follower);
        const std::uint64_t before = sim.stats().elections_started;
        sim.run_for(2 * sim.liveness_bound_ms());
        BOOST_TEST(sim.stats().elections_started > before);  // it did try
        BOOST_TEST((sim.agreed_leader(all_but(sim, follower)) == settled));
        BOOST_TEST(sim.core(follower).epoch() == settled.first);
        sim.heal();
        BOOST_TEST(sim.run_until([&] { return agreed_up(sim) == settled; }, sim.liveness_bound_ms()));
        BOOST_TEST(sim.leader_history().size() == 1u);
    });
}

BOOST_AUTO_TEST_CASE(restarted_highest_id_joins_the_live_leader_without_preempting) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        Sim sim(make_config(a, seed));
        const auto first = settle(sim);
        sim.crash(first.second);
        BOOST_TEST_REQUIRE(sim.run_until(
            [&] {
                const auto now = agreed_up(sim);
                return now && now->first > first.first;
            },
            sim.liveness_bound_ms()));
        const auto second = *agreed_up(sim);
        sim.start(first.second);
        sim.run_for(sim.liveness_bound_ms());
        BOOST_TEST((sim.agreed_leader(sim.ids()) == second));
    });
}

// Three nodes end their start-up listening in the same millisecond and all
// stand; the other two are still listening.
BOOST_AUTO_TEST_CASE(three_simultaneous_elections_end_with_one_leader_and_one_epoch) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        SimConfig c = make_config(a, seed);
        c.aligned_ticks = true;
        Sim sim(c);
        for (std::uint64_t id : {1, 3, 5}) sim.start(NodeId{id});
        sim.run_for(100);
        for (std::uint64_t id : {2, 4}) sim.start(NodeId{id});
        const std::uint64_t standing_ms = ticks_ms(sim, c.timing.suspect_after_ticks + 2);
        sim.run_until([&] { return sim.stats().elections_started >= 3; }, standing_ms);
        BOOST_TEST(sim.stats().elections_started >= 3u);
        const bool one = sim.run_until([&] { return sim.agreed_leader(sim.ids()).has_value(); },
                                       ticks_ms(sim, 2 * c.timing.election_timeout_ticks));
        BOOST_TEST(one);
        BOOST_TEST(sim.leaders().size() == 1u);
    });
}

BOOST_AUTO_TEST_CASE(epochs_strictly_increase_across_successive_elections) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        Sim sim(make_config(a, seed));
        auto last = settle(sim);
        for (int round = 0; round < 4; ++round) {
            sim.crash(last.second);
            BOOST_TEST_REQUIRE(sim.run_until(
                [&] {
                    const auto now = agreed_up(sim);
                    return now && now->second != last.second;
                },
                sim.step_down_bound_ms() + sim.liveness_bound_ms()));
            const auto next = *agreed_up(sim);
            BOOST_TEST(next.first > last.first);
            sim.start(last.second);
            last = next;
        }
    });
}

BOOST_AUTO_TEST_CASE(leader_cut_off_from_its_majority_steps_down) {
    each_case([](ElectionAlgorithm a, std::uint64_t seed) {
        Sim sim(make_config(a, seed));
        const auto [epoch, leader] = settle(sim);
        // Odd seeds: fully isolated. Even seeds: it can still send but hears nobody.
        if (seed % 2 == 1) {
            sim.partition({{leader}, all_but(sim, leader)});
        } else {
            for (NodeId id : all_but(sim, leader)) sim.cut(id, leader);
        }
        const bool stepped = sim.run_until([&] { return sim.core(leader).role_kind() != RoleKind::leader; },
                                           sim.step_down_bound_ms());
        BOOST_TEST(stepped);
        const auto rest = all_but(sim, leader);
        BOOST_TEST(sim.run_until([&] { return sim.agreed_leader(rest).has_value(); }, sim.liveness_bound_ms()));
    });
}

BOOST_AUTO_TEST_SUITE_END()

// ---- seeded chaos ----

namespace {

void chaos_batch(ElectionAlgorithm alg) {
    const Args a = args();
    const std::uint64_t first = a.seed.value_or(a.first_seed);
    const std::uint64_t count = a.seed ? 1 : a.seeds;
    SimStats total;
    int failures = 0;
    for (std::uint64_t seed = first; seed < first + count && failures < 3; ++seed) {
        const std::string cmd = replay_command(seed, std::nullopt);
        try {
            const SimStats s = random_run(RandomRun{seed, alg, 2, a.trace});
            total.messages_sent += s.messages_sent;
            total.messages_lost += s.messages_lost;
            total.crashes += s.crashes;
            total.refusals += s.refusals;
            total.elections_started += s.elections_started;
            total.elections_won += s.elections_won;
            total.guarded_checks += s.guarded_checks;
        } catch (const SimFailure& e) {
            ++failures;
            BOOST_ERROR(name(alg) << " seed " << seed << ": " << e.what() << "\n  replay: " << cmd << " --trace");
        }
    }
    BOOST_TEST(failures == 0);
    BOOST_TEST_MESSAGE(name(alg) << ": " << count << " seeds from " << first << ", " << total.messages_sent
                                 << " messages (" << total.messages_lost << " lost), " << total.crashes
                                 << " crashes (" << total.refusals << " refused reconnects), " << total.elections_started << " elections started, "
                                 << total.elections_won << " won, " << total.guarded_checks
                                 << " checks with a live leader's guard armed");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(random)

BOOST_AUTO_TEST_CASE(bully, *utf::disabled()) { chaos_batch(ElectionAlgorithm::bully); }
BOOST_AUTO_TEST_CASE(ring, *utf::disabled()) { chaos_batch(ElectionAlgorithm::ring); }

BOOST_AUTO_TEST_SUITE_END()

}  // namespace rl::election::sim
