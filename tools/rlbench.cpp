// rlbench: load from many concurrent clients in one process, on one
// io_context. Each connection runs a closed loop (one request in flight),
// so throughput and latency are measured together.
//   rlbench ping HOST:PORT [--connections N] [--duration-ms D] [--warmup-ms W]
//   rlbench transfer --config FILE.ini [--shard S] [--connections N] ...
//   rlbench failover --config FILE.ini --run-dir DIR [--shard S]
// `failover` finds the shard's leader, SIGKILLs it (pid from DIR/node-N.pid,
// as tools/cluster.sh writes them) and measures until every survivor
// reports the same new leader, which itself reports role leader.
// `transfer` sends intra-shard transfers of 1 between random items of the
// shard to its leader (found with `leader`). Each connection first opens
// its own client session with the shard (not measured), then numbers its
// transfers in it from seq 1 (docs/design.md section 6). Prints one line of
// key=value figures, or JSON with --json.
#include "config/config.hpp"
#include "config/random.hpp"
#include "tools/client.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iostream>
#include <random>

namespace po = boost::program_options;
using namespace rl;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
    std::string workload;
    std::string endpoint;
    std::string config;
    std::uint64_t shard = 1;
    std::string run_dir;
    std::uint32_t connections = 1;
    std::uint32_t duration_ms = 3000;
    std::uint32_t warmup_ms = 500;
    bool json = false;
};

struct Stats {
    std::vector<std::uint32_t> latencies_us;  // one per completed request after warm-up
    std::uint64_t errors = 0;
    std::uint64_t aborted = 0;
    std::string first_error;
};

// The next request of a connection: `seq` counts from 1, `session` is the
// connection's client session (0 for a workload without one).
using MakeRequest = std::function<transport::Message(std::uint64_t seq, std::uint64_t session)>;

// One closed-loop connection: open its session if the workload needs one,
// then send, await the reply, record, repeat.
class Loop : public std::enable_shared_from_this<Loop> {
public:
    Loop(std::shared_ptr<transport::Connection> conn, MakeRequest make, std::optional<ItemId> session_item,
         Stats& stats, Clock::time_point measure_from, Clock::time_point stop_at)
        : conn_(std::move(conn)), make_(std::move(make)), session_item_(session_item), stats_(stats),
          measure_from_(measure_from), stop_at_(stop_at) {}

    void start(const std::string& cluster) {
        std::weak_ptr<Loop> weak = shared_from_this();
        conn_->start(transport::Connection::Handlers{
            .on_message = [weak](transport::Message&& m) { if (auto self = weak.lock()) self->on_reply(m); },
            .on_close = [weak](const std::string& reason, const std::string& detail) {
                auto self = weak.lock();
                if (!self || self->done_) return;
                self->done_ = true;
                self->record_error("connection closed: " + reason + " " + detail);
            }});
        conn_->send(transport::Hello{transport::Role::client, kNoNode, cluster, transport::kProtocolVersion});
    }

private:
    void record_error(const std::string& what) {
        ++stats_.errors;
        if (stats_.first_error.empty()) stats_.first_error = what;
    }
    void on_reply(const transport::Message& m) {
        const auto now = Clock::now();
        if (std::holds_alternative<transport::Hello>(m)) return open_session(now);
        if (const auto* opened = std::get_if<transport::SessionReply>(&m)) {
            session_ = opened->session;
            return send_next(now);
        }
        if (session_item_ && session_ == 0) {
            // Without a session every transfer would be refused: stop here.
            done_ = true;
            const auto* e = std::get_if<transport::ErrorReply>(&m);
            record_error("no session: " + (e ? e->code + ": " + e->message : std::string("unexpected reply")));
            conn_->close("closed");
            return;
        }
        if (const auto* e = std::get_if<transport::ErrorReply>(&m)) {
            record_error(e->code + ": " + e->message);
        } else if (const auto* r = std::get_if<transport::Refuse>(&m)) {
            record_error("refused: " + r->reason);
        } else {
            if (const auto* t = std::get_if<transport::TransferReply>(&m); t && !t->committed) ++stats_.aborted;
            if (sent_at_ >= measure_from_) {
                const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - sent_at_).count();
                stats_.latencies_us.push_back(static_cast<std::uint32_t>(us));
            }
        }
        send_next(now);
    }
    void open_session(Clock::time_point now) {
        if (!session_item_) return send_next(now);
        conn_->send(transport::SessionRequest{0, *session_item_});
    }
    void send_next(Clock::time_point now) {
        if (now >= stop_at_) {
            done_ = true;
            conn_->close("closed");
            return;
        }
        sent_at_ = now;
        conn_->send(make_(++seq_, session_));
    }

    std::shared_ptr<transport::Connection> conn_;
    MakeRequest make_;
    std::optional<ItemId> session_item_;  // open a session with this item's shard first
    std::uint64_t session_ = 0;
    Stats& stats_;
    Clock::time_point measure_from_, stop_at_, sent_at_;
    std::uint64_t seq_ = 0;
    bool done_ = false;
};

Args parse_args(int argc, char** argv) {
    Args a;
    po::options_description desc(
        "rlbench WORKLOAD [HOST:PORT] [options]\nWorkloads: ping (HOST:PORT), transfer (--config)\nOptions");
    desc.add_options()("help,h", "show this help")("connections", po::value(&a.connections),
                                                   "concurrent connections (closed loops)")(
        "duration-ms", po::value(&a.duration_ms), "measured run length")("warmup-ms", po::value(&a.warmup_ms),
                                                                          "unmeasured start")(
        "config", po::value(&a.config), "deployment INI (transfer)")("shard", po::value(&a.shard),
                                                                     "shard to load (transfer, default 1)")(
        "run-dir", po::value(&a.run_dir), "pid files of the cluster (failover)")(
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
    if (vm.count("help") || a.workload.empty()) {
        std::cout << desc << "\n";
        std::exit(vm.count("help") ? 0 : 2);
    }
    if (a.workload == "ping" && a.endpoint.empty()) throw po::error("ping needs HOST:PORT");
    if (a.workload != "ping" && a.config.empty()) throw po::error(a.workload + " needs --config");
    if (a.workload == "failover" && a.run_dir.empty()) throw po::error("failover needs --run-dir");
    if (a.workload != "ping" && a.workload != "transfer" && a.workload != "failover") {
        throw po::error("unknown workload \"" + a.workload + "\"");
    }
    if (a.connections == 0 || a.connections > 10000) throw po::error("--connections must be 1..10000");
    return a;
}

std::uint32_t percentile(std::vector<std::uint32_t>& v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

// The shard's leader, asked of its members (never read from the config).
std::string find_leader(const config::Config& config, ShardId shard) {
    std::vector<tools::NodeEndpoint> nodes;
    for (NodeId id : config.shard(shard)->nodes) nodes.push_back({id, config.node(id)->address.to_string()});
    tools::RetryingClient client(config.cluster().name, nodes);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
        const auto reply = client.call(transport::LeaderRequest{0, shard}, deadline, true);
        if (const auto* l = std::get_if<transport::LeaderReply>(&reply); l && l->leader != kNoNode) {
            return config.node(l->leader)->address.to_string();
        }
    }
    throw std::runtime_error("shard " + std::to_string(shard.value) + " has no leader");
}

struct Plan {
    std::string endpoint;
    std::string cluster;
    std::function<MakeRequest(std::uint32_t connection)> make;
    std::optional<ItemId> session_item;  // each connection opens a session with this item's shard
};

Plan plan(const Args& a) {
    if (a.workload == "ping") {
        return {a.endpoint, "",
                [](std::uint32_t) -> MakeRequest {
                    return [](std::uint64_t id, std::uint64_t) { return transport::Message{transport::PingRequest{id}}; };
                },
                std::nullopt};
    }
    const auto config = config::Config::load(a.config);
    const auto* shard = config.shard(ShardId{a.shard});
    if (shard == nullptr) throw po::error("no shard " + std::to_string(a.shard));
    // More connections than the shard keeps sessions would evict each
    // other's sessions and measure session_expired aborts.
    if (a.connections > config.cluster().limits.dedup_clients_max) {
        throw po::error("--connections " + std::to_string(a.connections) + " exceeds dedup_clients_max = " +
                        std::to_string(config.cluster().limits.dedup_clients_max) + " sessions per shard");
    }
    const auto range = shard->items.front();
    const std::uint64_t run = std::random_device{}();
    return {find_leader(config, shard->id), config.cluster().name,
            [range, run](std::uint32_t c) -> MakeRequest {
                auto rng = std::make_shared<std::mt19937_64>(run + c);
                return [rng, range](std::uint64_t seq, std::uint64_t session) {
                    const auto pick = [&](Rng& r) { return uniform(r, range.first.value, range.last.value); };
                    const ItemId from{pick(*rng)};
                    ItemId to{pick(*rng)};
                    if (to == from) to = ItemId{from == range.last ? range.first.value : from.value + 1};
                    return transport::Message{transport::TransferRequest{seq, {session, seq}, from, to, 1}};
                };
            },
            range.first};
}

// One node's view, asked directly (no hopping): {role, epoch, leader}.
std::optional<transport::StatusReply> status_of(const config::Config& config, NodeId id) {
    try {
        tools::Client c(config.cluster().name);
        const auto deadline = Clock::now() + std::chrono::milliseconds(200);
        c.connect(config.node(id)->address.to_string(), deadline);
        const auto reply = c.call(transport::StatusRequest{}, deadline);
        if (const auto* s = std::get_if<transport::StatusReply>(&reply)) return *s;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

// Every node in `ids` names the same leader, which says it leads.
NodeId agreed_leader(const config::Config& config, const std::vector<NodeId>& ids) {
    NodeId leader = kNoNode;
    Epoch epoch;
    for (NodeId id : ids) {
        const auto s = status_of(config, id);
        if (!s || s->leader == kNoNode) return kNoNode;
        if (leader == kNoNode) {
            leader = s->leader;
            epoch = s->epoch;
        }
        if (s->leader != leader || s->epoch != epoch) return kNoNode;
        if (s->leader == id && s->role != transport::NodeRole::leader) return kNoNode;
    }
    return std::find(ids.begin(), ids.end(), leader) == ids.end() ? kNoNode : leader;
}

int run_failover(const Args& a) {
    const auto config = config::Config::load(a.config);
    const auto* shard = config.shard(ShardId{a.shard});
    if (shard == nullptr) throw po::error("no shard " + std::to_string(a.shard));
    NodeId old = kNoNode;
    for (auto until = Clock::now() + std::chrono::seconds(20); old == kNoNode && Clock::now() < until;) {
        old = agreed_leader(config, shard->nodes);
    }
    if (old == kNoNode) throw std::runtime_error("no agreed leader before the kill");
    std::ifstream pidfile(a.run_dir + "/node-" + std::to_string(old.value) + ".pid");
    pid_t pid = 0;
    if (!(pidfile >> pid) || pid <= 0) throw std::runtime_error("no pid file for node " + std::to_string(old.value));
    std::vector<NodeId> survivors;
    for (NodeId id : shard->nodes) {
        if (id != old) survivors.push_back(id);
    }
    const auto killed = Clock::now();
    ::kill(pid, SIGKILL);
    NodeId fresh = kNoNode;
    while (fresh == kNoNode && Clock::now() < killed + std::chrono::seconds(30)) fresh = agreed_leader(config, survivors);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
    if (fresh == kNoNode) throw std::runtime_error("no new leader within 30 s");
    std::cout << "killed=" << old.value << " new_leader=" << fresh.value << " failover_ms=" << ms << "\n";
    return 0;
}

int run(const Args& a) {
    if (a.workload == "failover") return run_failover(a);
    const Plan p = plan(a);
    boost::asio::io_context io(1);
    const auto [host, port] = tools::split_endpoint(p.endpoint);
    const transport::tcp::endpoint target(boost::asio::ip::make_address(host), port);
    const auto start = Clock::now();
    const auto measure_from = start + std::chrono::milliseconds(a.warmup_ms);
    const auto stop_at = measure_from + std::chrono::milliseconds(a.duration_ms);
    Stats stats;
    std::vector<std::shared_ptr<Loop>> loops;
    for (std::uint32_t i = 0; i < a.connections; ++i) {
        transport::tcp::socket s(io);
        s.connect(target);
        auto conn = std::make_shared<transport::Connection>(std::move(s), transport::ConnectionLimits{});
        auto loop = std::make_shared<Loop>(std::move(conn), p.make(i), p.session_item, stats, measure_from, stop_at);
        loop->start(p.cluster);
        loops.push_back(loop);
    }
    io.run_until(stop_at + std::chrono::seconds(5));
    const double secs = a.duration_ms / 1000.0;
    const auto n = stats.latencies_us.size();
    nlohmann::ordered_json r = {{"workload", a.workload},
                                {"connections", a.connections},
                                {"requests", n},
                                {"aborted", stats.aborted},
                                {"errors", stats.errors},
                                {"per_second", static_cast<std::uint64_t>(static_cast<double>(n) / secs)},
                                {"p50_us", percentile(stats.latencies_us, 0.50)},
                                {"p99_us", percentile(stats.latencies_us, 0.99)}};
    if (!stats.first_error.empty()) r["first_error"] = stats.first_error;
    if (a.json) {
        std::cout << r.dump() << "\n";
    } else {
        for (const auto& [k, v] : r.items()) {
            std::cout << k << "=" << (v.is_string() ? nlohmann::json(v.get<std::string>()).dump() : v.dump()) << " ";
        }
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
