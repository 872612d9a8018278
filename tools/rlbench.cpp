// rlbench: load from many concurrent clients in one process, on one
// io_context. Each connection runs a closed loop (one request in flight),
// so throughput and latency are measured together, not traded off by an
// unbounded pipeline.
//   rlbench ping HOST:PORT [--connections N] [--duration-ms D] [--warmup-ms W]
// Prints one line of key=value figures (or JSON with --json).
#include "tools/client.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>

namespace po = boost::program_options;
using namespace rl;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
    std::string workload;
    std::string endpoint;
    std::uint32_t connections = 1;
    std::uint32_t duration_ms = 3000;
    std::uint32_t warmup_ms = 500;
    bool json = false;
};

struct Stats {
    std::vector<std::uint32_t> latencies_us;  // one per completed request after warm-up
    std::uint64_t errors = 0;
};

// One closed-loop connection: send, await the reply, record, repeat.
class Loop : public std::enable_shared_from_this<Loop> {
public:
    Loop(std::shared_ptr<transport::Connection> conn, Stats& stats, Clock::time_point measure_from,
         Clock::time_point stop_at)
        : conn_(std::move(conn)), stats_(stats), measure_from_(measure_from), stop_at_(stop_at) {}

    void start() {
        std::weak_ptr<Loop> weak = shared_from_this();
        conn_->start(transport::Connection::Handlers{
            .on_message = [weak](transport::Message&& m) { if (auto self = weak.lock()) self->on_reply(m); },
            .on_close = [weak](const std::string&, const std::string&) {
                if (auto self = weak.lock()) self->done_ = true;
            }});
        conn_->send(transport::Hello{transport::Role::client, kNoNode, "", transport::kProtocolVersion});
    }
    bool done() const { return done_; }

private:
    void on_reply(const transport::Message& m) {
        const auto now = Clock::now();
        if (std::holds_alternative<transport::Hello>(m)) return send_next(now);
        if (std::holds_alternative<transport::ErrorReply>(m) || std::holds_alternative<transport::Refuse>(m)) {
            ++stats_.errors;
        } else if (sent_at_ >= measure_from_) {
            const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - sent_at_).count();
            stats_.latencies_us.push_back(static_cast<std::uint32_t>(us));
        }
        send_next(now);
    }
    void send_next(Clock::time_point now) {
        if (now >= stop_at_) {
            done_ = true;
            conn_->close("closed");
            return;
        }
        sent_at_ = now;
        conn_->send(transport::PingRequest{++seq_});
    }

    std::shared_ptr<transport::Connection> conn_;
    Stats& stats_;
    Clock::time_point measure_from_, stop_at_, sent_at_;
    std::uint64_t seq_ = 0;
    bool done_ = false;
};

Args parse_args(int argc, char** argv) {
    Args a;
    po::options_description desc("rlbench WORKLOAD HOST:PORT [options]\nWorkloads: ping\nOptions");
    desc.add_options()("help,h", "show this help")("connections", po::value(&a.connections), "concurrent connections")(
        "duration-ms", po::value(&a.duration_ms), "measured run length")("warmup-ms", po::value(&a.warmup_ms),
                                                                          "unmeasured start")(
        "json", po::bool_switch(&a.json), "print the result as JSON");
    po::options_description hidden;
    hidden.add_options()("workload", po::value(&a.workload))("endpoint", po::value(&a.endpoint));
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description pos;
    pos.add("workload", 1).add("endpoint", 1);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
    if (vm.count("help") || a.workload.empty() || a.endpoint.empty()) {
        std::cout << desc << "\n";
        std::exit(vm.count("help") ? 0 : 2);
    }
    if (a.workload != "ping") throw po::error("unknown workload \"" + a.workload + "\"");
    if (a.connections == 0 || a.connections > 10000) throw po::error("--connections must be 1..10000");
    return a;
}

std::uint32_t percentile(std::vector<std::uint32_t>& v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

int run(const Args& a) {
    boost::asio::io_context io(1);
    const auto [host, port] = tools::split_endpoint(a.endpoint);
    const transport::tcp::endpoint target(boost::asio::ip::make_address(host), port);
    const auto start = Clock::now();
    const auto measure_from = start + std::chrono::milliseconds(a.warmup_ms);
    const auto stop_at = measure_from + std::chrono::milliseconds(a.duration_ms);
    Stats stats;
    std::vector<std::shared_ptr<Loop>> loops;
    for (std::uint32_t i = 0; i < a.connections; ++i) {
        transport::tcp::socket s(io);
        s.connect(target);
        auto loop = std::make_shared<Loop>(std::make_shared<transport::Connection>(std::move(s),
                                                                                   transport::ConnectionLimits{}),
                                           stats, measure_from, stop_at);
        loop->start();
        loops.push_back(loop);
    }
    io.run_until(stop_at + std::chrono::seconds(5));
    const double secs = a.duration_ms / 1000.0;
    const auto n = stats.latencies_us.size();
    nlohmann::ordered_json r = {{"workload", a.workload},
                                {"connections", a.connections},
                                {"requests", n},
                                {"errors", stats.errors},
                                {"per_second", static_cast<std::uint64_t>(static_cast<double>(n) / secs)},
                                {"p50_us", percentile(stats.latencies_us, 0.50)},
                                {"p99_us", percentile(stats.latencies_us, 0.99)}};
    if (a.json) {
        std::cout << r.dump() << "\n";
    } else {
        for (const auto& [k, v] : r.items()) std::cout << k << "=" << (v.is_string() ? v.get<std::string>() : v.dump()) << " ";
        std::cout << "\n";
    }
    return stats.errors == 0 && n > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse_args(argc, argv));
    } catch (const po::error& e) {
        std::cerr << "rlbench: " << e.what() << " (see rlbench --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "rlbench: " << e.what() << "\n";
        return 2;
    }
}
