// Deterministic simulator for the transaction core (docs/design.md section
// 7.2): one or more shards of N nodes each, every node the code rlnode runs (txn::Shell over a
// txn::Replica and the real txn::Wal) on an in-memory disk that keeps any
// subset of unsynced writes at a crash and fails writes and fsyncs on
// demand, a simulated network and clock, and clients that open sessions,
// submit transfers (within a shard and, by two-phase commit, across shards)
// and linearizable reads and retry through failures. No
// Asio, no threads: everything random comes from one seed, so a failing run
// replays exactly. Checkers run after every event; a violation throws
// SimFailure.
#pragma once

#include "failure.hpp"
#include "oracle.hpp"
#include "wal_model.hpp"

#include "test/sim_common/network.hpp"
#include "test/sim_common/sim_storage.hpp"
#include "test/sim_common/timeline.hpp"
#include "txn/replica.hpp"
#include "txn/shell.hpp"
#include "txn/wal.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

namespace rl::txn::sim {

// Faults while they are set: the network's on every peer message, crashes
// inside the shell's turn, disk errors, and delayed syncs.
struct NetFaults : simcommon::LinkFaults {
    double crash_in_write = 0;   // per batch write: crash as it is written (any part of it may survive)
    double crash_in_sync = 0;    // per fsync: crash before it completes (any subset of unsynced writes survives)
    double crash_after_sync = 0; // per turn: crash after the sync, before any send or reply
    double disk_error = 0;       // per write or fsync: EIO or ENOSPC
    double defer_sync = 0;       // per input: the flush (sync, then sends) waits 1..5 ms for more inputs
};

struct SimConfig {
    // `shards` shards of `nodes` nodes and `items` items each: shard k holds
    // nodes (k-1)*nodes+1..k*nodes and items (k-1)*items+1..k*items.
    std::size_t shards = 1;
    std::size_t nodes = 3;
    config::ElectionAlgorithm algorithm = config::ElectionAlgorithm::bully;
    std::uint64_t seed = 1;
    election::Timing timing{5, 20, 30};  // heartbeat 50 ms, suspect 200 ms, election 300 ms at 10 ms ticks
    std::uint64_t tick_ms = 10;
    std::uint64_t items = 6;             // per shard
    std::int64_t initial_balance = 100;
    std::size_t clients = 4;
    std::uint64_t snapshot_after_entries = 50000;
    std::uint64_t snapshot_after_bytes = 64ull << 20;
    std::uint32_t frame_bytes_max = 8192;    // small, so catch-up takes several batches
    std::uint32_t dedup_window = 8;          // results kept per session
    std::uint32_t sessions_max = 6;          // sessions kept: fewer than the clients open over a run
    std::uint64_t wal_backlog_bytes_max = 1 << 20;
    // Nodes whose INI says another (dedup_window, dedup_clients_max): the
    // log, not the INI, decides what applying does.
    std::map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> dedup_of;
    std::uint64_t client_timeout_ms = 1500;  // a client retries elsewhere after this silence
    double read_share = 0.2;                 // of client operations, balance reads (a quarter of them local)
    double session_churn = 0.03;             // of client operations, opening a new session
    double replay_share = 0.05;              // of client operations, a replay of an old transfer
    // Of client operations, a batch of 2..6 transfers from items of one
    // shard to items of any (docs/design.md section 6.9).
    double batch_share = 0.1;
    bool strict_durability = false;          // fail on any committed entry leaving a disk, even with a majority left
    // A node that sends to a crashed node of another shard hears of it as a
    // refused connection (Shell::peer_unreachable), with rlnode's redial backoff.
    bool report_unreachable = true;
    // The chance that a crash is of a process on a live host: each up member
    // of its shard sees its redial refused a moment later
    // (Shell::peer_refused, docs/design.md section 5, "Fast crash detection").
    double live_host_crashes = 0.5;
    bool trace = false;                      // print every event, message and client step
};

struct SimStats {
    std::uint64_t messages_sent = 0;
    std::uint64_t messages_lost = 0;
    std::uint64_t crashes = 0;
    std::uint64_t committed_acked = 0;  // transfers acknowledged committed
    std::uint64_t aborted_acked = 0;    // transfers acknowledged aborted
    std::uint64_t reads_checked = 0;    // balance replies checked against the history
    std::uint64_t client_retries = 0;
    std::uint64_t snapshots_installed = 0;
    std::uint64_t committed_entries = 0;
    std::uint64_t committed_copies_dropped = 0;  // durable copies of committed entries a disk dropped (then rewrote)
    std::uint64_t sessions_opened = 0;
    std::uint64_t replays = 0;                   // old transfers sent again
    std::uint64_t batches_answered = 0;          // batches whose every outcome came and was checked
    std::uint64_t expired_answers = 0;
    std::uint64_t session_expired_answers = 0;
    std::uint64_t disk_errors = 0;               // writes and fsyncs failed on purpose
    std::uint64_t torn_recoveries = 0;           // restarts that cut a torn tail
    std::uint64_t simulated_ms = 0;              // simulated time the run(s) covered
    // Across shards (two-phase commit).
    std::uint64_t cross_committed_acked = 0;     // cross-shard transfers acknowledged committed
    std::uint64_t cross_aborted_acked = 0;       // ... and aborted
    std::uint64_t early_acks = 0;                // acknowledged before their Decide was committed (parallel commits)
    std::uint64_t cross_prepared = 0;            // Prepare entries that made a record
    std::uint64_t cross_committed = 0;           // sides posted (a transaction posts two)
    std::uint64_t fences = 0;                    // Query entries that fenced a transaction
    std::uint64_t forgotten = 0;                 // records dropped by Forget entries
    std::uint64_t unreachable_reports = 0;       // refused connections reported to a shell
    std::uint64_t refusals = 0;                  // refused redials of a shard member reported to a shell

    void add(const SimStats& o);
};

class Sim {
public:
    explicit Sim(const SimConfig& config);

    // (Re)starts a node from its durable WAL copy.
    void start(NodeId id);
    void start_all();
    // Stops a node between two events: the unsynced WAL buffer and every
    // input not yet flushed are lost.
    void crash(NodeId id);

    void set_faults(const NetFaults& faults);
    // While on, keeps a copy of every request between shards (ShardRequest)
    // sent; replay_captured() sends the asks for a Prepare (`prepares`) or
    // the other asks again, from their sender to their first target, as
    // late duplicates. Returns how many requests it sent.
    void capture_between_shards(bool on) { capture_ = on; }
    std::size_t replay_captured(bool prepares);
    // Cuts every link between different groups, both ways.
    void partition(const std::vector<std::vector<NodeId>>& groups);
    // Cuts the one direction from -> to.
    void cut(NodeId from, NodeId to);
    void heal();

    // Active clients start new operations; inactive ones only finish theirs.
    void set_clients_active(bool active);
    bool clients_idle() const;

    void run_for(std::uint64_t ms);
    // Runs until `done` holds (checked after every event) or `max_ms` pass.
    bool run_until(const std::function<bool()>& done, std::uint64_t max_ms);

    // In every shard, every up node has applied everything committed, and
    // one leader leads them all.
    bool converged() const;
    // No up node holds an undecided cross-shard record, a hold or a pending credit.
    bool settled() const;
    // No up node holds any cross-shard record (all forgotten).
    bool forgotten() const;
    // Quiescent accounting: equal states, conservation with nothing in
    // flight, exactly-once of every acknowledged transfer, every
    // acknowledged cross-shard commit posted in both shards and every
    // acknowledged abort in neither. Call once converged() and settled().
    void check_quiescent();

    std::uint64_t now_ms() const { return timeline_.now_ms(); }
    std::size_t shard_count() const { return config_.shards; }
    // The nodes of shard `shard` (1-based).
    std::vector<NodeId> shard_nodes(ShardId shard) const;
    ShardId shard_of(NodeId id) const { return ShardId{(id.value - 1) / config_.nodes + 1}; }
    ShardId shard_of_item(ItemId item) const { return ShardId{(item.value - 1) / config_.items + 1}; }
    // The up nodes of shard `shard`.
    std::vector<NodeId> shard_up(ShardId shard) const;
    std::vector<NodeId> ids() const;
    std::vector<NodeId> up_nodes() const;
    std::vector<NodeId> down_nodes() const;
    bool is_up(NodeId id) const;
    const Replica& replica(NodeId id) const;
    // How often a timer woke `id` for its ticks since it last started.
    std::uint64_t tick_wakes(NodeId id) const;
    // `id`'s shell and WAL counters since it last started.
    const ShellStats& shell_stats(NodeId id) const;
    const WalStats& wal_stats(NodeId id) const;
    std::vector<NodeId> leaders() const;
    // The (epoch, leader) every up node in `among` agrees on, that leader up,
    // leading and ready to serve; nullopt otherwise.
    std::optional<std::pair<Epoch, NodeId>> agreed_leader(const std::vector<NodeId>& among) const;
    const Oracle& oracle(ShardId shard = ShardId{1}) const { return oracles_.at(shard.value - 1); }
    SimStats stats() const;
    const SimConfig& config() const { return config_; }
    std::mt19937_64& rng() { return rng_; }
    std::uint64_t max_delay_ever_ms() const { return net_.max_delay_ever_ms(); }
    // docs/design.md section 5: a leader within 2 x (suspect_after + election_timeout).
    std::uint64_t liveness_bound_ms() const;

private:
    using Mail = std::variant<election::ElectionMessage, TxnMessage>;

    struct Node;

    // A node's side of its txn::Shell, as node::Node is rlnode's: sends to
    // the simulated network, replies to the clients, syncs to the durable
    // model, crashes in the middle of the turn (shell.cpp).
    class Host final : public ShellHost {
    public:
        Host(Sim& sim, Node& n);
        Storage& disk() { return *disk_; }
        void send(NodeId to, const election::ElectionMessage& m) override;
        void send(NodeId to, const TxnMessage& m) override;
        void reply(std::uint64_t handle, const OpResult& result) override;
        void report(const ReplicaOutput& out) override;
        void wal_failed(const WalIoError& error, const ShellStats& stats) override;
        void synced(const std::vector<WalOp>& ops) override;
        std::optional<std::error_code> start_sync(StorageFile& file) override;
        void unreachable(NodeId peer);

    private:
        void send_mail(NodeId to, Mail mail);
        std::error_code fault(bool sync);

        Sim& sim_;
        Node& n_;
        std::unique_ptr<Storage> disk_;  // the node's SimStorage with crashes struck in
    };

    struct Node {
        NodeId id;
        ShardId shard;
        config::Config config;              // its INI
        simcommon::SimStorage disk;         // survives crashes
        WalModel model;                     // what the syncs made durable, for the checkers
        std::vector<WalOp> unsynced;        // what the WAL had accepted but not synced when it crashed
        std::optional<Wal> wal;             // empty while crashed
        std::optional<Replica> replica;
        std::unique_ptr<Host> host;
        std::unique_ptr<Shell> shell;
        // This incarnation's log as handed to the WAL, never compacted: the
        // source for learning committed entries (after compaction the
        // replica no longer holds them). Index -> entry.
        std::map<std::uint64_t, LogEntry> shadow;
        LogIndex shadow_base;     // entries through here came in a snapshot
        bool shadow_current = true;  // no input since the last flush handed everything over
        LogIndex learned;         // commit index observe() has processed
        LogIndex applied_seen;    // applied index observe() has checked
        std::uint64_t incarnation = 0;
        std::uint64_t tick_offset_ms = 0;
        // As rlnode (docs/design.md section 6.10): ticks count from
        // tick_origin_ms, and a timer wakes the node for the one its shell
        // says may act; the others are delivered before each input.
        std::uint64_t tick_origin_ms = 0;
        std::uint64_t tick_at_ms = 0;  // the tick item that counts, while tick_armed
        bool tick_armed = false;
        std::uint64_t tick_wakes = 0;  // tick items that woke it, this incarnation
        bool flush_scheduled = false;
        StorageFile* sync_file = nullptr;  // its fdatasync runs in the background, as rlnode's
    };

    struct Client {
        // A session per shard, opened with the shard of a transfer's FROM
        // item (the sender's shard numbers a cross-shard txid too).
        struct Session {
            std::uint64_t id = 0;           // 0 until one is opened
            std::uint64_t seq = 0;          // of the latest transfer in it
        };
        std::map<ShardId, Session> sessions;
        std::vector<TransferOp> history;    // every transfer it started, for replays
        std::optional<ClientOp> op;         // the operation in progress
        bool waiting = false;               // submitted, no answer yet
        std::uint64_t attempt = 0;          // bumped per submission; answers to older ones are stale
        std::uint64_t timer = 0;            // only the latest scheduled timer fires
        LogIndex read_floor;                // committed history of the item's shard known when the read started
        NodeId last_node;
        std::uint64_t op_started_ms = 0;
    };

    // One entry of the event heap; kept small (the payload waits in net_).
    struct Item {
        enum class Kind { tick, deliver, flush, client, unreachable, sync_done, refused };
        std::uint64_t time_ms;
        std::uint64_t seq;  // set by the timeline: ties break in scheduling order
        Kind kind;
        NodeId to;
        NodeId from;
        std::uint64_t tag;  // tick/flush/unreachable/sync_done/refused: incarnation; deliver: mail slot; client: index << 32 | timer
    };

    // sim.cpp: events, nodes and the network
    Node& node(NodeId id);
    const Node& node(NodeId id) const;
    void process(const Item& item);
    void deliver(Node& n, NodeId from, std::uint64_t slot);
    void after_input(Node& n);
    void catch_up(Node& n);
    void arm_tick(Node& n);
    bool chance(double p) { return simcommon::chance(rng_, p); }
    std::uint64_t uniform(std::uint64_t lo, std::uint64_t hi) { return simcommon::uniform(rng_, lo, hi); }
    void send(NodeId from, NodeId to, Mail mail);
    void note_unreachable(NodeId from, NodeId to);
    void on_unreachable(Node& n, NodeId peer);
    [[noreturn]] void fail(const std::string& what) const;
    void trace(const std::string& line) const;

    // shell.cpp: each node's txn::Shell and its host
    void open_node(Node& n);
    void flush(Node& n);
    void finish_sync(Node& n);
    template <class F>
    void guarded(Node& n, F&& input);
    void on_synced(Node& n, const std::vector<WalOp>& ops);
    void check_recovered(Node& n, const Recovered& rec);
    void check_dropped(const Node& n, const std::vector<LogEntry>& dropped, const char* how);
    void on_report(Node& n, const ReplicaOutput& out);
    void trace_output(const Node& n, const ReplicaOutput& out);
    void rebuild_shadow(Node& n);

    // check.cpp: invariants
    void observe(Node& n);
    const LogEntry* entry_at(const Node& n, LogIndex index) const;
    void learn(Node& n);
    std::size_t durable_copies(ShardId shard, const LogEntry& e) const;
    void learn_entry(const Node& n, const LogEntry& e);
    void on_decision(ShardId shard, const Oracle::Decision& d);
    void confirm_ack(TxnId txid);
    void check_books(const Node& n);
    void check_conservation();
    bool is_cross(TxnId txid) const;
    void check_applied(Node& n);
    void check_state_bytes(const Node& n);
    void check_sent(const Node& n, const Mail& mail) const;
    void check_invariants();

    // clients.cpp
    void start_clients();
    void client_timer(std::size_t index, std::uint64_t timer);
    void start_op(Client& c);
    BatchOp new_batch(Client& c, ShardId shard, Client::Session& session);
    void on_batch_done(const BatchDone& done);
    void submit(std::size_t index);
    void arm(std::size_t index, std::uint64_t delay_ms);
    void on_reply(std::uint64_t handle, const OpResult& result);
    void on_transfer_done(const TransferDone& done);
    void check_answer(const TransferDone& done, const Oracle::Result& r);
    void on_session_done(const SessionDone& done);
    void on_balance_done(const Client& c, const BalanceDone& done);
    void check_read(const BalanceDone& done, LogIndex floor, bool local);
    void finish_op(std::size_t index);

    SimConfig config_;
    std::vector<NodeId> ids_;
    std::mt19937_64 rng_;
    // Which fdatasyncs run in the background and for how long: a stream of
    // its own, so the other draws of a seed stay as they were.
    std::mt19937_64 sync_rng_;
    double background_sync_ = 0;  // share of syncs that complete later, as with io_uring
    std::uint64_t preallocate_bytes_ = 0;  // WalLimits::preallocate_bytes of every node
    std::vector<Node> nodes_;
    std::vector<Client> clients_;
    bool clients_active_ = true;
    simcommon::Timeline<Item> timeline_;
    simcommon::Network<Mail> net_;
    NetFaults faults_;

    std::vector<Oracle> oracles_;                     // per shard, [shard - 1]
    // Per shard, the real state machine applying the committed history as
    // it is learned: what Applied reports (Decided.conflicting) is checked
    // on it, and its state bytes join the replicas' comparison.
    std::vector<ShardState> mirrors_;
    std::vector<std::map<LogIndex, std::uint64_t>> state_hashes_;  // per shard: hash of ShardState::snapshot() first seen at each applied index
    std::map<TxnId, Outcome> acked_;                  // every acknowledged transfer
    std::map<TxnId, TransferOp> ops_;                 // every transfer a client started, by txid
    // Cross-shard transfers acknowledged before the debit shard's committed
    // history decided them (parallel commits): checked when it does.
    std::map<TxnId, TransferDone> unconfirmed_;
    // What the shards' committed histories decided of each cross-shard txid.
    struct CrossFacts {
        std::optional<std::pair<Fate, std::string>> fate;  // the first decision, and where
        std::optional<Oracle::Decision> debit_posted;
        std::optional<Oracle::Decision> credit_posted;
    };
    std::map<TxnId, CrossFacts> cross_;
    // A directed link to a crashed node: rlnode's peer link reports each
    // failed dial, then waits out a backoff that doubles from
    // reconnect_ms_min to reconnect_ms_max.
    struct Dial {
        bool reporting = false;
        std::uint64_t backoff_ms = 0;
        std::uint64_t quiet_until_ms = 0;
    };
    std::map<std::pair<std::uint64_t, std::uint64_t>, Dial> dials_;
    struct DeferredRead {
        BalanceDone done;
        LogIndex floor;
        bool local;
    };
    std::vector<DeferredRead> deferred_reads_;  // answered past the history known so far
    std::map<std::pair<ShardId, Epoch>, NodeId> leaders_;  // every leadership seen: one leader per epoch and shard, ever
    std::vector<Epoch> max_epoch_;              // per node, over restarts: the durable epoch only rises
    SimStats stats_;
    bool capture_ = false;
    struct Captured {
        NodeId from;
        NodeId to;
        Mail mail;
    };
    std::vector<Captured> captured_;
};

}  // namespace rl::txn::sim
