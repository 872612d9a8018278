// transport::Connection on a real loopback socket pair: the outbound queue
// is bounded, frames flow both ways, and close is reported once.
#define BOOST_TEST_MODULE connection
#include <utility>

#include "transport/connection.hpp"

#include <boost/test/unit_test.hpp>

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

}  // namespace

BOOST_AUTO_TEST_CASE(outbound_queue_is_bounded_when_the_peer_does_not_read) {
    Pair p(ConnectionLimits{64 * 1024, 16});
    std::vector<std::string> closes;
    p.a->start({[](Message&&) {}, [&](const std::string& r, const std::string&) { closes.push_back(r); }});
    // b never starts reading: a's socket buffer fills, then its queue.
    const Refuse big{std::string(60 * 1024, 'x')};
    std::size_t accepted = 0;
    for (int i = 0; i < 400; ++i) {
        accepted += p.a->send(big) ? 1 : 0;
        p.io.poll();
    }
    BOOST_TEST(accepted < 400u);
    BOOST_TEST(p.a->queued_frames() <= 16u);
    BOOST_TEST(p.a->open());
    BOOST_TEST(closes.empty());
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
