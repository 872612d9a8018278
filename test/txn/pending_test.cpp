// The client operations waiting at one node (docs/design.md section 6):
// admission, the ways waiters are taken out, forward replies that must come
// from the right node and answer the right operation, and deadlines counted
// in ticks. Each test steps one PendingOps by hand.
#define BOOST_TEST_MODULE pending
#include <boost/test/unit_test.hpp>

#include "txn/pending.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using rl::ItemId;
using rl::LogIndex;
using rl::NodeId;
using rl::ShardId;
using rl::txn::BalanceDone;
using rl::txn::BalanceOp;
using rl::txn::ClientOp;
using rl::txn::GivenUp;
using rl::txn::LeaderDone;
using rl::txn::LeaderOp;
using rl::txn::LocalWaiter;
using rl::txn::OpFailed;
using rl::txn::OpResult;
using rl::txn::Outcome;
using rl::txn::PendingLimits;
using rl::txn::PendingOps;
using rl::txn::RemoteWaiter;
using rl::txn::SessionDone;
using rl::txn::SessionOp;
using rl::txn::TransferDone;
using rl::txn::TransferOp;
using rl::txn::TxnId;
using rl::txn::Waiter;

namespace {

constexpr std::uint64_t kTimeoutTicks = 5;
constexpr std::uint64_t kForwardBase = 1000;
constexpr NodeId kLeader{2};
constexpr NodeId kOther{3};

PendingOps pending(std::size_t ops_max = 100) {
    return PendingOps(PendingLimits{.ops_max = ops_max, .timeout_ticks = kTimeoutTicks}, kForwardBase);
}

Waiter local(std::uint64_t handle) { return LocalWaiter{handle}; }

TxnId txid(std::uint64_t seq) { return TxnId{rl::txn::session_id(ShardId{1}, LogIndex{2}), seq}; }

TransferOp transfer_op(std::uint64_t seq) { return TransferOp{txid(seq), ItemId{1}, ItemId{2}, 3}; }

TransferDone transfer_done(std::uint64_t seq) { return TransferDone{Outcome::committed, "", txid(seq)}; }

PendingOps::Read read(std::uint64_t handle, std::uint64_t round) {
    return PendingOps::Read{local(handle), BalanceOp{ItemId{7}, false}, LogIndex{round}, round};
}

// Runs `n` ticks and gathers every waiter given up on the way.
std::vector<GivenUp> elapse(PendingOps& ops, std::uint64_t n) {
    std::vector<GivenUp> out;
    for (std::uint64_t i = 0; i < n; ++i) {
        for (GivenUp& g : ops.tick("too late", "no leader")) out.push_back(std::move(g));
    }
    return out;
}

std::vector<Waiter> waiters_of(const std::vector<GivenUp>& given_up) {
    std::vector<Waiter> out;
    for (const GivenUp& g : given_up) out.push_back(g.waiter);
    return out;
}

// One waiter of every kind: a transfer, an entry, a read, a parked and a
// forwarded operation, handles 1 to 5 in that order.
void wait_one_of_each(PendingOps& ops) {
    ops.wait_transfer(txid(1), local(1));
    ops.wait_entry(LogIndex{4}, local(2));
    ops.wait_read(read(3, 1));
    ops.park({local(4), LeaderOp{}, 0});
    ops.forward(local(5), kLeader, LeaderOp{});
}

}  // namespace

// ---- admission

BOOST_AUTO_TEST_CASE(admission_counts_every_kind_of_waiter_and_is_full_at_the_limit) {
    PendingOps ops = pending(5);
    BOOST_TEST(ops.size() == 0U);
    ops.wait_transfer(txid(1), local(1));
    ops.wait_entry(LogIndex{4}, local(2));
    ops.wait_read(read(3, 1));
    ops.park({local(4), LeaderOp{}, 0});
    BOOST_TEST(ops.size() == 4U);
    BOOST_TEST(!ops.full());
    ops.forward(local(5), kLeader, LeaderOp{});
    BOOST_TEST(ops.size() == 5U);
    BOOST_TEST(ops.full());
}

BOOST_AUTO_TEST_CASE(a_retry_joining_a_waiting_txid_counts_against_the_limit) {
    PendingOps ops = pending(2);
    ops.wait_transfer(txid(1), local(1));
    BOOST_TEST(!ops.full());
    ops.wait_transfer(txid(1), local(2));
    BOOST_TEST(ops.size() == 2U);
    BOOST_TEST(ops.full());
}

BOOST_AUTO_TEST_CASE(taking_a_waiter_frees_its_admission_slot) {
    PendingOps ops = pending(1);
    ops.wait_entry(LogIndex{4}, local(1));
    BOOST_TEST(ops.full());
    ops.take_entry(LogIndex{4});
    BOOST_TEST(!ops.full());
}

// ---- transfers and entries

BOOST_AUTO_TEST_CASE(the_waiters_of_one_txid_are_taken_together_in_arrival_order) {
    PendingOps ops = pending();
    ops.wait_transfer(txid(1), local(1));
    ops.wait_transfer(txid(2), local(2));
    ops.wait_transfer(txid(1), RemoteWaiter{kOther, 77});
    BOOST_TEST(ops.waiting_for(txid(1)));
    const std::vector<Waiter> expected{local(1), RemoteWaiter{kOther, 77}};
    BOOST_TEST((ops.take_transfer(txid(1)) == expected));
    BOOST_TEST(!ops.waiting_for(txid(1)));
    BOOST_TEST(ops.waiting_for(txid(2)));
    BOOST_TEST(ops.size() == 1U);
}

BOOST_AUTO_TEST_CASE(taking_a_txid_nobody_waits_for_takes_nothing) {
    PendingOps ops = pending();
    ops.wait_transfer(txid(1), local(1));
    BOOST_TEST(ops.take_transfer(txid(2)).empty());
    BOOST_TEST(ops.take_transfer(TxnId{txid(1).session + 1, 1}).empty());
    BOOST_TEST(ops.size() == 1U);
}

BOOST_AUTO_TEST_CASE(entries_are_taken_by_their_index) {
    PendingOps ops = pending();
    ops.wait_entry(LogIndex{4}, local(1));
    ops.wait_entry(LogIndex{5}, local(2));
    BOOST_TEST(ops.take_entry(LogIndex{3}).empty());
    BOOST_TEST((ops.take_entry(LogIndex{5}) == std::vector<Waiter>{local(2)}));
    BOOST_TEST(ops.take_entry(LogIndex{5}).empty());
    BOOST_TEST((ops.take_entry(LogIndex{4}) == std::vector<Waiter>{local(1)}));
    BOOST_TEST(ops.size() == 0U);
}

// ---- reads

BOOST_AUTO_TEST_CASE(reads_are_taken_in_arrival_order_only_when_ready) {
    PendingOps ops = pending();
    ops.wait_read(read(1, 3));
    ops.wait_read(read(2, 1));
    ops.wait_read(read(3, 2));
    ops.wait_read(read(4, 5));
    // A majority confirmed round 3: every read of round 3 or lower is ready.
    const auto ready = ops.take_reads([](const PendingOps::Read& r) { return r.round <= 3; });
    std::vector<Waiter> taken;
    for (const auto& r : ready) taken.push_back(r.waiter);
    BOOST_TEST((taken == std::vector<Waiter>{local(1), local(2), local(3)}));
    BOOST_REQUIRE(ready.size() == 3U);
    BOOST_TEST(std::get<BalanceOp>(ready[0].op).item == ItemId{7});
    BOOST_TEST(ready[0].read_index == LogIndex{3});
    BOOST_TEST(ops.size() == 1U);
    BOOST_TEST(ops.take_reads([](const PendingOps::Read&) { return false; }).empty());
    BOOST_TEST(ops.take_reads([](const PendingOps::Read&) { return true; }).size() == 1U);
    BOOST_TEST(ops.size() == 0U);
}

// ---- parked

BOOST_AUTO_TEST_CASE(parked_operations_are_taken_all_at_once_with_their_hops) {
    PendingOps ops = pending();
    BOOST_TEST(!ops.has_parked());
    ops.park({local(1), transfer_op(1), 0});
    ops.park({local(2), BalanceOp{ItemId{9}, false}, 2});
    BOOST_TEST(ops.has_parked());
    const std::vector<PendingOps::Parked> parked = ops.take_parked();
    BOOST_REQUIRE(parked.size() == 2U);
    BOOST_TEST((parked[0].waiter == local(1)));
    BOOST_TEST(std::get<TransferOp>(parked[0].op).txid.seq == 1U);
    BOOST_TEST((parked[1].waiter == local(2)));
    BOOST_TEST(std::get<BalanceOp>(parked[1].op).item == ItemId{9});
    BOOST_TEST(parked[1].hops == 2);
    BOOST_TEST(!ops.has_parked());
    BOOST_TEST(ops.take_parked().empty());
    BOOST_TEST(ops.size() == 0U);
}

// ---- forwarded

BOOST_AUTO_TEST_CASE(forward_ids_count_up_from_the_base) {
    PendingOps ops = pending();
    BOOST_TEST(ops.forward(local(1), kLeader, LeaderOp{}) == kForwardBase);
    BOOST_TEST(ops.forward(local(2), kLeader, LeaderOp{}) == kForwardBase + 1);
    BOOST_TEST(ops.forward(local(3), kOther, LeaderOp{}) == kForwardBase + 2);
}

BOOST_AUTO_TEST_CASE(a_forward_reply_is_accepted_only_from_the_node_it_was_sent_to) {
    PendingOps ops = pending();
    const std::uint64_t id = ops.forward(local(1), kLeader, transfer_op(1));
    BOOST_TEST(!ops.take_forward_reply(id, kOther, transfer_done(1)).has_value());
    BOOST_TEST(ops.size() == 1U);
    const auto w = ops.take_forward_reply(id, kLeader, transfer_done(1));
    BOOST_REQUIRE(w.has_value());
    BOOST_TEST((*w == local(1)));
    BOOST_TEST(!ops.take_forward_reply(id, kLeader, transfer_done(1)).has_value());  // answered once
    BOOST_TEST(ops.size() == 0U);
}

BOOST_AUTO_TEST_CASE(a_forward_reply_that_answers_another_operation_is_refused) {
    // A forward id reused after a restart of ours must not let an old reply
    // answer a new request.
    PendingOps ops = pending();
    const std::uint64_t id = ops.forward(local(1), kLeader, transfer_op(1));
    BOOST_TEST(!ops.take_forward_reply(id, kLeader, transfer_done(2)).has_value());
    BOOST_TEST(!ops.take_forward_reply(id, kLeader, BalanceDone{ItemId{1}, 5, false, LogIndex{3}}).has_value());
    BOOST_TEST(!ops.take_forward_reply(id + 1, kLeader, transfer_done(1)).has_value());
    BOOST_TEST(ops.size() == 1U);
    BOOST_TEST(ops.take_forward_reply(id, kLeader, OpFailed{"unavailable", "no leader", NodeId{}}).has_value());
}

BOOST_AUTO_TEST_CASE(answers_matches_each_operation_with_its_own_result) {
    const OpResult failed = OpFailed{"timeout", "late", NodeId{}};
    const OpResult balance = BalanceDone{ItemId{4}, 1, false, LogIndex{1}};
    const OpResult leader = LeaderDone{ShardId{1}, kLeader, rl::Epoch{2}};
    const OpResult session = SessionDone{ShardId{1}, rl::txn::session_id(ShardId{1}, LogIndex{9})};
    const std::vector<ClientOp> ops{transfer_op(1), BalanceOp{ItemId{4}, true}, LeaderOp{}, SessionOp{ItemId{4}}};
    for (const ClientOp& op : ops) BOOST_TEST(rl::txn::answers(op, failed));
    BOOST_TEST(rl::txn::answers(transfer_op(1), transfer_done(1)));
    BOOST_TEST(!rl::txn::answers(transfer_op(1), transfer_done(2)));
    BOOST_TEST(!rl::txn::answers(transfer_op(1), balance));
    BOOST_TEST(rl::txn::answers(BalanceOp{ItemId{4}, false}, balance));
    BOOST_TEST(!rl::txn::answers(BalanceOp{ItemId{5}, false}, balance));
    BOOST_TEST(!rl::txn::answers(BalanceOp{ItemId{4}, false}, leader));
    BOOST_TEST(rl::txn::answers(LeaderOp{}, leader));
    BOOST_TEST(!rl::txn::answers(LeaderOp{}, session));
    BOOST_TEST(rl::txn::answers(SessionOp{ItemId{4}}, session));
    BOOST_TEST(!rl::txn::answers(SessionOp{ItemId{4}}, transfer_done(1)));
}

BOOST_AUTO_TEST_CASE(forwards_to_a_stale_target_are_taken_by_predicate) {
    PendingOps ops = pending();
    ops.forward(local(1), kLeader, LeaderOp{});
    const std::uint64_t kept = ops.forward(local(2), kOther, LeaderOp{});
    ops.forward(local(3), kLeader, LeaderOp{}, 2);
    const auto stale = ops.take_forwards_if([](NodeId to) { return to == kLeader; });
    BOOST_TEST_REQUIRE(stale.size() == 2U);
    BOOST_TEST((stale[0].waiter == local(1) && stale[0].hops == 0U));
    BOOST_TEST((stale[1].waiter == local(3) && stale[1].hops == 2U));
    BOOST_TEST(ops.size() == 1U);
    BOOST_TEST(ops.take_forward_reply(kept, kOther, LeaderDone{}).has_value());
}

// ---- leadership ends

BOOST_AUTO_TEST_CASE(take_leader_waits_takes_transfers_entries_and_reads_but_not_parked_or_forwarded) {
    PendingOps ops = pending();
    wait_one_of_each(ops);
    ops.wait_transfer(txid(1), local(6));
    const std::vector<Waiter> expected{local(1), local(6), local(2), local(3)};
    BOOST_TEST((ops.take_leader_waits() == expected));
    BOOST_TEST(!ops.waiting_for(txid(1)));
    BOOST_TEST(ops.take_entry(LogIndex{4}).empty());
    BOOST_TEST(ops.size() == 2U);
    BOOST_TEST(ops.has_parked());
    BOOST_TEST(ops.take_forward_reply(kForwardBase, kLeader, LeaderDone{}).has_value());
}

// ---- deadlines

BOOST_AUTO_TEST_CASE(tick_gives_up_on_a_waiter_exactly_at_its_deadline) {
    PendingOps ops = pending();
    ops.wait_transfer(txid(1), local(1));
    BOOST_TEST(elapse(ops, kTimeoutTicks - 1).empty());
    BOOST_TEST(ops.waiting_for(txid(1)));
    const std::vector<GivenUp> late = elapse(ops, 1);
    BOOST_REQUIRE(late.size() == 1U);
    BOOST_TEST((late[0].waiter == local(1)));
    BOOST_TEST(late[0].code == "timeout");
    BOOST_TEST(late[0].message == "too late");
    BOOST_TEST(!ops.waiting_for(txid(1)));
}

BOOST_AUTO_TEST_CASE(tick_answers_parked_waiters_unavailable_and_the_others_timeout) {
    PendingOps ops = pending();
    wait_one_of_each(ops);
    const std::vector<GivenUp> given_up = elapse(ops, kTimeoutTicks);
    BOOST_REQUIRE(given_up.size() == 5U);
    for (const GivenUp& g : given_up) {
        const bool parked = g.waiter == local(4);
        BOOST_TEST(g.code == (parked ? "unavailable" : "timeout"));
        BOOST_TEST(g.message == (parked ? "no leader" : "too late"));
    }
    std::vector<Waiter> expected{local(1), local(2), local(3), local(4), local(5)};
    BOOST_TEST((waiters_of(given_up) == expected));
    BOOST_TEST(!ops.has_parked());
}

BOOST_AUTO_TEST_CASE(each_waiter_of_a_txid_keeps_its_own_deadline) {
    PendingOps ops = pending();
    ops.wait_transfer(txid(1), local(1));
    elapse(ops, 2);
    ops.wait_transfer(txid(1), local(2));  // a retry joins the wait later
    BOOST_TEST((waiters_of(elapse(ops, kTimeoutTicks - 2)) == std::vector<Waiter>{local(1)}));
    BOOST_TEST(ops.waiting_for(txid(1)));
    BOOST_TEST(ops.size() == 1U);
    BOOST_TEST(elapse(ops, 1).empty());
    BOOST_TEST((waiters_of(elapse(ops, 1)) == std::vector<Waiter>{local(2)}));
}

BOOST_AUTO_TEST_CASE(size_returns_to_zero_after_everything_is_taken_or_expired) {
    PendingOps ops = pending();
    wait_one_of_each(ops);
    ops.wait_transfer(txid(1), local(6));
    ops.take_transfer(txid(1));
    ops.take_entry(LogIndex{4});
    ops.take_reads([](const PendingOps::Read&) { return true; });
    ops.take_parked();
    ops.take_forwards_if([](NodeId) { return true; });
    BOOST_TEST(ops.size() == 0U);
    wait_one_of_each(ops);
    BOOST_TEST(ops.size() == 5U);
    elapse(ops, kTimeoutTicks);
    BOOST_TEST(ops.size() == 0U);
    BOOST_TEST(elapse(ops, kTimeoutTicks).empty());
}
