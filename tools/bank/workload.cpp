#include <utility>  // before Asio (docs/design.md section 8)

#include "tools/bank/workload.hpp"

#include "config/random.hpp"
#include "tools/commands.hpp"
#include "transport/connection.hpp"

#include <boost/asio.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

namespace rl::bank {
namespace {

using Clock = std::chrono::steady_clock;
using tcp = boost::asio::ip::tcp;

// What every client of the run shares: the deployment, the recorded
// history, and the leaders learnt from replies (one thread, no locks).
struct Shared {
    const config::Config& config;
    WorkloadSpec spec;
    Clock::time_point start, stop_at;
    std::vector<Transfer>& transfers;
    std::vector<Read>& reads;
    WorkloadStats& stats;
    std::map<ShardId, NodeId> leaders;
    std::map<ShardId, std::vector<std::uint64_t>> items;  // the items in play, per shard

    std::int64_t ms(Clock::time_point t) const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t - start).count();
    }
};

enum class OpKind : std::uint8_t { session, transfer, read };

struct Op {
    OpKind kind = OpKind::read;
    ShardId shard;                   // whose nodes it goes to
    transport::ClientRequest request;
    Transfer transfer;               // kind transfer (also the one a session op is for)
    Read read;                       // kind read
    Clock::time_point deadline;
    std::uint64_t first_request_id = 0;
    std::uint32_t attempts = 0;
};

std::uint64_t request_id_of(const transport::Message& m) {
    return std::visit([](const auto& r) -> std::uint64_t {
        if constexpr (requires { r.request_id; }) {
            return r.request_id;
        } else {
            return 0;
        }
    }, m);
}

// One closed loop: one operation at a time, with its retries.
class Client : public std::enable_shared_from_this<Client> {
public:
    Client(boost::asio::io_context& io, Shared& shared, std::uint32_t index)
        : io_(io), timer_(io), s_(shared), rng_(shared.spec.seed * 1000003 + index) {}

    void start() { next_op(); }
    bool done() const { return done_; }

    // Ends the operation in flight (recorded as unknown or failed) and
    // closes every connection.
    void shutdown(const std::string& why) {
        if (op_) end_op_unknown("workload stopped: " + why);
        done_ = true;
        timer_.cancel();
        // Closing may call on_close, which edits links_: close a copy.
        auto links = std::move(links_);
        links_.clear();
        for (auto& [id, link] : links) close_link(link);
    }

private:
    struct Link {
        std::shared_ptr<transport::Connection> conn;
        std::shared_ptr<tcp::socket> connecting;
    };
    struct Session {
        std::uint64_t id = 0;
        std::uint64_t next_seq = 1;
    };

    static void close_link(Link& link) {
        if (link.conn) link.conn->close("closed");
        if (link.connecting) link.connecting->close();
    }

    std::uint64_t pick(const std::vector<std::uint64_t>& v) { return v[uniform(rng_, 0, v.size() - 1)]; }

    void next_op();
    void draw_transfer(Transfer& t, ShardId& shard);
    void begin(Op op);
    void begin_transfer(Transfer t, ShardId shard);
    void attempt();
    NodeId choose_node();
    void send_to(NodeId node);
    void connect(NodeId node);
    void on_connected(NodeId node, const std::shared_ptr<tcp::socket>& socket);
    void on_message(NodeId node, transport::Message&& m);
    void on_closed(NodeId node);
    void fail_attempt(NodeId hint);
    void finish(const transport::Message& m);
    void finish_transfer(const transport::TransferReply& r);
    void end_op_unknown(const std::string& why);
    void record_and_continue();

    boost::asio::io_context& io_;
    boost::asio::steady_timer timer_;  // the attempt's timeout, or the backoff before the next
    Shared& s_;
    Rng rng_;
    std::map<NodeId, Link> links_;
    std::map<ShardId, Session> sessions_;
    std::optional<Op> op_;
    NodeId target_ = kNoNode;
    NodeId last_failed_ = kNoNode;
    bool awaiting_ = false;  // a request to target_ is out and unanswered
    std::uint64_t next_request_id_ = 1;
    std::uint64_t generation_ = 0;  // bumps on every arm, so a stale timer does nothing
    bool done_ = false;
};

void Client::next_op() {
    if (done_) return;
    if (Clock::now() >= s_.stop_at) {
        shutdown("duration reached");
        return;
    }
    if (chance(rng_, s_.spec.read_share)) {
        auto it = s_.items.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(uniform(rng_, 0, s_.items.size() - 1)));
        Op op;
        op.kind = OpKind::read;
        op.shard = it->first;
        op.read.item = pick(it->second);
        op.request = transport::BalanceRequest{0, ItemId{op.read.item}, false};
        return begin(std::move(op));
    }
    Transfer t;
    ShardId shard;
    draw_transfer(t, shard);
    if (sessions_.count(shard)) return begin_transfer(std::move(t), shard);
    Op op;
    op.kind = OpKind::session;
    op.shard = shard;
    op.transfer = std::move(t);
    op.request = transport::SessionRequest{0, ItemId{op.transfer.from}};
    begin(std::move(op));
}

void Client::draw_transfer(Transfer& t, ShardId& shard) {
    auto it = s_.items.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(uniform(rng_, 0, s_.items.size() - 1)));
    shard = it->first;
    t.from = pick(it->second);
    t.cross = s_.items.size() > 1 && chance(rng_, s_.spec.cross_share);
    if (t.cross) {
        auto other = s_.items.begin();
        do {
            other = s_.items.begin();
            std::advance(other, static_cast<std::ptrdiff_t>(uniform(rng_, 0, s_.items.size() - 1)));
        } while (other->first == shard);
        t.to = pick(other->second);
    } else {
        do {
            t.to = pick(it->second);
        } while (t.to == t.from);
    }
    t.amount = static_cast<std::int64_t>(uniform(rng_, 1, static_cast<std::uint64_t>(s_.spec.amount_max)));
}

void Client::begin_transfer(Transfer t, ShardId shard) {
    Session& session = sessions_.at(shard);
    const txn::TxnId txid{session.id, session.next_seq++};
    t.txid = std::to_string(txid.session) + ":" + std::to_string(txid.seq);
    Op op;
    op.kind = OpKind::transfer;
    op.shard = shard;
    op.request = transport::TransferRequest{0, txid, ItemId{t.from}, ItemId{t.to}, t.amount};
    op.transfer = std::move(t);
    begin(std::move(op));
}

void Client::begin(Op op) {
    const auto now = Clock::now();
    op.deadline = now + s_.spec.op_timeout;
    op.first_request_id = next_request_id_;
    op.transfer.start_ms = op.read.start_ms = s_.ms(now);
    op_ = std::move(op);
    last_failed_ = kNoNode;
    attempt();
}

NodeId Client::choose_node() {
    const auto& members = s_.config.shard(op_->shard)->nodes;
    const auto known = s_.leaders.find(op_->shard);
    if (known != s_.leaders.end() && known->second != last_failed_) return known->second;
    if (last_failed_ == kNoNode) return members[uniform(rng_, 0, members.size() - 1)];
    const auto it = std::find(members.begin(), members.end(), last_failed_);
    return it == members.end() || it + 1 == members.end() ? members.front() : *(it + 1);
}

void Client::attempt() {
    if (++op_->attempts > 1) ++s_.stats.retries;
    std::visit([this](auto& r) { r.request_id = next_request_id_++; }, op_->request);
    target_ = choose_node();
    awaiting_ = true;
    const auto gen = ++generation_;
    timer_.expires_at(std::min(Clock::now() + s_.spec.attempt_timeout, op_->deadline));
    timer_.async_wait([weak = weak_from_this(), gen](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || self->generation_ != gen || !self->awaiting_) return;
        // Silent node (cut off, or stuck): drop the connection, go on elsewhere.
        self->awaiting_ = false;
        if (auto it = self->links_.find(self->target_); it != self->links_.end()) {
            Link link = std::move(it->second);
            self->links_.erase(it);
            close_link(link);
        }
        self->fail_attempt(kNoNode);
    });
    send_to(target_);
}

void Client::send_to(NodeId node) {
    auto it = links_.find(node);
    if (it == links_.end()) return connect(node);
    const auto& conn = it->second.conn;
    if (!conn || !conn->open()) return;  // still connecting: on_connected sends it
    std::visit([&conn](const auto& r) { conn->send(transport::Message{r}); }, op_->request);
}

void Client::connect(NodeId node) {
    const auto& address = s_.config.node(node)->address;
    auto socket = std::make_shared<tcp::socket>(io_);
    links_[node] = Link{nullptr, socket};
    const tcp::endpoint ep(boost::asio::ip::make_address(address.host), address.port);
    socket->async_connect(ep, [weak = weak_from_this(), node, socket](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!self) return;
        auto it = self->links_.find(node);
        if (it == self->links_.end() || it->second.connecting != socket) return;  // given up already
        if (ec) {
            self->links_.erase(it);
            return self->on_closed(node);
        }
        self->on_connected(node, socket);
    });
}

void Client::on_connected(NodeId node, const std::shared_ptr<tcp::socket>& socket) {
    auto conn = std::make_shared<transport::Connection>(std::move(*socket), transport::ConnectionLimits{});
    links_[node] = Link{conn, nullptr};
    std::weak_ptr<Client> weak = weak_from_this();
    conn->start(transport::Connection::Handlers{
        .on_message = [weak, node](transport::Message&& m) {
            if (auto self = weak.lock()) self->on_message(node, std::move(m));
        },
        .on_close = [weak, node, raw = conn.get()](const std::string&, const std::string&) {
            auto self = weak.lock();
            if (!self) return;
            if (auto it = self->links_.find(node); it != self->links_.end() && it->second.conn.get() == raw) {
                self->links_.erase(it);
            }
            self->on_closed(node);
        }});
    conn->send(transport::Hello{transport::Role::client, kNoNode, s_.config.cluster().name,
                                transport::kProtocolVersion});
    if (op_ && awaiting_ && target_ == node) send_to(node);
}

void Client::on_closed(NodeId node) {
    if (op_ && awaiting_ && target_ == node) {
        awaiting_ = false;
        fail_attempt(kNoNode);
    }
}

void Client::on_message(NodeId node, transport::Message&& m) {
    if (std::holds_alternative<transport::Hello>(m)) return;
    if (std::holds_alternative<transport::Refuse>(m)) return on_closed(node);
    if (!op_ || request_id_of(m) < op_->first_request_id) return;  // of an operation already ended
    if (const auto* e = std::get_if<transport::ErrorReply>(&m)) {
        if (!tools::retryable(transport::ClientReply{*e})) {
            return end_op_unknown("error " + e->code + ": " + e->message);
        }
        if (!awaiting_ || node != target_) return;  // an older attempt's answer; the current one is out
        awaiting_ = false;
        return fail_attempt(e->leader_hint);
    }
    finish(m);
}

void Client::fail_attempt(NodeId hint) {
    const auto& members = s_.config.shard(op_->shard)->nodes;
    if (hint != kNoNode && std::find(members.begin(), members.end(), hint) != members.end()) {
        s_.leaders[op_->shard] = hint;
        last_failed_ = hint == target_ ? kNoNode : target_;
    } else {
        if (auto it = s_.leaders.find(op_->shard); it != s_.leaders.end() && it->second == target_) {
            s_.leaders.erase(it);
        }
        last_failed_ = target_;
    }
    const auto backoff = std::chrono::milliseconds(20 * std::min<std::uint32_t>(op_->attempts, 5));
    if (Clock::now() + backoff >= op_->deadline) return end_op_unknown("no answer before the deadline");
    const auto gen = ++generation_;
    timer_.expires_after(backoff);
    timer_.async_wait([weak = weak_from_this(), gen](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!ec && self && self->generation_ == gen && self->op_) self->attempt();
    });
}

void Client::finish(const transport::Message& m) {
    if (const auto* t = std::get_if<transport::TransferReply>(&m); t && op_->kind == OpKind::transfer) {
        return finish_transfer(*t);
    }
    if (const auto* b = std::get_if<transport::BalanceReply>(&m); b && op_->kind == OpKind::read) {
        op_->read.ok = true;
        op_->read.balance = b->balance;
        op_->read.held = b->held;
        op_->read.pending = b->pending;
        return record_and_continue();
    }
    if (const auto* r = std::get_if<transport::SessionReply>(&m); r && op_->kind == OpKind::session) {
        ++s_.stats.sessions_opened;
        sessions_[op_->shard] = Session{r->session, 1};
        const ShardId shard = op_->shard;
        Transfer t = std::move(op_->transfer);
        op_.reset();
        ++generation_;
        timer_.cancel();
        if (Clock::now() >= s_.stop_at) return next_op();
        return begin_transfer(std::move(t), shard);
    }
}

// A TransferReply settles the txid, except a retry's `expired` or
// `session_expired`: the shard can no longer tell whether an earlier
// attempt applied (docs/design.md section 6.4).
void Client::finish_transfer(const transport::TransferReply& r) {
    Transfer& t = op_->transfer;
    const std::string txid = std::to_string(r.txid.session) + ":" + std::to_string(r.txid.seq);
    if (txid != t.txid) return end_op_unknown("reply names txid " + txid);
    if (r.committed) {
        t.outcome = Outcome::committed;
    } else if ((r.reason == "expired" || r.reason == "session_expired") && op_->attempts > 1) {
        t.outcome = Outcome::unknown;
        t.reason = "a retry was answered " + r.reason;
    } else {
        t.outcome = Outcome::aborted;
        t.reason = r.reason;
    }
    if (r.reason == "session_expired") sessions_.erase(op_->shard);
    const auto& members = s_.config.shard(op_->shard)->nodes;
    if (std::find(members.begin(), members.end(), r.leader_hint) != members.end()) s_.leaders[op_->shard] = r.leader_hint;
    record_and_continue();
}

void Client::end_op_unknown(const std::string& why) {
    if (op_->kind == OpKind::transfer) {
        op_->transfer.outcome = Outcome::unknown;
        op_->transfer.reason = why;
    } else if (op_->kind == OpKind::read) {
        op_->read.error = why;
    } else {
        ++s_.stats.sessions_failed;
        op_.reset();
        ++generation_;
        timer_.cancel();
        if (!done_) boost::asio::post(io_, [self = shared_from_this()] { self->next_op(); });
        return;
    }
    record_and_continue();
}

void Client::record_and_continue() {
    const auto end = s_.ms(Clock::now());
    if (op_->kind == OpKind::transfer) {
        op_->transfer.end_ms = end;
        op_->transfer.attempts = op_->attempts;
        s_.transfers.push_back(std::move(op_->transfer));
    } else {
        op_->read.end_ms = end;
        s_.reads.push_back(std::move(op_->read));
    }
    op_.reset();
    awaiting_ = false;
    ++generation_;
    timer_.cancel();
    if (!done_) boost::asio::post(io_, [self = shared_from_this()] { self->next_op(); });
}

// The items in play: the first `per_shard` of every shard.
std::map<ShardId, std::vector<std::uint64_t>> items_in_play(const config::Config& config, std::uint64_t per_shard) {
    std::map<ShardId, std::vector<std::uint64_t>> out;
    for (const auto& [id, shard] : config.shards()) {
        auto& v = out[id];
        for (const auto& r : shard.items) {
            for (std::uint64_t i = r.first.value; i <= r.last.value && v.size() < per_shard; ++i) v.push_back(i);
        }
    }
    return out;
}

}  // namespace

std::map<std::uint64_t, std::int64_t> initial_balances(const config::Config& config, std::uint64_t per_shard) {
    std::map<std::uint64_t, std::int64_t> out;
    for (const auto& [shard, items] : items_in_play(config, per_shard)) {
        for (std::uint64_t item : items) out[item] = config.cluster().initial_balance;
    }
    return out;
}

void run_workload(const config::Config& config, const WorkloadSpec& spec, Clock::time_point start,
                  const std::atomic<bool>& stop, std::vector<Transfer>& transfers, std::vector<Read>& reads,
                  WorkloadStats& stats) {
    boost::asio::io_context io(1);
    Shared shared{config, spec, start, start + spec.duration, transfers, reads, stats, {},
                  items_in_play(config, spec.items_per_shard)};
    std::vector<std::shared_ptr<Client>> clients;
    for (std::uint32_t i = 0; i < spec.clients; ++i) {
        clients.push_back(std::make_shared<Client>(io, shared, i));
        clients.back()->start();
    }
    // Every operation ends by its deadline; past the last one, or on
    // `stop`, whatever is still in flight ends as unknown.
    const auto hard_stop = shared.stop_at + spec.op_timeout * 2 + std::chrono::seconds(2);
    boost::asio::steady_timer watch(io);
    std::function<void()> check = [&] {
        const bool all_done = std::all_of(clients.begin(), clients.end(), [](const auto& c) { return c->done(); });
        if (all_done || stop || Clock::now() >= hard_stop) {
            for (auto& c : clients) c->shutdown(stop ? "interrupted" : "past the last deadline");
            return;
        }
        watch.expires_after(std::chrono::milliseconds(100));
        watch.async_wait([&](const boost::system::error_code& ec) {
            if (!ec) check();
        });
    };
    check();
    io.run();
}

}  // namespace rl::bank
