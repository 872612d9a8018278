// The node's turn (docs/design.md section 6): the one piece of code between
// a Replica, its WAL and the outside world, run by rlnode and by the
// simulator alike, so that what the simulator proves is what runs
// (docs/design.md section 9, habit 12). It owns no socket, clock or thread:
// its host (the rlnode shell with Asio, or the simulator) passes inputs in
// and carries its sends and replies out.
//
// A turn handles the replica's output in a fixed order: answer clients and
// send what vouches for nothing on this disk (docs/design.md section 6.6),
// hand every WAL operation to the WAL and sync once for all of them (group
// commit), and send the rest once that sync has made what they vouch for
// durable. The fdatasync runs in the background when the host can (rlnode
// with io_uring): the node goes on with new turns meanwhile, whose WAL
// operations wait in the backlog and whose sends wait with them, and the
// next sync takes all of them at once. At most one sync is in flight. The
// WAL operations wait in order in the backlog until the WAL accepts each,
// so a disk error halfway is retried from exactly where it stopped.
// While the backlog holds more than wal_backlog_bytes_max, the node takes no
// new work: client operations are refused and peer log traffic (which would
// append) is dropped; the leader retransmits once the disk recovers.
// A leader whose followers keep up does not sync for its own entries: they
// wait in the WAL's buffer until the next tick or the first turn whose
// sends or WAL operations need the disk (docs/design.md section 6.11).
#pragma once

#include "config/config.hpp"
#include "txn/replica.hpp"
#include "txn/wal.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <system_error>
#include <variant>
#include <vector>

namespace rl::txn {

// The parameters of `self`'s replica, from the one INI every node reads.
// `seed` drives the election's jitter and the forward ids of this
// incarnation: a node passes a fresh random value at every start.
ReplicaParams replica_params(const config::Config& config, NodeId self, std::uint64_t seed);

// One WAL operation of a replica's output, waiting its turn in the backlog.
struct TruncateOp {
    LogIndex after;
};
struct InstallOp {
    Snapshot snapshot;
};
struct CompactOp {
    Snapshot snapshot;
    std::vector<LogEntry> kept;  // the log's entries after it when it was taken
};
using WalOp = std::variant<election::Durable, TruncateOp, InstallOp, LogEntry, CompactOp>;

struct ShellStats {
    std::uint64_t wal_io_errors = 0;      // turns whose persist the disk refused
    std::uint64_t dropped_sends = 0;      // messages not sent because their persist failed
    std::uint64_t refused_overloaded = 0; // inputs turned away while the backlog was full
    // Ticks that acted although next_tick() had said they would not: the
    // host woke too late for them. Always 0 unless Replica::ticks_until_due()
    // is wrong; the simulator checks it after every event.
    std::uint64_t early_ticks = 0;
    // Turns whose entries a leader left unsynced, its followers sufficing
    // for a majority (docs/design.md section 6.11).
    std::uint64_t syncs_waited = 0;
};

// What the shell needs from its host.
class ShellHost {
public:
    virtual ~ShellHost() = default;
    // A peer message of this turn, after what it vouches for is durable.
    virtual void send(NodeId to, const election::ElectionMessage& m) = 0;
    virtual void send(NodeId to, const TxnMessage& m) = 0;
    // The answer to the client operation submitted under `handle`.
    virtual void reply(std::uint64_t handle, const OpResult& result) = 0;
    // This turn's output as the replica gave it, before any of it is
    // persisted, sent or answered: for the node's log and the simulator.
    virtual void report(const ReplicaOutput& out) = 0;
    // The disk refused this turn's persist; it is retried next turn.
    virtual void wal_failed(const WalIoError& error, const ShellStats& stats) = 0;
    // Everything up to this point is durable: called after each successful
    // sync with the WAL operations it covered, in order.
    virtual void synced(const std::vector<WalOp>& ops) { (void)ops; }
    // Runs `file`'s fdatasync (StorageFile::sync_data(), or the same call
    // on its native_handle()). Returns the result when it ran at once, as
    // by default; nullopt when it runs in the background: the host then
    // calls Shell::sync_done() with the result later, never from inside
    // this call, and touches neither the shell's WAL nor the file meanwhile.
    virtual std::optional<std::error_code> start_sync(StorageFile& file) { return file.sync_data(); }
};

class Shell {
public:
    Shell(Replica& replica, Wal& wal, std::uint64_t wal_backlog_bytes_max, ShellHost& host);

    // Logical time (docs/design.md section 6.10). The host counts tick_ms
    // periods from the moment it made the shell, and calls advance_to()
    // with that count before every other call and when next_tick() comes:
    // the ticks in between are delivered then, in a row, so a host sleeps
    // through the ticks that only count time instead of waking for each.
    void advance_to(std::uint64_t ticks);
    // The count at which the host must call advance_to() next, at the
    // latest; always beyond ticks().
    std::uint64_t next_tick() const;
    std::uint64_t ticks() const { return ticks_; }

    void step(NodeId from, const election::ElectionMessage& m);
    void step(NodeId from, const TxnMessage& m);
    void submit(std::uint64_t handle, const ClientOp& op);
    void forward_elsewhere(std::uint64_t handle, ShardId shard, const ClientOp& op);
    void peer_unreachable(NodeId node);
    void peer_refused(NodeId node);

    // One turn: drains the replica's output (a few rounds, since persisting
    // can commit and committing can answer or send more).
    void flush();
    // The background fdatasync started through ShellHost::start_sync()
    // finished with `result`; completes that sync, then runs one turn.
    void sync_done(std::error_code result);
    bool syncing() const { return syncing_; }

    // What waits for the disk (the backlog and what the WAL buffered but
    // could not sync yet) is over its bound.
    bool overloaded() const { return backlog_bytes_ > backlog_bytes_max_; }
    std::size_t backlog_bytes() const { return backlog_bytes_; }
    // What the WAL accepted since its last successful sync, then what waits
    // in the backlog: after a crash, recovery may find any prefix of it on
    // disk (the simulator checks exactly that).
    std::vector<WalOp> unsynced() const;
    const ShellStats& stats() const { return stats_; }

private:
    // The sends of one turn that wait until every WAL operation enqueued up
    // to that turn is durable.
    struct HeldSends {
        std::uint64_t after_ops = 0;  // Shell::enqueued_ at that turn
        std::vector<ElectionEnvelope> election;
        std::vector<LogEnvelope> txn;
    };

    bool flush_round();
    bool sync_may_wait() const;
    void enqueue_all(ReplicaOutput& out);
    CompactOp compact_op(Snapshot snapshot) const;
    void sync_now();
    void sync_failed(const WalIoError& e);
    void became_durable();
    std::optional<LogIndex> durable_index() const;
    bool send_early(ReplicaOutput& out);
    void enqueue(WalOp op);
    void apply_to_wal(const WalOp& op);
    static std::size_t approx_bytes(const WalOp& op);

    Replica& replica_;
    Wal& wal_;
    std::uint64_t backlog_bytes_max_;
    ShellHost& host_;
    std::deque<WalOp> backlog_;  // WAL operations not yet accepted by the WAL, in order
    std::size_t backlog_bytes_ = 0;  // of backlog_ and accepted_: not yet durable
    std::vector<WalOp> accepted_;  // operations the WAL accepted since its last successful sync
    std::size_t accepted_bytes_ = 0;
    std::deque<HeldSends> held_;
    std::uint64_t enqueued_ = 0;   // WAL operations enqueued so far (a replaced one counts)
    std::uint64_t durable_ = 0;    // how many of them are durable
    std::uint64_t in_sync_ = 0;    // how many of them the current (or last) sync covers
    bool syncing_ = false;         // a background fdatasync is in flight
    // The tick at which a leader first left entries unsynced since its
    // last sync (sync_may_wait()); the next tick syncs them.
    std::optional<std::uint64_t> waiting_since_;
    std::uint64_t ticks_ = 0;      // ticks delivered to the replica
    ShellStats stats_;
};

}  // namespace rl::txn
