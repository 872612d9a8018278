// A blocking client for tools (rlcat, rlbench): one connection, Hello, then
// request/reply with a deadline. Built on transport::Connection and its own
// io_context so that tools and nodes share one framing implementation.
#pragma once

#include "transport/connection.hpp"

#include <boost/asio.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace rl::tools {

using Clock = std::chrono::steady_clock;

// Could not reach or talk to the node at all (exit code 2 in rlcat).
class ConnectError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Connected, but no reply came before the deadline (exit code 1).
class TimeoutError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Client {
public:
    // cluster_name may be empty when the tool has no config.
    explicit Client(std::string cluster_name, std::uint32_t frame_bytes_max = 4 * 1024 * 1024);
    ~Client();

    // "HOST:PORT" (IPv6 as "[::1]:7101"). Resolves numerically; throws
    // ConnectError on failure, refusal or deadline.
    void connect(const std::string& endpoint, Clock::time_point deadline);
    bool connected() const { return conn_ && conn_->open(); }
    const std::string& endpoint() const { return endpoint_; }

    // Sends one request (its request_id is set here) and waits for the
    // reply with the same id. Throws TimeoutError or ConnectError.
    transport::ClientReply call(transport::ClientRequest request, Clock::time_point deadline);

private:
    void run_until(Clock::time_point deadline, const std::function<bool()>& done);

    boost::asio::io_context io_;
    std::string cluster_name_;
    std::uint32_t frame_bytes_max_;
    std::shared_ptr<transport::Connection> conn_;
    std::string endpoint_;
    NodeId node_id_;
    std::uint64_t next_request_id_ = 1;
    std::deque<transport::Message> inbox_;
    std::uint64_t want_id_ = 0;
    std::string closed_reason_;
};

// ---- batches for asynchronous callers (rlbench): no I/O here ----

// One transfer of a batch before it has its txid.
struct TransferSpec {
    ItemId from;
    ItemId to;
    std::int64_t amount = 0;
};

// A `transfers` request (docs/design.md section 6.9) numbering each transfer
// with `txid_of(from)`, called in order: a client keeps one session per
// shard and takes the next seq of FROM's shard's session. A retry must
// resend the same request (same txids) to get the first outcomes.
transport::TransfersRequest batch_request(std::uint64_t request_id, const std::vector<TransferSpec>& transfers,
                                          const std::function<txn::TxnId(ItemId from)>& txid_of);

// A batch reply counted: committed, aborted, and failed (no outcome known;
// `retry` when a resend of the same request may learn it).
struct BatchTally {
    std::size_t committed = 0;
    std::size_t aborted = 0;
    std::size_t failed = 0;
    bool retry = false;
    bool session_expired = false;  // some transfer's session was evicted: open a new one
};
BatchTally tally(const transport::TransfersReply& reply);

// Splits "HOST:PORT" / "[V6]:PORT"; throws std::invalid_argument.
std::pair<std::string, std::uint16_t> split_endpoint(const std::string& endpoint);

}  // namespace rl::tools

namespace rl::tools {

struct NodeEndpoint {
    NodeId id;             // kNoNode when only an address is known
    std::string endpoint;  // HOST:PORT
};

// Sends a request and rides out failovers: on `unavailable` or `timeout`,
// or a lost connection, it backs off a little and resends the same request
// (same txid, so exactly once) until the deadline, moving to the leader
// hint or the next known node when it knows the cluster's nodes.
class RetryingClient {
public:
    RetryingClient(std::string cluster_name, std::vector<NodeEndpoint> nodes, std::size_t first = 0);

    // `hop`: may move to other nodes (transfer, balance, leader); status and
    // ping stay with the node asked. Returns the final reply (which may be
    // a retryable error if time ran out after one); throws ConnectError if
    // no node could be reached at all, TimeoutError if none answered.
    transport::ClientReply call(const transport::ClientRequest& request, Clock::time_point deadline, bool hop);
    std::uint64_t retries() const { return retries_; }

private:
    void connect(Clock::time_point deadline);
    void move_on(NodeId hint);

    std::string cluster_name_;
    std::vector<NodeEndpoint> nodes_;
    std::size_t current_;
    std::unique_ptr<Client> client_;
    bool ever_connected_ = false;
    std::uint64_t retries_ = 0;
};

// A tool's client sessions (docs/design.md section 6): a transfer's txid is
// (session, seq), where the session was opened by the log of the FROM
// item's shard. Sessions are opened lazily, one per shard, before the first
// transfer from an item of that shard; each numbers its transfers from 1.
// A transfer whose TO is in another shard is no different: FROM's shard
// numbers it and coordinates its two-phase commit (section 6.7).
// A retry keeps its txid (RetryingClient resends the same request). A lost
// SessionReply costs nothing but a session the shard will evict.
class Sessions {
public:
    // `shard_of` names an item's shard when the tool has the config; without
    // it (or when it returns nullopt) the SessionReply tells, and is cached.
    using ShardOf = std::function<std::optional<ShardId>(ItemId)>;
    explicit Sessions(ShardOf shard_of = {});

    // Every transfer uses `session`, seqs from `first_seq`, and no session
    // is opened: a run can repeat another run's txids.
    void pin(std::uint64_t session, std::uint64_t first_seq);

    // The txid of a new transfer from `from`, opening a session for its
    // shard first if there is none. When that fails, the reply it got (an
    // ErrorReply) instead. Throws std::invalid_argument when a pinned
    // session is known to belong to another shard than `from`; TimeoutError
    // and ConnectError as RetryingClient::call.
    std::variant<txn::TxnId, transport::ClientReply> next_txid(RetryingClient& client, ItemId from,
                                                                Clock::time_point deadline);

    // Gives every transfer of `batch` its txid, in order, each from the
    // session of its FROM item's shard (docs/design.md section 6.9), opening
    // sessions as next_txid() does. nullopt when done; else the reply that
    // kept a session from opening. Throws as next_txid().
    std::optional<transport::ClientReply> number_batch(RetryingClient& client, transport::TransfersRequest& batch,
                                                       Clock::time_point deadline);

    // Opens a session with `item`'s shard and returns the reply (a
    // SessionReply or an error); the session is not used for transfers.
    transport::ClientReply open(RetryingClient& client, ItemId item, Clock::time_point deadline);

    // Looks at a transfer's (or a batch's) reply: `session_expired` means the
    // shard evicted the session, so the next transfer from that shard opens
    // a new one.
    void observe(const transport::ClientReply& reply);

private:
    struct Session {
        std::uint64_t id = 0;
        std::uint64_t next_seq = 1;
    };
    std::optional<ShardId> known_shard(ItemId item) const;
    void learn(ItemId item, ShardId shard);

    // Items whose shard a SessionReply named: bounded, cleared when full.
    static constexpr std::size_t kItemShardsMax = 65536;

    ShardOf shard_of_;
    std::optional<Session> pinned_;
    std::map<ShardId, Session> by_shard_;
    std::map<ItemId, ShardId> item_shards_;
};

}  // namespace rl::tools
