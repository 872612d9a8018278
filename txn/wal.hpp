// The write-ahead log of one node (docs/design.md section 6): the shard log's
// entries, its truncations and the election's durable promise, in
// append-only segment files under the node's data folder, plus snapshots
// that let old segments go.
//
// On disk, in `dir`:
//   wal-<seq, 20 digits>.log        segments, seq from 1, each a run of records
//   snapshot-<index, 20 digits>.bin one framed Snapshot; the chain's base
//   *.tmp                           a file being written; never part of the state
//
// Record framing (segments and snapshot files alike):
//   u32 length  big-endian (as the wire frames), bytes of payload, 1..record_bytes_max
//   u32 crc32c  big-endian, of the payload
//   payload     cereal PortableBinary (little-endian) of a WalRecord
//               (of a Snapshot in a snapshot file, whose one record has no size limit
//               but must fill the file exactly)
//
// A *chain* is the live state: a segment that opens with ChainStart (written
// whole through a temp file and a rename) and the segments that follow it
// by rollover, each opening with SegmentStart. Recovery replays the newest
// chain on top of the snapshot its ChainStart names; older segments and
// other snapshots are leftovers of a finished or a crashed compaction.
//
// Group commit: append(), truncate_after() and save_durable() only buffer;
// sync() writes the buffer with one write and at most one fdatasync (plus one
// folder fsync when the batch opens a new segment). The node calls sync()
// once per io_context turn, before sending anything that depends on it.
// FsyncMode::never skips every fsync, of files and of the folder alike.
// Single-threaded; the destructor drops whatever sync() did not write.
//
// Torn tail: only the last record of the last segment may be damaged by a
// crash (it is the only one not yet synced); if no whole record starts
// anywhere after a bad one, the rest of the file is cut off and reported.
// Any other damage is WalCorruption, and open() changes nothing on disk.
#pragma once

#include "config/config.hpp"
#include "config/types.hpp"
#include "election/output.hpp"
#include "txn/log_entry.hpp"
#include "txn/snapshot.hpp"

#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace rl::txn {

struct WalLimits {
    std::uint64_t segment_bytes_max = 64ull << 20;  // a batch that would pass it goes to a new segment
    std::uint32_t record_bytes_max = 8u << 20;      // payload bytes of one segment record
};


// What open() found on disk.
struct Recovered {
    election::Durable durable;          // the last saved Durable (zero on a fresh folder)
    std::optional<Snapshot> snapshot;   // the snapshot the log continues from, if any
    std::vector<LogEntry> entries;      // entries after the snapshot, in index order, truncations applied
    std::uint64_t torn_bytes_dropped = 0;  // bytes cut off the end of the log (0: clean)
    std::string torn_file;              // the file they were cut from
    std::string torn_reason;            // why the first dropped record was unreadable
};

// Counters for tests and metrics.
struct WalStats {
    std::uint64_t syncs = 0;            // sync() calls that had something to write
    std::uint64_t fsyncs = 0;           // fdatasync/fsync calls, on files and on the folder
    std::uint64_t bytes_written = 0;    // bytes written to segments and snapshots
    std::uint64_t records_written = 0;  // records written to segments
};

// ---- Segment records (the payload variant; public so tools and tests can
// read and forge them).

// First record of the segment that starts a chain.
struct ChainStart {
    std::uint64_t seq = 0;    // the segment's number; matches its file name
    LogIndex snapshot_index;  // the chain's entries start after it; 0: no snapshot
    Epoch snapshot_epoch;     // must match the snapshot file's last_epoch

    template <class Archive>
    void serialize(Archive& ar) { ar(seq, snapshot_index, snapshot_epoch); }
};

// First record of a segment opened by rollover.
struct SegmentStart {
    std::uint64_t seq = 0;  // the segment's number; the previous segment's plus one
    LogIndex prev_index;    // the log's last index when the segment opened

    template <class Archive>
    void serialize(Archive& ar) { ar(seq, prev_index); }
};

// A follower dropped a conflicting suffix: entries with index > `index` are gone.
struct TruncateAfter {
    LogIndex index;

    template <class Archive>
    void serialize(Archive& ar) { ar(index); }
};

using WalRecord = std::variant<ChainStart, SegmentStart, LogEntry, TruncateAfter, election::Durable>;

// The framed bytes of one record, as written to a segment.
std::vector<std::uint8_t> encode_record(const WalRecord& record);

// ---- Errors: the only exceptions the WAL throws.

// The log on disk is damaged somewhere other than its tail: the node must not
// start (docs/design.md section 6), since going on could forget acknowledged writes.
class WalCorruption : public std::runtime_error {
public:
    WalCorruption(std::filesystem::path file, std::uint64_t offset, const std::string& reason);
    const std::filesystem::path& file() const { return file_; }
    std::uint64_t offset() const { return offset_; }  // of the bad record, from the file's start

private:
    std::filesystem::path file_;
    std::uint64_t offset_;
};

// The disk refused an operation. The files on disk still hold a clean prefix
// of the log and whatever was buffered is still buffered, so a later call may
// retry.
class WalIoError : public std::runtime_error {
public:
    WalIoError(const std::string& what, std::error_code code);
    std::error_code code() const { return code_; }

private:
    std::error_code code_;
};

class Wal {
public:
    // Creates `dir` if missing, replays it into `out` (cutting off a torn
    // tail) and returns the log ready for appends. Throws WalCorruption or
    // WalIoError.
    static Wal open(const std::filesystem::path& dir, config::FsyncMode fsync, WalLimits limits, Recovered& out);

    // Buffer one record each; nothing reaches the disk before sync().
    void append(const LogEntry& entry);          // entry.index == last_index() + 1
    void truncate_after(LogIndex index);         // snapshot_index() <= index <= last_index()
    void save_durable(const election::Durable& durable);  // neither field below the current one

    // Writes everything buffered with one write, then fsyncs once (FsyncMode::always).
    void sync();
    bool dirty() const { return !pending_.empty(); }

    // Saves `snapshot` and restarts the log from it, keeping the entries after
    // snapshot.last_index, then deletes older segments and snapshots. Syncs
    // first. snapshot_index() <= snapshot.last_index <= last_index(), and the
    // entry there has snapshot.last_epoch. A crash at any point recovers
    // either the old or the new state. A WalIoError raised while deleting
    // the old files comes after the new state is in effect.
    void compact(const Snapshot& snapshot);
    // Same, for a snapshot received from the leader: every entry is dropped
    // and the log continues at snapshot.last_index + 1.
    void install_snapshot(const Snapshot& snapshot);

    LogIndex last_index() const { return last_index_; }  // including buffered entries
    LogIndex snapshot_index() const { return snapshot_index_; }
    const election::Durable& durable() const { return durable_; }  // including a buffered save
    const WalStats& stats() const { return stats_; }
    const std::filesystem::path& dir() const { return dir_; }

private:
    // An owned file descriptor.
    class Fd {
    public:
        Fd() = default;
        explicit Fd(int fd) : fd_(fd) {}
        Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
        Fd& operator=(Fd&& other) noexcept;
        Fd(const Fd&) = delete;
        Fd& operator=(const Fd&) = delete;
        ~Fd();
        int get() const { return fd_; }

    private:
        int fd_ = -1;
    };

    Wal(std::filesystem::path dir, config::FsyncMode fsync, WalLimits limits);

    void recover(Recovered& out);
    void buffer(const WalRecord& record);
    void write_batch();
    void roll_and_write_batch();
    int flush(int fd);
    int flush_dir();
    Fd write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes);
    void restart_chain(const Snapshot* snapshot, std::span<const LogEntry> kept);
    void delete_leftovers() const;

    std::filesystem::path dir_;
    config::FsyncMode fsync_;
    WalLimits limits_;
    WalStats stats_;

    Fd segment_;                      // the chain's last segment, written with pwrite at segment_bytes_
    std::uint64_t segment_seq_ = 0;
    std::uint64_t segment_bytes_ = 0;  // every byte below is a whole, written record
    bool tail_unclean_ = false;        // bytes past segment_bytes_ may remain from a failed write
    std::uint64_t chain_first_seq_ = 0;

    std::vector<std::uint8_t> pending_;  // framed records waiting for sync()
    std::uint64_t pending_records_ = 0;

    LogIndex snapshot_index_;
    Epoch snapshot_epoch_;
    LogIndex last_index_;
    LogIndex synced_last_index_;  // last_index_ as of the last sync(); a new segment's prev_index
    election::Durable durable_;
};

}  // namespace rl::txn
