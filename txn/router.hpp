// Where to send something meant for another shard's leader (docs/design.md
// section 6.5): every node keeps the leader it last learned for every shard,
// from replies, hints and refusals, each carrying that shard's epoch; a
// higher epoch wins. The config names the members, never who leads. Without
// a known leader the members are tried in rotation, nodes known to be down
// last. Sans-I/O: the host reports refused connections (down) and the
// replica reports what it learns.
#pragma once

#include "config/types.hpp"

#include <map>
#include <set>
#include <vector>

namespace rl::txn {

class Router {
public:
    // `shards`: every shard's members, from the config.
    explicit Router(std::map<ShardId, std::vector<NodeId>> shards);

    // `leader` leads `shard` in `epoch`, as some member says (kNoNode: that
    // member knows no leader in that epoch). A lower epoch than the one
    // known changes nothing.
    void learn(ShardId shard, NodeId leader, Epoch epoch);
    // The leader this node believes in for `shard`; kNoNode if none.
    NodeId leader(ShardId shard) const;
    Epoch epoch(ShardId shard) const;

    // The node to send to next: the known leader unless it is `avoid`
    // (the one that just failed to answer), else the next member in
    // rotation, skipping `avoid` and preferring nodes not marked down.
    // kNoNode only for a shard with no members.
    NodeId target(ShardId shard, NodeId avoid = kNoNode);

    // The host could not connect to `node` (refused, unreachable) / did.
    // A leader that is down is forgotten.
    void down(NodeId node);
    void up(NodeId node);
    bool is_down(NodeId node) const { return down_.contains(node); }

    // The shard `node` belongs to; ShardId{0} if none.
    ShardId shard_of(NodeId node) const;
    const std::vector<NodeId>& members(ShardId shard) const;

private:
    struct Known {
        NodeId leader;
        Epoch epoch;
        std::size_t cursor = 0;  // next member to try without a leader
    };

    std::map<ShardId, std::vector<NodeId>> shards_;
    std::map<ShardId, Known> known_;
    std::set<NodeId> down_;
};

}  // namespace rl::txn
