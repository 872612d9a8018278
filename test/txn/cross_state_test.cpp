// Cross-shard two-phase commit in the shard state machine (docs/design.md
// section 6.7): PrepareDebit, PrepareCredit, Decide, Query and Forget
// entries, the holds and pending credits they reserve, the records they
// keep, fate_from(), and snapshots that carry all of it.
//
// Two ShardStates stand for the two shards of one transfer: shard 1 is the
// sender (its session numbers the txid, item 1 is debited) and shard 2 the
// receiver (item 11 is credited). Each is given nothing but its shard id and
// a hand-made log. Nothing here waits or reads a clock.
#define BOOST_TEST_MODULE cross_state
#include <boost/test/unit_test.hpp>

#include "txn/state_machine.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

using rl::Epoch;
using rl::ItemId;
using rl::LogIndex;
using rl::ShardId;
using rl::txn::AbortReason;
using rl::txn::Answered;
using rl::txn::Applied;
using rl::txn::ApplyResult;
using rl::txn::Command;
using rl::txn::CrossTxn;
using rl::txn::Decide;
using rl::txn::Decided;
using rl::txn::Fate;
using rl::txn::fate_from;
using rl::txn::Forget;
using rl::txn::Genesis;
using rl::txn::LogEntry;
using rl::txn::Noop;
using rl::txn::OpenSession;
using rl::txn::Outcome;
using rl::txn::Prepared;
using rl::txn::PrepareCredit;
using rl::txn::PrepareDebit;
using rl::txn::Query;
using rl::txn::Release;
using rl::txn::Reset;
using rl::txn::ResetApplied;
using rl::txn::QueryState;
using rl::txn::session_id;
using rl::txn::SessionOpened;
using rl::txn::ShardState;
using rl::txn::Side;
using rl::txn::Transfer;
using rl::txn::TxnId;

// Boost.Test prints both sides of a failed comparison.
namespace rl::txn {
std::ostream& operator<<(std::ostream& os, Fate f) {
    switch (f) {
        case Fate::undecided: return os << "undecided";
        case Fate::committed: return os << "committed";
        case Fate::aborted: return os << "aborted";
    }
    return os << "fate(" << static_cast<int>(f) << ")";
}
std::ostream& operator<<(std::ostream& os, Outcome o) { return os << to_string(o); }
std::ostream& operator<<(std::ostream& os, AbortReason r) { return os << to_string(r); }
std::ostream& operator<<(std::ostream& os, QueryState s) { return os << to_string(s); }
std::ostream& operator<<(std::ostream& os, Side s) { return os << (s == Side::debit ? "debit" : "credit"); }
std::ostream& operator<<(std::ostream& os, const TxnId& t) { return os << t.session << ":" << t.seq; }
std::ostream& operator<<(std::ostream& os, const ApplyResult& r) {
    return os << "{" << r.outcome << " " << r.reason << " " << r.txid << "}";
}
std::ostream& operator<<(std::ostream& os, const std::optional<ApplyResult>& r) {
    if (!r) return os << "nullopt";
    return os << *r;
}
}  // namespace rl::txn

namespace {

constexpr ShardId kSender{1};    // items 1-10
constexpr ShardId kReceiver{2};  // items 11-20
constexpr ItemId kFrom{1};       // the sender's debited item
constexpr ItemId kTo{11};        // the receiver's credited item
constexpr std::int64_t kInitial = 100;
constexpr std::int64_t kItems = 10;  // per shard
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// ---- building logs

Genesis genesis_of(ShardId shard, std::int64_t initial = kInitial) {
    const std::uint64_t first = shard == kSender ? 1 : 11;
    return Genesis{shard, {{ItemId{first}, ItemId{first + kItems - 1}}}, initial, 64, 64};
}

// Applies `command` as the next entry of `s`'s log, in the epoch it is at.
Applied step(ShardState& s, Command command, Epoch epoch = Epoch{1}) {
    epoch = std::max({epoch, s.applied_epoch(), Epoch{1}});
    return s.apply(LogEntry{s.applied_index().next(), epoch, std::move(command)});
}

// A shard created by its Genesis at index 1.
ShardState created(ShardId shard, std::int64_t initial = kInitial) {
    ShardState s(shard);
    step(s, genesis_of(shard, initial));
    BOOST_REQUIRE(s.created());
    return s;
}

std::uint64_t open_session(ShardState& s) {
    const Applied a = step(s, OpenSession{});
    BOOST_REQUIRE(std::holds_alternative<SessionOpened>(a));
    return std::get<SessionOpened>(a).session;
}

// The applied entry's result as the alternative the test expects.
template <class T>
T as(const Applied& a) {
    BOOST_REQUIRE_MESSAGE(std::holds_alternative<T>(a), "the entry applied as alternative " << a.index());
    return std::get<T>(a);
}

PrepareDebit debit(TxnId id, std::int64_t amount, ItemId from = kFrom, ItemId to = kTo) {
    return PrepareDebit{id, from, to, kReceiver, amount};
}
PrepareCredit credit(TxnId id, std::int64_t amount, ItemId to = kTo, ItemId from = kFrom) {
    return PrepareCredit{id, from, to, amount};
}
Decide commit_decision(TxnId id, bool final_elsewhere = false) { return Decide{id, Fate::committed, 0, final_elsewhere}; }
Decide abort_decision(TxnId id, AbortReason reason = AbortReason::timeout, bool final_elsewhere = false) {
    return Decide{id, Fate::aborted, static_cast<std::uint8_t>(reason), final_elsewhere};
}
Decide decision_for(TxnId id, Fate fate) { return fate == Fate::committed ? commit_decision(id) : abort_decision(id); }

ApplyResult committed(TxnId id) { return {Outcome::committed, AbortReason::none, id}; }
ApplyResult aborted(TxnId id, AbortReason reason) { return {Outcome::aborted, reason, id}; }

// The sender shard with one open session, and the receiver shard: the two
// sides of the transfers of most tests.
struct Pair {
    ShardState sender = created(kSender);
    ShardState receiver = created(kReceiver);
    std::uint64_t session = open_session(sender);

    TxnId txid(std::uint64_t seq) const { return TxnId{session, seq}; }
};

// ---- invariants

std::vector<ItemId> items_of(const ShardState& s) {
    std::vector<ItemId> out;
    for (const auto& r : s.genesis()->items) {
        for (std::uint64_t i = r.first.value; i <= r.last.value; ++i) out.push_back(ItemId{i});
    }
    return out;
}

std::int64_t available(const ShardState& s, ItemId item) { return s.balance(item) - s.held(item); }

// Every item's hold and pending credit is exactly what the undecided yes
// votes among the records reserve, and no posted or available balance is
// below zero.
void check_reserves(const ShardState& s) {
    std::map<ItemId, std::int64_t> held;
    std::map<ItemId, std::int64_t> pending;
    for (const auto& [id, t] : s.cross_txns()) {
        BOOST_TEST((id == t.txid));
        if (t.voted_yes && t.fate == Fate::undecided) (t.side == Side::debit ? held[t.from] : pending[t.to]) += t.amount;
    }
    std::int64_t held_sum = 0;
    std::int64_t pending_sum = 0;
    for (ItemId item : items_of(s)) {
        BOOST_TEST(s.held(item) == held[item], "item " << item);
        BOOST_TEST(s.pending(item) == pending[item], "item " << item);
        BOOST_TEST(s.balance(item) >= 0, "item " << item);
        BOOST_TEST(available(s, item) >= 0, "item " << item);
        held_sum += held[item];
        pending_sum += pending[item];
    }
    BOOST_TEST(s.held_total() == held_sum);
    BOOST_TEST(s.pending_total() == pending_sum);
}

// The fate the sender's shard holds for `id`: its record's, or, with no
// record, the session table's result (a fence or a forgotten record).
Fate sender_fate(const ShardState& s, TxnId id) {
    if (const CrossTxn* t = s.cross_txn(id)) return t->fate;
    if (std::optional<ApplyResult> r = s.lookup(id)) {
        return r->outcome == Outcome::committed ? Fate::committed : Fate::aborted;
    }
    return Fate::undecided;
}

Fate receiver_fate(const ShardState& s, TxnId id) {
    const CrossTxn* t = s.cross_txn(id);
    return t == nullptr ? Fate::undecided : t->fate;
}

// restore(snapshot()) gives the same bytes, records, holds and pending credits.
ShardState round_trip(const ShardState& s, ShardId shard) {
    const std::vector<std::uint8_t> bytes = s.snapshot();
    ShardState r = ShardState::restore(shard, bytes);
    BOOST_TEST((r.snapshot() == bytes));
    BOOST_TEST((r.cross_txns() == s.cross_txns()));
    BOOST_TEST(r.applied_index() == s.applied_index());
    if (s.created()) {
        for (ItemId item : items_of(s)) {
            BOOST_TEST(r.balance(item) == s.balance(item), "item " << item);
            BOOST_TEST(r.held(item) == s.held(item), "item " << item);
            BOOST_TEST(r.pending(item) == s.pending(item), "item " << item);
        }
    }
    BOOST_TEST(r.held_total() == s.held_total());
    BOOST_TEST(r.pending_total() == s.pending_total());
    return r;
}

// ---- every order of one transaction's entries

enum class Step : std::uint8_t { prepare = 0, query = 1, decide = 2 };
const char* name(Step s) {
    switch (s) {
        case Step::prepare: return "prepare";
        case Step::query: return "query";
        case Step::decide: return "decide";
    }
    return "?";
}
using Order = std::array<Step, 3>;

std::string text(const Order& o) {
    return std::string(name(o[0])) + "," + name(o[1]) + "," + name(o[2]);
}
std::size_t position(const Order& o, Step s) { return static_cast<std::size_t>(std::find(o.begin(), o.end(), s) - o.begin()); }

// What the rules say one shard holds for the transaction, stepped beside
// the real state, which must agree with it after every entry.
struct Expect {
    bool record = false;
    bool voted_yes = false;
    Fate fate = Fate::undecided;
    AbortReason fate_reason = AbortReason::none;
    bool fenced = false;                // a Query found nothing here
    std::optional<ApplyResult> table;   // the sender's session table
};

QueryState state_of(const Expect& e) {
    if (e.fate == Fate::committed) return QueryState::committed;
    if (e.fate == Fate::aborted) return QueryState::aborted;
    return e.voted_yes ? QueryState::voted_yes : QueryState::voted_no;
}

// The decision a Decide applied to an undecided record leaves there.
void take_decision(Expect& e, Fate decision) {
    e.fate = decision;
    e.fate_reason = decision == Fate::committed ? AbortReason::none : AbortReason::timeout;
}

void check_record(const ShardState& s, TxnId id, const Expect& e) {
    const CrossTxn* t = s.cross_txn(id);
    BOOST_REQUIRE((t != nullptr) == e.record);
    if (t == nullptr) return;
    BOOST_TEST(t->voted_yes == e.voted_yes);
    BOOST_TEST(t->fate == e.fate);
    BOOST_TEST(t->fate_reason == e.fate_reason);
}

// One entry of the sender's shard, its result, and the state after it.
void sender_step(ShardState& s, TxnId id, std::int64_t amount, Step st, Fate decision, Expect& e) {
    switch (st) {
        case Step::prepare: {
            const Applied a = step(s, debit(id, amount));
            if (e.record) {
                const Prepared p = as<Prepared>(a);
                BOOST_TEST(!p.created);
                BOOST_TEST(p.txn.fate == e.fate);
            } else if (e.table) {
                BOOST_TEST(as<ApplyResult>(a) == *e.table);  // settled by the session table: no record
            } else {
                const Prepared p = as<Prepared>(a);
                BOOST_TEST(p.created);
                e.record = true;
                e.voted_yes = amount <= kInitial;
                if (!e.voted_yes) {
                    e.fate = Fate::aborted;
                    e.fate_reason = AbortReason::insufficient_funds;
                    e.table = aborted(id, AbortReason::insufficient_funds);
                }
                BOOST_TEST(p.result == e.table);
            }
            break;
        }
        case Step::query: {
            const Answered a = as<Answered>(step(s, Query{id}));
            if (e.record) {
                BOOST_TEST(a.state == state_of(e));
                BOOST_TEST(a.txn.has_value());
            } else {
                e.fenced = true;
                if (!e.table) e.table = aborted(id, AbortReason::timeout);
                BOOST_TEST(a.state == QueryState::absent);
                BOOST_TEST(a.result == e.table);
                BOOST_TEST(!a.txn.has_value());
            }
            break;
        }
        case Step::decide: {
            const Decided d = as<Decided>(step(s, decision_for(id, decision)));
            BOOST_TEST(d.known == e.record);
            if (!e.record) break;
            if (e.fate == Fate::undecided) {
                BOOST_TEST(!d.conflicting);
                take_decision(e, decision);
                e.table = ApplyResult{decision == Fate::committed ? Outcome::committed : Outcome::aborted,
                                      e.fate_reason, id};
                BOOST_TEST(d.result == e.table);
            } else {
                BOOST_TEST(d.conflicting == (e.fate != decision));
            }
            BOOST_TEST(d.txn.fate == e.fate);
            break;
        }
    }
    check_record(s, id, e);
    BOOST_TEST(s.lookup(id) == e.table);
    const bool reserving = e.record && e.voted_yes && e.fate == Fate::undecided;
    const std::int64_t moved = e.fate == Fate::committed ? amount : 0;
    BOOST_TEST(s.held(kFrom) == (reserving ? amount : 0));
    BOOST_TEST(s.balance(kFrom) == kInitial - moved);
    BOOST_TEST(s.total() == kItems * kInitial - moved);
    check_reserves(s);
}

// One entry of the receiver's shard, its result, and the state after it.
void receiver_step(ShardState& s, TxnId id, std::int64_t amount, Step st, Fate decision, Expect& e) {
    switch (st) {
        case Step::prepare: {
            const Prepared p = as<Prepared>(step(s, credit(id, amount)));
            BOOST_TEST(p.created == !e.record);
            if (!e.record) {
                e.record = true;
                e.voted_yes = true;
            }
            BOOST_TEST(p.txn.voted_yes == e.voted_yes);
            BOOST_TEST(p.txn.fate == e.fate);
            BOOST_TEST(!p.result.has_value());
            break;
        }
        case Step::query: {
            const Answered a = as<Answered>(step(s, Query{id}));
            if (e.record) {
                BOOST_TEST(a.state == state_of(e));
            } else {
                // The fence: an undecided no-vote record that stands in for
                // the Prepare; only the coordinator's Decide settles it.
                e = Expect{true, false, Fate::undecided, AbortReason::none, true, std::nullopt};
                BOOST_TEST(a.state == QueryState::absent);
                BOOST_TEST(!a.txn.has_value());
                const CrossTxn* fence = s.cross_txn(id);
                BOOST_REQUIRE(fence != nullptr);
                BOOST_TEST(fence->amount == 0);
                BOOST_TEST(fence->vote_reason == AbortReason::timeout);
            }
            break;
        }
        case Step::decide: {
            const Decided d = as<Decided>(step(s, decision_for(id, decision)));
            BOOST_TEST(d.known == e.record);
            BOOST_TEST(!d.result.has_value());
            if (!e.record) break;
            if (e.fate == Fate::undecided && decision == Fate::committed && !e.voted_yes) {
                BOOST_TEST(d.conflicting);  // a commit of a no vote (a fence) is refused
            } else if (e.fate == Fate::undecided) {
                BOOST_TEST(!d.conflicting);
                take_decision(e, decision);
            } else {
                BOOST_TEST(d.conflicting == (e.fate != decision));
            }
            BOOST_TEST(d.txn.fate == e.fate);
            break;
        }
    }
    check_record(s, id, e);
    const bool reserving = e.record && e.voted_yes && e.fate == Fate::undecided;
    const std::int64_t moved = e.fate == Fate::committed ? amount : 0;
    BOOST_TEST(s.pending(kTo) == (reserving ? amount : 0));
    BOOST_TEST(s.balance(kTo) == kInitial + moved);
    BOOST_TEST(s.total() == kItems * kInitial + moved);
    check_reserves(s);
}

// Whether a coordinator following section 6.7 could have logged this
// side's entries in this order: a commit only after this side's Prepare and
// with no fence before it; an abort only once the side has settled (its
// Prepare or a Query came first).
bool coordinator_could(const Order& o, Fate decision) {
    const std::size_t p = position(o, Step::prepare);
    const std::size_t q = position(o, Step::query);
    const std::size_t d = position(o, Step::decide);
    if (decision == Fate::committed) return p < d && p < q;
    return p < d || q < d;
}

// ---- hand-built snapshots
//
// The layout txn/state_machine.cpp documents, written field by field, so a
// test can build bytes that apply() never produces.

struct RecordImage {
    std::uint8_t side = 1;
    TxnId txid;
    std::uint64_t from = 0;
    std::uint64_t to = 0;
    std::uint64_t other = 0;
    std::int64_t amount = 0;
    std::uint8_t voted_yes = 0;
    std::uint8_t vote_reason = 0;
    std::uint8_t fate = 0;
    std::uint8_t fate_reason = 0;
    std::uint8_t final_elsewhere = 0;
    std::uint64_t prepared_at = 0;
};

struct SessionImage {
    std::uint64_t id = 0;
    std::uint64_t last_used = 0;
    std::uint64_t floor_seq = 0;  // no results kept
};

struct SnapshotImage {
    std::uint32_t format = 3;
    ShardId shard;
    std::uint64_t applied_index = 0;
    std::uint64_t applied_epoch = 0;
    Genesis genesis;
    std::vector<std::int64_t> balances;  // of the one range
    std::vector<SessionImage> sessions;
    std::vector<RecordImage> records;

    std::vector<std::uint8_t> bytes() const {
        std::ostringstream out(std::ios::binary);
        {
            cereal::PortableBinaryOutputArchive ar(out);
            ar(format, shard.value, applied_index, applied_epoch, std::uint8_t{1}, genesis);
            ar(cereal::make_size_tag(static_cast<cereal::size_type>(balances.size())));
            for (std::int64_t b : balances) ar(b);
            ar(cereal::make_size_tag(static_cast<cereal::size_type>(sessions.size())));
            for (const SessionImage& s : sessions) {
                ar(s.id, s.last_used, s.floor_seq, cereal::make_size_tag(cereal::size_type{0}));
            }
            ar(cereal::make_size_tag(static_cast<cereal::size_type>(records.size())));
            for (const RecordImage& r : records) {
                ar(r.side, r.txid, r.from, r.to, r.other, r.amount, r.voted_yes, r.vote_reason, r.fate, r.fate_reason,
                   r.final_elsewhere, r.prepared_at);
            }
        }
        const std::string s = out.str();
        return {s.begin(), s.end()};
    }
};

// The sender after Genesis (1), OpenSession (2) and PrepareDebit (3) of 70
// from item 1 with a yes vote, as an image.
SnapshotImage held_70_image() {
    SnapshotImage img;
    img.shard = kSender;
    img.applied_index = 3;
    img.applied_epoch = 1;
    img.genesis = genesis_of(kSender);
    img.balances.assign(kItems, kInitial);
    const std::uint64_t session = session_id(kSender, LogIndex{2});
    img.sessions.push_back({session, 3, 0});
    RecordImage r;
    r.side = static_cast<std::uint8_t>(Side::debit);
    r.txid = TxnId{session, 1};
    r.from = kFrom.value;
    r.to = kTo.value;
    r.other = kReceiver.value;
    r.amount = 70;
    r.voted_yes = 1;
    r.prepared_at = 3;
    img.records.push_back(r);
    return img;
}

void check_rejected(const std::vector<std::uint8_t>& bytes, ShardId shard = kSender) {
    try {
        ShardState::restore(shard, bytes);
        BOOST_ERROR("restore accepted the bytes");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find("snapshot of shard " + std::to_string(shard.value) + " rejected") == 0U, what);
    }
}

}  // namespace

// ---- 1. every order of one transaction's entries

// For each order of {PrepareDebit, Query, Decide} in the sender's log and
// of {PrepareCredit, Query, Decide} in the receiver's, each decision, and a
// sender with and without the funds (4 x 36 runs), every entry's result and
// the state after it match the rules, and:
// - no posted or available balance goes below zero, and the holds and
//   pending credits are exactly the undecided yes votes (zero once decided);
// - a side whose Query came before its Prepare (fenced) never commits, and
//   a commit takes effect only on a record that voted yes;
// - once both sides have decided alike, money is conserved across the two
//   shards and a commit moved exactly the amount from item 1 to item 11;
// - every run a coordinator could have produced ends with both sides
//   decided alike and nothing held or pending;
// - Forget then drops the decided records and keeps the undecided ones.
BOOST_AUTO_TEST_CASE(every_order_of_one_transactions_entries_keeps_both_shards_consistent) {
    int runs = 0;
    int coordinated = 0;
    int both_decided = 0;
    for (const std::int64_t amount : {std::int64_t{30}, kInitial + 1}) {
        for (const Fate decision : {Fate::committed, Fate::aborted}) {
            Order sender_order{Step::prepare, Step::query, Step::decide};
            do {
                Order receiver_order{Step::prepare, Step::query, Step::decide};
                do {
                    BOOST_TEST_CONTEXT("amount " << amount << ", decision " << decision << ", sender "
                                                 << text(sender_order) << ", receiver " << text(receiver_order)) {
                        ++runs;
                        Pair p;
                        const TxnId id = p.txid(1);
                        Expect se;
                        Expect re;
                        for (Step st : sender_order) sender_step(p.sender, id, amount, st, decision, se);
                        for (Step st : receiver_order) receiver_step(p.receiver, id, amount, st, decision, re);

                        const Fate sent = sender_fate(p.sender, id);
                        const Fate received = receiver_fate(p.receiver, id);
                        if (se.fenced) BOOST_TEST(sent != Fate::committed);
                        if (re.fenced) BOOST_TEST(received != Fate::committed);
                        if (sent == Fate::committed) BOOST_TEST(p.sender.cross_txn(id)->voted_yes);
                        if (received == Fate::committed) BOOST_TEST(p.receiver.cross_txn(id)->voted_yes);

                        const std::int64_t sum = p.sender.total() + p.receiver.total();
                        if (sent != Fate::undecided && sent == received) {
                            ++both_decided;
                            BOOST_TEST(sum == 2 * kItems * kInitial);
                            const std::int64_t moved = sent == Fate::committed ? amount : 0;
                            BOOST_TEST(p.sender.balance(kFrom) == kInitial - moved);
                            BOOST_TEST(p.receiver.balance(kTo) == kInitial + moved);
                        }
                        const bool funds = amount <= kInitial;
                        if (coordinator_could(sender_order, decision) && coordinator_could(receiver_order, decision) &&
                            (decision == Fate::aborted || funds)) {
                            ++coordinated;
                            BOOST_TEST(sent == decision);
                            BOOST_TEST(received == decision);
                            BOOST_TEST(p.sender.held_total() == 0);
                            BOOST_TEST(p.receiver.pending_total() == 0);
                        }

                        // Forget keeps exactly the undecided records, and moves nothing.
                        const std::int64_t sender_total = p.sender.total();
                        const std::int64_t receiver_total = p.receiver.total();
                        step(p.sender, Forget{{id}});
                        step(p.receiver, Forget{{id}});
                        BOOST_TEST((p.sender.cross_txn(id) != nullptr) == (se.record && se.fate == Fate::undecided));
                        BOOST_TEST((p.receiver.cross_txn(id) != nullptr) == (re.record && re.fate == Fate::undecided));
                        BOOST_TEST(p.sender.lookup(id) == se.table);
                        BOOST_TEST(p.sender.total() == sender_total);
                        BOOST_TEST(p.receiver.total() == receiver_total);
                        check_reserves(p.sender);
                        check_reserves(p.receiver);
                    }
                } while (std::next_permutation(receiver_order.begin(), receiver_order.end()));
            } while (std::next_permutation(sender_order.begin(), sender_order.end()));
        }
    }
    BOOST_TEST(runs == 2 * 2 * 6 * 6);
    BOOST_TEST(coordinated > 0);
    BOOST_TEST(both_decided > coordinated);
}

// fate_from: a decided record keeps its fate; an undecided one commits
// exactly when the other shard committed, or voted yes beside its own yes.
BOOST_AUTO_TEST_CASE(fate_from_commits_exactly_when_both_votes_are_yes) {
    const std::array<QueryState, 5> theres{QueryState::absent, QueryState::voted_yes, QueryState::voted_no,
                                           QueryState::committed, QueryState::aborted};
    for (const bool yes : {true, false}) {
        for (const Fate mine : {Fate::undecided, Fate::committed, Fate::aborted}) {
            if (mine == Fate::committed && !yes) continue;  // no record is committed without its yes
            CrossTxn here{Side::debit, TxnId{session_id(kSender, LogIndex{2}), 1}, kFrom, kTo, kReceiver, 5};
            here.voted_yes = yes;
            here.vote_reason = yes ? AbortReason::none : AbortReason::insufficient_funds;
            here.fate = mine;
            for (const QueryState there : theres) {
                BOOST_TEST_CONTEXT("yes " << yes << ", fate " << mine << ", there " << there) {
                    Fate expected = mine;
                    if (mine == Fate::undecided) {
                        const bool commit = there == QueryState::committed || (there == QueryState::voted_yes && yes);
                        expected = commit ? Fate::committed : Fate::aborted;
                    }
                    BOOST_TEST(fate_from(here, there) == expected);
                }
            }
        }
    }
}

// A coordinator that lost track of an undecided transaction finishes it
// from the other shard's Query answer: a yes there commits both sides; a
// Query that found nothing fenced the receiver, so both sides abort, and
// the late Prepare cannot revive it.
BOOST_AUTO_TEST_CASE(a_stuck_transaction_is_finished_from_the_other_shards_answer) {
    for (const bool receiver_prepared : {true, false}) {
        BOOST_TEST_CONTEXT("receiver prepared before the query: " << receiver_prepared) {
            Pair p;
            const TxnId id = p.txid(1);
            as<Prepared>(step(p.sender, debit(id, 40)));
            if (receiver_prepared) as<Prepared>(step(p.receiver, credit(id, 40)));
            const Answered there = as<Answered>(step(p.receiver, Query{id}));
            const Fate fate = fate_from(*p.sender.cross_txn(id), there.state);
            BOOST_TEST(fate == (receiver_prepared ? Fate::committed : Fate::aborted));
            // The Prepare the fence beat arrives late and votes no.
            const Prepared late = as<Prepared>(step(p.receiver, credit(id, 40)));
            BOOST_TEST(late.txn.voted_yes == receiver_prepared);
            as<Decided>(step(p.sender, decision_for(id, fate)));
            as<Decided>(step(p.receiver, decision_for(id, fate)));
            BOOST_TEST(sender_fate(p.sender, id) == fate);
            BOOST_TEST(receiver_fate(p.receiver, id) == fate);
            const std::int64_t moved = fate == Fate::committed ? 40 : 0;
            BOOST_TEST(p.sender.balance(kFrom) == kInitial - moved);
            BOOST_TEST(p.receiver.balance(kTo) == kInitial + moved);
            BOOST_TEST(p.sender.total() + p.receiver.total() == 2 * kItems * kInitial);
            BOOST_TEST(p.sender.held_total() == 0);
            BOOST_TEST(p.receiver.pending_total() == 0);
        }
    }
}

// ---- 2. holds, not locks

// A hold of 70 on item 1 (balance 100) reserves exactly 70: an intra-shard
// transfer of 31 from it aborts with insufficient_funds, one of 30 commits,
// another PrepareDebit that needs more than the rest votes no; after the
// cross-shard abort the 70 is available again.
BOOST_AUTO_TEST_CASE(a_hold_reserves_only_its_amount_and_other_transfers_use_the_rest) {
    Pair p;
    const TxnId id = p.txid(1);
    const Prepared held = as<Prepared>(step(p.sender, debit(id, 70)));
    BOOST_TEST(held.created);
    BOOST_TEST(held.txn.voted_yes);
    BOOST_TEST(p.sender.held(kFrom) == 70);
    BOOST_TEST(p.sender.balance(kFrom) == kInitial);  // held, not posted
    BOOST_TEST(available(p.sender, kFrom) == 30);

    const Transfer too_much{p.txid(2), kFrom, ItemId{2}, 31};
    BOOST_TEST(as<ApplyResult>(step(p.sender, too_much)) == aborted(too_much.txid, AbortReason::insufficient_funds));
    BOOST_TEST(p.sender.balance(kFrom) == kInitial);
    const Transfer fits{p.txid(3), kFrom, ItemId{2}, 30};
    BOOST_TEST(as<ApplyResult>(step(p.sender, fits)) == committed(fits.txid));
    BOOST_TEST(p.sender.balance(kFrom) == 70);
    BOOST_TEST(available(p.sender, kFrom) == 0);
    // Transfers into the held item are never refused for the hold.
    const Transfer in{p.txid(4), ItemId{3}, kFrom, 5};
    BOOST_TEST(as<ApplyResult>(step(p.sender, in)) == committed(in.txid));
    BOOST_TEST(available(p.sender, kFrom) == 5);

    const Prepared second = as<Prepared>(step(p.sender, debit(p.txid(5), 6)));
    BOOST_TEST(!second.txn.voted_yes);
    BOOST_TEST(second.txn.vote_reason == AbortReason::insufficient_funds);
    BOOST_TEST(p.sender.held(kFrom) == 70);
    check_reserves(p.sender);

    const Decided d = as<Decided>(step(p.sender, abort_decision(id)));
    BOOST_TEST(d.known);
    BOOST_TEST(d.result == aborted(id, AbortReason::timeout));
    BOOST_TEST(p.sender.held(kFrom) == 0);
    BOOST_TEST(p.sender.balance(kFrom) == 75);
    const Transfer all{p.txid(6), kFrom, ItemId{2}, 75};
    BOOST_TEST(as<ApplyResult>(step(p.sender, all)) == committed(all.txid));
    BOOST_TEST(p.sender.balance(kFrom) == 0);
    BOOST_TEST(p.sender.total() == kItems * kInitial);
    check_reserves(p.sender);
}

// A pending credit keeps room for itself: transfers into the item and other
// PrepareCredits fit only beside it (overflow otherwise), and the commit
// then posts it exactly at the int64 limit.
BOOST_AUTO_TEST_CASE(a_pending_credit_keeps_room_for_itself_below_the_int64_limit) {
    ShardState sender = created(kSender);
    const std::uint64_t session = open_session(sender);
    ShardState receiver = created(kReceiver, kMax - 100);
    const TxnId id{session, 1};
    const Prepared p = as<Prepared>(step(receiver, credit(id, 60)));
    BOOST_TEST(p.txn.voted_yes);
    BOOST_TEST(receiver.pending(kTo) == 60);

    const std::uint64_t own = open_session(receiver);
    const Transfer over{TxnId{own, 1}, ItemId{12}, kTo, 41};
    BOOST_TEST(as<ApplyResult>(step(receiver, over)) == aborted(over.txid, AbortReason::overflow));
    const Prepared no = as<Prepared>(step(receiver, credit(TxnId{session, 2}, 41)));
    BOOST_TEST(!no.txn.voted_yes);
    BOOST_TEST(no.txn.vote_reason == AbortReason::overflow);
    BOOST_TEST(no.txn.fate == Fate::aborted);
    BOOST_TEST(receiver.pending(kTo) == 60);

    const Transfer fits{TxnId{own, 2}, ItemId{12}, kTo, 40};
    BOOST_TEST(as<ApplyResult>(step(receiver, fits)) == committed(fits.txid));
    BOOST_TEST(receiver.balance(kTo) == kMax - 60);
    as<Decided>(step(receiver, commit_decision(id)));
    BOOST_TEST(receiver.balance(kTo) == kMax);
    BOOST_TEST(receiver.pending(kTo) == 0);
    check_reserves(receiver);
}

// ---- the votes

// PrepareDebit passes the session checks of an intra-shard transfer first:
// an unknown session aborts session_expired and a txid the table already
// holds gets that result, neither creating a record nor a hold; before its
// Genesis the shard answers bad_request.
BOOST_AUTO_TEST_CASE(prepare_debit_checks_the_session_like_a_transfer) {
    ShardState empty(kSender);
    const TxnId early{session_id(kSender, LogIndex{1}), 1};
    BOOST_TEST(as<ApplyResult>(step(empty, debit(early, 5))) == aborted(early, AbortReason::bad_request));
    BOOST_TEST(empty.cross_txns().empty());

    Pair p;
    const TxnId unknown{session_id(kSender, LogIndex{40}), 1};
    BOOST_TEST(as<ApplyResult>(step(p.sender, debit(unknown, 5))) == aborted(unknown, AbortReason::session_expired));
    const TxnId foreign{session_id(kReceiver, LogIndex{2}), 1};
    BOOST_TEST(as<ApplyResult>(step(p.sender, debit(foreign, 5))) == aborted(foreign, AbortReason::session_expired));

    const Transfer t{p.txid(1), kFrom, ItemId{2}, 10};
    BOOST_TEST(as<ApplyResult>(step(p.sender, t)) == committed(t.txid));
    BOOST_TEST(as<ApplyResult>(step(p.sender, debit(t.txid, 5))) == committed(t.txid));
    const Transfer poor{p.txid(2), kFrom, ItemId{2}, 1000};
    BOOST_TEST(as<ApplyResult>(step(p.sender, poor)) == aborted(poor.txid, AbortReason::insufficient_funds));
    BOOST_TEST(as<ApplyResult>(step(p.sender, debit(poor.txid, 5))) ==
               aborted(poor.txid, AbortReason::insufficient_funds));

    BOOST_TEST(p.sender.cross_txns().empty());
    BOOST_TEST(p.sender.held_total() == 0);
    BOOST_TEST(p.sender.balance(kFrom) == kInitial - 10);
}

// A no vote settles the transaction at once: the record is aborted with the
// vote's reason, nothing is reserved, and on the debit side the session
// table answers the client from then on.
BOOST_AUTO_TEST_CASE(a_no_vote_settles_the_transaction_at_once) {
    Pair p;
    const TxnId poor = p.txid(1);
    const Prepared no = as<Prepared>(step(p.sender, debit(poor, kInitial + 1)));
    BOOST_TEST(no.created);
    BOOST_TEST(!no.txn.voted_yes);
    BOOST_TEST(no.txn.vote_reason == AbortReason::insufficient_funds);
    BOOST_TEST(no.txn.fate == Fate::aborted);
    BOOST_TEST(no.txn.fate_reason == AbortReason::insufficient_funds);
    BOOST_TEST(no.result == aborted(poor, AbortReason::insufficient_funds));
    BOOST_TEST(p.sender.lookup(poor) == aborted(poor, AbortReason::insufficient_funds));
    BOOST_TEST((*p.sender.cross_txn(poor) == no.txn));

    // An item of the receiver as `from`: the edge check fails; the session
    // table settles it and no record is kept (a snapshot could not carry it).
    const TxnId bad = p.txid(2);
    const ApplyResult invalid = as<ApplyResult>(step(p.sender, debit(bad, 5, kTo, ItemId{12})));
    BOOST_TEST(invalid == aborted(bad, AbortReason::bad_request));
    BOOST_TEST(p.sender.lookup(bad) == aborted(bad, AbortReason::bad_request));
    BOOST_TEST(p.sender.cross_txn(bad) == nullptr);
    BOOST_TEST(p.sender.held_total() == 0);

    // The receiver: an item of another shard (a no vote, not recorded), or
    // an amount that cannot be credited (a recorded no vote).
    const TxnId elsewhere = p.txid(3);
    const Prepared not_here = as<Prepared>(step(p.receiver, credit(elsewhere, 5, ItemId{2})));
    BOOST_TEST(!not_here.created);
    BOOST_TEST(p.receiver.cross_txn(elsewhere) == nullptr);
    BOOST_TEST(!not_here.txn.voted_yes);
    BOOST_TEST(not_here.txn.vote_reason == AbortReason::bad_request);
    BOOST_TEST(not_here.txn.fate == Fate::aborted);
    BOOST_TEST(not_here.txn.fate_reason == AbortReason::bad_request);
    const TxnId huge = p.txid(4);
    const Prepared overflow = as<Prepared>(step(p.receiver, credit(huge, kMax - kInitial + 1)));
    BOOST_TEST(!overflow.txn.voted_yes);
    BOOST_TEST(overflow.txn.vote_reason == AbortReason::overflow);
    BOOST_TEST(overflow.txn.fate == Fate::aborted);
    BOOST_TEST(p.receiver.pending_total() == 0);

    // A commit decision on a no vote is a conflict and moves nothing.
    const Decided d = as<Decided>(step(p.receiver, commit_decision(huge)));
    BOOST_TEST(d.known);
    BOOST_TEST(d.conflicting);
    BOOST_TEST(d.txn.fate == Fate::aborted);
    const Decided s = as<Decided>(step(p.sender, commit_decision(poor)));
    BOOST_TEST(s.conflicting);
    BOOST_TEST(p.sender.lookup(poor) == aborted(poor, AbortReason::insufficient_funds));
    BOOST_TEST(p.sender.total() == kItems * kInitial);
    BOOST_TEST(p.receiver.total() == kItems * kInitial);
}

// ---- 3. duplicates and entries out of order

// A second Prepare of a live undecided record reports it (created false)
// and reserves nothing more, whatever amount it carries.
BOOST_AUTO_TEST_CASE(duplicate_prepares_report_the_existing_record_and_reserve_nothing_more) {
    Pair p;
    const TxnId id = p.txid(1);
    const Prepared first = as<Prepared>(step(p.sender, debit(id, 40)));
    const Prepared again = as<Prepared>(step(p.sender, debit(id, 40)));
    BOOST_TEST(!again.created);
    BOOST_TEST((again.txn == first.txn));
    const Prepared other = as<Prepared>(step(p.sender, debit(id, 50)));
    BOOST_TEST(!other.created);
    BOOST_TEST(other.txn.amount == 40);
    BOOST_TEST(p.sender.held(kFrom) == 40);

    const Prepared c1 = as<Prepared>(step(p.receiver, credit(id, 40)));
    const Prepared c2 = as<Prepared>(step(p.receiver, credit(id, 40)));
    BOOST_TEST(c1.created);
    BOOST_TEST(!c2.created);
    BOOST_TEST((c2.txn == c1.txn));
    BOOST_TEST(p.receiver.pending(kTo) == 40);
    check_reserves(p.sender);
    check_reserves(p.receiver);

    // After the commit each side moved the amount once.
    as<Decided>(step(p.sender, commit_decision(id)));
    as<Decided>(step(p.receiver, commit_decision(id)));
    const Prepared late = as<Prepared>(step(p.receiver, credit(id, 40)));
    BOOST_TEST(!late.created);
    BOOST_TEST(late.txn.fate == Fate::committed);
    BOOST_TEST(p.receiver.balance(kTo) == kInitial + 40);
    BOOST_TEST(p.receiver.pending(kTo) == 0);
    BOOST_TEST(p.sender.balance(kFrom) == kInitial - 40);
    BOOST_TEST(p.sender.total() + p.receiver.total() == 2 * kItems * kInitial);
}

// The first decision stands: the same decision again is a no-op (it only
// records final_elsewhere), the other one is reported conflicting and
// changes nothing, on both sides.
BOOST_AUTO_TEST_CASE(duplicate_and_conflicting_decides_change_nothing) {
    for (const Fate first : {Fate::committed, Fate::aborted}) {
        BOOST_TEST_CONTEXT("first decision " << first) {
            Pair p;
            const TxnId id = p.txid(1);
            as<Prepared>(step(p.sender, debit(id, 25)));
            as<Prepared>(step(p.receiver, credit(id, 25)));
            const Decided d1 = as<Decided>(step(p.sender, decision_for(id, first)));
            const Decided r1 = as<Decided>(step(p.receiver, decision_for(id, first)));
            BOOST_TEST(!d1.conflicting);
            BOOST_TEST(!r1.conflicting);
            const std::optional<ApplyResult> answer = p.sender.lookup(id);
            BOOST_TEST(answer == d1.result);

            const Fate other = first == Fate::committed ? Fate::aborted : Fate::committed;
            const Decided d2 = as<Decided>(step(p.sender, decision_for(id, other)));
            const Decided r2 = as<Decided>(step(p.receiver, decision_for(id, other)));
            BOOST_TEST(d2.known);
            BOOST_TEST(d2.conflicting);
            BOOST_TEST(r2.conflicting);
            BOOST_TEST(d2.txn.fate == first);
            BOOST_TEST(p.sender.lookup(id) == answer);
            BOOST_TEST((*p.sender.cross_txn(id) == d1.txn));
            BOOST_TEST((*p.receiver.cross_txn(id) == r1.txn));

            const Decided d3 = as<Decided>(step(p.sender, decision_for(id, first)));
            BOOST_TEST(d3.known);
            BOOST_TEST(!d3.conflicting);
            BOOST_TEST((d3.txn == d1.txn));
            Decide again = decision_for(id, first);
            again.final_elsewhere = true;
            const Decided r3 = as<Decided>(step(p.receiver, again));
            BOOST_TEST(!r3.conflicting);
            BOOST_TEST(r3.txn.final_elsewhere);
            BOOST_TEST(p.receiver.cross_txn(id)->final_elsewhere);
            // A conflicting decision does not set final_elsewhere.
            Decide conflicting = decision_for(id, other);
            conflicting.final_elsewhere = true;
            BOOST_TEST(as<Decided>(step(p.sender, conflicting)).conflicting);
            BOOST_TEST(!p.sender.cross_txn(id)->final_elsewhere);

            const std::int64_t moved = first == Fate::committed ? 25 : 0;
            BOOST_TEST(p.sender.balance(kFrom) == kInitial - moved);
            BOOST_TEST(p.receiver.balance(kTo) == kInitial + moved);
            BOOST_TEST(p.sender.held_total() == 0);
            BOOST_TEST(p.receiver.pending_total() == 0);
        }
    }
}

// A Decide whose txid has no record here is unknown: it changes nothing
// (no record, no session table entry, no balance); the Prepare that comes
// later creates its record and reserves normally, still undecided.
BOOST_AUTO_TEST_CASE(a_decide_before_its_prepare_changes_nothing_and_the_prepare_still_creates_its_record) {
    Pair p;
    const TxnId id = p.txid(1);
    for (const Fate fate : {Fate::committed, Fate::aborted}) {
        const Decided d = as<Decided>(step(p.sender, decision_for(id, fate)));
        BOOST_TEST(!d.known);
        BOOST_TEST(!d.conflicting);
        BOOST_TEST(!d.result.has_value());
        BOOST_TEST(!as<Decided>(step(p.receiver, decision_for(id, fate))).known);
    }
    BOOST_TEST(p.sender.cross_txns().empty());
    BOOST_TEST(p.receiver.cross_txns().empty());
    BOOST_TEST(!p.sender.lookup(id).has_value());
    BOOST_TEST(p.sender.total() == kItems * kInitial);
    BOOST_TEST(p.receiver.total() == kItems * kInitial);

    const Prepared pd = as<Prepared>(step(p.sender, debit(id, 20)));
    const Prepared pc = as<Prepared>(step(p.receiver, credit(id, 20)));
    BOOST_TEST(pd.created);
    BOOST_TEST(pc.created);
    BOOST_TEST(pd.txn.voted_yes);
    BOOST_TEST(pc.txn.voted_yes);
    BOOST_TEST(pd.txn.fate == Fate::undecided);
    BOOST_TEST(pc.txn.fate == Fate::undecided);
    BOOST_TEST(p.sender.held(kFrom) == 20);
    BOOST_TEST(p.receiver.pending(kTo) == 20);
    // Only a decision applied after them settles them.
    as<Decided>(step(p.sender, commit_decision(id)));
    as<Decided>(step(p.receiver, commit_decision(id)));
    BOOST_TEST(p.sender.balance(kFrom) == kInitial - 20);
    BOOST_TEST(p.receiver.balance(kTo) == kInitial + 20);
}

// A Decide that names no decision (fate undecided) changes nothing.
BOOST_AUTO_TEST_CASE(a_decide_of_no_decision_changes_nothing) {
    Pair p;
    const TxnId id = p.txid(1);
    as<Prepared>(step(p.sender, debit(id, 20)));
    const CrossTxn before = *p.sender.cross_txn(id);
    const Decided d = as<Decided>(step(p.sender, Decide{id, Fate::undecided, 0, false}));
    BOOST_TEST(!d.conflicting);
    BOOST_TEST((*p.sender.cross_txn(id) == before));
    BOOST_TEST(p.sender.held(kFrom) == 20);
    BOOST_TEST(!p.sender.lookup(id).has_value());
}

// ---- queries

// A Query with a record answers its state and reason and changes nothing.
BOOST_AUTO_TEST_CASE(query_answers_each_state_from_the_record) {
    Pair p;
    const TxnId yes = p.txid(1);
    const TxnId no = p.txid(2);
    const TxnId done = p.txid(3);
    const TxnId off = p.txid(4);
    as<Prepared>(step(p.sender, debit(yes, 10)));
    as<Prepared>(step(p.sender, debit(no, 1000)));
    as<Prepared>(step(p.sender, debit(done, 10)));
    as<Decided>(step(p.sender, commit_decision(done)));
    as<Prepared>(step(p.sender, debit(off, 10)));
    as<Decided>(step(p.sender, abort_decision(off, AbortReason::mismatch)));

    const struct {
        TxnId id;
        QueryState state;
        AbortReason reason;
    } cases[] = {
        {yes, QueryState::voted_yes, AbortReason::none},
        {no, QueryState::aborted, AbortReason::insufficient_funds},  // a no vote is decided at once
        {done, QueryState::committed, AbortReason::none},
        {off, QueryState::aborted, AbortReason::mismatch},
    };
    for (const auto& c : cases) {
        BOOST_TEST_CONTEXT("txid " << c.id) {
            const Answered a = as<Answered>(step(p.sender, Query{c.id}));
            BOOST_TEST(a.state == c.state);
            BOOST_TEST(a.reason == c.reason);
            BOOST_TEST(a.txn.has_value());
            BOOST_TEST((*a.txn == *p.sender.cross_txn(c.id)));
            BOOST_TEST(p.sender.held(kFrom) == 10);
        }
    }
    // The receiver's side: a yes vote, then its decision.
    as<Prepared>(step(p.receiver, credit(yes, 10)));
    BOOST_TEST(as<Answered>(step(p.receiver, Query{yes})).state == QueryState::voted_yes);
    as<Decided>(step(p.receiver, abort_decision(yes)));
    const Answered a = as<Answered>(step(p.receiver, Query{yes}));
    BOOST_TEST(a.state == QueryState::aborted);
    BOOST_TEST(a.reason == AbortReason::timeout);
}

// A Query without a record in the sender's shard fences through the session
// table: the txid is recorded aborted/timeout, so its later PrepareDebit is
// answered that and places no hold. A txid the table already settled keeps
// its first result.
BOOST_AUTO_TEST_CASE(a_query_fences_the_sender_through_the_session_table) {
    Pair p;
    const TxnId id = p.txid(1);
    const Answered a = as<Answered>(step(p.sender, Query{id}));
    BOOST_TEST(a.state == QueryState::absent);
    BOOST_TEST(!a.txn.has_value());
    BOOST_TEST(a.result == aborted(id, AbortReason::timeout));
    BOOST_TEST(p.sender.cross_txns().empty());
    BOOST_TEST(p.sender.lookup(id) == aborted(id, AbortReason::timeout));

    BOOST_TEST(as<ApplyResult>(step(p.sender, debit(id, 10))) == aborted(id, AbortReason::timeout));
    BOOST_TEST(p.sender.cross_txns().empty());
    BOOST_TEST(p.sender.held_total() == 0);
    // A Decide that follows finds nothing to decide.
    BOOST_TEST(!as<Decided>(step(p.sender, commit_decision(id))).known);
    BOOST_TEST(p.sender.total() == kItems * kInitial);

    // A txid applied as a transfer before the Query keeps its result.
    const Transfer t{p.txid(2), kFrom, ItemId{2}, 10};
    step(p.sender, t);
    const Answered settled = as<Answered>(step(p.sender, Query{t.txid}));
    BOOST_TEST(settled.result == committed(t.txid));
    BOOST_TEST(settled.state == QueryState::finished);  // settled before the Query: nothing fenced
    BOOST_TEST(settled.reason == AbortReason::none);
    BOOST_TEST(!settled.fenced);
    BOOST_TEST(p.sender.lookup(t.txid) == committed(t.txid));

    // A session the table does not hold records nothing; its Prepare is refused anyway.
    const TxnId gone{session_id(kSender, LogIndex{50}), 1};
    const Answered g = as<Answered>(step(p.sender, Query{gone}));
    BOOST_TEST(g.state == QueryState::finished);  // it can never apply here: a receiver's record of it is released
    BOOST_TEST(g.reason == AbortReason::session_expired);
    BOOST_TEST(!g.fenced);
    BOOST_TEST(!g.result.has_value());
    BOOST_TEST(as<ApplyResult>(step(p.sender, debit(gone, 10))) == aborted(gone, AbortReason::session_expired));
}

// A Query without a record in the receiver's shard leaves a fence: an
// undecided no-vote record (amount 0, no pending credit), so the later
// PrepareCredit reports the fence (created false) with a no vote, a commit
// decision for it is a conflict, the coordinator's abort decides it, and a
// Release (the coordinator's shard had finished the transaction: the Query
// was late) drops it without a decision.
BOOST_AUTO_TEST_CASE(a_query_fences_the_receiver_with_a_no_vote_record) {
    Pair p;
    const TxnId id = p.txid(1);
    const Answered a = as<Answered>(step(p.receiver, Query{id}));
    BOOST_TEST(a.state == QueryState::absent);
    BOOST_TEST(!a.result.has_value());
    const CrossTxn* fence = p.receiver.cross_txn(id);
    BOOST_REQUIRE(fence != nullptr);
    BOOST_TEST(fence->side == Side::credit);
    BOOST_TEST(fence->other == kSender);
    BOOST_TEST(fence->amount == 0);
    BOOST_TEST(!fence->voted_yes);
    BOOST_TEST(fence->vote_reason == AbortReason::timeout);
    BOOST_TEST(fence->fate == Fate::undecided);
    BOOST_TEST(fence->prepared_at == p.receiver.applied_index());

    const Prepared late = as<Prepared>(step(p.receiver, credit(id, 30)));
    BOOST_TEST(!late.created);
    BOOST_TEST(!late.txn.voted_yes);
    BOOST_TEST(late.txn.fate == Fate::undecided);
    BOOST_TEST(late.txn.amount == 0);
    BOOST_TEST(p.receiver.pending_total() == 0);
    BOOST_TEST(as<Decided>(step(p.receiver, commit_decision(id))).conflicting);
    BOOST_TEST(p.receiver.balance(kTo) == kInitial);
    // A second Query answers from the fence: still a no vote.
    const Answered again = as<Answered>(step(p.receiver, Query{id}));
    BOOST_TEST(again.state == QueryState::voted_no);
    BOOST_TEST(again.reason == AbortReason::timeout);
    // The coordinator's abort decides it; Forget then drops it.
    const Decided d = as<Decided>(step(p.receiver, decision_for(id, Fate::aborted)));
    BOOST_TEST(!d.conflicting);
    BOOST_TEST(p.receiver.cross_txn(id)->fate == Fate::aborted);
    step(p.receiver, Forget{{id}});
    BOOST_TEST(p.receiver.cross_txn(id) == nullptr);

    // A late Query's fence is released, never decided.
    const TxnId stale = p.txid(2);
    as<Answered>(step(p.receiver, Query{stale}));
    BOOST_REQUIRE(p.receiver.cross_txn(stale) != nullptr);
    step(p.receiver, Release{stale});
    BOOST_TEST(p.receiver.cross_txn(stale) == nullptr);
    BOOST_TEST(p.receiver.total() == kItems * kInitial);
    check_reserves(p.receiver);
}

// Forget drops decided records only; the undecided ones keep their records
// and reserves; unknown txids are ignored; the session table keeps answering.
BOOST_AUTO_TEST_CASE(forget_drops_only_decided_records) {
    Pair p;
    const TxnId open = p.txid(1);
    const TxnId done = p.txid(2);
    const TxnId no = p.txid(3);
    as<Prepared>(step(p.sender, debit(open, 10)));
    as<Prepared>(step(p.sender, debit(done, 10)));
    as<Decided>(step(p.sender, commit_decision(done)));
    as<Prepared>(step(p.sender, debit(no, 1000)));
    as<Prepared>(step(p.receiver, credit(open, 10)));
    as<Answered>(step(p.receiver, Query{done}));  // a fence, undecided: kept

    const Forget f{{open, done, no, p.txid(99)}};
    BOOST_TEST(std::holds_alternative<std::monostate>(step(p.sender, f)));
    step(p.receiver, f);
    BOOST_TEST(p.sender.cross_txns().size() == 1U);
    BOOST_TEST(p.sender.cross_txn(open) != nullptr);
    BOOST_TEST(p.sender.held(kFrom) == 10);
    BOOST_TEST(p.receiver.cross_txns().size() == 2U);
    BOOST_TEST(p.receiver.cross_txn(open) != nullptr);
    BOOST_TEST(p.receiver.cross_txn(done) != nullptr);
    BOOST_TEST(p.receiver.pending(kTo) == 10);
    BOOST_TEST(p.sender.lookup(done) == committed(done));
    BOOST_TEST(p.sender.lookup(no) == aborted(no, AbortReason::insufficient_funds));
    BOOST_TEST(p.sender.balance(kFrom) == kInitial - 10);
    check_reserves(p.sender);
    check_reserves(p.receiver);
}

// ---- 4. exactly once on the debit side

// Once the commit is decided and its record forgotten, a retried
// PrepareDebit with the same txid gets the recorded committed result from
// the session table, places no hold and creates no record; so does a retry
// as an intra-shard transfer.
BOOST_AUTO_TEST_CASE(a_retried_prepare_debit_after_the_commit_and_forget_gets_the_committed_result) {
    Pair p;
    const TxnId id = p.txid(1);
    as<Prepared>(step(p.sender, debit(id, 40)));
    const Decided d = as<Decided>(step(p.sender, commit_decision(id)));
    BOOST_TEST(d.result == committed(id));
    BOOST_TEST(p.sender.lookup(id) == committed(id));
    step(p.sender, Forget{{id}});
    BOOST_TEST(p.sender.cross_txns().empty());

    BOOST_TEST(as<ApplyResult>(step(p.sender, debit(id, 40))) == committed(id));
    BOOST_TEST(p.sender.cross_txns().empty());
    BOOST_TEST(p.sender.held_total() == 0);
    BOOST_TEST(as<ApplyResult>(step(p.sender, Transfer{id, kFrom, ItemId{2}, 40})) == committed(id));
    BOOST_TEST(p.sender.balance(kFrom) == kInitial - 40);
    BOOST_TEST(p.sender.total() == kItems * kInitial - 40);
}

// The same before the record is forgotten (the receiver has not yet
// committed its decision, so the record must stay): the txid is known to
// the session table, so the retry is settled by it, as state_machine.hpp
// says of Applied ("a PrepareDebit that the session table settles at once
// (the txid is known ...) yields an ApplyResult"). No hold, no money moves.
BOOST_AUTO_TEST_CASE(a_retried_prepare_debit_after_the_commit_gets_the_committed_result) {
    Pair p;
    const TxnId id = p.txid(1);
    as<Prepared>(step(p.sender, debit(id, 40)));
    as<Decided>(step(p.sender, commit_decision(id)));
    BOOST_TEST(p.sender.lookup(id) == committed(id));

    const Applied retry = step(p.sender, debit(id, 40));
    BOOST_TEST(std::holds_alternative<ApplyResult>(retry), "the retry applied as alternative " << retry.index());
    if (const auto* r = std::get_if<ApplyResult>(&retry)) BOOST_TEST(*r == committed(id));
    // Whatever form the answer takes, the retry moved and reserved nothing.
    BOOST_TEST(p.sender.held_total() == 0);
    BOOST_TEST(p.sender.balance(kFrom) == kInitial - 40);
    BOOST_TEST(p.sender.cross_txn(id)->fate == Fate::committed);
    BOOST_TEST(p.sender.lookup(id) == committed(id));
}

// A txid moves money at most once, even when a (misbehaving) client reuses
// the txid of a cross-shard transfer in flight for an intra-shard
// transfer: the session table does not know the txid until the Decide, but
// the record does.
BOOST_AUTO_TEST_CASE(a_txid_in_flight_across_shards_moves_money_once_even_if_reused_for_a_transfer) {
    Pair p;
    const TxnId id = p.txid(1);
    as<Prepared>(step(p.sender, debit(id, 30)));
    const ApplyResult reused = as<ApplyResult>(step(p.sender, Transfer{id, kFrom, ItemId{2}, 30}));
    as<Decided>(step(p.sender, commit_decision(id)));
    // Item 1 lost 30 for txid id, once: either the transfer was refused or
    // the cross-shard commit did not post again.
    BOOST_TEST(p.sender.balance(kFrom) == kInitial - 30, "the transfer was answered " << reused);
    check_reserves(p.sender);
}

// ---- 5. snapshots

// snapshot() then restore() gives the same bytes, with every record and
// the holds and pending credits rebuilt, with live records in both
// directions (this shard the sender of some and the receiver of others);
// and the restored state goes on exactly like the original.
BOOST_AUTO_TEST_CASE(snapshot_round_trip_keeps_records_holds_and_pending) {
    ShardState a = created(kSender);
    ShardState b = created(kReceiver);
    const std::uint64_t sa = open_session(a);
    const std::uint64_t sb = open_session(b);
    // a -> b: live yes, no vote, committed, aborted with final_elsewhere, fenced at b.
    as<Prepared>(step(a, debit(TxnId{sa, 1}, 30)));
    as<Prepared>(step(a, debit(TxnId{sa, 2}, 20, ItemId{2})));
    as<Prepared>(step(a, debit(TxnId{sa, 3}, 1000)));
    as<Prepared>(step(a, debit(TxnId{sa, 4}, 5, ItemId{3})));
    as<Decided>(step(a, commit_decision(TxnId{sa, 4})));
    as<Prepared>(step(a, debit(TxnId{sa, 5}, 5, ItemId{3})));
    as<Decided>(step(a, abort_decision(TxnId{sa, 5}, AbortReason::timeout, true)));
    as<Answered>(step(a, Query{TxnId{sa, 6}}));
    as<Prepared>(step(b, credit(TxnId{sa, 1}, 30)));
    as<Prepared>(step(b, credit(TxnId{sa, 2}, 20)));  // the same item as sa:1
    as<Prepared>(step(b, credit(TxnId{sa, 4}, 5)));
    as<Decided>(step(b, commit_decision(TxnId{sa, 4}, true)));
    as<Answered>(step(b, Query{TxnId{sa, 7}}));
    // b -> a.
    const auto b_to_a = [](std::uint64_t session, std::uint64_t seq, std::int64_t amount) {
        return PrepareDebit{TxnId{session, seq}, ItemId{15}, ItemId{7}, kSender, amount};
    };
    as<Prepared>(step(b, b_to_a(sb, 1, 60)));
    as<Prepared>(step(b, b_to_a(sb, 2, 40)));
    as<Prepared>(step(a, PrepareCredit{TxnId{sb, 1}, ItemId{15}, ItemId{7}, 60}));
    as<Prepared>(step(a, PrepareCredit{TxnId{sb, 2}, ItemId{15}, ItemId{7}, 40}));
    as<Prepared>(step(a, PrepareCredit{TxnId{sb, 3}, ItemId{15}, ItemId{8}, kMax}));  // overflow: no vote

    BOOST_TEST(a.cross_txns().size() == 8U);
    BOOST_TEST(b.cross_txns().size() == 6U);
    BOOST_TEST(a.held(kFrom) == 30);
    BOOST_TEST(a.held(ItemId{2}) == 20);
    BOOST_TEST(a.pending(ItemId{7}) == 100);
    BOOST_TEST(b.pending(kTo) == 50);
    BOOST_TEST(b.held(ItemId{15}) == 100);
    check_reserves(a);
    check_reserves(b);

    ShardState ra = round_trip(a, kSender);
    ShardState rb = round_trip(b, kReceiver);
    for (const auto& [id, t] : a.cross_txns()) BOOST_TEST((ra.cross_txn(id) != nullptr && *ra.cross_txn(id) == t));
    BOOST_TEST(ra.lookup(TxnId{sa, 6}) == aborted(TxnId{sa, 6}, AbortReason::timeout));

    // Both copies apply the same next entries alike.
    const std::vector<Command> next_a{commit_decision(TxnId{sa, 1}), abort_decision(TxnId{sb, 1}), commit_decision(TxnId{sb, 2}),
                                      Forget{{TxnId{sa, 3}, TxnId{sa, 4}, TxnId{sa, 1}}},
                                      Transfer{TxnId{sa, 8}, kFrom, ItemId{2}, 70}};
    for (const Command& c : next_a) BOOST_TEST((step(a, c) == step(ra, c)));
    BOOST_TEST((a.snapshot() == ra.snapshot()));
    const std::vector<Command> next_b{commit_decision(TxnId{sa, 1}), abort_decision(TxnId{sa, 2}), abort_decision(TxnId{sb, 1}),
                                      commit_decision(TxnId{sb, 2})};
    for (const Command& c : next_b) BOOST_TEST((step(b, c) == step(rb, c)));
    BOOST_TEST((b.snapshot() == rb.snapshot()));
    round_trip(a, kSender);
    round_trip(b, kReceiver);
}

// The hand-built image follows the documented layout: its bytes are those
// snapshot() writes for the same state, and restore() rebuilds the hold.
BOOST_AUTO_TEST_CASE(a_hand_built_snapshot_matches_the_documented_layout) {
    Pair p;
    as<Prepared>(step(p.sender, debit(p.txid(1), 70)));
    BOOST_TEST((held_70_image().bytes() == p.sender.snapshot()));
    const ShardState r = ShardState::restore(kSender, held_70_image().bytes());
    BOOST_TEST(r.held(kFrom) == 70);
    BOOST_TEST((r.cross_txns() == p.sender.cross_txns()));

    // A fence record (credit side, amount 0, voted no, undecided) restores too.
    SnapshotImage fenced;
    fenced.shard = kReceiver;
    fenced.applied_index = 2;
    fenced.applied_epoch = 1;
    fenced.genesis = genesis_of(kReceiver);
    fenced.balances.assign(kItems, kInitial);
    RecordImage fence;
    fence.side = static_cast<std::uint8_t>(Side::credit);
    fence.txid = p.txid(2);
    fence.other = kSender.value;
    fence.vote_reason = static_cast<std::uint8_t>(AbortReason::timeout);
    fence.prepared_at = 2;
    fenced.records.push_back(fence);
    ShardState receiver = created(kReceiver);
    step(receiver, Query{p.txid(2)});
    BOOST_TEST((fenced.bytes() == receiver.snapshot()));
    BOOST_TEST(ShardState::restore(kReceiver, fenced.bytes()).cross_txns().size() == 1U);
}

// Records that apply() could never have written are rejected with
// std::runtime_error: amounts not positive, a flag byte out of range,
// a vote and its reason disagreeing, a commit without a yes vote, a hold
// beyond the balance, a Prepare after the snapshot's index, a side that
// does not match the txid's shard, records out of order, trailing bytes,
// and every truncation.
BOOST_AUTO_TEST_CASE(corrupt_cross_records_are_rejected) {
    struct Case {
        const char* what;
        void (*edit)(SnapshotImage&);
    };
    const Case cases[] = {
        {"amount 0", [](SnapshotImage& i) { i.records[0].amount = 0; }},
        {"negative amount", [](SnapshotImage& i) { i.records[0].amount = -70; }},
        {"hold beyond the balance", [](SnapshotImage& i) { i.records[0].amount = kInitial + 1; }},
        {"side byte 7", [](SnapshotImage& i) { i.records[0].side = 7; }},
        {"side byte 0", [](SnapshotImage& i) { i.records[0].side = 0; }},
        {"voted_yes byte 7", [](SnapshotImage& i) { i.records[0].voted_yes = 7; }},
        {"fate byte 7", [](SnapshotImage& i) { i.records[0].fate = 7; }},
        {"fate byte 3", [](SnapshotImage& i) { i.records[0].fate = 3; }},
        {"final_elsewhere byte 7", [](SnapshotImage& i) { i.records[0].final_elsewhere = 7; }},
        {"a yes vote with a reason", [](SnapshotImage& i) { i.records[0].vote_reason = 1; }},
        {"a no vote without a reason", [](SnapshotImage& i) { i.records[0].voted_yes = 0; }},
        {"committed without a yes vote",
         [](SnapshotImage& i) {
             i.records[0].voted_yes = 0;
             i.records[0].vote_reason = static_cast<std::uint8_t>(AbortReason::insufficient_funds);
             i.records[0].fate = static_cast<std::uint8_t>(Fate::committed);
         }},
        {"committed with a reason",
         [](SnapshotImage& i) {
             i.records[0].fate = static_cast<std::uint8_t>(Fate::committed);
             i.records[0].fate_reason = static_cast<std::uint8_t>(AbortReason::timeout);
         }},
        {"aborted for an answer-only reason",
         [](SnapshotImage& i) {
             i.records[0].fate = static_cast<std::uint8_t>(Fate::aborted);
             i.records[0].fate_reason = static_cast<std::uint8_t>(AbortReason::session_expired);
         }},
        {"prepared after the snapshot", [](SnapshotImage& i) { i.records[0].prepared_at = 4; }},
        {"the other shard is this one", [](SnapshotImage& i) { i.records[0].other = kSender.value; }},
        {"the other shard is 0", [](SnapshotImage& i) { i.records[0].other = 0; }},
        {"debited item not in the shard", [](SnapshotImage& i) { i.records[0].from = kTo.value; }},
        {"a credit of this shard's own session",
         [](SnapshotImage& i) {
             i.records[0].side = static_cast<std::uint8_t>(Side::credit);
             i.records[0].to = 2;
         }},
        {"a debit of another shard's session",
         [](SnapshotImage& i) { i.records[0].txid.session = session_id(kReceiver, LogIndex{2}); }},
        {"records out of order",
         [](SnapshotImage& i) {
             RecordImage earlier = i.records[0];
             earlier.txid.seq = 0;
             earlier.amount = 1;
             i.records.push_back(earlier);
         }},
        {"a record twice", [](SnapshotImage& i) { i.records.push_back(i.records[0]); }},
    };
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT(c.what) {
            SnapshotImage img = held_70_image();
            c.edit(img);
            check_rejected(img.bytes());
        }
    }

    std::vector<std::uint8_t> bytes = held_70_image().bytes();
    bytes.push_back(0);
    BOOST_TEST_CONTEXT("a trailing byte") { check_rejected(bytes); }
    bytes.pop_back();
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        BOOST_TEST_CONTEXT("cut to " << n << " bytes") {
            check_rejected(std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
        }
    }
}

// Whatever record apply() keeps, a snapshot of it restores: a replica that
// applied the log and one that installs its snapshot must agree. The
// entries here are ones the edge refuses, but a log may still hold them
// (a buggy or older leader), and apply() accepts and records each as a no vote.
BOOST_AUTO_TEST_CASE(every_record_apply_keeps_survives_snapshot_and_restore) {
    struct Case {
        const char* what;
        bool on_sender;
        Command (*entry)(std::uint64_t session);
    };
    const Case cases[] = {
        {"PrepareDebit of amount 0", true, [](std::uint64_t s) -> Command { return debit(TxnId{s, 1}, 0); }},
        {"PrepareDebit of amount -5", true, [](std::uint64_t s) -> Command { return debit(TxnId{s, 1}, -5); }},
        {"PrepareDebit from an item of another shard", true,
         [](std::uint64_t s) -> Command { return debit(TxnId{s, 1}, 5, kTo, ItemId{12}); }},
        {"PrepareDebit to this shard", true,
         [](std::uint64_t s) -> Command { return PrepareDebit{TxnId{s, 1}, kFrom, ItemId{2}, kSender, 5}; }},
        {"PrepareDebit to shard 0", true,
         [](std::uint64_t s) -> Command { return PrepareDebit{TxnId{s, 1}, kFrom, kTo, ShardId{0}, 5}; }},
        {"PrepareCredit of amount 0", false, [](std::uint64_t s) -> Command { return credit(TxnId{s, 1}, 0); }},
        {"PrepareCredit of amount -5", false, [](std::uint64_t s) -> Command { return credit(TxnId{s, 1}, -5); }},
        {"PrepareCredit to an item of another shard", false,
         [](std::uint64_t s) -> Command { return credit(TxnId{s, 1}, 5, ItemId{2}); }},
        {"PrepareCredit of this shard's own session", false,
         [](std::uint64_t) -> Command { return credit(TxnId{session_id(kReceiver, LogIndex{1}), 1}, 5); }},
        {"PrepareCredit of a session of shard 0", false,
         [](std::uint64_t) -> Command { return credit(TxnId{7, 1}, 5); }},
        {"Query of a session of shard 0", false, [](std::uint64_t) -> Command { return Query{TxnId{7, 1}}; }},
    };
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT(c.what) {
            Pair p;
            ShardState& s = c.on_sender ? p.sender : p.receiver;
            const ShardId shard = c.on_sender ? kSender : kReceiver;
            step(s, c.entry(p.session));
            BOOST_TEST(s.held_total() == 0);
            BOOST_TEST(s.pending_total() == 0);
            const std::vector<std::uint8_t> bytes = s.snapshot();
            try {
                BOOST_TEST((ShardState::restore(shard, bytes).snapshot() == bytes));
            } catch (const std::runtime_error& e) {
                BOOST_ERROR("a snapshot of the state apply() produced is refused: " << e.what());
            }
        }
    }
}

// A Decide whose fate byte is neither committed nor aborted (a corrupt or
// buggy entry) is no decision, like Decide{undecided}: it must leave the
// record, its hold and the session table as they were, and the state must
// still snapshot and restore.
BOOST_AUTO_TEST_CASE(a_decide_with_an_invalid_fate_changes_nothing) {
    Pair p;
    const TxnId id = p.txid(1);
    as<Prepared>(step(p.sender, debit(id, 20)));
    const CrossTxn before = *p.sender.cross_txn(id);
    step(p.sender, Decide{id, static_cast<Fate>(7), 0, false});
    BOOST_TEST((*p.sender.cross_txn(id) == before));
    BOOST_TEST(p.sender.held(kFrom) == 20);
    BOOST_TEST(p.sender.balance(kFrom) == kInitial);
    BOOST_TEST(!p.sender.lookup(id).has_value());
    const std::vector<std::uint8_t> bytes = p.sender.snapshot();
    try {
        BOOST_TEST((ShardState::restore(kSender, bytes).snapshot() == bytes));
    } catch (const std::runtime_error& e) {
        BOOST_ERROR("a snapshot of the state apply() produced is refused: " << e.what());
    }
}

// ---- 6. restore-equivalence

// One shard's log with every kind of entry, this shard both the sender of
// some transfers and the receiver of others, with fences, duplicates,
// conflicts, Forgets, an epoch change, and live records at the end. For
// every cut, a state restored from the snapshot at the cut and fed the rest
// gives the same result for every entry and ends byte-identical to the
// state fed the whole log; at the cut, restore() rebuilt the same holds and
// pending credits.
BOOST_AUTO_TEST_CASE(restoring_midway_then_applying_the_rest_ends_byte_identical) {
    const std::uint64_t s1 = session_id(kSender, LogIndex{2});
    const std::uint64_t s2 = session_id(kSender, LogIndex{3});
    const std::uint64_t s3 = session_id(kSender, LogIndex{24});
    const std::uint64_t foreign = session_id(kReceiver, LogIndex{2});
    const auto inbound = [&](std::uint64_t seq, std::uint64_t to, std::int64_t amount) {
        return PrepareCredit{TxnId{foreign, seq}, ItemId{11}, ItemId{to}, amount};
    };
    const std::vector<Command> commands{
        genesis_of(kSender),                                       // 1
        OpenSession{},                                             // 2: s1
        OpenSession{},                                             // 3: s2
        Transfer{TxnId{s1, 1}, kFrom, ItemId{2}, 10},              // 4
        debit(TxnId{s1, 2}, 60, ItemId{3}),                        // 5: yes, hold 60 on item 3
        debit(TxnId{s2, 1}, 50, ItemId{3}),                        // 6: no, 40 available
        inbound(1, 4, 25),                                         // 7: yes, pending 25 on item 4
        Transfer{TxnId{s1, 3}, ItemId{3}, ItemId{5}, 40},          // 8: uses the rest of item 3
        Query{TxnId{s1, 4}},                                       // 9: fences s1:4 here
        debit(TxnId{s1, 4}, 5),                                    // 10: answered timeout
        Query{TxnId{foreign, 2}},                                  // 11: a receiver fence
        inbound(2, 4, 5),                                          // 12: votes no
        commit_decision(TxnId{s1, 2}),                                      // 13
        Noop{},                                                    // 14: epoch 2 from here
        debit(TxnId{s2, 2}, 30, ItemId{6}),                        // 15: yes
        commit_decision(TxnId{foreign, 1}, true),                           // 16
        Query{TxnId{s2, 2}},                                       // 17: voted_yes
        Forget{{TxnId{s1, 2}, TxnId{s2, 1}, TxnId{foreign, 2}, TxnId{s2, 2}}},  // 18: s2:2 and the fence stay
        debit(TxnId{s1, 2}, 60, ItemId{3}),                        // 19: the table answers
        abort_decision(TxnId{s2, 2}, AbortReason::timeout),                 // 20
        Transfer{TxnId{s2, 3}, ItemId{6}, ItemId{7}, 100},         // 21: the hold is gone
        commit_decision(TxnId{s2, 2}),                                      // 22: conflicting
        Forget{{TxnId{s2, 2}, TxnId{foreign, 1}}},                 // 23
        OpenSession{},                                             // 24: s3
        inbound(3, 8, 5),                                          // 25: live at the end
        debit(TxnId{s3, 1}, 99, ItemId{9}),                        // 26: live at the end
        debit(TxnId{s3, 1}, 99, ItemId{9}),                        // 27: duplicate
        Release{TxnId{foreign, 2}},                                // 28: the fence goes
    };
    std::vector<LogEntry> log;
    for (std::size_t i = 0; i < commands.size(); ++i) {
        log.push_back(LogEntry{LogIndex{i + 1}, Epoch{i + 1 < 14 ? 1U : 2U}, commands[i]});
    }

    ShardState whole(kSender);
    std::vector<Applied> results;
    std::vector<std::vector<std::uint8_t>> prefixes{whole.snapshot()};
    for (const LogEntry& e : log) {
        results.push_back(whole.apply(e));
        prefixes.push_back(whole.snapshot());
        check_reserves(whole);
    }
    // The log did what its comments say.
    BOOST_TEST(as<Prepared>(results[4]).txn.voted_yes);
    BOOST_TEST(!as<Prepared>(results[5]).txn.voted_yes);
    BOOST_TEST(as<ApplyResult>(results[7]) == committed(TxnId{s1, 3}));
    BOOST_TEST(as<ApplyResult>(results[9]) == aborted(TxnId{s1, 4}, AbortReason::timeout));
    BOOST_TEST(!as<Prepared>(results[11]).txn.voted_yes);
    BOOST_TEST(as<Answered>(results[16]).state == QueryState::voted_yes);
    BOOST_TEST(as<ApplyResult>(results[18]) == committed(TxnId{s1, 2}));
    BOOST_TEST(as<ApplyResult>(results[20]) == committed(TxnId{s2, 3}));
    BOOST_TEST(as<Decided>(results[21]).conflicting);
    BOOST_TEST(!as<Prepared>(results[26]).created);
    BOOST_TEST(whole.cross_txns().size() == 2U);
    BOOST_TEST(whole.held(ItemId{9}) == 99);
    BOOST_TEST(whole.pending(ItemId{8}) == 5);
    BOOST_TEST(whole.total() == kItems * kInitial - 60 + 25);

    for (std::size_t cut = 0; cut <= log.size(); ++cut) {
        BOOST_TEST_CONTEXT("restored after " << cut << " entries") {
            ShardState prefix(kSender);
            for (std::size_t i = 0; i < cut; ++i) prefix.apply(log[i]);
            BOOST_TEST((prefix.snapshot() == prefixes[cut]));
            ShardState restored = round_trip(prefix, kSender);
            for (std::size_t i = cut; i < log.size(); ++i) {
                BOOST_TEST((restored.apply(log[i]) == results[i]), "entry " << i + 1);
            }
            BOOST_TEST((restored.snapshot() == prefixes.back()));
            check_reserves(restored);
        }
    }
}

// A receiver's undecided record that the coordinator's shard had finished
// before (a late duplicate Prepare after both sides forgot the transaction)
// is released without a decision: its pending credit goes, nothing is
// posted, and the log never decides the txid a second time.
BOOST_AUTO_TEST_CASE(a_release_drops_an_undecided_credit_without_deciding_it) {
    Pair p;
    const TxnId id = p.txid(1);
    as<Prepared>(step(p.receiver, credit(id, 30)));
    BOOST_TEST(p.receiver.pending_total() == 30);
    BOOST_TEST(std::holds_alternative<std::monostate>(step(p.receiver, Release{id})));
    BOOST_TEST(p.receiver.cross_txn(id) == nullptr);
    BOOST_TEST(p.receiver.pending_total() == 0);
    BOOST_TEST(p.receiver.total() == kItems * kInitial);
    // A decided record is not released (Forget drops it once final).
    const TxnId decided = p.txid(2);
    as<Prepared>(step(p.receiver, credit(decided, 5)));
    as<Decided>(step(p.receiver, commit_decision(decided)));
    step(p.receiver, Release{decided});
    BOOST_REQUIRE(p.receiver.cross_txn(decided) != nullptr);
    BOOST_TEST((p.receiver.cross_txn(decided)->fate == Fate::committed));
    // Nor is a sender's record.
    as<Prepared>(step(p.sender, debit(p.txid(3), 7)));
    step(p.sender, Release{p.txid(3)});
    BOOST_TEST(p.sender.held_total() == 7);
}

// A Reset applies only while the shard records no cross-shard transaction
// (docs/design.md section 6.8): a hold, a pending credit or a decided
// record the other shard still needs would otherwise be lost. Once both
// sides forgot the transaction, the reset applies on either side.
BOOST_AUTO_TEST_CASE(a_reset_changes_nothing_while_a_cross_shard_record_remains) {
    Pair p;
    const TxnId id = p.txid(1);
    as<Prepared>(step(p.sender, debit(id, 30)));
    as<Prepared>(step(p.receiver, credit(id, 30)));
    BOOST_TEST((as<ResetApplied>(step(p.sender, Reset{})) == ResetApplied{false, 1}));
    BOOST_TEST((as<ResetApplied>(step(p.receiver, Reset{})) == ResetApplied{false, 1}));
    BOOST_TEST(p.sender.held_total() == 30);
    BOOST_TEST(p.receiver.pending_total() == 30);
    as<Decided>(step(p.sender, commit_decision(id)));
    as<Decided>(step(p.receiver, commit_decision(id, true)));
    // Decided but not forgotten: still refused.
    BOOST_TEST((as<ResetApplied>(step(p.receiver, Reset{})) == ResetApplied{false, 1}));
    BOOST_TEST(p.receiver.balance(kTo) == kInitial + 30);
    step(p.sender, Forget{{id}});
    step(p.receiver, Forget{{id}});
    BOOST_TEST((as<ResetApplied>(step(p.sender, Reset{})) == ResetApplied{true, 0}));
    BOOST_TEST((as<ResetApplied>(step(p.receiver, Reset{})) == ResetApplied{true, 0}));
    BOOST_TEST(p.sender.balance(kFrom) == kInitial);
    BOOST_TEST(p.receiver.balance(kTo) == kInitial);
    check_reserves(p.sender);
    check_reserves(p.receiver);
    // The sender's session still answers the transfer's retry.
    BOOST_TEST((p.sender.lookup(id) == committed(id)));
}

BOOST_AUTO_TEST_CASE(a_fence_left_by_a_query_also_holds_a_reset_back) {
    Pair p;
    const TxnId id = p.txid(1);
    step(p.receiver, Query{id});
    BOOST_TEST((as<ResetApplied>(step(p.receiver, Reset{})) == ResetApplied{false, 1}));
    step(p.receiver, Release{id});
    BOOST_TEST((as<ResetApplied>(step(p.receiver, Reset{})) == ResetApplied{true, 0}));
}
