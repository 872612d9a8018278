// rlbench: load from many concurrent clients in one process, asynchronous on
// one io_context (no thread per client). Each client runs a closed loop (one
// request in flight), so throughput and latency are measured together.
// Clients share connections with --connections C: client k sends through
// connection k mod C to the node it talks to, requests of several clients
// ride one connection, and each reply finds its client by request id.
//   rlbench --config FILE [--clients N] [--connections C] [--requests M | --duration S]
//           [--cross-shard PCT] [--read PCT] [--skew uniform|zipf|zipf:S]
//           [--seed N] [--csv FILE] [--json]
//   rlbench ping HOST:PORT [--clients N] [--duration S]
//   rlbench failover --config FILE --run-dir DIR [--shard S]
// With no workload word (or `transfer`) it sends transfers of 1. Each client
// is bound to one FROM shard (every shard of the config, or only --shard;
// clients are dealt to them round-robin), starts at that shard's leader
// (found with `leader`), which coordinates the cross-shard ones
// (docs/design.md section 6.7), opens its own client session there (not
// measured) and numbers its transfers in it from seq 1 (section 6.4). FROM
// is drawn from the client's shard; TO from the same shard, or in PCT % of
// transfers from another shard. With --read PCT that share of requests are
// linearizable `balance` reads (section 6.5) of an item drawn the same way.
// Items are drawn uniformly, or by Zipf's law over their rank in their shard
// (the first item is the hottest; zipf alone means s = 1.1). Every draw
// comes from the client's own generator, seeded with --seed (printed) plus
// its number.
//
// Clients ride out failover: on `unavailable` or `timeout`, a lost
// connection, a refused connect or no reply within --timeout-ms, a client
// backs off (20 ms doubling to 500 ms) and resends the same request, so a
// transfer keeps its txid and is applied at most once (section 6.4), at the
// hinted leader when the reply names a member of its shard, else at the
// next member on a lost connection. After --retries resends it gives up and
// the request counts as an error, by the last reason.
//
// --kill-leader-of S --kill-after-ms T --run-dir DIR SIGKILLs shard S's
// leader (the node most of S's clients talk to then, as they follow leader
// hints; pid from DIR/node-N.pid, as tools/rlcluster writes them) T ms into
// the measured run, on the clock that times the requests, and reports the
// unavailability window of requests that touch shard S: from the last
// success before the kill to the first success of a request (re)sent after
// it.
//
// `failover` finds the shard's leader, SIGKILLs it and measures until every
// survivor reports the same new leader, which itself reports role leader.
//
// Prints one line of key=value figures (or JSON with --json) on stdout:
// replies to requests sent after the warm-up, throughput, latency
// percentiles for all, intra- and cross-shard requests, aborts by reason
// (aborts_REASON) and requests that finally failed by reason
// (errors_REASON). A progress bar and a readable summary go to stderr when
// it is a terminal. --csv FILE writes one row per second (--csv-interval-ms)
// of the measured run: second, committed, aborted, errors, reads, p50_us,
// p99_us, retries.
#include "config/config.hpp"
#include "config/random.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"
#include "tools/percentile.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <unordered_map>

namespace po = boost::program_options;
using namespace rl;
using Clock = std::chrono::steady_clock;

namespace {

constexpr double kZipfDefaultS = 1.1;

struct Args {
    std::string workload = "transfer";
    std::string endpoint;
    std::string config;
    std::optional<std::uint64_t> shard;  // transfer: only this FROM shard; failover: this shard (default 1)
    std::string run_dir;
    std::uint32_t clients = 1;
    std::optional<std::uint32_t> connections;  // shared by the clients (default: one each)
    std::optional<std::uint32_t> duration_ms;  // stop sending after this (default 3000 unless --requests)
    std::optional<std::uint64_t> requests;     // stop after this many measured requests
    std::uint32_t warmup_ms = 500;             // unmeasured start (0 with --requests)
    double cross_pct = 0;                      // share (percent) of transfers whose TO is in another shard
    double read_pct = 0;                       // share (percent) of requests that are balance reads
    std::uint32_t batch = 1;                   // transfers per request (a `transfers` request when > 1)
    double zipf_s = 0;                         // 0: uniform items
    std::string skew = "uniform";              // as given
    std::optional<std::uint64_t> seed;
    bool json = false;
    std::string csv;
    std::uint32_t csv_interval_ms = 1000;
    std::uint32_t retries = 10;       // resends of one request before it counts as failed
    std::uint32_t timeout_ms = 5000;  // one attempt's wait for its reply
    std::optional<std::uint64_t> kill_shard;
    std::uint32_t kill_after_ms = 0;
    bool progress = true;  // only when stderr is a terminal
};

// Abort reasons the nodes give (docs/design.md section 4 and
// txn::AbortReason), always printed so a zero is visible; any other reason
// a reply names is printed too.
constexpr const char* kAbortReasons[] = {"insufficient_funds", "overflow", "expired", "session_expired",
                                         "timeout",            "mismatch", "bad_request"};
// Why a request finally failed: the node's retryable error codes and the
// client's own (no_reply: --timeout-ms passed; connection_lost; connect_failed).
constexpr const char* kErrorReasons[] = {"unavailable", "timeout", "no_reply", "connection_lost", "connect_failed"};
// An attempt is sent again for one of those, or for a batch reply in which
// some transfers have no outcome yet (the same batch again learns them).
constexpr const char* kBatchIncomplete = "batch_incomplete";

// ---- Figures ---------------------------------------------------------------

// One interval of the measured run (a CSV row).
struct Bucket {
    std::uint64_t committed = 0, aborted = 0, errors = 0, reads = 0, retries = 0;
    std::vector<std::uint32_t> latencies_us;
};

struct Stats {
    std::vector<std::uint32_t> latencies_us;        // one per answered request sent after the warm-up
    std::vector<std::uint32_t> intra_latencies_us;  // transfers within one shard, of those
    std::vector<std::uint32_t> cross_latencies_us;  // transfers across shards, of those
    std::uint64_t committed = 0, aborted = 0, reads = 0, errors = 0, retries = 0;
    std::map<std::string, std::uint64_t> aborts;  // by reason
    std::map<std::string, std::uint64_t> failed;  // requests that finally failed, by reason
    std::map<std::string, std::uint64_t> retried; // attempts sent again, by reason
    std::string first_error;
    Clock::time_point last_reply;  // of a measured request
    std::vector<Bucket> timeline;
    // --kill-leader-of: requests that touch that shard.
    std::optional<Clock::time_point> killed_at;
    NodeId killed = kNoNode;
    std::optional<Clock::time_point> last_ok_before, first_ok_after;
};

using tools::percentile;

std::uint32_t max_of(const std::vector<std::uint32_t>& v) {
    return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

std::uint32_t micros(Clock::duration d) {
    return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

std::int64_t millis(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

// ---- Requests ----------------------------------------------------------------

enum class Kind { ping, session, transfer, read };

// One request and its attempts. Today it carries one transfer, one read or
// one ping; a batched request would carry K transfers and be recorded as K.
struct Op {
    transport::ClientRequest request;
    Kind kind = Kind::ping;
    std::uint64_t seqs = 1;  // session seqs its transfers take (K for a batch of K)
    bool cross = false;  // a transfer whose TO is in `other`
    ShardId other;
    Clock::time_point first_sent, last_sent;
    std::uint32_t attempts = 0;
};

// The next request of a client: `seq` counts from 1, `session` is the
// client's session (0 for a workload without one).
using MakeOp = std::function<Op(std::uint64_t seq, std::uint64_t session)>;

// What one client does: whom it talks to, what it sends, which shard it
// opens its session with.
struct Target {
    ShardId home;
    std::vector<tools::NodeEndpoint> nodes;  // its shard's members (one endpoint for ping)
    std::size_t first = 0;                   // the leader among them
    MakeOp make;
    std::optional<ItemId> session_item;
};

// What every client shares: the run's bounds and its figures.
struct Shared {
    std::string cluster;
    Clock::time_point measure_from;
    std::optional<Clock::time_point> stop_at;
    std::optional<std::uint64_t> requests_max;
    std::uint32_t retries_max = 10;
    Clock::duration attempt_timeout{};
    Clock::duration interval{};
    std::optional<ShardId> watch;  // --kill-leader-of
    std::uint64_t issued = 0;      // measured requests sent (for --requests)
    std::uint64_t answered = 0;    // measured requests answered or failed
    std::uint32_t clients_done = 0;
    Stats stats;

    Bucket& bucket(Clock::time_point at) {
        const auto i = static_cast<std::size_t>(std::max<Clock::rep>(0, (at - measure_from) / interval));
        if (i >= stats.timeline.size()) stats.timeline.resize(i + 1);
        return stats.timeline[i];
    }
    bool touches_watch(ShardId home, const Op& op) const {
        return watch && (home == *watch || (op.cross && op.other == *watch));
    }
    void record_reply(ShardId home, const Op& op, const transport::ClientReply& reply, Clock::time_point now);
    void record_failure(const Op& op, const std::string& reason, const std::string& detail, Clock::time_point now);
    void record_retry(const Op& op, const std::string& reason, Clock::time_point now) {
        if (op.first_sent < measure_from) return;
        ++stats.retries;
        ++stats.retried[reason];
        ++bucket(now).retries;
    }
};

void Shared::record_reply(ShardId home, const Op& op, const transport::ClientReply& reply, Clock::time_point now) {
    if (touches_watch(home, op)) {
        if (!stats.killed_at) {
            stats.last_ok_before = now;
        } else if (op.last_sent > *stats.killed_at && !stats.first_ok_after) {
            stats.first_ok_after = now;
        }
    }
    if (op.first_sent < measure_from) return;
    ++answered;
    stats.last_reply = now;
    Bucket& b = bucket(now);
    if (const auto* t = std::get_if<transport::TransferReply>(&reply)) {
        if (t->committed) {
            ++stats.committed;
            ++b.committed;
        } else {
            ++stats.aborted;
            ++b.aborted;
            ++stats.aborts[t->reason.empty() ? std::string("unknown") : t->reason];
        }
    } else if (const auto* batch = std::get_if<transport::TransfersReply>(&reply)) {
        for (const auto& o : batch->each) {
            if (o.status == txn::BatchStatus::committed) {
                ++stats.committed;
                ++b.committed;
            } else if (o.status == txn::BatchStatus::aborted) {
                ++stats.aborted;
                ++b.aborted;
                ++stats.aborts[o.reason.empty() ? std::string("unknown") : o.reason];
            } else {
                ++stats.errors;
                ++stats.failed[o.reason.empty() ? std::string("failed") : o.reason];
                ++b.errors;
            }
        }
    } else if (std::holds_alternative<transport::BalanceReply>(reply)) {
        ++stats.reads;
        ++b.reads;
    }
    const auto us = micros(now - op.first_sent);  // over every attempt: what the user waited
    stats.latencies_us.push_back(us);
    b.latencies_us.push_back(us);
    if (op.kind == Kind::transfer) (op.cross ? stats.cross_latencies_us : stats.intra_latencies_us).push_back(us);
}

void Shared::record_failure(const Op& op, const std::string& reason, const std::string& detail,
                            Clock::time_point now) {
    if (stats.first_error.empty()) stats.first_error = reason + (detail.empty() ? "" : ": " + detail);
    if (op.kind != Kind::session && op.first_sent < measure_from) return;
    ++stats.errors;
    ++stats.failed[reason];
    if (op.kind == Kind::session) return;
    ++answered;
    ++bucket(now).errors;
}

// ---- Connections -------------------------------------------------------------

// Told what became of a request sent through a Channel.
class Listener {
public:
    virtual ~Listener() = default;
    virtual void on_channel_reply(std::uint64_t id, const transport::ClientReply& reply) = 0;
    // The connection failed or was lost before the reply: `reason` is
    // connect_failed or connection_lost.
    virtual void on_channel_lost(std::uint64_t id, const std::string& reason, const std::string& detail) = 0;
};

// Connections open now and at most (the `connections` figure).
struct ConnectionCount {
    std::uint32_t open = 0, peak = 0;
};

// One connection to one node, shared by the clients of one slot
// (--connections): it numbers their requests and hands each reply to the
// client whose request id it echoes, so several closed loops ride one
// connection the way a multiplexing client library's callers do. Requests
// sent before the node's Hello wait for it. A client that leaves (to follow
// a leader, after a timeout) only stops listening; when the last one lets
// go, the connection closes. A lost or refused connection fails the attempt
// of every client waiting on it, and the channel is not used again.
class Channel : public std::enable_shared_from_this<Channel> {
public:
    Channel(boost::asio::io_context& io, std::string endpoint, std::string cluster, ConnectionCount& count)
        : io_(io), endpoint_(std::move(endpoint)), cluster_(std::move(cluster)), count_(count) {}
    ~Channel() {
        if (conn_) conn_->close("closed");
        if (socket_) {
            boost::system::error_code ignored;
            socket_->close(ignored);
        }
        uncount();
    }
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;

    bool dead() const { return dead_; }
    NodeId node() const { return node_; }  // kNoNode until the node's Hello

    // Sends `request` under a new request id (returned); the reply or the
    // loss goes to `listener`, unless it forget()s the id first.
    std::uint64_t send(transport::ClientRequest request, std::weak_ptr<Listener> listener) {
        const std::uint64_t id = next_id_++;
        std::visit([id](auto& r) { r.request_id = id; }, request);
        waiting_.emplace(id, std::move(listener));
        if (ready_) {
            std::visit([this](const auto& r) { conn_->send(r); }, request);
        } else {
            held_.emplace_back(id, std::move(request));
            if (!conn_ && !socket_) connect();
        }
        return id;
    }
    void forget(std::uint64_t id) {
        waiting_.erase(id);
        std::erase_if(held_, [id](const auto& h) { return h.first == id; });
    }

private:
    void connect() {
        const auto [host, port] = tools::split_endpoint(endpoint_);
        socket_ = std::make_shared<transport::tcp::socket>(io_);
        socket_->async_connect(transport::tcp::endpoint(boost::asio::ip::make_address(host), port),
                               [weak = weak_from_this(), socket = socket_](const boost::system::error_code& ec) {
                                   auto self = weak.lock();
                                   if (!self || self->dead_) return;
                                   self->socket_.reset();
                                   if (ec) return self->lose("connect_failed", ec.message());
                                   self->on_connected(std::move(*socket));
                               });
    }

    void on_connected(transport::tcp::socket socket) {
        conn_ = std::make_shared<transport::Connection>(std::move(socket), transport::ConnectionLimits{});
        counted_ = true;
        count_.peak = std::max(count_.peak, ++count_.open);
        std::weak_ptr<Channel> weak = shared_from_this();
        conn_->start(transport::Connection::Handlers{
            .on_message = [weak](transport::Message&& m) {
                if (auto self = weak.lock()) self->on_message(m);
            },
            .on_close = [weak](const std::string& reason, const std::string& detail) {
                if (auto self = weak.lock()) self->lose("connection_lost", reason + " " + detail);
            }});
        conn_->send(transport::Hello{transport::Role::client, kNoNode, cluster_, transport::kProtocolVersion});
    }

    void on_message(const transport::Message& m) {
        if (const auto* hello = std::get_if<transport::Hello>(&m)) {
            ready_ = true;
            node_ = hello->node_id;
            for (const auto& [id, request] : held_) std::visit([this](const auto& r) { conn_->send(r); }, request);
            held_.clear();
            return;
        }
        if (const auto* refuse = std::get_if<transport::Refuse>(&m)) return lose("connect_failed", "refused: " + refuse->reason);
        std::visit([this](const auto& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (transport::is_alternative_v<T, transport::ClientReply>) deliver(msg.request_id, msg);
        }, m);
    }

    // A reply to its request's client; one the node could not number (id 0:
    // it could not read the request) to every client waiting here.
    void deliver(std::uint64_t id, const transport::ClientReply& reply) {
        auto self = shared_from_this();  // a client may let go of the channel from inside
        std::vector<std::pair<std::uint64_t, std::weak_ptr<Listener>>> to;
        if (id == 0) {
            to.assign(waiting_.begin(), waiting_.end());
            waiting_.clear();
        } else if (const auto it = waiting_.find(id); it != waiting_.end()) {
            to.emplace_back(*it);
            waiting_.erase(it);
        }
        for (const auto& [n, listener] : to) {
            if (auto l = listener.lock()) l->on_channel_reply(n, reply);
        }
    }

    void lose(const std::string& reason, const std::string& detail) {
        if (dead_) return;
        auto self = shared_from_this();
        dead_ = true;
        ready_ = false;
        if (conn_) conn_->close("closed");
        uncount();  // closed now, though clients backing off still hold it
        const auto to = std::move(waiting_);
        waiting_.clear();
        held_.clear();
        for (const auto& [n, listener] : to) {
            if (auto l = listener.lock()) l->on_channel_lost(n, reason, detail);
        }
    }

    void uncount() {
        if (counted_) --count_.open;
        counted_ = false;
    }

    boost::asio::io_context& io_;
    std::string endpoint_, cluster_;
    ConnectionCount& count_;
    std::shared_ptr<transport::tcp::socket> socket_;  // while connecting
    std::shared_ptr<transport::Connection> conn_;
    bool ready_ = false;    // the node answered Hello
    bool dead_ = false;     // lost or refused: the pool opens a new one
    bool counted_ = false;  // connected and not closed: in count_.open
    NodeId node_ = kNoNode;
    std::uint64_t next_id_ = 1;
    std::unordered_map<std::uint64_t, std::weak_ptr<Listener>> waiting_;
    std::vector<std::pair<std::uint64_t, transport::ClientRequest>> held_;  // sent before the Hello came
};

// The channels of the run, by node and slot: client k uses slot
// k mod --connections. The clients hold them; the pool only finds them.
class ChannelPool {
public:
    ChannelPool(boost::asio::io_context& io, std::string cluster, std::uint32_t slots)
        : io_(io), cluster_(std::move(cluster)), slots_(slots) {}

    std::shared_ptr<Channel> get(const std::string& endpoint, std::uint32_t client) {
        auto& weak = channels_[{endpoint, client % slots_}];
        auto channel = weak.lock();
        if (!channel || channel->dead()) {
            channel = std::make_shared<Channel>(io_, endpoint, cluster_, count_);
            weak = channel;
        }
        return channel;
    }
    std::uint32_t peak() const { return count_.peak; }

private:
    boost::asio::io_context& io_;
    std::string cluster_;
    std::uint32_t slots_;
    ConnectionCount count_;
    std::map<std::pair<std::string, std::uint32_t>, std::weak_ptr<Channel>> channels_;
};
// ---- One client ----------------------------------------------------------------

// A closed loop: open a session if the workload needs one, then send, await
// the reply, record, repeat; retries as the header says. It talks through
// the channel of its slot to the node it is at; a reply to an earlier
// attempt carries another request id and is ignored.
class LoadClient : public Listener, public std::enable_shared_from_this<LoadClient> {
public:
    LoadClient(boost::asio::io_context& io, Shared& shared, ChannelPool& pool, std::uint32_t number, Target target)
        : shared_(shared), pool_(pool), number_(number), target_(std::move(target)), current_(target_.first),
          attempt_timer_(io), backoff_timer_(io) {}

    ShardId home() const { return target_.home; }
    NodeId node() const { return channel_ ? channel_->node() : kNoNode; }  // kNoNode while not connected

    void start() {
        if (target_.session_item) {
            op_ = Op{transport::SessionRequest{0, *target_.session_item}, Kind::session};
            begin_attempt();
        } else {
            next(Clock::now());
        }
    }

    void on_channel_reply(std::uint64_t id, const transport::ClientReply& reply) override {
        if (waiting_ && id == request_id_) on_reply(reply);
    }
    void on_channel_lost(std::uint64_t id, const std::string& reason, const std::string& detail) override {
        if (waiting_ && id == request_id_) fail_attempt(reason, detail, true, kNoNode);
    }

private:
    void begin_attempt() {
        const auto now = Clock::now();
        if (op_.attempts == 0) op_.first_sent = now;
        ++op_.attempts;
        ++attempt_no_;
        attempt_timer_.expires_after(shared_.attempt_timeout);
        attempt_timer_.async_wait([self = shared_from_this(), no = attempt_no_](const boost::system::error_code& ec) {
            if (!ec && no == self->attempt_no_ && self->waiting_) self->fail_attempt("no_reply", "", true, kNoNode);
        });
        waiting_ = true;
        // A channel lost while this client was backing off is not used again.
        if (!channel_ || channel_->dead()) channel_ = pool_.get(target_.nodes[current_].endpoint, number_);
        op_.last_sent = now;
        request_id_ = channel_->send(op_.request, weak_from_this());
    }

    void on_reply(const transport::ClientReply& reply) {
        attempt_timer_.cancel();
        waiting_ = false;
        const auto now = Clock::now();
        const NodeId hint = tools::leader_hint(reply);
        if (const auto* b = std::get_if<transport::TransfersReply>(&reply)) {
            // Some transfers have no outcome yet: the same batch again learns them.
            if (const auto t = tools::tally(*b); t.retry) return fail_attempt(kBatchIncomplete, "", false, hint);
        }
        if (const auto* e = std::get_if<transport::ErrorReply>(&reply)) {
            if (tools::retryable(reply)) return fail_attempt(e->code, e->message, false, hint);
            return give_up(e->code, e->message, now);
        }
        if (const auto* s = std::get_if<transport::SessionReply>(&reply)) session_ = s->session;
        if (op_.kind != Kind::session) shared_.record_reply(target_.home, op_, reply, now);
        // Answered through another node: talk to the leader from now on.
        if (member(hint) && hint != node()) move_to(hint);
        next(now);
    }

    // A retryable failure: back off, then resend the same request, at the
    // hinted member, at the next member (`move`), or where it was.
    void fail_attempt(const std::string& reason, const std::string& detail, bool move, NodeId hint) {
        attempt_timer_.cancel();
        waiting_ = false;
        if (channel_) channel_->forget(request_id_);
        const auto now = Clock::now();
        if (op_.attempts > shared_.retries_max) return give_up(reason, detail, now);
        if (member(hint) && hint != node()) {
            move_to(hint);
        } else if (move) {
            leave_channel();
            if (target_.nodes.size() > 1) current_ = (current_ + 1) % target_.nodes.size();
        }
        shared_.record_retry(op_, reason, now);
        const auto backoff = std::min<std::int64_t>(500, std::int64_t{20} << std::min<std::uint32_t>(op_.attempts - 1, 5));
        backoff_timer_.expires_after(std::chrono::milliseconds(backoff));
        backoff_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) self->begin_attempt();
        });
    }

    void give_up(const std::string& reason, const std::string& detail, Clock::time_point now) {
        shared_.record_failure(op_, reason, detail, now);
        if (op_.kind == Kind::session) return finish();  // without a session every transfer would be refused
        next(now);
    }

    void next(Clock::time_point now) {
        if ((shared_.stop_at && now >= *shared_.stop_at) ||
            (shared_.requests_max && shared_.issued >= *shared_.requests_max)) {
            return finish();
        }
        if (now >= shared_.measure_from) ++shared_.issued;
        op_ = target_.make(seq_ + 1, session_);
        seq_ += op_.seqs;
        begin_attempt();
    }

    void finish() {
        leave_channel();
        attempt_timer_.cancel();
        backoff_timer_.cancel();
        ++shared_.clients_done;
    }

    bool member(NodeId id) const {
        return id != kNoNode &&
               std::any_of(target_.nodes.begin(), target_.nodes.end(), [id](const auto& n) { return n.id == id; });
    }
    void move_to(NodeId id) {
        leave_channel();
        for (std::size_t i = 0; i < target_.nodes.size(); ++i) {
            if (target_.nodes[i].id == id) current_ = i;
        }
    }
    // Stops listening to the channel; the last client to leave closes it.
    void leave_channel() {
        if (channel_) channel_->forget(request_id_);
        channel_.reset();
    }

    Shared& shared_;
    ChannelPool& pool_;
    std::uint32_t number_;  // picks the slot
    Target target_;
    std::size_t current_;  // index into target_.nodes
    std::shared_ptr<Channel> channel_;
    std::uint64_t attempt_no_ = 0;
    bool waiting_ = false;  // an attempt of op_ is under way
    boost::asio::steady_timer attempt_timer_, backoff_timer_;
    Op op_;
    std::uint64_t session_ = 0;
    std::uint64_t seq_ = 0;
    std::uint64_t request_id_ = 0;  // of the attempt under way, in channel_
};
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

// ---- Arguments -----------------------------------------------------------------

// "zipf" -> the default s, "zipf:S" with S > 0 -> S, "uniform" -> 0.
double parse_skew(const std::string& skew) {
    if (skew == "uniform") return 0;
    if (skew == "zipf") return kZipfDefaultS;
    const std::string prefix = "zipf:";
    double s = 0;
    try {
        if (skew.rfind(prefix, 0) != 0) throw std::invalid_argument(skew);
        std::size_t used = 0;
        s = std::stod(skew.substr(prefix.size()), &used);
        if (used != skew.size() - prefix.size()) throw std::invalid_argument(skew);
    } catch (const std::exception&) {
        throw po::error("--skew must be uniform, zipf or zipf:S with a number S > 0, not \"" + skew + "\"");
    }
    if (!(s > 0) || !std::isfinite(s)) throw po::error("--skew zipf:S needs S > 0, not \"" + skew + "\"");
    return s;
}

// "20" or "20%" -> 20, within 0..100.
double parse_percent(const std::string& text, const std::string& flag) {
    double v = -1;
    try {
        std::size_t used = 0;
        v = std::stod(text, &used);
        if (used != text.size() && !(used + 1 == text.size() && text.back() == '%')) v = -1;
    } catch (const std::exception&) {
        v = -1;
    }
    if (!(v >= 0 && v <= 100)) throw po::error(flag + " must be a percentage 0..100, not \"" + text + "\"");
    return v;
}

po::options_description describe_options(Args& a) {
    po::options_description d(
        "rlbench [transfer] --config FILE [options]    transfers (and reads) from many clients\n"
        "rlbench ping HOST:PORT [options]              pings to one node\n"
        "rlbench failover --config FILE --run-dir DIR  SIGKILL a shard's leader, time the new one\nOptions");
    d.add_options()("help,h", "show this help")("config", po::value(&a.config), "deployment INI")(
        "clients", po::value<std::uint32_t>(), "concurrent clients, each a closed loop (default 1)")(
        "connections", po::value<std::uint32_t>(), "connections the clients share, at most this many to each node: "
                                                   "client k uses connection k mod N (default: one per client; "
                                                   "alone, it sets --clients too)")(
        "requests", po::value<std::uint64_t>(), "stop after this many measured requests in all")(
        "duration", po::value<double>(), "measured run in seconds (default 3)")(
        "duration-ms", po::value<std::uint32_t>(), "measured run in milliseconds")(
        "warmup-ms", po::value<std::uint32_t>(), "unmeasured start (default 500; 0 with --requests)")(
        "shard", po::value<std::uint64_t>(),
        "transfer: FROM only in this shard (default: every shard); failover: this shard (default 1)")(
        "cross-shard", po::value<std::string>(), "percent of transfers whose TO is in another shard (default 0)")(
        "read", po::value<std::string>(), "percent of requests that are linearizable balance reads (default 0)")(
        "batch", po::value(&a.batch), "transfers per request: K > 1 sends `transfers` requests of K "
                                      "(docs/design.md section 6.9; at most the config's batch_transfers_max)")(
        "skew", po::value(&a.skew), "uniform (default), zipf (s = 1.1) or zipf:S: items by Zipf's law over "
                                    "their rank in their shard")(
        "seed", po::value<std::uint64_t>(), "seed of the draws (default: random; printed)")(
        "retries", po::value(&a.retries), "resends of a request before it counts as failed (default 10)")(
        "timeout-ms", po::value(&a.timeout_ms), "wait for one attempt's reply (default 5000)")(
        "csv", po::value(&a.csv), "write a timeline of the measured run to FILE")(
        "csv-interval-ms", po::value(&a.csv_interval_ms), "its row length (default 1000)")(
        "kill-leader-of", po::value<std::uint64_t>(), "SIGKILL this shard's leader during the run (needs --run-dir)")(
        "kill-after-ms", po::value(&a.kill_after_ms), "when, after the warm-up (default 0)")(
        "run-dir", po::value(&a.run_dir), "the cluster's pid files (failover, --kill-leader-of)")(
        "no-progress", "no progress bar, even on a terminal")("json", po::bool_switch(&a.json),
                                                               "print the result as JSON");
    return d;
}

// The flags that need more than a type check.
void check_args(Args& a, const po::variables_map& vm) {
    if (vm.count("connections")) a.connections = vm["connections"].as<std::uint32_t>();
    if (vm.count("clients")) {
        a.clients = vm["clients"].as<std::uint32_t>();
    } else if (a.connections) {
        a.clients = *a.connections;
    }
    if (a.clients == 0 || a.clients > 10000) throw po::error("--clients must be 1..10000");
    if (a.connections && (*a.connections == 0 || *a.connections > a.clients)) {
        throw po::error("--connections must be 1..--clients");
    }
    if (vm.count("duration") + vm.count("duration-ms") + vm.count("requests") > 1) {
        throw po::error("give one of --requests, --duration and --duration-ms");
    }
    if (vm.count("duration")) {
        const double s = vm["duration"].as<double>();
        if (!(s > 0 && s <= 86400)) throw po::error("--duration must be 0..86400 seconds");
        a.duration_ms = static_cast<std::uint32_t>(std::max(1.0, s * 1000));
    }
    if (vm.count("duration-ms")) a.duration_ms = vm["duration-ms"].as<std::uint32_t>();
    if (vm.count("requests")) {
        a.requests = vm["requests"].as<std::uint64_t>();
        if (*a.requests == 0 || *a.requests > (std::uint64_t{1} << 40)) throw po::error("--requests must be positive");
        a.warmup_ms = 0;
    } else if (!a.duration_ms) {
        a.duration_ms = 3000;
    }
    if (a.duration_ms && *a.duration_ms == 0) throw po::error("--duration-ms must be positive");
    if (vm.count("warmup-ms")) a.warmup_ms = vm["warmup-ms"].as<std::uint32_t>();
    if (vm.count("shard")) a.shard = vm["shard"].as<std::uint64_t>();
    if (vm.count("seed")) a.seed = vm["seed"].as<std::uint64_t>();
    if (vm.count("cross-shard")) a.cross_pct = parse_percent(vm["cross-shard"].as<std::string>(), "--cross-shard");
    if (vm.count("read")) a.read_pct = parse_percent(vm["read"].as<std::string>(), "--read");
    a.zipf_s = parse_skew(a.skew);
    if (a.timeout_ms == 0) throw po::error("--timeout-ms must be positive");
    if (a.batch == 0) throw po::error("--batch must be at least 1");
    if (a.retries > 1000) throw po::error("--retries must be 0..1000");
    if (a.csv_interval_ms < 10 || a.csv_interval_ms > 3600000) throw po::error("--csv-interval-ms must be 10..3600000");
    if (vm.count("kill-leader-of")) a.kill_shard = vm["kill-leader-of"].as<std::uint64_t>();
    if (a.kill_shard && a.run_dir.empty()) throw po::error("--kill-leader-of needs --run-dir");
    if (vm.count("kill-after-ms") && !a.kill_shard) throw po::error("--kill-after-ms needs --kill-leader-of");
    if (a.kill_shard && a.duration_ms && a.kill_after_ms >= *a.duration_ms) {
        throw po::error("--kill-after-ms must fall within the measured run");
    }
    a.progress = vm.count("no-progress") == 0;
}

void check_workload(const Args& a) {
    if (a.workload != "ping" && a.workload != "transfer" && a.workload != "failover") {
        throw po::error("unknown workload \"" + a.workload + "\" (ping, transfer or failover)");
    }
    if (a.workload == "ping" && a.endpoint.empty()) throw po::error("ping needs HOST:PORT");
    if (a.workload != "ping" && !a.endpoint.empty()) throw po::error("unexpected argument \"" + a.endpoint + "\"");
    if (a.workload != "ping" && a.config.empty()) throw po::error(a.workload + " needs --config");
    if (a.workload == "failover" && a.run_dir.empty()) throw po::error("failover needs --run-dir");
    if (a.workload != "transfer" && (a.cross_pct > 0 || a.read_pct > 0 || a.zipf_s > 0 || a.kill_shard)) {
        throw po::error("--cross-shard, --read, --skew and --kill-leader-of apply to transfer runs");
    }
    if (a.workload == "ping") tools::split_endpoint(a.endpoint);  // says what is wrong with it
}

Args parse_args(int argc, char** argv) {
    Args a;
    po::options_description desc = describe_options(a);
    std::vector<std::string> positional;
    po::options_description hidden;
    hidden.add_options()("positional", po::value(&positional));
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description pos;
    pos.add("positional", 2);
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
    if (vm.count("help") || argc == 1) {
        (vm.count("help") ? std::cout : std::cerr) << desc << "\n";
        std::exit(vm.count("help") ? 0 : 2);
    }
    if (!positional.empty()) a.workload = positional[0];
    if (positional.size() > 1) a.endpoint = positional[1];
    check_args(a, vm);
    check_workload(a);
    return a;
}

// ---- Targets -------------------------------------------------------------------

// The shard's leader, asked of its members (never read from the config).
NodeId find_leader(const config::Config& config, ShardId shard) {
    std::vector<tools::NodeEndpoint> nodes;
    for (NodeId id : config.shard(shard)->nodes) nodes.push_back({id, config.node(id)->address.to_string()});
    tools::RetryingClient client(config.cluster().name, nodes);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
        const auto reply = client.call(transport::LeaderRequest{0, shard}, deadline, true);
        if (const auto* l = std::get_if<transport::LeaderReply>(&reply); l && l->leader != kNoNode) return l->leader;
    }
    throw std::runtime_error("shard " + std::to_string(shard.value) + " has no leader");
}

struct Plan {
    std::string cluster;
    std::function<Target(std::uint32_t client)> target;
    nlohmann::ordered_json describe;   // transfer: shards, cross_shard, read, skew, seed
    std::map<ShardId, NodeId> leaders;  // at the start
};

Plan plan_ping(const Args& a) {
    const std::string endpoint = a.endpoint;
    return {"",
            [endpoint](std::uint32_t) {
                MakeOp make = [](std::uint64_t, std::uint64_t) { return Op{transport::PingRequest{}, Kind::ping}; };
                return Target{ShardId{}, {{kNoNode, endpoint}}, 0, std::move(make), std::nullopt};
            },
            nlohmann::ordered_json::object(),
            {}};
}

// The FROM shards; clients are dealt to them round-robin. More clients on a
// shard than it keeps sessions would evict each other's sessions and
// measure session_expired aborts (docs/design.md section 6.4).
std::vector<ShardId> from_shards(const Args& a, const config::Config& config) {
    std::vector<ShardId> from;
    if (a.shard) {
        const auto* shard = config.shard(ShardId{*a.shard});
        if (shard == nullptr) throw po::error("no shard " + std::to_string(*a.shard));
        from.push_back(shard->id);
    } else {
        for (const auto& [id, shard] : config.shards()) from.push_back(id);
    }
    const std::uint64_t per_shard = (a.clients + from.size() - 1) / from.size();
    if (per_shard > config.cluster().limits.dedup_clients_max) {
        throw po::error("--clients " + std::to_string(a.clients) + " puts " + std::to_string(per_shard) +
                        " sessions on a shard, more than dedup_clients_max = " +
                        std::to_string(config.cluster().limits.dedup_clients_max));
    }
    if (a.cross_pct > 0 && config.shards().size() < 2) {
        throw po::error("--cross-shard needs a config with at least two shards");
    }
    return from;
}

using Pickers = std::map<ShardId, std::shared_ptr<const ItemPicker>>;

// A client's requests: a read of an item of its shard with --read PCT,
// else a transfer of 1 from an item of its shard to one of the same shard
// or, with --cross-shard PCT, of another (uniformly among the others).
MakeOp make_transfers(const Args& a, const Pickers& pickers, ShardId home, std::uint64_t seed) {
    std::vector<std::pair<ShardId, std::shared_ptr<const ItemPicker>>> others;
    for (const auto& [id, picker] : pickers) {
        if (id != home) others.emplace_back(id, picker);
    }
    auto mine = pickers.at(home);
    auto rng = std::make_shared<Rng>(seed);
    const double cross = a.cross_pct / 100, read = a.read_pct / 100;
    const std::uint32_t batch = a.batch;
    return [rng, mine, others, cross, read, batch](std::uint64_t seq, std::uint64_t session) {
        const ItemId from = mine->pick(*rng);
        if (chance(*rng, read)) return Op{transport::BalanceRequest{0, from, false}, Kind::read};
        Op op{transport::TransferRequest{}, Kind::transfer};
        // TO in this shard, or with --cross-shard in another; the op counts
        // as cross-shard when any of its transfers is.
        const auto draw_to = [&](ItemId f) {
            if (!chance(*rng, cross)) return mine->pick_other(*rng, f);
            const auto& [shard, picker] = others[uniform(*rng, 0, others.size() - 1)];
            op.cross = true;
            op.other = shard;
            return picker->pick(*rng);
        };
        if (batch == 1) {
            op.request = transport::TransferRequest{0, {session, seq}, from, draw_to(from), 1};
            return op;
        }
        transport::TransfersRequest r;
        for (std::uint32_t i = 0; i < batch; ++i) {
            const ItemId f = i == 0 ? from : mine->pick(*rng);
            r.transfers.push_back(txn::TransferOp{{session, seq + i}, f, draw_to(f), 1});
        }
        op.request = std::move(r);
        op.seqs = batch;
        return op;
    };
}

Plan plan_transfers(const Args& a) {
    const auto config = config::Config::load(a.config);
    const std::vector<ShardId> from = from_shards(a, config);
    Pickers pickers;
    for (const auto& [id, shard] : config.shards()) {
        pickers.emplace(id, std::make_shared<const ItemPicker>(shard.items, a.zipf_s));
    }
    if (a.cross_pct < 100) {
        for (ShardId id : from) {
            if (pickers.at(id)->size() < 2) {
                throw po::error("shard " + std::to_string(id.value) + " has one item: no transfer within it");
            }
        }
    }
    if (a.kill_shard && config.shard(ShardId{*a.kill_shard}) == nullptr) {
        throw po::error("--kill-leader-of: no shard " + std::to_string(*a.kill_shard));
    }
    std::map<ShardId, NodeId> leaders;
    for (const auto& [id, shard] : config.shards()) {
        if (std::find(from.begin(), from.end(), id) != from.end() || (a.kill_shard && id.value == *a.kill_shard)) {
            leaders.emplace(id, find_leader(config, id));
        }
    }
    std::map<ShardId, std::vector<tools::NodeEndpoint>> members;
    for (const auto& [id, shard] : config.shards()) {
        for (NodeId n : shard.nodes) members[id].push_back({n, config.node(n)->address.to_string()});
    }
    std::random_device entropy;
    const std::uint64_t seed = a.seed ? *a.seed : (std::uint64_t{entropy()} << 32) ^ entropy();
    std::string shard_list;
    for (ShardId id : from) shard_list += (shard_list.empty() ? "" : ",") + std::to_string(id.value);
    nlohmann::ordered_json describe = {
        {"shards", shard_list}, {"cross_shard", a.cross_pct}, {"read", a.read_pct}, {"skew", a.skew}, {"seed", seed}};
    auto target = [a, from, pickers, leaders, members, seed](std::uint32_t c) {
        const ShardId home = from[c % from.size()];
        const auto& nodes = members.at(home);
        const auto leader = std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n.id == leaders.at(home); });
        return Target{home, nodes, static_cast<std::size_t>(leader - nodes.begin()),
                      make_transfers(a, pickers, home, seed + c), pickers.at(home)->first()};
    };
    return {config.cluster().name, std::move(target), describe, leaders};
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


// ---- The run -------------------------------------------------------------------

// A one-line bar on stderr, redrawn every 200 ms.
class Progress {
public:
    Progress(boost::asio::io_context& io, const Shared& shared, Clock::time_point start, std::uint32_t clients)
        : timer_(io), shared_(shared), start_(start), clients_(clients) {}
    void start() { tick(); }
    void clear() {
        timer_.cancel();
        std::cerr << "\r\033[K" << std::flush;
    }

private:
    void tick() {
        draw();
        timer_.expires_after(std::chrono::milliseconds(200));
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec && shared_.clients_done < clients_) tick();
        });
    }
    void draw() {
        const auto now = Clock::now();
        double done = 0;
        if (shared_.requests_max) {
            done = static_cast<double>(shared_.answered) / static_cast<double>(*shared_.requests_max);
        } else if (shared_.stop_at) {
            done = std::chrono::duration<double>(now - start_) / (*shared_.stop_at - start_);
        }
        done = std::clamp(done, 0.0, 1.0);
        const auto per_second = (shared_.answered - last_answered_) * 5;
        last_answered_ = shared_.answered;
        constexpr int kWidth = 30;
        const int filled = static_cast<int>(done * kWidth);
        char line[160];
        std::snprintf(line, sizeof line, "\r[%s%s] %3d%%  %6.1f s  %8llu req/s  errors %llu  retries %llu\033[K",
                      std::string(static_cast<std::size_t>(filled), '#').c_str(),
                      std::string(static_cast<std::size_t>(kWidth - filled), '.').c_str(),
                      static_cast<int>(done * 100), std::chrono::duration<double>(now - start_).count(),
                      static_cast<unsigned long long>(per_second),
                      static_cast<unsigned long long>(shared_.stats.errors),
                      static_cast<unsigned long long>(shared_.stats.retries));
        std::cerr << line << std::flush;
    }

    boost::asio::steady_timer timer_;
    const Shared& shared_;
    Clock::time_point start_;
    std::uint32_t clients_;
    std::uint64_t last_answered_ = 0;
};

// The node most of shard `shard`'s clients talk to when the kill is due:
// they follow leader hints, so it is the leader they see now, even if
// leadership moved since the run began. Without such clients, `fallback`.
NodeId leader_seen(const std::vector<std::shared_ptr<LoadClient>>& clients, ShardId shard, NodeId fallback) {
    std::map<NodeId, std::size_t> votes;
    for (const auto& c : clients) {
        if (c->home() == shard && c->node() != kNoNode) ++votes[c->node()];
    }
    NodeId best = fallback;
    std::size_t most = 0;
    for (const auto& [node, count] : votes) {
        if (count > most) {
            best = node;
            most = count;
        }
    }
    return best;
}

// SIGKILLs shard `shard`'s leader at its time (--kill-leader-of).
void arm_kill(boost::asio::steady_timer& timer, const Args& a, const std::vector<std::shared_ptr<LoadClient>>& clients,
              NodeId leader_at_start, Shared& shared) {
    timer.expires_at(shared.measure_from + std::chrono::milliseconds(a.kill_after_ms));
    timer.async_wait([&a, &clients, leader_at_start, &shared](const boost::system::error_code& ec) {
        if (ec) return;
        const NodeId leader = leader_seen(clients, *shared.watch, leader_at_start);
        const std::string pidfile = a.run_dir + "/node-" + std::to_string(leader.value) + ".pid";
        std::ifstream in(pidfile);
        pid_t pid = 0;
        if (!(in >> pid) || pid <= 0) throw std::runtime_error("--kill-leader-of: no pid in " + pidfile);
        if (::kill(pid, SIGKILL) != 0) throw std::runtime_error("--kill-leader-of: cannot kill pid " + std::to_string(pid));
        shared.stats.killed_at = Clock::now();
        shared.stats.killed = leader;
    });
}

void write_csv(const std::string& path, Stats& stats, std::uint32_t interval_ms, std::size_t rows) {
    std::ofstream out(path);
    if (!out) throw std::runtime_error("cannot write " + path);
    out << "second,committed,aborted,errors,reads,p50_us,p99_us,retries\n";
    rows = std::max(rows, stats.timeline.size());
    stats.timeline.resize(rows);
    for (std::size_t i = 0; i < rows; ++i) {
        Bucket& b = stats.timeline[i];
        const auto ms = i * interval_ms;
        if (interval_ms % 1000 == 0) {
            out << ms / 1000;
        } else {
            char second[32];
            std::snprintf(second, sizeof second, "%.3f", static_cast<double>(ms) / 1000);
            out << second;
        }
        out << "," << b.committed << "," << b.aborted << "," << b.errors << "," << b.reads << ","
            << percentile(b.latencies_us, 0.50) << "," << percentile(b.latencies_us, 0.99) << "," << b.retries << "\n";
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

// Milliseconds since the measured run began, or null.
nlohmann::ordered_json at_ms(const Shared& shared, const std::optional<Clock::time_point>& t) {
    if (!t) return nullptr;
    return millis(*t - shared.measure_from);
}

// Counts by reason as PREFIXreason: each of `always` (0 when none), then any other counted.
void by_reason(nlohmann::ordered_json& r, const std::string& prefix, std::span<const char* const> always,
               const std::map<std::string, std::uint64_t>& counts) {
    for (const char* reason : always) {
        const auto it = counts.find(reason);
        r[prefix + reason] = it == counts.end() ? 0 : it->second;
    }
    for (const auto& [reason, count] : counts) r[prefix + reason] = count;
}

nlohmann::ordered_json figures(const Args& a, const Plan& p, Shared& shared, std::uint32_t connections, double secs) {
    Stats& s = shared.stats;
    const auto n = s.latencies_us.size();
    const auto rate = [secs](std::uint64_t count) {
        return secs > 0 ? static_cast<std::uint64_t>(static_cast<double>(count) / secs) : 0;
    };
    nlohmann::ordered_json r = {{"workload", a.workload}, {"clients", a.clients}, {"connections", connections}, {"requests", n},
                                {"aborted", s.aborted},   {"errors", s.errors},       {"retries", s.retries},
                                {"seconds", secs},        {"per_second", rate(n)},
                                {"p50_us", percentile(s.latencies_us, 0.50)},
                                {"p90_us", percentile(s.latencies_us, 0.90)},
                                {"p99_us", percentile(s.latencies_us, 0.99)}, {"max_us", max_of(s.latencies_us)}};
    by_reason(r, "errors_", kErrorReasons, s.failed);
    std::vector<const char*> retry_reasons(std::begin(kErrorReasons), std::end(kErrorReasons));
    retry_reasons.push_back(kBatchIncomplete);
    by_reason(r, "retries_", retry_reasons, s.retried);
    if (!s.first_error.empty()) r["first_error"] = s.first_error;
    if (a.workload != "transfer") return r;
    for (const auto& [k, v] : p.describe.items()) r[k] = v;
    r["committed"] = s.committed;
    r["committed_per_second"] = rate(s.committed);
    r["reads"] = s.reads;
    r["failed_share"] = n + s.errors > 0 ? static_cast<double>(s.errors) / static_cast<double>(n + s.errors) : 0.0;
    r["intra_requests"] = s.intra_latencies_us.size();
    r["intra_p50_us"] = percentile(s.intra_latencies_us, 0.50);
    r["intra_p99_us"] = percentile(s.intra_latencies_us, 0.99);
    r["cross_requests"] = s.cross_latencies_us.size();
    r["cross_p50_us"] = percentile(s.cross_latencies_us, 0.50);
    r["cross_p99_us"] = percentile(s.cross_latencies_us, 0.99);
    by_reason(r, "aborts_", kAbortReasons, s.aborts);
    if (a.kill_shard) {
        r["killed"] = s.killed == kNoNode ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s.killed.value);
        r["kill_ms"] = at_ms(shared, s.killed_at);
        r["last_ok_before_ms"] = at_ms(shared, s.last_ok_before);
        r["first_ok_after_ms"] = at_ms(shared, s.first_ok_after);
        r["unavailable_ms"] = s.last_ok_before && s.first_ok_after
                                  ? nlohmann::ordered_json(millis(*s.first_ok_after - *s.last_ok_before))
                                  : nlohmann::ordered_json(nullptr);
    }
    return r;
}

void print_figures(const nlohmann::ordered_json& r, bool json) {
    if (json) {
        std::cout << r.dump() << "\n";
        return;
    }
    for (const auto& [k, v] : r.items()) {
        std::cout << k << "=" << (v.is_string() ? nlohmann::json(v.get<std::string>()).dump() : v.dump()) << " ";
    }
    std::cout << "\n";
}

// For a person at a terminal: the figures that matter, in words.
void print_summary(const nlohmann::ordered_json& r) {
    const auto ms = [&](const char* key) {
        char text[32];
        std::snprintf(text, sizeof text, "%.2f", r[key].get<std::uint32_t>() / 1000.0);
        return std::string(text);
    };
    std::cerr << r["requests"] << " requests in " << r["seconds"].get<double>() << " s: " << r["per_second"] << "/s";
    if (r.contains("committed")) {
        std::cerr << " (committed " << r["committed"] << ", aborted " << r["aborted"] << ", reads " << r["reads"] << ")";
    }
    std::cerr << "\nlatency ms: p50 " << ms("p50_us") << "  p90 " << ms("p90_us") << "  p99 " << ms("p99_us")
              << "  max " << ms("max_us") << "\nfailed: " << r["errors"] << " (after " << r["retries"]
              << " retries in all)";
    for (const auto& [k, v] : r.items()) {
        if (k.rfind("errors_", 0) == 0 && v.get<std::uint64_t>() > 0) std::cerr << "  " << k.substr(7) << " " << v;
    }
    std::cerr << "\n";
}

int run_load(const Args& a) {
    const Plan p = a.workload == "ping" ? plan_ping(a) : plan_transfers(a);
    boost::asio::io_context io(1);
    const auto start = Clock::now();
    Shared shared;
    shared.cluster = p.cluster;
    shared.measure_from = start + std::chrono::milliseconds(a.warmup_ms);
    if (a.duration_ms) shared.stop_at = shared.measure_from + std::chrono::milliseconds(*a.duration_ms);
    shared.requests_max = a.requests;
    shared.retries_max = a.retries;
    shared.attempt_timeout = std::chrono::milliseconds(a.timeout_ms);
    shared.interval = std::chrono::milliseconds(a.csv_interval_ms);
    if (a.kill_shard) shared.watch = ShardId{*a.kill_shard};
    ChannelPool pool(io, p.cluster, a.connections.value_or(a.clients));
    std::vector<std::shared_ptr<LoadClient>> clients;
    for (std::uint32_t i = 0; i < a.clients; ++i) {
        clients.push_back(std::make_shared<LoadClient>(io, shared, pool, i, p.target(i)));
        clients.back()->start();
    }
    boost::asio::steady_timer kill_timer(io);
    if (a.kill_shard) arm_kill(kill_timer, a, clients, p.leaders.at(ShardId{*a.kill_shard}), shared);
    std::optional<Progress> progress;
    if (a.progress && ::isatty(STDERR_FILENO)) progress.emplace(io, shared, start, a.clients).start();
    while (shared.clients_done < a.clients && io.run_one() > 0) {
    }
    kill_timer.cancel();
    if (progress) progress->clear();
    io.restart();
    io.poll();  // the cancelled timers' handlers, so none outlives its client
    const auto end = shared.stop_at ? *shared.stop_at : std::max(shared.stats.last_reply, shared.measure_from);
    const double secs = std::chrono::duration<double>(end - shared.measure_from).count();
    const nlohmann::ordered_json r = figures(a, p, shared, pool.peak(), secs);
    if (!a.csv.empty()) {
        const auto rows = static_cast<std::size_t>((end - shared.measure_from + shared.interval - Clock::duration(1)) /
                                                   shared.interval);
        write_csv(a.csv, shared.stats, a.csv_interval_ms, rows);
    }
    print_figures(r, a.json);
    if (a.progress && ::isatty(STDERR_FILENO)) print_summary(r);
    return shared.stats.errors == 0 && !shared.stats.latencies_us.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse_args(argc, argv);
        return a.workload == "failover" ? run_failover(a) : run_load(a);
    } catch (const po::error& e) {
        std::cerr << "rlbench: " << e.what() << " (see rlbench --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "rlbench: " << e.what() << "\n";
        return 2;
    }
}
