// The arithmetic of `rlcat audit` (tools/audit.hpp; docs/design.md sections
// 4 and 6.7) on shards' answers built by hand: no cluster.
#define BOOST_TEST_MODULE audit
#include "tools/audit.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <limits>

using rl::ItemId;
using rl::ShardId;
using rl::tools::audit_books;
using rl::txn::AuditDone;
using rl::txn::AuditTxn;

namespace {

constexpr std::uint8_t kDebit = 1;
constexpr std::uint8_t kCredit = 2;
constexpr std::uint8_t kUndecided = 0;
constexpr std::uint8_t kCommitted = 1;
constexpr std::uint8_t kAborted = 2;

// 100 items of 10 each: 1000 expected per shard.
AuditDone shard(std::uint64_t id, std::int64_t posted, std::int64_t held = 0, std::int64_t pending = 0) {
    AuditDone a;
    a.shard = ShardId{id};
    a.applied_index = rl::LogIndex{40 + id};
    a.items = 100;
    a.initial_balance = 10;
    a.total = posted;
    a.held = held;
    a.pending = pending;
    return a;
}

// Transaction 7:1, item 1 of shard 1 to item 150 of shard 2.
AuditTxn side(std::uint8_t which, std::int64_t amount, std::uint8_t fate, std::uint64_t age_ms = 0) {
    AuditTxn t;
    t.txid = {(std::uint64_t{1} << 48) + 7, 1};
    t.side = which;
    t.from = ItemId{1};
    t.to = ItemId{150};
    t.other = ShardId{which == kDebit ? 2u : 1u};
    t.amount = amount;
    t.voted_yes = true;
    t.fate = fate;
    t.age_ms = age_ms;
    return t;
}

bool mentions(const rl::tools::AuditReport& r, const std::string& text) {
    return std::any_of(r.problems.begin(), r.problems.end(),
                       [&](const std::string& p) { return p.find(text) != std::string::npos; });
}

}  // namespace

BOOST_AUTO_TEST_CASE(balanced_quiescent_books_are_ok) {
    const auto r = audit_books({shard(1, 993), shard(2, 1007)});
    BOOST_TEST(r.ok);
    BOOST_TEST(r.problems.empty());
    BOOST_TEST(r.total.items == 200u);
    BOOST_TEST(r.total.expected == 2000);
    BOOST_TEST(r.total.posted == 2000);
    BOOST_TEST(r.total.balanced_by == "books");
    BOOST_TEST(r.in_flight.empty());
    BOOST_REQUIRE(r.shards.size() == 2u);
    BOOST_TEST(r.shards[0].expected == 1000);
    BOOST_TEST(r.shards[0].posted == 993);
}

BOOST_AUTO_TEST_CASE(a_negative_item_fails_and_is_named) {
    auto one = shard(1, 1000);
    one.negatives = {{ItemId{5}, -3}};
    const auto r = audit_books({one, shard(2, 1000)});
    BOOST_TEST(!r.ok);
    BOOST_TEST(r.total.negatives == 1u);
    BOOST_TEST(mentions(r, "shard 1 item 5"), r.problems.front());
    BOOST_TEST(mentions(r, "-3"));
    BOOST_TEST(!r.may_be_skew);  // reading again cannot cure it
}

BOOST_AUTO_TEST_CASE(quiescent_books_off_by_one_fail) {
    const auto r = audit_books({shard(1, 1000), shard(2, 999)});
    BOOST_TEST(!r.ok);
    BOOST_TEST(r.total.balanced_by.empty());
    BOOST_TEST(mentions(r, "nothing is in flight"));
    BOOST_TEST(mentions(r, "by -1"));
    BOOST_TEST(r.may_be_skew);  // two shards read apart: rlcat reads again first
}

BOOST_AUTO_TEST_CASE(one_shard_off_is_not_blamed_on_skew) {
    const auto r = audit_books({shard(1, 1001)});
    BOOST_TEST(!r.ok);
    BOOST_TEST(!r.may_be_skew);
}

BOOST_AUTO_TEST_CASE(debit_committed_credit_pending_balances_when_the_amount_explains_it) {
    auto one = shard(1, 995);
    one.txns = {side(kDebit, 5, kCommitted, 30)};
    auto two = shard(2, 1000, 0, 5);
    two.txns = {side(kCredit, 5, kUndecided, 12)};
    const auto r = audit_books({one, two});
    BOOST_TEST(r.ok, (r.problems.empty() ? "" : r.problems.front()));
    BOOST_TEST(r.total.balanced_by == "in_flight");
    BOOST_TEST(r.total.debited_not_credited == 5);
    BOOST_TEST(r.total.credited_not_debited == 0);
    BOOST_TEST(r.total.undecided == 1u);
    BOOST_REQUIRE(r.in_flight.size() == 1u);
    const auto& f = r.in_flight.front();
    BOOST_TEST(f.amount == 5);
    BOOST_TEST(f.counts == 5);
    BOOST_TEST(f.age_ms == 30u);
    BOOST_TEST(std::string(f.debit.state()) == "committed");
    BOOST_TEST(std::string(f.credit.state()) == "undecided");
    BOOST_TEST(f.debit.shard == ShardId{1});
    BOOST_TEST(f.credit.shard == ShardId{2});
}

BOOST_AUTO_TEST_CASE(debit_committed_credit_pending_fails_when_the_amount_does_not_explain_it) {
    auto one = shard(1, 994);  // 6 left shard 1, but the transaction moves 5
    one.txns = {side(kDebit, 5, kCommitted)};
    auto two = shard(2, 1000, 0, 5);
    two.txns = {side(kCredit, 5, kUndecided)};
    const auto r = audit_books({one, two});
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "off by -1"), r.problems.front());
    BOOST_TEST(r.in_flight.size() == 1u);
    BOOST_TEST(r.may_be_skew);
}

BOOST_AUTO_TEST_CASE(credit_committed_debit_held_counts_the_other_way) {
    auto one = shard(1, 1000, 5);
    one.txns = {side(kDebit, 5, kUndecided)};
    auto two = shard(2, 1005);
    two.txns = {side(kCredit, 5, kCommitted)};
    const auto r = audit_books({one, two});
    BOOST_TEST(r.ok);
    BOOST_TEST(r.total.credited_not_debited == 5);
    BOOST_REQUIRE(r.in_flight.size() == 1u);
    BOOST_TEST(r.in_flight.front().counts == -5);
    BOOST_TEST(r.total.held == 5);
}

// A committed debit whose credit record is missing, while something else is
// undecided: the credit is either not prepared yet (not posted) or decided
// and forgotten (posted). Either explains the books; nothing else does.
BOOST_AUTO_TEST_CASE(a_missing_side_counts_as_not_committed_or_as_forgotten) {
    auto other = side(kDebit, 2, kUndecided);
    other.txid.seq = 2;
    auto one = shard(1, 995, 2);
    one.txns = {side(kDebit, 5, kCommitted), other};
    auto two = shard(2, 1000);
    two.txns = {};
    auto r = audit_books({one, two});
    BOOST_TEST(r.ok);
    BOOST_TEST(r.total.balanced_by == "in_flight");
    BOOST_REQUIRE(r.in_flight.size() == 2u);
    BOOST_TEST(std::string(r.in_flight.front().credit.state()) == "missing");
    BOOST_TEST(r.in_flight.front().credit.shard == ShardId{2});

    two.total = 1005;
    r = audit_books({one, two});
    BOOST_TEST(r.ok);
    BOOST_TEST(r.total.balanced_by == "forgotten_sides");

    two.total = 1004;
    r = audit_books({one, two});
    BOOST_TEST(!r.ok);
}

// With nothing undecided a one-sided committed record is a decided
// transaction whose other shard has forgotten it: not in flight.
BOOST_AUTO_TEST_CASE(quiescent_books_ignore_a_side_the_other_shard_forgot) {
    auto one = shard(1, 995);
    one.txns = {side(kDebit, 5, kCommitted)};
    auto r = audit_books({one, shard(2, 1005)});
    BOOST_TEST(r.ok);
    BOOST_TEST(r.in_flight.empty());
    BOOST_TEST(r.total.balanced_by == "books");
    r = audit_books({one, shard(2, 1000)});  // the credit never posted
    BOOST_TEST(!r.ok);
}

BOOST_AUTO_TEST_CASE(decided_records_on_both_sides_count_nothing) {
    auto one = shard(1, 995);
    auto aborted = side(kDebit, 3, kAborted);
    aborted.txid.seq = 2;
    one.txns = {side(kDebit, 5, kCommitted), aborted};
    auto two = shard(2, 1005);
    auto aborted_credit = side(kCredit, 3, kAborted);
    aborted_credit.txid.seq = 2;
    two.txns = {side(kCredit, 5, kCommitted), aborted_credit};
    const auto r = audit_books({one, two});
    BOOST_TEST(r.ok);
    BOOST_TEST(r.in_flight.empty());
}

BOOST_AUTO_TEST_CASE(committed_on_one_side_and_aborted_on_the_other_fails) {
    auto one = shard(1, 995);
    one.txns = {side(kDebit, 5, kCommitted)};
    auto two = shard(2, 1005);
    two.txns = {side(kCredit, 5, kAborted)};
    const auto r = audit_books({one, two});
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "committed on its debit side (shard 1) but aborted on its credit side (shard 2)"),
               r.problems.front());
    BOOST_TEST(!r.may_be_skew);
}

BOOST_AUTO_TEST_CASE(a_record_of_an_unknown_side_or_a_negative_amount_is_a_problem_not_a_crash) {
    auto one = shard(1, 1000);
    one.txns = {side(3, 5, kUndecided)};
    auto two = shard(2, 1000);
    two.txns = {side(kCredit, std::numeric_limits<std::int64_t>::min(), kCommitted)};
    const auto r = audit_books({one, two});
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "unknown side 3"));
    BOOST_TEST(mentions(r, "negative amount"));
    BOOST_TEST(!r.may_be_skew);
}

BOOST_AUTO_TEST_CASE(holds_that_the_undecided_records_do_not_explain_fail) {
    auto one = shard(1, 1000, 4);  // holds 4, but its one undecided debit holds 5
    one.txns = {side(kDebit, 5, kUndecided)};
    auto two = shard(2, 1000, 0, 5);
    two.txns = {side(kCredit, 5, kUndecided)};
    const auto r = audit_books({one, two});
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "shard 1 holds 4 but its undecided debits hold 5"));
}

BOOST_AUTO_TEST_CASE(totals_that_overflow_fail_rather_than_wrap) {
    auto one = shard(1, std::numeric_limits<std::int64_t>::max());
    one.items = 1;
    one.initial_balance = std::numeric_limits<std::int64_t>::max();
    const auto r = audit_books({one, one});
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "64 bits"));
    BOOST_TEST(mentions(r, "shard 1 answered twice"));
}

BOOST_AUTO_TEST_CASE(json_has_the_contract_shape) {
    auto one = shard(1, 995);
    one.txns = {side(kDebit, 5, kCommitted, 30)};
    one.negatives = {{ItemId{9}, -1}};
    auto two = shard(2, 1000, 0, 5);
    two.txns = {side(kCredit, 5, kUndecided, 12)};
    const auto j = rl::tools::audit_json(audit_books({one, two}), 2);
    std::vector<std::string> keys;
    for (const auto& [k, v] : j.items()) keys.push_back(k);
    BOOST_TEST(keys == (std::vector<std::string>{"ok", "shards", "total", "in_flight", "problems", "reads"}),
               boost::test_tools::per_element());
    BOOST_TEST(!j.at("ok").get<bool>());
    BOOST_TEST(j.at("reads").get<int>() == 2);
    BOOST_REQUIRE(j.at("shards").size() == 2u);
    const auto& s = j.at("shards")[0];
    for (const char* k : {"shard", "applied_index", "items", "initial_balance", "expected", "posted", "held",
                          "pending", "available", "undecided", "negatives"}) {
        BOOST_TEST(s.contains(k), k);
    }
    BOOST_TEST(s.at("negatives")[0].at("item").get<int>() == 9);
    BOOST_TEST(s.at("negatives")[0].at("balance").get<int>() == -1);
    const auto& t = j.at("total");
    for (const char* k : {"items", "expected", "posted", "held", "pending", "available", "undecided", "negatives",
                          "debited_not_credited", "credited_not_debited", "balanced_by"}) {
        BOOST_TEST(t.contains(k), k);
    }
    BOOST_TEST(t.at("expected").get<int>() == 2000);
    BOOST_TEST(t.at("pending").get<int>() == 5);
    BOOST_REQUIRE(j.at("in_flight").size() == 1u);
    const auto& f = j.at("in_flight")[0];
    BOOST_TEST(f.at("txid").get<std::string>() == std::to_string((std::uint64_t{1} << 48) + 7) + ":1");
    BOOST_TEST(f.at("amount").get<int>() == 5);
    BOOST_TEST(f.at("counts").get<int>() == 5);
    BOOST_TEST(f.at("debit").at("state").get<std::string>() == "committed");
    BOOST_TEST(f.at("credit").at("state").get<std::string>() == "undecided");
    BOOST_TEST(f.at("credit").at("shard").get<int>() == 2);
    BOOST_TEST(f.at("credit").at("age_ms").get<int>() == 12);
    BOOST_REQUIRE(j.at("problems").size() == 1u);
    BOOST_TEST(j.at("problems")[0].get<std::string>().find("item 9") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(text_prints_shards_total_in_flight_and_ok) {
    auto one = shard(1, 995);
    one.txns = {side(kDebit, 5, kCommitted, 30)};
    auto two = shard(2, 1000, 0, 5);
    two.txns = {side(kCredit, 5, kUndecided, 12)};
    const auto lines = rl::tools::audit_text(audit_books({one, two}));
    const std::string txid = std::to_string((std::uint64_t{1} << 48) + 7) + ":1";
    const std::vector<std::string> want = {
        "shard=1 applied_index=41 items=100 initial_balance=10 expected=1000 posted=995 held=0 pending=0 "
        "available=995 undecided=0 negatives=none",
        "shard=2 applied_index=42 items=100 initial_balance=10 expected=1000 posted=1000 held=0 pending=5 "
        "available=1000 undecided=1 negatives=none",
        "total items=200 expected=2000 posted=1995 held=0 pending=5 available=1995 undecided=1 negatives=0 "
        "debited_not_credited=5 credited_not_debited=0 balanced_by=in_flight reads=1",
        "in_flight txid=" + txid + " from=1 to=150 amount=5 age_ms=30 counts=5 debit=1:committed "
        "credit=2:undecided:yes",
        "ok",
    };
    BOOST_TEST(lines == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(text_ends_with_one_line_per_problem) {
    const auto lines = rl::tools::audit_text(audit_books({shard(1, 1000), shard(2, 999)}), 5);
    BOOST_REQUIRE(lines.size() == 4u);
    BOOST_TEST(lines[2].find("balanced_by=none reads=5") != std::string::npos, lines[2]);
    BOOST_TEST(lines[3].rfind("problem: nothing is in flight", 0) == 0, lines[3]);
}
