#include "node/background_sync.hpp"

#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace rl::node {

struct BackgroundSync::Ring {
    io_uring ring{};
};

namespace {

std::error_code errno_code(int err) { return {err, std::generic_category()}; }

}  // namespace

BackgroundSync::BackgroundSync(boost::asio::io_context& io) : event_(io) {
    auto ring = std::make_unique<Ring>();
    // Two entries: one fdatasync in flight, and room to spare.
    if (const int rc = io_uring_queue_init(2, &ring->ring, 0); rc < 0) {
        unavailable_ = std::string("io_uring_queue_init: ") + std::strerror(-rc);
        return;
    }
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        unavailable_ = std::string("eventfd: ") + std::strerror(errno);
        io_uring_queue_exit(&ring->ring);
        return;
    }
    if (const int rc = io_uring_register_eventfd(&ring->ring, efd); rc < 0) {
        unavailable_ = std::string("io_uring_register_eventfd: ") + std::strerror(-rc);
        ::close(efd);
        io_uring_queue_exit(&ring->ring);
        return;
    }
    event_.assign(efd);
    ring_ = std::move(ring);
}

// io_uring_queue_exit waits for a request still in flight; its completion
// is dropped with the ring.
BackgroundSync::~BackgroundSync() {
    boost::system::error_code ignored;
    event_.close(ignored);
    if (ring_) io_uring_queue_exit(&ring_->ring);
}

bool BackgroundSync::start(int fd, std::function<void(std::error_code)> done) {
    if (!ring_ || fd < 0 || in_flight()) return false;
    fd_ = fd;
    if (!submit()) return false;
    done_ = std::move(done);
    wait_for_completion();
    return true;
}

bool BackgroundSync::submit() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
    if (sqe == nullptr) return false;
    io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
    return io_uring_submit(&ring_->ring) == 1;
}

// An interrupted fdatasync is run again, as PosixStorage does on EINTR.
bool BackgroundSync::resubmit() {
    if (!submit()) return false;
    wait_for_completion();
    return true;
}

void BackgroundSync::wait_for_completion() {
    event_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
        if (ec == boost::asio::error::operation_aborted) return;  // closing
        on_completion();
    });
}

void BackgroundSync::on_completion() {
    std::uint64_t count = 0;
    while (::read(event_.native_handle(), &count, sizeof count) < 0 && errno == EINTR) {
    }
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring_->ring, &cqe) != 0 || cqe == nullptr) {
        wait_for_completion();  // woken early: the completion is still to come
        return;
    }
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_->ring, cqe);
    if ((res == -EINTR || res == -EAGAIN) && resubmit()) return;
    auto done = std::exchange(done_, nullptr);
    done(res < 0 ? errno_code(-res) : std::error_code{});
}

}  // namespace rl::node
