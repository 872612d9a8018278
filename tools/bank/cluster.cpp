#include <utility>  // before Asio (docs/design.md section 8)

#include "tools/bank/cluster.hpp"

#include "tools/client.hpp"

namespace rl::bank {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

Ran ClusterControl::rlcluster(const std::vector<std::string>& args, milliseconds timeout) const {
    std::vector<std::string> argv{tools_.rlcluster, "--run", tools_.run_dir};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, timeout);
}

Ran ClusterControl::up() const {
    std::vector<std::string> args;
    if (!tools_.netns.empty()) args.insert(args.end(), {"--netns", tools_.netns});
    if (!tools_.bin_dir.empty()) args.insert(args.end(), {"--bin", tools_.bin_dir});
    args.insert(args.end(), {"up", tools_.config});
    return rlcluster(args, seconds(60));
}

Ran ClusterControl::down() const { return rlcluster({"down"}, seconds(30)); }
Ran ClusterControl::kill(std::uint64_t node) const { return rlcluster({"kill", std::to_string(node)}, seconds(15)); }
Ran ClusterControl::restart(std::uint64_t node) const {
    return rlcluster({"restart", std::to_string(node)}, seconds(30));
}

Ran ClusterControl::partition(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{tools_.partition, "--run", tools_.run_dir};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, seconds(15));
}

Ran ClusterControl::audit() const {
    return run_program({tools_.rlcat, "--config", tools_.config, "--timeout", "10000", "audit"}, seconds(30));
}

std::optional<transport::StatusReply> ClusterControl::status(std::uint64_t node, milliseconds timeout) const {
    try {
        tools::Client c(config_.cluster().name);
        const auto deadline = Clock::now() + timeout;
        c.connect(config_.node(NodeId{node})->address.to_string(), deadline);
        const auto reply = c.call(transport::StatusRequest{}, deadline);
        if (const auto* s = std::get_if<transport::StatusReply>(&reply)) return *s;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

std::optional<std::uint64_t> ClusterControl::leader_of(std::uint64_t shard, milliseconds timeout) const {
    const auto deadline = Clock::now() + timeout;
    do {
        std::optional<transport::StatusReply> best;
        for (NodeId id : config_.shard(ShardId{shard})->nodes) {
            const auto s = status(id.value, milliseconds(300));
            if (s && s->role == transport::NodeRole::leader && (!best || s->epoch > best->epoch)) best = s;
        }
        if (best) return best->node.value;
    } while (Clock::now() < deadline);
    return std::nullopt;
}

std::optional<Replica> ClusterControl::read_replica(std::uint64_t node, const std::vector<std::uint64_t>& items) const {
    try {
        tools::Client c(config_.cluster().name);
        const auto deadline = Clock::now() + seconds(10);
        c.connect(config_.node(NodeId{node})->address.to_string(), deadline);
        const auto before = c.call(transport::StatusRequest{}, deadline);
        const auto* s = std::get_if<transport::StatusReply>(&before);
        if (s == nullptr) return std::nullopt;
        Replica r{node, s->applied_index.value, {}};
        for (std::uint64_t item : items) {
            const auto reply = c.call(transport::BalanceRequest{0, ItemId{item}, true}, deadline);
            const auto* b = std::get_if<transport::BalanceReply>(&reply);
            if (b == nullptr || b->applied_index.value != r.applied_index) return std::nullopt;
            r.items[item] = ItemState{b->balance, b->held, b->pending};
        }
        return r;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace rl::bank
