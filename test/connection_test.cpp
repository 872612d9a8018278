// transport::Connection on a real loopback socket pair: the outbound queue
// is bounded in frames and in bytes, frames flow both ways, and close is
// reported once. Then PeerLink on top of it: a full queue is logged and
// counted, and a link waiting out its backoff can be told to redial at once.
#define BOOST_TEST_MODULE connection
#include <utility>

#include "transport/connection.hpp"
#include "transport/peer_link.hpp"

#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

using namespace rl;
using namespace rl::transport;

namespace {

struct Pair {
    boost::asio::io_context io;
    std::shared_ptr<Connection> a, b;
    explicit Pair(ConnectionLimits limits) {
        tcp::acceptor acc(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
        tcp::socket client(io);
        client.connect(acc.local_endpoint());
        tcp::socket server = acc.accept();
        a = std::make_shared<Connection>(std::move(client), limits);
        b = std::make_shared<Connection>(std::move(server), limits);
    }
    // Runs handlers until `done` holds or 5 s pass.
    template <class F>
    bool run_until(F done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!done() && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(50));
        return done();
    }
};

const auto kLoopback = boost::asio::ip::make_address("127.0.0.1");

// A connection whose far end is a plain socket that reads only when told.
// Both socket buffers are a few KiB, so the first 60 KiB frame stays in
// flight until the far end reads: what the queue holds is exact.
struct IdleReader {
    boost::asio::io_context io;
    tcp::socket far{io};
    std::shared_ptr<Connection> conn;
    std::vector<QueueFull> reports;  // every refusal, in order

    explicit IdleReader(ConnectionLimits limits) {
        const tcp::endpoint any(kLoopback, 0);
        tcp::acceptor acc(io, any.protocol());
        acc.set_option(tcp::socket::receive_buffer_size(4096));  // inherited by the accepted socket
        acc.bind(any);
        acc.listen();
        tcp::socket near(io, any.protocol());
        near.set_option(tcp::socket::send_buffer_size(4096));
        near.connect(acc.local_endpoint());
        far = acc.accept();
        far.non_blocking(true);
        conn = std::make_shared<Connection>(std::move(near), limits);
        conn->start({[](Message&&) {}, nullptr, [this](const QueueFull& f) { reports.push_back(f); }});
    }
    // Sends `n` frames of about 60 KiB; returns how many were queued.
    std::size_t flood(int n) {
        const Refuse big{std::string(60 * 1024, 'x')};
        std::size_t accepted = 0;
        for (int i = 0; i < n; ++i) {
            accepted += conn->send(big) ? 1 : 0;
            io.poll();
        }
        return accepted;
    }
    // Reads until the connection has written everything it held.
    bool drain() {
        std::vector<std::uint8_t> buf(1 << 20);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (conn->queued_frames() > 0 && std::chrono::steady_clock::now() < deadline) {
            boost::system::error_code ec;
            far.read_some(boost::asio::buffer(buf), ec);
            io.poll();
        }
        return conn->queued_frames() == 0;
    }
    std::size_t reported_as_new() const {
        return static_cast<std::size_t>(
            std::count_if(reports.begin(), reports.end(), [](const QueueFull& f) { return f.first; }));
    }
};

// An endpoint on 127.0.0.1 where nothing listens (it was free a moment ago).
tcp::endpoint closed_endpoint(boost::asio::io_context& io) {
    tcp::acceptor probe(io, tcp::endpoint(kLoopback, 0));
    return probe.local_endpoint();
}

PeerLinkParams link_params(tcp::endpoint remote, ConnectionLimits limits) {
    return {.self = NodeId{1},
            .peer = NodeId{2},
            .cluster_name = "test",
            .local = tcp::endpoint(kLoopback, 0),
            .remote = remote,
            .limits = limits,
            .reconnect_ms_min = 4000,
            .reconnect_ms_max = 8000};
}

template <class F>
bool run_until(boost::asio::io_context& io, F done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(10));
    return done();
}

// The lines of a log file whose event is `event`.
std::vector<std::string> events(const std::filesystem::path& file, const std::string& event) {
    std::vector<std::string> found;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
        if (line.find(" event=" + event + " ") != std::string::npos) found.push_back(line);
    }
    return found;
}

}  // namespace

BOOST_AUTO_TEST_CASE(outbound_queue_is_bounded_in_frames_when_the_peer_does_not_read) {
    IdleReader r(ConnectionLimits{64 * 1024, 16, 1ull << 30});
    BOOST_TEST(r.flood(400) == 16u, "one frame in flight and 15 waiting");
    BOOST_TEST(r.conn->queued_frames() == 16u);
    BOOST_TEST(r.conn->open(), "a full queue drops frames, it does not close the connection");
    BOOST_TEST(r.conn->dropped_frames() == 384u);
    BOOST_REQUIRE(r.reports.size() == 384u);
    BOOST_TEST(r.reports.front().bound == std::string("frames"));
    BOOST_TEST(r.reports.front().queued_frames == 16u);
    BOOST_TEST(r.reports.back().dropped == 384u);
    BOOST_TEST(r.reported_as_new() == 1u, "a full queue is news once, not once per frame");
}

BOOST_AUTO_TEST_CASE(outbound_queue_is_bounded_in_bytes_when_the_peer_does_not_read) {
    const std::uint64_t bytes_max = 256 * 1024;
    IdleReader r(ConnectionLimits{64 * 1024, 4096, bytes_max});
    // Four frames of 61461 bytes fit in 256 KiB, a fifth would not.
    BOOST_TEST(r.flood(400) == 4u);
    BOOST_TEST(r.conn->queued_bytes() == 4 * 61461u);
    BOOST_TEST(r.conn->open());
    BOOST_TEST(r.conn->dropped_frames() == 396u);
    BOOST_REQUIRE(r.reports.size() == 396u);
    BOOST_TEST(r.reports.front().bound == std::string("bytes"));
    BOOST_TEST(r.reports.front().queued_bytes == 4 * 61461u);
    BOOST_TEST(r.reported_as_new() == 1u);
}

BOOST_AUTO_TEST_CASE(a_full_queue_that_drained_is_news_again_when_it_fills_again) {
    IdleReader r(ConnectionLimits{64 * 1024, 4096, 256 * 1024});
    BOOST_REQUIRE(r.flood(400) == 4u);
    BOOST_REQUIRE(r.reported_as_new() == 1u);
    BOOST_REQUIRE(r.drain());
    BOOST_TEST(r.conn->queued_bytes() == 0u);
    BOOST_TEST(r.flood(400) == 4u);
    BOOST_TEST(r.reported_as_new() == 2u);
    BOOST_TEST(r.conn->dropped_frames() == 2 * 396u);
}

BOOST_AUTO_TEST_CASE(messages_flow_both_ways_in_order) {
    Pair p(ConnectionLimits{});
    std::vector<std::uint64_t> got_b, got_a;
    p.a->start({[&](Message&& m) { got_a.push_back(std::get<PingReply>(m).request_id); }, nullptr});
    p.b->start({[&](Message&& m) {
                    const auto id = std::get<PingRequest>(m).request_id;
                    got_b.push_back(id);
                    p.b->send(PingReply{id, kNoNode});
                },
                nullptr});
    for (std::uint64_t i = 1; i <= 500; ++i) BOOST_REQUIRE(p.a->send(PingRequest{i}));
    BOOST_REQUIRE(p.run_until([&] { return got_a.size() == 500u; }));
    for (std::uint64_t i = 0; i < 500; ++i) BOOST_TEST(got_a[i] == i + 1);
    BOOST_TEST(got_b == got_a);
}

BOOST_AUTO_TEST_CASE(close_is_reported_once_on_both_sides) {
    Pair p(ConnectionLimits{});
    int closes_a = 0, closes_b = 0;
    std::string reason_b;
    p.a->start({[](Message&&) {}, [&](const std::string&, const std::string&) { ++closes_a; }});
    p.b->start({[](Message&&) {}, [&](const std::string& r, const std::string&) {
                    ++closes_b;
                    reason_b = r;
                }});
    p.a->close("closed");
    p.a->close("closed");
    BOOST_REQUIRE(p.run_until([&] { return closes_b == 1; }));
    BOOST_TEST(closes_a == 1);
    BOOST_TEST(closes_b == 1);
    BOOST_TEST(reason_b == "eof");
    BOOST_TEST(!p.a->send(PingRequest{1}));
}

BOOST_AUTO_TEST_CASE(a_peer_link_whose_queue_is_full_drops_counts_and_logs_once) {
    boost::asio::io_context io;
    tcp::acceptor acc(io, tcp::endpoint(kLoopback, 0).protocol());
    acc.set_option(tcp::socket::receive_buffer_size(4096));  // a small window for the idle far end
    acc.bind(tcp::endpoint(kLoopback, 0));
    acc.listen();
    tcp::socket far(io);
    acc.async_accept(far, [](const boost::system::error_code&) {});  // accepted, never read
    const auto log_file = std::filesystem::temp_directory_path() / ("rl-peer-queue-" + std::to_string(::getpid()));
    std::filesystem::remove(log_file);
    Logger log("1");
    log.also_to_file(log_file.string());
    auto link = std::make_shared<PeerLink>(io, link_params(acc.local_endpoint(), {64 * 1024, 4096, 256 * 1024}), log);
    link->start();
    BOOST_REQUIRE(run_until(io, [&] { return link->connected() && far.is_open(); }));
    const Refuse big{std::string(60 * 1024, 'x')};
    std::size_t refused = 0;
    for (int i = 0; i < 400; ++i) {
        refused += link->send(big) ? 0 : 1;
        io.poll();
    }
    BOOST_TEST(refused > 0u);
    BOOST_TEST(link->stats().queue_full == refused);
    BOOST_TEST(link->stats().dropped == refused);
    BOOST_TEST(link->connected(), "a full queue drops frames, it does not close the link");
    // One line when the queue first fills; another only after it drained
    // (a write took everything it held), never one per frame.
    const auto lines = events(log_file, "peer_queue_full");
    BOOST_REQUIRE(!lines.empty());
    BOOST_TEST(lines.size() < refused);
    BOOST_TEST(lines[0].find(" peer=2 ") != std::string::npos);
    BOOST_TEST(lines[0].find(" bound=bytes ") != std::string::npos);
    link->stop();
    std::filesystem::remove(log_file);
}

BOOST_AUTO_TEST_CASE(redial_now_cuts_a_peer_links_backoff_short) {
    boost::asio::io_context io;
    const auto remote = closed_endpoint(io);
    Logger log("1", LogLevel::warn);
    auto link = std::make_shared<PeerLink>(io, link_params(remote, ConnectionLimits{}), log);
    link->start();
    // The dial is refused at once; the link now waits 2 to 4 s.
    BOOST_REQUIRE(run_until(io, [&] { return link->stats().dial_failures == 1u; }));
    const auto failed_at = std::chrono::steady_clock::now();
    tcp::acceptor acc(io);
    acc.open(remote.protocol());
    acc.set_option(tcp::acceptor::reuse_address(true));
    acc.bind(remote);
    acc.listen();
    BOOST_TEST(link->redial_now());
    BOOST_REQUIRE(run_until(io, [&] { return link->connected(); }));
    const auto took = std::chrono::steady_clock::now() - failed_at;
    BOOST_TEST(took < std::chrono::milliseconds(1000),
               "connected " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                            << " ms after the failed dial; the backoff is at least 2000 ms");
    BOOST_TEST(link->stats().redials == 1u);
    BOOST_TEST(!link->redial_now(), "a link that is up has nothing to redial");
    link->stop();
}
