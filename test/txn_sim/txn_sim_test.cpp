// Transaction simulator suites. scenarios/*: a killed leader, a leader cut
// into the minority and a follower caught up by snapshot, all under client
// load, a few seeds each; across shards, a coordinator killed with
// transactions in flight and two shards cut apart. random: seeded chaos
// runs (docs/design.md section 7.2), 500 by default.
//
// Arguments after "--": --seed=S (one seed), --seeds=K --first-seed=F (a
// batch), --rounds=R (chaos rounds per run, 2 by default; the long runs use
// dozens), --shards=N (N shards of 3 nodes with transfers within and across
// them by two-phase commit; 1 by default), --slow-links (a fifth of the fault
// phases delay messages up to 300 ms), --trace (print every event). A
// failure prints the command that replays it exactly. --strict-durability
// fails a run as soon as a disk drops a committed entry, even with a
// majority keeping it.
#define BOOST_TEST_MODULE txn_sim
#include <boost/test/unit_test.hpp>

#include "chaos.hpp"
#include "sim.hpp"

#include "test/sim_common/cli.hpp"

#include <functional>
#include <map>
#include <string>

namespace rl::txn::sim {
namespace {

namespace utf = boost::unit_test;

struct Args : simcommon::SeedArgs {
    bool strict_durability = false;
    int rounds = 2;
    std::size_t shards = 1;
    bool slow_links = false;
};

Args args() {
    Args a{simcommon::seed_args(500)};
    simcommon::for_each_arg([&](const std::string& arg) {
        if (arg == "--strict-durability") a.strict_durability = true;
        if (arg == "--slow-links") a.slow_links = true;
        if (auto v = simcommon::flag_value(arg, "--rounds")) a.rounds = std::stoi(*v);
        if (auto v = simcommon::flag_value(arg, "--shards")) a.shards = std::stoul(*v);
    });
    return a;
}

using simcommon::replay_command;

// Runs `body` for seeds 1..3 (or the one given), turning a SimFailure into
// a test error that names the replay command.
void each_seed(const std::function<void(std::uint64_t)>& body) {
    const Args a = args();
    const std::uint64_t first = a.seed.value_or(1);
    const std::uint64_t last = a.seed ? first : first + 2;
    for (std::uint64_t seed = first; seed <= last; ++seed) {
        const std::string cmd = replay_command(seed);
        BOOST_TEST_CONTEXT("seed " << seed << "; replay: " << cmd << " --trace") {
            try {
                body(seed);
            } catch (const SimFailure& e) {
                BOOST_ERROR(e.what());
            }
        }
    }
}

SimConfig make_config(std::uint64_t seed, std::size_t nodes) {
    SimConfig c;
    c.nodes = nodes;
    c.seed = seed;
    c.algorithm = seed % 2 ? config::ElectionAlgorithm::bully : config::ElectionAlgorithm::ring;
    c.trace = args().trace;
    c.strict_durability = args().strict_durability;
    return c;
}

// Two shards of three nodes with `clients` clients.
SimConfig two_shards(std::uint64_t seed, std::size_t clients) {
    SimConfig c = make_config(seed, 3);
    c.shards = 2;
    c.clients = clients;
    return c;
}

// Starts every node and waits until all agree on a leader ready to serve.
std::pair<Epoch, NodeId> settle(Sim& sim) {
    sim.start_all();
    BOOST_REQUIRE(sim.run_until([&] { return sim.agreed_leader(sim.ids()).has_value(); }, sim.liveness_bound_ms()));
    return *sim.agreed_leader(sim.ids());
}

// The same for every shard of a multi-shard simulation.
void settle_shards(Sim& sim) {
    sim.start_all();
    BOOST_REQUIRE(sim.run_until(
        [&] {
            for (std::size_t k = 1; k <= sim.shard_count(); ++k) {
                if (!sim.agreed_leader(sim.shard_nodes(ShardId{k}))) return false;
            }
            return true;
        },
        sim.liveness_bound_ms()));
}

// Some up replica holds money for, or expects money from, an undecided
// cross-shard transaction.
bool any_reserved(const Sim& sim) {
    for (NodeId id : sim.up_nodes()) {
        const ShardState& s = sim.replica(id).state();
        if (s.held_total() + s.pending_total() > 0) return true;
    }
    return false;
}

std::vector<NodeId> all_but(const Sim& sim, const std::vector<NodeId>& out) {
    std::vector<NodeId> rest;
    for (NodeId id : sim.ids()) {
        if (std::find(out.begin(), out.end(), id) == out.end()) rest.push_back(id);
    }
    return rest;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(scenarios)

// The leader dies mid-stream: no acknowledged transfer is lost, no retry
// applies twice, and the survivors go on committing.
BOOST_AUTO_TEST_CASE(killed_leader_under_load_loses_nothing_acknowledged) {
    each_seed([](std::uint64_t seed) {
        Sim sim(make_config(seed, 5));
        const auto [epoch, leader] = settle(sim);
        sim.run_for(600);
        const auto acked_before = sim.stats().committed_acked;
        BOOST_TEST(acked_before > 0u);
        sim.crash(leader);
        const auto rest = all_but(sim, {leader});
        BOOST_TEST(sim.run_until(
            [&] {
                const auto now = sim.agreed_leader(rest);
                return now && now->first > epoch;
            },
            sim.liveness_bound_ms()));
        sim.run_for(800);
        BOOST_TEST(sim.stats().committed_acked > acked_before);
        sim.start(leader);
        quiet(sim);
    });
}

// The leader and one follower are cut off: the minority commits nothing,
// the majority elects and serves; after the heal everyone converges.
BOOST_AUTO_TEST_CASE(leader_in_minority_partition_under_load) {
    each_seed([](std::uint64_t seed) {
        Sim sim(make_config(seed, 5));
        const auto [epoch, leader] = settle(sim);
        sim.run_for(400);
        const std::vector<NodeId> two{leader, all_but(sim, {leader}).front()};
        sim.partition({two, all_but(sim, two)});
        const LogIndex committed_at_cut = sim.oracle().size();
        sim.run_for(sim.liveness_bound_ms() + 300);
        BOOST_TEST(sim.agreed_leader(all_but(sim, two)).has_value());
        for (NodeId id : two) BOOST_TEST(sim.replica(id).role() != election::RoleKind::leader);
        BOOST_TEST(sim.oracle().size() > committed_at_cut);  // the majority went on
        sim.run_for(600);
        quiet(sim);
    });
}

namespace {

// A follower that was away while the leader compacted past its log can
// only catch up by snapshot.
void lagging_follower_catches_up(std::uint64_t seed, std::uint64_t after_entries, std::uint64_t after_bytes) {
    SimConfig c = make_config(seed, 3);
    c.snapshot_after_entries = after_entries;
    c.snapshot_after_bytes = after_bytes;
    Sim sim(c);
    const auto [epoch, leader] = settle(sim);
    const NodeId lagging = all_but(sim, {leader}).front();
    if (seed % 2) {
        sim.crash(lagging);
    } else {
        sim.partition({{lagging}, all_but(sim, {lagging})});
    }
    const LogIndex behind = sim.oracle().size();
    BOOST_TEST_REQUIRE(sim.run_until(
        [&] { return sim.replica(leader).log().snapshot_index().value > behind.value + 10; }, 5000));
    const auto installed = sim.stats().snapshots_installed;
    if (seed % 2) {
        sim.start(lagging);
    } else {
        sim.heal();
    }
    BOOST_TEST(sim.run_until([&] { return sim.replica(lagging).applied_index() >= sim.oracle().size(); }, 2000));
    BOOST_TEST(sim.stats().snapshots_installed > installed);
    quiet(sim);
}

}  // namespace

// With a tiny entry count bound (the bytes bound at its default).
BOOST_AUTO_TEST_CASE(lagging_follower_catches_up_by_snapshot) {
    each_seed([](std::uint64_t seed) { lagging_follower_catches_up(seed, 5, SimConfig{}.snapshot_after_bytes); });
}

// The entry count is out of reach and the bytes bound (about five
// transfers' worth) compacts: a log of large entries stays bounded in
// memory and on disk however few entries it holds.
BOOST_AUTO_TEST_CASE(the_log_is_compacted_by_its_bytes_too) {
    each_seed([](std::uint64_t seed) { lagging_follower_catches_up(seed, 1000000, 5 * kEntryBytes); });
}

// Once the clients stop, every node compacts its log within a second or
// two although no bound was reached: its idle bytes threshold (a 64th of
// snapshot_after_bytes) is one entry here, the bounds 64 entries' bytes
// and a million entries.
BOOST_AUTO_TEST_CASE(an_idle_node_compacts_its_log) {
    each_seed([](std::uint64_t seed) {
        SimConfig c = make_config(seed, 3);
        c.snapshot_after_entries = 1000000;
        c.snapshot_after_bytes = 64 * kEntryBytes;
        Sim sim(c);
        settle(sim);
        sim.run_for(1000 + seed % 7 * 130);
        sim.set_clients_active(false);
        sim.run_for(2500);
        for (std::size_t i = 1; i <= c.nodes; ++i) {
            const Replica& r = sim.replica(NodeId{i});
            BOOST_TEST(r.log().snapshot_index() == r.applied_index(), "node " << i << " seed " << seed);
        }
    });
}

// Once the load and the cross-shard records are gone, a leader's timer
// wakes it once per heartbeat period (its log heartbeat goes with its
// election heartbeat) and a follower's hardly ever (it heartbeats when it
// hears its leader's), not once per tick (docs/design.md section 6.10); and
// every heartbeat still comes in time: nobody is suspected, no epoch moves.
BOOST_AUTO_TEST_CASE(an_idle_node_wakes_for_heartbeats_not_ticks) {
    each_seed([](std::uint64_t seed) {
        SimConfig c = two_shards(seed, 4);
        Sim sim(c);
        settle_shards(sim);
        sim.run_for(800 + seed % 5 * 110);
        sim.set_clients_active(false);
        sim.run_for(3000);  // the last records forgotten, the logs compacted
        const std::uint64_t window_ms = 2000;
        const std::uint64_t periods = window_ms / (c.timing.heartbeat_ticks * c.tick_ms);
        std::map<NodeId, std::uint64_t> before;
        std::map<NodeId, Epoch> epoch;
        for (NodeId id : sim.ids()) {
            before[id] = sim.tick_wakes(id);
            epoch[id] = sim.replica(id).epoch();
        }
        sim.run_for(window_ms);
        for (NodeId id : sim.ids()) {
            const Replica& r = sim.replica(id);
            const std::uint64_t woke = sim.tick_wakes(id) - before[id];
            BOOST_TEST_CONTEXT("node " << id.value << " woke " << woke << " times in " << periods << " heartbeats") {
                if (r.role() == election::RoleKind::leader) {
                    BOOST_TEST(woke >= periods - 1);
                    BOOST_TEST(woke <= periods + 1);
                } else {
                    BOOST_TEST(woke <= periods / 10);
                }
                BOOST_TEST(r.epoch() == epoch[id]);
                for (const auto& peer : r.peers()) BOOST_TEST(!peer.suspected, "peer " << peer.id.value);
            }
        }
        BOOST_TEST(sim.stats().cross_committed_acked > 0u);
    });
}

// A leader whose two followers keep up leaves its own sync to them
// (docs/design.md section 6.11): it syncs far less often than they do,
// while transfers commit. With one follower down its own copy is needed
// for a majority again, and it syncs every turn that wrote.
BOOST_AUTO_TEST_CASE(a_leader_leaves_its_sync_to_followers_that_keep_up) {
    each_seed([](std::uint64_t seed) {
        Sim sim(make_config(seed, 3));
        const NodeId leader = settle(sim).second;
        sim.run_for(300);
        const auto syncs = [&](NodeId id) { return sim.wal_stats(id).syncs; };
        std::map<NodeId, std::uint64_t> before;
        for (NodeId id : sim.ids()) before[id] = syncs(id);
        const std::uint64_t waited = sim.shell_stats(leader).syncs_waited;
        const auto acked = sim.stats().committed_acked;
        const SimConfig c = make_config(seed, 3);
        const std::uint64_t window_ms = 1000;
        sim.run_for(window_ms);
        BOOST_TEST_REQUIRE(sim.replica(leader).role() == election::RoleKind::leader);
        BOOST_TEST(sim.stats().committed_acked > acked);
        BOOST_TEST(sim.shell_stats(leader).syncs_waited > waited);
        // Once a tick at most for its entries, plus the turns whose sends
        // wait for the disk (its election heartbeats), and a few others.
        const std::uint64_t ticks = window_ms / c.tick_ms;
        const std::uint64_t bound = ticks + ticks / c.timing.heartbeat_ticks + ticks / 10;
        const std::uint64_t by_leader = syncs(leader) - before[leader];
        for (NodeId id : sim.ids()) {
            if (id == leader) continue;
            BOOST_TEST_CONTEXT("leader synced " << by_leader << " times (bound " << bound << "), follower " << id.value
                                                << " " << syncs(id) - before[id]) {
                BOOST_TEST(by_leader <= bound);
                BOOST_TEST(syncs(id) - before[id] > by_leader);
            }
        }
        NodeId down = leader.value == 1 ? NodeId{2} : NodeId{1};
        sim.crash(down);
        sim.run_for(500);
        BOOST_TEST_REQUIRE(sim.replica(leader).role() == election::RoleKind::leader);
        const std::uint64_t waited_alone = sim.shell_stats(leader).syncs_waited;
        const auto acked_alone = sim.stats().committed_acked;
        sim.run_for(1000);
        BOOST_TEST(sim.stats().committed_acked > acked_alone);
        BOOST_TEST(sim.shell_stats(leader).syncs_waited == waited_alone);
    });
}

// One node's INI says other session limits than the shard was created
// with: it follows the log, so every replica applies every entry alike and
// holds byte-identical state, through snapshots and restarts.
BOOST_AUTO_TEST_CASE(a_node_whose_ini_differs_follows_the_log) {
    each_seed([](std::uint64_t seed) {
        SimConfig c = make_config(seed, 3);
        c.snapshot_after_entries = 5;
        c.dedup_of[2] = {3, 2};
        Sim sim(c);
        settle(sim);
        sim.run_for(1500);
        sim.crash(NodeId{2});
        sim.run_for(500);
        sim.start(NodeId{2});
        sim.run_for(1500);
        quiet(sim);
        const auto& genesis = sim.replica(NodeId{1}).state().genesis();
        BOOST_TEST_REQUIRE(genesis.has_value());
        for (NodeId id : sim.ids()) BOOST_TEST((sim.replica(id).state().genesis() == genesis));
        BOOST_TEST(sim.stats().snapshots_installed + sim.stats().committed_entries > 0u);
    });
}

// Many more sessions are opened than the table keeps, and old transfers
// are replayed at any age: every answer is the first result or "cannot
// tell", and the model proves no txid moves money twice.
BOOST_AUTO_TEST_CASE(more_sessions_than_the_table_never_apply_a_txid_twice) {
    each_seed([](std::uint64_t seed) {
        SimConfig c = make_config(seed, 3);
        c.clients = 6;
        c.sessions_max = 2;
        c.dedup_window = 3;
        c.session_churn = 0.1;
        c.replay_share = 0.2;
        Sim sim(c);
        const auto [epoch, leader] = settle(sim);
        sim.run_for(2000);
        sim.crash(leader);
        sim.run_for(1000);
        quiet(sim);
        BOOST_TEST(sim.oracle().sessions_evicted() > 0u);
        BOOST_TEST(sim.stats().replays > 0u);
        BOOST_TEST(sim.stats().session_expired_answers + sim.stats().expired_answers > 0u);
        BOOST_TEST(sim.stats().committed_acked > 0u);
    });
}

// Writes and fsyncs fail with EIO and ENOSPC now and then; crashes strike
// inside syncs, so batches land partly: the real WAL cuts what was never
// synced, refuses nothing, and loses nothing it synced.
BOOST_AUTO_TEST_CASE(disk_errors_and_torn_batches_lose_nothing_synced) {
    each_seed([](std::uint64_t seed) {
        Sim sim(make_config(seed, 3));
        settle(sim);
        NetFaults f;
        f.disk_error = 0.05;
        f.crash_in_sync = 0.01;
        sim.set_faults(f);
        for (int round = 0; round < 6; ++round) {
            sim.run_for(500);
            sim.start_all();
        }
        quiet(sim);
        BOOST_TEST(sim.stats().disk_errors > 0u);
        BOOST_TEST(sim.stats().crashes > 0u);
    });
}

// Two shards; the leader of the first, which coordinates every transfer
// from its items, dies with transactions prepared: its successor asks the
// other shard about what it inherits (a Query fences what never arrived),
// the other shard asks on its own about its pending credits, and at
// quiescence nothing is held, pending or undecided, every acknowledged
// commit is posted in both shards and money is conserved.
BOOST_AUTO_TEST_CASE(cross_shard_coordinator_killed_mid_flight_settles) {
    each_seed([](std::uint64_t seed) {
        Sim sim(two_shards(seed, 6));
        settle_shards(sim);
        sim.run_for(800);
        BOOST_TEST(sim.stats().cross_committed_acked > 0u);
        const auto leader = sim.agreed_leader(sim.shard_nodes(ShardId{1}));
        BOOST_TEST_REQUIRE(leader.has_value());
        // Strike while a transaction is prepared (a hold is placed) if one comes soon.
        sim.run_until([&] { return any_reserved(sim); }, 500);
        sim.crash(leader->second);
        sim.run_for(sim.liveness_bound_ms() + 500);
        sim.start(leader->second);
        quiet(sim);
        BOOST_TEST(sim.stats().cross_prepared > 0u);
        // Batches mixing transfers within and across shards, each outcome checked.
        BOOST_TEST(sim.stats().batches_answered > 0u);
    });
}

// The two shards are cut apart while clients keep transferring: transfers
// within each shard go on, those across wait with their money held (a hold
// is never spent by another transfer); after the heal every one of them is
// decided and the books balance.
BOOST_AUTO_TEST_CASE(shards_cut_apart_hold_money_until_healed) {
    each_seed([](std::uint64_t seed) {
        // Enough clients that some are free for transfers within a shard
        // while others wait on transfers across the cut (a client retries
        // its txid until answered, so one stuck across stays stuck).
        Sim sim(two_shards(seed, 16));
        settle_shards(sim);
        sim.run_for(400);
        sim.partition({sim.shard_nodes(ShardId{1}), sim.shard_nodes(ShardId{2})});
        const LogIndex first = sim.oracle(ShardId{1}).size();
        const LogIndex second = sim.oracle(ShardId{2}).size();
        BOOST_TEST(sim.run_until([&] { return any_reserved(sim); }, 2000));
        // Each shard goes on alone (clients stuck on a transfer across, or
        // on a node of the other side, retry elsewhere after their timeout).
        BOOST_TEST(sim.run_until(
            [&] { return sim.oracle(ShardId{1}).size() > first && sim.oracle(ShardId{2}).size() > second; }, 6000));
        BOOST_TEST(any_reserved(sim));
        quiet(sim);
        BOOST_TEST(!any_reserved(sim));
    });
}

// Every request between shards of a busy second is delivered a second time
// after both shards finished and forgot its transaction, as a peer link's
// queue can deliver frames long after a reconnect: late Prepares make
// records again, late DecideAsks follow them. Nothing is posted twice
// (the checker fails a side posted twice or a txid decided both ways), and
// every record the duplicates made is released.
BOOST_AUTO_TEST_CASE(late_duplicates_of_every_request_between_shards_post_nothing_twice) {
    each_seed([](std::uint64_t seed) {
        Sim sim(two_shards(seed, 6));
        settle_shards(sim);
        sim.capture_between_shards(true);
        sim.run_for(1000);
        BOOST_TEST(sim.stats().cross_committed_acked > 0u);
        quiet(sim);  // every transaction decided and forgotten in both shards
        sim.set_clients_active(false);
        // The Prepares first, so that their records exist again when the
        // decisions arrive (well before the receiver would ask on its own).
        BOOST_TEST(sim.replay_captured(true) > 0u);
        sim.run_for(100);
        BOOST_TEST(sim.replay_captured(false) > 0u);
        quiet(sim);
    });
}

BOOST_AUTO_TEST_SUITE_END()

// ---- seeded chaos ----

// Disabled in the default run so that the batch is its own ctest entry and
// ctest -j runs it beside the scenarios.
BOOST_AUTO_TEST_CASE(random, *utf::disabled()) {
    const Args a = args();
    const std::uint64_t first = a.seed.value_or(a.first_seed);
    const std::uint64_t count = a.seed ? 1 : a.seeds;
    BOOST_TEST_REQUIRE((a.shards >= 1 && a.shards <= 8));
    // Everything besides the seed that shapes a run, for the replay command.
    std::string extra;
    if (a.shards != 1) extra += " --shards=" + std::to_string(a.shards);
    if (a.rounds != 2) extra += " --rounds=" + std::to_string(a.rounds);
    if (a.strict_durability) extra += " --strict-durability";
    if (a.slow_links) extra += " --slow-links";
    SimStats total;
    int failures = 0;
    for (std::uint64_t seed = first; seed < first + count && failures < 10; ++seed) {
        const std::string cmd = replay_command(seed, extra);
        try {
            RandomRun run;
            run.seed = seed;
            run.shards = a.shards;
            run.chaos_rounds = a.rounds;
            run.strict_durability = a.strict_durability;
            run.slow_links = a.slow_links;
            run.trace = a.trace;
            total.add(random_run(run));
        } catch (const SimFailure& e) {
            ++failures;
            BOOST_ERROR("seed " << seed << ": " << e.what() << "\n  replay: " << cmd << " --trace");
        }
    }
    BOOST_TEST(failures == 0);
    BOOST_TEST_MESSAGE(count << " seeds from " << first << " (" << a.shards << " shard(s), " << a.rounds
                             << " chaos rounds each, "
                             << total.simulated_ms / 1000 << " simulated seconds in all): "
                             << total.committed_entries << " entries committed, "
                             << total.committed_acked << " transfers acknowledged committed and "
                             << total.aborted_acked << " aborted, " << total.reads_checked << " reads checked, "
                             << total.client_retries << " client retries, " << total.crashes << " crashes, "
                             << total.snapshots_installed << " snapshots installed, "
                             << total.committed_copies_dropped << " durable copies of committed entries dropped, "
                             << total.sessions_opened << " sessions opened, " << total.replays << " replays, "
                             << total.batches_answered << " batches answered, "
                             << total.expired_answers << " expired and " << total.session_expired_answers
                             << " session_expired answers, " << total.disk_errors << " disk errors, "
                             << total.torn_recoveries << " torn tails cut, "
                             << total.cross_committed_acked << " cross-shard transfers acknowledged committed and "
                             << total.cross_aborted_acked << " aborted (" << total.early_acks
                             << " before their Decide committed), " << total.cross_prepared << " Prepare records, "
                             << total.cross_committed << " sides posted, " << total.fences << " fences, "
                             << total.forgotten << " records forgotten, " << total.unreachable_reports
                             << " unreachable reports, " << total.refusals << " refused redials, "
                             << total.messages_sent
                             << " messages (" << total.messages_lost << " lost)");
}

}  // namespace rl::txn::sim
