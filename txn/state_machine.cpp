#include "txn/state_machine.hpp"

#include "config/bounded_archive.hpp"
#include "config/check.hpp"
#include "config/overload.hpp"
#include "config/vector_archive.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <variant>

namespace rl::txn {

namespace {

// Bumped whenever the snapshot layout changes, so an old node refuses a
// newer snapshot instead of misreading it.
constexpr std::uint32_t kSnapshotFormat = 3;

[[noreturn]] void reject(ShardId shard, const std::string& why) {
    throw std::runtime_error("snapshot of shard " + std::to_string(shard.value) + " rejected: " + why);
}

std::string range_text(const config::ItemRange& r) {
    return std::to_string(r.first.value) + "-" + std::to_string(r.last.value);
}

// Only the combinations apply() records; `expired` and `session_expired`
// are answers, never stored.
bool recordable(Outcome outcome, AbortReason reason) {
    if (outcome == Outcome::committed) return reason == AbortReason::none;
    return outcome == Outcome::aborted &&
           (reason == AbortReason::insufficient_funds || reason == AbortReason::overflow ||
            reason == AbortReason::bad_request || reason == AbortReason::timeout || reason == AbortReason::mismatch);
}

// A reason a Decide entry may carry for an abort; anything else is read as bad_request.
AbortReason abort_reason(std::uint8_t r) {
    const auto reason = static_cast<AbortReason>(r);
    return recordable(Outcome::aborted, reason) ? reason : AbortReason::bad_request;
}

Outcome outcome_of(Fate f) { return f == Fate::committed ? Outcome::committed : Outcome::aborted; }

bool seq_less(const auto& s, std::uint64_t seq) { return s.seq < seq; }

constexpr std::uint64_t kGenesisItemsMax = (64ull << 20) / 8;
constexpr std::uint64_t kSessionIndexLimit = std::uint64_t{1} << kSessionIndexBits;

}  // namespace

const char* to_string(Outcome o) {
    switch (o) {
        case Outcome::committed: return "committed";
        case Outcome::aborted: return "aborted";
    }
    return "unknown";
}

const char* to_string(AbortReason r) {
    switch (r) {
        case AbortReason::none: return "none";
        case AbortReason::insufficient_funds: return "insufficient_funds";
        case AbortReason::overflow: return "overflow";
        case AbortReason::bad_request: return "bad_request";
        case AbortReason::expired: return "expired";
        case AbortReason::session_expired: return "session_expired";
        case AbortReason::timeout: return "timeout";
        case AbortReason::mismatch: return "mismatch";
    }
    return "unknown";
}

const char* to_string(QueryState s) {
    switch (s) {
        case QueryState::absent: return "absent";
        case QueryState::voted_yes: return "voted_yes";
        case QueryState::voted_no: return "voted_no";
        case QueryState::committed: return "committed";
        case QueryState::aborted: return "aborted";
        case QueryState::finished: return "finished";
    }
    return "unknown";
}

Fate fate_from(const CrossTxn& here, QueryState there) {
    if (here.fate != Fate::undecided) return here.fate;
    if (there == QueryState::committed) return Fate::committed;
    if (there == QueryState::voted_yes && here.voted_yes) return Fate::committed;
    return Fate::aborted;
}

const char* to_string(EdgeErrorCode c) {
    switch (c) {
        case EdgeErrorCode::bad_request: return "bad_request";
        case EdgeErrorCode::unknown_item: return "unknown_item";
        case EdgeErrorCode::unavailable: return "unavailable";
    }
    return "unknown";
}

std::optional<std::string> genesis_problem(const Genesis& g) {
    if (g.shard.value == 0 || g.shard.value > kShardIdMax) return "shard id out of range";
    if (g.items.empty()) return "no item ranges";
    for (std::size_t i = 0; i < g.items.size(); ++i) {
        const config::ItemRange& r = g.items[i];
        if (r.first.value == 0 || r.last < r.first) return "item range " + range_text(r) + " is empty";
        if (i > 0 && !(g.items[i - 1].last < r.first)) return "item ranges are not sorted and disjoint";
    }
    // A snapshot of the shard must fit in a frame (at most 64 MiB), 8 bytes
    // an item: a larger shard is no shard any config could create.
    std::uint64_t items = 0;
    for (const config::ItemRange& r : g.items) {
        if (r.size() > kGenesisItemsMax - items) return "more than " + std::to_string(kGenesisItemsMax) + " items";
        items += r.size();
    }
    if (g.initial_balance < 0) return "negative initial balance";
    if (g.dedup_window == 0 || g.sessions_max == 0) return "dedup_window and sessions_max must be at least 1";
    return std::nullopt;
}

ShardState::ShardState(ShardId shard) : shard_(shard) {}

Genesis ShardState::genesis_of(const config::ShardConfig& shard, const config::ClusterConfig& cluster) {
    return Genesis{shard.id, shard.items, cluster.initial_balance, cluster.limits.dedup_window,
                   cluster.limits.dedup_clients_max};
}

void ShardState::create(const Genesis& g) {
    genesis_ = g;
    ranges_.reserve(g.items.size());
    for (const config::ItemRange& r : g.items) ranges_.push_back({r, std::vector<std::int64_t>(r.size(), g.initial_balance)});
}

ShardState::Defect ShardState::defect(const Transfer& t) const {
    if (!created()) return Defect::not_created;
    if (t.amount <= 0) return Defect::bad_amount;
    if (t.from == t.to) return Defect::same_item;
    if (find(t.from) == nullptr) return Defect::from_unknown;
    if (find(t.to) == nullptr) return Defect::to_unknown;
    if (session_shard(t.txid.session) != shard_) return Defect::foreign_session;
    return Defect::none;
}

std::optional<EdgeError> ShardState::check_item(ItemId item) const {
    const std::string shard = std::to_string(shard_.value);
    if (!created()) return EdgeError{EdgeErrorCode::unavailable, "shard " + shard + " is not created yet; retry"};
    if (find(item) != nullptr) return std::nullopt;
    return EdgeError{EdgeErrorCode::unknown_item, "item " + std::to_string(item.value) + " is not in shard " + shard};
}

EdgeError ShardState::amount_error(std::int64_t amount) {
    return EdgeError{EdgeErrorCode::bad_request, "transfer amount must be positive, got " + std::to_string(amount)};
}

EdgeError ShardState::session_error(TxnId txid, ItemId from) const {
    return EdgeError{EdgeErrorCode::bad_request, "session " + std::to_string(txid.session) + " belongs to shard " +
                                                     std::to_string(session_shard(txid.session).value) + ", item " +
                                                     std::to_string(from.value) + " to shard " +
                                                     std::to_string(shard_.value) + "; open a session there"};
}

std::optional<EdgeError> ShardState::validate(const Transfer& t) const {
    const std::string shard = std::to_string(shard_.value);
    switch (defect(t)) {
        case Defect::none: return std::nullopt;
        case Defect::not_created: return check_item(t.from);
        case Defect::bad_amount: return amount_error(t.amount);
        case Defect::same_item:
            return EdgeError{EdgeErrorCode::bad_request,
                             "cannot transfer from item " + std::to_string(t.from.value) + " to itself"};
        case Defect::from_unknown: return check_item(t.from);
        case Defect::to_unknown:
            return EdgeError{EdgeErrorCode::unknown_item, "item " + std::to_string(t.to.value) + " is not in shard " + shard};
        case Defect::foreign_session: return session_error(t.txid, t.from);
    }
    require(false, "every transfer defect has a message");
    return std::nullopt;
}

std::optional<EdgeError> ShardState::validate(const PrepareDebit& p) const {
    if (auto e = check_item(p.from)) return e;
    if (p.amount <= 0) return amount_error(p.amount);
    if (p.to_shard == shard_ || p.to_shard.value == 0) {
        return EdgeError{EdgeErrorCode::bad_request, "item " + std::to_string(p.to.value) + " is not in another shard"};
    }
    if (session_shard(p.txid.session) != shard_) return session_error(p.txid, p.from);
    return std::nullopt;
}

std::vector<std::pair<std::uint64_t, const ShardState::SessionWindow*>> ShardState::sessions_by_id() const {
    std::vector<std::pair<std::uint64_t, const SessionWindow*>> sessions;
    sessions.reserve(sessions_.size());
    for (const auto& [id, w] : sessions_) sessions.emplace_back(id, &w);
    std::sort(sessions.begin(), sessions.end());
    return sessions;
}

std::vector<const CrossTxn*> ShardState::cross_txns_by_id() const {
    std::vector<const CrossTxn*> records;
    records.reserve(cross_.size());
    for (const auto& [txid, t] : cross_) records.push_back(&t);
    std::sort(records.begin(), records.end(), [](const CrossTxn* a, const CrossTxn* b) { return a->txid < b->txid; });
    return records;
}

const CrossTxn* ShardState::cross_txn(TxnId txid) const {
    auto it = cross_.find(txid);
    return it == cross_.end() ? nullptr : &it->second;
}

std::int64_t ShardState::held(ItemId item) const {
    auto it = reserved_.find(item);
    return it == reserved_.end() ? 0 : it->second.held;
}

std::int64_t ShardState::pending(ItemId item) const {
    auto it = reserved_.find(item);
    return it == reserved_.end() ? 0 : it->second.pending;
}

std::int64_t ShardState::held_total() const {
    std::int64_t sum = 0;
    for (const auto& [item, r] : reserved_) sum += r.held;
    return sum;
}

std::int64_t ShardState::pending_total() const {
    std::int64_t sum = 0;
    for (const auto& [item, r] : reserved_) sum += r.pending;
    return sum;
}

const std::int64_t* ShardState::find(ItemId item) const {
    // The last range starting at or before `item` is the only one that can hold it.
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), item,
                               [](ItemId i, const RangeBalances& r) { return i < r.range.first; });
    if (it == ranges_.begin()) return nullptr;
    --it;
    if (!it->range.contains(item)) return nullptr;
    return &it->balances[item.value - it->range.first.value];
}

std::int64_t* ShardState::find(ItemId item) {
    return const_cast<std::int64_t*>(std::as_const(*this).find(item));
}

std::int64_t ShardState::balance(ItemId item) const {
    const std::int64_t* b = find(item);
    require(b != nullptr, "balance() is asked only for items of this shard");
    return *b;
}

std::int64_t ShardState::total() const {
    std::int64_t sum = 0;
    for (const RangeBalances& r : ranges_) {
        for (std::int64_t b : r.balances) {
            if (__builtin_add_overflow(sum, b, &sum)) {
                throw std::overflow_error("the balances of shard " + std::to_string(shard_.value) +
                                          " sum beyond int64");
            }
        }
    }
    return sum;
}

Applied ShardState::apply(const LogEntry& entry) {
    require(entry.index == applied_index_.next(), "log entries are applied in index order");
    require(applied_epoch_ <= entry.epoch, "epochs never decrease along the log");
    applied_index_ = entry.index;
    applied_epoch_ = entry.epoch;
    return std::visit(Overload{
                          [](const Noop&) -> Applied { return std::monostate{}; },
                          [&](const Genesis& g) -> Applied {
                              // The first valid Genesis of this shard wins; any later one is a no-op.
                              if (!created() && g.shard == shard_ && !genesis_problem(g)) create(g);
                              return std::monostate{};
                          },
                          [&](const OpenSession&) -> Applied {
                              // A session id holds the index in 48 bits; no
                              // log gets that long, but a lying snapshot could
                              // claim it, and apply() must not stop on it.
                              if (!created() || entry.index.value >= kSessionIndexLimit) return std::monostate{};
                              return open_session(entry.index);
                          },
                          [&](const Transfer& t) -> Applied { return apply_transfer(t, entry.index); },
                          [&](const PrepareDebit& p) -> Applied { return prepare_debit(p, entry.index); },
                          [&](const PrepareCredit& p) -> Applied { return prepare_credit(p, entry.index); },
                          [&](const Decide& d) -> Applied { return decide(d); },
                          [&](const Decisions& ds) -> Applied {
                              DecidedMany out;
                              out.each.reserve(ds.each.size());
                              for (const Decide& d : ds.each) out.each.push_back(decide(d));
                              return out;
                          },
                          [&](const Query& q) -> Applied { return query(q, entry.index); },
                          [&](const Forget& f) -> Applied {
                              forget(f);
                              return std::monostate{};
                          },
                          [&](const Release& r) -> Applied {
                              release(r);
                              return std::monostate{};
                          },
                          [&](const Reset&) -> Applied { return reset(); },
                          [&](const TransferBatch& b) -> Applied { return apply_batch(b, entry.index); },
                      },
                      entry.command);
}

SessionOpened ShardState::open_session(LogIndex index) {
    if (sessions_.size() >= genesis_->sessions_max) evict_least_recently_used();
    const std::uint64_t id = session_id(shard_, index);
    sessions_.emplace(id, SessionWindow{index, 0, {}});
    uses_.emplace_back(index, id);
    return SessionOpened{id};
}

// The session whose last use has the lowest log index goes, so every
// replica forgets the same one. Uses are queued in log order; a stale one
// (its session used again since, or gone) is dropped on the way.
void ShardState::evict_least_recently_used() {
    while (true) {
        require(!uses_.empty(), "every session's last use is queued");
        const auto [index, id] = uses_.front();
        uses_.pop_front();
        auto it = sessions_.find(id);
        if (it != sessions_.end() && it->second.last_used == index) {
            sessions_.erase(it);
            return;
        }
    }
}

// Exactly-once (docs/design.md section 6): a txid seen before gets its first
// answer again; one below its session's window, or of a session the table
// does not hold, is refused, because an earlier attempt may have applied
// and been forgotten since. Only a session opened by this log can apply.
ApplyResult ShardState::apply_transfer(const Transfer& t, LogIndex index) {
    if (!created()) return ApplyResult{Outcome::aborted, AbortReason::bad_request, t.txid};
    auto session = sessions_.find(t.txid.session);
    if (session == sessions_.end()) return ApplyResult{Outcome::aborted, AbortReason::session_expired, t.txid};
    SessionWindow& w = session->second;
    touch(session->first, w, index);
    return settle_transfer(t, w);
}

// A client batch's intra-shard transfers (docs/design.md section 6.9): the
// session is looked up and touched once, then each transfer settles in
// order exactly as apply_transfer() would settle it, so a later one sees
// what an earlier one moved and a retry gets each first result.
BatchApplied ShardState::apply_batch(const TransferBatch& b, LogIndex index) {
    BatchApplied out;
    out.each.reserve(b.each.size());
    auto session = created() ? sessions_.find(b.session) : sessions_.end();
    if (session == sessions_.end()) {
        const AbortReason why = created() ? AbortReason::session_expired : AbortReason::bad_request;
        for (const BatchTransfer& x : b.each) out.each.push_back({Outcome::aborted, why, TxnId{b.session, x.seq}});
        return out;
    }
    SessionWindow& w = session->second;
    touch(session->first, w, index);
    for (const BatchTransfer& x : b.each) {
        out.each.push_back(settle_transfer(Transfer{TxnId{b.session, x.seq}, x.from, x.to, x.amount}, w));
    }
    return out;
}

// The session's window answers a known txid; otherwise the transfer runs
// and its result is recorded in `w`, the window of t.txid's session.
ApplyResult ShardState::settle_transfer(const Transfer& t, SessionWindow& w) {
    if (std::optional<ApplyResult> done = known(w, t.txid)) return *done;
    // The txid names a cross-shard transfer still in flight: a client that
    // reused it gets no second movement of money (and nothing is recorded,
    // so the cross-shard decision still answers the txid).
    if (cross_.contains(t.txid)) return ApplyResult{Outcome::aborted, AbortReason::mismatch, t.txid};
    const AbortReason reason = execute(t);
    const ApplyResult result{reason == AbortReason::none ? Outcome::committed : Outcome::aborted, reason, t.txid};
    record(result, w);
    return result;
}

AbortReason ShardState::execute(const Transfer& t) {
    // The edge should have refused it; the log may still hold it (a buggy or
    // older leader), and every replica must treat it the same way.
    if (defect(t) != Defect::none) return AbortReason::bad_request;
    std::int64_t& from = *find(t.from);
    std::int64_t& to = *find(t.to);
    // Against the available balance: what undecided cross-shard debits
    // hold stays put, and room stays for pending credits (holds, not locks).
    if (from - held(t.from) < t.amount) return AbortReason::insufficient_funds;
    if (to > std::numeric_limits<std::int64_t>::max() - t.amount - pending(t.to)) return AbortReason::overflow;
    from -= t.amount;
    to += t.amount;
    return AbortReason::none;
}

std::optional<ApplyResult> ShardState::lookup(TxnId txid) const {
    auto session = sessions_.find(txid.session);
    if (session == sessions_.end()) return std::nullopt;
    return known(session->second, txid);
}

// What `w`, the window of txid's session, holds for txid.
std::optional<ApplyResult> ShardState::known(const SessionWindow& w, TxnId txid) {
    if (txid.seq < w.floor_seq) return ApplyResult{Outcome::aborted, AbortReason::expired, txid};
    // The usual case: a client's seqs rise, so a new one is above them all.
    if (w.results.empty() || w.results.back().seq < txid.seq) return std::nullopt;
    auto r = std::lower_bound(w.results.begin(), w.results.end(), txid.seq, seq_less<SeqResult>);
    if (r == w.results.end() || r->seq != txid.seq) return std::nullopt;
    return ApplyResult{r->outcome, r->reason, txid};
}

// ---- two-phase commit (docs/design.md section 6.7) ----

ShardState::SessionWindow* ShardState::session_of(TxnId txid) {
    auto it = sessions_.find(txid.session);
    return it == sessions_.end() ? nullptr : &it->second;
}

// Places (+1) or releases (-1) what an undecided record with a yes vote
// reserves: a hold on the debited item, a pending credit on the credited one.
void ShardState::hold(const CrossTxn& t, std::int64_t sign) {
    const ItemId item = t.side == Side::debit ? t.from : t.to;
    Reserved& r = reserved_[item];
    (t.side == Side::debit ? r.held : r.pending) += sign * t.amount;
    if (r.held == 0 && r.pending == 0) reserved_.erase(item);
}

// The sender's Prepare: the session decides first, exactly as for an
// intra-shard transfer; then the available balance votes.
Applied ShardState::prepare_debit(const PrepareDebit& p, LogIndex index) {
    if (!created()) return ApplyResult{Outcome::aborted, AbortReason::bad_request, p.txid};
    // A duplicate waits for the same decision; once decided, the session
    // table answers it like any retry.
    auto existing = cross_.find(p.txid);
    if (existing != cross_.end() && existing->second.fate == Fate::undecided) return Prepared{existing->second, false};
    SessionWindow* w = session_of(p.txid);
    if (w == nullptr) return ApplyResult{Outcome::aborted, AbortReason::session_expired, p.txid};
    touch(p.txid.session, *w, index);
    if (std::optional<ApplyResult> done = known(*w, p.txid)) return *done;
    if (existing != cross_.end()) return Prepared{existing->second, false};
    // An entry the edge should have refused is settled, never recorded:
    // a record is only ever one a snapshot can carry.
    if (validate(p)) {
        const ApplyResult refused{Outcome::aborted, AbortReason::bad_request, p.txid};
        record(refused, *w);
        return refused;
    }
    CrossTxn t{Side::debit, p.txid, p.from, p.to, p.to_shard, p.amount};
    t.prepared_at = index;
    if (*find(p.from) - held(p.from) < p.amount) {
        t.vote_reason = AbortReason::insufficient_funds;
    } else {
        t.voted_yes = true;
        hold(t, +1);
    }
    Prepared out{t, true};
    if (settle_no_vote(t)) {
        out.result = ApplyResult{Outcome::aborted, t.fate_reason, t.txid};
        record(*out.result, *w);
    }
    out.txn = cross_.emplace(p.txid, t).first->second;
    return out;
}

// A no vote decides the transaction at once: it aborts whatever the other
// shard votes. The record stays until the other shard has decided too.
bool ShardState::settle_no_vote(CrossTxn& t) {
    if (t.voted_yes) return false;
    t.fate = Fate::aborted;
    t.fate_reason = t.vote_reason;
    return true;
}

// The receiver's Prepare: the item must be here, and the credit must fit
// beside every pending one. A fence (a Query applied first) votes no.
Applied ShardState::prepare_credit(const PrepareCredit& p, LogIndex index) {
    if (auto it = cross_.find(p.txid); it != cross_.end()) return Prepared{it->second, false};
    const ShardId sender = session_shard(p.txid.session);
    CrossTxn t{Side::credit, p.txid, p.from, p.to, sender, p.amount};
    t.prepared_at = index;
    if (!created()) {
        t.vote_reason = AbortReason::bad_request;
        return Prepared{t, false};  // nothing to keep before the shard exists
    }
    const std::int64_t* to = find(p.to);
    if (to == nullptr || p.amount <= 0 || sender == shard_ || sender.value == 0) {
        t.vote_reason = AbortReason::bad_request;
        settle_no_vote(t);
        return Prepared{t, false};  // refused, not recorded: the edge should never have logged it
    }
    if (*to > std::numeric_limits<std::int64_t>::max() - p.amount - pending(p.to)) {
        t.vote_reason = AbortReason::overflow;
    } else {
        t.voted_yes = true;
        hold(t, +1);
    }
    settle_no_vote(t);
    return Prepared{cross_.emplace(p.txid, t).first->second, true};
}

// A decision posts or releases what the Prepare reserved. The first one
// stands; a later one the other way is reported, never applied.
Decided ShardState::decide(const Decide& d) {
    Decided out{d.txid};
    auto it = cross_.find(d.txid);
    if (it == cross_.end()) return out;
    out.known = true;
    out.txn = it->second;
    if (d.fate != Fate::committed && d.fate != Fate::aborted) return out;  // no decision in it
    CrossTxn& t = it->second;
    const bool impossible = d.fate == Fate::committed && !t.voted_yes;
    if (t.fate != Fate::undecided || impossible) {
        out.conflicting = impossible || t.fate != d.fate;
        if (!out.conflicting && d.final_elsewhere) t.final_elsewhere = true;
        out.txn = t;
        return out;
    }
    if (t.voted_yes) hold(t, -1);
    if (d.fate == Fate::committed) {
        if (t.side == Side::debit) {
            *find(t.from) -= t.amount;
        } else {
            *find(t.to) += t.amount;
        }
    }
    t.fate = d.fate;
    t.fate_reason = d.fate == Fate::committed ? AbortReason::none : abort_reason(d.reason);
    t.final_elsewhere = t.final_elsewhere || d.final_elsewhere;
    out.txn = t;
    if (t.side == Side::debit) {
        const ApplyResult result{outcome_of(t.fate), t.fate_reason, t.txid};
        // The session table answers every retry from now on; an evicted
        // session answers session_expired, as for any transfer. The
        // Prepare made the session the most recent; a decision does not
        // (one entry decides for many sessions).
        if (SessionWindow* w = session_of(t.txid); w != nullptr && !known(*w, t.txid)) record(result, *w);
        out.result = result;
    }
    return out;
}

// Answers from the record. Without one the transaction is fenced: on the
// sender's side the session table records it aborted (so its Prepare finds
// it settled), on the receiver's side an undecided no-vote record stands
// in for the Prepare that did not come.
Answered ShardState::query(const Query& q, LogIndex index) {
    Answered a{q.txid};
    if (auto it = cross_.find(q.txid); it != cross_.end()) {
        const CrossTxn& t = it->second;
        a.txn = t;
        if (t.fate == Fate::committed) {
            a.state = QueryState::committed;
        } else if (t.fate == Fate::aborted) {
            a.state = QueryState::aborted;
            a.reason = t.fate_reason;
        } else {
            a.state = t.voted_yes ? QueryState::voted_yes : QueryState::voted_no;
            a.reason = t.vote_reason;
        }
        return a;
    }
    if (!created()) return a;
    if (session_shard(q.txid.session) == shard_) {
        SessionWindow* w = session_of(q.txid);
        if (w != nullptr) touch(q.txid.session, *w, index);
        const std::optional<ApplyResult> before = lookup(q.txid);
        if (w != nullptr && !before) {
            record(ApplyResult{Outcome::aborted, AbortReason::timeout, q.txid}, *w);
            a.fenced = true;
        } else {
            a.state = QueryState::finished;
            a.reason = before ? before->reason : AbortReason::session_expired;
        }
        a.result = lookup(q.txid);
        return a;
    }
    if (session_shard(q.txid.session).value == 0) return a;  // no shard's transaction: nothing to fence
    // The fence is a no vote, not a decision: the coordinator decides it
    // (abort, since this side can never vote yes now). A Query that was
    // late, for a transaction both shards finished and forgot, leaves a
    // fence the coordinator's shard answers `finished` for, and it is
    // released: one txid never gets two fates in one log.
    CrossTxn fence{Side::credit, q.txid, ItemId{}, ItemId{}, session_shard(q.txid.session), 0};
    fence.vote_reason = AbortReason::timeout;
    fence.prepared_at = index;
    cross_.emplace(q.txid, fence);
    return a;
}

void ShardState::release(const Release& r) {
    auto it = cross_.find(r.txid);
    if (it == cross_.end() || it->second.side != Side::credit || it->second.fate != Fate::undecided) return;
    if (it->second.voted_yes) hold(it->second, -1);
    cross_.erase(it);
}

// The rule of docs/design.md section 6.8: a shard that records a
// cross-shard transaction holds money or a vote another shard depends on,
// so the reset waits (the client retries). With none recorded no item has
// a hold or a pending credit, and the session table stays as it is.
ResetApplied ShardState::reset() {
    if (!created() || !cross_.empty()) return ResetApplied{false, cross_.size()};
    require(reserved_.empty(), "holds and pending credits come only from recorded transactions");
    for (RangeBalances& r : ranges_) std::fill(r.balances.begin(), r.balances.end(), genesis_->initial_balance);
    return ResetApplied{true, 0};
}

void ShardState::forget(const Forget& f) {
    for (const TxnId& txid : f.txids) {
        auto it = cross_.find(txid);
        if (it != cross_.end() && it->second.fate != Fate::undecided) cross_.erase(it);
    }
}

// The session was used by the entry at `index`: it becomes the most recent.
void ShardState::touch(std::uint64_t session, SessionWindow& w, LogIndex index) {
    w.last_used = index;
    uses_.emplace_back(index, session);
    // Stale uses leave the queue at its front as sessions are evicted; a
    // table that never fills would keep them all, so past twice its size
    // they are swept at once (amortized one look-up per use).
    if (uses_.size() > 2 * sessions_.size() + 64) {
        std::erase_if(uses_, [this](const std::pair<LogIndex, std::uint64_t>& use) {
            auto it = sessions_.find(use.second);
            return it == sessions_.end() || it->second.last_used != use.first;
        });
    }
}

void ShardState::record(const ApplyResult& result, SessionWindow& w) {
    const std::uint64_t seq = result.txid.seq;
    if (w.results.size() == genesis_->dedup_window) {
        // The window keeps the session's highest seqs. The lowest one leaves
        // and the floor rises past it, so it can never apply again. The
        // lowest is smaller than some other seq here, so +1 cannot wrap.
        if (seq < w.results.front().seq) {
            w.floor_seq = seq + 1;
            return;
        }
        w.floor_seq = w.results.front().seq + 1;
        w.results.pop_front();
    }
    if (w.results.empty() || w.results.back().seq < seq) {  // the usual case: seqs rise
        w.results.push_back(SeqResult{seq, result.outcome, result.reason});
        return;
    }
    auto pos = std::lower_bound(w.results.begin(), w.results.end(), seq, seq_less<SeqResult>);
    w.results.insert(pos, SeqResult{seq, result.outcome, result.reason});
}

// ---- snapshots ----
//
// Layout (cereal PortableBinary, after its endianness byte):
//   u32 format, u64 shard id, u64 applied index, u64 applied epoch, u8 created,
//   then if created: the Genesis entry,
//     per Genesis range: size, i64 balance...
//     sessions: size, then per session (ascending id)  u64 id,
//       u64 last used index, u64 floor seq, size,
//       then per result (ascending seq)  u64 seq, u8 outcome, u8 reason
//     cross-shard transactions: size, then per record (ascending txid)
//       u8 side, txid, u64 from, u64 to, u64 other shard, i64 amount,
//       u8 voted yes, u8 vote reason, u8 fate, u8 fate reason,
//       u8 final elsewhere, u64 prepared at
// The sessions' eviction index and the per-item holds are derived, so they
// are rebuilt, not stored.

template <class Archive>
void ShardState::write_snapshot(Archive& ar) const {
    ar(kSnapshotFormat, shard_.value, applied_index_, applied_epoch_, static_cast<std::uint8_t>(created()));
    if (!created()) return;
    ar(*genesis_);
    for (const RangeBalances& r : ranges_) {
        ar(cereal::make_size_tag(static_cast<cereal::size_type>(r.balances.size())));
        ar(cereal::binary_data(r.balances.data(), r.balances.size() * sizeof(std::int64_t)));
    }
    // Sessions and records by id, so the snapshots of every replica of a
    // state are byte-identical.
    const std::vector<std::pair<std::uint64_t, const SessionWindow*>> sessions = sessions_by_id();
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(sessions.size())));
    for (const auto& [id, window] : sessions) {
        const SessionWindow& w = *window;
        ar(id, w.last_used, w.floor_seq, cereal::make_size_tag(static_cast<cereal::size_type>(w.results.size())));
        for (const SeqResult& s : w.results) {
            ar(s.seq, static_cast<std::uint8_t>(s.outcome), static_cast<std::uint8_t>(s.reason));
        }
    }
    const std::vector<const CrossTxn*> records = cross_txns_by_id();
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(records.size())));
    for (const CrossTxn* record : records) {
        const CrossTxn& t = *record;
        const auto u8 = [](auto v) { return static_cast<std::uint8_t>(v); };
        ar(u8(t.side), t.txid, t.from, t.to, t.other, t.amount, u8(t.voted_yes), u8(t.vote_reason), u8(t.fate),
           u8(t.fate_reason), u8(t.final_elsewhere), t.prepared_at);
    }
}

std::vector<std::uint8_t> ShardState::snapshot() const {
    std::vector<std::uint8_t> out;
    VectorOutputArchive ar(out);
    write_snapshot(ar);
    return out;
}

ShardState ShardState::restore(ShardId shard, std::span<const std::uint8_t> bytes) {
    ShardState state(shard);
    try {
        BoundedInputArchive ar(bytes);
        std::uint32_t format = 0;
        std::uint64_t shard_id = 0;
        std::uint8_t created = 0;
        ar(format);
        if (format != kSnapshotFormat) {
            reject(shard, "format " + std::to_string(format) + ", expected " + std::to_string(kSnapshotFormat));
        }
        ar(shard_id, state.applied_index_, state.applied_epoch_, created);
        if (shard_id != shard.value) reject(shard, "it was taken of shard " + std::to_string(shard_id));
        if (created > 1) reject(shard, "bad created flag");
        if (created == 1 && state.applied_index_.value == 0) reject(shard, "a created state at applied index 0");
        if (created == 1) {
            Genesis g;
            ar(g);
            if (g.shard != shard) reject(shard, "its Genesis names shard " + std::to_string(g.shard.value));
            if (auto problem = genesis_problem(g)) reject(shard, "its Genesis is invalid: " + *problem);
            state.genesis_ = std::move(g);
            state.read_balances(ar);
            state.read_sessions(ar);
            state.read_cross(ar);
        }
        if (ar.remaining() != 0) reject(shard, std::to_string(ar.remaining()) + " bytes follow its end");
    } catch (const cereal::Exception& e) {
        reject(shard, std::string("truncated or corrupt: ") + e.what());
    }
    return state;
}

template <class Archive>
void ShardState::read_balances(Archive& ar) {
    for (const config::ItemRange& range : genesis_->items) {
        cereal::size_type size = 0;
        ar(cereal::make_size_tag(size));
        // The bounded archive already refused a size beyond the bytes left;
        // checked against the range before the vector is sized by it.
        if (size != range.size()) {
            reject(shard_, "it holds " + std::to_string(size) + " balances for items " + range_text(range));
        }
        RangeBalances r{range, std::vector<std::int64_t>(size)};
        ar(cereal::binary_data(r.balances.data(), r.balances.size() * sizeof(std::int64_t)));
        for (std::size_t i = 0; i < r.balances.size(); ++i) {
            if (r.balances[i] < 0) {
                reject(shard_, "item " + std::to_string(range.first.value + i) + " has a negative balance");
            }
        }
        ranges_.push_back(std::move(r));
    }
}

template <class Archive>
void ShardState::read_sessions(Archive& ar) {
    cereal::size_type count = 0;
    ar(cereal::make_size_tag(count));
    if (count > genesis_->sessions_max) {
        reject(shard_, "it holds " + std::to_string(count) + " sessions, more than its sessions_max " +
                           std::to_string(genesis_->sessions_max));
    }
    std::optional<std::uint64_t> previous;  // in ascending order, as write_snapshot() puts them
    for (cereal::size_type c = 0; c < count; ++c) {
        std::uint64_t id = 0;
        SessionWindow w;
        cereal::size_type size = 0;
        ar(id, w.last_used, w.floor_seq, cereal::make_size_tag(size));
        const std::string who = "session " + std::to_string(id);
        if (size > genesis_->dedup_window) {
            reject(shard_, who + " holds " + std::to_string(size) + " results, more than its dedup_window " +
                               std::to_string(genesis_->dedup_window));
        }
        for (cereal::size_type i = 0; i < size; ++i) {
            SeqResult s;
            std::uint8_t outcome = 0;
            std::uint8_t reason = 0;
            ar(s.seq, outcome, reason);
            s.outcome = static_cast<Outcome>(outcome);
            s.reason = static_cast<AbortReason>(reason);
            if (!recordable(s.outcome, s.reason)) {
                reject(shard_, who + " seq " + std::to_string(s.seq) + " has an invalid result");
            }
            w.results.push_back(s);
        }
        add_restored_session(id, std::move(w), previous);
        previous = id;
    }
    // Each entry used at most one session: two at one index is a damaged
    // table. Sorted, the uses are the eviction order apply() keeps.
    std::sort(uses_.begin(), uses_.end());
    auto twice = std::adjacent_find(uses_.begin(), uses_.end(), [](const auto& a, const auto& b) { return a.first == b.first; });
    if (twice != uses_.end()) {
        const auto& [index, id] = *std::next(twice);
        reject(shard_, "session " + std::to_string(id) + " has an impossible last used index " + std::to_string(index.value));
    }
}

template <class Archive>
void ShardState::read_cross(Archive& ar) {
    cereal::size_type count = 0;
    ar(cereal::make_size_tag(count));
    std::optional<TxnId> previous;  // in ascending order, as write_snapshot() puts them
    for (cereal::size_type c = 0; c < count; ++c) {
        CrossTxn t;
        std::uint8_t side = 0, voted_yes = 0, vote_reason = 0, fate = 0, fate_reason = 0, final_elsewhere = 0;
        ar(side, t.txid, t.from, t.to, t.other, t.amount, voted_yes, vote_reason, fate, fate_reason, final_elsewhere,
           t.prepared_at);
        if (side < 1 || side > 2 || voted_yes > 1 || fate > 2 || final_elsewhere > 1) {
            reject(shard_, "cross-shard transaction " + std::to_string(t.txid.session) + ":" +
                               std::to_string(t.txid.seq) + " has an invalid flag");
        }
        t.side = static_cast<Side>(side);
        t.voted_yes = voted_yes == 1;
        t.vote_reason = static_cast<AbortReason>(vote_reason);
        t.fate = static_cast<Fate>(fate);
        t.fate_reason = static_cast<AbortReason>(fate_reason);
        t.final_elsewhere = final_elsewhere == 1;
        add_restored_cross(t, previous);
        previous = t.txid;
    }
    // What the holds reserve must still be there.
    for (const auto& [item, r] : reserved_) {
        const std::int64_t posted = *find(item);
        if (r.held > posted || r.pending > std::numeric_limits<std::int64_t>::max() - posted) {
            reject(shard_, "item " + std::to_string(item.value) + " reserves more than its balance allows");
        }
    }
}

// Checked one by one so that no field of a record can make apply() or the
// holds go wrong later.
void ShardState::add_restored_cross(CrossTxn t, const std::optional<TxnId>& previous) {
    const std::string who = "cross-shard transaction " + std::to_string(t.txid.session) + ":" + std::to_string(t.txid.seq);
    if (previous && !(*previous < t.txid)) reject(shard_, who + " is out of ascending order");
    const bool debit = t.side == Side::debit;
    const bool ours = session_shard(t.txid.session) == shard_;
    const ItemId mine = debit ? t.from : t.to;
    const bool fence = !debit && !t.voted_yes && t.amount == 0;
    if (debit != ours || t.other == shard_ || t.other.value == 0 || (!fence && (t.amount <= 0 || find(mine) == nullptr)) ||
        t.voted_yes == (t.vote_reason != AbortReason::none) || applied_index_ < t.prepared_at ||
        (t.fate == Fate::committed && (!t.voted_yes || t.fate_reason != AbortReason::none)) ||
        (t.fate == Fate::aborted && !recordable(Outcome::aborted, t.fate_reason))) {
        reject(shard_, who + " is inconsistent");
    }
    if (t.voted_yes && t.fate == Fate::undecided) {
        std::int64_t& slot = debit ? reserved_[mine].held : reserved_[mine].pending;
        if (__builtin_add_overflow(slot, t.amount, &slot)) reject(shard_, who + " overflows its item's holds");
    }
    cross_.emplace(t.txid, t);
}

void ShardState::add_restored_session(std::uint64_t id, SessionWindow window, const std::optional<std::uint64_t>& previous) {
    const std::string who = "session " + std::to_string(id);
    // Canonical order is what makes snapshot() after restore() byte-identical.
    if (previous && *previous >= id) reject(shard_, who + " is out of ascending order");
    if (session_shard(id) != shard_) reject(shard_, who + " belongs to another shard");
    const bool seqs_ascending = std::adjacent_find(window.results.begin(), window.results.end(),
                                                   [](const SeqResult& a, const SeqResult& b) {
                                                       return a.seq >= b.seq;
                                                   }) == window.results.end();
    if (!seqs_ascending || (!window.results.empty() && window.results.front().seq < window.floor_seq)) {
        reject(shard_, who + " has seqs out of order or below its floor");
    }
    // apply() used it at an index no later than the snapshot's, and not
    // before the entry that opened it (read_sessions() checks that no two
    // sessions share one).
    const std::uint64_t opened_at = id & ((std::uint64_t{1} << kSessionIndexBits) - 1);
    if (opened_at == 0 || window.last_used.value < opened_at || applied_index_ < window.last_used) {
        reject(shard_, who + " has an impossible last used index " + std::to_string(window.last_used.value));
    }
    uses_.emplace_back(window.last_used, id);
    sessions_.emplace(id, std::move(window));
}

}  // namespace rl::txn
