// mute_node PORT NODE_ID CLUSTER: a stand-in for a node too slow to answer.
// On 127.0.0.1:PORT it shakes hands with every client as node NODE_ID of
// CLUSTER (the Hello a real node sends, docs/design.md section 3) and then
// reads and drops whatever arrives, answering nothing; a peer's connection
// gets no Hello and is drained the same way. So a client's connection and
// handshake succeed and its request times out. Prints "listening" once it
// accepts. Test helper for test/tools/rlcluster_status_test.sh.
#include "transport/frame.hpp"

#include <utility>  // before Asio, whose awaitable.hpp uses std::exchange

#include <boost/asio.hpp>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string>
#include <thread>
#include <variant>

namespace asio = boost::asio;
using asio::ip::tcp;
namespace transport = rl::transport;

namespace {

constexpr std::uint32_t kFrameBytesMax = 1u << 20;

// Whether the first frame of a connection is a client's Hello. What comes
// after it in the same read is dropped with the rest.
bool client_hello(tcp::socket& s) {
    transport::FrameDecoder decoder(kFrameBytesMax);
    std::array<std::uint8_t, 4096> bytes{};
    for (;;) {
        const transport::FrameDecoder::Result r = decoder.next();
        if (const auto* m = std::get_if<transport::Message>(&r)) {
            const auto* hello = std::get_if<transport::Hello>(m);
            return hello != nullptr && hello->role == transport::Role::client;
        }
        if (std::holds_alternative<transport::DecodeFailure>(r)) return false;
        decoder.feed(std::span<const std::uint8_t>(bytes.data(), s.read_some(asio::buffer(bytes))));
    }
}

void serve(tcp::socket s, std::uint64_t node_id, const std::string& cluster) {
    try {
        if (client_hello(s)) {
            const auto frame = transport::encode_frame(
                transport::Hello{transport::Role::peer, rl::NodeId{node_id}, cluster, transport::kProtocolVersion},
                kFrameBytesMax);
            asio::write(s, asio::buffer(*frame));
        }
        std::array<char, 4096> sink{};
        boost::system::error_code ec;
        while (!ec) s.read_some(asio::buffer(sink), ec);
    } catch (const std::exception&) {
        // that connection ended; the others go on
    }
}

std::uint64_t number(const char* s, std::uint64_t max) {
    char* end = nullptr;
    const auto v = std::strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > max) throw std::invalid_argument(std::string("not a number 1..") + std::to_string(max) + ": " + s);
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: mute_node PORT NODE_ID CLUSTER\n";
        return 2;
    }
    try {
        const auto port = static_cast<std::uint16_t>(number(argv[1], 65535));
        const auto node_id = number(argv[2], UINT64_MAX);
        const std::string cluster = argv[3];
        asio::io_context io;
        tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), port});
        std::cout << "listening" << std::endl;
        for (;;) std::thread(serve, acceptor.accept(), node_id, cluster).detach();
    } catch (const std::exception& e) {
        std::cerr << "mute_node: " << e.what() << "\n";
        return 2;
    }
}
