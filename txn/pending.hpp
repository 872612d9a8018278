// The client operations waiting at one node (docs/design.md section 6),
// each with its deadline, under one admission limit: transfers and session
// openings waiting for their log entry to apply, linearizable reads waiting
// for their round, operations parked until a leader is known, and
// operations passed to another node. Pure bookkeeping: it decides nothing
// about the log or the election, and it answers no one itself; the Replica
// takes the waiters out and replies.
#pragma once

#include "config/types.hpp"
#include "txn/log_entry.hpp"
#include "txn/messages.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace rl::txn {

// Who is waiting for an operation's result: a local client session (the
// shell's handle) or another node that forwarded it here.
struct LocalWaiter {
    std::uint64_t handle = 0;
    bool operator==(const LocalWaiter&) const = default;
};
struct RemoteWaiter {
    NodeId node;
    std::uint64_t forward_id = 0;
    bool operator==(const RemoteWaiter&) const = default;
};
// One part of a client batch the leader serves (docs/design.md section
// 6.9): a TransferBatch entry, or one cross-shard transfer of the batch.
struct BatchWaiter {
    std::uint64_t batch = 0;  // the leader's assembly of the batch
    std::uint32_t part = 0;   // which part of it
    bool operator==(const BatchWaiter&) const = default;
};
using Waiter = std::variant<LocalWaiter, RemoteWaiter, BatchWaiter>;

struct PendingLimits {
    std::size_t ops_max = 100000;       // waiters at this node, every kind together
    std::uint64_t timeout_ticks = 500;  // a waiter is answered within this many ticks
};

// A waiter whose time ran out, and the error to answer it with.
struct GivenUp {
    Waiter waiter;
    std::string code;  // timeout or unavailable
    std::string message;
};

class PendingOps {
public:
    // Forward ids start at `forward_id_base`: they must not repeat across a
    // restart, or a late reply to a request forwarded before a crash would
    // answer a new one.
    PendingOps(PendingLimits limits, std::uint64_t forward_id_base);

    // Admission: every new waiter counts, a retry joining a known txid too.
    bool full() const { return size() >= limits_.ops_max; }
    std::size_t size() const { return waiters_; }

    // ---- waits on a log entry this node proposed as leader
    bool waiting_for(TxnId txid) const { return transfers_.contains(txid); }
    void wait_transfer(TxnId txid, Waiter w);
    std::vector<Waiter> take_transfer(TxnId txid);
    void wait_entry(LogIndex index, Waiter w);
    std::vector<Waiter> take_entry(LogIndex index);

    // ---- linearizable reads (Raft's ReadIndex)
    struct Read {
        Waiter waiter;
        ClientOp op;          // a BalanceOp or an AuditOp
        LogIndex read_index;  // applied state must reach this
        std::uint64_t round;  // a majority must confirm this round
    };
    void wait_read(Read r);
    // Removes and returns, in arrival order, the reads `ready` accepts.
    std::vector<Read> take_reads(const std::function<bool(const Read&)>& ready);

    // ---- operations waiting until some leader is known
    struct Parked {
        Waiter waiter;
        ClientOp op;
        std::uint8_t hops = 0;  // forwarding hops it already took
    };
    void park(Parked p);
    bool has_parked() const { return !parked_.empty(); }
    std::vector<Parked> take_parked();

    // ---- operations passed to another node, by forward id
    // `hops`: forwarding hops the operation took with this one, kept so a
    // re-route (take_forwards_if) stays within the bound.
    std::uint64_t forward(Waiter w, NodeId to, ClientOp op, std::uint8_t hops = 0);
    // The waiter of forward `id`, if `result` from `from` answers what was
    // forwarded under it; a reply from elsewhere or to something else (from
    // before a restart of ours) must not reach this client.
    std::optional<Waiter> take_forward_reply(std::uint64_t id, NodeId from, const OpResult& result);
    // The operation forwarded under `id`, while it waits.
    const ClientOp* forwarded_op(std::uint64_t id) const;
    // Removes and returns the forwards whose target `stale` rejects, with
    // their operations and hops.
    std::vector<Parked> take_forwards_if(const std::function<bool(NodeId to)>& stale);
    // Removes and returns the forwards sent to `to`, with their operations.
    std::vector<std::pair<Waiter, ClientOp>> take_forwards_to(NodeId to);

    // Leadership ended: every waiter on an entry or a read.
    std::vector<Waiter> take_leader_waits();

    // One tick of logical time: the waiters whose deadline passed.
    std::vector<GivenUp> tick(const std::string& late, const std::string& leaderless);

private:
    template <class T>
    struct Timed {
        T item;
        std::uint64_t deadline;
    };
    struct Forwarded {
        Waiter waiter;
        NodeId to;
        ClientOp op;
        std::uint8_t hops = 0;
    };

    std::uint64_t deadline() const { return now_ + limits_.timeout_ticks; }
    template <class Key>
    std::vector<Waiter> take_keyed(std::map<Key, std::vector<Timed<Waiter>>>& waits, const Key& key);

    PendingLimits limits_;
    std::uint64_t now_ = 0;
    std::size_t waiters_ = 0;
    std::map<TxnId, std::vector<Timed<Waiter>>> transfers_;
    std::map<LogIndex, std::vector<Timed<Waiter>>> entries_;
    std::vector<Timed<Read>> reads_;
    std::vector<Timed<Parked>> parked_;
    std::map<std::uint64_t, Timed<Forwarded>> forwarded_;
    std::uint64_t next_forward_id_;
};

// True when `result` can be the answer to `op` (a failure answers anything).
bool answers(const ClientOp& op, const OpResult& result);

}  // namespace rl::txn
