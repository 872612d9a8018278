// A node's WAL as the simulator models it: what a sync made durable and the
// buffer a crash loses. It enforces the preconditions txn::Wal asserts, so
// an output the real shell would abort on fails the run instead.
#pragma once

#include "election/output.hpp"
#include "txn/log_entry.hpp"
#include "txn/replica.hpp"
#include "txn/snapshot.hpp"

#include <optional>
#include <variant>
#include <vector>

namespace rl::txn::sim {

// The durable copy: what survives a crash.
struct Disk {
    election::Durable durable;
    std::optional<Snapshot> snapshot;
    std::vector<LogEntry> entries;  // consecutive, from snapshot_index() + 1

    LogIndex snapshot_index() const { return snapshot ? snapshot->last_index : LogIndex{}; }
    LogIndex last_index() const { return LogIndex{snapshot_index().value + entries.size()}; }
    // The entry at `index` if it is stored as an entry (not folded into the snapshot).
    const LogEntry* find(LogIndex index) const;
};

class WalModel {
public:
    // Buffered like txn::Wal: nothing is durable before sync().
    void save_durable(const election::Durable& d);
    void truncate_after(LogIndex index);
    void append(const LogEntry& e);
    // Like txn::Wal these sync first, then restart the log from the
    // snapshot. install() returns the durable entries it dropped.
    std::vector<LogEntry> install(const Snapshot& s);
    void compact(const Snapshot& s, const std::vector<LogEntry>& kept);
    // Makes the buffer durable; returns the durable entries truncations dropped.
    std::vector<LogEntry> sync();
    // The buffer is lost; the durable copy stays.
    void crash();

    LogIndex last_index() const { return last_; }  // including the buffer, as txn::Wal reports it
    const Disk& disk() const { return disk_; }
    RecoveredState recovered() const { return {disk_.durable, disk_.snapshot, disk_.entries}; }

private:
    struct Truncate {
        LogIndex after;
    };
    using Op = std::variant<election::Durable, Truncate, LogEntry>;

    void restart(const Snapshot& s, LogIndex keep_after);

    Disk disk_;
    std::vector<Op> pending_;
    election::Durable buffered_durable_;  // the durable state including the buffer
    LogIndex last_;
};

}  // namespace rl::txn::sim
