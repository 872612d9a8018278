#include "txn/wal.hpp"

#include "config/check.hpp"
#include "config/crc32c.hpp"
#include "config/bounded_archive.hpp"
#include "config/vector_archive.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <limits>
#include <map>
#include <string_view>

namespace rl::txn {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kFrameHeaderBytes = 8;     // u32 length + u32 crc32c
constexpr std::size_t kBatchCheckedBytes = 12;   // marker, length, crc: what the header crc covers
constexpr std::uint64_t kHeadReadBytes = 4096;   // a segment's opening record is far smaller
constexpr std::uint64_t kWholeFile = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t kNameDigits = 20;          // every u64 fits; names sort like numbers
constexpr std::string_view kSegmentPrefix = "wal-";
constexpr std::string_view kSegmentSuffix = ".log";
constexpr std::string_view kSnapshotPrefix = "snapshot-";
constexpr std::string_view kSnapshotSuffix = ".bin";
constexpr std::string_view kTempSuffix = ".tmp";

// ---- Names

std::string padded(std::uint64_t n) {
    std::string digits = std::to_string(n);
    return std::string(kNameDigits - digits.size(), '0') + digits;
}

fs::path segment_path(const fs::path& dir, std::uint64_t seq) {
    return dir / (std::string(kSegmentPrefix) + padded(seq) + std::string(kSegmentSuffix));
}

fs::path snapshot_path(const fs::path& dir, LogIndex index) {
    return dir / (std::string(kSnapshotPrefix) + padded(index.value) + std::string(kSnapshotSuffix));
}

fs::path temp_path(const fs::path& path) { return fs::path(path.string() + std::string(kTempSuffix)); }

// The number in `<prefix><20 digits><suffix>`, or nullopt for any other name.
std::optional<std::uint64_t> number_in(std::string_view name, std::string_view prefix, std::string_view suffix) {
    if (name.size() != prefix.size() + kNameDigits + suffix.size() || !name.starts_with(prefix) ||
        !name.ends_with(suffix)) {
        return std::nullopt;
    }
    const std::string_view digits = name.substr(prefix.size(), kNameDigits);
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
    return n;
}

// ---- Storage calls that throw

[[noreturn]] void throw_io(const std::string& what, std::error_code ec) { throw WalIoError(what, ec); }

// At most `max_bytes` from the start of `path`.
std::vector<std::uint8_t> read_bytes(Storage& storage, const fs::path& path, std::uint64_t max_bytes) {
    std::vector<std::uint8_t> bytes;
    if (const auto ec = storage.read_file(path, max_bytes, bytes)) throw_io("read " + path.string(), ec);
    return bytes;
}

// What the folder holds, by kind. Names of no kind are not ours and stay.
struct Listing {
    std::map<std::uint64_t, fs::path> segments;   // by seq
    std::map<std::uint64_t, fs::path> snapshots;  // by last_index
    std::vector<fs::path> temps;
};

Listing list_dir(Storage& storage, const fs::path& dir) {
    std::vector<std::string> names;
    if (const auto ec = storage.list_dir(dir, names)) throw_io("list " + dir.string(), ec);
    std::sort(names.begin(), names.end());
    Listing listing;
    for (const std::string& name : names) {
        if (const auto seq = number_in(name, kSegmentPrefix, kSegmentSuffix)) {
            listing.segments.emplace(*seq, dir / name);
        } else if (const auto index = number_in(name, kSnapshotPrefix, kSnapshotSuffix)) {
            listing.snapshots.emplace(*index, dir / name);
        } else if (name.ends_with(kTempSuffix) &&
                   (name.starts_with(kSegmentPrefix) || name.starts_with(kSnapshotPrefix))) {
            listing.temps.push_back(dir / name);
        }
    }
    return listing;
}

// ---- Encoding

void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void set_be32(std::vector<std::uint8_t>& out, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

// Appends `value` framed as a record (length, crc32c, payload), encoding
// the payload in place; returns the payload's length.
template <class T>
std::size_t append_framed(std::vector<std::uint8_t>& out, const T& value) {
    const std::size_t at = out.size();
    out.resize(at + kFrameHeaderBytes);
    {
        VectorOutputArchive ar(out);
        ar(value);
    }
    const std::size_t length = out.size() - at - kFrameHeaderBytes;
    set_be32(out, at, static_cast<std::uint32_t>(length));
    set_be32(out, at + 4, crc32c(std::span(out).subspan(at + kFrameHeaderBytes, length)));
    return length;
}

std::uint32_t get_be32(std::span<const std::uint8_t> bytes, std::uint64_t at) {
    std::uint32_t v = 0;
    for (std::uint64_t i = 0; i < 4; ++i) v = (v << 8) | bytes[at + i];
    return v;
}

// Just past the last byte of `bytes` that is not zero: what follows is
// space reserved ahead of the writes (WalLimits::preallocate_bytes).
std::uint64_t data_end(std::span<const std::uint8_t> bytes) {
    std::uint64_t end = bytes.size();
    while (end > 0 && bytes[end - 1] == 0) --end;
    return end;
}

template <class T>
std::vector<std::uint8_t> frame_of(const T& value) {
    std::vector<std::uint8_t> out;
    append_framed(out, value);
    return out;
}

// ---- Decoding. Nothing here allocates more than the bytes already read:
// lengths are checked against the file before use, and payloads are decoded
// with the bounded archive.

struct Frame {
    std::span<const std::uint8_t> payload;
    std::uint64_t end = 0;  // offset just past the record
};

// The record at `offset`, or why there is none.
std::variant<Frame, std::string> frame_at(std::span<const std::uint8_t> bytes, std::uint64_t offset,
                                          std::uint64_t payload_max) {
    const std::uint64_t left = bytes.size() - offset;
    if (left < kFrameHeaderBytes) {
        return "incomplete record header (" + std::to_string(left) + " of 8 bytes)";
    }
    const std::uint32_t length = get_be32(bytes, offset);
    if (length == 0) return std::string("zero record length");
    if (length > payload_max) {
        return "record length " + std::to_string(length) + " over the limit of " + std::to_string(payload_max);
    }
    if (length > left - kFrameHeaderBytes) {
        return "record of " + std::to_string(length) + " bytes ends past the end of its batch";
    }
    const auto payload = bytes.subspan(offset + kFrameHeaderBytes, length);
    if (crc32c(payload) != get_be32(bytes, offset + 4)) return std::string("crc mismatch");
    return Frame{payload, offset + kFrameHeaderBytes + length};
}

// The records' length from the batch header at `offset`, or why the header
// is not intact.
std::variant<std::uint32_t, std::string> batch_header_at(std::span<const std::uint8_t> bytes, std::uint64_t offset) {
    const std::uint64_t left = bytes.size() - offset;
    if (left < kWalBatchHeaderBytes) {
        return "incomplete batch header (" + std::to_string(left) + " of " + std::to_string(kWalBatchHeaderBytes) +
               " bytes)";
    }
    const auto header = bytes.subspan(offset, kWalBatchHeaderBytes);
    if (std::all_of(header.begin(), header.end(), [](std::uint8_t b) { return b == 0; })) {
        return std::string("zeroed batch header");
    }
    if (get_be32(header, 0) != kWalBatchMarker) return std::string("no batch marker");
    if (crc32c(header.first(kBatchCheckedBytes)) != get_be32(header, kBatchCheckedBytes)) {
        return std::string("batch header crc mismatch");
    }
    const std::uint32_t length = get_be32(header, 4);
    if (length == 0) return std::string("empty batch");
    return length;
}

struct Batch {
    std::uint64_t records = 0;  // offset of the first record
    std::uint64_t end = 0;      // offset just past the last one
};

// The whole batch at `offset`, or why it is not whole.
std::variant<Batch, std::string> batch_at(std::span<const std::uint8_t> bytes, std::uint64_t offset) {
    const auto header = batch_header_at(bytes, offset);
    if (const auto* why = std::get_if<std::string>(&header)) return *why;
    const std::uint64_t length = std::get<std::uint32_t>(header);
    const std::uint64_t left = bytes.size() - offset - kWalBatchHeaderBytes;
    if (length > left) {
        return "batch of " + std::to_string(length) + " bytes ends past the end of the file (" +
               std::to_string(left) + " left)";
    }
    const Batch batch{offset + kWalBatchHeaderBytes, offset + kWalBatchHeaderBytes + length};
    if (crc32c(bytes.subspan(batch.records, length)) != get_be32(bytes, offset + 8)) {
        return std::string("batch crc mismatch");
    }
    return batch;
}

// Whether what follows the bad batch at `offset` shows that it was synced.
// With FsyncMode::always batch k + 1 is written only after batch k's
// fdatasync returned (docs/design.md section 6.2), so a whole batch anywhere
// after it, or an intact header where the next batch starts, makes the
// damage corruption rather than a torn tail.
bool synced_before(std::span<const std::uint8_t> bytes, std::uint64_t offset) {
    const auto header = batch_header_at(bytes, offset);
    if (const auto* length = std::get_if<std::uint32_t>(&header)) {
        const std::uint64_t next = offset + kWalBatchHeaderBytes + *length;
        if (next < bytes.size() && std::holds_alternative<std::uint32_t>(batch_header_at(bytes, next))) return true;
    }
    for (std::uint64_t at = offset + 1; at + kWalBatchHeaderBytes <= bytes.size(); ++at) {
        if (get_be32(bytes, at) == kWalBatchMarker && std::holds_alternative<Batch>(batch_at(bytes, at))) return true;
    }
    return false;
}

struct Damage {
    std::uint64_t offset = 0;
    std::string reason;
};

// Where the bad batch at `offset` is damaged: at its first bad record when
// its header is intact and a record is bad, else at the batch itself.
Damage locate(std::span<const std::uint8_t> bytes, std::uint64_t offset, const std::string& why,
              std::uint64_t payload_max) {
    const auto header = batch_header_at(bytes, offset);
    const auto* length = std::get_if<std::uint32_t>(&header);
    if (length == nullptr) return {offset, why};
    const auto window = bytes.first(std::min<std::uint64_t>(bytes.size(), offset + kWalBatchHeaderBytes + *length));
    for (std::uint64_t at = offset + kWalBatchHeaderBytes; at < window.size();) {
        const auto frame = frame_at(window, at, payload_max);
        if (const auto* bad = std::get_if<std::string>(&frame)) return {at, *bad};
        at = std::get<Frame>(frame).end;
    }
    return {offset, why};
}

// A CRC-valid payload that does not decode was written that way: a bug or
// deliberate damage, never a torn write, so it is always corruption.
template <class T>
T decode_payload(std::span<const std::uint8_t> payload, const fs::path& file, std::uint64_t offset) {
    T value{};
    try {
        BoundedInputArchive ar(payload);
        ar(value);
        if (ar.remaining() != 0) {
            throw WalCorruption(file, offset, std::to_string(ar.remaining()) + " bytes after the record's payload");
        }
    } catch (const cereal::Exception& e) {
        throw WalCorruption(file, offset, std::string("undecodable payload with a good crc: ") + e.what());
    }
    return value;
}

// ---- Recovery

struct Torn {
    fs::path file;
    std::uint64_t offset = 0;  // the first dropped byte
    std::uint64_t bytes = 0;
    std::string reason;
};

// The live chain: seqs first..last, all present.
struct ChainPlan {
    std::uint64_t first_seq = 0;  // 0: the folder holds no chain
    std::uint64_t last_seq = 0;
    std::optional<Torn> torn;     // the newest segment, unreadable from its first byte (a rollover cut short)
};

// Why the first batch of a segment is unreadable, if it is. `head` holds
// the whole file when `whole`; else only its start, enough for the header
// and the opening record but not always for the batch's crc.
std::optional<std::string> first_batch_fault(std::span<const std::uint8_t> head, bool whole) {
    if (whole) {
        const auto batch = batch_at(head, 0);
        if (const auto* why = std::get_if<std::string>(&batch)) return *why;
        return std::nullopt;
    }
    const auto header = batch_header_at(head, 0);
    if (const auto* why = std::get_if<std::string>(&header)) return *why;
    return std::nullopt;
}

// A segment whose first batch is bad is a rollover cut short, dropped whole,
// only when it is the newest, some segment comes before it, and nothing
// after the damage shows that the batch was synced. Else corruption.
Torn torn_segment(std::span<const std::uint8_t> head, const fs::path& path, const std::string& why, bool may_tear,
                  const WalLimits& limits) {
    if (std::holds_alternative<Frame>(frame_at(head, 0, limits.record_bytes_max))) {
        throw WalCorruption(path, 0, "a record without batch framing: a segment of an older format");
    }
    if (!may_tear || synced_before(head, 0)) {
        const Damage damage = locate(head, 0, why, limits.record_bytes_max);
        throw WalCorruption(path, damage.offset, damage.reason);
    }
    return Torn{path, 0, head.size(), why};
}

// The record that opens a segment whose first batch header is intact.
WalRecord opening_record(std::span<const std::uint8_t> head, const fs::path& path, const WalLimits& limits) {
    const auto frame = frame_at(head, kWalBatchHeaderBytes, limits.record_bytes_max);
    if (const auto* why = std::get_if<std::string>(&frame)) throw WalCorruption(path, kWalBatchHeaderBytes, *why);
    return decode_payload<WalRecord>(std::get<Frame>(frame).payload, path, kWalBatchHeaderBytes);
}

// Walks segments from the newest back to the one that starts the chain,
// reading only their opening records, so leftovers of an older chain are
// never read (they may be half deleted).
ChainPlan find_chain(Storage& storage, const Listing& listing, const WalLimits& limits) {
    ChainPlan plan;
    for (auto it = listing.segments.rbegin(); it != listing.segments.rend(); ++it) {
        const auto& [seq, path] = *it;
        const bool newest = it == listing.segments.rbegin();
        const auto head = read_bytes(storage, path, newest ? kWholeFile : kHeadReadBytes);
        if (const auto why = first_batch_fault(head, newest)) {
            const bool may_tear = newest && std::next(it) != listing.segments.rend();
            plan.torn = torn_segment(head, path, *why, may_tear, limits);
            continue;
        }
        if (plan.last_seq != 0 && seq + 1 != std::prev(it)->first) {
            const fs::path missing = segment_path(path.parent_path(), seq + 1);
            throw WalCorruption(missing, 0, "segment missing from the chain");
        }
        if (plan.last_seq == 0) plan.last_seq = seq;
        const WalRecord first = opening_record(head, path, limits);
        if (std::holds_alternative<ChainStart>(first)) {
            plan.first_seq = seq;
            return plan;
        }
        if (!std::holds_alternative<SegmentStart>(first)) {
            throw WalCorruption(path, kWalBatchHeaderBytes, "segment opens without a header");
        }
    }
    if (plan.last_seq != 0) {
        throw WalCorruption(listing.segments.begin()->second, 0, "no segment starts the chain");
    }
    return plan;
}

struct Place {
    const fs::path& file;
    std::uint64_t seq = 0;
    std::uint64_t offset = 0;
    bool opens_chain = false;  // the segment is the chain's first
};

// The log rebuilt record by record; anything impossible is corruption.
class ChainReplay {
public:
    LogIndex base;                  // the chain continues after this snapshot index
    Epoch base_epoch;
    std::vector<LogEntry> entries;  // base + 1 .. last()
    election::Durable durable;

    LogIndex last() const { return LogIndex{base.value + entries.size()}; }

    void apply(const WalRecord& record, const Place& at) {
        const auto fail = [&](const std::string& why) { return WalCorruption(at.file, at.offset, why); };
        const bool header =
            std::holds_alternative<ChainStart>(record) || std::holds_alternative<SegmentStart>(record);
        // The segment's first record is the first of its first batch.
        if (header != (at.offset == kWalBatchHeaderBytes)) {
            throw fail(header ? "segment header inside a segment" : "segment opens without a header");
        }
        if (const auto* c = std::get_if<ChainStart>(&record)) {
            if (!at.opens_chain || c->seq != at.seq) throw fail("chain start does not match its file");
            base = c->snapshot_index;
            base_epoch = c->snapshot_epoch;
        } else if (const auto* s = std::get_if<SegmentStart>(&record)) {
            if (at.opens_chain || s->seq != at.seq || s->prev_index != last()) {
                throw fail("segment header does not continue the previous segment");
            }
        } else if (const auto* e = std::get_if<LogEntry>(&record)) {
            if (e->index.value != last().value + 1) {
                throw fail("entry " + std::to_string(e->index.value) + " follows entry " +
                           std::to_string(last().value));
            }
            entries.push_back(*e);
        } else if (const auto* t = std::get_if<TruncateAfter>(&record)) {
            if (t->index < base || t->index >= last()) {
                throw fail("truncation after " + std::to_string(t->index.value) + " outside the log (" +
                           std::to_string(base.value) + ", " + std::to_string(last().value) + "]");
            }
            entries.resize(t->index.value - base.value);
        } else {
            const auto& d = std::get<election::Durable>(record);
            // Epochs only rise (docs/design.md section 5): a lower saved promise was never written by us.
            if (d.promised < durable.promised || d.epoch < durable.epoch) throw fail("durable state goes backwards");
            durable = d;
        }
    }
};

struct Replayed {
    ChainReplay chain;
    std::optional<Torn> torn;
    std::uint64_t last_bytes = 0;  // whole batches in the last segment
    std::uint64_t last_file_bytes = 0;  // the last segment's size, reserved space included
};

// One segment of the chain, read whole.
struct SegmentBytes {
    const fs::path& path;
    std::uint64_t seq = 0;
    bool opens_chain = false;  // the chain's first segment
    bool may_tear = false;     // its last batch may be a torn tail
    std::vector<std::uint8_t> bytes;
};

// Applies the records of a whole batch. Its crc holds, so a record that
// does not frame was written that way: corruption wherever it is.
void replay_batch(const SegmentBytes& segment, const Batch& batch, std::uint64_t payload_max, ChainReplay& chain) {
    const auto window = std::span(segment.bytes).first(batch.end);
    for (std::uint64_t at = batch.records; at < batch.end;) {
        const auto frame = frame_at(window, at, payload_max);
        if (const auto* why = std::get_if<std::string>(&frame)) {
            throw WalCorruption(segment.path, at, "a record of a batch with a good crc: " + *why);
        }
        const auto& f = std::get<Frame>(frame);
        chain.apply(decode_payload<WalRecord>(f.payload, segment.path, at),
                    Place{segment.path, segment.seq, at, segment.opens_chain});
        at = f.end;
    }
}

// Replays one segment batch by batch; returns the bytes of its whole
// batches. Zeros from a batch boundary to the end are reserved space. A
// bad batch is a torn tail only where the segment may tear and nothing
// after the batch shows it was synced; anywhere else it refuses.
std::uint64_t replay_segment(const SegmentBytes& segment, std::uint64_t payload_max, Replayed& r) {
    const std::uint64_t end = data_end(segment.bytes);
    std::uint64_t offset = 0;
    while (offset < end) {
        const auto batch = batch_at(segment.bytes, offset);
        if (const auto* why = std::get_if<std::string>(&batch)) {
            if (!segment.may_tear || synced_before(segment.bytes, offset)) {
                const Damage damage = locate(segment.bytes, offset, *why, payload_max);
                throw WalCorruption(segment.path, damage.offset, damage.reason);
            }
            r.torn = Torn{segment.path, offset, segment.bytes.size() - offset, *why};
            break;
        }
        replay_batch(segment, std::get<Batch>(batch), payload_max, r.chain);
        offset = std::get<Batch>(batch).end;
    }
    return offset;
}

// Replays segments first..last. Only the last batch of the last segment
// may be torn, and only if `tail_may_tear`.
Replayed replay_chain(Storage& storage, const fs::path& dir, const ChainPlan& plan, const WalLimits& limits,
                      bool tail_may_tear) {
    Replayed r;
    for (std::uint64_t seq = plan.first_seq; seq <= plan.last_seq; ++seq) {
        const fs::path path = segment_path(dir, seq);
        const SegmentBytes segment{path, seq, seq == plan.first_seq, tail_may_tear && seq == plan.last_seq,
                                   read_bytes(storage, path, kWholeFile)};
        r.last_bytes = replay_segment(segment, limits.record_bytes_max, r);
        r.last_file_bytes = segment.bytes.size();
    }
    return r;
}

// The snapshot a chain starts from. It was renamed into place whole, so any
// flaw in it is corruption.
Snapshot load_snapshot(Storage& storage, const fs::path& dir, LogIndex index, Epoch epoch, const fs::path& named_by) {
    const fs::path path = snapshot_path(dir, index);
    std::uint64_t size_bytes = 0;
    if (const auto ec = storage.file_size(path, size_bytes)) {
        if (ec == std::errc::no_such_file_or_directory) {
            throw WalCorruption(path, 0, "snapshot named by " + named_by.string() + " is missing");
        }
        throw_io("stat " + path.string(), ec);
    }
    const auto bytes = read_bytes(storage, path, kWholeFile);
    const auto frame = frame_at(bytes, 0, bytes.size());
    if (const auto* why = std::get_if<std::string>(&frame)) throw WalCorruption(path, 0, *why);
    const auto& f = std::get<Frame>(frame);
    if (f.end != bytes.size()) throw WalCorruption(path, f.end, "bytes after the snapshot record");
    auto snapshot = decode_payload<Snapshot>(f.payload, path, 0);
    if (snapshot.last_index != index || snapshot.last_epoch != epoch) {
        throw WalCorruption(path, 0, "snapshot does not match the chain start in " + named_by.string());
    }
    return snapshot;
}

}  // namespace

// ---- Public helpers and errors

std::vector<std::uint8_t> encode_record(const WalRecord& record) { return frame_of(record); }

std::vector<std::uint8_t> encode_batch(std::span<const std::uint8_t> records) {
    require(!records.empty() && records.size() <= std::numeric_limits<std::uint32_t>::max(),
            "encode_batch: a batch holds 1 to 2^32 - 1 bytes of records");
    std::vector<std::uint8_t> out;
    out.reserve(kWalBatchHeaderBytes + records.size());
    put_be32(out, kWalBatchMarker);
    put_be32(out, static_cast<std::uint32_t>(records.size()));
    put_be32(out, crc32c(records));
    put_be32(out, crc32c(out));
    out.insert(out.end(), records.begin(), records.end());
    return out;
}

WalCorruption::WalCorruption(fs::path file, std::uint64_t offset, const std::string& reason)
    : std::runtime_error("WAL corruption in " + file.string() + " at offset " + std::to_string(offset) + ": " +
                         reason),
      file_(std::move(file)),
      offset_(offset) {}

WalIoError::WalIoError(const std::string& what, std::error_code code)
    : std::runtime_error("WAL I/O error: " + what + ": " + code.message()), code_(code) {}

// ---- Opening

Wal::Wal(Storage& storage, fs::path dir, config::FsyncMode fsync, WalLimits limits)
    : storage_(&storage), dir_(std::move(dir)), fsync_(fsync), limits_(limits) {}

Wal Wal::open(const fs::path& dir, config::FsyncMode fsync, WalLimits limits, Recovered& out) {
    static PosixStorage posix;  // holds no state: one serves every Wal of the process
    return open(posix, dir, fsync, limits, out);
}

Wal Wal::open(Storage& storage, const fs::path& dir, config::FsyncMode fsync, WalLimits limits, Recovered& out) {
    if (const auto ec = storage.create_dir(dir)) throw_io("create " + dir.string(), ec);
    Wal wal(storage, dir, fsync, limits);
    out = Recovered{};
    wal.recover(out);
    return wal;
}

void Wal::recover(Recovered& out) {
    const Listing listing = list_dir(*storage_, dir_);
    const ChainPlan plan = find_chain(*storage_, listing, limits_);
    if (plan.first_seq == 0 && !listing.snapshots.empty()) {
        throw WalCorruption(listing.snapshots.rbegin()->second, 0, "snapshot without any segment");
    }
    // A rollover writes its segment only after the previous one is synced, so
    // when the newest segment is torn whole, the one before must be intact.
    Replayed r = plan.first_seq == 0 ? Replayed{} : replay_chain(*storage_, dir_, plan, limits_, !plan.torn);
    if (r.chain.base.value != 0) {
        const fs::path chain_start = segment_path(dir_, plan.first_seq);
        out.snapshot = load_snapshot(*storage_, dir_, r.chain.base, r.chain.base_epoch, chain_start);
    }
    // Nothing on disk has changed so far: a refusal leaves the evidence as found.
    if (const auto& torn = plan.torn ? plan.torn : r.torn) {
        out.torn_bytes_dropped = torn->bytes;
        out.torn_file = torn->file.string();
        out.torn_reason = torn->reason;
    }
    durable_ = r.chain.durable;
    if (plan.first_seq == 0) {
        restart_chain(nullptr, {});
        return;
    }
    snapshot_index_ = r.chain.base;
    snapshot_epoch_ = r.chain.base_epoch;
    last_index_ = synced_last_index_ = r.chain.last();
    out.durable = r.chain.durable;
    out.entries = std::move(r.chain.entries);
    resume_chain(plan.first_seq, plan.last_seq, r.last_bytes, r.last_file_bytes, r.torn.has_value());
}

// Opens the chain's last segment for batches after its last whole one,
// cutting a torn tail off first so that no garbage stays buried mid-file,
// and removes the leftovers, a torn new segment among them. Then the folder
// is fsynced: a change an earlier run left unsynced (a removal, a rename it
// took back) must not come back after the next crash.
void Wal::resume_chain(std::uint64_t first_seq, std::uint64_t last_seq, std::uint64_t whole_bytes,
                       std::uint64_t file_bytes, bool torn) {
    const fs::path last = segment_path(dir_, last_seq);
    if (const auto ec = storage_->open_file(last, segment_)) throw_io("open " + last.string(), ec);
    if (torn) {
        std::error_code ec = segment_->truncate(whole_bytes);
        if (!ec) ec = flush(*segment_);
        if (ec) throw_io("truncate " + last.string(), ec);
    }
    segment_seq_ = last_seq;
    segment_bytes_ = whole_bytes;
    segment_reserved_ = torn ? whole_bytes : std::max(file_bytes, whole_bytes);
    chain_first_seq_ = first_seq;
    delete_leftovers();
    if (const auto ec = flush_dir()) throw_io("fsync " + dir_.string(), ec);
}

// ---- Buffering

void Wal::buffer(const WalRecord& record) {
    require(!sync_in_flight(), "Wal: nothing may be buffered while a batch is in flight");
    const std::size_t before = pending_.size();
    if (append_framed(pending_, record) > limits_.record_bytes_max) {
        pending_.resize(before);
        require(false, "Wal: record over record_bytes_max (the log layer bounds commands)");
    }
    ++pending_records_;
}

void Wal::append(const LogEntry& entry) {
    require(entry.index.value == last_index_.value + 1, "Wal::append: index must be last_index() + 1");
    buffer(entry);
    last_index_ = entry.index;
}

void Wal::truncate_after(LogIndex index) {
    // Raft truncates only uncommitted entries, and a snapshot holds only committed ones.
    require(index >= snapshot_index_ && index <= last_index_,
                      "Wal::truncate_after: index outside [snapshot_index(), last_index()]");
    if (index == last_index_) return;  // nothing to drop
    buffer(TruncateAfter{index});
    last_index_ = index;
}

void Wal::save_durable(const election::Durable& durable) {
    require(durable.promised >= durable_.promised && durable.epoch >= durable_.epoch,
                      "Wal::save_durable: epochs only rise");
    buffer(durable);
    durable_ = durable;
}

// ---- Writing

std::error_code Wal::flush(StorageFile& file) {
    if (fsync_ == config::FsyncMode::never) return {};
    ++stats_.fsyncs;
    return file.sync_data();
}

std::error_code Wal::flush_dir() {
    std::error_code ec;
    if (fsync_ != config::FsyncMode::never) {
        ++stats_.fsyncs;
        ec = storage_->sync_dir(dir_);
    }
    if (!ec) folder_unsettled_ = false;
    return ec;
}

// Takes back a new name whose file or folder fsync failed, so that memory
// and disk agree; settle_folder() makes sure before the next write that the
// name is gone for good.
void Wal::discard(const fs::path& path) {
    folder_unsettled_ = true;
    if (storage_->remove(path)) unwanted_.push_back(path);
}

// Runs before any write that will be reported durable. Without it a crash
// could keep a rename that was taken back (a chain start the Wal gave up
// on) and lose its removal, and recovery would prefer that chain to the
// batches synced since.
void Wal::settle_folder() {
    for (auto it = unwanted_.begin(); it != unwanted_.end(); it = unwanted_.erase(it)) {
        const auto ec = storage_->remove(*it);
        if (ec && ec != std::errc::no_such_file_or_directory) throw_io("remove " + it->string(), ec);
    }
    if (!folder_unsettled_) return;
    if (const auto ec = flush_dir()) throw_io("fsync " + dir_.string(), ec);
}

// An earlier batch failed: part of it may remain past segment_bytes_, or
// the cut-back may not be durable. A rollover would seal those bytes inside
// a segment that recovery reads as synced, so they go first, durably.
void Wal::cut_back_tail() {
    segment_reserved_ = segment_bytes_;
    std::error_code ec = segment_->truncate(segment_bytes_);
    if (!ec) ec = flush(*segment_);
    if (ec) throw_io("truncate " + segment_path(dir_, segment_seq_).string(), ec);
    tail_unclean_ = false;
}

void Wal::sync() {
    if (StorageFile* file = begin_sync()) finish_sync(file->sync_data());
}

StorageFile* Wal::begin_sync() {
    require(!sync_in_flight(), "Wal::begin_sync: a batch is already in flight");
    // Even with nothing buffered: when the sync ends, a crash must recover
    // what the Wal holds, not a chain start it took back.
    settle_folder();
    if (pending_.empty()) return nullptr;
    if (tail_unclean_) cut_back_tail();
    if (segment_bytes_ + kWalBatchHeaderBytes + pending_.size() > limits_.segment_bytes_max) {
        roll_and_write_batch();
        batch_done();
        return nullptr;
    }
    write_batch();
    if (fsync_ == config::FsyncMode::never) {
        finish_sync({});
        return nullptr;
    }
    ++stats_.fsyncs;
    return segment_.get();
}

void Wal::finish_sync(std::error_code fdatasync_result) {
    require(sync_in_flight(), "Wal::finish_sync: no batch in flight");
    const std::uint64_t bytes = std::exchange(batch_in_flight_bytes_, 0);
    if (fdatasync_result) write_failed("fdatasync " + segment_path(dir_, segment_seq_).string(), fdatasync_result);
    segment_bytes_ += bytes;
    stats_.bytes_written += bytes;
    batch_done();
}

void Wal::batch_done() {
    ++stats_.syncs;
    stats_.records_written += pending_records_;
    pending_.clear();
    pending_records_ = 0;
    synced_last_index_ = last_index_;
}

// The batch is built from pending_ on every attempt and written whole before
// its fsync: after a failed fdatasync the kernel may have dropped the pages
// while reads still return them, and a later fdatasync would report success
// without them (docs/design.md section 6.2).
void Wal::write_batch() {
    const auto batch = encode_batch(pending_);
    segment_reserved_ = reserve(*segment_, segment_reserved_, segment_bytes_ + batch.size());
    if (const auto ec = segment_->write_at(segment_bytes_, batch)) {
        write_failed("write " + segment_path(dir_, segment_seq_).string(), ec);
    }
    batch_in_flight_bytes_ = batch.size();
}

// Reserves space ahead (WalLimits::preallocate_bytes) once a write would
// pass what is reserved; returns the file's size from then on. A file
// system that cannot reserve space costs only speed: the write grows the
// file as it goes.
std::uint64_t Wal::reserve(StorageFile& file, std::uint64_t reserved, std::uint64_t needed) {
    if (limits_.preallocate_bytes == 0 || needed <= reserved || reserve_unsupported_) return reserved;
    const std::uint64_t target =
        std::max(needed, std::min(limits_.segment_bytes_max, needed + limits_.preallocate_bytes));
    if (const auto ec = file.allocate(target)) {
        reserve_unsupported_ = ec == std::errc::operation_not_supported;
        return reserved;
    }
    return target;
}

// Cut back to the last whole batch now; the retry makes the cut durable.
void Wal::write_failed(const std::string& what, std::error_code ec) {
    tail_unclean_ = true;
    segment_reserved_ = segment_bytes_;
    std::string message = what;
    if (const auto cut = segment_->truncate(segment_bytes_)) {
        message += " (and cutting it back failed: " + cut.message() + ")";
    }
    throw_io(message, ec);
}

// The batch opens a new segment; the old one is complete and synced.
void Wal::roll_and_write_batch() {
    const std::uint64_t seq = segment_seq_ + 1;
    const fs::path path = segment_path(dir_, seq);
    std::vector<std::uint8_t> records = encode_record(SegmentStart{seq, synced_last_index_});
    records.insert(records.end(), pending_.begin(), pending_.end());
    const auto batch = encode_batch(records);
    File file;
    if (const auto ec = storage_->create_file(path, file)) throw_io("create " + path.string(), ec);
    const std::uint64_t reserved = reserve(*file, 0, batch.size());
    std::error_code ec = file->write_at(0, batch);
    if (!ec) ec = flush(*file);
    if (!ec) ec = flush_dir();  // the new name must survive a crash along with its batch
    if (ec) {
        discard(path);
        throw_io("write " + path.string(), ec);
    }
    segment_ = std::move(file);
    segment_seq_ = seq;
    segment_bytes_ = batch.size();
    segment_reserved_ = std::max(reserved, segment_bytes_);
    stats_.bytes_written += batch.size();
    ++stats_.records_written;
}

// Temp file, fsync, rename, fsync the folder: a crash leaves either no file
// or the whole file under `path`. Every attempt writes a fresh temp file.
// Returns the file open for writing.
Wal::File Wal::write_file_atomically(const fs::path& path, std::span<const std::uint8_t> bytes) {
    const fs::path temp = temp_path(path);
    File file;
    if (const auto ec = storage_->create_file(temp, file)) throw_io("create " + temp.string(), ec);
    std::error_code ec = file->write_at(0, bytes);
    if (!ec) ec = flush(*file);
    if (ec) {
        storage_->remove(temp);  // a temp file left behind is a leftover, never state
        throw_io("write " + temp.string(), ec);
    }
    if (ec = storage_->rename(temp, path); ec) {
        storage_->remove(temp);
        throw_io("rename " + temp.string(), ec);
    }
    if (ec = flush_dir(); ec) {
        // Not known to be durable: take it back so the state in memory and on disk agree.
        discard(path);
        throw_io("fsync " + dir_.string(), ec);
    }
    stats_.bytes_written += bytes.size();
    return file;
}

// ---- Snapshots

void Wal::compact(const Snapshot& snapshot, std::span<const LogEntry> kept) {
    require(snapshot.last_index >= snapshot_index_ && snapshot.last_index <= last_index_,
                      "Wal::compact: snapshot outside [snapshot_index(), last_index()]");
    require(kept.size() == last_index_.value - snapshot.last_index.value,
            "Wal::compact: the kept entries are not those after the snapshot");
    for (std::size_t k = 0; k < kept.size(); ++k) {
        require(kept[k].index.value == snapshot.last_index.value + 1 + k,
                "Wal::compact: the kept entries are not those after the snapshot");
    }
    require(snapshot.last_index != snapshot_index_ || snapshot.last_epoch == snapshot_epoch_,
            "Wal::compact: snapshot epoch differs from the current snapshot's");
    sync();
    restart_chain(&snapshot, kept);
}

void Wal::install_snapshot(const Snapshot& snapshot) {
    require(snapshot.last_index >= snapshot_index_, "Wal::install_snapshot: older than the current snapshot");
    require(snapshot.last_index != snapshot_index_ || snapshot.last_epoch == snapshot_epoch_,
                      "Wal::install_snapshot: same index as the current snapshot, other epoch");
    sync();
    restart_chain(&snapshot, {});
}

// Starts a new chain: the snapshot file (unless the chain already starts
// there), then a segment whose one batch holds ChainStart, the Durable and
// `kept`, each renamed into place whole. Until that rename a crash recovers
// the old chain (a new snapshot file alone is a leftover); after it, the
// new one. Old files go last.
void Wal::restart_chain(const Snapshot* snapshot, std::span<const LogEntry> kept) {
    require(pending_.empty(), "Wal::restart_chain: sync() first");
    require(snapshot == nullptr || snapshot->last_index.value > 0,
                      "Wal: a snapshot holds at least one entry");
    settle_folder();
    const LogIndex base = snapshot != nullptr ? snapshot->last_index : LogIndex{};
    const Epoch base_epoch = snapshot != nullptr ? snapshot->last_epoch : Epoch{};
    if (snapshot != nullptr && base != snapshot_index_) {
        write_file_atomically(snapshot_path(dir_, base), frame_of(*snapshot));
    }
    const std::uint64_t seq = segment_seq_ + 1;
    std::vector<std::uint8_t> records = encode_record(ChainStart{seq, base, base_epoch});
    const auto add = [&records](const WalRecord& record) {
        const auto framed = encode_record(record);
        records.insert(records.end(), framed.begin(), framed.end());
    };
    add(durable_);
    for (const LogEntry& entry : kept) add(entry);
    const auto batch = encode_batch(records);
    segment_ = write_file_atomically(segment_path(dir_, seq), batch);
    segment_seq_ = chain_first_seq_ = seq;
    segment_bytes_ = segment_reserved_ = batch.size();
    tail_unclean_ = false;  // that was the old segment's
    snapshot_index_ = base;
    snapshot_epoch_ = base_epoch;
    last_index_ = synced_last_index_ = kept.empty() ? base : kept.back().index;
    stats_.records_written += 2 + kept.size();
    delete_leftovers();
}

// Removes every segment outside the chain, every snapshot but its base and
// every temp file. Leftovers never change what recovery finds, so this runs
// after the new state is durable and a failure here loses nothing.
void Wal::delete_leftovers() {
    const Listing listing = list_dir(*storage_, dir_);
    std::vector<fs::path> doomed = listing.temps;
    for (const auto& [seq, path] : listing.segments) {
        if (seq < chain_first_seq_ || seq > segment_seq_) doomed.push_back(path);
    }
    for (const auto& [index, path] : listing.snapshots) {
        if (index != snapshot_index_.value) doomed.push_back(path);
    }
    std::error_code first_error;
    for (const auto& path : doomed) {
        const auto ec = storage_->remove(path);
        if (ec && ec != std::errc::no_such_file_or_directory && !first_error) first_error = ec;
    }
    if (first_error) throw WalIoError("remove leftovers in " + dir_.string(), first_error);
}

}  // namespace rl::txn
