// A blocking TCP socket for tests that must send bytes no well-behaved
// client would: garbage, lying headers, half frames.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace rl::test {

class RawSocket {
public:
    RawSocket(const std::string& host, std::uint16_t port);
    ~RawSocket();
    RawSocket(const RawSocket&) = delete;
    RawSocket& operator=(const RawSocket&) = delete;

    bool send(const std::vector<std::uint8_t>& bytes);
    // Waits for the peer to close: true once recv() returns 0 or a reset.
    // Data received meanwhile is appended to received().
    bool wait_closed(std::chrono::milliseconds timeout);
    // Reads whatever arrives within `timeout`.
    void read_for(std::chrono::milliseconds timeout);
    const std::vector<std::uint8_t>& received() const { return received_; }
    void close();

private:
    int fd_ = -1;
    std::vector<std::uint8_t> received_;
};

}  // namespace rl::test
