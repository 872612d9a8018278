// The shard state machine (docs/design.md section 6): Genesis, balances,
// edge checks, exactly-once through client sessions with their bounds, and
// snapshots. Each test applies a small hand-made log to a fresh ShardState,
// which is given nothing but its shard id: everything else comes from the
// log. The randomized tests print their seed and replay exactly from it.
#define BOOST_TEST_MODULE state_machine
#include <boost/test/unit_test.hpp>

#include "config/random.hpp"
#include "txn/state_machine.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <new>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

using rl::Epoch;
using rl::ItemId;
using rl::LogIndex;
using rl::NodeId;
using rl::ShardId;
using rl::txn::AbortReason;
using rl::txn::Applied;
using rl::txn::ApplyResult;
using rl::txn::Command;
using rl::txn::EdgeErrorCode;
using rl::txn::Genesis;
using rl::txn::LogEntry;
using rl::txn::Noop;
using rl::txn::OpenSession;
using rl::txn::Reset;
using rl::txn::ResetApplied;
using rl::txn::Outcome;
using rl::txn::session_id;
using rl::txn::SessionOpened;
using rl::txn::ShardState;
using rl::txn::Transfer;
using rl::txn::TxnId;
using rl::txn::BatchApplied;
using rl::txn::BatchTransfer;
using rl::txn::TransferBatch;

// ---- allocation meter
//
// restore() must allocate in proportion to its input, never to the sizes the
// input claims. While armed, every operator new of this process records the
// largest single request. The operators stay out of line, so the compiler
// does not pair an inlined free() with operator new and warn.
namespace {
bool g_metering = false;
std::size_t g_largest_allocation = 0;
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t bytes) {
    if (g_metering) g_largest_allocation = std::max(g_largest_allocation, bytes);
    if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

constexpr ShardId kShard{1};
constexpr std::int64_t kInitial = 10;
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// Two ranges with a gap (11-20 belongs to another shard), 20 items in all.
Genesis genesis(std::uint32_t dedup_window = 64, std::uint32_t sessions_max = 64) {
    return Genesis{kShard, {{ItemId{1}, ItemId{10}}, {ItemId{21}, ItemId{30}}}, kInitial, dedup_window, sessions_max};
}

// Items 1 and 2, both holding `balance`.
Genesis two_items(std::int64_t balance) { return Genesis{kShard, {{ItemId{1}, ItemId{2}}}, balance, 64, 64}; }

// Applies `command` as the next entry of `s`'s log, in the epoch it is at.
Applied step(ShardState& s, Command command) {
    const Epoch epoch = std::max(s.applied_epoch(), Epoch{1});
    return s.apply(LogEntry{s.applied_index().next(), epoch, std::move(command)});
}

// A shard created by `g` at index 1.
ShardState created(const Genesis& g = genesis()) {
    ShardState s(kShard);
    step(s, g);
    BOOST_REQUIRE(s.created());
    return s;
}

// Applies an OpenSession entry; the new session's id.
std::uint64_t open_session(ShardState& s) {
    const Applied a = step(s, OpenSession{});
    BOOST_REQUIRE(std::holds_alternative<SessionOpened>(a));
    return std::get<SessionOpened>(a).session;
}

// Applies `t` as the next entry; its result.
ApplyResult apply(ShardState& s, const Transfer& t) {
    const Applied a = step(s, t);
    BOOST_REQUIRE(std::holds_alternative<ApplyResult>(a));
    return std::get<ApplyResult>(a);
}

Transfer xfer(std::uint64_t session, std::uint64_t seq, std::uint64_t from, std::uint64_t to, std::int64_t amount) {
    return Transfer{TxnId{session, seq}, ItemId{from}, ItemId{to}, amount};
}

ApplyResult committed(TxnId id) { return {Outcome::committed, AbortReason::none, id}; }
ApplyResult aborted(TxnId id, AbortReason reason) { return {Outcome::aborted, reason, id}; }

std::vector<std::int64_t> all_balances(const ShardState& s) {
    std::vector<std::int64_t> out;
    for (const auto& r : genesis().items) {
        for (std::uint64_t i = r.first.value; i <= r.last.value; ++i) out.push_back(s.balance(ItemId{i}));
    }
    return out;
}

ShardState replay(std::span<const LogEntry> log) {
    ShardState s(kShard);
    for (const LogEntry& e : log) s.apply(e);
    return s;
}

// ---- random logs

struct LogShape {
    std::size_t entries = 0;   // in all, the Genesis at index 1 included
    std::size_t sessions = 0;  // OpenSession entries, spread over the log
    std::size_t hot = 0;       // new transfers mostly use the latest `hot` sessions
};

// Writes a log that starts with a Genesis and mixes OpenSession entries with
// valid, invalid, retried, out-of-order and stale transfers, transfers of
// sessions never opened, Noops, later Genesis entries and epoch changes.
// A retry repeats any earlier transfer, however old, whether or not its
// session is still in the table. Seqs advance with gaps; a gap seq used
// later is out of order (applied if still in the window, expired if not).
class RandomLog {
public:
    RandomLog(std::uint64_t seed, LogShape shape) : rng_(seed), shape_(shape) {}

    std::vector<LogEntry> write(const Genesis& g) {
        std::vector<LogEntry> log{LogEntry{LogIndex{1}, Epoch{1}, g}};
        Epoch epoch{1};
        while (log.size() < shape_.entries) {
            if (pick(0, 99) < 2) epoch = epoch.next();
            const LogIndex index{log.size() + 1};
            log.push_back(LogEntry{index, epoch, command(index)});
        }
        return log;
    }

private:
    std::uint64_t pick(std::uint64_t lo, std::uint64_t hi) { return rl::uniform(rng_, lo, hi); }

    Command command(LogIndex index) {
        if (opened_.empty() || (opened_.size() < shape_.sessions && pick(1, shape_.entries) <= shape_.sessions)) {
            opened_.push_back(session_id(kShard, index));
            return OpenSession{};
        }
        const std::uint64_t dice = pick(0, 99);
        if (dice < 4) return Noop{};
        if (dice == 4) return Genesis{kShard, {{ItemId{1}, ItemId{40}}}, 99, 1, 1};
        if (dice == 5) return stray_transfer(index);
        if (dice < 25 && !sent_.empty()) return retry();
        const std::uint64_t session = pick_session();
        const auto amount = static_cast<std::int64_t>(pick(0, 12)) - 1;  // -1 and 0 are bad
        sent_.push_back(Transfer{TxnId{session, seq_of(session)}, item(), item(), amount});
        return sent_.back();
    }

    // A transfer sent before: one of the latest or, as often, one of any age.
    const Transfer& retry() {
        const std::size_t recent = std::min<std::size_t>(sent_.size(), 16);
        if (pick(0, 1) == 0) return sent_[sent_.size() - 1 - pick(0, recent - 1)];
        return sent_[pick(0, sent_.size() - 1)];
    }

    // A session no OpenSession entry opened: this shard's index 1 (the
    // Genesis) or another shard's session.
    Transfer stray_transfer(LogIndex index) {
        const std::uint64_t session = pick(0, 1) == 0 ? session_id(kShard, LogIndex{1}) : session_id(ShardId{2}, index);
        return Transfer{TxnId{session, 1}, ItemId{1}, ItemId{2}, 1};
    }

    std::uint64_t pick_session() {
        const std::size_t hot = std::min(shape_.hot, opened_.size());
        if (pick(0, 3) > 0) return opened_[opened_.size() - 1 - pick(0, hot - 1)];
        return opened_[pick(0, opened_.size() - 1)];
    }

    std::uint64_t seq_of(std::uint64_t session) {
        std::vector<std::uint64_t>& gaps = skipped_[session];
        if (!gaps.empty() && pick(0, 9) == 0) {
            const std::uint64_t late = gaps.back();
            gaps.pop_back();
            return late;
        }
        std::uint64_t& next = next_seq_.try_emplace(session, 1).first->second;
        const std::uint64_t seq = next;
        next += pick(1, 3);
        for (std::uint64_t gap = seq + 1; gap < next; ++gap) gaps.push_back(gap);
        return seq;
    }

    // Mostly items of the shard (1-10, 21-30), sometimes items of no shard.
    ItemId item() {
        const std::uint64_t n = pick(0, 21);
        return ItemId{n < 10 ? n + 1 : n < 20 ? n + 11 : n * 5};
    }

    rl::Rng rng_;
    LogShape shape_;
    std::vector<std::uint64_t> opened_;
    std::map<std::uint64_t, std::uint64_t> next_seq_;
    std::map<std::uint64_t, std::vector<std::uint64_t>> skipped_;
    std::vector<Transfer> sent_;
};

// What a random log's answers came to.
struct Tally {
    std::size_t applied = 0;       // first results: the transfer executed
    std::size_t repeated = 0;      // a retry answered with its first result
    std::size_t expired = 0;       // below the window
    std::size_t evicted = 0;       // session_expired: its session was evicted
    std::size_t never_opened = 0;  // session_expired: no entry opened it
    std::size_t forgotten = 0;     // expired or session_expired for a txid that had applied
};

// What applying a log must do, worked out apart from ShardState from the
// rules of docs/design.md section 6.4: balances, the first result of every
// txid, the txids refused as expired, and which sessions the table holds
// (the least recently used goes first). A txid that applied may only ever
// hear its first result, `expired` or `session_expired` again.
class Model {
public:
    explicit Model(const Genesis& g) : sessions_max_(g.sessions_max) {
        for (const auto& r : g.items) {
            for (std::uint64_t i = r.first.value; i <= r.last.value; ++i) balances_[ItemId{i}] = g.initial_balance;
        }
    }

    // Checks what `s` answered to `e` and that `s` now agrees with the model.
    void check(const LogEntry& e, const Applied& got, const ShardState& s) {
        if (std::holds_alternative<OpenSession>(e.command)) {
            open(e.index);
            BOOST_REQUIRE((got == Applied{SessionOpened{session_id(kShard, e.index)}}));
        } else if (const auto* t = std::get_if<Transfer>(&e.command)) {
            BOOST_REQUIRE(std::holds_alternative<ApplyResult>(got));
            transfer(*t, e.index, std::get<ApplyResult>(got), s);
        } else {
            BOOST_REQUIRE(std::holds_alternative<std::monostate>(got));
        }
        BOOST_REQUIRE(s.sessions() == table_.size());
        for (const auto& [item, balance] : balances_) {
            if (s.balance(item) != balance) BOOST_FAIL("item " << item << " holds " << s.balance(item));
        }
    }

    const Tally& tally() const { return tally_; }

private:
    void open(LogIndex index) {
        if (table_.size() == sessions_max_) {
            const auto lru = std::min_element(table_.begin(), table_.end(),
                                              [](const auto& a, const auto& b) { return a.second < b.second; });
            table_.erase(lru);
        }
        table_.emplace(session_id(kShard, index), index);
        opened_.insert(session_id(kShard, index));
    }

    void transfer(const Transfer& t, LogIndex index, const ApplyResult& got, const ShardState& s) {
        BOOST_REQUIRE(got.txid == t.txid);
        const auto session = table_.find(t.txid.session);
        if (session == table_.end()) {
            BOOST_REQUIRE((got == aborted(t.txid, AbortReason::session_expired)));
            BOOST_REQUIRE(!s.lookup(t.txid).has_value());
            ++(opened_.contains(t.txid.session) ? tally_.evicted : tally_.never_opened);
            tally_.forgotten += first_.contains(t.txid) ? 1 : 0;
            return;
        }
        session->second = index;
        const std::optional<ApplyResult> looked_up = s.lookup(t.txid);
        BOOST_REQUIRE((looked_up == got || looked_up == aborted(t.txid, AbortReason::expired)));
        const auto first = first_.find(t.txid);
        if (got.reason == AbortReason::expired) {
            if (first == first_.end()) refused_.insert(t.txid);
            ++tally_.expired;
            tally_.forgotten += first != first_.end() ? 1 : 0;
        } else if (first != first_.end()) {
            BOOST_REQUIRE((got == first->second));
            ++tally_.repeated;
        } else {
            BOOST_REQUIRE(!refused_.contains(t.txid));
            BOOST_REQUIRE((got == execute(t)));
            first_.emplace(t.txid, got);
            ++tally_.applied;
        }
    }

    ApplyResult execute(const Transfer& t) {
        const auto from = balances_.find(t.from);
        const auto to = balances_.find(t.to);
        if (t.amount <= 0 || t.from == t.to || from == balances_.end() || to == balances_.end()) {
            return aborted(t.txid, AbortReason::bad_request);
        }
        if (from->second < t.amount) return aborted(t.txid, AbortReason::insufficient_funds);
        if (to->second > kMax - t.amount) return aborted(t.txid, AbortReason::overflow);
        from->second -= t.amount;
        to->second += t.amount;
        return committed(t.txid);
    }

    std::size_t sessions_max_;
    std::map<ItemId, std::int64_t> balances_;
    std::map<TxnId, ApplyResult> first_;
    std::set<TxnId> refused_;
    std::map<std::uint64_t, LogIndex> table_;  // session -> index of its latest entry
    std::set<std::uint64_t> opened_;
    Tally tally_;
};

// Applies `log` to a fresh state, checking every answer against the model.
Tally check_against_model(const std::vector<LogEntry>& log) {
    ShardState s(kShard);
    s.apply(log.front());
    Model model(std::get<Genesis>(log.front().command));
    for (const LogEntry& e : std::span(log).subspan(1)) {
        const Applied got = s.apply(e);
        model.check(e, got, s);
    }
    return model.tally();
}

// ---- snapshots

// Limits 2 and 2; committed and aborted results, a raised floor and an
// evicted session. Entries: 1 Genesis, 2 opens A, 3 opens B, 4 A1, 5 B1,
// 6 B2 (insufficient funds), 7 B3 (B's floor rises to 2), 8 opens C and
// evicts A (last used at 4), 9 C1, 10 a Noop in epoch 3.
constexpr std::uint64_t kBusyA = session_id(kShard, LogIndex{2});
constexpr std::uint64_t kBusyB = session_id(kShard, LogIndex{3});
constexpr std::uint64_t kBusyC = session_id(kShard, LogIndex{8});

ShardState busy_state() {
    ShardState s = created(genesis(2, 2));
    BOOST_REQUIRE(open_session(s) == kBusyA);
    BOOST_REQUIRE(open_session(s) == kBusyB);
    apply(s, xfer(kBusyA, 1, 30, 3, 4));
    apply(s, xfer(kBusyB, 1, 1, 2, 5));
    apply(s, xfer(kBusyB, 2, 1, 2, 50));
    apply(s, xfer(kBusyB, 3, 21, 30, 1));
    BOOST_REQUIRE(open_session(s) == kBusyC);
    apply(s, xfer(kBusyC, 1, 3, 4, 1));
    s.apply(LogEntry{LogIndex{10}, Epoch{3}, Noop{}});
    return s;
}

// Offsets in the layout state_machine.cpp documents, for genesis(): the
// endianness byte, u32 format, u64 shard, index, epoch, u8 created; the
// Genesis: u64 shard, range count, (first, last) per range, i64 balance,
// u32 dedup_window, u32 sessions_max; per range a count and its balances;
// the session count; per session u64 id, last used, floor, result count,
// then per result u64 seq, u8 outcome, u8 reason; the cross-shard record count.
constexpr std::size_t kFormatAt = 1;
constexpr std::size_t kShardAt = 5;
constexpr std::size_t kIndexAt = 13;
constexpr std::size_t kCreatedAt = 29;
constexpr std::size_t kGenesisShardAt = 30;
constexpr std::size_t kRangeCountAt = 38;
constexpr std::size_t kSecondRangeLastAt = 70;
constexpr std::size_t kInitialBalanceAt = 78;
constexpr std::size_t kDedupWindowAt = 86;
constexpr std::size_t kSessionsMaxAt = 90;
constexpr std::size_t kFirstBalanceCountAt = 94;
constexpr std::size_t kFirstBalanceAt = 102;
constexpr std::size_t kSecondRangeFirstBalanceAt = 190;
constexpr std::size_t kSessionCountAt = 270;
constexpr std::size_t kCrossCountBytes = 8;  // the cross-shard record count that ends every created snapshot
constexpr std::size_t kCreatedSize = 278 + kCrossCountBytes;  // genesis() with no session
// busy_state(): B (two results) then C (one result).
constexpr std::size_t kBusyBAt = 278;
constexpr std::size_t kBusyCAt = 330;
constexpr std::size_t kBusySessionsEnd = 372;
constexpr std::size_t kBusySize = kBusySessionsEnd + kCrossCountBytes;
constexpr std::size_t kLastUsed = 8;  // offsets inside a session
constexpr std::size_t kFloor = 16;
constexpr std::size_t kResultCount = 24;
constexpr std::size_t kResults = 32;
constexpr std::size_t kResultBytes = 10;

void put_u64(std::vector<std::uint8_t>& bytes, std::size_t at, std::uint64_t v) {
    for (std::size_t i = 0; i < 8; ++i) bytes.at(at + i) = static_cast<std::uint8_t>(v >> (8 * i));  // little endian
}
void put_u32(std::vector<std::uint8_t>& bytes, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) bytes.at(at + i) = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get_u64(const std::vector<std::uint8_t>& bytes, std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) v |= std::uint64_t{bytes.at(at + i)} << (8 * i);
    return v;
}

// `bytes` with the u64 at `at` replaced by `v`.
std::vector<std::uint8_t> with_u64(std::vector<std::uint8_t> bytes, std::size_t at, std::uint64_t v) {
    put_u64(bytes, at, v);
    return bytes;
}

// restore() with the allocation meter armed; checks that no single
// allocation exceeded a small multiple of the input (16 bytes per input
// byte covers the largest element restore() sizes by a count) plus room for
// the error message.
ShardState metered_restore(ShardId shard, std::span<const std::uint8_t> bytes) {
    g_largest_allocation = 0;
    g_metering = true;
    const auto disarm = [&] {
        g_metering = false;
        BOOST_CHECK_MESSAGE(g_largest_allocation <= 16 * bytes.size() + 512,
                            "restore of " << bytes.size() << " bytes allocated " << g_largest_allocation);
    };
    try {
        ShardState s = ShardState::restore(shard, bytes);
        disarm();
        return s;
    } catch (...) {
        disarm();
        throw;
    }
}

void check_restore_fails(std::span<const std::uint8_t> bytes, const std::string& expected, ShardId shard = kShard) {
    try {
        metered_restore(shard, bytes);
        BOOST_ERROR("restore accepted bad bytes, expected: " << expected);
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find("snapshot of shard " + std::to_string(shard.value) + " rejected") == 0U, what);
        BOOST_TEST(what.find(expected) != std::string::npos, what);
    }
}

}  // namespace

// ---- Genesis

BOOST_AUTO_TEST_CASE(a_new_state_is_empty_until_its_genesis) {
    const ShardState s(kShard);
    BOOST_TEST(!s.created());
    BOOST_TEST(!s.genesis().has_value());
    BOOST_TEST(s.total() == 0);
    BOOST_TEST(s.sessions() == 0U);
    BOOST_TEST(s.applied_index() == LogIndex{0});
    BOOST_TEST(s.applied_epoch() == Epoch{0});
}

BOOST_AUTO_TEST_CASE(nothing_applies_before_genesis) {
    ShardState s(kShard);
    BOOST_TEST(std::holds_alternative<std::monostate>(step(s, Noop{})));
    BOOST_TEST(std::holds_alternative<std::monostate>(step(s, OpenSession{})));
    const Transfer t = xfer(session_id(kShard, LogIndex{2}), 1, 1, 2, 1);
    BOOST_TEST((apply(s, t) == aborted(t.txid, AbortReason::bad_request)));
    BOOST_TEST(!s.created());
    BOOST_TEST(s.sessions() == 0U);
    BOOST_TEST(!s.lookup(t.txid).has_value());
    BOOST_TEST(s.applied_index() == LogIndex{3});
    // The OpenSession at index 2 opened nothing, so its id never works.
    step(s, genesis());
    BOOST_TEST((apply(s, t) == aborted(t.txid, AbortReason::session_expired)));
    BOOST_TEST(s.total() == 20 * kInitial);
}

BOOST_AUTO_TEST_CASE(genesis_creates_every_item_at_the_initial_balance) {
    const ShardState s = created();
    for (std::int64_t b : all_balances(s)) BOOST_TEST(b == kInitial);
    BOOST_TEST(s.total() == 20 * kInitial);
    BOOST_TEST((s.genesis() == genesis()));
    BOOST_TEST(s.applied_index() == LogIndex{1});
    BOOST_TEST(s.sessions() == 0U);
}

BOOST_AUTO_TEST_CASE(the_first_genesis_wins_and_a_later_one_applies_as_a_noop) {
    ShardState s = created(genesis(2, 2));
    const std::uint64_t a = open_session(s);
    apply(s, xfer(a, 1, 1, 2, 3));
    ShardState twin = ShardState::restore(kShard, s.snapshot());
    const Genesis other{kShard, {{ItemId{1}, ItemId{50}}}, 99, 8, 8};
    BOOST_TEST(std::holds_alternative<std::monostate>(step(s, other)));
    step(twin, Noop{});
    BOOST_TEST((s.genesis() == genesis(2, 2)));
    BOOST_TEST(s.balance(ItemId{1}) == kInitial - 3);
    BOOST_TEST((s.snapshot() == twin.snapshot()));
}

BOOST_AUTO_TEST_CASE(a_genesis_of_another_shard_or_an_invalid_one_creates_nothing) {
    const auto with = [](auto change) {
        Genesis g = genesis();
        change(g);
        return g;
    };
    const std::vector<Genesis> refused{
        with([](Genesis& g) { g.shard = ShardId{2}; }),
        with([](Genesis& g) { g.items.clear(); }),
        with([](Genesis& g) { std::swap(g.items[0], g.items[1]); }),
        with([](Genesis& g) { g.items[1].first = ItemId{10}; }),  // overlaps
        with([](Genesis& g) { g.items[0] = {ItemId{5}, ItemId{4}}; }),
        with([](Genesis& g) { g.items[0].first = ItemId{0}; }),
        with([](Genesis& g) { g.initial_balance = -1; }),
        with([](Genesis& g) { g.dedup_window = 0; }),
        with([](Genesis& g) { g.sessions_max = 0; }),
    };
    for (const Genesis& g : refused) {
        ShardState s(kShard);
        step(s, g);
        BOOST_TEST(!s.created());
        BOOST_TEST((g.shard != kShard || rl::txn::genesis_problem(g).has_value()));
        step(s, genesis());
        BOOST_TEST((s.genesis() == genesis()));
    }
}

BOOST_AUTO_TEST_CASE(genesis_problem_names_the_first_problem) {
    Genesis g = genesis();
    BOOST_TEST(!rl::txn::genesis_problem(g).has_value());
    g.items[1].first = ItemId{10};
    BOOST_TEST(rl::txn::genesis_problem(g).value() == "item ranges are not sorted and disjoint");
    g.initial_balance = -1;
    BOOST_TEST(rl::txn::genesis_problem(g).value() == "item ranges are not sorted and disjoint");
    g = genesis();
    g.shard = ShardId{rl::txn::kShardIdMax + 1};
    BOOST_TEST(rl::txn::genesis_problem(g).value() == "shard id out of range");
}

BOOST_AUTO_TEST_CASE(genesis_of_takes_the_shards_items_and_the_clusters_values) {
    const rl::config::ShardConfig shard{ShardId{3}, {{ItemId{5}, ItemId{9}}}, {NodeId{1}, NodeId{2}}};
    rl::config::ClusterConfig cluster;
    cluster.initial_balance = 7;
    cluster.limits.dedup_window = 5;
    cluster.limits.dedup_clients_max = 9;
    const Genesis expected{ShardId{3}, {{ItemId{5}, ItemId{9}}}, 7, 5, 9};
    BOOST_TEST((ShardState::genesis_of(shard, cluster) == expected));
}

BOOST_AUTO_TEST_CASE(two_replicas_fed_the_same_log_hold_byte_identical_snapshots) {
    const std::uint64_t seed = 0x5eed0004;
    BOOST_TEST_CONTEXT("seed 0x" << std::hex << seed) {
        const std::vector<LogEntry> log = RandomLog(seed, {.entries = 3000, .sessions = 40, .hot = 4}).write(genesis(4, 3));
        ShardState a(kShard);
        ShardState b(kShard);
        for (const LogEntry& e : log) {
            BOOST_REQUIRE((a.apply(e) == b.apply(e)));
            if (e.index.value % 250 == 0) BOOST_REQUIRE((a.snapshot() == b.snapshot()));
        }
        BOOST_TEST((a.snapshot() == b.snapshot()));
    }
}

// ---- sessions

BOOST_AUTO_TEST_CASE(session_ids_encode_shard_and_index) {
    static_assert(session_id(ShardId{3}, LogIndex{5}) == ((std::uint64_t{3} << 48) | 5));
    const ShardId shard{3};
    ShardState s(shard);
    s.apply(LogEntry{LogIndex{1}, Epoch{1}, Genesis{shard, {{ItemId{1}, ItemId{2}}}, 1, 1, 1}});
    for (std::uint64_t i = 2; i < 5; ++i) s.apply(LogEntry{LogIndex{i}, Epoch{1}, Noop{}});
    const Applied a = s.apply(LogEntry{LogIndex{5}, Epoch{1}, OpenSession{}});
    BOOST_TEST((a == Applied{SessionOpened{session_id(shard, LogIndex{5})}}));
    BOOST_TEST(rl::txn::session_shard(std::get<SessionOpened>(a).session) == shard);
    const std::uint64_t last_index = (std::uint64_t{1} << rl::txn::kSessionIndexBits) - 1;
    const std::uint64_t widest = session_id(ShardId{rl::txn::kShardIdMax}, LogIndex{last_index});
    BOOST_TEST(widest == std::numeric_limits<std::uint64_t>::max());
    BOOST_TEST(rl::txn::session_shard(widest) == ShardId{rl::txn::kShardIdMax});
}

BOOST_AUTO_TEST_CASE(each_open_session_entry_opens_a_new_session) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    const std::uint64_t b = open_session(s);
    BOOST_TEST(a == session_id(kShard, LogIndex{2}));
    BOOST_TEST(b == session_id(kShard, LogIndex{3}));
    BOOST_TEST(s.sessions() == 2U);
}

BOOST_AUTO_TEST_CASE(a_transfer_of_a_session_never_opened_is_session_expired_and_changes_nothing) {
    ShardState s = created();
    open_session(s);
    const auto before = all_balances(s);
    const Transfer t = xfer(session_id(kShard, LogIndex{1}), 1, 1, 2, 1);  // index 1 is the Genesis
    BOOST_TEST((apply(s, t) == aborted(t.txid, AbortReason::session_expired)));
    BOOST_TEST(!s.lookup(t.txid).has_value());
    BOOST_TEST(all_balances(s) == before);
}

BOOST_AUTO_TEST_CASE(the_least_recently_used_session_is_evicted) {
    // Neither the smallest id nor the first opened (a) goes: b's latest
    // entry has the lowest index.
    ShardState s = created(genesis(64, 2));
    const std::uint64_t a = open_session(s);
    const std::uint64_t b = open_session(s);
    apply(s, xfer(b, 1, 1, 2, 1));
    apply(s, xfer(a, 1, 1, 2, 1));
    const std::uint64_t c = open_session(s);
    BOOST_TEST(s.sessions() == 2U);
    BOOST_TEST(!s.lookup(TxnId{b, 1}).has_value());
    BOOST_TEST((s.lookup(TxnId{a, 1}) == committed(TxnId{a, 1})));
    BOOST_TEST((apply(s, xfer(c, 1, 1, 2, 1)) == committed(TxnId{c, 1})));
}

BOOST_AUTO_TEST_CASE(a_retry_in_an_evicted_session_is_session_expired_with_balances_unchanged) {
    ShardState s = created(genesis(64, 1));
    const std::uint64_t a = open_session(s);
    const Transfer t = xfer(a, 1, 1, 2, 4);
    apply(s, t);
    open_session(s);
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, t) == aborted(t.txid, AbortReason::session_expired)));
    BOOST_TEST((apply(s, xfer(a, 2, 1, 2, 1)) == aborted(TxnId{a, 2}, AbortReason::session_expired)));
    BOOST_TEST(all_balances(s) == before);
    BOOST_TEST(s.balance(ItemId{1}) == kInitial - 4);
}

BOOST_AUTO_TEST_CASE(any_entry_of_a_session_counts_as_a_use_a_retry_too) {
    ShardState s = created(genesis(64, 2));
    const std::uint64_t a = open_session(s);
    const std::uint64_t b = open_session(s);
    apply(s, xfer(a, 1, 1, 2, 1));
    apply(s, xfer(b, 1, 1, 2, 1));
    apply(s, xfer(a, 1, 1, 2, 1));  // a retry: a is now the more recent
    open_session(s);
    BOOST_TEST((s.lookup(TxnId{a, 1}) == committed(TxnId{a, 1})));
    BOOST_TEST(!s.lookup(TxnId{b, 1}).has_value());
}

BOOST_AUTO_TEST_CASE(a_transfer_with_a_session_of_another_shard_is_refused_at_the_edge) {
    ShardState s = created();
    const std::uint64_t foreign = session_id(ShardId{2}, LogIndex{2});
    const auto e = s.validate(xfer(foreign, 1, 1, 2, 1));
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST((e->code == EdgeErrorCode::bad_request));
    BOOST_TEST(e->message == "session " + std::to_string(foreign) +
                                 " belongs to shard 2, item 1 to shard 1; open a session there");
    // Logged anyway, it finds no such session in this shard's table.
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, xfer(foreign, 1, 1, 2, 1)) == aborted(TxnId{foreign, 1}, AbortReason::session_expired)));
    BOOST_TEST(all_balances(s) == before);
}

// ---- transfers

BOOST_AUTO_TEST_CASE(a_committed_transfer_moves_money) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    BOOST_TEST((apply(s, xfer(a, 1, 3, 25, 7)) == committed(TxnId{a, 1})));
    BOOST_TEST(s.balance(ItemId{3}) == 3);
    BOOST_TEST(s.balance(ItemId{25}) == 17);
    BOOST_TEST(s.applied_index() == LogIndex{3});
    BOOST_TEST((s.lookup(TxnId{a, 1}) == committed(TxnId{a, 1})));
}

BOOST_AUTO_TEST_CASE(a_transfer_of_the_whole_balance_commits) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    BOOST_TEST((apply(s, xfer(a, 1, 3, 4, kInitial)) == committed(TxnId{a, 1})));
    BOOST_TEST(s.balance(ItemId{3}) == 0);
}

BOOST_AUTO_TEST_CASE(insufficient_funds_aborts_and_changes_no_balance) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, xfer(a, 1, 3, 4, kInitial + 1)) == aborted(TxnId{a, 1}, AbortReason::insufficient_funds)));
    BOOST_TEST(all_balances(s) == before);
    BOOST_TEST(s.applied_index() == LogIndex{3});
}

BOOST_AUTO_TEST_CASE(overflow_of_the_credited_balance_aborts) {
    ShardState s = created(two_items(kMax));
    const std::uint64_t a = open_session(s);
    BOOST_TEST((apply(s, xfer(a, 1, 1, 2, 1)) == aborted(TxnId{a, 1}, AbortReason::overflow)));
    BOOST_TEST(s.balance(ItemId{1}) == kMax);
    BOOST_TEST(s.balance(ItemId{2}) == kMax);
}

BOOST_AUTO_TEST_CASE(total_beyond_int64_throws_instead_of_wrapping) {
    const ShardState s = created(two_items(kMax));
    BOOST_CHECK_THROW(s.total(), std::overflow_error);
}

BOOST_AUTO_TEST_CASE(a_noop_changes_only_the_applied_position) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    apply(s, xfer(a, 1, 1, 2, 1));
    const auto before = all_balances(s);
    BOOST_TEST(std::holds_alternative<std::monostate>(s.apply(LogEntry{LogIndex{4}, Epoch{4}, Noop{}})));
    BOOST_TEST(s.applied_index() == LogIndex{4});
    BOOST_TEST(s.applied_epoch() == Epoch{4});
    BOOST_TEST(all_balances(s) == before);
    BOOST_TEST((s.lookup(TxnId{a, 1}) == committed(TxnId{a, 1})));
}

// ---- edge checks

BOOST_AUTO_TEST_CASE(validate_accepts_a_transfer_across_the_shards_ranges) {
    const ShardState s = created();
    const std::uint64_t a = session_id(kShard, LogIndex{2});
    BOOST_TEST(!s.validate(xfer(a, 1, 10, 21, 1)).has_value());
    BOOST_TEST(!s.validate(xfer(a, 1, 30, 1, 1000)).has_value());  // funds are apply's business
}

BOOST_AUTO_TEST_CASE(validate_rejects_a_non_positive_amount_as_bad_request) {
    const ShardState s = created();
    for (std::int64_t amount : {std::int64_t{0}, std::int64_t{-3}, std::numeric_limits<std::int64_t>::min()}) {
        const auto e = s.validate(xfer(session_id(kShard, LogIndex{2}), 1, 1, 2, amount));
        BOOST_REQUIRE(e.has_value());
        BOOST_TEST((e->code == EdgeErrorCode::bad_request));
        BOOST_TEST(e->message == "transfer amount must be positive, got " + std::to_string(amount));
    }
}

BOOST_AUTO_TEST_CASE(validate_rejects_a_transfer_to_the_same_item_as_bad_request) {
    const ShardState s = created();
    const auto e = s.validate(xfer(session_id(kShard, LogIndex{2}), 1, 4, 4, 1));
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST((e->code == EdgeErrorCode::bad_request));
    BOOST_TEST(e->message == "cannot transfer from item 4 to itself");
    BOOST_TEST(std::string(rl::txn::to_string(e->code)) == "bad_request");
}

BOOST_AUTO_TEST_CASE(validate_rejects_a_source_outside_the_shard_as_unknown_item) {
    const ShardState s = created();
    for (std::uint64_t item : {0, 11, 20, 31}) {  // below, in the gap, above
        const auto e = s.validate(xfer(session_id(kShard, LogIndex{2}), 1, item, 5, 1));
        BOOST_REQUIRE(e.has_value());
        BOOST_TEST((e->code == EdgeErrorCode::unknown_item));
        BOOST_TEST(e->message == "item " + std::to_string(item) + " is not in shard 1");
    }
}

BOOST_AUTO_TEST_CASE(validate_rejects_a_destination_outside_the_shard_as_unknown_item) {
    const ShardState s = created();
    const auto e = s.validate(xfer(session_id(kShard, LogIndex{2}), 1, 5, 15, 1));
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST((e->code == EdgeErrorCode::unknown_item));
    BOOST_TEST(e->message == "item 15 is not in shard 1");
    BOOST_TEST(std::string(rl::txn::to_string(e->code)) == "unknown_item");
}

BOOST_AUTO_TEST_CASE(validate_answers_unavailable_before_genesis) {
    const ShardState s(kShard);
    const auto e = s.validate(xfer(session_id(kShard, LogIndex{2}), 1, 1, 2, 1));
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST((e->code == EdgeErrorCode::unavailable));
    BOOST_TEST(e->message == "shard 1 is not created yet; retry");
    BOOST_TEST(std::string(rl::txn::to_string(e->code)) == "unavailable");
}

BOOST_AUTO_TEST_CASE(check_item_accepts_the_shards_items_only_once_created) {
    const ShardState before(kShard);
    BOOST_TEST((before.check_item(ItemId{1}).value().code == EdgeErrorCode::unavailable));
    const ShardState s = created();
    for (std::uint64_t item : {1, 10, 21, 30}) BOOST_TEST(!s.check_item(ItemId{item}).has_value());
    for (std::uint64_t item : {0, 11, 20, 31}) {
        const auto e = s.check_item(ItemId{item});
        BOOST_REQUIRE(e.has_value());
        BOOST_TEST((e->code == EdgeErrorCode::unknown_item));
        BOOST_TEST(e->message == "item " + std::to_string(item) + " is not in shard 1");
    }
}

BOOST_AUTO_TEST_CASE(a_logged_transfer_that_fails_edge_checks_aborts_as_bad_request) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    const auto before = all_balances(s);
    const std::vector<Transfer> bad{xfer(a, 1, 1, 2, 0), xfer(a, 2, 2, 2, 1), xfer(a, 3, 15, 2, 1),
                                    xfer(a, 4, 2, 99, 1)};
    for (const Transfer& t : bad) {
        BOOST_TEST((apply(s, t) == aborted(t.txid, AbortReason::bad_request)));
        BOOST_TEST((s.lookup(t.txid) == aborted(t.txid, AbortReason::bad_request)));
    }
    BOOST_TEST(all_balances(s) == before);
    BOOST_TEST(s.applied_index() == LogIndex{2 + bad.size()});
}

// ---- retries and the dedup window

BOOST_AUTO_TEST_CASE(a_retry_returns_the_first_result_after_balances_changed) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    const Transfer big = xfer(a, 1, 3, 4, 15);
    BOOST_TEST((apply(s, big) == aborted(big.txid, AbortReason::insufficient_funds)));
    BOOST_TEST((apply(s, xfer(a, 2, 5, 3, 10)) == committed(TxnId{a, 2})));  // now item 3 could pay
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, big) == aborted(big.txid, AbortReason::insufficient_funds)));
    BOOST_TEST(all_balances(s) == before);
}

BOOST_AUTO_TEST_CASE(a_retry_of_a_committed_transfer_does_not_move_money_again) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    const Transfer t = xfer(a, 1, 3, 4, 2);
    apply(s, t);
    BOOST_TEST((apply(s, t) == committed(t.txid)));
    BOOST_TEST(s.balance(ItemId{3}) == 8);
    BOOST_TEST(s.balance(ItemId{4}) == 12);
    BOOST_TEST(s.applied_index() == LogIndex{4});
}

BOOST_AUTO_TEST_CASE(lookup_knows_nothing_of_txids_never_applied_or_unknown_sessions) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    BOOST_TEST(!s.lookup(TxnId{a, 1}).has_value());
    apply(s, xfer(a, 5, 3, 4, 2));
    BOOST_TEST(!s.lookup(TxnId{a, 4}).has_value());
    BOOST_TEST(!s.lookup(TxnId{a, 6}).has_value());
    BOOST_TEST(!s.lookup(TxnId{a + 1, 5}).has_value());
    BOOST_TEST(!s.lookup(TxnId{session_id(ShardId{2}, LogIndex{2}), 5}).has_value());
}

BOOST_AUTO_TEST_CASE(seqs_below_the_dedup_window_answer_expired) {
    ShardState s = created(genesis(3));
    const std::uint64_t a = open_session(s);
    for (std::uint64_t seq = 1; seq <= 5; ++seq) apply(s, xfer(a, seq, 1, 2, 1));
    BOOST_TEST((s.lookup(TxnId{a, 1}) == aborted(TxnId{a, 1}, AbortReason::expired)));
    BOOST_TEST((s.lookup(TxnId{a, 2}) == aborted(TxnId{a, 2}, AbortReason::expired)));
    for (std::uint64_t seq = 3; seq <= 5; ++seq) BOOST_TEST((s.lookup(TxnId{a, seq}) == committed(TxnId{a, seq})));
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, xfer(a, 1, 1, 2, 1)) == aborted(TxnId{a, 1}, AbortReason::expired)));
    BOOST_TEST(all_balances(s) == before);
}

BOOST_AUTO_TEST_CASE(a_never_applied_seq_below_the_window_is_not_applied) {
    ShardState s = created(genesis(2));
    const std::uint64_t a = open_session(s);
    for (std::uint64_t seq : {10, 11, 12}) apply(s, xfer(a, seq, 1, 2, 1));
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, xfer(a, 3, 1, 2, 1)) == aborted(TxnId{a, 3}, AbortReason::expired)));
    BOOST_TEST(all_balances(s) == before);
}

BOOST_AUTO_TEST_CASE(an_out_of_order_seq_inside_the_window_applies_once) {
    ShardState s = created(genesis(3));
    const std::uint64_t a = open_session(s);
    apply(s, xfer(a, 1, 1, 2, 1));
    apply(s, xfer(a, 3, 1, 2, 1));
    BOOST_TEST((apply(s, xfer(a, 2, 1, 2, 1)) == committed(TxnId{a, 2})));
    BOOST_TEST((apply(s, xfer(a, 2, 1, 2, 1)) == committed(TxnId{a, 2})));
    BOOST_TEST(s.balance(ItemId{1}) == kInitial - 3);
    // The window is full now; a fourth seq pushes out the lowest.
    apply(s, xfer(a, 4, 1, 2, 1));
    BOOST_TEST((s.lookup(TxnId{a, 1}) == aborted(TxnId{a, 1}, AbortReason::expired)));
    BOOST_TEST((s.lookup(TxnId{a, 2}) == committed(TxnId{a, 2})));
}

BOOST_AUTO_TEST_CASE(a_late_seq_below_a_full_window_applies_once_then_expires) {
    // Seq 3 was never applied, so it may apply; its result is the lowest and
    // cannot be kept, so a retry must be told `expired`, not applied again.
    ShardState s = created(genesis(2));
    const std::uint64_t a = open_session(s);
    apply(s, xfer(a, 5, 1, 2, 1));
    apply(s, xfer(a, 6, 1, 2, 1));
    BOOST_TEST((apply(s, xfer(a, 3, 1, 2, 1)) == committed(TxnId{a, 3})));
    BOOST_TEST((apply(s, xfer(a, 3, 1, 2, 1)) == aborted(TxnId{a, 3}, AbortReason::expired)));
    BOOST_TEST(s.balance(ItemId{1}) == kInitial - 3);
    BOOST_TEST((s.lookup(TxnId{a, 5}) == committed(TxnId{a, 5})));
}

BOOST_AUTO_TEST_CASE(windows_are_kept_per_session) {
    ShardState s = created(genesis(1));
    const std::uint64_t a = open_session(s);
    const std::uint64_t b = open_session(s);
    apply(s, xfer(a, 1, 1, 2, 1));
    apply(s, xfer(b, 1, 1, 2, 1));
    apply(s, xfer(b, 2, 1, 2, 1));
    BOOST_TEST((s.lookup(TxnId{a, 1}) == committed(TxnId{a, 1})));
    BOOST_TEST((s.lookup(TxnId{b, 1}) == aborted(TxnId{b, 1}, AbortReason::expired)));
}

// ---- random logs

BOOST_AUTO_TEST_CASE(a_long_random_log_conserves_money_and_applies_each_txid_once) {
    // The table holds every session, so nothing is evicted.
    const std::uint64_t seed = 0x5eed0001;
    BOOST_TEST_CONTEXT("seed 0x" << std::hex << seed) {
        const Tally tally =
            check_against_model(RandomLog(seed, {.entries = 20000, .sessions = 6, .hot = 6}).write(genesis(16, 6)));
        BOOST_TEST(tally.evicted == 0U);
        BOOST_TEST(tally.applied > 1000U);
        BOOST_TEST(tally.repeated > 100U);
        BOOST_TEST(tally.never_opened > 0U);
    }
}

BOOST_AUTO_TEST_CASE(sessions_beyond_the_table_never_let_a_txid_apply_twice) {
    // Far more sessions than the table holds, retries of any age: every
    // answer to a txid that applied is its first result, `expired` or
    // `session_expired`, and the model's balances match at every entry.
    for (std::uint64_t seed : {0x5eed0005, 0x5eed0006, 0x5eed0007}) {
        BOOST_TEST_CONTEXT("seed 0x" << std::hex << seed) {
            const Tally tally = check_against_model(
                RandomLog(seed, {.entries = 10000, .sessions = 300, .hot = 10}).write(genesis(6, 8)));
            BOOST_TEST(tally.applied > 1000U);
            BOOST_TEST(tally.repeated > 100U);
            BOOST_TEST(tally.expired > 10U);
            BOOST_TEST(tally.evicted > 100U);
            BOOST_TEST(tally.forgotten > 100U);
        }
    }
}

// ---- snapshots

BOOST_AUTO_TEST_CASE(the_snapshot_layout_is_the_documented_one) {
    const std::vector<std::uint8_t> bytes = busy_state().snapshot();
    BOOST_REQUIRE(bytes.size() == kBusySize);
    BOOST_TEST(bytes[0] == 1);  // little endian
    BOOST_TEST(get_u64(bytes, kShardAt) == 1U);
    BOOST_TEST(get_u64(bytes, kIndexAt) == 10U);
    BOOST_TEST(bytes[kCreatedAt] == 1);
    BOOST_TEST(get_u64(bytes, kRangeCountAt) == 2U);
    BOOST_TEST(get_u64(bytes, kSecondRangeLastAt) == 30U);
    BOOST_TEST(get_u64(bytes, kFirstBalanceCountAt) == 10U);
    BOOST_TEST(get_u64(bytes, kFirstBalanceAt) == static_cast<std::uint64_t>(kInitial - 5));
    BOOST_TEST(get_u64(bytes, kSessionCountAt) == 2U);
    BOOST_TEST(get_u64(bytes, kBusyBAt) == kBusyB);
    BOOST_TEST(get_u64(bytes, kBusyBAt + kLastUsed) == 7U);
    BOOST_TEST(get_u64(bytes, kBusyBAt + kFloor) == 2U);
    BOOST_TEST(get_u64(bytes, kBusyBAt + kResultCount) == 2U);
    BOOST_TEST(get_u64(bytes, kBusyCAt) == kBusyC);
    BOOST_TEST(created().snapshot().size() == kCreatedSize);
}

BOOST_AUTO_TEST_CASE(snapshot_then_restore_then_snapshot_is_byte_identical) {
    const ShardState s = busy_state();
    const std::vector<std::uint8_t> bytes = s.snapshot();
    const ShardState restored = metered_restore(kShard, bytes);
    BOOST_TEST((restored.snapshot() == bytes));
    BOOST_TEST((restored.genesis() == genesis(2, 2)));
    BOOST_TEST(restored.applied_index() == LogIndex{10});
    BOOST_TEST(restored.applied_epoch() == Epoch{3});
    BOOST_TEST(restored.sessions() == 2U);
    BOOST_TEST(all_balances(restored) == all_balances(s));
    BOOST_TEST((restored.lookup(TxnId{kBusyB, 1}) == aborted(TxnId{kBusyB, 1}, AbortReason::expired)));
    BOOST_TEST((restored.lookup(TxnId{kBusyB, 2}) == aborted(TxnId{kBusyB, 2}, AbortReason::insufficient_funds)));
    BOOST_TEST((restored.lookup(TxnId{kBusyC, 1}) == committed(TxnId{kBusyC, 1})));
    BOOST_TEST(!restored.lookup(TxnId{kBusyA, 1}).has_value());  // evicted
}

BOOST_AUTO_TEST_CASE(a_snapshot_taken_before_genesis_restores_an_empty_state) {
    ShardState s(kShard);
    step(s, Noop{});
    step(s, OpenSession{});
    const std::vector<std::uint8_t> bytes = s.snapshot();
    ShardState restored = metered_restore(kShard, bytes);
    BOOST_TEST(!restored.created());
    BOOST_TEST(restored.applied_index() == LogIndex{2});
    BOOST_TEST((restored.snapshot() == bytes));
    step(restored, genesis());
    BOOST_TEST(restored.total() == 20 * kInitial);
}

BOOST_AUTO_TEST_CASE(restore_then_the_remaining_entries_equals_a_full_replay) {
    // Small limits, so expiry and eviction happen on both sides of the cut.
    const std::uint64_t seed = 0x5eed0002;
    const std::vector<LogEntry> log = RandomLog(seed, {.entries = 3000, .sessions = 60, .hot = 4}).write(genesis(4, 3));
    const std::span<const LogEntry> all(log);
    const std::vector<std::uint8_t> full = replay(all).snapshot();
    for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{777}, std::size_t{2999},
                            log.size()}) {
        BOOST_TEST_CONTEXT("seed 0x" << std::hex << seed << std::dec << " cut " << cut) {
            ShardState s = metered_restore(kShard, replay(all.first(cut)).snapshot());
            for (const LogEntry& e : all.subspan(cut)) s.apply(e);
            BOOST_TEST((s.snapshot() == full));
        }
    }
}

BOOST_AUTO_TEST_CASE(a_restored_replica_evicts_the_same_session) {
    ShardState s = created(genesis(64, 2));
    const std::uint64_t a = open_session(s);
    const std::uint64_t b = open_session(s);
    apply(s, xfer(b, 1, 1, 2, 1));
    apply(s, xfer(a, 1, 1, 2, 1));
    ShardState restored = metered_restore(kShard, s.snapshot());
    open_session(s);
    open_session(restored);
    BOOST_TEST(!restored.lookup(TxnId{b, 1}).has_value());
    BOOST_TEST((restored.lookup(TxnId{a, 1}) == committed(TxnId{a, 1})));
    BOOST_TEST((apply(restored, xfer(b, 2, 1, 2, 1)) == aborted(TxnId{b, 2}, AbortReason::session_expired)));
    apply(s, xfer(b, 2, 1, 2, 1));
    BOOST_TEST((restored.snapshot() == s.snapshot()));
}

BOOST_AUTO_TEST_CASE(restore_rejects_random_garbage) {
    // Half the inputs start with a valid header, so the garbage reaches the
    // Genesis, the balances and the sessions.
    rl::Rng rng(0x5eed0003);
    const std::vector<std::uint8_t> valid = created().snapshot();
    const std::vector<std::uint8_t> header(valid.begin(), valid.begin() + kCreatedAt + 1);
    for (int trial = 0; trial < 400; ++trial) {
        std::vector<std::uint8_t> bytes = trial % 2 == 0 ? header : std::vector<std::uint8_t>{};
        const std::uint64_t extra = rl::uniform(rng, 0, 300);
        for (std::uint64_t i = 0; i < extra; ++i) bytes.push_back(static_cast<std::uint8_t>(rng()));
        BOOST_TEST_CONTEXT("trial " << trial) {
            BOOST_CHECK_THROW(metered_restore(kShard, bytes), std::runtime_error);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_snapshot_with_one_byte_changed_is_rejected_or_restores_to_the_same_bytes) {
    const std::vector<std::uint8_t> good = busy_state().snapshot();
    for (std::size_t at = 0; at < good.size(); ++at) {
        for (std::uint8_t flip : {0x01, 0x80, 0xff}) {
            std::vector<std::uint8_t> bytes = good;
            bytes[at] ^= flip;
            BOOST_TEST_CONTEXT("byte " << at << " xor " << int{flip}) {
                try {
                    BOOST_TEST((metered_restore(kShard, bytes).snapshot() == bytes));
                } catch (const std::runtime_error&) {
                    // rejected: fine
                }
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(restore_rejects_every_truncation) {
    for (const std::vector<std::uint8_t>& bytes : {busy_state().snapshot(), ShardState(kShard).snapshot()}) {
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            BOOST_TEST_CONTEXT("first " << n << " of " << bytes.size() << " bytes") {
                BOOST_CHECK_THROW(metered_restore(kShard, std::span(bytes).first(n)), std::runtime_error);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(restore_rejects_trailing_bytes) {
    for (std::vector<std::uint8_t> bytes : {busy_state().snapshot(), ShardState(kShard).snapshot()}) {
        bytes.push_back(0);
        check_restore_fails(bytes, "1 bytes follow its end");
    }
    std::vector<std::uint8_t> uncreated = created().snapshot();
    uncreated[kCreatedAt] = 0;
    check_restore_fails(uncreated, std::to_string(kCreatedSize - kCreatedAt - 1) + " bytes follow its end");
}

BOOST_AUTO_TEST_CASE(restore_rejects_another_format) {
    std::vector<std::uint8_t> bytes = created().snapshot();
    for (std::uint32_t format : {2U, 4U}) {
        put_u32(bytes, kFormatAt, format);
        check_restore_fails(bytes, "format " + std::to_string(format) + ", expected 3");
    }
}

BOOST_AUTO_TEST_CASE(restore_rejects_a_snapshot_of_another_shard) {
    const std::vector<std::uint8_t> bytes = created().snapshot();
    check_restore_fails(bytes, "it was taken of shard 1", ShardId{2});
    check_restore_fails(with_u64(bytes, kShardAt, 2), "it was taken of shard 2");
    check_restore_fails(with_u64(bytes, kGenesisShardAt, 2), "its Genesis names shard 2");
}

BOOST_AUTO_TEST_CASE(restore_rejects_an_invalid_genesis) {
    const std::vector<std::uint8_t> bytes = created().snapshot();
    check_restore_fails(with_u64(bytes, kInitialBalanceAt, static_cast<std::uint64_t>(std::int64_t{-1})),
                        "its Genesis is invalid: negative initial balance");
    std::vector<std::uint8_t> no_sessions = bytes;
    put_u32(no_sessions, kSessionsMaxAt, 0);
    check_restore_fails(no_sessions, "its Genesis is invalid: dedup_window and sessions_max must be at least 1");
    std::vector<std::uint8_t> bad_flag = bytes;
    bad_flag[kCreatedAt] = 2;
    check_restore_fails(bad_flag, "bad created flag");
}

BOOST_AUTO_TEST_CASE(restore_rejects_lying_sizes_without_allocating_them) {
    const std::uint64_t huge = std::uint64_t{1} << 60;
    const std::vector<std::uint8_t> bytes = created().snapshot();
    for (std::size_t at : {kRangeCountAt, kFirstBalanceCountAt, kSessionCountAt}) {
        BOOST_TEST_CONTEXT("size at " << at) { check_restore_fails(with_u64(bytes, at, huge), "truncated or corrupt"); }
    }
    // A Genesis range of 2^60 items: no shard can be that large.
    check_restore_fails(with_u64(bytes, kSecondRangeLastAt, huge), "its Genesis is invalid: more than 8388608 items");
    // A range within the bound whose balances the bytes cannot hold.
    check_restore_fails(with_u64(bytes, kSecondRangeLastAt, 1000), "it holds 10 balances for items 21-1000");
    const std::vector<std::uint8_t> busy = busy_state().snapshot();
    check_restore_fails(with_u64(busy, kBusyBAt + kResultCount, huge), "truncated or corrupt");
    // Counts the bytes could hold, beyond the snapshot's own limits.
    check_restore_fails(with_u64(busy, kSessionCountAt, 40), "it holds 40 sessions, more than its sessions_max 2");
    check_restore_fails(with_u64(busy, kBusyBAt + kResultCount, 3),
                        "session " + std::to_string(kBusyB) + " holds 3 results, more than its dedup_window 2");
}

BOOST_AUTO_TEST_CASE(restore_rejects_balances_that_disagree_with_its_genesis) {
    check_restore_fails(with_u64(created().snapshot(), kFirstBalanceCountAt, 9), "it holds 9 balances for items 1-10");
}

BOOST_AUTO_TEST_CASE(restore_rejects_a_negative_balance) {
    const std::vector<std::uint8_t> bytes = created().snapshot();
    const auto minus_one = static_cast<std::uint64_t>(std::int64_t{-1});
    check_restore_fails(with_u64(bytes, kFirstBalanceAt, minus_one), "item 1 has a negative balance");
    check_restore_fails(with_u64(bytes, kSecondRangeFirstBalanceAt, minus_one), "item 21 has a negative balance");
}

BOOST_AUTO_TEST_CASE(restore_rejects_an_inconsistent_session_table) {
    const std::vector<std::uint8_t> good = busy_state().snapshot();
    const std::string b = "session " + std::to_string(kBusyB);
    const std::string c = "session " + std::to_string(kBusyC);
    check_restore_fails(with_u64(good, kBusyCAt, kBusyB), b + " is out of ascending order");
    const std::uint64_t foreign = session_id(ShardId{2}, LogIndex{8});
    check_restore_fails(with_u64(good, kBusyCAt, foreign), std::to_string(foreign) + " belongs to another shard");
    // Used after the snapshot's index, before the entry that opened it, at
    // the index another session holds, or opened at index 0.
    check_restore_fails(with_u64(good, kBusyCAt + kLastUsed, 11), c + " has an impossible last used index 11");
    check_restore_fails(with_u64(good, kBusyCAt + kLastUsed, 7), c + " has an impossible last used index 7");
    check_restore_fails(with_u64(good, kBusyBAt + kLastUsed, 9), c + " has an impossible last used index 9");
    const std::uint64_t at_zero = session_id(kShard, LogIndex{0});
    check_restore_fails(with_u64(good, kBusyBAt, at_zero),
                        "session " + std::to_string(at_zero) + " has an impossible last used index 7");
    // B's seqs are 2 and 3 above floor 2.
    check_restore_fails(with_u64(good, kBusyBAt + kResults + kResultBytes, 2), b + " has seqs out of order");
    check_restore_fails(with_u64(good, kBusyBAt + kFloor, 3), b + " has seqs out of order or below its floor");
    std::vector<std::uint8_t> bad_reason = good;
    bad_reason[kBusySessionsEnd - 1] = 9;
    check_restore_fails(bad_reason, c + " seq 1 has an invalid result");
    std::vector<std::uint8_t> stored_expired = good;  // `expired` is an answer, never a stored result
    stored_expired[kBusySessionsEnd - 2] = static_cast<std::uint8_t>(Outcome::aborted);
    stored_expired[kBusySessionsEnd - 1] = static_cast<std::uint8_t>(AbortReason::expired);
    check_restore_fails(stored_expired, c + " seq 1 has an invalid result");
}

BOOST_AUTO_TEST_CASE(restore_rejects_more_sessions_or_results_than_its_own_limits) {
    const std::vector<std::uint8_t> good = busy_state().snapshot();  // 2 sessions, B with 2 results
    std::vector<std::uint8_t> one_session = good;
    put_u32(one_session, kSessionsMaxAt, 1);
    check_restore_fails(one_session, "it holds 2 sessions, more than its sessions_max 1");
    std::vector<std::uint8_t> one_result = good;
    put_u32(one_result, kDedupWindowAt, 1);
    check_restore_fails(one_result,
                        "session " + std::to_string(kBusyB) + " holds 2 results, more than its dedup_window 1");
}

// A session id holds its entry's index in 48 bits. No log grows that long,
// but a snapshot can claim it: an OpenSession beyond it opens nothing, and
// apply() goes on rather than stop the process.
BOOST_AUTO_TEST_CASE(an_open_session_beyond_48_bits_of_index_opens_nothing) {
    const std::uint64_t last = (std::uint64_t{1} << 48) - 1;
    ShardState s = ShardState::restore(kShard, with_u64(created().snapshot(), kIndexAt, last));
    const std::size_t before = s.sessions();
    const auto applied = s.apply(LogEntry{LogIndex{last + 1}, s.applied_epoch(), rl::txn::OpenSession{}});
    BOOST_TEST(std::holds_alternative<std::monostate>(applied));
    BOOST_TEST(s.sessions() == before);
}

// ---- Reset (docs/design.md section 6.8)

ResetApplied reset(ShardState& s) {
    const Applied a = step(s, Reset{});
    BOOST_REQUIRE(std::holds_alternative<ResetApplied>(a));
    return std::get<ResetApplied>(a);
}

BOOST_AUTO_TEST_CASE(a_reset_puts_every_balance_back_to_the_genesis_balance) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    BOOST_TEST((apply(s, xfer(a, 1, 1, 2, 7)) == committed(TxnId{a, 1})));
    BOOST_TEST((apply(s, xfer(a, 2, 30, 21, 10)) == committed(TxnId{a, 2})));
    BOOST_TEST((reset(s) == ResetApplied{true, 0}));
    BOOST_TEST(all_balances(s) == std::vector<std::int64_t>(20, kInitial));
    BOOST_TEST(s.total() == 20 * kInitial);
    BOOST_TEST(s.applied_index() == LogIndex{5});
}

BOOST_AUTO_TEST_CASE(a_retry_after_a_reset_gets_its_first_result_and_moves_nothing) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    BOOST_TEST((apply(s, xfer(a, 1, 1, 2, 7)) == committed(TxnId{a, 1})));
    reset(s);
    // The session table outlives the reset: exactly-once still holds.
    BOOST_TEST(s.has_session(a));
    BOOST_TEST((apply(s, xfer(a, 1, 1, 2, 7)) == committed(TxnId{a, 1})));
    BOOST_TEST(s.balance(ItemId{1}) == kInitial);
    BOOST_TEST(s.balance(ItemId{2}) == kInitial);
    // A new seq of the same session applies as usual.
    BOOST_TEST((apply(s, xfer(a, 2, 1, 2, 4)) == committed(TxnId{a, 2})));
    BOOST_TEST(s.balance(ItemId{2}) == kInitial + 4);
}

BOOST_AUTO_TEST_CASE(a_reset_before_genesis_changes_nothing) {
    ShardState s(kShard);
    BOOST_TEST((reset(s) == ResetApplied{false, 0}));
    BOOST_TEST(!s.created());
    BOOST_TEST(s.applied_index() == LogIndex{1});
}

BOOST_AUTO_TEST_CASE(a_state_after_a_reset_snapshots_and_restores_byte_identically) {
    ShardState s = created();
    const std::uint64_t a = open_session(s);
    apply(s, xfer(a, 1, 1, 2, 9));
    reset(s);
    const std::vector<std::uint8_t> bytes = s.snapshot();
    const ShardState restored = ShardState::restore(kShard, bytes);
    BOOST_TEST((restored.snapshot() == bytes));
    BOOST_TEST(all_balances(restored) == std::vector<std::int64_t>(20, kInitial));
    BOOST_TEST((restored.lookup(TxnId{a, 1}) == committed(TxnId{a, 1})));
    // Replicas that apply the same log hold the same bytes.
    ShardState twin = created();
    open_session(twin);
    apply(twin, xfer(a, 1, 1, 2, 9));
    reset(twin);
    BOOST_TEST((twin.snapshot() == bytes));
}

// ---- batched transfers (docs/design.md section 6.9)

namespace {

TransferBatch batch_of(std::uint64_t session, std::vector<BatchTransfer> each) { return TransferBatch{session, std::move(each)}; }

std::vector<ApplyResult> apply_batch(ShardState& s, const TransferBatch& b) {
    const Applied a = step(s, b);
    BOOST_REQUIRE(std::holds_alternative<BatchApplied>(a));
    return std::get<BatchApplied>(a).each;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_batch_entry_applies_its_transfers_in_order_each_with_its_own_result) {
    ShardState s = created(two_items(10));
    const std::uint64_t a = open_session(s);
    // The second sees the first's debit (2 left on item 1); the third sees
    // the first's credit (18 on item 2).
    const TransferBatch b = batch_of(a, {{1, ItemId{1}, ItemId{2}, 8}, {2, ItemId{1}, ItemId{2}, 5},
                                         {3, ItemId{2}, ItemId{1}, 18}, {4, ItemId{1}, ItemId{2}, 20}});
    const std::vector<ApplyResult> want = {committed(TxnId{a, 1}), aborted(TxnId{a, 2}, AbortReason::insufficient_funds),
                                           committed(TxnId{a, 3}), committed(TxnId{a, 4})};
    BOOST_TEST((apply_batch(s, b) == want));
    BOOST_TEST(s.balance(ItemId{1}) == 0);
    BOOST_TEST(s.balance(ItemId{2}) == 20);
    BOOST_TEST(s.total() == 20);
    // Each result is the session table's, as for a transfer of its own.
    for (const ApplyResult& r : want) BOOST_TEST((s.lookup(r.txid) == r));
}

BOOST_AUTO_TEST_CASE(the_order_within_a_batch_decides_what_each_transfer_sees) {
    const auto run = [](bool reversed) {
        ShardState s = created(two_items(10));
        const std::uint64_t a = open_session(s);
        std::vector<BatchTransfer> each = {{1, ItemId{2}, ItemId{1}, 10}, {2, ItemId{1}, ItemId{2}, 15}};
        if (reversed) std::swap(each[0], each[1]);
        const auto results = apply_batch(s, batch_of(a, each));
        return std::make_pair(results, s.balance(ItemId{1}));
    };
    const auto [forward, one_forward] = run(false);
    BOOST_TEST((forward[1].outcome == Outcome::committed));  // item 1 held 20 once the first credited it
    BOOST_TEST(one_forward == 5);
    const auto [backward, one_backward] = run(true);
    BOOST_TEST((backward[0].outcome == Outcome::aborted));  // 15 from item 1's 10
    BOOST_TEST((backward[0].reason == AbortReason::insufficient_funds));
    BOOST_TEST(one_backward == 20);
}

BOOST_AUTO_TEST_CASE(a_retried_batch_gets_every_first_outcome_and_moves_nothing_again) {
    ShardState s = created(two_items(10));
    const std::uint64_t a = open_session(s);
    // seq 2 was applied on its own before the batch: the batch finds its result.
    const ApplyResult single = apply(s, xfer(a, 2, 1, 2, 3));
    const TransferBatch b = batch_of(a, {{1, ItemId{1}, ItemId{2}, 4}, {2, ItemId{1}, ItemId{2}, 3},
                                         {3, ItemId{1}, ItemId{2}, 100}, {4, ItemId{2}, ItemId{1}, 1}});
    const auto first = apply_batch(s, b);
    BOOST_TEST((first[1] == single));
    BOOST_TEST((first[2] == aborted(TxnId{a, 3}, AbortReason::insufficient_funds)));
    const auto balances = std::make_pair(s.balance(ItemId{1}), s.balance(ItemId{2}));
    BOOST_TEST(balances.first == 10 - 3 - 4 + 1);
    // The same batch logged again (a client's retry), and once more as
    // single transfers: the same outcomes, no money moves.
    BOOST_TEST((apply_batch(s, b) == first));
    for (std::size_t i = 0; i < b.each.size(); ++i) {
        BOOST_TEST((apply(s, xfer(a, b.each[i].seq, b.each[i].from.value, b.each[i].to.value, b.each[i].amount)) == first[i]));
    }
    BOOST_TEST((std::make_pair(s.balance(ItemId{1}), s.balance(ItemId{2})) == balances));
}

BOOST_AUTO_TEST_CASE(a_batch_as_large_as_the_dedup_window_is_remembered_whole) {
    constexpr std::uint32_t window = 8;
    ShardState s = created(genesis(window, 64));
    const std::uint64_t a = open_session(s);
    std::vector<BatchTransfer> each;
    for (std::uint64_t seq = 1; seq <= window; ++seq) each.push_back({seq, ItemId{1}, ItemId{2}, 1});
    const auto first = apply_batch(s, batch_of(a, each));
    for (const ApplyResult& r : first) BOOST_TEST((s.lookup(r.txid) == r));
    // The batch again with one transfer more than the window: every first
    // outcome, then the new one, which pushes the lowest seq out (expired).
    each.push_back({window + 1, ItemId{1}, ItemId{2}, 1});
    const auto again = apply_batch(s, batch_of(a, each));
    BOOST_TEST((std::vector<ApplyResult>(again.begin(), again.end() - 1) == first));
    BOOST_TEST((again.back() == committed(TxnId{a, window + 1})));
    BOOST_TEST((s.lookup(TxnId{a, 1}) == aborted(TxnId{a, 1}, AbortReason::expired)));
    BOOST_TEST(s.balance(ItemId{1}) == kInitial - window - 1);
}

BOOST_AUTO_TEST_CASE(a_batch_of_an_unknown_session_or_before_genesis_moves_nothing) {
    ShardState empty(kShard);
    const std::uint64_t a = session_id(kShard, LogIndex{2});
    for (const ApplyResult& r : apply_batch(empty, batch_of(a, {{1, ItemId{1}, ItemId{2}, 1}}))) {
        BOOST_TEST((r == aborted(TxnId{a, 1}, AbortReason::bad_request)));
    }
    ShardState s = created();
    const auto before = all_balances(s);
    const auto got = apply_batch(s, batch_of(a, {{1, ItemId{1}, ItemId{2}, 1}, {2, ItemId{2}, ItemId{1}, 1}}));
    BOOST_TEST((got == std::vector<ApplyResult>{aborted(TxnId{a, 1}, AbortReason::session_expired),
                                                aborted(TxnId{a, 2}, AbortReason::session_expired)}));
    BOOST_TEST(all_balances(s) == before);
    // A bad transfer inside a batch aborts alone; the rest apply.
    const std::uint64_t b = open_session(s);
    const auto mixed = apply_batch(s, batch_of(b, {{1, ItemId{1}, ItemId{1}, 1}, {2, ItemId{1}, ItemId{15}, 1},
                                                   {3, ItemId{1}, ItemId{2}, 0}, {4, ItemId{1}, ItemId{2}, 2}}));
    BOOST_TEST((mixed[0].reason == AbortReason::bad_request));
    BOOST_TEST((mixed[1].reason == AbortReason::bad_request));
    BOOST_TEST((mixed[2].reason == AbortReason::bad_request));
    BOOST_TEST((mixed[3] == committed(TxnId{b, 4})));
}

BOOST_AUTO_TEST_CASE(replicas_replaying_a_log_with_batches_hold_identical_state) {
    ShardState s = created(genesis(64, 2));
    const std::uint64_t a = open_session(s);
    const std::uint64_t b = open_session(s);
    std::vector<LogEntry> log;
    const auto add = [&](Command c) {
        const Epoch epoch = std::max(s.applied_epoch(), Epoch{1});
        log.push_back(LogEntry{s.applied_index().next(), epoch, std::move(c)});
        return s.apply(log.back());
    };
    add(batch_of(a, {{1, ItemId{1}, ItemId{2}, 3}, {2, ItemId{21}, ItemId{1}, 4}}));
    add(xfer(b, 1, 2, 1, 1));
    add(batch_of(b, {{2, ItemId{1}, ItemId{30}, 9}, {3, ItemId{30}, ItemId{2}, 2}}));
    add(OpenSession{});  // evicts a: the batch's session was used before b's
    BOOST_TEST(!s.has_session(a));
    BOOST_TEST(s.has_session(b));
    ShardState r = created(genesis(64, 2));
    open_session(r);
    open_session(r);
    for (const LogEntry& e : log) r.apply(e);
    BOOST_TEST((r.snapshot() == s.snapshot()));
    const ShardState restored = ShardState::restore(kShard, s.snapshot());
    BOOST_TEST((restored.snapshot() == s.snapshot()));
}
