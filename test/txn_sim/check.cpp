// The checkers: each shard's committed history learned from every node and
// checked against every node, the applied states against the independent
// model, the two shards of every cross-shard transaction against each other
// (one fate, the same amount, each side posted at most once), money
// conserved across shards at every moment, persist-before-send on every
// message, one leader per epoch per shard, and the quiescent accounting.
#include "election/quorum.hpp"
#include "describe_txn.hpp"
#include "sim.hpp"

#include <algorithm>
#include <numeric>

namespace rl::txn::sim {
namespace {

std::string at(LogIndex i) { return std::to_string(i.value); }
std::string where(ShardId s, LogIndex i) { return "shard " + std::to_string(s.value) + " entry " + at(i); }
const char* fate_name(Fate f) {
    return f == Fate::committed ? "committed" : f == Fate::aborted ? "aborted" : "undecided";
}

// FNV-1a: equal states must give equal bytes, so any stable hash will do.
std::uint64_t hash_bytes(const std::vector<std::uint8_t>& bytes) {
    std::uint64_t h = 14695981039346656037ull;
    for (std::uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
    return h;
}

// The sender's epoch a message carries, as it vouches for it. Requests
// between shards carry none; their answers leave before the turn's sync
// (Shell::send_early: they report applied, hence committed,
// state), so their epoch is only a hint for the asker's leader cache, and
// may be one this node adopts in the same turn.
template <class M>
Epoch epoch_of(const M& mail) {
    return std::visit(
        [](const auto& inner) {
            return std::visit(
                [](const auto& m) {
                    using T = std::decay_t<decltype(m)>;
                    if constexpr (std::is_same_v<T, ShardRequest> || std::is_same_v<T, ShardReply>) {
                        return Epoch{};
                    } else {
                        return m.epoch;
                    }
                },
                inner);
        },
        mail);
}

}  // namespace

void Sim::observe(Node& n) {
    if (!n.replica) return;
    learn(n);
    check_applied(n);
}

// The node's entry at `index`: its in-memory log first; an index it has
// compacted only from the shadow, and only while the shadow holds all the
// replica handed over (no input since its last flush).
const LogEntry* Sim::entry_at(const Node& n, LogIndex index) const {
    const ReplicatedLog& log = n.replica->log();
    if (index > log.snapshot_index() && index <= log.last_index()) return &log.at(index);
    if (!n.shadow_current) return nullptr;
    auto it = n.shadow.find(index.value);
    return it == n.shadow.end() ? nullptr : &it->second;
}

// Walks the node's committed prefix past what was processed: each entry
// must equal its shard's committed history, and the first node to commit an
// index extends it. Entries known only through a snapshot are checked
// through the applied state instead.
void Sim::learn(Node& n) {
    const Oracle& oracle = oracles_.at(n.shard.value - 1);
    const LogIndex commit = n.replica->commit_index();
    if (commit < n.learned) fail(who(n.id) + " commit index went back from " + at(n.learned) + " to " + at(commit));
    while (n.learned < commit) {
        const LogIndex i = n.learned.next();
        const LogEntry* e = entry_at(n, i);
        if (!e) {
            // Not handed over yet, or compacted since: wait for the next
            // flush, unless the history has it already (the state check
            // covers it) or only a snapshot ever brought it here.
            if (i > oracle.size() && (!n.shadow_current || i > n.shadow_base)) return;
            n.learned = i;
            continue;
        }
        if (i <= oracle.size()) {
            if (oracle.at(i).epoch != e->epoch) {
                fail(who(n.id) + " committed entry " + at(i) + " of epoch " + std::to_string(e->epoch.value) +
                     ", the history has epoch " + std::to_string(oracle.at(i).epoch.value));
            }
        } else if (i.value == oracle.size().value + 1) {
            learn_entry(n, *e);
        } else {
            return;  // a gap in the history: another node fills it first
        }
        n.learned = i;
    }
}

// A newly committed entry must already sit on a majority of its shard's
// disks (the leader counts only durable copies), each the same entry. The
// model and the real state machine both apply it; what they decide of a
// cross-shard transaction is matched against its other shard.
void Sim::learn_entry(const Node& n, const LogEntry& e) {
    const std::size_t copies = durable_copies(n.shard, e);
    if (copies < election::majority(config_.nodes)) {
        fail(who(n.id) + " committed entry " + at(e.index) + " held durably by only " + std::to_string(copies) +
             " nodes");
    }
    Oracle& oracle = oracles_.at(n.shard.value - 1);
    oracle.append(e);
    ++stats_.committed_entries;
    if (config_.trace) {
        trace("committed " + where(n.shard, e.index) + " epoch=" + std::to_string(e.epoch.value) + " (seen at " +
              who(n.id) + ")");
    }
    ShardState& mirror = mirrors_.at(n.shard.value - 1);
    const Applied applied = mirror.apply(e);
    std::vector<std::pair<Decided, Fate>> decided;  // each decision applied, with the fate its entry asked for
    if (const auto* d = std::get_if<Decided>(&applied)) decided.emplace_back(*d, std::get<Decide>(e.command).fate);
    if (const auto* many = std::get_if<DecidedMany>(&applied)) {
        const auto& asked = std::get<Decisions>(e.command).each;
        for (std::size_t i = 0; i < many->each.size(); ++i) decided.emplace_back(many->each[i], asked[i].fate);
    }
    for (const auto& [d, fate] : decided) {
        if (!d.conflicting) continue;
        fail("Decided.conflicting at " + where(n.shard, e.index) + ": txid " + txid_str(d.txid) + " decided " +
             fate_name(fate) + ", its record there is " + fate_name(d.txn.fate));
    }
    // The real state machine keeps the records the model keeps.
    const auto& mine = mirror.cross_txns();
    const auto& want = oracle.records();
    bool same = mine.size() == want.size();
    for (auto a = mine.begin(); same && a != mine.end(); ++a) {
        const auto b = want.find(a->first);
        if (b == want.end()) {
            same = false;
            break;
        }
        const CrossTxn& x = a->second;
        const Oracle::Record& y = b->second;
        same = x.side == y.side && x.amount == y.amount && x.voted_yes == y.voted_yes && x.fate == y.fate &&
               x.fate_reason == y.fate_reason && x.final_elsewhere == y.final_elsewhere && x.from == y.from &&
               x.to == y.to && x.other == y.other;
    }
    if (!same) fail("the state machine's cross-shard records differ from the model's after " + where(n.shard, e.index));
    const std::uint64_t h = hash_bytes(mirror.snapshot());
    const auto [it, fresh] = state_hashes_.at(n.shard.value - 1).try_emplace(e.index, h);
    if (!fresh && it->second != h) {
        fail("a replica's state bytes differ from the committed history's at " + where(n.shard, e.index));
    }
    for (const auto& d : oracle.take_decisions()) on_decision(n.shard, d);
}

// One fate per transaction across every log, every shard and every
// incarnation of its records; each side posted at most once, both sides
// the same transfer.
void Sim::on_decision(ShardId shard, const Oracle::Decision& d) {
    CrossFacts& f = cross_[d.txid];
    const std::string here = where(shard, d.index) + (d.side == Side::debit ? " (debit side" : " (credit side") +
                             (d.fence ? ", fence)" : ")");
    if (config_.trace) trace("txid " + txid_str(d.txid) + " " + fate_name(d.fate) + " at " + here);
    if (!f.fate) {
        f.fate = {d.fate, here};
    } else if (f.fate->first != d.fate) {
        fail("txid " + txid_str(d.txid) + " decided both ways: " + fate_name(f.fate->first) + " at " + f.fate->second +
             ", " + fate_name(d.fate) + " at " + here);
    }
    if (d.fate == Fate::committed) {
        auto& mine = d.side == Side::debit ? f.debit_posted : f.credit_posted;
        const auto& other = d.side == Side::debit ? f.credit_posted : f.debit_posted;
        if (mine) fail("txid " + txid_str(d.txid) + " posted on its " + (d.side == Side::debit ? "debit" : "credit") +
                       " side twice: " + where(shard, mine->index) + " and " + here);
        if (other && (other->amount != d.amount || other->from != d.from || other->to != d.to)) {
            fail("txid " + txid_str(d.txid) + " posted " + std::to_string(d.amount) + " at " + here + " but " +
                 std::to_string(other->amount) + " on its other side");
        }
        mine = d;
        ++stats_.cross_committed;
    }
    if (d.side == Side::debit) confirm_ack(d.txid);
}

std::size_t Sim::durable_copies(ShardId shard, const LogEntry& e) const {
    std::size_t copies = 0;
    for (NodeId id : shard_nodes(shard)) {
        const Disk& d = node(id).model.disk();
        const LogEntry* mine = d.find(e.index);
        if ((mine && mine->epoch == e.epoch) || d.snapshot_index() >= e.index) ++copies;
    }
    return copies;
}

// The applied state at index k must be the model's after k entries: the
// same posted balances, holds and pending credits, no posted or available
// balance negative; and, when it is the latest state known, the same
// cross-shard records.
void Sim::check_applied(Node& n) {
    const Oracle& oracle = oracles_.at(n.shard.value - 1);
    const ShardState& s = n.replica->state();
    const LogIndex applied = s.applied_index();
    if (applied == n.applied_seen || applied > oracle.size()) return;
    if (applied > n.replica->commit_index()) fail(who(n.id) + " applied past its commit index");
    const Oracle::Books& want = oracle.books(applied);
    if (s.created() != !want.posted.empty()) fail(who(n.id) + " created its state at another entry than the history");
    if (s.created()) {
        const ItemId first = oracle.genesis()->items.front().first;
        for (std::size_t i = 0; i < want.posted.size(); ++i) {
            const ItemId item{first.value + i};
            const std::int64_t posted = s.balance(item);
            const std::int64_t held = s.held(item);
            const std::int64_t pending = s.pending(item);
            const std::string name = who(n.id) + " item " + std::to_string(item.value);
            if (posted < 0) fail(name + " posted balance negative: " + std::to_string(posted));
            if (posted - held < 0) fail(name + " available balance negative: " + std::to_string(posted - held));
            if (posted != want.posted[i] || held != want.held[i] || pending != want.pending[i]) {
                fail(name + " has posted/held/pending " + std::to_string(posted) + "/" + std::to_string(held) + "/" +
                     std::to_string(pending) + " at applied index " + at(applied) + ", the committed history gives " +
                     std::to_string(want.posted[i]) + "/" + std::to_string(want.held[i]) + "/" +
                     std::to_string(want.pending[i]));
            }
        }
        if (s.total() != oracle.total(applied)) fail(who(n.id) + " total differs from the committed history's");
        if (s.held_total() != std::accumulate(want.held.begin(), want.held.end(), std::int64_t{0}) ||
            s.pending_total() != std::accumulate(want.pending.begin(), want.pending.end(), std::int64_t{0})) {
            fail(who(n.id) + " held or pending total differs from its items'");
        }
        if (applied == oracle.size() && s.cross_txns().size() != oracle.records().size()) {
            fail(who(n.id) + " keeps " + std::to_string(s.cross_txns().size()) + " cross-shard records, the model " +
                 std::to_string(oracle.records().size()));
        }
    }
    check_state_bytes(n);
    n.applied_seen = applied;
}

// Replicas of a shard that applied the same prefix hold byte-identical
// states, and the same as the real state machine fed the committed history
// (compared by hash as they go, in full at quiescence).
void Sim::check_state_bytes(const Node& n) {
    const ShardState& s = n.replica->state();
    const std::uint64_t h = hash_bytes(s.snapshot());
    const auto [it, fresh] = state_hashes_.at(n.shard.value - 1).try_emplace(s.applied_index(), h);
    if (!fresh && it->second != h) {
        fail(who(n.id) + " state bytes differ from another replica's at applied index " + at(s.applied_index()));
    }
}

// Persist before send (docs/design.md section 9, habit 1): the epoch a message carries, a
// promise it makes, and the entries an acknowledgement vouches for are on
// the sender's disk.
void Sim::check_sent(const Node& n, const Mail& mail) const {
    const Disk& d = n.model.disk();
    if (epoch_of(mail) > d.durable.epoch) fail(who(n.id) + " sent an epoch not on its disk");
    if (const auto* e = std::get_if<election::ElectionMessage>(&mail)) {
        const auto* reply = std::get_if<election::PromiseReply>(e);
        const bool promises = (reply && reply->granted) || std::holds_alternative<election::PromiseRequest>(*e);
        if (promises && d.durable.promised < epoch_of(mail)) fail(who(n.id) + " sent a promise not on its disk");
        return;
    }
    const auto* ack = std::get_if<AppendReply>(&std::get<TxnMessage>(mail));
    if (ack && ack->success && ack->match_index > d.last_index()) {
        fail(who(n.id) + " acknowledged entries through " + at(ack->match_index) + " with its disk at " +
             at(d.last_index()));
    }
}

// After every event: one leader per epoch and shard, ever; epochs never go
// back; money is conserved across shards.
void Sim::check_invariants() {
    for (auto& n : nodes_) {
        if (!n.replica) continue;
        observe(n);
        if (n.replica->epoch() < max_epoch_[n.id.value - 1]) fail(who(n.id) + " epoch below its durable epoch");
        // The node slept through a tick that acted: it should have woken.
        if (n.shell->stats().early_ticks > 0) fail(who(n.id) + " slept through a tick that acted");
        if (n.replica->role() != election::RoleKind::leader) continue;
        const auto [it, fresh] = leaders_.emplace(std::pair{n.shard, n.replica->epoch()}, n.id);
        if (!fresh && it->second != n.id) {
            fail("two leaders in epoch " + std::to_string(n.replica->epoch().value) + " of shard " +
                 std::to_string(n.shard.value) + ": " + who(it->second) + " and " + who(n.id));
        }
    }
    if (config_.shards > 1) check_conservation();
}

// Over the most advanced applied state of each shard, the posted balances
// of all shards plus what is in flight sum to every created shard's items x
// initial_balance. In flight: a transaction posted on one side only at
// those states, + amount when its debit is posted, - amount when its
// credit is (a record forgotten since still counts as posted where its
// shard's history committed it). Per shard, sent_away(k) sums the postings
// of its history through k, so summed over shards it is exactly the
// txid-by-txid count, as on_decision checks both sides post the same amount
// (check_quiescent counts txid by txid).
void Sim::check_conservation() {
    std::int64_t sum = 0;
    std::int64_t want = 0;
    for (std::size_t k = 1; k <= config_.shards; ++k) {
        const Oracle& oracle = oracles_.at(k - 1);
        const Replica* best = nullptr;
        for (NodeId id : shard_nodes(ShardId{k})) {
            if (!is_up(id)) continue;
            const Replica& r = replica(id);
            if (r.applied_index() > oracle.size() || !r.state().created()) continue;
            if (!best || r.applied_index() > best->applied_index()) best = &r;
        }
        const LogIndex index = best ? best->applied_index() : oracle.size();
        if (oracle.books(index).posted.empty()) continue;  // not created there yet
        sum += (best ? best->state().total() : oracle.total(index)) + oracle.sent_away(index);
        want += static_cast<std::int64_t>(config_.items) * config_.initial_balance;
    }
    if (sum != want) {
        fail("money not conserved across shards: posted plus in flight is " + std::to_string(sum) + ", expected " +
             std::to_string(want));
    }
}

bool Sim::converged() const {
    for (std::size_t k = 1; k <= config_.shards; ++k) {
        const Oracle& oracle = oracles_.at(k - 1);
        const auto up = shard_up(ShardId{k});
        if (!oracle.created() || !agreed_leader(up)) return false;
        for (NodeId id : up) {
            const Replica& r = replica(id);
            if (r.applied_index() != oracle.size() || r.commit_index() != oracle.size()) return false;
        }
    }
    return true;
}

bool Sim::settled() const {
    for (const auto& n : nodes_) {
        if (!n.replica) continue;
        const ShardState& s = n.replica->state();
        if (s.held_total() != 0 || s.pending_total() != 0) return false;
        for (const auto& [txid, t] : s.cross_txns()) {
            if (t.fate == Fate::undecided) return false;
        }
    }
    return true;
}

bool Sim::forgotten() const {
    return std::all_of(nodes_.begin(), nodes_.end(),
                       [](const Node& n) { return !n.replica || n.replica->state().cross_txns().empty(); });
}

bool Sim::is_cross(TxnId txid) const {
    auto it = ops_.find(txid);
    return it != ops_.end() && shard_of_item(it->second.from) != shard_of_item(it->second.to);
}

// Exactly-once, as the final accounting: every acknowledged txid has the
// acknowledged result in the history and in each replica's dedup table,
// and the replicas' balances are the history's (money moved once per
// committed txid, never for an aborted one). Across shards: no hold,
// pending credit or undecided record left; every acknowledged commit
// posted in both shards, every acknowledged abort in neither; nothing in
// flight, and all shards' balances sum to what they started with.
void Sim::check_quiescent() {
    for (const auto& r : deferred_reads_) check_read(r.done, r.floor, r.local);
    deferred_reads_.clear();
    if (!unconfirmed_.empty()) {
        fail("transfer " + txid_str(unconfirmed_.begin()->first) +
             " acknowledged, but its shard's history never decided it");
    }
    std::int64_t sum = 0;
    for (std::size_t k = 1; k <= config_.shards; ++k) {
        const ShardId shard{k};
        const Oracle& oracle = oracles_.at(k - 1);
        const auto up = shard_up(shard);
        for (NodeId id : up) {
            const ShardState& s = replica(id).state();
            if (s.snapshot() != replica(up.front()).state().snapshot()) fail(who(id) + " state differs at quiescence");
            if (s.held_total() != 0 || s.pending_total() != 0) fail(who(id) + " holds or expects money at quiescence");
            for (const auto& [txid, t] : s.cross_txns()) {
                if (t.fate == Fate::undecided) fail(who(id) + " has txid " + txid_str(txid) + " undecided at quiescence");
            }
            for (const auto& [txid, outcome] : acked_) {
                if (session_shard(txid.session) != shard) continue;
                // Below its session's window a txid answers `expired`, and a
                // session the table no longer holds knows nothing: "cannot tell
                // any more", never a different outcome.
                const auto mine = s.lookup(txid);
                const bool forgotten =
                    mine ? mine->reason == txn::AbortReason::expired : !oracle.session_known(txid.session);
                if ((!mine || mine->outcome != outcome) && !forgotten) {
                    fail(who(id) + " session table lost or changed the acknowledged result of txid " + txid_str(txid));
                }
            }
        }
        const Replica& ref = replica(up.front());
        if (ref.applied_index() != oracle.size()) fail("shard " + std::to_string(k) + " not converged at quiescence");
        sum += ref.state().total();
    }
    // Txid by txid: each acknowledged cross-shard transfer posted on both
    // sides or on neither, as acknowledged; and nothing posted on one side only.
    std::int64_t in_flight = 0;
    for (const auto& [txid, f] : cross_) {
        if (f.debit_posted && !f.credit_posted) in_flight += f.debit_posted->amount;
        if (f.credit_posted && !f.debit_posted) in_flight -= f.credit_posted->amount;
        if (f.debit_posted.has_value() != f.credit_posted.has_value()) {
            fail("txid " + txid_str(txid) + " posted on its " + (f.debit_posted ? "debit" : "credit") +
                 " side only at quiescence");
        }
    }
    for (const auto& [txid, outcome] : acked_) {
        if (!is_cross(txid)) continue;
        auto f = cross_.find(txid);
        const bool debit = f != cross_.end() && f->second.debit_posted;
        const bool credit = f != cross_.end() && f->second.credit_posted;
        if (outcome == Outcome::committed && !(debit && credit)) {
            fail("txid " + txid_str(txid) + " acknowledged committed but not posted in both shards");
        }
        if (outcome == Outcome::aborted && (debit || credit)) {
            fail("txid " + txid_str(txid) + " acknowledged aborted but posted in a shard");
        }
    }
    const std::int64_t want =
        static_cast<std::int64_t>(config_.shards * config_.items) * config_.initial_balance;
    if (in_flight != 0 || sum != want) {
        fail("at quiescence the shards' balances sum to " + std::to_string(sum) + " with " +
             std::to_string(in_flight) + " in flight; expected " + std::to_string(want) + " and none");
    }
}

}  // namespace rl::txn::sim
