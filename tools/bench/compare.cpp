// rlcompare: drives a Ringleader shard and an etcd cluster the same way, so
// that tools/bench/etcd.sh can set them side by side (docs/benchmarks.md,
// section "Side by side with etcd").
//   rlcompare ringleader load     --config FILE.ini [--connections N] ...
//   rlcompare etcd load           --endpoints H:P,H:P,H:P [--connections N] ...
//   rlcompare ringleader failover --config FILE.ini --run-dir DIR
//   rlcompare etcd failover       --endpoints H:P,H:P,H:P --run-dir DIR
// Both systems are driven from this one process on one io_context by closed
// loops: each connection keeps one write in flight. A Ringleader write is a
// transfer of 1 between two items of shard 1, sent in the loop's own client
// session (docs/design.md section 6.4); an etcd write is a put of a short
// value to the loop's own key through etcd's v3 JSON gateway (POST
// /v3/kv/put, HTTP/1.1 keep-alive). A write succeeds when Ringleader
// answers committed, or etcd answers 200 without an error.
// Every attempt has the same rules on both sides: no answer within
// --attempt-timeout-ms closes the connection, which is opened again and
// the write resent (Ringleader with the same txid, docs/design.md section
// 6.5); an error answer is retried after --retry-pause-ms.
// `load` writes to the leader (every member is asked whom it follows; all
// must agree) for --duration-ms after --warmup-ms and prints writes/s and
// latency percentiles. `failover` writes through a survivor (a member that
// is not the leader, which forwards), and after --warmup-ms SIGKILLs the
// leader (pid from DIR/node-ID.pid, as tools/rlcluster writes them, or
// DIR/etcd-K.pid for the K-th endpoint, as tools/bench/etcd.sh writes
// them) right after a write succeeded, so none is in flight; it prints the
// time from the kill to the first successful write sent after it.
#include "config/config.hpp"
#include "config/random.hpp"
#include "tools/client.hpp"
#include "tools/percentile.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

namespace po = boost::program_options;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace rl;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

struct Args {
    std::string system;  // ringleader | etcd
    std::string mode;    // load | failover
    std::string config;
    std::string endpoints;
    std::string run_dir;
    std::uint32_t connections = 1;
    std::uint32_t duration_ms = 3000;
    std::uint32_t warmup_ms = 500;
    std::uint32_t attempt_timeout_ms = 100;
    std::uint32_t retry_pause_ms = 10;
    std::uint32_t failover_limit_ms = 30000;
};

std::string base64(const std::string& in) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const auto n = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) |
                       std::uint8_t(in[i + 2]);
        for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(n >> s) & 63];
    }
    if (i < in.size()) {
        std::uint32_t n = std::uint32_t(std::uint8_t(in[i])) << 16;
        if (i + 1 < in.size()) n |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

asio::ip::tcp::endpoint parse_endpoint(const std::string& text) {
    const auto [host, port] = tools::split_endpoint(text);
    return {asio::ip::make_address(host), port};
}

// How one attempt ended. `broken`: the connection is unusable and must be
// opened again before the next attempt.
struct Outcome {
    bool ok = false;
    bool broken = false;
    std::string error;
};
using Done = std::function<void(Outcome)>;

// One connection to one member with at most one write in flight. After
// close(), no callback of an earlier open() or write() runs.
class Channel {
public:
    virtual ~Channel() = default;
    virtual void open(Done done) = 0;   // connect (and greet); done once
    virtual void write(Done done) = 0;  // one write; done once
    virtual void close() = 0;
};

// etcd's v3 JSON gateway over HTTP/1.1 keep-alive.
class EtcdChannel : public Channel, public std::enable_shared_from_this<EtcdChannel> {
public:
    EtcdChannel(asio::io_context& io, asio::ip::tcp::endpoint to, std::uint32_t loop)
        : io_(io), to_(std::move(to)), key_(base64("rlcompare/" + std::to_string(loop))) {}

    void open(Done done) override {
        close();
        conn_ = std::make_shared<Conn>(io_);
        conn_->socket.async_connect(to_, [self = shared_from_this(), c = conn_, done](boost::system::error_code ec) {
            if (self->conn_ != c) return;
            if (ec) return done({false, true, "connect: " + ec.message()});
            c->socket.set_option(asio::ip::tcp::no_delay(true));
            done({true, false, {}});
        });
    }
    void write(Done done) override {
        auto c = conn_;
        c->request = {http::verb::post, "/v3/kv/put", 11};
        c->request.set(http::field::host, to_.address().to_string());
        c->request.set(http::field::content_type, "application/json");
        c->request.keep_alive(true);
        c->request.body() = R"({"key":")" + key_ + R"(","value":")" + base64(std::to_string(++value_)) + R"("})";
        c->request.prepare_payload();
        auto self = shared_from_this();
        http::async_write(c->socket, c->request, [self, c, done](beast::error_code ec, std::size_t) {
            if (self->conn_ != c) return;
            if (ec) return done({false, true, "send: " + ec.message()});
            c->response = {};
            http::async_read(c->socket, c->buffer, c->response, [self, c, done](beast::error_code rec, std::size_t) {
                if (self->conn_ != c) return;
                if (rec) return done({false, true, "receive: " + rec.message()});
                const auto& r = c->response;
                const bool ok = r.result() == http::status::ok && r.body().find("\"error\"") == std::string::npos;
                done({ok, !r.keep_alive(), ok ? std::string() : std::to_string(r.result_int()) + " " + r.body()});
            });
        });
    }
    void close() override {
        if (!conn_) return;
        boost::system::error_code ignored;
        conn_->socket.close(ignored);
        conn_.reset();
    }

private:
    // Per connection, so a closed connection's pending operations keep
    // their buffers alive until they finish.
    struct Conn {
        explicit Conn(asio::io_context& io) : socket(io) {}
        asio::ip::tcp::socket socket;
        beast::flat_buffer buffer;
        http::request<http::string_body> request;
        http::response<http::string_body> response;
    };

    asio::io_context& io_;
    asio::ip::tcp::endpoint to_;
    std::string key_;
    std::uint64_t value_ = 0;
    std::shared_ptr<Conn> conn_;
};

// A Ringleader client connection: Hello, then a client session with shard
// 1 opened once (it lives in the shard's log, so it outlasts the
// connection), then transfers of 1 numbered in it.
class RingleaderChannel : public Channel, public std::enable_shared_from_this<RingleaderChannel> {
public:
    RingleaderChannel(asio::io_context& io, asio::ip::tcp::endpoint to, std::string cluster, config::ItemRange items,
                      std::uint32_t loop)
        : io_(io), to_(std::move(to)), cluster_(std::move(cluster)), items_(items), rng_(loop) {}

    void open(Done done) override {
        close();
        auto socket = std::make_shared<transport::tcp::socket>(io_);
        const auto generation = ++generation_;
        socket->async_connect(to_, [self = shared_from_this(), socket, generation, done](boost::system::error_code ec) {
            if (self->generation_ != generation) return;
            if (ec) return done({false, true, "connect: " + ec.message()});
            self->greet(std::move(*socket), generation, done);
        });
    }
    void write(Done done) override {
        if (txid_.seq == 0) {
            txid_ = {session_, ++seq_};
            from_ = pick();
            do {
                to_item_ = pick();
            } while (to_item_ == from_);
        }
        pending_ = std::move(done);
        want_ = next_request_id_++;
        conn_->send(transport::TransferRequest{want_, txid_, from_, to_item_, 1});
    }
    void close() override {
        ++generation_;
        pending_ = nullptr;
        if (!conn_) return;
        conn_->close("closed");
        // Released later: close() may run inside one of the connection's own handlers.
        asio::post(io_, [c = std::move(conn_)] {});
    }

private:
    ItemId pick() { return ItemId{items_.first.value + uniform(rng_, 0, items_.size() - 1)}; }

    void greet(transport::tcp::socket socket, std::uint64_t generation, Done done) {
        socket.set_option(asio::ip::tcp::no_delay(true));
        conn_ = std::make_shared<transport::Connection>(std::move(socket), transport::ConnectionLimits{});
        pending_ = std::move(done);
        std::weak_ptr<RingleaderChannel> weak = shared_from_this();
        conn_->start(transport::Connection::Handlers{
            .on_message =
                [weak, generation](transport::Message&& m) {
                    auto self = weak.lock();
                    if (self && self->generation_ == generation) self->on_message(m);
                },
            .on_close =
                [weak, generation](const std::string& reason, const std::string& detail) {
                    auto self = weak.lock();
                    if (self && self->generation_ == generation) self->finish({false, true, reason + " " + detail});
                }});
        conn_->send(transport::Hello{transport::Role::client, kNoNode, cluster_, transport::kProtocolVersion});
    }
    void on_message(const transport::Message& m) {
        if (std::holds_alternative<transport::Hello>(m)) {
            if (session_ != 0) return finish({true, false, {}});
            want_ = next_request_id_++;
            conn_->send(transport::SessionRequest{want_, items_.first});
            return;
        }
        if (const auto* s = std::get_if<transport::SessionReply>(&m); s && s->request_id == want_) {
            session_ = s->session;
            return finish({true, false, {}});
        }
        if (const auto* t = std::get_if<transport::TransferReply>(&m); t && t->request_id == want_) {
            // Committed or aborted, the txid is decided: the next write takes a new one.
            txid_ = {};
            return finish({t->committed, false, t->committed ? std::string() : "aborted: " + t->reason});
        }
        if (const auto* e = std::get_if<transport::ErrorReply>(&m); e && e->request_id == want_) {
            // Not decided: the retry keeps the txid, so it applies at most once.
            return finish({false, session_ == 0, e->code + ": " + e->message});
        }
        if (const auto* r = std::get_if<transport::Refuse>(&m)) finish({false, true, "refused: " + r->reason});
    }
    void finish(Outcome outcome) {
        if (!pending_) return;
        auto done = std::move(pending_);
        pending_ = nullptr;
        done(std::move(outcome));
    }

    asio::io_context& io_;
    asio::ip::tcp::endpoint to_;
    std::string cluster_;
    config::ItemRange items_;
    Rng rng_;
    std::shared_ptr<transport::Connection> conn_;
    std::uint64_t generation_ = 0;
    std::uint64_t next_request_id_ = 1;
    std::uint64_t want_ = 0;  // request id of the request in flight
    std::uint64_t session_ = 0;
    std::uint64_t seq_ = 0;
    txn::TxnId txid_;  // of the undecided write; seq 0: none
    ItemId from_, to_item_;
    Done pending_;
};

struct Stats {
    std::vector<std::uint32_t> latencies_us;  // successful writes sent after the warm-up
    std::uint64_t errors = 0;                 // error answers and broken connections
    std::uint64_t timeouts = 0;
    std::string first_error;
};

// Called on every successful write with the time it was sent; returns
// false to stop the loop.
using OnSuccess = std::function<bool(Clock::time_point sent_at)>;

// One closed loop: open, write, await the outcome, repeat until stop_at.
class Loop : public std::enable_shared_from_this<Loop> {
public:
    Loop(asio::io_context& io, std::shared_ptr<Channel> channel, const Args& a, Stats& stats,
         Clock::time_point measure_from, Clock::time_point stop_at, OnSuccess on_success)
        : channel_(std::move(channel)), attempt_timer_(io), pause_timer_(io), attempt_timeout_(a.attempt_timeout_ms),
          retry_pause_(a.retry_pause_ms), stats_(stats), measure_from_(measure_from), stop_at_(stop_at),
          on_success_(std::move(on_success)) {}

    void start() { open(); }

private:
    void open() {
        if (finished()) return;
        arm();
        channel_->open([self = shared_from_this(), attempt = attempt_](Outcome o) {
            if (attempt != self->attempt_) return;
            self->disarm();
            if (!o.ok) return self->failed(o);
            self->send();
        });
    }
    void send() {
        if (finished()) return;
        sent_at_ = Clock::now();
        arm();
        channel_->write([self = shared_from_this(), attempt = attempt_](Outcome o) {
            if (attempt != self->attempt_) return;
            self->disarm();
            if (!o.ok) return self->failed(o);
            const auto now = Clock::now();
            if (self->sent_at_ >= self->measure_from_) {
                self->stats_.latencies_us.push_back(static_cast<std::uint32_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(now - self->sent_at_).count()));
            }
            if (self->on_success_ && !self->on_success_(self->sent_at_)) self->stop_at_ = now;
            self->send();
        });
    }
    // Each attempt (open or write) gets --attempt-timeout-ms; past it the
    // connection is dropped and opened again.
    void arm() {
        ++attempt_;
        attempt_timer_.expires_after(attempt_timeout_);
        attempt_timer_.async_wait([self = shared_from_this(), attempt = attempt_](boost::system::error_code ec) {
            if (ec || attempt != self->attempt_) return;
            ++self->attempt_;
            ++self->stats_.timeouts;
            self->channel_->close();
            self->open();
        });
    }
    void disarm() {
        ++attempt_;
        attempt_timer_.cancel();
    }
    void failed(const Outcome& o) {
        ++stats_.errors;
        if (stats_.first_error.empty()) stats_.first_error = o.error;
        if (o.broken) channel_->close();
        pause_timer_.expires_after(retry_pause_);
        pause_timer_.async_wait([self = shared_from_this(), broken = o.broken](boost::system::error_code ec) {
            if (ec) return;
            broken ? self->open() : self->send();
        });
    }
    bool finished() {
        if (Clock::now() < stop_at_) return false;
        channel_->close();
        attempt_timer_.cancel();
        return true;
    }

    std::shared_ptr<Channel> channel_;
    asio::steady_timer attempt_timer_, pause_timer_;
    milliseconds attempt_timeout_, retry_pause_;
    Stats& stats_;
    Clock::time_point measure_from_, stop_at_, sent_at_;
    OnSuccess on_success_;
    std::uint64_t attempt_ = 0;  // outcomes and timers of older attempts are ignored
};

// The system under test, as the driver needs it.
class System {
public:
    virtual ~System() = default;
    virtual std::size_t members() const = 0;
    // The member all members name as leader, or nullopt.
    virtual std::optional<std::size_t> agreed_leader() const = 0;
    virtual std::string pid_file(std::size_t member) const = 0;
    virtual std::shared_ptr<Channel> channel(asio::io_context& io, std::size_t member, std::uint32_t loop) const = 0;
};

class Ringleader : public System {
public:
    explicit Ringleader(const Args& a) : config_(config::Config::load(a.config)), run_dir_(a.run_dir) {
        shard_ = config_.shard(ShardId{1});
        if (shard_ == nullptr) throw po::error(a.config + " has no [shard.1]");
        if (shard_->items.front().size() < 2) throw po::error("shard 1's first item range needs two items");
    }
    std::size_t members() const override { return shard_->nodes.size(); }
    std::optional<std::size_t> agreed_leader() const override {
        std::optional<transport::LeaderReply> first;
        for (NodeId id : shard_->nodes) {
            const auto l = leader_known_by(id);
            if (!l || l->leader == kNoNode) return std::nullopt;
            if (first && (l->leader != first->leader || l->epoch != first->epoch)) return std::nullopt;
            first = l;
        }
        const auto it = std::find(shard_->nodes.begin(), shard_->nodes.end(), first->leader);
        if (it == shard_->nodes.end()) return std::nullopt;
        return static_cast<std::size_t>(it - shard_->nodes.begin());
    }
    std::string pid_file(std::size_t member) const override {
        return run_dir_ + "/node-" + std::to_string(shard_->nodes[member].value) + ".pid";
    }
    std::shared_ptr<Channel> channel(asio::io_context& io, std::size_t member, std::uint32_t loop) const override {
        return std::make_shared<RingleaderChannel>(io, parse_endpoint(address(shard_->nodes[member])),
                                                   config_.cluster().name, shard_->items.front(), loop);
    }

private:
    std::string address(NodeId id) const { return config_.node(id)->address.to_string(); }
    // Asked of that member alone (no forwarding).
    std::optional<transport::LeaderReply> leader_known_by(NodeId id) const {
        try {
            tools::Client c(config_.cluster().name);
            const auto deadline = Clock::now() + milliseconds(300);
            c.connect(address(id), deadline);
            const auto reply = c.call(transport::LeaderRequest{0, ShardId{1}}, deadline);
            if (const auto* l = std::get_if<transport::LeaderReply>(&reply)) return *l;
        } catch (const std::exception&) {
        }
        return std::nullopt;
    }

    config::Config config_;
    const config::ShardConfig* shard_ = nullptr;
    std::string run_dir_;
};

// One HTTP POST with a deadline, on its own io_context; nullopt on any failure.
std::optional<std::string> post(const asio::ip::tcp::endpoint& to, const std::string& target, const std::string& body) {
    asio::io_context io;
    beast::tcp_stream stream(io);
    beast::flat_buffer buffer;
    http::request<http::string_body> request{http::verb::post, target, 11};
    http::response<http::string_body> response;
    request.set(http::field::host, to.address().to_string());
    request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    bool ok = false;
    stream.expires_after(milliseconds(300));
    stream.async_connect(to, [&](beast::error_code ec) {
        if (ec) return;
        http::async_write(stream, request, [&](beast::error_code wec, std::size_t) {
            if (wec) return;
            http::async_read(stream, buffer, response, [&](beast::error_code rec, std::size_t) {
                ok = !rec && response.result() == http::status::ok;
            });
        });
    });
    io.run();
    if (!ok) return std::nullopt;
    return response.body();
}

class Etcd : public System {
public:
    explicit Etcd(const Args& a) : run_dir_(a.run_dir) {
        std::stringstream list(a.endpoints);
        for (std::string item; std::getline(list, item, ',');) {
            try {
                endpoints_.push_back(parse_endpoint(item));
            } catch (const std::exception& e) {
                throw po::error("--endpoints: \"" + item + "\" is not HOST:PORT (" + e.what() + ")");
            }
        }
        if (endpoints_.size() < 2) throw po::error("--endpoints needs at least two HOST:PORT, comma-separated");
    }
    std::size_t members() const override { return endpoints_.size(); }
    // Member ids are 64-bit numbers, which the gateway writes as strings.
    std::optional<std::size_t> agreed_leader() const override {
        std::string leader;
        std::optional<std::size_t> index;
        for (std::size_t i = 0; i < endpoints_.size(); ++i) {
            const auto body = post(endpoints_[i], "/v3/maintenance/status", "{}");
            if (!body) return std::nullopt;
            const auto status = nlohmann::json::parse(*body, nullptr, false);
            if (status.is_discarded() || !status.contains("leader") || !status.contains("header")) return std::nullopt;
            const auto said = status["leader"].get<std::string>();
            if (said.empty() || said == "0" || (!leader.empty() && said != leader)) return std::nullopt;
            leader = said;
            if (status["header"].value("member_id", std::string()) == said) index = i;
        }
        return index;
    }
    std::string pid_file(std::size_t member) const override {
        return run_dir_ + "/etcd-" + std::to_string(member + 1) + ".pid";
    }
    std::shared_ptr<Channel> channel(asio::io_context& io, std::size_t member, std::uint32_t loop) const override {
        return std::make_shared<EtcdChannel>(io, endpoints_[member], loop);
    }

private:
    std::vector<asio::ip::tcp::endpoint> endpoints_;
    std::string run_dir_;
};

std::size_t wait_for_leader(const System& system) {
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < until) {
        if (const auto leader = system.agreed_leader()) return *leader;
        std::this_thread::sleep_for(milliseconds(20));
    }
    throw std::runtime_error("the members did not agree on a leader within 20 s");
}

using rl::tools::percentile;

void print(const nlohmann::ordered_json& r) {
    for (const auto& [k, v] : r.items()) {
        std::cout << k << "=" << (v.is_string() ? nlohmann::json(v.get<std::string>()).dump() : v.dump()) << " ";
    }
    std::cout << "\n";
}

int run_load(const Args& a, const System& system) {
    const std::size_t leader = wait_for_leader(system);
    asio::io_context io(1);
    const auto measure_from = Clock::now() + milliseconds(a.warmup_ms);
    const auto stop_at = measure_from + milliseconds(a.duration_ms);
    Stats stats;
    for (std::uint32_t i = 0; i < a.connections; ++i) {
        std::make_shared<Loop>(io, system.channel(io, leader, i), a, stats, measure_from, stop_at, nullptr)->start();
    }
    io.run();
    const auto n = stats.latencies_us.size();
    nlohmann::ordered_json r = {{"system", a.system},
                                {"mode", "load"},
                                {"connections", a.connections},
                                {"writes", n},
                                {"per_second", static_cast<std::uint64_t>(n * 1000.0 / a.duration_ms)},
                                {"p50_us", percentile(stats.latencies_us, 0.50)},
                                {"p99_us", percentile(stats.latencies_us, 0.99)},
                                {"errors", stats.errors},
                                {"timeouts", stats.timeouts}};
    if (!stats.first_error.empty()) r["first_error"] = stats.first_error;
    print(r);
    return n > 0 ? 0 : 1;
}

int run_failover(const Args& a, const System& system) {
    const std::size_t leader = wait_for_leader(system);
    const std::size_t survivor = leader == 0 ? 1 : 0;
    std::ifstream pidfile(system.pid_file(leader));
    pid_t pid = 0;
    if (!(pidfile >> pid) || pid <= 0) throw std::runtime_error("no pid in " + system.pid_file(leader));
    asio::io_context io(1);
    const auto kill_after = Clock::now() + milliseconds(a.warmup_ms);
    std::optional<Clock::time_point> killed, first_write;
    Stats stats;
    std::uint64_t before_kill = 0;
    const OnSuccess on_success = [&](Clock::time_point sent_at) {
        const auto now = Clock::now();
        if (!killed) {
            ++before_kill;
            if (now < kill_after) return true;
            ::kill(pid, SIGKILL);
            killed = Clock::now();
            return true;
        }
        if (sent_at < *killed) return true;
        first_write = now;
        return false;
    };
    const auto stop_at = kill_after + milliseconds(a.failover_limit_ms);
    std::make_shared<Loop>(io, system.channel(io, survivor, 0), a, stats, stop_at, stop_at, on_success)->start();
    io.run();
    if (!killed) {
        throw std::runtime_error("no write succeeded through the survivor before the kill: " + stats.first_error);
    }
    if (!first_write) throw std::runtime_error("no write succeeded within --failover-limit-ms after the kill");
    nlohmann::ordered_json r = {
        {"system", a.system},
        {"mode", "failover"},
        {"killed_member", leader + 1},
        {"survivor_member", survivor + 1},
        {"writes_before_kill", before_kill},
        {"failover_ms", std::chrono::duration_cast<milliseconds>(*first_write - *killed).count()},
        {"errors", stats.errors},
        {"timeouts", stats.timeouts}};
    if (!stats.first_error.empty()) r["first_error"] = stats.first_error;
    print(r);
    return 0;
}

Args parse_args(int argc, char** argv) {
    Args a;
    po::options_description desc(
        "rlcompare SYSTEM MODE [options]\nSYSTEM: ringleader (--config) or etcd (--endpoints); MODE: load or failover "
        "(--run-dir)\nOptions");
    desc.add_options()("help,h", "show this help")("config", po::value(&a.config), "ringleader: deployment INI")(
        "endpoints", po::value(&a.endpoints), "etcd: client HOST:PORT of every member, comma-separated")(
        "run-dir", po::value(&a.run_dir), "failover: dir with the members' pid files")(
        "connections", po::value(&a.connections), "load: concurrent closed loops (default 1)")(
        "duration-ms", po::value(&a.duration_ms), "load: measured run length (default 3000)")(
        "warmup-ms", po::value(&a.warmup_ms), "unmeasured start; failover: writes before the kill (default 500)")(
        "attempt-timeout-ms", po::value(&a.attempt_timeout_ms),
        "an attempt without an answer for this long reconnects and resends (default 100)")(
        "retry-pause-ms", po::value(&a.retry_pause_ms), "pause before retrying after an error (default 10)")(
        "failover-limit-ms", po::value(&a.failover_limit_ms), "failover: give up after this long (default 30000)");
    po::options_description hidden;
    hidden.add_options()("system", po::value(&a.system))("mode", po::value(&a.mode));
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description pos;
    pos.add("system", 1).add("mode", 1);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
    if (vm.count("help") || a.system.empty()) {
        std::cout << desc << "\n";
        std::exit(vm.count("help") ? 0 : 2);
    }
    if (a.system != "ringleader" && a.system != "etcd") throw po::error("SYSTEM must be ringleader or etcd");
    if (a.mode != "load" && a.mode != "failover") throw po::error("MODE must be load or failover");
    if (a.system == "ringleader" && a.config.empty()) throw po::error("ringleader needs --config");
    if (a.system == "etcd" && a.endpoints.empty()) throw po::error("etcd needs --endpoints");
    if (a.mode == "failover" && a.run_dir.empty()) throw po::error("failover needs --run-dir");
    if (a.connections == 0 || a.connections > 10000) throw po::error("--connections must be 1..10000");
    if (a.duration_ms == 0) throw po::error("--duration-ms must be positive");
    if (a.attempt_timeout_ms == 0) throw po::error("--attempt-timeout-ms must be positive");
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse_args(argc, argv);
        std::unique_ptr<System> system;
        if (a.system == "etcd") {
            system = std::make_unique<Etcd>(a);
        } else {
            system = std::make_unique<Ringleader>(a);
        }
        return a.mode == "load" ? run_load(a, *system) : run_failover(a, *system);
    } catch (const po::error& e) {
        std::cerr << "rlcompare: " << e.what() << " (see rlcompare --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "rlcompare: " << e.what() << "\n";
        return 2;
    }
}
