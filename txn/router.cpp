#include "txn/router.hpp"

#include <algorithm>

namespace rl::txn {

Router::Router(std::map<ShardId, std::vector<NodeId>> shards) : shards_(std::move(shards)) {}

void Router::learn(ShardId shard, NodeId leader, Epoch epoch) {
    if (!shards_.contains(shard)) return;
    Known& k = known_[shard];
    if (epoch < k.epoch) return;
    // In the same epoch a named leader beats "none known"; a higher epoch
    // replaces whatever was known, even with none.
    if (epoch == k.epoch && leader == kNoNode) return;
    const auto& m = shards_.at(shard);
    if (leader != kNoNode && std::find(m.begin(), m.end(), leader) == m.end()) return;
    k.epoch = epoch;
    k.leader = leader;
    if (leader != kNoNode) down_.erase(leader);
}

NodeId Router::leader(ShardId shard) const {
    auto it = known_.find(shard);
    return it == known_.end() ? kNoNode : it->second.leader;
}

Epoch Router::epoch(ShardId shard) const {
    auto it = known_.find(shard);
    return it == known_.end() ? Epoch{} : it->second.epoch;
}

NodeId Router::target(ShardId shard, NodeId avoid) {
    auto s = shards_.find(shard);
    if (s == shards_.end() || s->second.empty()) return kNoNode;
    Known& k = known_[shard];
    if (k.leader != kNoNode && k.leader != avoid) return k.leader;
    if (k.leader == avoid) k.leader = kNoNode;  // it did not answer: rotate until someone names a leader
    const auto& m = s->second;
    // Two passes: first nodes not known to be down, then any but `avoid`.
    for (int pass = 0; pass < 2; ++pass) {
        for (std::size_t i = 0; i < m.size(); ++i) {
            const NodeId n = m[k.cursor++ % m.size()];
            if (n == avoid && m.size() > 1) continue;
            if (pass == 0 && down_.contains(n)) continue;
            return n;
        }
    }
    return m[k.cursor++ % m.size()];
}

void Router::down(NodeId node) {
    down_.insert(node);
    const ShardId shard = shard_of(node);
    if (auto it = known_.find(shard); it != known_.end() && it->second.leader == node) it->second.leader = kNoNode;
}

void Router::up(NodeId node) { down_.erase(node); }

ShardId Router::shard_of(NodeId node) const {
    for (const auto& [shard, members] : shards_) {
        if (std::find(members.begin(), members.end(), node) != members.end()) return shard;
    }
    return ShardId{0};
}

const std::vector<NodeId>& Router::members(ShardId shard) const {
    static const std::vector<NodeId> none;
    auto it = shards_.find(shard);
    return it == shards_.end() ? none : it->second;
}

}  // namespace rl::txn
