#include "transport/connection.hpp"

namespace rl::transport {

Connection::Connection(tcp::socket socket, ConnectionLimits limits)
    : socket_(std::move(socket)), limits_(limits), decoder_(limits.frame_bytes_max) {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    auto ep = socket_.remote_endpoint(ec);
    remote_ = ec ? std::string("unknown") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

void Connection::start(Handlers handlers) {
    handlers_ = std::move(handlers);
    read_more();
}

void Connection::read_more() {
    if (!open_) return;
    socket_.async_read_some(boost::asio::buffer(read_buf_),
                            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                                self->on_read(ec, n);
                            });
}

void Connection::on_read(const boost::system::error_code& ec, std::size_t n) {
    if (!open_) return;
    if (ec) {
        if (auto cut = decoder_.finish()) {
            finish(to_string(cut->error), cut->detail);
        } else if (ec == boost::asio::error::eof) {
            finish("eof", "");
        } else {
            finish("io_error", ec.message());
        }
        return;
    }
    decoder_.feed({read_buf_.data(), n});
    if (drain_decoder()) read_more();
}

// Hands every complete message to the owner; false once the connection is
// closed (by a bad frame or by the owner).
bool Connection::drain_decoder() {
    while (open_) {
        auto result = decoder_.next();
        if (std::holds_alternative<FrameDecoder::NeedMore>(result)) return true;
        if (auto* failure = std::get_if<DecodeFailure>(&result)) {
            finish(to_string(failure->error), failure->detail);
            return false;
        }
        handlers_.on_message(std::get<Message>(std::move(result)));
    }
    return false;
}

bool Connection::send(const Message& m) {
    if (!open_ || closing_after_flush_) return false;
    auto frame = encode_frame(m, limits_.frame_bytes_max);
    if (!frame) return false;
    return send_frame(std::make_shared<const Bytes>(std::move(*frame)));
}

bool Connection::send_frame(std::shared_ptr<const Bytes> frame) {
    if (!open_ || closing_after_flush_) return false;
    if (const char* bound = bound_crossed(frame->size())) {
        refuse_full(bound);
        return false;
    }
    queued_bytes_ += frame->size();
    queue_.push_back(std::move(frame));
    if (!writing_) write_more();
    return true;
}

// The bound a frame of this size would cross, or nullptr if it fits. Frames
// in flight count: they hold memory until the kernel takes them.
const char* Connection::bound_crossed(std::size_t frame_bytes) const {
    if (queued_frames() >= limits_.queue_frames_max) return "frames";
    if (queued_bytes_ + frame_bytes > limits_.queue_bytes_max) return "bytes";
    return nullptr;
}

// A reader that stops reading fills the queue and then refuses frame after
// frame: the owner counts every one but logs only the first of an episode.
// The episode ends when the queue drains, that is when the socket took all
// it held, so there is at most one line per queue's worth of bytes written.
void Connection::refuse_full(const char* bound) {
    ++dropped_;
    const bool first = !full_;
    full_ = true;
    if (handlers_.on_queue_full) {
        handlers_.on_queue_full(QueueFull{bound, queued_frames(), queued_bytes_, dropped_, first});
    }
}

void Connection::write_more() {
    if (!open_) return;
    if (queue_.empty()) {
        full_ = false;
        if (closing_after_flush_) finish(pending_reason_, pending_detail_);
        return;
    }
    // Gather everything queued into one write: one syscall for a burst.
    in_flight_.assign(queue_.begin(), queue_.end());
    queue_.clear();
    std::vector<boost::asio::const_buffer> buffers;
    buffers.reserve(in_flight_.size());
    in_flight_bytes_ = 0;
    for (const auto& f : in_flight_) {
        buffers.emplace_back(boost::asio::buffer(*f));
        in_flight_bytes_ += f->size();
    }
    writing_ = true;
    boost::asio::async_write(socket_, buffers,
                             [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                                 self->writing_ = false;
                                 self->in_flight_.clear();
                                 self->queued_bytes_ -= self->in_flight_bytes_;
                                 self->in_flight_bytes_ = 0;
                                 if (!self->open_) return;
                                 if (ec) {
                                     self->finish("io_error", ec.message());
                                     return;
                                 }
                                 self->write_more();
                             });
}

void Connection::close(const std::string& reason, const std::string& detail) { finish(reason, detail); }

void Connection::close_after_flush(const std::string& reason, const std::string& detail) {
    if (!open_) return;
    closing_after_flush_ = true;
    pending_reason_ = reason;
    pending_detail_ = detail;
    if (!writing_) write_more();
}

void Connection::finish(const std::string& reason, const std::string& detail) {
    if (!open_) return;
    open_ = false;
    for (const auto& f : queue_) queued_bytes_ -= f->size();
    queue_.clear();
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    if (handlers_.on_close) {
        // Moved out so that it runs once even if it closes us again.
        auto on_close = std::move(handlers_.on_close);
        handlers_.on_close = nullptr;
        on_close(reason, detail);
    }
}

}  // namespace rl::transport
