// The Replica's part in two-phase commit across shards (docs/design.md
// section 6.7). The replicated records in ShardState decide everything;
// what lives here is the leader's bookkeeping of who waits for what, which
// a new leader rebuilds by walking the records it inherits:
//
//   debit side (this shard coordinates)       credit side (this shard receives)
//   PrepareDebit entry + PrepareAsk ------->  PrepareCredit entry
//   <------------------------------- StateTell (its vote, once applied)
//   both yes: answer the client; Decide entry
//   Decide applied: DecideAsk ------------->  Decide entry (final)
//   <----------------------------------- AckTell (once applied)
//   Forget entry; ForgetAsk --------------->  Forget entry
//
// Whoever lacks the other side's vote asks with a QueryAsk; the asked
// leader appends a Query entry and answers once it is applied. A Query that
// finds no Prepare fences the transaction, so log order settles every race.
#include "config/overload.hpp"
#include "txn/replica.hpp"

#include <algorithm>
#include <utility>

namespace rl::txn {
namespace {

TxnContent content_of(const CrossTxn& t) { return TxnContent{t.txid, t.from, t.to, t.amount}; }

// A leader speaks for its shard's records only once it has applied its log
// through its own no-op: before that its state lags what earlier leaders
// decided and forgot (after a restart it re-applies from its snapshot), and
// an answer or a request made from it would be stale.
bool caught_up(const ReplicatedLog& log, const ShardState& state) {
    return log.ready() && state.created() && state.applied_index() >= log.epoch_start();
}

StateTell tell_of(const CrossTxn& t) {
    QueryState state = QueryState::voted_no;
    AbortReason reason = t.vote_reason;
    if (t.fate == Fate::committed) {
        state = QueryState::committed;
    } else if (t.fate == Fate::aborted) {
        state = QueryState::aborted;
        reason = t.fate_reason;
    } else if (t.voted_yes) {
        state = QueryState::voted_yes;
    }
    return StateTell{content_of(t), static_cast<std::uint8_t>(state), static_cast<std::uint8_t>(reason), t.prepared_at};
}

StateTell tell_of(const Answered& a) {
    if (a.txn) return tell_of(*a.txn);
    const AbortReason reason = a.state == QueryState::finished ? a.reason : AbortReason::timeout;
    return StateTell{TxnContent{a.txid, ItemId{}, ItemId{}, 0}, static_cast<std::uint8_t>(a.state),
                     static_cast<std::uint8_t>(reason), LogIndex{}};
}

// The other shard has committed its decision (or never will prepare).
bool final_there(QueryState s) {
    return s == QueryState::absent || s == QueryState::committed || s == QueryState::aborted ||
           s == QueryState::finished;
}

// The coordinator's shard finished the transaction before our Query, and
// our record is undecided: it came from a late duplicate Prepare (the
// coordinator finishes only after this shard decided), or its session is
// gone and it can never commit. It is released, never decided, unless
// the transaction was aborted, which deciding it again agrees with.
bool stale_there(QueryState s, AbortReason reason) {
    return s == QueryState::finished &&
           (reason == AbortReason::none || reason == AbortReason::expired || reason == AbortReason::session_expired);
}

// What the other shard's state makes of this record: its fate and reason.
// A yes vote counts only for the same content; a client that reused a txid
// for another transfer gets an abort, never half of each.
std::pair<Fate, AbortReason> settle(const CrossTxn& here, const StateTell& there) {
    auto state = static_cast<QueryState>(there.state);
    if (state == QueryState::voted_yes || state == QueryState::committed) {
        if (there.txn != content_of(here)) return {Fate::aborted, AbortReason::mismatch};
    }
    const Fate fate = fate_from(here, state);
    if (fate == Fate::committed) return {fate, AbortReason::none};
    if (!here.voted_yes) return {fate, here.vote_reason};
    if (state == QueryState::absent) return {fate, AbortReason::timeout};
    const auto reason = static_cast<AbortReason>(there.reason);
    return {fate, reason == AbortReason::none ? AbortReason::timeout : reason};
}

}  // namespace

ShardId Replica::shard_of_item(ItemId item) const {
    for (const auto& [range, shard] : params_.routes) {
        if (range.contains(item)) return shard;
    }
    return ShardId{0};
}

// ---- the coordinator's entry point ----

// A transfer whose `to` lives in another shard, at this shard's leader.
// Exactly-once as for any transfer: the session table answers a decided
// txid, a live record makes a retry wait for the same decision.
void Replica::serve_cross(const Waiter& w, const TransferOp& op, ShardId to_shard) {
    if (auto done = state_.lookup(op.txid)) return reply(w, transfer_done(*done));
    if (!admit(w)) return;
    pending_.wait_transfer(op.txid, w);
    coordinate(op, to_shard);
}

// Starts (or joins) the two-phase commit of `op`, whose waiter is in place.
void Replica::coordinate(const TransferOp& op, ShardId to_shard) {
    if (const CrossTxn* t = state_.cross_txn(op.txid)) return drive(*t);
    if (coordinating_.contains(op.txid)) return;  // proposed, not applied yet
    propose(PrepareDebit{op.txid, op.from, op.to, to_shard, op.amount});
    // Parallel commits: the receiver prepares while this shard does.
    Coordinating& c = coordinating_[op.txid];
    c.prepared_here = true;
    // Not for a session the table no longer holds: the Prepare applies as
    // session_expired, and the receiver would keep a record of nothing. A
    // lagging state asks once its Prepare has made a record (drive_debit).
    if (caught_up(log_, state_) && state_.has_session(op.txid.session)) {
        send_ask(to_shard, c.ask, PrepareAsk{TxnContent{op.txid, op.from, op.to, op.amount}}, op.txid);
    }
}

// ---- requests from other shards ----

void Replica::on_shard_request(NodeId from, const ShardRequest& m) {
    (void)from;
    if (!caught_up(log_, state_)) {
        // A follower passes it to its leader and tells the asker who that is.
        const NodeId leader = election_.leader();
        if (leader != kNoNode && leader != params_.election.self && m.hops < kForwardHopsMax) {
            ShardRequest next = m;
            ++next.hops;
            out_.txn_messages.push_back({leader, std::move(next)});
        }
        tell(m.reply_to, HintTell{});
        return;
    }
    for (const ShardAsk& ask : m.asks) on_shard_ask(m.reply_to, ask);
}

void Replica::on_shard_ask(NodeId reply_to, const ShardAsk& ask) {
    std::visit(Overload{
                   [&](const PrepareAsk& a) {
                       if (const CrossTxn* t = state_.cross_txn(a.txn.txid)) return tell(reply_to, tell_of(*t));
                       if (state_.check_item(a.txn.to)) {
                           // Not our item: a no vote without an entry (nothing here can hold it).
                           return tell(reply_to, StateTell{a.txn, static_cast<std::uint8_t>(QueryState::voted_no),
                                                             static_cast<std::uint8_t>(AbortReason::bad_request)});
                       }
                       Participating& p = participating_[a.txn.txid];
                       if (std::find(p.vote_to.begin(), p.vote_to.end(), reply_to) == p.vote_to.end()) {
                           p.vote_to.push_back(reply_to);
                       }
                       if (p.prepare_proposed) return;
                       p.prepare_proposed = true;
                       p.first_seen = now_;
                       propose(PrepareCredit{a.txn.txid, a.txn.from, a.txn.to, a.txn.amount});
                   },
                   [&](const QueryAsk& a) {
                       auto& askers = answer_to_[a.txid];
                       const bool proposed = !askers.empty();
                       if (std::find(askers.begin(), askers.end(), reply_to) == askers.end()) {
                           askers.push_back(reply_to);
                       }
                       if (!proposed) propose(Query{a.txid});
                   },
                   [&](const DecideAsk& a) {
                       const CrossTxn* t = state_.cross_txn(a.txid);
                       if (t == nullptr || (t->final_elsewhere && t->fate == a.fate)) {
                           return tell(reply_to, AckTell{a.txid});
                       }
                       Participating& p = participating_[a.txid];
                       if (std::find(p.ack_to.begin(), p.ack_to.end(), reply_to) == p.ack_to.end()) {
                           p.ack_to.push_back(reply_to);
                       }
                       if (p.decide_proposed) return;
                       if (t->fate == Fate::undecided && a.prepared_at != t->prepared_at) {
                           // Not the record the coordinator's decision rests
                           // on: a late duplicate Prepare made this one after
                           // both shards forgot the transaction (and this ask
                           // is as late), or the coordinator's leader does not
                           // know. Its shard's log answers instead: a Query
                           // decides this record or releases it.
                           if (p.ask.attempts == 0 || p.ask.due <= now_) send_ask(t->other, p.ask, QueryAsk{a.txid}, a.txid);
                           return;
                       }
                       p.decide_proposed = true;
                       propose_decide(Decide{a.txid, a.fate, a.reason, true});
                   },
                   [&](const ForgetAsk& a) {
                       Forget f;
                       for (const TxnId& txid : a.txids) {
                           const CrossTxn* t = state_.cross_txn(txid);
                           if (t != nullptr && t->side == Side::credit && t->fate != Fate::undecided) {
                               f.txids.push_back(txid);
                           }
                       }
                       if (!f.txids.empty()) propose(std::move(f));
                   },
               },
               ask);
}

// Tells and asks of one turn go out as one frame per node (flush_between_shards).
void Replica::tell(NodeId to, ShardTell t) {
    if (to == kNoNode || to == params_.election.self) return;
    tells_out_[to].push_back(std::move(t));
}

// At most between_shards_per_frame asks or tells go in one frame (a few
// dozen bytes each, so far below frame_bytes_max): a leader that walks
// thousands of inherited records sends several frames.
void Replica::flush_between_shards() {
    const std::size_t per = std::max<std::size_t>(1, params_.between_shards_per_frame);
    const auto chunks = [per](auto& items, auto&& emit) {
        for (std::size_t at = 0; at < items.size(); at += per) {
            const auto first = items.begin() + static_cast<std::ptrdiff_t>(at);
            const auto last = items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), at + per));
            emit(std::vector(std::make_move_iterator(first), std::make_move_iterator(last)));
        }
    };
    for (auto& [to, asks] : asks_out_) {
        chunks(asks, [&](std::vector<ShardAsk> part) {
            out_.txn_messages.push_back({to, ShardRequest{shard(), params_.election.self, 0, std::move(part)}});
        });
    }
    asks_out_.clear();
    for (auto& [to, tells] : tells_out_) {
        chunks(tells, [&](std::vector<ShardTell> part) {
            out_.txn_messages.push_back({to, ShardReply{shard(), epoch(), leader(), std::move(part)}});
        });
    }
    tells_out_.clear();
}

// ---- replies from other shards ----

void Replica::on_shard_reply(NodeId from, const ShardReply& m) {
    router_.learn(m.shard, m.leader, m.epoch);
    for (const ShardTell& t : m.tells) on_shard_tell(from, t);
}

void Replica::on_shard_tell(NodeId from, const ShardTell& tell) {
    std::visit(Overload{
                   [&](const HintTell&) {
                       // A follower passed our request on to its leader and
                       // named it: the cache above now sends there first.
                       (void)from;
                   },
                   [&](const StateTell& t) { on_state_tell(t); },
                   [&](const AckTell& a) {
                       auto c = coordinating_.find(a.txid);
                       if (c == coordinating_.end()) return;
                       c->second.acked = true;
                       if (const CrossTxn* t = state_.cross_txn(a.txid)) drive(*t);
                   },
               },
               tell);
}

void Replica::on_state_tell(const StateTell& tell) {
    const TxnId txid = tell.txn.txid;
    if (!caught_up(log_, state_)) return;
    if (session_shard(txid.session) == shard()) {
        // The receiver's vote, or its answer to our Query. It may come
        // before our own Prepare is applied: kept until then.
        auto c = coordinating_.find(txid);
        if (c == coordinating_.end()) return;
        c->second.there = tell;
        if (const CrossTxn* t = state_.cross_txn(txid)) drive(*t);
        return;
    }
    // The coordinator's shard answered our Query.
    const CrossTxn* t = state_.cross_txn(txid);
    if (t == nullptr) return;
    Participating& p = participating_[txid];
    const auto state = static_cast<QueryState>(tell.state);
    if (p.decide_proposed) return;
    if (t->fate == Fate::undecided && stale_there(state, static_cast<AbortReason>(tell.reason))) {
        p.decide_proposed = true;
        propose(Release{txid});
    } else if (t->fate == Fate::undecided) {
        const auto [fate, reason] = settle(*t, tell);
        p.decide_proposed = true;
        propose_decide(Decide{txid, fate, static_cast<std::uint8_t>(reason), final_there(state)});
    } else if (!t->final_elsewhere && final_there(state)) {
        p.decide_proposed = true;
        propose_decide(Decide{txid, t->fate, static_cast<std::uint8_t>(t->fate_reason), true});
    } else if (t->final_elsewhere && (state == QueryState::absent || state == QueryState::finished)) {
        // The coordinator forgot it: so may we (its ForgetAsk was lost).
        p.decide_proposed = true;
        log_.propose(Forget{{txid}});
    }
    p.ask.due = now_ + params_.cross_retry_ticks_max;
}

// ---- applied entries ----

void Replica::answer_cross(const Applied& applied) {
    std::visit(Overload{
                   [&](const Prepared& p) {
                       first_seen_.try_emplace(p.txn.txid, now_);
                       if (!log_.ready()) return;
                       if (p.result) reply_transfer(*p.result);
                       if (p.txn.side == Side::credit) {
                           auto it = participating_.find(p.txn.txid);
                           if (it != participating_.end()) {
                               it->second.prepare_proposed = false;
                               for (NodeId to : std::exchange(it->second.vote_to, {})) tell(to, tell_of(p.txn));
                           }
                       }
                       if (const CrossTxn* t = state_.cross_txn(p.txn.txid)) drive(*t);
                   },
                   [&](const Decided& d) { on_decided(d); },
                   [&](const DecidedMany& many) {
                       for (const Decided& d : many.each) on_decided(d);
                   },
                   [&](const Answered& a) {
                       if (a.result && a.result->outcome == Outcome::aborted) {
                           // A fenced txid: a client waiting on it hears the abort now.
                           if (log_.ready()) reply_transfer(*a.result);
                       }
                       auto it = answer_to_.find(a.txid);
                       if (it == answer_to_.end()) return;
                       if (log_.ready()) {
                           for (NodeId to : it->second) tell(to, tell_of(a));
                       }
                       answer_to_.erase(it);
                   },
                   [](const auto&) {},
               },
               applied);
}

void Replica::on_decided(const Decided& d) {
    if (!log_.ready()) return;
    if (d.result) reply_transfer(*d.result);
    if (auto it = participating_.find(d.txid); it != participating_.end()) {
        it->second.decide_proposed = false;
        if (d.known && d.txn.final_elsewhere) {
            for (NodeId to : std::exchange(it->second.ack_to, {})) tell(to, AckTell{d.txid});
        }
    }
    if (auto it = coordinating_.find(d.txid); it != coordinating_.end()) it->second.decide_proposed = false;
    if (const CrossTxn* t = state_.cross_txn(d.txid)) drive(*t);
}

// Decisions wait to ride along with the next entry this leader proposes
// for other work, or at most one tick: they only record what is settled
// (the clients have their answers), so a busy leader writes them with no
// sync of their own, one Decisions entry for many transactions.
void Replica::propose_decide(Decide d) { decide_batch_.push_back(std::move(d)); }

LogIndex Replica::propose(Command c) {
    flush_decisions();
    return *log_.propose(std::move(c));
}

void Replica::flush_decisions() {
    if (decide_batch_.empty()) return;
    if (log_.ready()) log_.propose(Decisions{std::exchange(decide_batch_, {})});
    decide_batch_.clear();  // not leading: the flags were reset with the leadership
}

// A Forget entry is about to drop records: the receivers of the debit
// records may drop theirs too, and the audit ages go with them.
void Replica::note_forgotten(const LogEntry& entry) {
    if (const auto* r = std::get_if<Release>(&entry.command)) {
        first_seen_.erase(r->txid);
        participating_.erase(r->txid);
        return;
    }
    const auto* f = std::get_if<Forget>(&entry.command);
    if (f == nullptr) return;
    for (const TxnId& txid : f->txids) {
        const CrossTxn* t = state_.cross_txn(txid);
        if (t == nullptr || t->fate == Fate::undecided) continue;
        first_seen_.erase(txid);
        coordinating_.erase(txid);
        participating_.erase(txid);
        to_forget_.erase(txid);
        if (t->side == Side::debit && log_.ready()) tell_forget_[t->other].push_back(txid);
    }
    forget_proposed_ = false;
}

void Replica::reply_transfer(const ApplyResult& r) {
    const TransferDone done = transfer_done(r);
    for (const Waiter& w : pending_.take_transfer(r.txid)) reply(w, done);
}

// ---- the leader's walk over the records ----

// Once per tick while leading: the records whose timers are due get what
// is due (the rest of the protocol is driven by the events themselves;
// walking every record on every tick would cost a busy leader a tenth of
// its time), the acknowledged ones are forgotten in one entry, and the
// receivers are told. Every record is walked after a change of leadership
// (what this leader inherited) and, as a safety net, now and then.
void Replica::drive_cross(bool every_record) {
    if (!caught_up(log_, state_)) return;
    if (every_record || walk_all_ || now_ >= walked_at_ + params_.cross_retry_ticks_max) {
        walk_all_ = false;
        walked_at_ = now_;
        for (const auto& [txid, t] : state_.cross_txns()) drive(t);
    } else {
        std::vector<TxnId> due;
        while (!timers_.empty() && timers_.begin()->first <= now_) {
            due.push_back(timers_.begin()->second);
            timers_.erase(timers_.begin());
        }
        for (const TxnId& txid : due) {
            if (const CrossTxn* t = state_.cross_txn(txid)) drive(*t);
        }
    }
    if (!to_forget_.empty() && !forget_proposed_) {
        forget_proposed_ = true;
        log_.propose(Forget{{to_forget_.begin(), to_forget_.end()}});
    }
    for (auto& [shard, txids] : tell_forget_) {
        if (txids.empty()) continue;
        Asking once;
        send_ask(shard, once, ForgetAsk{std::exchange(txids, {})});
    }
}

// drive_cross() acts on the walk over every record and on each record's
// timer, and only once caught up.
std::uint64_t Replica::ticks_until_cross_due() const {
    if (!caught_up(log_, state_)) return UINT64_MAX;
    if (walk_all_) return 1;
    const auto at = [&](std::uint64_t tick) { return tick > now_ ? tick - now_ : 1; };
    std::uint64_t due = UINT64_MAX;
    if (!state_.cross_txns().empty()) due = at(walked_at_ + params_.cross_retry_ticks_max);
    if (!timers_.empty()) due = std::min(due, at(timers_.begin()->first));
    return due;
}

void Replica::drive(const CrossTxn& t) {
    if (!caught_up(log_, state_)) return;
    first_seen_.try_emplace(t.txid, now_);  // a record this node inherited (snapshot, restart)
    if (t.side == Side::debit) return drive_debit(t, coordinating_[t.txid]);
    auto [it, fresh] = participating_.try_emplace(t.txid);
    if (fresh) {
        it->second.first_seen = now_;
        arm(t.txid, now_ + params_.cross_query_after_ticks);
    }
    drive_credit(t, it->second);
}

void Replica::drive_debit(const CrossTxn& t, Coordinating& c) {
    if (t.fate == Fate::undecided) {
        if (c.there) {
            // Both votes are known: the client hears now (parallel commits),
            // the Decide entry follows with the next batch.
            const auto [fate, reason] = settle(t, *c.there);
            reply_transfer(ApplyResult{fate == Fate::committed ? Outcome::committed : Outcome::aborted, reason, t.txid});
            if (!c.decide_proposed) {
                c.decide_proposed = true;
                propose_decide(Decide{t.txid, fate, static_cast<std::uint8_t>(reason), false});
            }
            return;
        }
        if (c.ask.due > now_) return;
        // A Prepare this leadership sent is resent; an inherited one is
        // asked about (the Query fences it if it never arrived).
        if (c.prepared_here) return send_ask(t.other, c.ask, PrepareAsk{content_of(t)}, t.txid);
        return send_ask(t.other, c.ask, QueryAsk{t.txid}, t.txid);
    }
    if (c.acked) {
        to_forget_.insert(t.txid);
        return;
    }
    if (c.ask.due > now_) return;
    const LogIndex theirs = c.there ? c.there->prepared_at : LogIndex{};
    send_ask(t.other, c.ask, DecideAsk{t.txid, t.fate, static_cast<std::uint8_t>(t.fate_reason), theirs}, t.txid);
}

// The receiver's side waits for the coordinator; past a bound it asks on
// its own, whether its record is undecided (no hold outlives its
// transaction), decided without word from the coordinator's log, or
// decided and never told to forget.
void Replica::drive_credit(const CrossTxn& t, Participating& p) {
    if (p.decide_proposed) return;  // its application drives it again
    if (now_ < p.first_seen + params_.cross_query_after_ticks || p.ask.due > now_) return;
    send_ask(t.other, p.ask, QueryAsk{t.txid}, t.txid);
}

// `timer`: the record to drive again when the resend is due.
void Replica::send_ask(ShardId to_shard, Asking& a, ShardAsk ask, std::optional<TxnId> timer) {
    // A resend avoids the node that did not answer the last one.
    const NodeId to = router_.target(to_shard, a.attempts > 0 ? a.sent_to : kNoNode);
    const std::uint32_t shift = std::min<std::uint32_t>(a.attempts, 6);
    a.due = now_ + std::min(params_.cross_retry_ticks << shift, params_.cross_retry_ticks_max);
    if (timer) arm(*timer, a.due);
    ++a.attempts;
    a.sent_to = to;
    if (to == kNoNode) return;
    asks_out_[to].push_back(std::move(ask));
}

// Requests waiting on `node` are sent again at once (to whom the router
// now says), instead of waiting out their backoff.
void Replica::resend_now(NodeId node) {
    for (auto& [txid, c] : coordinating_) {
        if (c.ask.sent_to == node) c.ask.due = now_;
    }
    for (auto& [txid, p] : participating_) {
        if (p.ask.sent_to == node) p.ask.due = now_;
    }
    drive_cross(true);
}

void Replica::reset_cross() {
    walk_all_ = true;
    timers_.clear();
    decide_batch_.clear();
    asks_out_.clear();
    coordinating_.clear();
    participating_.clear();
    answer_to_.clear();
    to_forget_.clear();
    forget_proposed_ = false;
    tell_forget_.clear();
}

// What waits on a node the host cannot reach goes elsewhere now.
void Replica::peer_unreachable(NodeId node) {
    if (member(node)) return;  // the election's failure detector handles our own shard
    router_.down(node);
    resend_now(node);
    for (auto& [w, op] : pending_.take_forwards_to(node)) {
        const ShardId target = router_.shard_of(node);
        const NodeId next = router_.target(target, node);
        if (next == kNoNode || next == node) {
            fail(w, "unavailable", "no reachable node of shard " + std::to_string(target.value));
            continue;
        }
        send_forward(w, next, op, 0);
    }
}

}  // namespace rl::txn
