// The leader cache every node keeps for the other shards (docs/design.md
// section 6.5): a higher epoch wins, the config only names members, a node
// that did not answer or refused its connection is tried last, and the
// rotation reaches every member. Each test steps one Router by hand.
#define BOOST_TEST_MODULE router
#include <boost/test/unit_test.hpp>

#include "txn/router.hpp"

#include <set>

using rl::Epoch;
using rl::NodeId;
using rl::ShardId;
using rl::kNoNode;
using rl::txn::Router;

namespace {

const ShardId kShard{2};

Router two_shards() { return Router({{ShardId{1}, {NodeId{1}, NodeId{2}, NodeId{3}}}, {kShard, {NodeId{4}, NodeId{5}, NodeId{6}}}}); }

}  // namespace

BOOST_AUTO_TEST_CASE(a_higher_epoch_wins_and_a_lower_one_changes_nothing) {
    Router r = two_shards();
    BOOST_TEST(r.leader(kShard) == kNoNode);
    r.learn(kShard, NodeId{5}, Epoch{3});
    BOOST_TEST(r.leader(kShard) == NodeId{5});
    r.learn(kShard, NodeId{4}, Epoch{2});  // an older leadership, heard late
    BOOST_TEST(r.leader(kShard) == NodeId{5});
    BOOST_TEST(r.epoch(kShard) == Epoch{3});
    r.learn(kShard, kNoNode, Epoch{3});    // a member that knows none in the same epoch
    BOOST_TEST(r.leader(kShard) == NodeId{5});
    r.learn(kShard, kNoNode, Epoch{4});    // a newer epoch without a leader yet: 5 is deposed
    BOOST_TEST(r.leader(kShard) == kNoNode);
    r.learn(kShard, NodeId{6}, Epoch{4});
    BOOST_TEST(r.leader(kShard) == NodeId{6});
    BOOST_TEST(r.target(kShard) == NodeId{6});
}

BOOST_AUTO_TEST_CASE(a_leader_that_is_not_a_member_or_a_shard_that_does_not_exist_is_ignored) {
    Router r = two_shards();
    r.learn(kShard, NodeId{1}, Epoch{7});  // node 1 is in shard 1
    BOOST_TEST(r.leader(kShard) == kNoNode);
    r.learn(ShardId{9}, NodeId{4}, Epoch{7});
    BOOST_TEST(r.leader(ShardId{9}) == kNoNode);
    BOOST_TEST(r.target(ShardId{9}) == kNoNode);
    BOOST_TEST(r.shard_of(NodeId{5}) == kShard);
    BOOST_TEST(r.shard_of(NodeId{9}) == ShardId{0});
}

BOOST_AUTO_TEST_CASE(without_a_leader_the_members_are_tried_in_rotation) {
    Router r = two_shards();
    std::set<NodeId> seen;
    for (int i = 0; i < 3; ++i) seen.insert(r.target(kShard));
    BOOST_TEST(seen == (std::set<NodeId>{NodeId{4}, NodeId{5}, NodeId{6}}));
}

BOOST_AUTO_TEST_CASE(the_node_that_did_not_answer_is_avoided_and_the_cache_moves_on) {
    Router r = two_shards();
    r.learn(kShard, NodeId{5}, Epoch{3});
    // The leader timed out: the next try goes to another member, and keeps
    // rotating until someone names a leader again.
    const NodeId next = r.target(kShard, NodeId{5});
    BOOST_TEST(next != NodeId{5});
    BOOST_TEST(r.leader(kShard) == kNoNode);
    r.learn(kShard, NodeId{5}, Epoch{3});  // the same leadership, named again by a member
    BOOST_TEST(r.target(kShard) == NodeId{5});
}

BOOST_AUTO_TEST_CASE(a_node_whose_connection_is_refused_is_tried_last) {
    Router r = two_shards();
    r.learn(kShard, NodeId{4}, Epoch{2});
    r.down(NodeId{4});  // refused: the leader is forgotten at once
    BOOST_TEST(r.leader(kShard) == kNoNode);
    BOOST_TEST(r.is_down(NodeId{4}));
    r.down(NodeId{5});
    for (int i = 0; i < 6; ++i) BOOST_TEST(r.target(kShard) == NodeId{6});
    // With every member down, they are still tried (one may be back).
    r.down(NodeId{6});
    std::set<NodeId> seen;
    for (int i = 0; i < 3; ++i) seen.insert(r.target(kShard));
    BOOST_TEST(seen.size() == 3U);
    // Hearing of a node as leader clears its mark.
    r.learn(kShard, NodeId{5}, Epoch{3});
    BOOST_TEST(!r.is_down(NodeId{5}));
    BOOST_TEST(r.target(kShard) == NodeId{5});
}
