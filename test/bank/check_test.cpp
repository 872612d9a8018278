// The bank checker (tools/bank/check.hpp) on hand-made histories: each
// violation it exists for must fail with a line that names it, and honest
// histories, with or without unknown outcomes, must pass.
#define BOOST_TEST_MODULE bank_check_test
#include "tools/bank/check.hpp"
#include "tools/bank/schedule.hpp"

#include <boost/test/unit_test.hpp>

#include <set>

using namespace rl::bank;

namespace {

Transfer transfer(const std::string& txid, std::uint64_t from, std::uint64_t to, std::int64_t amount,
                  Outcome outcome, const std::string& reason = {}) {
    Transfer t;
    t.txid = txid;
    t.from = from;
    t.to = to;
    t.amount = amount;
    t.outcome = outcome;
    t.reason = reason;
    return t;
}

// Items 1..4 in shard 1 (nodes 1, 2, 3) and 5..8 in shard 2 (nodes 4, 5, 6),
// each starting at 100; the replicas hold `final_balances` (100 where absent)
// and the audit passed.
History history(const std::vector<Transfer>& transfers, const std::map<std::uint64_t, std::int64_t>& final_balances) {
    History h;
    for (std::uint64_t i = 1; i <= 8; ++i) h.initial[i] = 100;
    h.transfers = transfers;
    for (std::uint64_t shard : {1, 2}) {
        ShardReplicas s{shard, {}, 3};
        for (std::uint64_t n = 1; n <= 3; ++n) {
            Replica r{(shard - 1) * 3 + n, 42, {}};
            for (std::uint64_t i = (shard - 1) * 4 + 1; i <= shard * 4; ++i) {
                const auto it = final_balances.find(i);
                r.items[i] = ItemState{it == final_balances.end() ? 100 : it->second, 0, 0};
            }
            s.replicas.push_back(r);
        }
        h.shards.push_back(s);
    }
    h.audit = AuditRun{true, 0, "ok"};
    return h;
}

bool mentions(const CheckResult& r, const std::string& text) {
    for (const auto& f : r.failures) {
        if (f.find(text) != std::string::npos) return true;
    }
    return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_honest_history_passes) {
    const auto h = history({transfer("1:1", 1, 2, 10, Outcome::committed),
                            transfer("1:2", 2, 6, 5, Outcome::committed),
                            transfer("1:3", 3, 4, 500, Outcome::aborted, "insufficient_funds")},
                           {{1, 90}, {2, 105}, {6, 105}});
    const auto r = check(h);
    BOOST_TEST(r.ok);
    BOOST_TEST(r.failures.empty());
}

BOOST_AUTO_TEST_CASE(a_lost_acknowledged_commit_fails) {
    const auto h = history({transfer("1:1", 1, 2, 10, Outcome::committed), transfer("1:2", 3, 6, 7, Outcome::committed)},
                           {{1, 90}, {2, 110}});
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "item 3: final balance 100"));
    BOOST_TEST(mentions(r, "acknowledged commit not applied: txid 1:2"));
}

BOOST_AUTO_TEST_CASE(a_doubly_applied_commit_fails) {
    const auto h = history({transfer("1:1", 1, 2, 10, Outcome::committed)}, {{1, 80}, {2, 120}});
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "acknowledged commit applied twice: txid 1:1"));
}

BOOST_AUTO_TEST_CASE(an_applied_acknowledged_abort_fails) {
    const auto h = history({transfer("1:1", 1, 5, 10, Outcome::aborted, "insufficient_funds")}, {{1, 90}, {5, 110}});
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "acknowledged abort applied: txid 1:1"));
}

BOOST_AUTO_TEST_CASE(unknown_transfers_that_explain_the_balances_pass) {
    // Of three unknown transfers in one component, only 2:1 and 2:3 happened.
    const auto h = history({transfer("1:1", 1, 2, 10, Outcome::committed), transfer("2:1", 2, 3, 4, Outcome::unknown),
                            transfer("2:2", 3, 4, 6, Outcome::unknown), transfer("2:3", 4, 5, 3, Outcome::unknown),
                            transfer("2:4", 7, 8, 9, Outcome::unknown)},
                           {{1, 90}, {2, 106}, {3, 104}, {4, 97}, {5, 103}});
    const auto r = check(h);
    BOOST_TEST(r.ok);
    BOOST_TEST(r.unknown == 4u);
    BOOST_TEST(r.components == 2u);
    BOOST_TEST(r.unknown_applied == (std::vector<std::size_t>{1, 3}));
}

BOOST_AUTO_TEST_CASE(unknown_transfers_that_cannot_explain_the_balances_fail) {
    // Item 1 lost 7, but the only unknown transfers touching it move 5 and 4.
    const auto h = history({transfer("2:1", 1, 2, 5, Outcome::unknown), transfer("2:2", 1, 3, 4, Outcome::unknown)},
                           {{1, 93}, {2, 107}});
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "no subset of 2 unknown-outcome transfers over 3 items"));
    BOOST_TEST(!r.search_bound_hit);
}

BOOST_AUTO_TEST_CASE(a_search_that_hits_its_bound_says_so) {
    std::vector<Transfer> ts;
    for (int i = 0; i < 12; ++i) ts.push_back(transfer("3:" + std::to_string(i), 1 + i % 4, 1 + (i + 1) % 4, 2 * (1 + i), Outcome::unknown));
    // Even amounts cannot make item 1's odd residual, but only a search finds that out.
    auto h = history(ts, {{1, 99}});
    CheckLimits limits;
    limits.search_steps_max = 3;
    const auto r = check(h, limits);
    BOOST_TEST(!r.ok);
    BOOST_TEST(r.search_bound_hit);
    BOOST_TEST(mentions(r, "search bound hit"));
}

BOOST_AUTO_TEST_CASE(a_negative_read_fails) {
    auto h = history({}, {});
    h.reads.push_back(Read{3, true, -2, 0, 0, 10, 12, {}});
    h.reads.push_back(Read{4, true, 5, 6, 0, 20, 22, {}});  // available below zero
    h.reads.push_back(Read{5, false, -9, 0, 0, 30, 35, "no answer"});  // unanswered: not a balance
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "item 3 balance -2"));
    BOOST_TEST(mentions(r, "item 4 balance 5 held 6"));
    BOOST_TEST(!mentions(r, "item 5"));
}

BOOST_AUTO_TEST_CASE(a_negative_final_balance_fails) {
    const auto h = history({transfer("1:1", 1, 2, 110, Outcome::committed)}, {{1, -10}, {2, 210}});
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "negative final balance: item 1"));
}

BOOST_AUTO_TEST_CASE(replicas_that_disagree_fail) {
    auto h = history({}, {});
    h.shards[1].replicas[2].items[6].balance = 99;
    h.shards[0].replicas[1].applied_index = 41;
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "shard 2: item 6 node 4 balance 100 held 0 pending 0, node 6 balance 99"));
    BOOST_TEST(mentions(r, "shard 1: node 2 applied index 41"));
}

BOOST_AUTO_TEST_CASE(a_missing_replica_or_money_in_flight_fails) {
    auto h = history({}, {});
    h.shards[0].replicas.pop_back();
    h.shards[1].replicas[0].items[5].held = 3;
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "shard 1: 2 of 3 replicas answered"));
    BOOST_TEST(mentions(r, "item 5 still has held 3"));
}

BOOST_AUTO_TEST_CASE(an_audit_that_does_not_balance_fails) {
    auto h = history({}, {});
    h.audit = AuditRun{true, 1, "problem: posted 1000 expected 999"};
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "rlcat audit exited 1: problem: posted 1000"));
}

BOOST_AUTO_TEST_CASE(a_txid_used_twice_fails) {
    const auto h = history({transfer("1:1", 1, 2, 10, Outcome::committed), transfer("1:1", 2, 1, 10, Outcome::committed)}, {});
    const auto r = check(h);
    BOOST_TEST(!r.ok);
    BOOST_TEST(mentions(r, "txid 1:1 names more than one operation"));
}

BOOST_AUTO_TEST_CASE(a_schedule_replays_from_its_seed_and_uses_every_kind) {
    ScheduleSpec spec;
    spec.seed = 7;
    spec.shards = {{1, {1, 2, 3}}, {2, {4, 5, 6}}};
    spec.kinds = all_faults();
    const auto a = make_schedule(spec);
    const auto b = make_schedule(spec);
    BOOST_REQUIRE_EQUAL(a.size(), b.size());
    std::set<FaultKind> seen;
    for (std::size_t i = 0; i < a.size(); ++i) {
        BOOST_TEST(describe(a[i]) == describe(b[i]));
        BOOST_TEST(a[i].start_ms + a[i].duration_ms <= spec.duration_ms);
        if (i > 0) BOOST_TEST(a[i].start_ms >= a[i - 1].start_ms + a[i - 1].duration_ms + spec.gap_ms_min);
        seen.insert(a[i].kind);
        if (a[i].kind == FaultKind::split) BOOST_TEST(a[i].minority.size() == 2u);  // one node of each shard
    }
    BOOST_TEST(seen.size() == all_faults().size());
    spec.seed = 8;
    const auto c = make_schedule(spec);
    BOOST_TEST(describe(c.front()) != describe(a.front()));
}

BOOST_AUTO_TEST_CASE(a_schedule_refuses_a_spec_without_kinds_or_shards) {
    ScheduleSpec spec;
    spec.shards = {{1, {1, 2, 3}}};
    BOOST_CHECK_THROW(make_schedule(spec), std::invalid_argument);
    spec.kinds = {FaultKind::kill_leader};
    spec.shards.clear();
    BOOST_CHECK_THROW(make_schedule(spec), std::invalid_argument);
    BOOST_TEST(!parse_fault("kill-everything").has_value());
    BOOST_TEST((parse_fault("kill-shard") == std::optional<FaultKind>(FaultKind::kill_shard)));
}
