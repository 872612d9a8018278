// The client model: rlcat's behaviour (README "rlcat"). One operation at a
// time per client. A client opens a session with a shard before its first
// transfer from one of that shard's items (a cross-shard transfer's txid is
// a session of the sender's shard), and sends every operation to any node
// of any shard, which passes it on as rlnode does. A transfer keeps its
// txid across retries at other nodes after `unavailable`, `timeout` or
// silence, so the session table must answer a retry with the first result.
// Clients also give up their session now and then (so more sessions are
// opened than the table holds) and replay old transfers of any age: each
// answer must be the first result or `expired`/`session_expired`, and the
// model checks no txid moves money twice. Every answer is checked on arrival;
// a cross-shard transfer may be answered before its Decide entry commits
// (parallel commits), and is checked again once it does.
#include "config/random.hpp"
#include "sim.hpp"

#include <algorithm>

namespace rl::txn::sim {
namespace {

// The shard an operation is served by: a transfer's sender, a read's or a
// session's item.
ItemId item_of(const ClientOp& op) {
    if (const auto* t = std::get_if<TransferOp>(&op)) return t->from;
    if (const auto* b = std::get_if<BatchOp>(&op)) return b->transfers.front().from;
    if (const auto* b = std::get_if<BalanceOp>(&op)) return b->item;
    return std::get<SessionOp>(op).item;
}

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
    const std::uint64_t items = config_.shards * config_.items;
    const ItemId a{uniform(1, items)};
    const double dice = rl::fraction(rng_);
    Client::Session& session = c.sessions[shard_of_item(a)];
    if (session.id == 0 || dice < config_.session_churn) {
        c.op = SessionOp{a};
    } else if (dice < config_.session_churn + config_.replay_share && !c.history.empty()) {
        c.op = c.history[uniform(0, c.history.size() - 1)];
        ++stats_.replays;
    } else if (dice < config_.session_churn + config_.replay_share + config_.batch_share) {
        c.op = new_batch(c, shard_of_item(a), session);
    } else if (rl::fraction(rng_) < config_.read_share) {
        c.op = BalanceOp{a, uniform(0, 3) == 0};
        c.read_floor = oracle(shard_of_item(a)).size();
    } else {
        ItemId b{uniform(1, items - 1)};
        if (b >= a) b = b.next();
        const std::int64_t amount =
            static_cast<std::int64_t>(uniform(0, 9) == 0 ? uniform(50, 3 * config_.initial_balance) : uniform(1, 30));
        c.op = TransferOp{TxnId{session.id, ++session.seq}, a, b, amount};
        c.history.push_back(std::get<TransferOp>(*c.op));
        ops_.emplace(std::get<TransferOp>(*c.op).txid, std::get<TransferOp>(*c.op));
    }
    c.op_started_ms = now_ms();
}

// Transfers from items of `shard`, numbered in order in its session, to
// items of any shard: intra- and cross-shard mixed in one batch, some
// beyond any balance, so that later ones see what earlier ones moved.
BatchOp Sim::new_batch(Client& c, ShardId shard, Client::Session& session) {
    const std::uint64_t items = config_.shards * config_.items;
    const std::uint64_t first = (shard.value - 1) * config_.items + 1;
    BatchOp b;
    const std::uint64_t n = uniform(2, 6);
    for (std::uint64_t i = 0; i < n; ++i) {
        const ItemId from{uniform(first, first + config_.items - 1)};
        ItemId to{uniform(1, items - 1)};
        if (to >= from) to = to.next();
        const std::int64_t amount =
            static_cast<std::int64_t>(uniform(0, 4) == 0 ? uniform(50, 2 * config_.initial_balance) : uniform(1, 40));
        const TransferOp t{TxnId{session.id, ++session.seq}, from, to, amount};
        b.transfers.push_back(t);
        c.history.push_back(t);
        ops_.emplace(t.txid, t);
    }
    return b;
}

// To a random node of any shard other than the last one tried; a down node
// refuses the connection at once. As rlnode's client API, a node serves an
// operation of its own shard and passes any other to that shard.
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
          (std::holds_alternative<TransferOp>(*c.op)   ? " transfer " + txid_str(std::get<TransferOp>(*c.op).txid)
           : std::holds_alternative<BatchOp>(*c.op)
               ? " batch " + txid_str(std::get<BatchOp>(*c.op).transfers.front().txid) + "+" +
                     std::to_string(std::get<BatchOp>(*c.op).transfers.size())
           : std::holds_alternative<SessionOp>(*c.op) ? std::string(" session")
                                                      : std::string(" balance")));
    const std::uint64_t handle = (std::uint64_t{index} << 32) | (c.attempt & 0xffffffffu);
    const ShardId shard = shard_of_item(item_of(*c.op));
    catch_up(n);
    if (shard == n.shard) {
        n.shell->submit(handle, *c.op);
    } else {
        n.shell->forward_elsewhere(handle, shard, *c.op);
    }
    after_input(n);
}

void Sim::on_reply(std::uint64_t handle, const OpResult& result) {
    const std::size_t index = handle >> 32;
    Client& c = clients_.at(index);
    if (const auto* done = std::get_if<TransferDone>(&result)) on_transfer_done(*done);  // stale ones too
    if (const auto* done = std::get_if<SessionDone>(&result)) on_session_done(*done);
    if (const auto* done = std::get_if<BatchDone>(&result)) on_batch_done(*done);  // stale ones too
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
    const auto* session = std::get_if<SessionDone>(&result);
    if (!answers(*c.op, result) || (session && session->shard != shard_of_item(item_of(*c.op)))) {
        fail("client " + std::to_string(index) + " got an answer for another operation (result kind " +
             std::to_string(result.index()) + ")");
    }
    if (const auto* b = std::get_if<BalanceDone>(&result)) on_balance_done(c, *b);
    if (const auto* batch = std::get_if<BatchDone>(&result)) {
        // A transfer without an outcome: the whole batch is sent again,
        // same txids; the settled ones must get their first outcome.
        bool again = false;
        for (const TransferOutcome& o : batch->each) {
            if (o.status != BatchStatus::failed) continue;
            if (o.reason != "unavailable" && o.reason != "timeout") {
                fail("client " + std::to_string(index) + " got error " + o.reason + " for transfer " + txid_str(o.txid) +
                     " of a batch");
            }
            again = true;
        }
        for (const TransferOutcome& o : batch->each) {
            Client::Session& s = c.sessions[session_shard(o.txid.session)];
            if (o.reason == "session_expired" && o.txid.session == s.id) s = Client::Session{};
        }
        if (again) {
            c.waiting = false;
            ++stats_.client_retries;
            return arm(index, uniform(5, 40));
        }
        ++stats_.batches_answered;
    }
    if (session) c.sessions[session->shard] = Client::Session{session->session, 0};
    // A session the shard no longer holds cannot be used again.
    if (const auto* t = std::get_if<TransferDone>(&result); t && t->reason == "session_expired") {
        Client::Session& s = c.sessions[session_shard(t->txid.session)];
        if (t->txid.session == s.id) s = Client::Session{};
    }
    finish_op(index);
}

// An answer is the txid's first executed result in the committed history,
// the same for every retry; or "cannot tell" (`expired` below the session's
// window, `session_expired` for a session the table no longer holds), which
// never moved money.
//
// A cross-shard transfer is answered as soon as both shards' Prepares are
// known (parallel commits): its answer may come while the sender's
// committed history holds its record undecided with a yes vote. A commit
// then needs the receiver's committed yes vote too; the answer is checked
// against the Decide once the history has it (confirm_ack), and at
// quiescence every answer must have been.
void Sim::on_transfer_done(const TransferDone& done) {
    if (done.reason == "expired" || done.reason == "session_expired") {
        ++(done.reason == "expired" ? stats_.expired_answers : stats_.session_expired_answers);
        if (done.outcome != Outcome::aborted) fail("transfer " + txid_str(done.txid) + " committed and expired");
        return;
    }
    const ShardId shard = session_shard(done.txid.session);
    if (shard.value == 0 || shard.value > config_.shards) fail("transfer " + txid_str(done.txid) + " of no shard answered");
    const Oracle& o = oracle(shard);
    if (const Oracle::Result* r = o.result(done.txid)) return check_answer(done, *r);
    const Oracle::Record* rec = o.record(done.txid);
    if (!rec || rec->side != Side::debit || rec->fate != Fate::undecided || !rec->voted_yes) {
        fail("transfer " + txid_str(done.txid) + " acknowledged but never executed in the committed history");
    }
    if (done.outcome == Outcome::committed) {
        const Oracle& there = oracle(rec->other);
        const Oracle::Record* vote = there.record(done.txid);
        const auto f = cross_.find(done.txid);
        const bool posted = f != cross_.end() && f->second.credit_posted;
        if (!posted && !(vote && vote->voted_yes)) {
            fail("transfer " + txid_str(done.txid) + " acknowledged committed before shard " +
                 std::to_string(rec->other.value) + "'s committed history voted yes");
        }
    }
    const auto [it, fresh] = unconfirmed_.emplace(done.txid, done);
    if (!fresh && (it->second.outcome != done.outcome || it->second.reason != done.reason)) {
        fail("transfer " + txid_str(done.txid) + " acknowledged " + to_string(it->second.outcome) + " '" +
             it->second.reason + "' and then " + to_string(done.outcome) + " '" + done.reason + "'");
    }
    if (fresh) ++stats_.early_acks;
}

// The debit shard's history just decided `txid`: an early answer must be its result.
void Sim::confirm_ack(TxnId txid) {
    auto it = unconfirmed_.find(txid);
    if (it == unconfirmed_.end()) return;
    const TransferDone done = it->second;
    unconfirmed_.erase(it);
    const Oracle::Result* r = oracle(session_shard(txid.session)).result(txid);
    if (!r) fail("transfer " + txid_str(txid) + " acknowledged, and its record decided without a result");
    check_answer(done, *r);
}

void Sim::check_answer(const TransferDone& done, const Oracle::Result& r) {
    const std::string reason = r.outcome == Outcome::committed ? std::string() : to_string(r.reason);
    if (done.outcome != r.outcome || done.reason != reason) {
        fail("transfer " + txid_str(done.txid) + " acknowledged " + to_string(done.outcome) + " '" + done.reason +
             "', the history says " + to_string(r.outcome) + " '" + reason + "'");
    }
    const auto [it, fresh] = acked_.emplace(done.txid, done.outcome);
    if (!fresh) return;
    const bool committed = done.outcome == Outcome::committed;
    if (is_cross(done.txid)) {
        ++(committed ? stats_.cross_committed_acked : stats_.cross_aborted_acked);
    } else {
        ++(committed ? stats_.committed_acked : stats_.aborted_acked);
    }
}

// Each outcome of a batch is checked as the answer to its own transfer.
void Sim::on_batch_done(const BatchDone& done) {
    for (const TransferOutcome& o : done.each) {
        if (o.status == BatchStatus::failed) continue;
        const Outcome outcome = o.status == BatchStatus::committed ? Outcome::committed : Outcome::aborted;
        on_transfer_done(TransferDone{outcome, o.reason, o.txid});
    }
}

// A session id names an OpenSession entry of its shard's committed history.
void Sim::on_session_done(const SessionDone& done) {
    const LogIndex opened{done.session & ((std::uint64_t{1} << kSessionIndexBits) - 1)};
    const bool known_shard = done.shard.value >= 1 && done.shard.value <= config_.shards;
    if (!known_shard || session_shard(done.session) != done.shard || opened > oracle(done.shard).size() ||
        oracle(done.shard).session_opened_at(opened) != done.session) {
        fail("session " + std::to_string(done.session) + " answered but not opened by the committed history");
    }
    ++stats_.sessions_opened;
}

void Sim::on_balance_done(const Client& c, const BalanceDone& done) {
    const auto& op = std::get<BalanceOp>(*c.op);
    if (done.applied_index > oracle(shard_of_item(done.item)).size()) {
        deferred_reads_.push_back({done, c.read_floor, op.local});
        return;
    }
    check_read(done, c.read_floor, op.local);
}

// A read's balance, hold and pending credit are what some prefix of the
// item's shard's committed history gives (the one it names); a
// linearizable read's prefix holds everything committed before the read
// started.
void Sim::check_read(const BalanceDone& done, LogIndex floor, bool local) {
    const Oracle& o = oracle(shard_of_item(done.item));
    if (done.applied_index > o.size()) fail("a read answered from an index never committed");
    if (o.books(done.applied_index).posted.empty()) fail("a read answered before its shard was created");
    const std::int64_t want = o.posted(done.applied_index, done.item);
    const std::int64_t held = o.held(done.applied_index, done.item);
    const std::int64_t pending = o.pending(done.applied_index, done.item);
    if (done.balance != want || done.held != held || done.pending != pending) {
        fail("read of item " + std::to_string(done.item.value) + " gave " + std::to_string(done.balance) + "/" +
             std::to_string(done.held) + "/" + std::to_string(done.pending) + " at index " +
             std::to_string(done.applied_index.value) + ", the history gives " + std::to_string(want) + "/" +
             std::to_string(held) + "/" + std::to_string(pending) + " (posted/held/pending)");
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
