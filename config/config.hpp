// The deployment description (docs/design.md section 2): one INI file read by every
// node and tool, parsed once with Boost.Program_options into an immutable,
// validated Config. Every limit the system enforces lives here, units last.
#pragma once

#include "config/types.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rl::config {

enum class ElectionAlgorithm { bully, ring };
enum class FsyncMode { always, never };

const char* to_string(ElectionAlgorithm a);
const char* to_string(FsyncMode m);

// An invalid deployment file. Carries where the problem is so that the
// message names the file, the section and the key (docs/design.md section 2).
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string file, std::string section, std::string key, const std::string& problem);
    // `line` is 1-based; 0 means unknown and is left out of the message.
    ConfigError(std::string file, std::size_t line, std::string section, std::string key, const std::string& problem);

    const std::string& file() const { return file_; }
    const std::string& section() const { return section_; }
    const std::string& key() const { return key_; }
    std::size_t line() const { return line_; }

private:
    std::string file_;
    std::string section_;
    std::string key_;
    std::size_t line_ = 0;
};

struct ItemRange {
    ItemId first;  // inclusive
    ItemId last;   // inclusive
    bool contains(ItemId item) const { return first <= item && item <= last; }
    std::uint64_t size() const { return last.value - first.value + 1; }
    bool operator==(const ItemRange&) const = default;

    template <class Archive>
    void serialize(Archive& ar) { ar(first, last); }
};

struct Endpoint {
    std::string host;  // a numeric IPv4 or IPv6 address
    std::uint16_t port = 0;
    std::string to_string() const;
};

struct ShardConfig {
    ShardId id;
    std::vector<ItemRange> items;  // sorted, disjoint
    std::vector<NodeId> nodes;     // sorted ascending
};

struct NodeConfig {
    NodeId id;
    Endpoint address;
    ShardId shard;
};

// Bounds on every queue, frame and retry; optional keys of [cluster].
struct Limits {
    std::uint32_t frame_bytes_max = 4 * 1024 * 1024;      // largest frame accepted or sent
    std::uint32_t peer_queue_frames_max = 4096;           // outbound frames queued per peer
    std::uint64_t peer_queue_bytes_max = 64ull << 20;     // outbound bytes queued per peer
    std::uint32_t peer_connections_max = 64;              // inbound peer connections per node
    std::uint64_t client_queue_bytes_max = 16ull << 20;   // outbound bytes queued per client session
    std::uint64_t wal_backlog_bytes_max = 64ull << 20;    // WAL writes held while the disk fails
    std::uint32_t client_connections_max = 1024;          // concurrent client sessions per node
    std::uint32_t client_inflight_max = 1024;             // pending requests per client session
    std::uint32_t reconnect_ms_min = 20;                  // first reconnect delay to a peer
    std::uint32_t reconnect_ms_max = 1000;                // backoff cap
    std::uint32_t handshake_timeout_ms = 2000;            // Hello must arrive within this
    std::uint32_t snapshot_after_entries = 50000;         // applied entries kept in the log before a snapshot
    std::uint64_t snapshot_after_bytes = 64ull << 20;     // or their bytes (as entry_bytes() counts them)
    // Fixed in the shard's replicated state when the shard is created; a
    // node whose INI later disagrees follows the log (docs/design.md section 6).
    std::uint32_t dedup_window = 64;                      // transfer results remembered per client session
    std::uint32_t dedup_clients_max = 4000;               // client sessions remembered; the least recent goes first
    // Transfers in one `transfers` request (docs/design.md section 6.9). At
    // most dedup_window, so a retried batch gets every first outcome, and at
    // most what fits a frame; when the INI leaves it out, dedup_window.
    std::uint32_t batch_transfers_max = 64;
};

// Wire bytes one transfer of a batch may take, request or reply, with room to
// spare: how batch_transfers_max is bounded by frame_bytes_max.
inline constexpr std::uint32_t kBatchTransferBytes = 64;

struct ClusterConfig {
    std::string name;
    ElectionAlgorithm election = ElectionAlgorithm::bully;
    std::uint32_t heartbeat_ms = 50;
    std::uint32_t suspect_after_ms = 200;
    std::uint32_t election_timeout_ms = 300;
    std::uint32_t tick_ms = 10;  // period of the core's logical clock
    std::int64_t initial_balance = 10;
    std::filesystem::path data_dir = "data";  // relative paths are taken from the INI file's folder
    FsyncMode fsync = FsyncMode::always;
    bool fault_injection = false;
    Limits limits;
};

class Config {
public:
    // Reads and validates `path`; throws ConfigError on any invalid input.
    static Config load(const std::filesystem::path& path);
    // Parses INI text; `file` names the source in error messages and anchors
    // relative paths.
    static Config parse(const std::string& text, const std::filesystem::path& file);

    const ClusterConfig& cluster() const { return cluster_; }
    const std::map<ShardId, ShardConfig>& shards() const { return shards_; }
    const std::map<NodeId, NodeConfig>& nodes() const { return nodes_; }
    const std::filesystem::path& file() const { return file_; }

    // nullptr when unknown.
    const NodeConfig* node(NodeId id) const;
    const ShardConfig* shard(ShardId id) const;
    std::optional<ShardId> shard_of_item(ItemId item) const;
    // <data_dir>/node-N
    std::filesystem::path node_dir(NodeId id) const;
    // The other members of `id`'s shard.
    std::vector<NodeId> shard_peers(NodeId id) const;

private:
    std::filesystem::path file_;
    ClusterConfig cluster_;
    std::map<ShardId, ShardConfig> shards_;
    std::map<NodeId, NodeConfig> nodes_;
};

}  // namespace rl::config
