// rldelay: holds every packet of one netfilter queue for a while, then lets
// it go on. tools/partition runs it, inside a cluster's network namespace,
// for `delay ID MS [JITTER]` where the kernel has no tc netem: an iptables
// rule sends node ID's outgoing packets to queue ID (NFQUEUE, with
// --queue-bypass, so that without this process they pass undelayed), and
// each packet is accepted MS ms (+- JITTER ms, uniform, from --seed) after it
// was queued (docs/design.md section 7.4).
//   rldelay --queue N --delay-ms MS [--jitter-ms J] [--seed S]
// Prints "delaying queue N by MS ms" once bound; SIGTERM or SIGINT lets
// every held packet go at once and exits 0. Needs CAP_NET_ADMIN.
#include "config/random.hpp"

#include <boost/asio.hpp>
#include <boost/program_options.hpp>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <sys/socket.h>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <queue>
#include <stdexcept>
#include <string>
#include <vector>

namespace po = boost::program_options;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
    std::uint16_t queue = 0;
    std::uint32_t delay_ms = 0;
    std::uint32_t jitter_ms = 0;
    std::uint64_t seed = 1;
};

// A packet the kernel holds for us until its verdict.
struct Held {
    Clock::time_point release;
    std::uint64_t order = 0;  // arrival order: equal release times keep it
    std::uint32_t id = 0;     // the kernel's packet id in this queue
    bool operator>(const Held& o) const { return release != o.release ? release > o.release : order > o.order; }
};

class Delayer {
public:
    Delayer(asio::io_context& io, const Args& args) : args_(args), rng_(args.seed), timer_(io), socket_(io) {
        handle_ = nfq_open();
        if (handle_ == nullptr) throw std::runtime_error("cannot open a netfilter queue handle (needs CAP_NET_ADMIN)");
        queue_ = nfq_create_queue(handle_, args.queue, &Delayer::on_packet_cb, this);
        if (queue_ == nullptr) {
            nfq_close(handle_);
            throw std::runtime_error("cannot bind netfilter queue " + std::to_string(args.queue) +
                                     " (another rldelay on it, or no CAP_NET_ADMIN)");
        }
        // Only the packet id is needed, not its bytes; room for a burst.
        if (nfq_set_mode(queue_, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(queue_, kQueueMax) < 0) {
            close();
            throw std::runtime_error("cannot configure netfilter queue " + std::to_string(args.queue));
        }
        // A verdict lost to a full socket buffer would leave its packet held
        // for good: a large buffer, and no ENOBUFS errors.
        nfnl_rcvbufsiz(nfq_nfnlh(handle_), 8u << 20);
        const int on = 1;
        setsockopt(nfq_fd(handle_), SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof on);
        socket_.assign(nfq_fd(handle_));
        socket_.non_blocking(true);
    }
    Delayer(const Delayer&) = delete;
    Delayer& operator=(const Delayer&) = delete;
    ~Delayer() { close(); }

    void start() { wait_readable(); }

    // Every held packet goes now.
    void release_all() {
        release_until(Clock::time_point::max());
        timer_.cancel();
    }

private:
    static constexpr std::uint32_t kQueueMax = 65536;

    static int on_packet_cb(nfq_q_handle*, nfgenmsg*, nfq_data* data, void* self) {
        static_cast<Delayer*>(self)->on_packet(data);
        return 0;
    }

    void on_packet(nfq_data* data) {
        const nfqnl_msg_packet_hdr* header = nfq_get_msg_packet_hdr(data);
        if (header == nullptr) return;
        std::int64_t ms = args_.delay_ms;
        if (args_.jitter_ms > 0) {
            ms += static_cast<std::int64_t>(rl::uniform(rng_, 0, 2 * std::uint64_t{args_.jitter_ms})) - args_.jitter_ms;
            if (ms < 0) ms = 0;
        }
        held_.push(Held{Clock::now() + std::chrono::milliseconds(ms), next_order_++, ntohl(header->packet_id)});
        arm();
    }

    void wait_readable() {
        socket_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
            if (ec) return;
            read_all();
            wait_readable();
        });
    }

    void read_all() {
        alignas(16) static char buffer[1 << 16];
        while (true) {
            const ssize_t n = recv(nfq_fd(handle_), buffer, sizeof buffer, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
                std::cerr << "rldelay: reading queue " << args_.queue << ": " << std::strerror(errno) << "\n";
                return;
            }
            nfq_handle_packet(handle_, buffer, static_cast<int>(n));
        }
    }

    // The timer waits for the earliest release.
    void arm() {
        if (held_.empty()) return;
        const Clock::time_point at = held_.top().release;
        if (armed_ && armed_at_ <= at) return;
        armed_ = true;
        armed_at_ = at;
        timer_.expires_at(at);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            armed_ = false;
            release_until(Clock::now());
            arm();
        });
    }

    // The held packets due by `t` go, earliest first.
    void release_until(Clock::time_point t) {
        while (!held_.empty() && held_.top().release <= t) {
            accept(held_.top().id);
            held_.pop();
        }
    }

    void accept(std::uint32_t id) {
        if (nfq_set_verdict(queue_, id, NF_ACCEPT, 0, nullptr) < 0) {
            std::cerr << "rldelay: verdict for packet " << id << " failed: " << std::strerror(errno) << "\n";
        }
    }

    void close() {
        if (socket_.is_open()) socket_.release();
        if (queue_ != nullptr) nfq_destroy_queue(queue_);
        if (handle_ != nullptr) nfq_close(handle_);
        queue_ = nullptr;
        handle_ = nullptr;
    }

    Args args_;
    rl::Rng rng_;
    asio::steady_timer timer_;
    asio::posix::stream_descriptor socket_;
    nfq_handle* handle_ = nullptr;
    nfq_q_handle* queue_ = nullptr;
    std::priority_queue<Held, std::vector<Held>, std::greater<>> held_;
    std::uint64_t next_order_ = 0;
    bool armed_ = false;
    Clock::time_point armed_at_;
};

}  // namespace

int main(int argc, char** argv) {
    Args args;
    po::options_description opts("rldelay --queue N --delay-ms MS [options]");
    opts.add_options()("help,h", "show this help")("queue", po::value(&args.queue)->required(),
                                                    "netfilter queue number to serve")(
        "delay-ms", po::value(&args.delay_ms)->required(), "how long each packet is held")(
        "jitter-ms", po::value(&args.jitter_ms), "plus or minus up to this much, uniform (default 0)")(
        "seed", po::value(&args.seed), "seed of the jitter's draws (default 1)");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, opts), vm);
        if (vm.count("help") != 0U) {
            std::cout << opts << "\n";
            return 0;
        }
        po::notify(vm);
        if (args.jitter_ms > args.delay_ms) throw std::invalid_argument("--jitter-ms must not exceed --delay-ms");
    } catch (const std::exception& e) {
        std::cerr << "rldelay: " << e.what() << "\n" << opts << "\n";
        return 2;
    }
    try {
        asio::io_context io;
        Delayer delayer(io, args);
        asio::signal_set signals(io, SIGTERM, SIGINT);
        signals.async_wait([&](const boost::system::error_code&, int) {
            delayer.release_all();
            io.stop();
        });
        delayer.start();
        std::cout << "delaying queue " << args.queue << " by " << args.delay_ms << " ms" << std::endl;
        io.run();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "rldelay: " << e.what() << "\n";
        return 1;
    }
}
