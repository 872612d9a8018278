// The checkers: the committed history learned from every node and checked
// against every node, the applied states against the independent model,
// persist-before-send on every message, one leader per epoch, and the
// quiescent accounting.
#include "election/quorum.hpp"
#include "sim.hpp"

#include <algorithm>
#include <numeric>

namespace rl::txn::sim {
namespace {

std::string who(NodeId id) { return "n" + std::to_string(id.value); }
std::string at(LogIndex i) { return std::to_string(i.value); }

// FNV-1a: equal states must give equal bytes, so any stable hash will do.
std::uint64_t hash_bytes(const std::vector<std::uint8_t>& bytes) {
    std::uint64_t h = 14695981039346656037ull;
    for (std::uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
    return h;
}

template <class M>
Epoch epoch_of(const M& mail) {
    return std::visit([](const auto& inner) { return std::visit([](const auto& m) { return m.epoch; }, inner); }, mail);
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
// must equal the committed history, and the first node to commit an index
// extends it. Entries known only through a snapshot are checked through
// the applied state instead.
void Sim::learn(Node& n) {
    const LogIndex commit = n.replica->commit_index();
    if (commit < n.learned) fail(who(n.id) + " commit index went back from " + at(n.learned) + " to " + at(commit));
    while (n.learned < commit) {
        const LogIndex i = n.learned.next();
        const LogEntry* e = entry_at(n, i);
        if (!e) {
            // Not handed over yet, or compacted since: wait for the next
            // flush, unless the history has it already (the state check
            // covers it) or only a snapshot ever brought it here.
            if (i > oracle_.size() && (!n.shadow_current || i > n.shadow_base)) return;
            n.learned = i;
            continue;
        }
        if (i <= oracle_.size()) {
            if (oracle_.at(i).epoch != e->epoch) {
                fail(who(n.id) + " committed entry " + at(i) + " of epoch " + std::to_string(e->epoch.value) +
                     ", the history has epoch " + std::to_string(oracle_.at(i).epoch.value));
            }
        } else if (i.value == oracle_.size().value + 1) {
            learn_entry(n, *e);
        } else {
            return;  // a gap in the history: another node fills it first
        }
        n.learned = i;
    }
}

// A newly committed entry must already sit on a majority of disks (the
// leader counts only durable copies), each the same entry.
void Sim::learn_entry(const Node& n, const LogEntry& e) {
    const std::size_t copies = durable_copies(e);
    if (copies < election::majority(config_.nodes)) {
        fail(who(n.id) + " committed entry " + at(e.index) + " held durably by only " + std::to_string(copies) +
             " nodes");
    }
    oracle_.append(e);
    ++stats_.committed_entries;
    if (config_.trace) trace("committed " + at(e.index) + " epoch=" + std::to_string(e.epoch.value) + " (seen at " + who(n.id) + ")");
}

std::size_t Sim::durable_copies(const LogEntry& e) const {
    std::size_t copies = 0;
    for (const auto& m : nodes_) {
        const Disk& d = m.model.disk();
        const LogEntry* mine = d.find(e.index);
        if ((mine && mine->epoch == e.epoch) || d.snapshot_index() >= e.index) ++copies;
    }
    return copies;
}

// The applied state at index k must be the model's after k entries: the
// same balances, none negative, the total conserved.
void Sim::check_applied(Node& n) {
    const ShardState& s = n.replica->state();
    const LogIndex applied = s.applied_index();
    if (applied == n.applied_seen || applied > oracle_.size()) return;
    if (applied > n.replica->commit_index()) fail(who(n.id) + " applied past its commit index");
    const auto& want = oracle_.balances(applied);
    if (s.created() != !want.empty()) fail(who(n.id) + " created its state at another entry than the history");
    for (std::uint64_t item = 1; item <= want.size(); ++item) {
        const std::int64_t have = s.balance(ItemId{item});
        if (have < 0) fail(who(n.id) + " item " + std::to_string(item) + " balance negative");
        if (have != want[item - 1]) {
            fail(who(n.id) + " item " + std::to_string(item) + " has " + std::to_string(have) + " at applied index " +
                 at(applied) + ", the committed history gives " + std::to_string(want[item - 1]));
        }
    }
    if (s.created() && s.total() != oracle_.total()) fail(who(n.id) + " total not conserved");
    check_state_bytes(n);
    n.applied_seen = applied;
}

// Replicas that applied the same prefix hold byte-identical states
// (compared by hash as they go, in full at quiescence).
void Sim::check_state_bytes(const Node& n) {
    const ShardState& s = n.replica->state();
    const std::uint64_t h = hash_bytes(s.snapshot());
    const auto [it, fresh] = state_hashes_.try_emplace(s.applied_index(), h);
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

// After every event: one leader per epoch, ever; epochs never go back.
void Sim::check_invariants() {
    for (auto& n : nodes_) {
        if (!n.replica) continue;
        observe(n);
        if (n.replica->epoch() < max_epoch_[n.id.value - 1]) fail(who(n.id) + " epoch below its durable epoch");
        if (n.replica->role() != election::RoleKind::leader) continue;
        const auto [it, fresh] = leaders_.emplace(n.replica->epoch(), n.id);
        if (!fresh && it->second != n.id) {
            fail("two leaders in epoch " + std::to_string(n.replica->epoch().value) + ": " + who(it->second) +
                 " and " + who(n.id));
        }
    }
}

bool Sim::converged() const {
    const auto up = up_nodes();
    if (!oracle_.created() || !agreed_leader(up)) return false;
    for (NodeId id : up) {
        const Replica& r = replica(id);
        if (r.applied_index() != oracle_.size() || r.commit_index() != oracle_.size()) return false;
    }
    return true;
}

// Exactly-once, as the final accounting: every acknowledged txid has the
// acknowledged result in the history and in each replica's dedup table,
// and the replicas' balances are the history's (money moved once per
// committed txid, never for an aborted one).
void Sim::check_quiescent() {
    for (const auto& r : deferred_reads_) check_read(r.done, r.floor, r.local);
    deferred_reads_.clear();
    for (NodeId id : up_nodes()) {
        const ShardState& s = replica(id).state();
        if (s.snapshot() != replica(up_nodes().front()).state().snapshot()) fail(who(id) + " state differs at quiescence");
        for (const auto& [txid, outcome] : acked_) {
            // Below its session's window a txid answers `expired`, and a
            // session the table no longer holds knows nothing: "cannot tell
            // any more", never a different outcome.
            const auto mine = s.lookup(txid);
            const bool forgotten = mine ? mine->reason == txn::AbortReason::expired : !oracle_.session_known(txid.session);
            if ((!mine || mine->outcome != outcome) && !forgotten) {
                fail(who(id) + " session table lost or changed the acknowledged result of txid " +
                     std::to_string(txid.session) + "/" + std::to_string(txid.seq));
            }
        }
        const auto& want = oracle_.balances(s.applied_index());
        const std::int64_t sum = std::accumulate(want.begin(), want.end(), std::int64_t{0});
        if (sum != static_cast<std::int64_t>(config_.items) * config_.initial_balance || s.total() != sum) {
            fail(who(id) + " shard total is not items x initial_balance");
        }
    }
}

}  // namespace rl::txn::sim
