// The shard state machine (docs/design.md section 6): balances, edge checks,
// exactly-once dedup with its bounds, and snapshots. Each test applies a
// small hand-made log to a fresh ShardState; the randomized ones print their
// seed and replay exactly from it.
#define BOOST_TEST_MODULE state_machine
#include <boost/test/unit_test.hpp>

#include "config/random.hpp"
#include "txn/state_machine.hpp"

#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

using rl::Epoch;
using rl::ItemId;
using rl::LogIndex;
using rl::NodeId;
using rl::ShardId;
using rl::txn::AbortReason;
using rl::txn::ApplyResult;
using rl::txn::DedupLimits;
using rl::txn::EdgeErrorCode;
using rl::txn::LogEntry;
using rl::txn::Noop;
using rl::txn::Outcome;
using rl::txn::ShardState;
using rl::txn::Transfer;
using rl::txn::TxnId;

namespace {

constexpr std::int64_t kInitial = 10;

// Two ranges with a gap (11-20 belongs to another shard), 20 items in all.
rl::config::ShardConfig shard_config() {
    return {ShardId{1}, {{ItemId{1}, ItemId{10}}, {ItemId{21}, ItemId{30}}}, {NodeId{1}}};
}

Transfer xfer(std::uint64_t client, std::uint64_t seq, std::uint64_t from, std::uint64_t to, std::int64_t amount) {
    return Transfer{TxnId{client, seq}, ItemId{from}, ItemId{to}, amount};
}

LogEntry next_entry(const ShardState& s, rl::txn::Command command) {
    return LogEntry{s.applied_index().next(), Epoch{1}, command};
}

// Appends `t` as the next log entry and returns its result.
ApplyResult apply(ShardState& s, const Transfer& t) {
    const std::optional<ApplyResult> r = s.apply(next_entry(s, t));
    BOOST_REQUIRE(r.has_value());
    return *r;
}

ApplyResult committed(TxnId id) { return {Outcome::committed, AbortReason::none, id}; }
ApplyResult aborted(TxnId id, AbortReason reason) { return {Outcome::aborted, reason, id}; }

std::vector<std::int64_t> all_balances(const ShardState& s) {
    std::vector<std::int64_t> out;
    for (const auto& r : shard_config().items) {
        for (std::uint64_t i = r.first.value; i <= r.last.value; ++i) out.push_back(s.balance(ItemId{i}));
    }
    return out;
}

// Where all_balances() puts an item of shard_config().
std::size_t slot(ItemId item) { return item.value <= 10 ? item.value - 1 : item.value - 21 + 10; }

// A log mixing valid, invalid, retried, out-of-order and stale transfers with
// Noops and epoch changes. Seqs advance with gaps; a gap seq used later is
// out of order (applied if still in the window, expired otherwise).
std::vector<LogEntry> random_log(std::uint64_t seed, std::size_t count, std::uint64_t clients) {
    std::mt19937_64 rng(seed);
    auto pick = [&](std::uint64_t lo, std::uint64_t hi) {
        return rl::uniform(rng, lo, hi);
    };
    std::vector<std::uint64_t> next_seq(clients + 1, 1);
    std::vector<std::vector<std::uint64_t>> skipped(clients + 1);
    auto seq_of = [&](std::uint64_t client) {
        std::vector<std::uint64_t>& gaps = skipped[client];
        if (!gaps.empty() && pick(0, 9) == 0) {
            const std::uint64_t late = gaps.back();
            gaps.pop_back();
            return late;
        }
        const std::uint64_t seq = next_seq[client];
        next_seq[client] += pick(1, 3);
        for (std::uint64_t gap = seq + 1; gap < next_seq[client]; ++gap) gaps.push_back(gap);
        return seq;
    };
    // Mostly items of the shard (1-10, 21-30), sometimes items of no shard.
    auto item = [&] {
        const std::uint64_t n = pick(0, 21);
        return n < 10 ? n + 1 : n < 20 ? n + 11 : n * 5;
    };
    std::vector<Transfer> sent;
    std::vector<LogEntry> log;
    Epoch epoch{1};
    for (std::size_t i = 1; i <= count; ++i) {
        if (pick(0, 99) < 2) epoch = epoch.next();
        const std::uint64_t dice = pick(0, 99);
        rl::txn::Command command = Noop{};
        if (dice >= 8 && dice < 25 && !sent.empty()) {
            command = sent[pick(0, sent.size() - 1)];  // a retry: same txid and content
        } else if (dice >= 8) {
            const std::uint64_t client = pick(1, clients);
            const auto amount = static_cast<std::int64_t>(pick(0, 12)) - 1;  // -1 and 0 are bad
            sent.push_back(xfer(client, seq_of(client), item(), item(), amount));
            command = sent.back();
        }
        log.push_back(LogEntry{LogIndex{i}, epoch, command});
    }
    return log;
}

ShardState replay(std::span<const LogEntry> log, DedupLimits limits) {
    ShardState s(shard_config(), kInitial, limits);
    for (const LogEntry& e : log) s.apply(e);
    return s;
}

// A state with committed and aborted results, a raised floor and an evicted client.
ShardState busy_state() {
    ShardState s(shard_config(), kInitial, DedupLimits{.dedup_window = 2, .dedup_clients_max = 2});
    apply(s, xfer(9, 1, 30, 3, 4));
    apply(s, xfer(7, 1, 1, 2, 5));
    apply(s, xfer(7, 2, 1, 2, 50));
    apply(s, xfer(7, 3, 21, 30, 1));
    apply(s, xfer(8, 1, 3, 4, 1));
    s.apply(LogEntry{LogIndex{6}, Epoch{3}, Noop{}});
    return s;
}

void check_restore_fails(std::span<const std::uint8_t> bytes, const std::string& expected,
                         DedupLimits limits = {}) {
    try {
        ShardState::restore(shard_config(), bytes, limits);
        BOOST_ERROR("restore accepted bad bytes");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find("snapshot of shard 1 rejected") != std::string::npos, what);
        BOOST_TEST(what.find(expected) != std::string::npos, what);
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_item_starts_at_the_initial_balance) {
    const ShardState s(shard_config(), kInitial);
    for (std::int64_t b : all_balances(s)) BOOST_TEST(b == kInitial);
    BOOST_TEST(s.total() == 20 * kInitial);
    BOOST_TEST(s.applied_index() == LogIndex{0});
    BOOST_TEST(s.applied_epoch() == Epoch{0});
}

BOOST_AUTO_TEST_CASE(a_committed_transfer_moves_money) {
    ShardState s(shard_config(), kInitial);
    BOOST_TEST((apply(s, xfer(1, 1, 3, 25, 7)) == committed(TxnId{1, 1})));
    BOOST_TEST(s.balance(ItemId{3}) == 3);
    BOOST_TEST(s.balance(ItemId{25}) == 17);
    BOOST_TEST(s.applied_index() == LogIndex{1});
    BOOST_TEST((s.lookup(TxnId{1, 1}) == committed(TxnId{1, 1})));
}

BOOST_AUTO_TEST_CASE(a_transfer_of_the_whole_balance_commits) {
    ShardState s(shard_config(), kInitial);
    BOOST_TEST((apply(s, xfer(1, 1, 3, 4, kInitial)) == committed(TxnId{1, 1})));
    BOOST_TEST(s.balance(ItemId{3}) == 0);
}

BOOST_AUTO_TEST_CASE(insufficient_funds_aborts_and_changes_no_balance) {
    ShardState s(shard_config(), kInitial);
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, xfer(1, 1, 3, 4, kInitial + 1)) == aborted(TxnId{1, 1}, AbortReason::insufficient_funds)));
    BOOST_TEST(all_balances(s) == before);
    BOOST_TEST(s.applied_index() == LogIndex{1});
}

BOOST_AUTO_TEST_CASE(overflow_of_the_credited_balance_aborts) {
    const rl::config::ShardConfig two{ShardId{1}, {{ItemId{1}, ItemId{2}}}, {NodeId{1}}};
    constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
    ShardState s(two, kMax);
    BOOST_TEST((apply(s, xfer(1, 1, 1, 2, 1)) == aborted(TxnId{1, 1}, AbortReason::overflow)));
    BOOST_TEST(s.balance(ItemId{1}) == kMax);
    BOOST_TEST(s.balance(ItemId{2}) == kMax);
}

BOOST_AUTO_TEST_CASE(total_beyond_int64_throws_instead_of_wrapping) {
    const rl::config::ShardConfig two{ShardId{1}, {{ItemId{1}, ItemId{2}}}, {NodeId{1}}};
    const ShardState s(two, std::numeric_limits<std::int64_t>::max());
    BOOST_CHECK_THROW(s.total(), std::overflow_error);
}

BOOST_AUTO_TEST_CASE(validate_accepts_a_transfer_across_the_shards_ranges) {
    const ShardState s(shard_config(), kInitial);
    BOOST_TEST(!s.validate(xfer(1, 1, 10, 21, 1)).has_value());
    BOOST_TEST(!s.validate(xfer(1, 1, 30, 1, 1000)).has_value());  // funds are apply's business
}

BOOST_AUTO_TEST_CASE(validate_rejects_a_non_positive_amount_as_bad_request) {
    const ShardState s(shard_config(), kInitial);
    for (std::int64_t amount : {std::int64_t{0}, std::int64_t{-3}, std::numeric_limits<std::int64_t>::min()}) {
        const auto e = s.validate(xfer(1, 1, 1, 2, amount));
        BOOST_REQUIRE(e.has_value());
        BOOST_TEST((e->code == EdgeErrorCode::bad_request));
        BOOST_TEST(e->message == "transfer amount must be positive, got " + std::to_string(amount));
    }
}

BOOST_AUTO_TEST_CASE(validate_rejects_a_transfer_to_the_same_item_as_bad_request) {
    const ShardState s(shard_config(), kInitial);
    const auto e = s.validate(xfer(1, 1, 4, 4, 1));
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST((e->code == EdgeErrorCode::bad_request));
    BOOST_TEST(e->message == "cannot transfer from item 4 to itself");
    BOOST_TEST(std::string(rl::txn::to_string(e->code)) == "bad_request");
}

BOOST_AUTO_TEST_CASE(validate_rejects_a_source_outside_the_shard_as_unknown_item) {
    const ShardState s(shard_config(), kInitial);
    for (std::uint64_t item : {0, 11, 20, 31}) {  // below, in the gap, above
        const auto e = s.validate(xfer(1, 1, item, 5, 1));
        BOOST_REQUIRE(e.has_value());
        BOOST_TEST((e->code == EdgeErrorCode::unknown_item));
        BOOST_TEST(e->message == "item " + std::to_string(item) + " is not in shard 1");
    }
}

BOOST_AUTO_TEST_CASE(validate_rejects_a_destination_outside_the_shard_as_unknown_item) {
    const ShardState s(shard_config(), kInitial);
    const auto e = s.validate(xfer(1, 1, 5, 15, 1));
    BOOST_REQUIRE(e.has_value());
    BOOST_TEST((e->code == EdgeErrorCode::unknown_item));
    BOOST_TEST(e->message == "item 15 is not in shard 1 (cross-shard transfers are not supported yet)");
    BOOST_TEST(std::string(rl::txn::to_string(e->code)) == "unknown_item");
}

BOOST_AUTO_TEST_CASE(a_logged_transfer_that_fails_edge_checks_aborts_as_bad_request) {
    ShardState s(shard_config(), kInitial);
    const auto before = all_balances(s);
    const std::vector<Transfer> bad{xfer(1, 1, 1, 2, 0), xfer(1, 2, 2, 2, 1), xfer(1, 3, 15, 2, 1),
                                    xfer(1, 4, 2, 99, 1)};
    for (const Transfer& t : bad) {
        BOOST_TEST((apply(s, t) == aborted(t.txid, AbortReason::bad_request)));
        BOOST_TEST((s.lookup(t.txid) == aborted(t.txid, AbortReason::bad_request)));
    }
    BOOST_TEST(all_balances(s) == before);
    BOOST_TEST(s.applied_index() == LogIndex{bad.size()});
}

BOOST_AUTO_TEST_CASE(a_retry_returns_the_first_result_after_balances_changed) {
    ShardState s(shard_config(), kInitial);
    const Transfer big = xfer(1, 1, 3, 4, 15);
    BOOST_TEST((apply(s, big) == aborted(big.txid, AbortReason::insufficient_funds)));
    BOOST_TEST((apply(s, xfer(2, 1, 5, 3, 10)) == committed(TxnId{2, 1})));  // now item 3 could pay
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, big) == aborted(big.txid, AbortReason::insufficient_funds)));
    BOOST_TEST(all_balances(s) == before);
}

BOOST_AUTO_TEST_CASE(a_retry_of_a_committed_transfer_does_not_move_money_again) {
    ShardState s(shard_config(), kInitial);
    const Transfer t = xfer(1, 1, 3, 4, 2);
    apply(s, t);
    BOOST_TEST((apply(s, t) == committed(t.txid)));
    BOOST_TEST(s.balance(ItemId{3}) == 8);
    BOOST_TEST(s.balance(ItemId{4}) == 12);
    BOOST_TEST(s.applied_index() == LogIndex{2});
}

BOOST_AUTO_TEST_CASE(lookup_knows_nothing_of_txids_never_applied) {
    ShardState s(shard_config(), kInitial);
    BOOST_TEST(!s.lookup(TxnId{1, 1}).has_value());
    apply(s, xfer(1, 5, 3, 4, 2));
    BOOST_TEST(!s.lookup(TxnId{1, 4}).has_value());
    BOOST_TEST(!s.lookup(TxnId{1, 6}).has_value());
    BOOST_TEST(!s.lookup(TxnId{2, 5}).has_value());
}

BOOST_AUTO_TEST_CASE(seqs_below_the_dedup_window_answer_expired) {
    ShardState s(shard_config(), kInitial, DedupLimits{.dedup_window = 3});
    for (std::uint64_t seq = 1; seq <= 5; ++seq) apply(s, xfer(1, seq, 1, 2, 1));
    BOOST_TEST((s.lookup(TxnId{1, 1}) == aborted(TxnId{1, 1}, AbortReason::expired)));
    BOOST_TEST((s.lookup(TxnId{1, 2}) == aborted(TxnId{1, 2}, AbortReason::expired)));
    for (std::uint64_t seq = 3; seq <= 5; ++seq) BOOST_TEST((s.lookup(TxnId{1, seq}) == committed(TxnId{1, seq})));
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, xfer(1, 1, 1, 2, 1)) == aborted(TxnId{1, 1}, AbortReason::expired)));
    BOOST_TEST(all_balances(s) == before);
}

BOOST_AUTO_TEST_CASE(a_never_applied_seq_below_the_window_is_not_applied) {
    ShardState s(shard_config(), kInitial, DedupLimits{.dedup_window = 2});
    for (std::uint64_t seq : {10, 11, 12}) apply(s, xfer(1, seq, 1, 2, 1));
    const auto before = all_balances(s);
    BOOST_TEST((apply(s, xfer(1, 3, 1, 2, 1)) == aborted(TxnId{1, 3}, AbortReason::expired)));
    BOOST_TEST(all_balances(s) == before);
}

BOOST_AUTO_TEST_CASE(an_out_of_order_seq_inside_the_window_applies_once) {
    ShardState s(shard_config(), kInitial, DedupLimits{.dedup_window = 3});
    apply(s, xfer(1, 1, 1, 2, 1));
    apply(s, xfer(1, 3, 1, 2, 1));
    BOOST_TEST((apply(s, xfer(1, 2, 1, 2, 1)) == committed(TxnId{1, 2})));
    BOOST_TEST((apply(s, xfer(1, 2, 1, 2, 1)) == committed(TxnId{1, 2})));
    BOOST_TEST(s.balance(ItemId{1}) == kInitial - 3);
    // The window is full now; a fourth seq pushes out the lowest.
    apply(s, xfer(1, 4, 1, 2, 1));
    BOOST_TEST((s.lookup(TxnId{1, 1}) == aborted(TxnId{1, 1}, AbortReason::expired)));
    BOOST_TEST((s.lookup(TxnId{1, 2}) == committed(TxnId{1, 2})));
}

BOOST_AUTO_TEST_CASE(a_late_seq_below_a_full_window_applies_once_then_expires) {
    // Seq 3 was never applied, so it may apply; its result is the lowest and
    // cannot be kept, so a retry must be told `expired`, not applied again.
    ShardState s(shard_config(), kInitial, DedupLimits{.dedup_window = 2});
    apply(s, xfer(1, 5, 1, 2, 1));
    apply(s, xfer(1, 6, 1, 2, 1));
    BOOST_TEST((apply(s, xfer(1, 3, 1, 2, 1)) == committed(TxnId{1, 3})));
    BOOST_TEST((apply(s, xfer(1, 3, 1, 2, 1)) == aborted(TxnId{1, 3}, AbortReason::expired)));
    BOOST_TEST(s.balance(ItemId{1}) == kInitial - 3);
    BOOST_TEST((s.lookup(TxnId{1, 5}) == committed(TxnId{1, 5})));
}

BOOST_AUTO_TEST_CASE(the_client_applied_least_recently_is_evicted) {
    // Neither the smallest id (5) nor the first one seen (5) goes: 9 is the
    // client whose latest result has the oldest log index.
    ShardState s(shard_config(), kInitial, DedupLimits{.dedup_clients_max = 2});
    apply(s, xfer(5, 1, 1, 2, 1));
    apply(s, xfer(9, 1, 1, 2, 1));
    apply(s, xfer(5, 2, 1, 2, 1));
    apply(s, xfer(7, 1, 1, 2, 1));
    BOOST_TEST(!s.lookup(TxnId{9, 1}).has_value());
    BOOST_TEST((s.lookup(TxnId{5, 1}) == committed(TxnId{5, 1})));
    BOOST_TEST((s.lookup(TxnId{7, 1}) == committed(TxnId{7, 1})));
}

BOOST_AUTO_TEST_CASE(a_restored_replica_evicts_the_same_client) {
    const DedupLimits limits{.dedup_clients_max = 2};
    ShardState s(shard_config(), kInitial, limits);
    apply(s, xfer(5, 1, 1, 2, 1));
    apply(s, xfer(9, 1, 1, 2, 1));
    apply(s, xfer(5, 2, 1, 2, 1));
    ShardState restored = ShardState::restore(shard_config(), s.snapshot(), limits);
    apply(s, xfer(7, 1, 1, 2, 1));
    apply(restored, xfer(7, 1, 1, 2, 1));
    BOOST_TEST(!restored.lookup(TxnId{9, 1}).has_value());
    BOOST_TEST((restored.snapshot() == s.snapshot()));
}

BOOST_AUTO_TEST_CASE(a_noop_changes_only_the_applied_position) {
    ShardState s(shard_config(), kInitial);
    apply(s, xfer(1, 1, 1, 2, 1));
    const auto before = all_balances(s);
    BOOST_TEST(!s.apply(LogEntry{LogIndex{2}, Epoch{4}, Noop{}}).has_value());
    BOOST_TEST(s.applied_index() == LogIndex{2});
    BOOST_TEST(s.applied_epoch() == Epoch{4});
    BOOST_TEST(all_balances(s) == before);
    BOOST_TEST((s.lookup(TxnId{1, 1}) == committed(TxnId{1, 1})));
}

BOOST_AUTO_TEST_CASE(a_long_random_log_conserves_money_and_applies_each_txid_once) {
    const std::uint64_t seed = 0x5eed0001;
    BOOST_TEST_CONTEXT("seed " << seed) {
        // As many slots as clients, so no client is evicted and every retry
        // inside the window must get its first answer.
        ShardState s(shard_config(), kInitial, DedupLimits{.dedup_window = 16, .dedup_clients_max = 6});
        std::map<TxnId, ApplyResult> first;
        std::size_t hits = 0;
        for (const LogEntry& e : random_log(seed, 20000, 6)) {
            const auto before = all_balances(s);
            const std::optional<ApplyResult> r = s.apply(e);
            BOOST_REQUIRE(s.total() == 20 * kInitial);
            for (std::int64_t b : all_balances(s)) BOOST_REQUIRE(b >= 0);
            if (!r || r->reason == AbortReason::expired) continue;
            const auto [known, fresh] = first.emplace(r->txid, *r);
            if (!fresh) {
                ++hits;
                BOOST_REQUIRE((known->second == *r));
            }
            std::vector<std::int64_t> expected = before;
            if (fresh && r->outcome == Outcome::committed) {
                const Transfer& t = std::get<Transfer>(e.command);
                expected[slot(t.from)] -= t.amount;
                expected[slot(t.to)] += t.amount;
            }
            BOOST_REQUIRE(all_balances(s) == expected);
        }
        BOOST_TEST(hits > 100);
        BOOST_TEST(first.size() > 1000);
    }
}

BOOST_AUTO_TEST_CASE(snapshot_then_restore_then_snapshot_is_byte_identical) {
    const ShardState s = busy_state();
    const std::vector<std::uint8_t> bytes = s.snapshot();
    const ShardState restored =
        ShardState::restore(shard_config(), bytes, DedupLimits{.dedup_window = 2, .dedup_clients_max = 2});
    BOOST_TEST((restored.snapshot() == bytes));
    BOOST_TEST(restored.applied_index() == LogIndex{6});
    BOOST_TEST(restored.applied_epoch() == Epoch{3});
    BOOST_TEST(all_balances(restored) == all_balances(s));
    BOOST_TEST((restored.lookup(TxnId{7, 1}) == aborted(TxnId{7, 1}, AbortReason::expired)));
    BOOST_TEST((restored.lookup(TxnId{7, 2}) == aborted(TxnId{7, 2}, AbortReason::insufficient_funds)));
    BOOST_TEST(!restored.lookup(TxnId{9, 1}).has_value());  // evicted
}

BOOST_AUTO_TEST_CASE(restore_then_the_remaining_entries_equals_a_full_replay) {
    // Small limits, so expiry and eviction happen on both sides of the cut.
    const DedupLimits limits{.dedup_window = 4, .dedup_clients_max = 3};
    const std::uint64_t seed = 0x5eed0002;
    const std::vector<LogEntry> log = random_log(seed, 3000, 6);
    const std::vector<std::uint8_t> full = replay(log, limits).snapshot();
    for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{777}, std::size_t{2999}, log.size()}) {
        BOOST_TEST_CONTEXT("seed " << seed << " cut " << cut) {
            const std::span<const LogEntry> all(log);
            ShardState s = ShardState::restore(shard_config(), replay(all.first(cut), limits).snapshot(), limits);
            for (const LogEntry& e : all.subspan(cut)) s.apply(e);
            BOOST_TEST((s.snapshot() == full));
        }
    }
}

BOOST_AUTO_TEST_CASE(restore_rejects_random_garbage) {
    std::mt19937_64 rng(0x5eed0003);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<std::uint8_t> bytes(rng() % 200);
        for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
        BOOST_CHECK_THROW(ShardState::restore(shard_config(), bytes), std::runtime_error);
    }
}

BOOST_AUTO_TEST_CASE(restore_rejects_every_truncation) {
    const std::vector<std::uint8_t> bytes = busy_state().snapshot();
    const DedupLimits limits{.dedup_window = 2, .dedup_clients_max = 2};
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        BOOST_TEST_CONTEXT("first " << n << " of " << bytes.size() << " bytes") {
            BOOST_CHECK_THROW(ShardState::restore(shard_config(), std::span(bytes).first(n), limits),
                              std::runtime_error);
        }
    }
}

BOOST_AUTO_TEST_CASE(restore_rejects_trailing_bytes) {
    std::vector<std::uint8_t> bytes = ShardState(shard_config(), kInitial).snapshot();
    bytes.push_back(0);
    check_restore_fails(bytes, "1 bytes follow its end");
}

// Offsets in the layout state_machine.cpp documents: endianness byte, u32
// format, u64 shard, index, epoch; then the ranges' count, first range's
// first, last and balance count, then its balances.
constexpr std::size_t kShardOffset = 5;
constexpr std::size_t kRangeCountOffset = 29;
constexpr std::size_t kFirstBalancesCountOffset = 53;
constexpr std::size_t kFirstBalanceOffset = 61;

void put_u64(std::vector<std::uint8_t>& bytes, std::size_t at, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.at(at + i) = static_cast<std::uint8_t>(v >> (8 * i));  // little endian
}

BOOST_AUTO_TEST_CASE(restore_rejects_lying_sizes_without_allocating_them) {
    const std::vector<std::uint8_t> good = ShardState(shard_config(), kInitial).snapshot();
    for (std::size_t at : {kRangeCountOffset, kFirstBalancesCountOffset}) {
        std::vector<std::uint8_t> bytes = good;
        put_u64(bytes, at, std::uint64_t{1} << 60);
        BOOST_CHECK_THROW(ShardState::restore(shard_config(), bytes), std::runtime_error);
    }
    std::vector<std::uint8_t> clients = good;
    put_u64(clients, good.size() - 8, std::uint64_t{1} << 60);  // the empty dedup table's count is last
    check_restore_fails(clients, "truncated or corrupt");
}

BOOST_AUTO_TEST_CASE(restore_rejects_a_snapshot_of_other_items) {
    const std::vector<std::uint8_t> bytes = ShardState(shard_config(), kInitial).snapshot();
    rl::config::ShardConfig other = shard_config();
    other.items[1].last = ItemId{31};
    BOOST_CHECK_EXCEPTION(ShardState::restore(other, bytes), std::runtime_error, [](const std::runtime_error& e) {
        return std::string(e.what()) ==
               "snapshot of shard 1 rejected: it holds items 21-30 (10 balances) where the shard has 21-31";
    });
    std::vector<std::uint8_t> wrong_shard = bytes;
    put_u64(wrong_shard, kShardOffset, 2);
    check_restore_fails(wrong_shard, "it was taken of shard 2");
}

BOOST_AUTO_TEST_CASE(restore_rejects_a_negative_balance) {
    std::vector<std::uint8_t> bytes = ShardState(shard_config(), kInitial).snapshot();
    put_u64(bytes, kFirstBalanceOffset, static_cast<std::uint64_t>(std::int64_t{-1}));
    check_restore_fails(bytes, "item 1 has a negative balance");
}

BOOST_AUTO_TEST_CASE(restore_rejects_an_inconsistent_dedup_table) {
    // busy_state() ends with client 8: u64 id, last applied, floor, count,
    // then one result of u64 seq, u8 outcome, u8 reason.
    const std::vector<std::uint8_t> good = busy_state().snapshot();
    const DedupLimits limits{.dedup_window = 2, .dedup_clients_max = 2};
    const std::size_t client8 = good.size() - 42;
    std::vector<std::uint8_t> duplicate = good;
    put_u64(duplicate, client8, 7);
    check_restore_fails(duplicate, "dedup client 7 is out of ascending order", limits);
    std::vector<std::uint8_t> future = good;
    put_u64(future, client8 + 8, 7);  // after the snapshot's applied index 6
    check_restore_fails(future, "dedup client 8 has an impossible last applied index 7", limits);
    std::vector<std::uint8_t> bad_reason = good;
    bad_reason.back() = 9;
    check_restore_fails(bad_reason, "dedup client 8 seq 1 has an invalid result", limits);
}

BOOST_AUTO_TEST_CASE(restore_rejects_more_dedup_state_than_its_limits) {
    const std::vector<std::uint8_t> bytes = busy_state().snapshot();  // 2 clients, one with 2 results
    check_restore_fails(bytes, "it holds 2 dedup clients, more than dedup_clients_max 1",
                        DedupLimits{.dedup_window = 2, .dedup_clients_max = 1});
    check_restore_fails(bytes, "dedup client 7 holds 2 results, expected 1 to dedup_window 1",
                        DedupLimits{.dedup_window = 1});
}
