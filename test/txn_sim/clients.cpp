// The client model: rlcat's behaviour (README "rlcat"). One operation at a
// time per client. A client first opens a session; a transfer keeps its
// txid across retries at other nodes after `unavailable`, `timeout` or
// silence, so the session table must answer a retry with the first result.
// Clients also give up their session now and then (so more sessions are
// opened than the table holds) and replay old transfers of any age: each
// answer must be the first result or `expired`/`session_expired`, and the
// model checks no txid moves money twice. Every answer is checked on arrival.
#include "config/random.hpp"
#include "sim.hpp"

#include <algorithm>

namespace rl::txn::sim {
namespace {

std::string txid_name(TxnId t) { return std::to_string(t.session) + "/" + std::to_string(t.seq); }

}  // namespace

void Sim::start_clients() {
    for (std::size_t i = 0; i < config_.clients; ++i) {
        clients_.push_back(Client{});
        arm(i, uniform(1, 50));
    }
}

void Sim::set_clients_active(bool active) {
    clients_active_ = active;
    if (!active) return;
    for (std::size_t i = 0; i < clients_.size(); ++i) {
        if (!clients_[i].op) arm(i, uniform(1, 20));
    }
}

bool Sim::clients_idle() const {
    return std::none_of(clients_.begin(), clients_.end(), [](const Client& c) { return c.op.has_value(); });
}

// Only the latest timer of a client fires: it starts the next operation,
// resubmits after a backoff, or gives up waiting on a silent node.
void Sim::arm(std::size_t index, std::uint64_t delay_ms) {
    const std::uint64_t timer = ++clients_[index].timer;
    timeline_.push(
        Item{now_ms() + delay_ms, 0, Item::Kind::client, kNoNode, kNoNode, (index << 32) | (timer & 0xffffffffu)});
}

void Sim::client_timer(std::size_t index, std::uint64_t timer) {
    Client& c = clients_.at(index);
    if ((c.timer & 0xffffffffu) != timer) return;
    if (!c.op) {
        if (clients_active_) start_op(c);
        if (!c.op) return;
    } else if (c.waiting) {
        ++stats_.client_retries;
        trace("client " + std::to_string(index) + " no answer from n" + std::to_string(c.last_node.value));
    }
    submit(index);
}

// A session first; then transfers of random amounts (some beyond any
// balance, to abort for insufficient funds), balance reads (a quarter of
// them local), replays of old transfers, and now and then a new session.
void Sim::start_op(Client& c) {
    const ItemId a{uniform(1, config_.items)};
    const double dice = rl::fraction(rng_);
    if (c.session == 0 || dice < config_.session_churn) {
        c.op = SessionOp{a};
    } else if (dice < config_.session_churn + config_.replay_share && !c.history.empty()) {
        c.op = c.history[uniform(0, c.history.size() - 1)];
        ++stats_.replays;
    } else if (rl::fraction(rng_) < config_.read_share) {
        c.op = BalanceOp{a, uniform(0, 3) == 0};
        c.read_floor = oracle_.size();
    } else {
        ItemId b{uniform(1, config_.items - 1)};
        if (b >= a) b = b.next();
        const std::int64_t amount =
            static_cast<std::int64_t>(uniform(0, 9) == 0 ? uniform(50, 3 * config_.initial_balance) : uniform(1, 30));
        c.op = TransferOp{TxnId{c.session, ++c.seq}, a, b, amount};
        c.history.push_back(std::get<TransferOp>(*c.op));
    }
    c.op_started_ms = now_ms();
}

// To a random node other than the last one tried; a down node refuses the
// connection at once.
void Sim::submit(std::size_t index) {
    Client& c = clients_[index];
    std::vector<NodeId> choice;
    for (NodeId id : ids()) {
        if (id != c.last_node || ids().size() == 1) choice.push_back(id);
    }
    const NodeId to = choice[uniform(0, choice.size() - 1)];
    c.last_node = to;
    ++c.attempt;
    Node& n = node(to);
    if (!n.replica) {
        c.waiting = false;
        return arm(index, uniform(5, 40));
    }
    c.waiting = true;
    arm(index, config_.client_timeout_ms);
    trace("client " + std::to_string(index) + " submit to n" + std::to_string(to.value) +
          (std::holds_alternative<TransferOp>(*c.op)   ? " transfer " + txid_name(std::get<TransferOp>(*c.op).txid)
           : std::holds_alternative<SessionOp>(*c.op) ? std::string(" session")
                                                      : std::string(" balance")));
    n.shell->submit((std::uint64_t{index} << 32) | (c.attempt & 0xffffffffu), *c.op);
    after_input(n);
}

void Sim::on_reply(std::uint64_t handle, const OpResult& result) {
    const std::size_t index = handle >> 32;
    Client& c = clients_.at(index);
    if (const auto* done = std::get_if<TransferDone>(&result)) on_transfer_done(*done);  // stale ones too
    if (const auto* done = std::get_if<SessionDone>(&result)) on_session_done(*done);
    const bool current = c.waiting && (c.attempt & 0xffffffffu) == (handle & 0xffffffffu);
    if (!current) return;
    if (const auto* failed = std::get_if<OpFailed>(&result)) {
        if (failed->code != "unavailable" && failed->code != "timeout") {
            fail("client " + std::to_string(index) + " got error " + failed->code + ": " + failed->message);
        }
        c.waiting = false;
        ++stats_.client_retries;
        return arm(index, uniform(5, 40));
    }
    if (!answers(*c.op, result)) {
        fail("client " + std::to_string(index) + " got an answer for another operation (result kind " +
             std::to_string(result.index()) + ")");
    }
    if (const auto* b = std::get_if<BalanceDone>(&result)) on_balance_done(c, *b);
    if (const auto* d = std::get_if<SessionDone>(&result)) {
        c.session = d->session;
        c.seq = 0;
    }
    // A session the shard no longer holds cannot be used again.
    if (const auto* t = std::get_if<TransferDone>(&result); t && t->reason == "session_expired" &&
                                                            t->txid.session == c.session) {
        c.session = 0;
    }
    finish_op(index);
}

// An answer is the txid's first executed result in the committed history,
// the same for every retry; or "cannot tell" (`expired` below the session's
// window, `session_expired` for a session the table no longer holds), which
// never moved money.
void Sim::on_transfer_done(const TransferDone& done) {
    if (done.reason == "expired" || done.reason == "session_expired") {
        ++(done.reason == "expired" ? stats_.expired_answers : stats_.session_expired_answers);
        if (done.outcome != Outcome::aborted) fail("transfer " + txid_name(done.txid) + " committed and expired");
        return;
    }
    const Oracle::Result* r = oracle_.result(done.txid);
    if (!r) fail("transfer " + txid_name(done.txid) + " acknowledged but never executed in the committed history");
    const std::string reason = r->outcome == Outcome::committed ? std::string() : to_string(r->reason);
    if (done.outcome != r->outcome || done.reason != reason) {
        fail("transfer " + txid_name(done.txid) + " acknowledged " + to_string(done.outcome) + " '" + done.reason +
             "', the history says " + to_string(r->outcome) + " '" + reason + "'");
    }
    const auto [it, fresh] = acked_.emplace(done.txid, done.outcome);
    if (!fresh) return;
    ++(done.outcome == Outcome::committed ? stats_.committed_acked : stats_.aborted_acked);
}

// A session id names an OpenSession entry of the committed history.
void Sim::on_session_done(const SessionDone& done) {
    const LogIndex opened{done.session & ((std::uint64_t{1} << kSessionIndexBits) - 1)};
    if (done.shard != ShardId{1} || session_shard(done.session) != done.shard || opened > oracle_.size() ||
        oracle_.session_opened_at(opened) != done.session) {
        fail("session " + std::to_string(done.session) + " answered but not opened by the committed history");
    }
    ++stats_.sessions_opened;
}

void Sim::on_balance_done(const Client& c, const BalanceDone& done) {
    const auto& op = std::get<BalanceOp>(*c.op);
    if (done.applied_index > oracle_.size()) {
        deferred_reads_.push_back({done, c.read_floor, op.local});
        return;
    }
    check_read(done, c.read_floor, op.local);
}

// A read's balance is what some prefix of the committed history gives (the
// one it names); a linearizable read's prefix holds everything committed
// before the read started.
void Sim::check_read(const BalanceDone& done, LogIndex floor, bool local) {
    if (done.applied_index > oracle_.size()) fail("a read answered from an index never committed");
    const std::int64_t want = oracle_.balances(done.applied_index).at(done.item.value - 1);
    if (done.balance != want) {
        fail("read of item " + std::to_string(done.item.value) + " gave " + std::to_string(done.balance) + " at index " +
             std::to_string(done.applied_index.value) + ", the history gives " + std::to_string(want));
    }
    if (!local && done.applied_index < floor) {
        fail("linearizable read of item " + std::to_string(done.item.value) + " answered at index " +
             std::to_string(done.applied_index.value) + ", but " + std::to_string(floor.value) +
             " entries were committed before it started");
    }
    ++stats_.reads_checked;
}

void Sim::finish_op(std::size_t index) {
    Client& c = clients_[index];
    trace("client " + std::to_string(index) + " done after " + std::to_string(now_ms() - c.op_started_ms) + "ms");
    c.op.reset();
    c.waiting = false;
    if (clients_active_) arm(index, uniform(1, 20));
}

}  // namespace rl::txn::sim
