// One TCP connection carrying frames both ways: a single read loop that feeds
// the FrameDecoder, and a write queue with one async_write in flight
// (gathering every queued frame into it). The frames not yet written, queued
// or in flight, are bounded in count and in bytes (docs/design.md section 9,
// habit 7); a send past either bound is refused and reported to the owner.
// Anything malformed closes only this connection; the owner learns why
// through on_close, exactly once.
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
    std::uint32_t frame_bytes_max = 4 * 1024 * 1024;  // largest frame read or written
    std::uint32_t queue_frames_max = 4096;            // frames not yet written
    std::uint64_t queue_bytes_max = 64ull << 20;      // their bytes
};

// A send refused because the outbound queue is full; the connection stays
// open and the frame is dropped.
struct QueueFull {
    const char* bound = "";           // "frames" or "bytes": the bound the frame would cross
    std::size_t queued_frames = 0;    // frames not yet written when it was refused
    std::uint64_t queued_bytes = 0;   // and their bytes
    std::uint64_t dropped = 0;        // sends refused on this connection so far, this one included
    bool first = false;               // first refusal since the queue last drained: log this one

    // Adds the bound and the queue's state to a log line.
    template <class Line>
    Line& describe(Line& line) const {
        return line.kv("bound", bound).kv("frames", queued_frames).kv("bytes", queued_bytes).kv("dropped_so_far", dropped);
    }
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    struct Handlers {
        // A decoded message; the connection may be closed from inside.
        std::function<void(Message&&)> on_message;
        // Called once when the connection ends: `reason` is a short code
        // (eof, io_error, a FrameError name, or whatever the owner passed
        // to close()), `detail` one line for the log.
        std::function<void(const std::string& reason, const std::string& detail)> on_close;
        // Called for every send refused by a full queue (optional).
        std::function<void(const QueueFull&)> on_queue_full;
    };

    Connection(tcp::socket socket, ConnectionLimits limits);

    // Starts reading; handlers are called from the socket's executor.
    void start(Handlers handlers);
    // Queues a message. False (and the message is dropped) when the
    // connection is closed, the queue is full (on_queue_full is told), or
    // the message is too large for one frame.
    bool send(const Message& m);
    // Queues an already-encoded frame (to encode a broadcast once).
    bool send_frame(std::shared_ptr<const Bytes> frame);
    // Closes now; queued frames are dropped. on_close reports `reason`.
    void close(const std::string& reason, const std::string& detail = {});
    // Closes after the queued frames are written (for a last Refuse).
    void close_after_flush(const std::string& reason, const std::string& detail = {});

    bool open() const { return open_; }
    std::string remote() const { return remote_; }
    // Frames not yet written (queued or in the write in flight), their
    // bytes, and the sends refused so far for a full queue.
    std::size_t queued_frames() const { return queue_.size() + in_flight_.size(); }
    std::uint64_t queued_bytes() const { return queued_bytes_; }
    std::uint64_t dropped_frames() const { return dropped_; }

private:
    void read_more();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    bool drain_decoder();
    const char* bound_crossed(std::size_t frame_bytes) const;
    void refuse_full(const char* bound);
    void write_more();
    void finish(const std::string& reason, const std::string& detail);

    tcp::socket socket_;
    ConnectionLimits limits_;
    FrameDecoder decoder_;
    Handlers handlers_;
    std::array<std::uint8_t, 64 * 1024> read_buf_{};
    std::deque<std::shared_ptr<const Bytes>> queue_;
    std::vector<std::shared_ptr<const Bytes>> in_flight_;
    std::uint64_t queued_bytes_ = 0;     // of queue_ and in_flight_
    std::uint64_t in_flight_bytes_ = 0;
    std::uint64_t dropped_ = 0;
    bool full_ = false;                  // a send was refused since the queue last drained
    bool writing_ = false;
    bool open_ = true;
    bool closing_after_flush_ = false;
    std::string pending_reason_;
    std::string pending_detail_;
    std::string remote_;
};

}  // namespace rl::transport
