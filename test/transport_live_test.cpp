// Bad input against a live rlnode: each malformed frame closes only the
// connection that sent it, is logged with its reason, and the node goes on
// answering everyone else with bounded memory. Then the peer side: inbound
// peer connections are bounded, a restarted peer is redialed at once, and a
// signal stops the node without delay.
#define BOOST_TEST_MODULE transport_live
#include "test/support/cluster.hpp"
#include "test/support/raw_socket.hpp"
#include "tools/client.hpp"
#include "config/crc32c.hpp"
#include "transport/frame.hpp"

#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <algorithm>

using namespace rl;
using namespace rl::transport;
using namespace std::chrono_literals;
using rl::test::ClusterSpec;
using rl::test::LocalCluster;
using rl::test::RawSocket;

namespace {

// One node, small frames so that "the maximum" is cheap to reach.
struct LiveNode {
    LocalCluster cluster{rl::test::ClusterSpec{
        .shards = {{1}},
        .extra_cluster_lines =
            "frame_bytes_max = 65536\nhandshake_timeout_ms = 400\ndedup_window = 4\ndedup_clients_max = 100\n"}};
    LiveNode() {
        cluster.start(1);
        BOOST_REQUIRE(cluster.wait_ready(1, 10s));
    }
    std::uint16_t port() const { return static_cast<std::uint16_t>(std::stoi(cluster.endpoint(1).substr(10))); }
    std::unique_ptr<RawSocket> raw() { return std::make_unique<RawSocket>("127.0.0.1", port()); }
    std::unique_ptr<RawSocket> client() {
        auto s = raw();
        s->send(*encode_frame(Hello{Role::client, kNoNode, "test", 1}, 65536));
        return s;
    }
    void expect_answers_ping() {
        rl::tools::Client c("test");
        const auto deadline = rl::tools::Clock::now() + 5s;
        c.connect(cluster.endpoint(1), deadline);
        const auto reply = c.call(PingRequest{}, deadline);
        BOOST_TEST(std::holds_alternative<PingReply>(reply));
    }
    // Sends `bytes` after a good Hello, expects the node to hang up, log
    // `reason`, and keep serving.
    void expect_closed_with(const Bytes& bytes, const std::string& reason) {
        const auto from = cluster.log_lines(1);
        auto s = client();
        s->send(bytes);
        BOOST_TEST(s->wait_closed(5s), "node did not close the connection for " << reason);
        BOOST_TEST(cluster.wait_event(1, "connection_closed", {{"reason", reason}}, 5s, from).has_value(),
                   "no connection_closed reason=" << reason << " in the log");
        expect_answers_ping();
    }
};

Bytes frame(const Message& m) { return *encode_frame(m, 65536); }

Bytes with_header(std::uint32_t length, std::uint8_t version, std::uint8_t type, const Bytes& payload) {
    Bytes f = {static_cast<std::uint8_t>(length >> 24), static_cast<std::uint8_t>(length >> 16),
               static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length), 0x52, 0x4C, version, type};
    const auto crc = crc32c(payload);
    for (int shift : {24, 16, 8, 0}) f.push_back(static_cast<std::uint8_t>(crc >> shift));
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

// A PortableBinary payload (little-endian marker, then the size tag) of a
// string that says it is `length` bytes long and holds none of them.
Bytes string_claiming(std::uint64_t length) {
    Bytes p = {1};
    for (int shift = 0; shift < 64; shift += 8) p.push_back(static_cast<std::uint8_t>(length >> shift));
    return p;
}

// Lines of node 1's log from line `from` on whose event is `event`.
std::size_t count_events(const LocalCluster& cluster, const std::string& event, std::size_t from) {
    const auto lines = cluster.log(1);
    std::size_t n = 0;
    for (std::size_t i = from; i < lines.size(); ++i) n += lines[i].get("event") == event ? 1 : 0;
    return n;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(live, LiveNode)

BOOST_AUTO_TEST_CASE(garbage_bytes_close_only_that_connection) {
    const std::string junk = "GET / HTTP/1.1\r\nHost: ringleader\r\n\r\n";
    expect_closed_with(Bytes(junk.begin(), junk.end()), "bad_magic");
}

BOOST_AUTO_TEST_CASE(huge_length_closes_the_connection_without_reading_the_body) {
    expect_closed_with(with_header(0xFFFFFFF0u, 1, PingRequest::kWireType, {}), "bad_length");
}

BOOST_AUTO_TEST_CASE(bad_crc_closes_the_connection) {
    Bytes f = frame(PingRequest{1});
    f.back() ^= 0xFF;
    expect_closed_with(f, "bad_crc");
}

BOOST_AUTO_TEST_CASE(unknown_type_closes_the_connection) {
    expect_closed_with(with_header(9, 1, 251, {0}), "unknown_type");
}

BOOST_AUTO_TEST_CASE(bad_version_byte_closes_the_connection) {
    Bytes f = frame(PingRequest{1});
    f[6] = 9;
    expect_closed_with(f, "bad_version");
}

BOOST_AUTO_TEST_CASE(undecodable_payload_closes_the_connection) {
    expect_closed_with(with_header(8 + 3, 1, StatusRequest::kWireType, {1, 2, 3}), "bad_payload");
}

BOOST_AUTO_TEST_CASE(truncated_frame_then_hangup_is_logged_and_survived) {
    const auto from = cluster.log_lines(1);
    {
        auto s = client();
        Bytes f = frame(StatusRequest{1});
        f.resize(f.size() - 2);
        s->send(f);
        s->read_for(100ms);  // let the node read the partial frame
    }
    BOOST_TEST(cluster.wait_event(1, "connection_closed", {{"reason", "truncated"}}, 5s, from).has_value());
    expect_answers_ping();
}

BOOST_AUTO_TEST_CASE(wrong_cluster_name_is_refused_with_a_reason) {
    const auto from = cluster.log_lines(1);
    auto s = raw();
    s->send(frame(Hello{Role::peer, NodeId{7}, "other", 1}));
    BOOST_TEST(s->wait_closed(5s));
    FrameDecoder d(65536);
    d.feed(s->received());
    auto r = d.next();
    BOOST_REQUIRE(std::holds_alternative<Message>(r));
    const auto& refuse = std::get<Refuse>(std::get<Message>(r));
    BOOST_TEST(refuse.reason.find("cluster \"other\"") != std::string::npos);
    const auto line = cluster.wait_event(1, "connection_refused", {}, 5s, from);
    BOOST_REQUIRE(line.has_value());
    BOOST_TEST(line->get("reason").find("other") != std::string::npos);
    expect_answers_ping();
}

BOOST_AUTO_TEST_CASE(wrong_protocol_version_in_hello_is_refused) {
    const auto from = cluster.log_lines(1);
    auto s = raw();
    s->send(frame(Hello{Role::client, kNoNode, "test", 2}));
    BOOST_TEST(s->wait_closed(5s));
    const auto line = cluster.wait_event(1, "connection_refused", {}, 5s, from);
    BOOST_REQUIRE(line.has_value());
    BOOST_TEST(line->get("reason").find("protocol version 2") != std::string::npos);
    expect_answers_ping();
}

BOOST_AUTO_TEST_CASE(request_before_hello_is_refused) {
    auto s = raw();
    s->send(frame(PingRequest{1}));
    BOOST_TEST(s->wait_closed(5s));
    expect_answers_ping();
}

BOOST_AUTO_TEST_CASE(silent_connection_is_closed_after_the_handshake_timeout) {
    auto s = raw();
    BOOST_TEST(s->wait_closed(5s));
    expect_answers_ping();
}

BOOST_AUTO_TEST_CASE(a_peer_hello_from_an_unknown_node_is_refused) {
    auto s = raw();
    s->send(frame(Hello{Role::peer, NodeId{99}, "test", 1}));
    BOOST_TEST(s->wait_closed(5s));
    expect_answers_ping();
}

// The peak, not the resident size afterwards: a lie that made the node
// allocate what it claims would be freed again when its connection closed,
// but by then it has raised the peak (VmHWM). Each lie claims at least
// 256 MiB, four times the growth allowed, so one such allocation fails the
// test; the rounds stop early once it has failed.
BOOST_AUTO_TEST_CASE(memory_stays_bounded_under_a_flood_of_lying_frames) {
    const pid_t pid = cluster.process(1)->pid();
    expect_answers_ping();
    constexpr std::uint32_t kClaimBytes = 256u << 20;
    constexpr std::uint64_t kGrowthMaxKib = 64 * 1024;
    const std::vector<Bytes> lies = {
        with_header(0xFFFFFFF0u, 1, PingRequest::kWireType, {}),  // a 4 GiB frame
        with_header(kClaimBytes, 1, PingRequest::kWireType, {}),  // a 256 MiB frame
        // Half of a nearly maximal frame; the node waits for the rest until
        // the hang-up. Within frame_bytes_max, so it may hold this much.
        with_header(65000, 1, PingRequest::kWireType, Bytes(30000, 7)),
        with_header(8 + 9, 1, Refuse::kWireType, string_claiming(kClaimBytes)),  // a 256 MiB string in 9 bytes
        with_header(8 + 9, 1, Refuse::kWireType, string_claiming(1ull << 60)),
    };
    const bool reset = rl::test::reset_peak_rss(pid);
    const auto before = rl::test::peak_rss_kib(pid);
    BOOST_REQUIRE(before > 0u);
    const auto from = cluster.log_lines(1);
    std::size_t sent = 0;
    std::uint64_t peak = before;
    for (int round = 0; round < 40 && peak < before + kGrowthMaxKib; ++round) {
        std::vector<std::unique_ptr<RawSocket>> conns;
        for (std::size_t i = 0; i < 10; ++i, ++sent) {
            conns.push_back(client());
            conns.back()->send(lies[sent % lies.size()]);
        }
        // Those the node can judge it closes; the half frames it has read
        // before it sees the hang-up below.
        for (std::size_t i = 0; i < conns.size(); ++i) {
            if ((sent - conns.size() + i) % lies.size() != 2) BOOST_TEST(conns[i]->wait_closed(5s));
        }
        conns.clear();
        peak = rl::test::peak_rss_kib(pid);
    }
    BOOST_TEST(rl::test::wait_until([&] { return count_events(cluster, "connection_closed", from) == sent; }, 10s),
               "not every lying connection was closed with a reason");
    expect_answers_ping();
    peak = rl::test::peak_rss_kib(pid);
    BOOST_TEST_MESSAGE("peak rss before " << before << " KiB" << (reset ? " (reset)" : "") << ", after " << sent
                                          << " lies " << peak << " KiB");
    BOOST_TEST(peak < before + kGrowthMaxKib, "peak rss grew from " << before << " to " << peak << " KiB");
}

// Node::stop() closes every socket and timer and the process exits once
// their handlers have run: nothing waits out a fixed grace. The old shutdown
// timer made each stop take its full 300 ms; the median of five must now stay
// under half that, and every stop within the promised second.
BOOST_AUTO_TEST_CASE(sigterm_stops_the_node_without_waiting_out_a_grace) {
    std::vector<std::int64_t> took_ms;
    for (int i = 0; i < 5; ++i) {
        if (i > 0) {
            cluster.start(1);
            BOOST_REQUIRE(cluster.wait_ready(1, 10s));
        }
        const auto from = cluster.log_lines(1);
        auto* p = cluster.process(1);
        const auto t0 = std::chrono::steady_clock::now();
        p->signal(SIGTERM);
        const auto code = p->wait(5s);
        took_ms.push_back(
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
        BOOST_REQUIRE(code.has_value());
        BOOST_TEST(*code == 0);
        BOOST_TEST(took_ms.back() < 1000, "shutdown took " << took_ms.back() << " ms");
        BOOST_TEST(cluster.wait_event(1, "stopped", {}, 1s, from).has_value());
    }
    std::sort(took_ms.begin(), took_ms.end());
    BOOST_TEST_MESSAGE("stop took " << took_ms.front() << " to " << took_ms.back() << " ms, median " << took_ms[2]);
    BOOST_TEST(took_ms[2] < 150, "median stop " << took_ms[2] << " ms");
}

BOOST_AUTO_TEST_CASE(sigint_stops_the_node_cleanly) {
    auto* p = cluster.process(1);
    p->signal(SIGINT);
    const auto code = p->wait(5s);
    BOOST_REQUIRE(code.has_value());
    BOOST_TEST(*code == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(peers)

// Node 2 is configured, so a Hello in its name is valid, but never started:
// raw sockets speak for it, as many as the test likes.
BOOST_AUTO_TEST_CASE(inbound_peer_connections_past_the_limit_are_refused_and_a_freed_slot_is_reused) {
    LocalCluster cluster{ClusterSpec{.shards = {{1}, {2}}, .extra_cluster_lines = "peer_connections_max = 2\n"}};
    cluster.start(1);
    BOOST_REQUIRE(cluster.wait_ready(1, 10s));
    const auto port = static_cast<std::uint16_t>(std::stoi(cluster.endpoint(1).substr(10)));
    const auto peer = [&] {
        auto s = std::make_unique<RawSocket>("127.0.0.1", port);
        s->send(frame(Hello{Role::peer, NodeId{2}, "test", 1}));
        return s;
    };
    const auto from = cluster.log_lines(1);
    auto first = peer();
    BOOST_REQUIRE(cluster.wait_event(1, "peer_accepted", {{"peers", "1"}}, 5s, from).has_value());
    auto second = peer();
    BOOST_REQUIRE(cluster.wait_event(1, "peer_accepted", {{"peers", "2"}}, 5s, from).has_value());

    auto third = peer();
    BOOST_TEST(third->wait_closed(5s));
    FrameDecoder d(65536);
    d.feed(third->received());
    auto r = d.next();
    BOOST_REQUIRE(std::holds_alternative<Message>(r));
    BOOST_TEST(std::get<Refuse>(std::get<Message>(r)).reason.find("too many peer connections") != std::string::npos);
    const auto refused = cluster.wait_event(1, "connection_refused", {}, 5s, from);
    BOOST_REQUIRE(refused.has_value());
    BOOST_TEST(refused->get("reason").find("too many peer connections") != std::string::npos);
    BOOST_TEST(cluster.wait_ready(1, 5s), "the node stopped serving");
    BOOST_TEST(!first->wait_closed(100ms), "a peer within the limit was dropped");

    // One leaves: its slot is free for the next.
    const auto before_close = cluster.log_lines(1);
    first->close();
    BOOST_REQUIRE(cluster.wait_event(1, "peer_closed", {{"peers", "1"}}, 5s, before_close).has_value());
    auto fourth = peer();
    BOOST_TEST(cluster.wait_event(1, "peer_accepted", {{"peers", "2"}}, 5s, before_close).has_value());
    BOOST_TEST(!fourth->wait_closed(200ms), "the freed slot was not given to the next peer");
}

// With a backoff of 2 to 8 s, a node whose link to a peer just dropped
// would leave it down for at least 2 s after the peer is back; the peer's
// own dial in tells it to redial at once.
BOOST_AUTO_TEST_CASE(a_restarted_peer_is_redialed_at_once_not_after_the_backoff) {
    LocalCluster cluster{ClusterSpec{.shards = {{1, 2}},
                                     .extra_cluster_lines = "reconnect_ms_min = 4000\nreconnect_ms_max = 8000\n"}};
    cluster.start_all();
    for (auto id : cluster.ids()) BOOST_REQUIRE(cluster.wait_ready(id, 10s));
    BOOST_REQUIRE(cluster.wait_event(1, "peer_connected", {{"peer", "2"}}, 10s).has_value());
    const auto from = cluster.log_lines(1);
    cluster.kill(2);
    // The first backoff after a drop is reconnect_ms_min with jitter: 2 to 4 s.
    BOOST_REQUIRE(cluster.wait_event(1, "peer_disconnected", {{"peer", "2"}}, 5s, from).has_value());
    const auto restarted_at = rl::test::now_ms();
    cluster.start(2);
    const auto line = cluster.wait_event(1, "peer_connected", {{"peer", "2"}}, 10s, from);
    BOOST_REQUIRE(line.has_value());
    const auto after_ms = rl::test::parse_ts_ms(line->get("ts")) - restarted_at;
    BOOST_TEST_MESSAGE("node 1 reconnected to node 2 " << after_ms << " ms after its restart");
    BOOST_TEST(after_ms < 1000,
               "reconnected " << after_ms << " ms after the restart; the backoff alone is 2000 ms or more");
    BOOST_TEST(cluster.wait_event(1, "peer_redial", {{"peer", "2"}}, 1s, from).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
