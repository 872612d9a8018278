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
