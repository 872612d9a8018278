#include "txn/state_machine.hpp"

#include "config/check.hpp"
#include "config/bounded_archive.hpp"
#include "config/overload.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <algorithm>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <variant>

namespace rl::txn {

namespace {

// Bumped whenever the snapshot layout changes, so an old node refuses a
// newer snapshot instead of misreading it.
constexpr std::uint32_t kSnapshotFormat = 1;

[[noreturn]] void reject(ShardId shard, const std::string& why) {
    throw std::runtime_error("snapshot of shard " + std::to_string(shard.value) + " rejected: " + why);
}

std::string range_text(const config::ItemRange& r) {
    return std::to_string(r.first.value) + "-" + std::to_string(r.last.value);
}

// Only the combinations apply() records; `expired` is an answer, never stored.
bool recordable(Outcome outcome, AbortReason reason) {
    if (outcome == Outcome::committed) return reason == AbortReason::none;
    return outcome == Outcome::aborted &&
           (reason == AbortReason::insufficient_funds || reason == AbortReason::overflow ||
            reason == AbortReason::bad_request);
}

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
    }
    return "unknown";
}

const char* to_string(EdgeErrorCode c) {
    switch (c) {
        case EdgeErrorCode::bad_request: return "bad_request";
        case EdgeErrorCode::unknown_item: return "unknown_item";
    }
    return "unknown";
}

ShardState::ShardState(const config::ShardConfig& shard, std::int64_t initial_balance, DedupLimits limits)
    : shard_(shard.id), limits_(limits) {
    if (initial_balance < 0) throw std::invalid_argument("initial balance must not be negative");
    if (limits.dedup_window == 0 || limits.dedup_clients_max == 0) {
        throw std::invalid_argument("dedup_window and dedup_clients_max must be at least 1");
    }
    ranges_.reserve(shard.items.size());
    for (const config::ItemRange& r : shard.items) {
        // The config validated this; find() relies on it.
        require(r.first <= r.last && (ranges_.empty() || ranges_.back().range.last < r.first),
                          "shard item ranges are sorted and disjoint");
        ranges_.push_back({r, std::vector<std::int64_t>(r.size(), initial_balance)});
    }
}

ShardState::Defect ShardState::defect(const Transfer& t) const {
    if (t.amount <= 0) return Defect::bad_amount;
    if (t.from == t.to) return Defect::same_item;
    if (find(t.from) == nullptr) return Defect::from_unknown;
    if (find(t.to) == nullptr) return Defect::to_unknown;
    return Defect::none;
}

std::optional<EdgeError> ShardState::validate(const Transfer& t) const {
    const std::string shard = std::to_string(shard_.value);
    switch (defect(t)) {
        case Defect::none: return std::nullopt;
        case Defect::bad_amount:
            return EdgeError{EdgeErrorCode::bad_request,
                             "transfer amount must be positive, got " + std::to_string(t.amount)};
        case Defect::same_item:
            return EdgeError{EdgeErrorCode::bad_request,
                             "cannot transfer from item " + std::to_string(t.from.value) + " to itself"};
        case Defect::from_unknown:
            return EdgeError{EdgeErrorCode::unknown_item,
                             "item " + std::to_string(t.from.value) + " is not in shard " + shard};
        case Defect::to_unknown:
            return EdgeError{EdgeErrorCode::unknown_item,
                             "item " + std::to_string(t.to.value) + " is not in shard " + shard +
                                 " (cross-shard transfers are not supported yet)"};
    }
    require(false, "every transfer defect has a message");
    return std::nullopt;
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

std::optional<ApplyResult> ShardState::apply(const LogEntry& entry) {
    require(entry.index.value == applied_index_.value + 1, "log entries are applied in index order");
    require(applied_epoch_ <= entry.epoch, "epochs never decrease along the log");
    applied_index_ = entry.index;
    applied_epoch_ = entry.epoch;
    return std::visit(Overload{
                          [](const Noop&) -> std::optional<ApplyResult> { return std::nullopt; },
                          [&](const Transfer& t) -> std::optional<ApplyResult> {
                              return apply_transfer(t, entry.index);
                          },
                      },
                      entry.command);
}

ApplyResult ShardState::apply_transfer(const Transfer& t, LogIndex index) {
    // Exactly-once (docs/design.md section 6): a txid seen before gets its first
    // answer again, and one below its client's window is refused, because
    // its first attempt may have applied and been forgotten since.
    if (std::optional<ApplyResult> known = lookup(t.txid)) return *known;
    const AbortReason reason = execute(t);
    const ApplyResult result{reason == AbortReason::none ? Outcome::committed : Outcome::aborted, reason, t.txid};
    record(result, index);
    return result;
}

AbortReason ShardState::execute(const Transfer& t) {
    // The edge should have refused it; the log may still hold it (a buggy or
    // older leader), and every replica must treat it the same way.
    if (defect(t) != Defect::none) return AbortReason::bad_request;
    std::int64_t& from = *find(t.from);
    std::int64_t& to = *find(t.to);
    if (from < t.amount) return AbortReason::insufficient_funds;
    if (to > std::numeric_limits<std::int64_t>::max() - t.amount) return AbortReason::overflow;
    from -= t.amount;
    to += t.amount;
    return AbortReason::none;
}

std::optional<ApplyResult> ShardState::lookup(TxnId txid) const {
    auto client = clients_.find(txid.client_id);
    if (client == clients_.end()) return std::nullopt;
    const ClientWindow& w = client->second;
    if (txid.seq < w.floor_seq) return ApplyResult{Outcome::aborted, AbortReason::expired, txid};
    auto r = std::lower_bound(w.results.begin(), w.results.end(), txid.seq,
                              [](const SeqResult& s, std::uint64_t seq) { return s.seq < seq; });
    if (r == w.results.end() || r->seq != txid.seq) return std::nullopt;
    return ApplyResult{r->outcome, r->reason, txid};
}

void ShardState::record(const ApplyResult& result, LogIndex index) {
    auto client = clients_.find(result.txid.client_id);
    if (client == clients_.end()) {
        if (clients_.size() >= limits_.dedup_clients_max) evict_least_recent_client();
        client = clients_.emplace(result.txid.client_id, ClientWindow{}).first;
    } else {
        clients_by_last_applied_.erase(client->second.last_applied);
    }
    ClientWindow& w = client->second;
    w.last_applied = index;
    clients_by_last_applied_.emplace(index, result.txid.client_id);

    const std::uint64_t seq = result.txid.seq;
    if (w.results.size() == limits_.dedup_window) {
        // The window keeps the client's highest seqs. The lowest one leaves
        // and the floor rises past it, so it can never apply again. The
        // lowest is smaller than some other seq here, so +1 cannot wrap.
        if (seq < w.results.front().seq) {
            w.floor_seq = seq + 1;
            return;
        }
        w.floor_seq = w.results.front().seq + 1;
        w.results.erase(w.results.begin());
    }
    auto pos = std::lower_bound(w.results.begin(), w.results.end(), seq,
                                [](const SeqResult& s, std::uint64_t sq) { return s.seq < sq; });
    w.results.insert(pos, SeqResult{seq, result.outcome, result.reason});
}

void ShardState::evict_least_recent_client() {
    // Keyed by log index, so every replica picks the same client.
    auto oldest = clients_by_last_applied_.begin();
    require(oldest != clients_by_last_applied_.end(), "a full dedup table has clients");
    clients_.erase(oldest->second);
    clients_by_last_applied_.erase(oldest);
}

// ---- snapshots ----
//
// Layout (cereal PortableBinary, after its endianness byte):
//   u32 format, u64 shard id, u64 applied index, u64 applied epoch,
//   ranges:  size, then per range  u64 first, u64 last, size, i64 balance...
//   clients: size, then per client (ascending id)  u64 client id,
//            u64 last applied index, u64 floor seq, size,
//            then per result (ascending seq)  u64 seq, u8 outcome, u8 reason
// The clients' eviction index is derived, so it is rebuilt, not stored.

template <class Archive>
void ShardState::write_snapshot(Archive& ar) const {
    ar(kSnapshotFormat, shard_.value, applied_index_, applied_epoch_);
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(ranges_.size())));
    for (const RangeBalances& r : ranges_) {
        ar(r.range.first, r.range.last, cereal::make_size_tag(static_cast<cereal::size_type>(r.balances.size())));
        ar(cereal::binary_data(r.balances.data(), r.balances.size() * sizeof(std::int64_t)));
    }
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(clients_.size())));
    for (const auto& [client_id, w] : clients_) {
        ar(client_id, w.last_applied, w.floor_seq,
           cereal::make_size_tag(static_cast<cereal::size_type>(w.results.size())));
        for (const SeqResult& s : w.results) {
            ar(s.seq, static_cast<std::uint8_t>(s.outcome), static_cast<std::uint8_t>(s.reason));
        }
    }
}

std::vector<std::uint8_t> ShardState::snapshot() const {
    std::ostringstream out(std::ios::binary);
    {
        cereal::PortableBinaryOutputArchive ar(out);
        write_snapshot(ar);
    }
    const std::string bytes = out.str();
    return {bytes.begin(), bytes.end()};
}

ShardState ShardState::restore(const config::ShardConfig& shard, std::span<const std::uint8_t> bytes,
                               DedupLimits limits) {
    ShardState state(shard, 0, limits);
    try {
        BoundedInputArchive ar(bytes);
        std::uint32_t format = 0;
        std::uint64_t shard_id = 0;
        ar(format);
        if (format != kSnapshotFormat) {
            reject(shard.id, "format " + std::to_string(format) + ", expected " + std::to_string(kSnapshotFormat));
        }
        ar(shard_id, state.applied_index_, state.applied_epoch_);
        if (shard_id != shard.id.value) reject(shard.id, "it was taken of shard " + std::to_string(shard_id));
        state.read_balances(ar);
        state.read_clients(ar);
        if (ar.remaining() != 0) reject(shard.id, std::to_string(ar.remaining()) + " bytes follow its end");
    } catch (const cereal::Exception& e) {
        reject(shard.id, std::string("truncated or corrupt: ") + e.what());
    }
    return state;
}

template <class Archive>
void ShardState::read_balances(Archive& ar) {
    cereal::size_type count = 0;
    ar(cereal::make_size_tag(count));
    if (count != ranges_.size()) {
        reject(shard_, "it holds " + std::to_string(count) + " item ranges, the shard has " +
                           std::to_string(ranges_.size()));
    }
    for (RangeBalances& r : ranges_) {
        config::ItemRange range;
        cereal::size_type size = 0;
        ar(range.first, range.last, cereal::make_size_tag(size));
        // Checked before reading the balances, so the read fills the vector
        // the config sized and never allocates what the bytes claim.
        if (range.first != r.range.first || range.last != r.range.last || size != r.balances.size()) {
            reject(shard_, "it holds items " + range_text(range) + " (" + std::to_string(size) +
                               " balances) where the shard has " + range_text(r.range));
        }
        ar(cereal::binary_data(r.balances.data(), r.balances.size() * sizeof(std::int64_t)));
        for (std::size_t i = 0; i < r.balances.size(); ++i) {
            if (r.balances[i] < 0) {
                reject(shard_, "item " + std::to_string(r.range.first.value + i) + " has a negative balance");
            }
        }
    }
}

template <class Archive>
void ShardState::read_clients(Archive& ar) {
    cereal::size_type count = 0;
    ar(cereal::make_size_tag(count));
    if (count > limits_.dedup_clients_max) {
        reject(shard_, "it holds " + std::to_string(count) + " dedup clients, more than dedup_clients_max " +
                           std::to_string(limits_.dedup_clients_max));
    }
    for (cereal::size_type c = 0; c < count; ++c) {
        std::uint64_t client_id = 0;
        ClientWindow w;
        cereal::size_type size = 0;
        ar(client_id, w.last_applied, w.floor_seq, cereal::make_size_tag(size));
        const std::string who = "dedup client " + std::to_string(client_id);
        if (size == 0 || size > limits_.dedup_window) {
            reject(shard_, who + " holds " + std::to_string(size) + " results, expected 1 to dedup_window " +
                               std::to_string(limits_.dedup_window));
        }
        w.results.reserve(size);
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
        add_restored_client(client_id, std::move(w));
    }
}

void ShardState::add_restored_client(std::uint64_t client_id, ClientWindow window) {
    const std::string who = "dedup client " + std::to_string(client_id);
    // Canonical order is what makes snapshot() after restore() byte-identical.
    if (!clients_.empty() && clients_.rbegin()->first >= client_id) {
        reject(shard_, who + " is out of ascending order");
    }
    const bool seqs_ascending = std::adjacent_find(window.results.begin(), window.results.end(),
                                                   [](const SeqResult& a, const SeqResult& b) {
                                                       return a.seq >= b.seq;
                                                   }) == window.results.end();
    if (!seqs_ascending || window.results.front().seq < window.floor_seq) {
        reject(shard_, who + " has seqs out of order or below its floor");
    }
    // apply() recorded it at a unique index no later than the snapshot's.
    if (window.last_applied.value == 0 || applied_index_ < window.last_applied ||
        !clients_by_last_applied_.emplace(window.last_applied, client_id).second) {
        reject(shard_, who + " has an impossible last applied index " + std::to_string(window.last_applied.value));
    }
    clients_.emplace_hint(clients_.end(), client_id, std::move(window));
}

}  // namespace rl::txn
