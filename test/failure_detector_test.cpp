// The failure detector, first as a sans-I/O core stepped by hand, then with
// three real rlnode processes and SIGKILL.
#define BOOST_TEST_MODULE failure_detector
#include "election/failure_detector.hpp"
#include "test/support/cluster.hpp"

#include <boost/test/unit_test.hpp>

#include <signal.h>

using namespace rl;
using namespace rl::election;
using namespace std::chrono_literals;

namespace {

std::vector<DetectorEvent> tick_n(FailureDetector& d, int n) {
    std::vector<DetectorEvent> all;
    for (int i = 0; i < n; ++i) {
        auto e = d.tick();
        all.insert(all.end(), e.begin(), e.end());
    }
    return all;
}

}  // namespace

BOOST_AUTO_TEST_CASE(peer_silent_for_suspect_after_is_suspected_once) {
    FailureDetector d({NodeId{2}, NodeId{3}}, 20);
    BOOST_TEST(tick_n(d, 19).empty());
    d.heard(NodeId{3});
    const auto e = tick_n(d, 1);
    BOOST_REQUIRE(e.size() == 1u);
    BOOST_TEST(e[0].peer == NodeId{2});
    BOOST_TEST((e[0].kind == DetectorEvent::Kind::suspect));
    BOOST_TEST(d.suspected(NodeId{2}));
    BOOST_TEST(!d.suspected(NodeId{3}));
    // Still silent: no second event for the same transition.
    for (const auto& ev : tick_n(d, 50)) BOOST_TEST(ev.peer != NodeId{2});
}

// The node sleeps until the tick this names (docs/design.md section 6.10):
// it must be exactly the tick whose tick() suspects, never a later one.
BOOST_AUTO_TEST_CASE(ticks_until_suspect_names_the_tick_that_suspects) {
    FailureDetector d({NodeId{2}, NodeId{3}}, 20);
    tick_n(d, 7);
    d.heard(NodeId{3});
    BOOST_TEST(d.ticks_until_suspect() == 13u);  // node 2, silent for 7 of its 20
    BOOST_TEST(tick_n(d, 12).empty());
    BOOST_TEST(d.ticks_until_suspect() == 1u);
    const auto e = tick_n(d, 1);
    BOOST_REQUIRE(e.size() == 1u);
    BOOST_TEST(e[0].peer == NodeId{2});
    BOOST_TEST(d.ticks_until_suspect() == 7u);  // node 3, heard 13 ticks ago
    d.refused(NodeId{3});
    BOOST_TEST(d.ticks_until_suspect() == UINT64_MAX);  // nobody left to suspect
}

BOOST_AUTO_TEST_CASE(hearing_a_suspected_peer_recovers_it_once) {
    FailureDetector d({NodeId{2}}, 5);
    tick_n(d, 5);
    BOOST_REQUIRE(d.suspected(NodeId{2}));
    const auto e = d.heard(NodeId{2});
    BOOST_REQUIRE(e.size() == 1u);
    BOOST_TEST((e[0].kind == DetectorEvent::Kind::recover));
    BOOST_TEST(d.heard(NodeId{2}).empty());
    BOOST_TEST(d.live_peers() == 1u);
}

BOOST_AUTO_TEST_CASE(steady_heartbeats_never_raise_suspicion) {
    FailureDetector d({NodeId{2}}, 20);
    for (int i = 0; i < 1000; ++i) {
        BOOST_TEST(d.tick().empty());
        if (i % 5 == 0) d.heard(NodeId{2});
    }
}

// docs/design.md section 5, "Fast crash detection".
BOOST_AUTO_TEST_CASE(refused_peer_is_suspected_at_once_and_recovers_when_heard) {
    FailureDetector d({NodeId{2}, NodeId{3}}, 20);
    const auto e = d.refused(NodeId{2});
    BOOST_REQUIRE(e.size() == 1u);
    BOOST_TEST((e[0].kind == DetectorEvent::Kind::suspect && e[0].peer == NodeId{2}));
    BOOST_TEST(d.suspected(NodeId{2}));
    BOOST_TEST(d.refused(NodeId{2}).empty());  // once per transition
    BOOST_TEST(tick_n(d, 30).size() == 1u);     // only 3, by silence; 2 stays suspected without a second event
    BOOST_TEST(d.heard(NodeId{2}).size() == 1u);
    BOOST_TEST(!d.suspected(NodeId{2}));
    BOOST_TEST(d.refused(NodeId{9}).empty());
}

BOOST_AUTO_TEST_CASE(unknown_senders_are_ignored) {
    FailureDetector d({NodeId{2}}, 5);
    BOOST_TEST(d.heard(NodeId{9}).empty());
    BOOST_TEST(d.health().size() == 1u);
}

BOOST_AUTO_TEST_CASE(health_reports_silence_in_ticks) {
    FailureDetector d({NodeId{2}}, 100);
    tick_n(d, 7);
    const auto h = d.health();
    BOOST_REQUIRE(h.size() == 1u);
    BOOST_TEST(h[0].last_heard_ticks == 7u);
    BOOST_TEST(!h[0].suspected);
}

// Issue contract: with three real nodes, SIGKILL one; the other two log
// `suspect` within suspect_after_ms + heartbeat_ms of the kill; restart it
// and they log `recover`.
BOOST_AUTO_TEST_CASE(killed_node_is_suspected_in_time_and_recovers_on_restart) {
    rl::test::ClusterSpec spec;
    spec.heartbeat_ms = 50;
    spec.suspect_after_ms = 300;
    rl::test::LocalCluster cluster(spec);
    cluster.start_all();
    for (auto id : cluster.ids()) BOOST_REQUIRE(cluster.wait_ready(id, 10s));
    // Both survivors must have heard node 3 before the kill counts.
    for (auto id : {1, 2}) {
        BOOST_REQUIRE(cluster.wait_event(id, "peer_accepted", {{"peer", "3"}}, 5s).has_value());
    }
    const std::size_t from1 = cluster.log_lines(1), from2 = cluster.log_lines(2);
    const auto killed_at = rl::test::now_ms();
    cluster.kill(3);
    const std::int64_t bound = spec.suspect_after_ms + spec.heartbeat_ms;
    for (auto [id, from] : {std::pair{1u, from1}, std::pair{2u, from2}}) {
        const auto line = cluster.wait_event(id, "suspect", {{"peer", "3"}}, 5s, from);
        BOOST_REQUIRE_MESSAGE(line.has_value(), "node " << id << " never suspected node 3");
        const auto after = rl::test::parse_ts_ms(line->get("ts")) - killed_at;
        BOOST_TEST_MESSAGE("node " << id << " suspected node 3 after " << after << " ms");
        BOOST_TEST(after <= bound, "node " << id << " took " << after << " ms, bound " << bound);
    }
    cluster.start(3);
    for (auto [id, from] : {std::pair{1u, from1}, std::pair{2u, from2}}) {
        BOOST_TEST(cluster.wait_event(id, "recover", {{"peer", "3"}}, 10s, from).has_value(),
                   "node " << id << " never logged recover for node 3");
    }
    const auto status = cluster.rlcat(1, {"--json", "-c", "status"});
    BOOST_TEST(status.output.find("\"suspected\":true") == std::string::npos);
}

// Peer links dial from the node's own configured address, so an iptables
// rule on a pair of addresses cuts exactly that pair of nodes.
BOOST_AUTO_TEST_CASE(peer_links_dial_from_the_nodes_own_address) {
    rl::test::ClusterSpec spec;
    spec.distinct_hosts = true;
    rl::test::LocalCluster cluster(spec);
    cluster.start_all();
    for (auto id : cluster.ids()) BOOST_REQUIRE(cluster.wait_ready(id, 10s));
    for (std::uint64_t id : cluster.ids()) {
        for (std::uint64_t peer : cluster.ids()) {
            if (peer == id) continue;
            const auto line = cluster.wait_event(id, "peer_accepted", {{"peer", std::to_string(peer)}}, 5s);
            BOOST_REQUIRE_MESSAGE(line.has_value(), "node " << id << " never accepted peer " << peer);
            const auto remote = line->get("remote");
            BOOST_TEST(remote.substr(0, remote.rfind(':')) == cluster.host(peer));
        }
    }
}

namespace {

// Index of the first line at or after `from` of `id`'s log with event=`event`
// and the given fields; npos if none.
std::size_t find_line(const rl::test::LocalCluster& c, std::uint64_t id, const std::string& event,
                      const std::map<std::string, std::string>& fields, std::size_t from) {
    const auto lines = c.log(id);
    for (std::size_t i = from; i < lines.size(); ++i) {
        if (lines[i].get("event") != event) continue;
        bool all = true;
        for (const auto& [k, v] : fields) all = all && lines[i].get(k) == v;
        if (all) return i;
    }
    return std::string::npos;
}

}  // namespace

// docs/design.md section 5, "Fast crash detection", wired through rlnode:
// with suspect_after_ms far above any election, SIGKILL the leader. Each
// survivor's redial is refused, it logs `suspect reason=refused`, and only
// then does a new leader follow, well before silence could have made anyone
// suspect anything. Both algorithms.
BOOST_AUTO_TEST_CASE(killed_leader_is_suspected_on_refusal_and_replaced_long_before_suspect_after) {
    for (const std::string election : {"bully", "ring"}) {
        BOOST_TEST_CONTEXT(election) {
            rl::test::ClusterSpec spec;
            spec.election = election;
            spec.heartbeat_ms = 50;
            spec.suspect_after_ms = 2000;
            spec.election_timeout_ms = 1000;
            rl::test::LocalCluster cluster(spec);
            cluster.start_all();
            // The first election waits out the start-up listening period (one suspect_after).
            std::optional<rl::test::LogLine> won;
            rl::test::wait_until(
                [&] {
                    for (auto id : cluster.ids()) {
                        if ((won = cluster.wait_event(id, "became_leader", {}, 0ms))) return true;
                    }
                    return false;
                },
                15s);
            BOOST_REQUIRE_MESSAGE(won.has_value(), "no first leader");
            const std::string leader = won->get("node");
            std::vector<std::uint64_t> survivors;
            for (auto id : cluster.ids()) {
                if (std::to_string(id) != leader) survivors.push_back(id);
            }
            for (auto id : survivors) {
                BOOST_REQUIRE(cluster.wait_event(id, "leader_changed", {{"leader", leader}}, 5s).has_value());
                BOOST_REQUIRE(cluster.wait_event(id, "peer_connected", {{"peer", leader}}, 5s).has_value());
            }
            std::map<std::uint64_t, std::size_t> from;
            for (auto id : survivors) from[id] = cluster.log_lines(id);
            const auto killed_at = rl::test::now_ms();
            cluster.kill(std::stoull(leader));
            // Generous, yet shorter than suspect_after_ms: silence alone
            // could not have made anyone suspect the leader by then.
            const auto deadline = std::chrono::milliseconds(spec.suspect_after_ms * 2 / 3);
            for (auto id : survivors) {
                BOOST_TEST_CONTEXT("node " << id) {
                    const auto suspect =
                        cluster.wait_event(id, "suspect", {{"peer", leader}, {"reason", "refused"}}, deadline, from[id]);
                    BOOST_REQUIRE_MESSAGE(suspect.has_value(), "never suspected the killed leader on a refusal");
                    BOOST_TEST(rl::test::parse_ts_ms(suspect->get("ts")) - killed_at < spec.suspect_after_ms);
                }
            }
            const auto left = deadline - std::chrono::milliseconds(rl::test::now_ms() - killed_at);
            std::optional<rl::test::LogLine> next;
            rl::test::wait_until(
                [&] {
                    for (auto id : survivors) {
                        if ((next = cluster.wait_event(id, "became_leader", {}, 0ms, from[id]))) return true;
                    }
                    return false;
                },
                std::max(left, std::chrono::milliseconds(1)));
            BOOST_REQUIRE_MESSAGE(next.has_value(), "no new leader within " << deadline.count() << " ms of the kill");
            const std::uint64_t winner = std::stoull(next->get("node"));
            // Order: the winner suspected the old leader on a refusal before it won.
            const std::size_t suspected_at =
                find_line(cluster, winner, "suspect", {{"peer", leader}, {"reason", "refused"}}, from[winner]);
            const std::size_t won_at = find_line(cluster, winner, "became_leader", {}, from[winner]);
            BOOST_TEST(suspected_at < won_at);
            BOOST_TEST_MESSAGE(election << ": new leader " << winner << " "
                                        << rl::test::parse_ts_ms(next->get("ts")) - killed_at << " ms after the kill");
        }
    }
}

