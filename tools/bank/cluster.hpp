// The bank workload's hands on the cluster: tools/rlcluster and
// tools/partition run as subprocesses (their command lines as the README
// gives them), and direct, blocking questions to single nodes (status,
// ping, `balance --local`) for finding leaders and reading replicas.
#pragma once

#include "config/config.hpp"
#include "tools/bank/history.hpp"
#include "tools/bank/subprocess.hpp"
#include "transport/messages.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace rl::bank {

struct ClusterTools {
    std::string rlcluster;  // path of tools/rlcluster
    std::string partition;  // path of tools/partition
    std::string rlcat;      // path of the rlcat binary
    std::string run_dir;
    std::string netns;      // empty: nodes on the host's loopback
    std::string bin_dir;    // passed to rlcluster --bin when not empty
    std::string config;     // the INI
};

class ClusterControl {
public:
    ClusterControl(ClusterTools tools, const config::Config& config) : tools_(std::move(tools)), config_(config) {}

    Ran up() const;
    Ran down() const;
    Ran kill(std::uint64_t node) const;
    Ran restart(std::uint64_t node) const;
    // tools/partition with `args` (isolate ID, split A|B, delay ID MS J, heal).
    Ran partition(const std::vector<std::string>& args) const;
    Ran audit() const;

    // One node's own view, within `timeout`; nullopt when it does not answer.
    std::optional<transport::StatusReply> status(std::uint64_t node, std::chrono::milliseconds timeout) const;
    // The node of `shard` that says it leads (the highest epoch if several),
    // asked until `timeout`; nullopt if none does.
    std::optional<std::uint64_t> leader_of(std::uint64_t shard, std::chrono::milliseconds timeout) const;
    // `balance ITEM --local` of every item in `items` on `node`, with the
    // applied index the node reported before and after (equal: one state).
    std::optional<Replica> read_replica(std::uint64_t node, const std::vector<std::uint64_t>& items) const;

    const ClusterTools& tools() const { return tools_; }
    const config::Config& config() const { return config_; }

private:
    Ran rlcluster(const std::vector<std::string>& args, std::chrono::milliseconds timeout) const;

    ClusterTools tools_;
    const config::Config& config_;
};

}  // namespace rl::bank
