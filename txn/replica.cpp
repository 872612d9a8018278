#include "txn/replica.hpp"

#include "config/check.hpp"
#include "config/overload.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace rl::txn {
namespace {

ShardState make_state(const ReplicaParams& p, const RecoveredState& r) {
    if (r.snapshot) return ShardState::restore(p.genesis.shard, r.snapshot->state);
    return ShardState(p.genesis.shard);
}

std::string ranges_text(const std::vector<config::ItemRange>& items) {
    std::string out;
    for (const auto& r : items) {
        out += (out.empty() ? "" : ",") + std::to_string(r.first.value) + "-" + std::to_string(r.last.value);
    }
    return out;
}

}  // namespace

std::string reset_refusal(ShardId shard, std::uint64_t cross_records) {
    return "shard " + std::to_string(shard.value) + " still records " + std::to_string(cross_records) +
           " cross-shard transaction(s); reset refused until they settle, retry";
}

TransferDone transfer_done(const ApplyResult& r) {
    return TransferDone{r.outcome, r.outcome == Outcome::committed ? std::string() : to_string(r.reason), r.txid};
}

TransferOutcome transfer_outcome(const ApplyResult& r) {
    return TransferOutcome{r.txid, r.outcome == Outcome::committed ? BatchStatus::committed : BatchStatus::aborted,
                           r.outcome == Outcome::committed ? std::string() : to_string(r.reason)};
}

Replica::Replica(ReplicaParams params, RecoveredState recovered)
    : params_(std::move(params)),
      election_(params_.election, recovered.durable),
      log_(params_.election.self, params_.election.members, params_.log, recovered.snapshot,
           std::move(recovered.entries)),
      state_(make_state(params_, recovered)),
      pending_(params_.pending, params_.forward_id_base),
      router_(params_.shards) {
    log_.follow(election_.epoch(), kNoNode);
    compare_genesis();
    sync_positions();
    drain_election();  // a one-node shard leads at once
    drain_log();
}

// ---- inputs ----

void Replica::step(NodeId from, const election::ElectionMessage& m) {
    sync_positions();
    election_.step(from, m);
    drain_election();
    drain_log();
}

void Replica::step(NodeId from, const TxnMessage& m) {
    std::visit(Overload{
                   [&](const ForwardRequest& f) { on_forward(from, f); },
                   [&](const ForwardReply& f) { on_forward_reply(from, f); },
                   [&](const ShardRequest& r) { on_shard_request(from, r); },
                   [&](const ShardReply& r) { on_shard_reply(from, r); },
                   [&](const InstallSnapshot& s) {
                       if (snapshot_acceptable(from, s.snapshot)) log_.step(from, s);
                   },
                   [&](const FetchReply& f) {
                       if (!f.snapshot || snapshot_acceptable(from, *f.snapshot)) log_.step(from, f);
                   },
                   [&](const auto& msg) { log_.step(from, msg); },
               },
               m);
    drain_log();
    incoming_.reset();  // the log did not take it (stale, or already past it)
}

void Replica::peer_refused(NodeId node) {
    if (!member(node)) return;
    sync_positions();
    election_.peer_refused(node);
    drain_election();
    drain_log();
}

bool Replica::tick() {
    const std::size_t before = effects();
    ++now_;
    sync_positions();
    const std::size_t sent = out_.election_messages.size();
    election_.tick();
    drain_election();
    // A leader's log heartbeat goes with its election heartbeat: followers
    // get both in one write, and an idle leader wakes once per period.
    const auto is_heartbeat = [](const ElectionEnvelope& m) {
        return std::holds_alternative<election::Heartbeat>(m.msg);
    };
    if (log_.leading() && std::any_of(out_.election_messages.begin() + static_cast<std::ptrdiff_t>(sent),
                                      out_.election_messages.end(), is_heartbeat)) {
        log_.heartbeat_now();
    }
    log_.tick();
    drain_log();
    const std::string late = "no answer in time at node " + std::to_string(params_.election.self.value);
    const std::string leaderless = "no leader known for shard " + std::to_string(shard().value);
    for (auto& g : pending_.tick(late, leaderless)) fail(g.waiter, g.code, g.message);
    retry_parked();
    drive_cross();
    flush_decisions();  // what no other entry carried along this tick
    compact_when_idle();
    return effects() != before;
}

// A lower bound, checked by the simulator on every tick it delivers (a tick
// before it that acts is counted in ShellStats::early_ticks). While any
// client operation waits, or any work of this turn does, every tick counts.
std::uint64_t Replica::ticks_until_due() const {
    const bool work_waits = pending_.size() > 0 || !decide_batch_.empty() ||
                            (!to_forget_.empty() && !forget_proposed_) ||
                            std::any_of(tell_forget_.begin(), tell_forget_.end(),
                                        [](const auto& t) { return !t.second.empty(); });
    if (work_waits) return 1;
    return std::min({election_.ticks_until_due(), log_.ticks_until_due(), ticks_until_idle_compaction(),
                     ticks_until_cross_due()});
}

// Everything produced and not yet taken: take_output() hands all of it over.
std::size_t Replica::effects() const {
    std::size_t n = out_.count() + log_.effects() + decide_batch_.size();
    for (const auto& [to, asks] : asks_out_) n += asks.size();
    for (const auto& [to, tells] : tells_out_) n += tells.size();
    return n;
}

std::size_t ReplicaOutput::count() const {
    return durable.has_value() + truncate_after.has_value() + install.has_value() + appended.size() +
           compact.has_value() + election_messages.size() + txn_messages.size() + replies.size() +
           election_events.size() + log_events.size() + events.size() + leader_change.has_value();
}

void Replica::persisted(LogIndex index) {
    log_.persisted(index);
    drain_log();
}

void Replica::submit(std::uint64_t handle, const ClientOp& op) { submit_op(LocalWaiter{handle}, op, 0); }

ReplicaOutput Replica::take_output() {
    drain_log();
    auto lo = log_.take_output();
    if (lo.truncate_after) out_.truncate_after = lo.truncate_after;
    if (lo.install) out_.install = std::move(lo.install);
    for (auto& e : lo.appended) out_.appended.push_back(std::move(e));
    // A snapshot installed this turn supersedes an earlier compaction below
    // it: the WAL restarts from the installed snapshot, and compacting
    // behind it afterwards would be out of order.
    if (out_.install && out_.compact && out_.compact->last_index <= out_.install->last_index) out_.compact.reset();
    for (auto& m : lo.messages) out_.txn_messages.push_back(std::move(m));
    for (auto& e : lo.events) out_.log_events.push_back(e);
    flush_between_shards();
    return std::exchange(out_, ReplicaOutput{});
}

// The election carries the log position in promises and the commit index in
// heartbeats; keep them current before it speaks.
void Replica::sync_positions() {
    election_.set_log_position(log_.position());
    election_.set_commit_index(log_.commit_index());
}

// ---- the epoch gate for messages the log does not see ----

bool Replica::member(NodeId id) const {
    const auto& m = params_.election.members;
    return std::find(m.begin(), m.end(), id) != m.end();
}

// One gate for epochs (docs/design.md section 9, habit 3): a higher epoch on
// any message from a member is observed like one on a log message. Forwarded
// client operations are still served from a lower epoch (the sender only
// learns of the newer leadership from our reply), but they never move ours.
void Replica::gate(NodeId from, Epoch theirs) {
    if (!member(from) || theirs <= election_.epoch()) return;
    sync_positions();
    election_.observe(from, theirs);
    drain_election();
}

// A snapshot from a peer replaces the whole state: it is read before the log
// takes it, and one this node cannot read is an operating error.
bool Replica::snapshot_acceptable(NodeId from, const Snapshot& s) {
    try {
        ShardState state = ShardState::restore(shard(), s.state);
        // The envelope must describe the state it carries, or the log would
        // continue from an index the state has not reached.
        if (state.applied_index() != s.last_index || state.applied_epoch() != s.last_epoch) {
            throw std::runtime_error("snapshot of shard " + std::to_string(shard().value) + " rejected: it claims index " +
                                     std::to_string(s.last_index.value) + " but its state is at " +
                                     std::to_string(state.applied_index().value));
        }
        incoming_ = std::move(state);  // read once: drain_log() installs this copy
        return true;
    } catch (const std::runtime_error& e) {
        ++snapshots_refused_;
        out_.events.emplace_back(std::in_place_type<SnapshotRefused>, from, std::string(e.what()));
        return false;
    }
}

// ---- election -> log ----

void Replica::drain_election() {
    auto eo = election_.take_output();
    if (eo.persist) out_.durable = eo.persist;
    for (auto& m : eo.messages) out_.election_messages.push_back({m.to, std::move(m.msg)});
    for (auto& e : eo.events) out_.election_events.push_back(e);
    if (eo.leader_change) {
        out_.leader_change = eo.leader_change;
        on_leader_change(*eo.leader_change, eo.elected);
    }
}

void Replica::on_leader_change(const election::LeaderChange& change, const std::optional<election::Elected>& elected) {
    const bool was_leading = log_.leading();
    if (change.role == election::RoleKind::leader && elected) {
        log_.lead(*elected);
    } else if (change.role != election::RoleKind::leader) {
        if (was_leading || change.epoch != log_.epoch() || change.leader != log_.leader()) {
            log_.follow(change.epoch, change.leader);
        }
    }
    if (was_leading && !log_.leading()) fail_leader_waiters("leadership ended before the operation finished; retry");
    // What a leader waits for from other shards is its own; a new one
    // rebuilds it from the records (docs/design.md section 6.7).
    if (was_leading || log_.leading()) reset_cross();
    move_stale_forwards(change.leader);
    if (change.leader != kNoNode) retry_parked();
}

// Everything the log produced that the replica must react to: a higher
// epoch seen, a failed adoption, a snapshot installed, committed entries.
void Replica::drain_log() {
    if (auto higher = log_.take_higher_epoch()) {
        sync_positions();
        election_.observe(higher->first, higher->second);
        drain_election();
    }
    if (log_.take_resign()) {
        election_.resign("adoption_failed");
        drain_election();
    }
    if (log_.snapshot_index() > state_.applied_index()) {
        // The leader sent its snapshot; it was read when it arrived.
        require(incoming_ && incoming_->applied_index() == log_.snapshot_index(),
                "the log installs only a snapshot the replica has read");
        state_ = std::move(*incoming_);
        incoming_.reset();
        applied_bytes_ = 0;
        compare_genesis();
    }
    apply_committed();
    maybe_propose_genesis();
    complete_reads();
    maybe_compact();
}

// Every replica applies the committed prefix in order; the leader also
// answers whoever waits for an entry it proposed.
void Replica::apply_committed() {
    while (state_.applied_index() < log_.commit_index() && state_.applied_index() < log_.last_index()) {
        const LogEntry& entry = log_.at(state_.applied_index().next());
        const bool was_created = state_.created();
        note_forgotten(entry);
        const Applied applied = state_.apply(entry);
        applied_bytes_ += entry_bytes(entry);
        if (!was_created && state_.created()) compare_genesis();
        answer_applied(entry, applied);
    }
}

void Replica::answer_applied(const LogEntry& entry, const Applied& applied) {
    if (const auto* r = std::get_if<ApplyResult>(&applied)) {
        reply_transfer(*r);
        // A PrepareDebit the session table settled: nothing to coordinate.
        if (std::holds_alternative<PrepareDebit>(entry.command)) coordinating_.erase(r->txid);
    }
    answer_cross(applied);
    for (const Waiter& w : pending_.take_entry(entry.index)) answer_entry(w, entry, applied);
}

// Whoever waits on an OpenSession, a Reset or a TransferBatch entry this
// leader proposed.
void Replica::answer_entry(const Waiter& w, const LogEntry& entry, const Applied& applied) {
    if (const auto* s = std::get_if<SessionOpened>(&applied)) return reply(w, SessionDone{shard(), s->session});
    if (const auto* b = std::get_if<BatchApplied>(&applied)) {
        BatchDone done;
        done.each.reserve(b->each.size());
        for (const ApplyResult& r : b->each) done.each.push_back(transfer_outcome(r));
        return reply(w, std::move(done));
    }
    const auto* r = std::get_if<ResetApplied>(&applied);
    if (r == nullptr) return fail(w, "unavailable", "the shard is not created yet; retry");
    if (r->done) return reply(w, ResetDone{shard(), entry.index});
    fail(w, "unavailable", reset_refusal(shard(), r->cross_records));
}

// The first leader of an empty shard creates it (docs/design.md section 6).
// Once per leadership: a Genesis that lands after another one is a no-op.
void Replica::maybe_propose_genesis() {
    if (state_.created() || !log_.ready() || genesis_proposed_in_ == log_.epoch()) return;
    genesis_proposed_in_ = log_.epoch();
    log_.propose(params_.genesis);
}

// A node follows the log; where its INI says otherwise, it says so once.
void Replica::compare_genesis() {
    if (genesis_compared_ || !state_.created()) return;
    genesis_compared_ = true;
    const Genesis& mine = params_.genesis;
    const Genesis& log = *state_.genesis();
    const auto differs = [&](const char* key, const std::string& ini, const std::string& replicated) {
        if (ini != replicated) out_.events.emplace_back(std::in_place_type<ConfigDiffers>, key, ini, replicated);
    };
    differs("items", ranges_text(mine.items), ranges_text(log.items));
    differs("initial_balance", std::to_string(mine.initial_balance), std::to_string(log.initial_balance));
    differs("dedup_window", std::to_string(mine.dedup_window), std::to_string(log.dedup_window));
    differs("dedup_clients_max", std::to_string(mine.sessions_max), std::to_string(log.sessions_max));
}

// Keeps the WAL and the in-memory log bounded: once enough entries, or
// enough bytes of them, are applied, the state itself stands in for them
// (a log of large batches reaches its bytes long before its count).
void Replica::maybe_compact() {
    const LogIndex applied = state_.applied_index();
    if (applied <= log_.snapshot_index()) return;
    if (applied.value < log_.snapshot_index().value + params_.snapshot_after_entries &&
        applied_bytes_ < params_.snapshot_after_bytes) {
        return;
    }
    compact();
}

// A node that applied nothing for idle_compact_ticks need not keep its log
// until the bound: it compacts once it holds a 64th of the bytes bound, so
// an idle node holds little memory whatever load came before, and a
// lightly loaded one does not snapshot every few transfers.
void Replica::compact_when_idle() {
    const LogIndex applied = state_.applied_index();
    if (applied != idle_at_) {
        idle_at_ = applied;
        idle_ticks_ = 0;
        return;
    }
    if (++idle_ticks_ != params_.idle_compact_ticks) return;
    if (worth_idle_compaction()) compact();
}

// What an idle node would compact: something applied since the last
// snapshot, and at least a 64th of the bytes bound of it.
bool Replica::worth_idle_compaction() const {
    return state_.applied_index() > log_.snapshot_index() && applied_bytes_ >= params_.snapshot_after_bytes / 64;
}

// compact_when_idle(): a tick that sees a new applied index starts the
// count again, and the tick that takes it to idle_compact_ticks compacts, if
// what it would compact is worth it (nothing applies without an input).
std::uint64_t Replica::ticks_until_idle_compaction() const {
    if (!worth_idle_compaction()) return UINT64_MAX;
    if (state_.applied_index() != idle_at_) return params_.idle_compact_ticks + 1;
    if (idle_ticks_ >= params_.idle_compact_ticks) return UINT64_MAX;
    return params_.idle_compact_ticks - idle_ticks_;
}

void Replica::compact() {
    const LogIndex applied = state_.applied_index();
    Snapshot s{applied, *log_.epoch_at(applied), state_.snapshot()};
    log_.compact(s);
    out_.compact = std::move(s);
    applied_bytes_ = 0;
}

// ---- client operations ----

// Checked wherever the operation arrives, once this node knows the shard's
// items; before that, the leader checks it.
std::optional<OpFailed> Replica::edge_failure(const std::optional<EdgeError>& e) const {
    if (!e) return std::nullopt;
    return OpFailed{to_string(e->code), e->message, leader()};
}

std::optional<OpFailed> Replica::edge_check(const ClientOp& op) const {
    if (!state_.created()) return std::nullopt;
    const auto failed = [&](const std::optional<EdgeError>& e) { return edge_failure(e); };
    return std::visit(Overload{
                          [&](const TransferOp& t) { return transfer_check(t); },
                          [&](const BatchOp& b) -> std::optional<OpFailed> {
                              // One session: the FROM items all live here
                              // (docs/design.md section 6.9).
                              if (b.transfers.empty()) return OpFailed{"bad_request", "an empty batch", leader()};
                              for (std::size_t i = 0; i < b.transfers.size(); ++i) {
                                  const TransferOp& t = b.transfers[i];
                                  auto err = transfer_check(t);
                                  if (!err && t.txid.session != b.transfers.front().txid.session) {
                                      err = OpFailed{"bad_request", "the transfers of one shard use one session", leader()};
                                  }
                                  if (err) {
                                      err->message = "transfer " + std::to_string(i + 1) + ": " + err->message;
                                      return err;
                                  }
                              }
                              return std::nullopt;
                          },
                          [&](const LeaderOp&) -> std::optional<OpFailed> { return std::nullopt; },
                          [&](const BalanceOp& b) { return failed(state_.check_item(b.item)); },
                          [&](const SessionOp& s) { return failed(state_.check_item(s.item)); },
                          [&](const AuditOp&) -> std::optional<OpFailed> { return std::nullopt; },
                          [&](const ResetOp&) -> std::optional<OpFailed> { return std::nullopt; },
                      },
                      op);
}

std::optional<OpFailed> Replica::transfer_check(const TransferOp& t) const {
    const ShardId to = shard_of_item(t.to);
    if (to != shard() && to.value != 0) {
        return edge_failure(state_.validate(PrepareDebit{t.txid, t.from, t.to, to, t.amount}));
    }
    return edge_failure(state_.validate(Transfer{t.txid, t.from, t.to, t.amount}));
}

// Admission (docs/design.md section 9, habit 7): every waiter counts, a
// retry joining a known transfer too.
bool Replica::admit(const Waiter& w) {
    if (!pending_.full()) return true;
    fail(w, "unavailable", "too many operations in progress at this node");
    return false;
}

void Replica::submit_op(const Waiter& w, const ClientOp& op, std::uint8_t hops) {
    // Checked at every hop: a node whose INI says no never passes one on.
    if (std::holds_alternative<ResetOp>(op) && !params_.fault_injection) {
        return fail(w, "forbidden", kFaultInjectionDisabled);
    }
    if (auto err = edge_check(op)) return reply(w, *err);
    if (std::holds_alternative<LeaderOp>(op)) return reply(w, LeaderDone{shard(), leader(), epoch()});
    if (const auto* b = std::get_if<BalanceOp>(&op); b && b->local) {
        if (!state_.created()) return fail(w, "unavailable", "this node has not applied the shard's creation yet");
        return reply(w, BalanceDone{b->item, state_.balance(b->item), true, state_.applied_index(),
                                    state_.held(b->item), state_.pending(b->item)});
    }
    if (log_.ready() && state_.created()) {
        if (const auto* t = std::get_if<TransferOp>(&op)) {
            const ShardId to = shard_of_item(t->to);
            if (to != shard() && to.value != 0) return serve_cross(w, *t, to);
            return serve_transfer(w, *t);
        }
        if (const auto* b = std::get_if<BatchOp>(&op)) return serve_batch(w, *b);
        if (std::holds_alternative<SessionOp>(op)) return serve_session(w);
        if (std::holds_alternative<ResetOp>(op)) return serve_reset(w);
        return serve_read(w, op);
    }
    forward(w, op, hops);
}

void Replica::serve_transfer(const Waiter& w, const TransferOp& op) {
    // Exactly-once: a txid already applied gets its first result; one in
    // the log but not yet applied gets the same wait.
    if (auto done = state_.lookup(op.txid)) return reply(w, transfer_done(*done));
    if (!admit(w)) return;
    if (!pending_.waiting_for(op.txid)) propose(Transfer{op.txid, op.from, op.to, op.amount});
    pending_.wait_transfer(op.txid, w);
}

namespace {
// The part number serve_batch() releases its own hold with.
constexpr std::uint32_t kNoPart = ~std::uint32_t{0};
}  // namespace

// A client batch's transfers of this shard (docs/design.md section 6.9), in
// order: a run of intra-shard transfers becomes one TransferBatch entry, a
// cross-shard one starts its two-phase commit where it stands, so the log
// holds them in the client's order and each sees what the earlier ones
// moved or held. Transfers the session table already settled are answered
// from it; the rest apply exactly-once like single transfers.

void Replica::serve_batch(const Waiter& w, const BatchOp& op) {
    if (!admit(w)) return;
    const std::uint64_t id = next_batch_++;
    Assembly& a = batches_[id];
    a.origin = w;
    a.missing = 1;  // this loop's own hold: a part answered at once cannot finish the batch under it
    a.each.reserve(op.transfers.size());
    TransferBatch run{op.transfers.front().txid.session, {}};
    std::vector<std::uint32_t> run_at;
    const auto new_part = [&](std::vector<std::uint32_t> positions) {
        a.parts.push_back(std::move(positions));
        ++a.missing;
        return BatchWaiter{id, static_cast<std::uint32_t>(a.parts.size() - 1)};
    };
    const auto end_run = [&] {
        if (run.each.empty()) return;
        const LogIndex at = propose(TransferBatch{run.session, std::exchange(run.each, {})});
        pending_.wait_entry(at, new_part(std::exchange(run_at, {})));
    };
    for (std::uint32_t i = 0; i < op.transfers.size(); ++i) {
        const TransferOp& t = op.transfers[i];
        a.each.push_back(TransferOutcome{t.txid, BatchStatus::failed, "timeout"});
        if (auto done = state_.lookup(t.txid)) {
            a.each.back() = transfer_outcome(*done);
            continue;
        }
        const ShardId to = shard_of_item(t.to);
        if (to == shard() || to.value == 0) {
            run.each.push_back(BatchTransfer{t.txid.seq, t.from, t.to, t.amount});
            run_at.push_back(i);
            continue;
        }
        end_run();
        pending_.wait_transfer(t.txid, new_part({i}));
        coordinate(t, to);
    }
    end_run();
    on_batch_part(BatchWaiter{id, kNoPart}, BatchDone{});
}

void Replica::on_batch_part(const BatchWaiter& b, const OpResult& result) {
    auto it = batches_.find(b.batch);
    if (it == batches_.end()) return;
    Assembly& a = it->second;
    if (b.part != kNoPart && !place_outcomes(a.each, a.parts.at(b.part), result)) {
        place_outcomes(a.each, a.parts.at(b.part), OpFailed{"unavailable", "", kNoNode});
    }
    if (--a.missing > 0) return;
    Assembly done = std::move(a);
    batches_.erase(it);
    reply(done.origin, BatchDone{std::move(done.each)});
}

void Replica::serve_session(const Waiter& w) {
    if (!admit(w)) return;
    pending_.wait_entry(propose(OpenSession{}), w);
}

// A reset is refused at once while this leader's applied state records a
// cross-shard transaction; the entry itself checks again where it applies,
// since a Prepare may land before it (docs/design.md section 6.8).
void Replica::serve_reset(const Waiter& w) {
    if (const auto records = state_.cross_txns().size(); records > 0) {
        return fail(w, "unavailable", reset_refusal(shard(), records));
    }
    if (!admit(w)) return;
    pending_.wait_entry(propose(Reset{}), w);
}

// Linearizable read (Raft's ReadIndex): the answer reflects everything
// committed before the read arrived, once a majority has confirmed in a new
// round that this node still leads.
void Replica::serve_read(const Waiter& w, const ClientOp& op) {
    if (!admit(w)) return;
    const LogIndex read_index = std::max(log_.commit_index(), log_.epoch_start());
    pending_.wait_read({w, op, read_index, log_.start_read_round()});
    complete_reads();
}

void Replica::complete_reads() {
    const std::uint64_t confirmed = log_.confirmed_round();
    const auto ready = [&](const PendingOps::Read& r) {
        return log_.ready() && confirmed >= r.round && state_.applied_index() >= r.read_index;
    };
    for (const auto& r : pending_.take_reads(ready)) {
        if (const auto* b = std::get_if<BalanceOp>(&r.op)) {
            reply(r.waiter, BalanceDone{b->item, state_.balance(b->item), false, state_.applied_index(),
                                        state_.held(b->item), state_.pending(b->item)});
        } else {
            reply(r.waiter, audit());
        }
    }
}

// The shard's books for `rlcat audit`, from the applied state.
AuditDone Replica::audit() const {
    AuditDone a;
    a.shard = shard();
    a.applied_index = state_.applied_index();
    const Genesis& g = *state_.genesis();
    a.initial_balance = g.initial_balance;
    for (const config::ItemRange& r : g.items) {
        a.items += r.size();
        for (std::uint64_t i = r.first.value; i <= r.last.value; ++i) {
            const ItemId item{i};
            const std::int64_t posted = state_.balance(item);
            if (posted < 0 || posted - state_.held(item) < 0) a.negatives.emplace_back(item, posted);
        }
    }
    a.total = state_.total();
    a.held = state_.held_total();
    a.pending = state_.pending_total();
    for (const CrossTxn* record : state_.cross_txns_by_id()) {
        const CrossTxn& t = *record;
        const auto seen = first_seen_.find(t.txid);
        const std::uint64_t age = seen == first_seen_.end() ? 0 : (now_ - seen->second) * params_.tick_ms;
        const AbortReason reason = t.fate == Fate::aborted ? t.fate_reason : t.vote_reason;
        a.txns.push_back(AuditTxn{t.txid, static_cast<std::uint8_t>(t.side), t.from, t.to, t.other, t.amount,
                                  t.voted_yes, static_cast<std::uint8_t>(t.fate),
                                  reason == AbortReason::none ? std::string() : to_string(reason), age});
    }
    return a;
}

// Not the leader: pass the operation to the one we know, or hold it until
// one is known (or its time is up).
void Replica::forward(const Waiter& w, const ClientOp& op, std::uint8_t hops) {
    const NodeId leader = election_.leader();
    if (leader == kNoNode || leader == params_.election.self) {
        if (admit(w)) pending_.park({w, op, hops});
        return;
    }
    send_forward(w, leader, op, hops);
}

void Replica::forward_elsewhere(std::uint64_t handle, ShardId shard, const ClientOp& op) {
    const NodeId target = router_.target(shard);
    if (target == kNoNode) return fail(LocalWaiter{handle}, "bad_request", "no shard " + std::to_string(shard.value));
    send_forward(LocalWaiter{handle}, target, op, 0);
}

void Replica::send_forward(const Waiter& w, NodeId to, const ClientOp& op, std::uint8_t hops) {
    if (hops >= kForwardHopsMax) return fail(w, "unavailable", "too many forwarding hops; leader unsettled");
    if (!admit(w)) return;
    const std::uint64_t id = pending_.forward(w, to, op, static_cast<std::uint8_t>(hops + 1));
    // Across shards the receiver learns our shard's epoch and ignores it
    // (its epoch gate looks only at its own members).
    out_.txn_messages.push_back({to, ForwardRequest{epoch(), id, static_cast<std::uint8_t>(hops + 1), op}});
}

void Replica::retry_parked() {
    if (!pending_.has_parked() || (election_.leader() == kNoNode && !log_.ready())) return;
    for (auto& p : pending_.take_parked()) submit_op(p.waiter, p.op, p.hops);
}

void Replica::on_forward(NodeId from, const ForwardRequest& m) {
    gate(from, m.epoch);
    submit_op(RemoteWaiter{from, m.forward_id}, m.op, m.hops);
}

void Replica::on_forward_reply(NodeId from, const ForwardReply& m) {
    gate(from, m.epoch);
    if (member(from)) {
        if (auto w = pending_.take_forward_reply(m.forward_id, from, m.result)) reply(*w, m.result);
        return;
    }
    // Another shard's node: its hint teaches the leader cache, and a
    // refusal that names a leader is retried there at once.
    const ShardId other = router_.shard_of(from);
    router_.learn(other, m.leader_hint, m.epoch);
    const ClientOp* op = pending_.forwarded_op(m.forward_id);
    const auto* failed = std::get_if<OpFailed>(&m.result);
    const bool redirect = op != nullptr && failed != nullptr && failed->code == "unavailable" &&
                          m.leader_hint != kNoNode && m.leader_hint != from;
    const ClientOp again = redirect ? *op : ClientOp{};
    auto w = pending_.take_forward_reply(m.forward_id, from, m.result);
    if (!w) return;
    if (redirect && std::holds_alternative<LocalWaiter>(*w)) return send_forward(*w, m.leader_hint, again, 1);
    reply(*w, m.result);
}

void Replica::reply(const Waiter& w, OpResult result) {
    std::visit(Overload{
                   [&](const LocalWaiter& l) { out_.replies.emplace_back(l.handle, std::move(result)); },
                   [&](const RemoteWaiter& r) {
                       out_.txn_messages.push_back({r.node, ForwardReply{epoch(), r.forward_id, std::move(result), leader()}});
                   },
                   [&](const BatchWaiter& b) { on_batch_part(b, result); },
               },
               w);
}

void Replica::fail(const Waiter& w, const std::string& code, const std::string& message) {
    reply(w, OpFailed{code, message, leader()});
}

// A deposed leader cannot tell whether its proposals will commit: the
// clients retry with the same txid, and the session table answers truly.
void Replica::fail_leader_waiters(const std::string& why) {
    for (const Waiter& w : pending_.take_leader_waits()) fail(w, "unavailable", why);
}

// Operations passed to a leader this node no longer believes in (replaced,
// or suspected: crashed) may never be answered. Those a second try cannot
// apply twice (a transfer's txid settles it once; reads) go on at once: to
// the new leader, or parked until one is known, as if they arrived now
// (docs/design.md section 6.5); the forwarding bound still holds. The rest
// are told to retry.
void Replica::move_stale_forwards(NodeId leader) {
    const auto stale = [&](NodeId to) { return member(to) && to != leader; };
    for (auto& p : pending_.take_forwards_if(stale)) {
        const bool again = std::holds_alternative<TransferOp>(p.op) || std::holds_alternative<BalanceOp>(p.op) ||
                           std::holds_alternative<AuditOp>(p.op) || std::holds_alternative<LeaderOp>(p.op);
        if (again && p.hops < kForwardHopsMax) {
            forward(p.waiter, p.op, p.hops);
            continue;
        }
        fail(p.waiter, "unavailable", "the leader changed while the operation was forwarded; retry");
    }
}

}  // namespace rl::txn
