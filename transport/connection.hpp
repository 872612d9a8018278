// One TCP connection carrying frames both ways: a single read loop that feeds
// the FrameDecoder, and a bounded write queue with one async_write in flight
// (gathering every queued frame into it). Anything malformed closes only this
// connection; the owner learns why through on_close, exactly once.
#pragma once

#include "transport/frame.hpp"

#include <boost/asio.hpp>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <string>

namespace rl::transport {

using boost::asio::ip::tcp;

struct ConnectionLimits {
    std::uint32_t frame_bytes_max = 4 * 1024 * 1024;
    std::uint32_t queue_frames_max = 4096;
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    struct Handlers {
        // A decoded message; the connection may be closed from inside.
        std::function<void(Message&&)> on_message;
        // Called once when the connection ends: `reason` is a short code
        // (eof, io_error, closed, queue_full or a FrameError name),
        // `detail` one line for the log.
        std::function<void(const std::string& reason, const std::string& detail)> on_close;
    };

    Connection(tcp::socket socket, ConnectionLimits limits);

    // Starts reading; handlers are called from the socket's executor.
    void start(Handlers handlers);
    // Queues a message. False (and the message is dropped) when the
    // connection is closed or the queue is full, or the message is too
    // large for one frame.
    bool send(const Message& m);
    // Queues an already-encoded frame (to encode a broadcast once).
    bool send_frame(std::shared_ptr<const Bytes> frame);
    // Closes now; queued frames are dropped. on_close reports `reason`.
    void close(const std::string& reason, const std::string& detail = {});
    // Closes after the queued frames are written (for a last Refuse).
    void close_after_flush(const std::string& reason, const std::string& detail = {});

    bool open() const { return open_; }
    std::string remote() const { return remote_; }
    std::size_t queued_frames() const { return queue_.size(); }

private:
    void read_more();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    bool drain_decoder();
    void write_more();
    void finish(const std::string& reason, const std::string& detail);

    tcp::socket socket_;
    ConnectionLimits limits_;
    FrameDecoder decoder_;
    Handlers handlers_;
    std::array<std::uint8_t, 64 * 1024> read_buf_{};
    std::deque<std::shared_ptr<const Bytes>> queue_;
    std::vector<std::shared_ptr<const Bytes>> in_flight_;
    bool writing_ = false;
    bool open_ = true;
    bool closing_after_flush_ = false;
    std::string pending_reason_;
    std::string pending_detail_;
    std::string remote_;
};

}  // namespace rl::transport
