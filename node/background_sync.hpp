// The WAL's fdatasync off the node's thread (docs/design.md section 6.6):
// submitted to io_uring, whose kernel workers run it, and completed on the
// node's io_context through an eventfd that Asio watches. The node's one
// thread keeps serving peers and clients while the disk works, and still
// runs every line of node logic: nothing here is shared with another
// thread. Where io_uring cannot be set up (an old kernel, a sandbox that
// forbids it) the node says so at start and syncs on its thread as before.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>  // before Asio, whose awaitable.hpp uses std::exchange

#include <boost/asio.hpp>

namespace rl::node {

class BackgroundSync {
public:
    explicit BackgroundSync(boost::asio::io_context& io);
    ~BackgroundSync();
    BackgroundSync(const BackgroundSync&) = delete;
    BackgroundSync& operator=(const BackgroundSync&) = delete;

    // Empty when io_uring works; otherwise why not.
    const std::string& unavailable() const { return unavailable_; }
    bool in_flight() const { return static_cast<bool>(done_); }

    // Starts fdatasync(fd); `done` runs later on the io_context with its
    // result. One at a time. False (and `done` never runs) when io_uring is
    // unavailable or refused the request: the caller syncs itself.
    bool start(int fd, std::function<void(std::error_code)> done);

private:
    struct Ring;
    bool submit();
    bool resubmit();
    void wait_for_completion();
    void on_completion();

    std::unique_ptr<Ring> ring_;
    boost::asio::posix::stream_descriptor event_;
    std::function<void(std::error_code)> done_;
    int fd_ = -1;
    std::string unavailable_;
};

}  // namespace rl::node
