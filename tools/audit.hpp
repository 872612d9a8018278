// `rlcat audit` (docs/design.md section 4): the books of every shard, each
// read linearizably through its leader, added up and checked against the
// ledger invariants of docs/design.md section 6.7. The arithmetic is a pure
// function of the shards' answers, so it is tested without a cluster.
#pragma once

#include "txn/messages.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rl::tools {

// One shard's line: its answer plus what it should hold at creation.
struct AuditShard {
    ShardId shard;
    LogIndex applied_index;
    std::uint64_t items = 0;
    std::int64_t initial_balance = 0;
    std::int64_t expected = 0;  // items x initial_balance
    std::int64_t posted = 0;    // sum of posted balances
    std::int64_t held = 0;      // by undecided debits
    std::int64_t pending = 0;   // undecided credits
    std::int64_t available = 0;   // posted - held
    std::uint64_t undecided = 0;  // records with fate undecided
    std::vector<std::pair<ItemId, std::int64_t>> negatives;
};

// One side of a cross-shard transaction as its shard records it.
struct AuditSide {
    ShardId shard;        // the shard that recorded it, or the shard the other side names
    bool present = false; // false: that shard holds no record of the txid
    std::uint8_t fate = 0;  // txn::Fate: 0 undecided, 1 committed, 2 aborted
    bool voted_yes = false;
    std::string reason;
    std::uint64_t age_ms = 0;

    bool committed() const { return present && fate == 1; }
    // "missing", "undecided", "committed" or "aborted".
    const char* state() const;
};

// A transaction still under way: a record undecided somewhere, or
// committed on one side and not (yet) on the other.
struct AuditInFlight {
    txn::TxnId txid;
    ItemId from;
    ItemId to;
    std::int64_t amount = 0;
    AuditSide debit;
    AuditSide credit;
    std::uint64_t age_ms = 0;  // the older side's age
    // What it adds to the posted total to explain it: +amount when the
    // debit is posted and the credit not, -amount for the reverse, else 0.
    std::int64_t counts = 0;
};

struct AuditTotal {
    std::uint64_t items = 0;
    std::int64_t expected = 0;
    std::int64_t posted = 0;
    std::int64_t held = 0;
    std::int64_t pending = 0;
    std::int64_t available = 0;  // posted - held
    std::uint64_t undecided = 0;
    std::uint64_t negatives = 0;
    std::int64_t debited_not_credited = 0;  // committed debits whose credit is undecided or missing
    std::int64_t credited_not_debited = 0;  // committed credits whose debit is undecided or missing
    // What made the books balance: "books" (nothing in flight, posted ==
    // expected), "in_flight" (posted + debited_not_credited -
    // credited_not_debited == expected), "forgotten_sides" (the same, where
    // a committed side whose other side is missing counts as posted on both:
    // that shard has decided and forgotten it, section 6.7); empty if none.
    std::string balanced_by;
};

struct AuditReport {
    bool ok = false;
    std::vector<AuditShard> shards;
    AuditTotal total;
    std::vector<AuditInFlight> in_flight;
    std::vector<std::string> problems;
    // True when the only problems are in the arithmetic across shards, which
    // reads of the shards at different moments can cause while transfers
    // move: a new read may cure it.
    bool may_be_skew = false;
};

// Adds up the shards' answers (in the order they were read) and checks:
// no item below zero; holds and pending credits match the undecided
// records; no transaction committed on one side and aborted on the other;
// with nothing undecided, posted == expected; otherwise an accounting of the
// transactions in flight explains the difference.
AuditReport audit_books(const std::vector<txn::AuditDone>& shards);

// `reads`: how many times the shards were read (rlcat reads them again while
// the books look skewed).
nlohmann::ordered_json audit_json(const AuditReport& report, std::uint32_t reads = 1);
// One line per shard, a total line, one line per transaction in flight,
// then `ok`, or one `problem: ...` line each.
std::vector<std::string> audit_text(const AuditReport& report, std::uint32_t reads = 1);

}  // namespace rl::tools
