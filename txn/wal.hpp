// The write-ahead log of one node (docs/design.md section 6): the shard log's
// entries, its truncations and the election's durable promise, in
// append-only segment files under the node's data folder, plus snapshots
// that let old segments go.
//
// On disk, in `dir`:
//   wal-<seq, 20 digits>.log        segments, seq from 1, each a run of batches
//   snapshot-<index, 20 digits>.bin one framed Snapshot; the chain's base
//   *.tmp                           a file being written; never part of the state
//
// Batch framing (segments): each sync() appends one batch, written with one
// write and made durable with one fdatasync (group commit):
//   u32 marker  0x524C4231 ("RLB1"), the segment format; a file without it is
//               refused, never read as an empty log
//   u32 length  bytes of the records that follow, >= 1
//   u32 crc32c  of those bytes
//   u32 crc32c  of the 12 header bytes above
//   records     one or more, filling `length` exactly
// All integers of the framing are big-endian (as the wire frames).
//
// Record framing (inside a batch, and alone in a snapshot file):
//   u32 length  bytes of payload, 1..record_bytes_max
//   u32 crc32c  of the payload
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
// sync() writes the buffer as one batch and fsyncs once (plus one folder
// fsync when the batch opens a new segment). The node syncs once per
// io_context turn, before sending anything that depends on it, in two
// halves (begin_sync() and finish_sync()) so that its thread goes on while
// the disk works; at most one batch is in flight. A failed
// sync() keeps the buffer, and its retry writes the whole batch again before
// it fsyncs: after a failed fdatasync Linux may drop the dirty pages and
// report the next fdatasync a success without them. FsyncMode::never skips
// every fsync, of files and of the folder alike. Single-threaded; the
// destructor drops whatever sync() did not write.
//
// Preallocation (WalLimits::preallocate_bytes): a segment may end in
// zeros, space reserved for batches not written yet. Zeros from some batch
// boundary to the end of a segment are that space, never a torn tail or
// damage; the next batch is written over them.
//
// Torn tail: one fdatasync covers a whole batch, so a crash may leave any
// subset of the last batch's pages on disk, a bad record before good ones
// included. With FsyncMode::always batch k + 1 is written only after batch
// k's fdatasync returned, so the last batch of the last segment is the only
// one that may be damaged by a crash: when it is incomplete or fails any
// check, and no whole batch (nor the intact header of a next one) follows
// it, it is cut off and reported. A newest segment whose first batch is
// torn, with a segment before it, is a rollover cut short and is dropped
// whole. Any other damage is WalCorruption, and open() changes nothing on
// disk. A WalCorruption names the file and the offset of the bad record.
//
// Every file-system call goes through a txn::Storage (txn/storage.hpp).
#pragma once

#include "config/config.hpp"
#include "config/types.hpp"
#include "election/output.hpp"
#include "txn/log_entry.hpp"
#include "txn/snapshot.hpp"
#include "txn/storage.hpp"

#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

namespace rl::txn {

struct WalLimits {
    std::uint64_t segment_bytes_max = 64ull << 20;  // a batch that would pass it goes to a new segment
    std::uint32_t record_bytes_max = 8u << 20;      // payload bytes of one segment record
    // A segment's space is reserved this much ahead of its writes
    // (fallocate), so that an fdatasync writes the data alone and no file
    // size (docs/design.md section 6.2); 0: the file grows write by write.
    std::uint64_t preallocate_bytes = 0;
};

// The limits rlnode opens its WAL with (tools that measure the disk as a
// node uses it open theirs alike): 4 MiB reserved ahead.
inline constexpr WalLimits kNodeWalLimits{.preallocate_bytes = 4u << 20};


// What open() found on disk.
struct Recovered {
    election::Durable durable;          // the last saved Durable (zero on a fresh folder)
    std::optional<Snapshot> snapshot;   // the snapshot the log continues from, if any
    std::vector<LogEntry> entries;      // entries after the snapshot, in index order, truncations applied
    std::uint64_t torn_bytes_dropped = 0;  // bytes cut off the end of the log, reserved space included (0: clean)
    std::string torn_file;              // the file they were cut from
    std::string torn_reason;            // why the dropped batch was unreadable
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

// The framed bytes of one record, as written inside a batch.
std::vector<std::uint8_t> encode_record(const WalRecord& record);

// ---- Batch framing (public so tools and tests can read and forge segments).

inline constexpr std::uint32_t kWalBatchMarker = 0x524C4231;  // "RLB1"
inline constexpr std::size_t kWalBatchHeaderBytes = 16;

// The batch holding `records` (framed records, back to back), as sync() writes it.
std::vector<std::uint8_t> encode_batch(std::span<const std::uint8_t> records);

// ---- Errors: the only exceptions the WAL throws.

// The log on disk is damaged somewhere other than its tail: the node must not
// start (docs/design.md section 6), since going on could forget acknowledged writes.
class WalCorruption : public std::runtime_error {
public:
    WalCorruption(std::filesystem::path file, std::uint64_t offset, const std::string& reason);
    const std::filesystem::path& file() const { return file_; }
    // Of the bad record from the file's start, or of its batch when the
    // damage is in the batch's header or no single record is bad.
    std::uint64_t offset() const { return offset_; }

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
    // WalIoError. The first form works on the real file system; the second
    // on `storage`, which must outlive the Wal.
    static Wal open(const std::filesystem::path& dir, config::FsyncMode fsync, WalLimits limits, Recovered& out);
    static Wal open(Storage& storage, const std::filesystem::path& dir, config::FsyncMode fsync, WalLimits limits,
                    Recovered& out);

    // Buffer one record each; nothing reaches the disk before sync().
    void append(const LogEntry& entry);          // entry.index == last_index() + 1
    void truncate_after(LogIndex index);         // snapshot_index() <= index <= last_index()
    void save_durable(const election::Durable& durable);  // neither field below the current one

    // Writes everything buffered as one batch with one write, then fsyncs
    // once (FsyncMode::always). After a WalIoError the buffer is kept, and
    // the next call writes it again whole. When it returns, a crash
    // recovers exactly what the Wal holds, even after a failed compact().
    void sync();
    bool dirty() const { return !pending_.empty(); }

    // sync() in two halves, so that the host can wait for the fdatasync
    // without blocking its thread (docs/design.md section 6.6).
    // begin_sync() writes the buffer as one batch and returns the file
    // whose fdatasync makes it durable; the host runs that fdatasync and
    // passes its result to finish_sync(). Between the two nothing may
    // touch the Wal. It returns nullptr when nothing is left to wait for:
    // nothing was buffered, FsyncMode::never, or the batch opened a new
    // segment and was synced in place (a rare, synchronous path). Both
    // throw WalIoError as sync() does, keeping the buffer for a retry.
    StorageFile* begin_sync();
    config::FsyncMode fsync_mode() const { return fsync_; }
    void finish_sync(std::error_code fdatasync_result);
    bool sync_in_flight() const { return batch_in_flight_bytes_ != 0; }

    // Saves `snapshot` and restarts the log from it with `kept`, the entries
    // after snapshot.last_index through last_index() as the caller holds
    // them (the replicated log keeps every entry since its snapshot in
    // memory), then deletes older segments and snapshots. Syncs first. The
    // log is not read back: a compaction costs the entries it keeps, not
    // the log it drops (docs/design.md section 6.2). snapshot_index() <=
    // snapshot.last_index <= last_index(). A crash at any point recovers
    // either the old or the new state. A WalIoError raised while deleting
    // the old files comes after the new state is in effect.
    void compact(const Snapshot& snapshot, std::span<const LogEntry> kept);
    // Same, for a snapshot received from the leader: every entry is dropped
    // and the log continues at snapshot.last_index + 1.
    void install_snapshot(const Snapshot& snapshot);

    LogIndex last_index() const { return last_index_; }  // including buffered entries
    LogIndex snapshot_index() const { return snapshot_index_; }
    const election::Durable& durable() const { return durable_; }  // including a buffered save
    const WalStats& stats() const { return stats_; }
    const std::filesystem::path& dir() const { return dir_; }

private:
    using File = std::unique_ptr<StorageFile>;

    Wal(Storage& storage, std::filesystem::path dir, config::FsyncMode fsync, WalLimits limits);

    void recover(Recovered& out);
    void resume_chain(std::uint64_t first_seq, std::uint64_t last_seq, std::uint64_t whole_bytes,
                      std::uint64_t file_bytes, bool torn);
    void buffer(const WalRecord& record);
    void settle_folder();
    void cut_back_tail();
    void write_batch();
    std::uint64_t reserve(StorageFile& file, std::uint64_t reserved, std::uint64_t needed);
    [[noreturn]] void write_failed(const std::string& what, std::error_code ec);
    void batch_done();
    void roll_and_write_batch();
    std::error_code flush(StorageFile& file);
    std::error_code flush_dir();
    void discard(const std::filesystem::path& path);
    File write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes);
    void restart_chain(const Snapshot* snapshot, std::span<const LogEntry> kept);
    void delete_leftovers();

    Storage* storage_;  // never null; outlives the Wal
    std::filesystem::path dir_;
    config::FsyncMode fsync_;
    WalLimits limits_;
    WalStats stats_;

    File segment_;                     // the chain's last segment, written at segment_bytes_
    std::uint64_t segment_seq_ = 0;
    std::uint64_t segment_bytes_ = 0;  // every byte below is a whole, synced batch
    std::uint64_t segment_reserved_ = 0;  // the segment file's size: segment_bytes_ plus zeros reserved ahead
    bool reserve_unsupported_ = false;    // the file system cannot reserve space: stop asking
    // A write to segment_ failed: bytes past segment_bytes_ may remain, or
    // the cut may not be durable. The next sync() cuts and fsyncs first.
    bool tail_unclean_ = false;
    std::uint64_t chain_first_seq_ = 0;

    // A folder change was undone after its folder fsync failed (or the
    // fsync of a new name failed), so a crash could still bring the change
    // back: the next write first removes these names and fsyncs the folder.
    std::vector<std::filesystem::path> unwanted_;
    bool folder_unsettled_ = false;

    std::vector<std::uint8_t> pending_;  // framed records waiting for sync()
    std::uint64_t pending_records_ = 0;
    std::uint64_t batch_in_flight_bytes_ = 0;  // written by begin_sync(), waiting for its fdatasync

    LogIndex snapshot_index_;
    Epoch snapshot_epoch_;
    LogIndex last_index_;
    LogIndex synced_last_index_;  // last_index_ as of the last sync(); a new segment's prev_index
    election::Durable durable_;
};

}  // namespace rl::txn
