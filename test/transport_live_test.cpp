// Bad input against a live rlnode: each malformed frame closes only the
// connection that sent it, is logged with its reason, and the node goes on
// answering everyone else with bounded memory.
#define BOOST_TEST_MODULE transport_live
#include "test/support/cluster.hpp"
#include "test/support/raw_socket.hpp"
#include "tools/client.hpp"
#include "config/crc32c.hpp"
#include "transport/frame.hpp"

#include <boost/test/unit_test.hpp>

#include <signal.h>

using namespace rl;
using namespace rl::transport;
using namespace std::chrono_literals;
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

BOOST_AUTO_TEST_CASE(memory_stays_bounded_under_a_flood_of_lying_frames) {
    const pid_t pid = cluster.process(1)->pid();
    expect_answers_ping();
    const auto before = rl::test::rss_kib(pid);
    // Each claims up to 4 GiB, or holds a nearly-maximal half frame, or a
    // string that says it is 2^60 bytes long.
    Bytes lying_string = {1, 0, 0, 0, 0, 0, 0, 0, 0x10};
    for (int round = 0; round < 40; ++round) {
        std::vector<std::unique_ptr<RawSocket>> conns;
        for (int i = 0; i < 10; ++i) {
            auto s = client();
            if (i % 3 == 0) s->send(with_header(0xFFFFFFF0u, 1, PingRequest::kWireType, {}));
            if (i % 3 == 1) s->send(with_header(65000, 1, PingRequest::kWireType, Bytes(30000, 7)));
            if (i % 3 == 2) s->send(with_header(8 + 9, 1, Refuse::kWireType, lying_string));
            conns.push_back(std::move(s));
        }
    }
    expect_answers_ping();
    const auto after = rl::test::rss_kib(pid);
    BOOST_TEST_MESSAGE("rss before " << before << " KiB, after " << after << " KiB");
    BOOST_TEST(after < before + 64 * 1024, "rss grew from " << before << " to " << after << " KiB");
}

BOOST_AUTO_TEST_CASE(sigterm_stops_the_node_within_one_second) {
    auto* p = cluster.process(1);
    const auto t0 = std::chrono::steady_clock::now();
    p->signal(SIGTERM);
    const auto code = p->wait(5s);
    const auto took = std::chrono::steady_clock::now() - t0;
    BOOST_REQUIRE(code.has_value());
    BOOST_TEST(*code == 0);
    BOOST_TEST(took < 1s, "shutdown took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    BOOST_TEST(cluster.wait_event(1, "stopped", {}, 1s).has_value());
}

BOOST_AUTO_TEST_CASE(sigint_stops_the_node_cleanly) {
    auto* p = cluster.process(1);
    p->signal(SIGINT);
    const auto code = p->wait(5s);
    BOOST_REQUIRE(code.has_value());
    BOOST_TEST(*code == 0);
}

BOOST_AUTO_TEST_SUITE_END()
