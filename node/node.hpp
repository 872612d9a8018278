// The rlnode daemon: one io_context, one tick timer, the server for inbound
// connections, one PeerLink per node it talks to, the WAL, and the shard
// Replica that decides everything. The turn itself (persist with one WAL
// sync, send, reply) is txn::Shell, the same code the simulator runs; this
// class is its host: it carries messages to sockets and answers clients.
#pragma once

#include "config/config.hpp"
#include "node/background_sync.hpp"
#include "node/server.hpp"
#include "transport/log.hpp"
#include "transport/peer_link.hpp"
#include "txn/replica.hpp"
#include "txn/shell.hpp"
#include "txn/wal.hpp"

#include <boost/asio.hpp>

#include <map>
#include <variant>
#include <memory>
#include <optional>

namespace rl::node {

class Node : public ServerHandler, public txn::ShellHost {
public:
    Node(boost::asio::io_context& io, const config::Config& config, NodeId self, Logger& log);

    // Opens the WAL (throws txn::WalCorruption or txn::WalIoError), listens
    // and dials peers (throws boost::system::system_error if the node's
    // address cannot be bound).
    void start();
    // Closes every socket and timer so that io_context::run() returns.
    void stop();

    void on_peer_accepted(NodeId peer) override;
    void on_peer_message(NodeId from, Message&& m) override;
    void on_client_message(const std::shared_ptr<Connection>& session, Message&& m) override;

    // txn::ShellHost
    void send(NodeId to, const election::ElectionMessage& m) override;
    void send(NodeId to, const txn::TxnMessage& m) override;
    void reply(std::uint64_t handle, const txn::OpResult& result) override;
    void report(const txn::ReplicaOutput& out) override;
    void wal_failed(const txn::WalIoError& error, const txn::ShellStats& stats) override;
    std::optional<std::error_code> start_sync(txn::StorageFile& file) override;

private:
    // A client request waiting for the replica's answer.
    struct PendingRequest {
        std::weak_ptr<Connection> session;
        std::uint64_t request_id = 0;
        ShardId shard;  // whose leader the hint in the reply names
        // A part of a `transfers` request: its batch, and the positions in
        // it of the transfers this part carries (docs/design.md section 6.9).
        std::uint64_t batch = 0;
        std::vector<std::uint32_t> positions;
    };
    // A `transfers` request split by FROM shard, until every part answered.
    struct PendingBatch {
        std::weak_ptr<Connection> session;
        std::uint64_t request_id = 0;
        std::vector<txn::TransferOutcome> each;  // in the request's order
        std::size_t missing = 0;                 // parts not answered yet
    };

    void open_wal();
    // Logical time (docs/design.md section 6.10): the ticks since the
    // shell was made are delivered before every input, and the timer wakes
    // the node only for the tick the shell says may act.
    std::uint64_t ticks_now() const;
    void catch_up();
    void arm_tick();
    void schedule_flush();
    void flush();
    void log_replica_events(const txn::ReplicaOutput& out);
    transport::PeerLink& link(NodeId peer);

    void submit(const std::shared_ptr<Connection>& session, std::uint64_t request_id, ShardId shard,
                const txn::ClientOp& op);
    // Admitted: waits in pending_ under a new handle while the replica serves it.
    void launch(PendingRequest req, const txn::ClientOp& op);
    void submit_for_item(const std::shared_ptr<Connection>& session, std::uint64_t request_id, ItemId item,
                         const txn::ClientOp& op);
    void answer_locally(const std::shared_ptr<Connection>& session, Message&& m);
    // Fault switches (docs/design.md section 6.8).
    void answer_while_failed(const std::shared_ptr<Connection>& session, const Message& m);
    void on_fault(const std::shared_ptr<Connection>& session, const transport::FaultRequest& r);
    void fail_node();
    std::optional<std::string> recover_node();
    // The shard a request names (0: this node's own), or nullopt after
    // answering `bad_request` for a shard the config does not have.
    std::optional<ShardId> named_shard(const std::shared_ptr<Connection>& session, std::uint64_t request_id,
                                       ShardId named) const;
    transport::StatusReply status(std::uint64_t request_id) const;
    std::optional<transport::ErrorReply> route_check(const transport::TransferRequest& r, ShardId& shard) const;
    void submit_batch(const std::shared_ptr<Connection>& session, transport::TransfersRequest& r);
    // The shard of every transfer's FROM item, or the error that refuses the whole batch.
    std::optional<transport::ErrorReply> batch_check(const transport::TransfersRequest& r,
                                                     std::vector<ShardId>& from_shards) const;
    void batch_part_done(const PendingRequest& req, const txn::OpResult& result);

    boost::asio::io_context& io_;
    const config::Config& config_;
    NodeId self_;
    const config::NodeConfig& me_;
    Logger& log_;
    Server server_;
    std::map<NodeId, std::shared_ptr<transport::PeerLink>> links_;
    std::optional<txn::Wal> wal_;
    std::unique_ptr<txn::Replica> replica_;
    std::unique_ptr<txn::Shell> shell_;
    std::uint64_t shell_generation_ = 0;  // a sync that finishes for an earlier shell is ignored
    BackgroundSync background_sync_;
    std::map<std::uint64_t, PendingRequest> pending_;
    std::map<std::uint64_t, PendingBatch> batches_;
    std::uint64_t next_batch_ = 1;
    // Requests in flight per client session (client_inflight_max).
    std::map<std::weak_ptr<Connection>, std::size_t, std::owner_less<>> inflight_;
    std::uint64_t next_handle_ = 1;
    boost::asio::steady_timer tick_timer_;
    std::chrono::steady_clock::time_point tick_origin_;  // tick 0 of the current shell
    std::chrono::steady_clock::time_point tick_at_;      // when tick_timer_ fires, while tick_armed_
    bool tick_armed_ = false;
    std::uint64_t early_ticks_logged_ = 0;  // ShellStats::early_ticks already logged
    bool flush_scheduled_ = false;
    std::chrono::steady_clock::time_point wal_error_logged_;  // rate limit for a failing disk
    bool stopped_ = false;
    // `fail` switched on: peer traffic and client requests other than the
    // fault switches are dropped, the replica is neither ticked nor
    // stepped; `recover` rebuilds it from the WAL as a restart would.
    bool failed_ = false;
};

}  // namespace rl::node
