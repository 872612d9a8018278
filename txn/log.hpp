// The replicated shard log (docs/design.md section 6), sans-I/O: Raft's log rules
// under the election's epochs. The election core decides who leads which
// epoch; this class keeps the entries, replicates them from the leader,
// fences other epochs, advances the commit index on a durable majority, and
// lets a new leader adopt the most up-to-date log of its promise quorum.
//
// The shell handles Output in order: persist (truncate, append, snapshot),
// sync, then send; after the sync it reports persisted(). A follower's
// AppendReply is therefore never on the wire before its entries are on disk.
#pragma once

#include "config/types.hpp"
#include "election/messages.hpp"
#include "election/output.hpp"
#include "election/quorum.hpp"
#include "txn/log_entry.hpp"
#include "txn/messages.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rl::txn {

struct LogLimits {
    std::uint32_t append_entries_max = 1024;   // entries in one AppendEntries or FetchReply
    std::uint32_t inflight_max = 16;           // unanswered AppendEntries with entries per follower (pipelining)
    std::uint64_t heartbeat_ticks = 5;         // empty AppendEntries period
    std::uint64_t retransmit_ticks = 20;       // silence after which a follower's pipeline restarts
    std::uint64_t adopt_timeout_ticks = 60;    // a new leader that cannot fetch the best log resigns
};

struct LogEnvelope {
    NodeId to;
    TxnMessage msg;
};

enum class LogEventKind {
    leader_ready,    // the new leader adopted the best log and appended its no-op
    adopt_started,   // peer: the promiser whose log the new leader fetches
    adopt_failed,    // the holder did not answer in time: the leader resigns
    truncated,       // index: a conflicting suffix after it was dropped
    snapshot_sent,   // peer: a follower too far behind gets the snapshot
    snapshot_installed,  // index: this node's log now restarts after it
    follower_regressed,  // peer, index: a follower reports less than it acknowledged
    bad_message,     // peer: an impossible message, dropped; reason
};
const char* to_string(LogEventKind k);

struct LogEvent {
    LogEventKind kind;
    NodeId peer = kNoNode;
    LogIndex index;
    const char* reason = "";
};

struct LogOutput {
    // Persist first, in this order.
    std::optional<LogIndex> truncate_after;   // drop entries after this index
    std::optional<Snapshot> install;          // the log restarts after install->last_index
    std::vector<LogEntry> appended;           // then these, in index order
    // Then send.
    std::vector<LogEnvelope> messages;
    std::vector<LogEvent> events;

    bool persist_empty() const { return !truncate_after && !install && appended.empty(); }
    // How many things it holds; grows with every one added.
    std::size_t count() const {
        return truncate_after.has_value() + install.has_value() + appended.size() + messages.size() + events.size();
    }
};

class ReplicatedLog {
public:
    // `snapshot` and `entries` are what the WAL recovered.
    ReplicatedLog(NodeId self, std::vector<NodeId> members, LogLimits limits, const std::optional<Snapshot>& snapshot,
                  std::vector<LogEntry> entries);

    // ---- what the election decided ----
    // Follow `leader` (kNoNode: nobody known yet) in epoch `e`.
    void follow(Epoch e, NodeId leader);
    // This node now leads `elected.epoch`: adopt the best log, then append a no-op.
    void lead(const election::Elected& elected);

    // ---- leader ----
    // Appends a command in the current epoch; nullopt unless ready().
    std::optional<LogIndex> propose(Command c);
    // A new read-confirmation round; the next heartbeat carries it.
    std::uint64_t start_read_round();
    // The next take_output() sends a heartbeat to every follower, and the
    // heartbeat period starts again from it.
    void heartbeat_now() {
        if (leading_) heartbeat_due_ = true;
    }
    // Leader: its followers alone can make what it appends durable on a
    // majority, so its own sync may wait (docs/design.md section 6.11).
    // True when at least majority() followers keep up: `suspected` does not
    // name it, nothing sent to it has gone unanswered through a tick, no
    // snapshot is on its way to it, and it has answered every send older
    // than the newest one any follower answered. False on a node that is
    // not a ready leader, and always in a shard of one or two nodes.
    template <class Suspected>
    bool followers_suffice(const Suspected& suspected) const {
        if (!ready()) return false;
        LogIndex newest_answered;
        for (const auto& [id, p] : progress_) newest_answered = std::max(newest_answered, p.match);
        std::size_t keeping_up = 0;
        for (const auto& [id, p] : progress_) {
            const bool behind = !p.inflight.empty() && p.inflight.front() < newest_answered;
            keeping_up += !suspected(id) && p.silent_ticks == 0 && p.snapshot_sent.value == 0 && !behind;
        }
        return keeping_up >= majority();
    }
    // Highest round a majority (self included) has acknowledged.
    std::uint64_t confirmed_round() const;

    // ---- from the network and the clock ----
    void step(NodeId from, const AppendEntries& m);
    void step(NodeId from, const AppendReply& m);
    void step(NodeId from, const FetchLog& m);
    void step(NodeId from, const FetchReply& m);
    void step(NodeId from, const InstallSnapshot& m);
    void tick();
    // The coming tick (1: the next one) that may produce output: a
    // heartbeat, a retransmission or an adoption step; UINT64_MAX for a
    // follower, which ticks do nothing to (docs/design.md section 6.10).
    std::uint64_t ticks_until_due() const;
    // What waits to be handed over (by take_output(), take_higher_epoch()
    // and take_resign()), plus the pipelines a tick restarted (take_output()
    // sends them again): grows with every output produced.
    std::size_t effects() const {
        return out_.count() + heartbeat_due_ + higher_epoch_.has_value() + resign_ + tick_restarts_;
    }

    // ---- from the shell and the state machine ----
    // Everything through `index` is on this node's disk. A sync vouches only
    // for what take_output() had handed over when it was called.
    void persisted(LogIndex index);
    // The state machine's snapshot through snapshot.last_index (<= commit):
    // entries up to it leave memory; it serves followers too far behind.
    void compact(Snapshot snapshot);

    // Builds the messages due now and hands everything over.
    LogOutput take_output();
    // A message showed a higher epoch than ours (sender, epoch): the
    // election must adopt it. Cleared by the call.
    std::optional<std::pair<NodeId, Epoch>> take_higher_epoch() { return std::exchange(higher_epoch_, std::nullopt); }
    // Leader: adoption of the best log failed; the epoch must be given up.
    bool take_resign() { return std::exchange(resign_, false); }

    // ---- queries ----
    bool leading() const { return leading_; }
    bool ready() const { return leading_ && ready_; }
    Epoch epoch() const { return epoch_; }
    NodeId leader() const { return leader_; }
    LogIndex last_index() const;
    Epoch last_epoch() const;
    election::LogPosition position() const { return {last_epoch(), last_index()}; }
    LogIndex commit_index() const { return commit_; }
    LogIndex snapshot_index() const { return snapshot_index_; }
    // Leader: index of this leadership's no-op (0 before it is appended).
    LogIndex epoch_start() const { return epoch_start_; }
    const std::optional<Snapshot>& snapshot() const { return snapshot_; }
    // The entry at `index` (snapshot_index < index <= last_index).
    const LogEntry& at(LogIndex index) const;
    std::optional<Epoch> epoch_at(LogIndex index) const;

private:
    // The leader's view of one follower. Sends since the last restart form
    // the current pipeline; answers to older sends are stale.
    struct Progress {
        LogIndex next;                    // next index to send
        LogIndex match;                   // highest index known durable there and equal to ours
        std::deque<LogIndex> inflight;    // last index of each unanswered send, oldest first
        LogIndex snapshot_sent;           // the snapshot in flight; 0 when none
        std::uint64_t pipeline_from = 0;  // stamp of the first append of the current pipeline
        std::uint64_t silent_ticks = 0;   // ticks without an answer while something is in flight
        std::uint64_t acked_round = 0;    // highest stamp it answered (read rounds)
    };
    struct Adoption {
        NodeId holder;                  // the promiser with the best log
        election::LogPosition target;   // its log position when it promised
        LogIndex cursor;                // next index to fetch
        std::uint64_t ticks_left;       // resign when it reaches 0
        std::uint64_t refetch_ticks = 0;
    };

    void append_local(LogEntry e);
    void truncate_local(LogIndex after);
    void install_local(const Snapshot& s);
    bool accept_from_leader(NodeId from, Epoch e);
    void accept_entries(const AppendEntries& m, LogIndex& match);
    LogIndex conflict_hint(LogIndex prev_index) const;
    void become_ready();
    void fetch_next();
    void adopt(const FetchReply& m);
    void finish_adoption_if_done();
    void tick_adoption();
    void tick_leader();
    void replicate(NodeId peer, Progress& p, bool heartbeat);
    void send_append(NodeId peer, Progress& p, bool with_entries);
    void send_snapshot(NodeId peer, Progress& p);
    void restart_pipeline(Progress& p, LogIndex next);
    void on_append_success(NodeId from, Progress& p, LogIndex match);
    void advance_commit();
    void send(NodeId to, TxnMessage msg) { out_.messages.push_back({to, std::move(msg)}); }
    void event(LogEventKind k, NodeId peer = kNoNode, LogIndex index = LogIndex{}, const char* reason = "") {
        out_.events.push_back({k, peer, index, reason});
    }
    std::size_t majority() const { return election::majority(members_.size()); }

    NodeId self_;
    std::vector<NodeId> members_;
    LogLimits limits_;
    std::deque<LogEntry> entries_;  // snapshot_index_ + 1 onwards
    LogIndex snapshot_index_;
    Epoch snapshot_epoch_;
    std::optional<Snapshot> snapshot_;
    LogIndex commit_;
    LogIndex durable_;              // this node's disk holds the log through here
    LogIndex handed_;               // take_output() handed the log through here to the shell

    Epoch epoch_;
    NodeId leader_;
    bool leading_ = false;
    bool ready_ = false;
    std::optional<Adoption> adoption_;
    std::map<NodeId, Progress> progress_;
    std::uint64_t round_ = 0;       // last stamp issued: every append and read round takes a new one
    std::uint64_t heartbeat_ticks_left_ = 0;
    bool heartbeat_due_ = false;
    std::size_t tick_restarts_ = 0;  // pipelines restarted after a silence
    LogIndex epoch_start_;
    std::optional<std::pair<NodeId, Epoch>> higher_epoch_;
    bool resign_ = false;

    LogOutput out_;
};

}  // namespace rl::txn
