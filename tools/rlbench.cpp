// rlbench: load from many concurrent clients in one process, on one
// io_context. Each connection runs a closed loop (one request in flight),
// so throughput and latency are measured together.
//   rlbench ping HOST:PORT [--connections N] [--duration-ms D] [--warmup-ms W]
//   rlbench transfer --config FILE.ini [--shard S] [--connections N]
//                    [--cross-shard F] [--skew zipf:S] [--seed N] ...
//   rlbench failover --config FILE.ini --run-dir DIR [--shard S]
// `failover` finds the shard's leader, SIGKILLs it (pid from DIR/node-N.pid,
// as tools/cluster.sh writes them) and measures until every survivor
// reports the same new leader, which itself reports role leader.
// `transfer` sends transfers of 1. Each closed loop is bound to one FROM
// shard (every shard of the config, or only --shard; loops are dealt to
// them round-robin) and talks to that shard's leader (found with `leader`),
// which coordinates the cross-shard ones (docs/design.md section 6.7). A
// loop first opens its own client session with its shard (not measured),
// then numbers its transfers in it from seq 1 (section 6.4). FROM is drawn
// from the loop's shard; TO from the same shard, or with probability
// --cross-shard from another shard (uniformly among the others). Items are
// drawn uniformly, or with --skew zipf:S by Zipf's law over their rank in
// their shard (the shard's first item is the hottest). Every draw comes
// from the loop's own generator, seeded with --seed (printed) plus its
// number. Prints one line of key=value figures, or JSON with --json: the
// figures count replies to requests sent after the warm-up, aborts by
// reason (aborts_REASON), and latency for all, intra- and cross-shard ones.
#include "config/config.hpp"
#include "config/random.hpp"
#include "tools/client.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>

namespace po = boost::program_options;
using namespace rl;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
    std::string workload;
    std::string endpoint;
    std::string config;
    std::optional<std::uint64_t> shard;  // transfer: only this FROM shard; failover: this shard (default 1)
    std::string run_dir;
    std::uint32_t connections = 1;
    std::uint32_t duration_ms = 3000;
    std::uint32_t warmup_ms = 500;
    double cross_shard = 0;  // share of transfers whose TO is in another shard
    double zipf_s = 0;       // 0: uniform items
    std::string skew;        // as given, e.g. "zipf:1.1"
    std::optional<std::uint64_t> seed;
    bool json = false;
};

// Abort reasons the nodes give (docs/design.md section 4 and
// txn::AbortReason), always printed so a zero is visible; any other reason
// a reply names is printed too.
constexpr const char* kAbortReasons[] = {"insufficient_funds", "overflow", "expired", "session_expired",
                                         "timeout",            "mismatch", "bad_request"};

struct Stats {
    std::vector<std::uint32_t> latencies_us;        // one per reply to a request sent after warm-up
    std::vector<std::uint32_t> intra_latencies_us;  // transfers within one shard, of those
    std::vector<std::uint32_t> cross_latencies_us;  // transfers across shards, of those
    std::uint64_t errors = 0;
    std::uint64_t committed = 0;
    std::uint64_t aborted = 0;
    std::map<std::string, std::uint64_t> aborts;  // by reason
    std::string first_error;
};

// A connection's next request; `cross` marks a transfer across shards.
struct Next {
    transport::Message message;
    bool cross = false;
};

// The next request of a connection: `seq` counts from 1, `session` is the
// connection's client session (0 for a workload without one).
using MakeRequest = std::function<Next(std::uint64_t seq, std::uint64_t session)>;

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
        } else if (sent_at_ >= measure_from_) {
            if (const auto* t = std::get_if<transport::TransferReply>(&m)) {
                if (t->committed) {
                    ++stats_.committed;
                } else {
                    ++stats_.aborted;
                    ++stats_.aborts[t->reason.empty() ? std::string("unknown") : t->reason];
                }
            }
            const auto us = static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(now - sent_at_).count());
            stats_.latencies_us.push_back(us);
            if (std::holds_alternative<transport::TransferReply>(m)) {
                (cross_ ? stats_.cross_latencies_us : stats_.intra_latencies_us).push_back(us);
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
        Next next = make_(++seq_, session_);
        cross_ = next.cross;
        conn_->send(std::move(next.message));
    }

    std::shared_ptr<transport::Connection> conn_;
    MakeRequest make_;
    std::optional<ItemId> session_item_;  // open a session with this item's shard first
    std::uint64_t session_ = 0;
    Stats& stats_;
    Clock::time_point measure_from_, stop_at_, sent_at_;
    std::uint64_t seq_ = 0;
    bool cross_ = false;  // the request in flight is a cross-shard transfer
    bool done_ = false;
};

// "zipf:S" with S > 0 -> S.
double parse_skew(const std::string& skew) {
    const std::string prefix = "zipf:";
    double s = 0;
    try {
        if (skew.rfind(prefix, 0) != 0) throw std::invalid_argument(skew);
        std::size_t used = 0;
        s = std::stod(skew.substr(prefix.size()), &used);
        if (used != skew.size() - prefix.size()) throw std::invalid_argument(skew);
    } catch (const std::exception&) {
        throw po::error("--skew must be zipf:S with a number S > 0, not \"" + skew + "\"");
    }
    if (!(s > 0) || !std::isfinite(s)) throw po::error("--skew zipf:S needs S > 0, not \"" + skew + "\"");
    return s;
}

Args parse_args(int argc, char** argv) {
    Args a;
    std::uint64_t shard = 0;
    std::uint64_t seed = 0;
    po::options_description desc(
        "rlbench WORKLOAD [HOST:PORT] [options]\nWorkloads: ping (HOST:PORT), transfer (--config), failover "
        "(--config, --run-dir)\nOptions");
    desc.add_options()("help,h", "show this help")("connections", po::value(&a.connections),
                                                   "concurrent connections (closed loops)")(
        "duration-ms", po::value(&a.duration_ms), "measured run length")("warmup-ms", po::value(&a.warmup_ms),
                                                                          "unmeasured start")(
        "config", po::value(&a.config), "deployment INI (transfer, failover)")(
        "shard", po::value(&shard),
        "transfer: draw FROM only from this shard (default: every shard); failover: this shard (default 1)")(
        "cross-shard", po::value(&a.cross_shard),
        "transfer: share 0..1 of transfers whose TO is in another shard than FROM (default 0)")(
        "skew", po::value(&a.skew), "transfer: zipf:S (S > 0) draws items by Zipf's law over their rank in "
                                    "their shard (default: uniform)")(
        "seed", po::value(&seed), "transfer: seed of the item draws (default: random; printed)")(
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
    if (vm.count("shard")) a.shard = shard;
    if (vm.count("seed")) a.seed = seed;
    if (a.workload == "ping" && a.endpoint.empty()) throw po::error("ping needs HOST:PORT");
    if (a.workload != "ping" && a.config.empty()) throw po::error(a.workload + " needs --config");
    if (a.workload == "failover" && a.run_dir.empty()) throw po::error("failover needs --run-dir");
    if (a.workload != "ping" && a.workload != "transfer" && a.workload != "failover") {
        throw po::error("unknown workload \"" + a.workload + "\"");
    }
    if (a.connections == 0 || a.connections > 10000) throw po::error("--connections must be 1..10000");
    if (!(a.cross_shard >= 0 && a.cross_shard <= 1)) throw po::error("--cross-shard must be 0..1");
    if (!a.skew.empty()) a.zipf_s = parse_skew(a.skew);
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

// The items of one shard in rank order (its ranges ascending), drawn
// uniformly or by Zipf's law: rank k (from 1) with weight 1 / k^s, from a
// precomputed cumulative table and one draw of rl::fraction, so a seed
// replays alike with every standard library.
class ItemPicker {
public:
    static constexpr std::uint64_t kZipfItemsMax = std::uint64_t{1} << 24;

    ItemPicker(std::vector<config::ItemRange> ranges, double zipf_s) : ranges_(std::move(ranges)) {
        for (const auto& r : ranges_) size_ += r.size();
        if (zipf_s <= 0) return;
        if (size_ > kZipfItemsMax) {
            throw po::error("--skew over " + std::to_string(size_) + " items in one shard: at most " +
                            std::to_string(kZipfItemsMax));
        }
        cdf_.reserve(size_);
        double sum = 0;
        for (std::uint64_t k = 1; k <= size_; ++k) {
            sum += 1.0 / std::pow(static_cast<double>(k), zipf_s);
            cdf_.push_back(sum);
        }
    }
    std::uint64_t size() const { return size_; }
    ItemId first() const { return at(0); }
    ItemId pick(Rng& r) const {
        if (cdf_.empty()) return at(uniform(r, 0, size_ - 1));
        const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), fraction(r) * cdf_.back());
        return at(std::min<std::uint64_t>(static_cast<std::uint64_t>(it - cdf_.begin()), size_ - 1));
    }
    // Another item than `not_this` (the shard must hold two): redrawn, so
    // it follows the same law, and after a few misses the next in rank.
    ItemId pick_other(Rng& r, ItemId not_this) const {
        for (int i = 0; i < 16; ++i) {
            const ItemId item = pick(r);
            if (item != not_this) return item;
        }
        const ItemId first = at(0);
        for (std::uint64_t k = 0; k + 1 < size_; ++k) {
            if (at(k) == not_this) return at(k + 1);
        }
        return first;
    }

private:
    ItemId at(std::uint64_t rank) const {
        for (const auto& r : ranges_) {
            if (rank < r.size()) return ItemId{r.first.value + rank};
            rank -= r.size();
        }
        return ranges_.back().last;
    }

    std::vector<config::ItemRange> ranges_;
    std::uint64_t size_ = 0;
    std::vector<double> cdf_;  // empty: uniform
};

// What one connection does: where it connects, what it sends, which
// shard it opens its session with.
struct Target {
    std::string endpoint;
    MakeRequest make;
    std::optional<ItemId> session_item;
};

struct Plan {
    std::string cluster;
    std::function<Target(std::uint32_t connection)> target;
    nlohmann::ordered_json describe;  // transfer: shards, cross_shard, skew, seed
};

Plan plan(const Args& a) {
    if (a.workload == "ping") {
        const std::string endpoint = a.endpoint;
        return {"",
                [endpoint](std::uint32_t) {
                    return Target{endpoint,
                                  [](std::uint64_t id, std::uint64_t) {
                                      return Next{transport::Message{transport::PingRequest{id}}, false};
                                  },
                                  std::nullopt};
                },
                nlohmann::ordered_json::object()};
    }
    const auto config = config::Config::load(a.config);
    // Loops are dealt round-robin to the FROM shards.
    std::vector<ShardId> from_shards;
    if (a.shard) {
        const auto* shard = config.shard(ShardId{*a.shard});
        if (shard == nullptr) throw po::error("no shard " + std::to_string(*a.shard));
        from_shards.push_back(shard->id);
    } else {
        for (const auto& [id, shard] : config.shards()) from_shards.push_back(id);
    }
    if (a.cross_shard > 0 && config.shards().size() < 2) {
        throw po::error("--cross-shard needs a config with at least two shards");
    }
    // Each loop opens one session with its FROM shard. More loops on a shard
    // than it keeps sessions would evict each other's sessions and measure
    // session_expired aborts.
    const std::uint64_t per_shard = (a.connections + from_shards.size() - 1) / from_shards.size();
    if (per_shard > config.cluster().limits.dedup_clients_max) {
        throw po::error("--connections " + std::to_string(a.connections) + " puts " + std::to_string(per_shard) +
                        " sessions on a shard, more than dedup_clients_max = " +
                        std::to_string(config.cluster().limits.dedup_clients_max));
    }
    std::map<ShardId, std::shared_ptr<const ItemPicker>> pickers;
    for (const auto& [id, shard] : config.shards()) {
        pickers.emplace(id, std::make_shared<const ItemPicker>(shard.items, a.zipf_s));
    }
    if (a.cross_shard < 1) {
        for (ShardId id : from_shards) {
            if (pickers.at(id)->size() < 2) {
                throw po::error("shard " + std::to_string(id.value) + " has one item: no transfer within it");
            }
        }
    }
    std::map<ShardId, std::string> leaders;
    for (ShardId id : from_shards) leaders.emplace(id, find_leader(config, id));
    std::random_device entropy;
    const std::uint64_t seed = a.seed ? *a.seed : (std::uint64_t{entropy()} << 32) ^ entropy();
    const double cross = a.cross_shard;
    std::string shard_list;
    for (ShardId id : from_shards) shard_list += (shard_list.empty() ? "" : ",") + std::to_string(id.value);
    nlohmann::ordered_json describe = {{"shards", shard_list},
                                       {"cross_shard", cross},
                                       {"skew", a.skew.empty() ? std::string("uniform") : a.skew},
                                       {"seed", seed}};
    return {config.cluster().name,
            [from_shards, pickers, leaders, seed, cross](std::uint32_t c) {
                const ShardId home = from_shards[c % from_shards.size()];
                std::vector<std::shared_ptr<const ItemPicker>> others;  // the other shards, for TO across
                for (const auto& [id, picker] : pickers) {
                    if (id != home) others.push_back(picker);
                }
                const auto mine = pickers.at(home);
                auto rng = std::make_shared<Rng>(seed + c);
                MakeRequest make = [rng, mine, others, cross](std::uint64_t seq, std::uint64_t session) {
                    const ItemId from = mine->pick(*rng);
                    const bool across = chance(*rng, cross);
                    ItemId to;
                    if (across) {
                        to = others[uniform(*rng, 0, others.size() - 1)]->pick(*rng);
                    } else {
                        to = mine->pick_other(*rng, from);
                    }
                    return Next{transport::Message{transport::TransferRequest{seq, {session, seq}, from, to, 1}},
                                across};
                };
                return Target{leaders.at(home), std::move(make), mine->first()};
            },
            describe};
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
    const auto* shard = config.shard(ShardId{a.shard.value_or(1)});
    if (shard == nullptr) throw po::error("no shard " + std::to_string(a.shard.value_or(1)));
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
    const auto start = Clock::now();
    const auto measure_from = start + std::chrono::milliseconds(a.warmup_ms);
    const auto stop_at = measure_from + std::chrono::milliseconds(a.duration_ms);
    Stats stats;
    std::vector<std::shared_ptr<Loop>> loops;
    for (std::uint32_t i = 0; i < a.connections; ++i) {
        Target t = p.target(i);
        const auto [host, port] = tools::split_endpoint(t.endpoint);
        transport::tcp::socket s(io);
        s.connect(transport::tcp::endpoint(boost::asio::ip::make_address(host), port));
        auto conn = std::make_shared<transport::Connection>(std::move(s), transport::ConnectionLimits{});
        auto loop = std::make_shared<Loop>(std::move(conn), std::move(t.make), t.session_item, stats, measure_from,
                                           stop_at);
        loop->start(p.cluster);
        loops.push_back(loop);
    }
    io.run_until(stop_at + std::chrono::seconds(5));
    const double secs = a.duration_ms / 1000.0;
    const auto n = stats.latencies_us.size();
    const auto rate = [secs](std::uint64_t count) {
        return static_cast<std::uint64_t>(static_cast<double>(count) / secs);
    };
    nlohmann::ordered_json r = {{"workload", a.workload},
                                {"connections", a.connections},
                                {"requests", n},
                                {"aborted", stats.aborted},
                                {"errors", stats.errors},
                                {"per_second", rate(n)},
                                {"p50_us", percentile(stats.latencies_us, 0.50)},
                                {"p99_us", percentile(stats.latencies_us, 0.99)}};
    if (a.workload == "transfer") {
        for (const auto& [k, v] : p.describe.items()) r[k] = v;
        r["committed"] = stats.committed;
        r["committed_per_second"] = rate(stats.committed);
        r["intra_requests"] = stats.intra_latencies_us.size();
        r["intra_p50_us"] = percentile(stats.intra_latencies_us, 0.50);
        r["intra_p99_us"] = percentile(stats.intra_latencies_us, 0.99);
        r["cross_requests"] = stats.cross_latencies_us.size();
        r["cross_p50_us"] = percentile(stats.cross_latencies_us, 0.50);
        r["cross_p99_us"] = percentile(stats.cross_latencies_us, 0.99);
        for (const char* reason : kAbortReasons) r[std::string("aborts_") + reason] = stats.aborts[reason];
        for (const auto& [reason, count] : stats.aborts) r["aborts_" + reason] = count;
    }
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
