#include "txn/wal.hpp"

#include "config/check.hpp"
#include "config/crc32c.hpp"
#include "config/bounded_archive.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>

namespace rl::txn {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kFrameHeaderBytes = 8;     // u32 length + u32 crc32c
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

// What the folder holds, by kind. Names of no kind are not ours and stay.
struct Listing {
    std::map<std::uint64_t, fs::path> segments;   // by seq
    std::map<std::uint64_t, fs::path> snapshots;  // by last_index
    std::vector<fs::path> temps;
};

Listing list_dir(const fs::path& dir) {
    Listing listing;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const fs::path& path = it->path();
        const std::string name = path.filename().string();
        if (const auto seq = number_in(name, kSegmentPrefix, kSegmentSuffix)) {
            listing.segments.emplace(*seq, path);
        } else if (const auto index = number_in(name, kSnapshotPrefix, kSnapshotSuffix)) {
            listing.snapshots.emplace(*index, path);
        } else if (name.ends_with(kTempSuffix) &&
                   (name.starts_with(kSegmentPrefix) || name.starts_with(kSnapshotPrefix))) {
            listing.temps.push_back(path);
        }
    }
    if (ec) throw WalIoError("list " + dir.string(), ec);
    return listing;
}

// ---- Encoding

template <class T>
std::vector<std::uint8_t> payload_of(const T& value) {
    std::ostringstream os(std::ios::binary);
    {
        cereal::PortableBinaryOutputArchive ar(os, cereal::PortableBinaryOutputArchive::Options::LittleEndian());
        ar(value);
    }
    const std::string bytes = os.str();
    return {bytes.begin(), bytes.end()};
}

void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint32_t get_be32(std::span<const std::uint8_t> bytes, std::uint64_t at) {
    std::uint32_t v = 0;
    for (std::uint64_t i = 0; i < 4; ++i) v = (v << 8) | bytes[at + i];
    return v;
}

std::vector<std::uint8_t> frame_of(std::span<const std::uint8_t> payload) {
    std::vector<std::uint8_t> out;
    out.reserve(kFrameHeaderBytes + payload.size());
    put_be32(out, static_cast<std::uint32_t>(payload.size()));
    put_be32(out, crc32c(payload));
    out.insert(out.end(), payload.begin(), payload.end());
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
        return "record of " + std::to_string(length) + " bytes ends past the end of the file";
    }
    const auto payload = bytes.subspan(offset + kFrameHeaderBytes, length);
    if (crc32c(payload) != get_be32(bytes, offset + 4)) return std::string("crc mismatch");
    return Frame{payload, offset + kFrameHeaderBytes + length};
}

// Whether a whole record starts anywhere at or after `from`. A bad record
// with a good one after it is damage in the middle of the log, not a torn
// tail (docs/design.md section 6), whatever its own length field claims.
bool frame_follows(std::span<const std::uint8_t> bytes, std::uint64_t from, std::uint64_t payload_max) {
    for (std::uint64_t at = from; at + kFrameHeaderBytes <= bytes.size(); ++at) {
        if (std::holds_alternative<Frame>(frame_at(bytes, at, payload_max))) return true;
    }
    return false;
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

// ---- Plain POSIX I/O; each returns 0 or the errno.

int write_all(int fd, std::uint64_t offset, std::span<const std::uint8_t> first,
              std::span<const std::uint8_t> second = {}) {
    std::array<iovec, 2> iov{{{const_cast<std::uint8_t*>(first.data()), first.size()},
                              {const_cast<std::uint8_t*>(second.data()), second.size()}}};
    std::size_t at = 0;
    while (at < iov.size()) {
        if (iov[at].iov_len == 0) {
            ++at;
            continue;
        }
        const auto count = static_cast<int>(iov.size() - at);
        const ssize_t n = ::pwritev(fd, iov.data() + at, count, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? errno : EIO;
        offset += static_cast<std::uint64_t>(n);
        for (auto left = static_cast<std::size_t>(n); left > 0;) {
            const std::size_t step = std::min(left, iov[at].iov_len);
            iov[at].iov_base = static_cast<std::uint8_t*>(iov[at].iov_base) + step;
            iov[at].iov_len -= step;
            left -= step;
            if (iov[at].iov_len == 0) ++at;
        }
    }
    return 0;
}

[[noreturn]] void throw_io(const std::string& what, int err) {
    throw WalIoError(what, std::error_code(err, std::generic_category()));
}

// At most `max_bytes` from the start of `path`.
std::vector<std::uint8_t> read_bytes(const fs::path& path, std::uint64_t max_bytes) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_io("open " + path.string(), errno);
    struct stat st {};
    std::vector<std::uint8_t> bytes;
    int err = ::fstat(fd, &st) == 0 ? 0 : errno;
    if (err == 0) bytes.resize(std::min(static_cast<std::uint64_t>(st.st_size), max_bytes));
    for (std::size_t got = 0; err == 0 && got < bytes.size();) {
        const ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) err = n < 0 ? errno : EIO;  // EOF early: the file shrank under us
        else got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (err != 0) throw_io("read " + path.string(), err);
    return bytes;
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

// Walks segments from the newest back to the one that starts the chain,
// reading only their opening records, so leftovers of an older chain are
// never read (they may be half deleted).
ChainPlan find_chain(const Listing& listing, const WalLimits& limits) {
    ChainPlan plan;
    for (auto it = listing.segments.rbegin(); it != listing.segments.rend(); ++it) {
        const auto& [seq, path] = *it;
        const bool newest = it == listing.segments.rbegin();
        const auto head = read_bytes(path, newest ? kWholeFile : kHeadReadBytes);
        const auto frame = frame_at(head, 0, limits.record_bytes_max);
        if (const auto* why = std::get_if<std::string>(&frame)) {
            if (!newest || frame_follows(head, 1, limits.record_bytes_max)) throw WalCorruption(path, 0, *why);
            plan.torn = Torn{path, 0, head.size(), *why};
            continue;
        }
        if (plan.last_seq != 0 && seq + 1 != std::prev(it)->first) {
            const fs::path missing = segment_path(path.parent_path(), seq + 1);
            throw WalCorruption(missing, 0, "segment missing from the chain");
        }
        if (plan.last_seq == 0) plan.last_seq = seq;
        const auto first = decode_payload<WalRecord>(std::get<Frame>(frame).payload, path, 0);
        if (std::holds_alternative<ChainStart>(first)) {
            plan.first_seq = seq;
            return plan;
        }
        if (!std::holds_alternative<SegmentStart>(first)) {
            throw WalCorruption(path, 0, "segment opens without a header");
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
        if (header != (at.offset == 0)) {
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
    std::uint64_t last_bytes = 0;  // whole records in the last segment
};

// Replays segments first..last. Only the last record of the last segment
// may be torn, and only if `tail_may_tear`; every other bad record refuses.
Replayed replay_chain(const fs::path& dir, const ChainPlan& plan, const WalLimits& limits, bool tail_may_tear) {
    Replayed r;
    for (std::uint64_t seq = plan.first_seq; seq <= plan.last_seq; ++seq) {
        const fs::path path = segment_path(dir, seq);
        const auto bytes = read_bytes(path, kWholeFile);
        std::uint64_t offset = 0;
        while (offset < bytes.size()) {
            const auto frame = frame_at(bytes, offset, limits.record_bytes_max);
            if (const auto* why = std::get_if<std::string>(&frame)) {
                const bool last_record = tail_may_tear && seq == plan.last_seq &&
                                         !frame_follows(bytes, offset + 1, limits.record_bytes_max);
                if (!last_record) {
                    throw WalCorruption(path, offset, *why);
                }
                r.torn = Torn{path, offset, bytes.size() - offset, *why};
                break;
            }
            const auto& f = std::get<Frame>(frame);
            r.chain.apply(decode_payload<WalRecord>(f.payload, path, offset),
                          Place{path, seq, offset, seq == plan.first_seq});
            offset = f.end;
        }
        r.last_bytes = offset;
    }
    return r;
}

// The snapshot a chain starts from. It was renamed into place whole, so any
// flaw in it is corruption.
Snapshot load_snapshot(const fs::path& dir, LogIndex index, Epoch epoch, const fs::path& named_by) {
    const fs::path path = snapshot_path(dir, index);
    std::error_code ec;
    if (!fs::exists(path, ec)) {
        throw WalCorruption(path, 0, "snapshot named by " + named_by.string() + " is missing");
    }
    const auto bytes = read_bytes(path, kWholeFile);
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

std::vector<std::uint8_t> encode_record(const WalRecord& record) { return frame_of(payload_of(record)); }

WalCorruption::WalCorruption(fs::path file, std::uint64_t offset, const std::string& reason)
    : std::runtime_error("WAL corruption in " + file.string() + " at offset " + std::to_string(offset) + ": " +
                         reason),
      file_(std::move(file)),
      offset_(offset) {}

WalIoError::WalIoError(const std::string& what, std::error_code code)
    : std::runtime_error("WAL I/O error: " + what + ": " + code.message()), code_(code) {}

Wal::Fd& Wal::Fd::operator=(Fd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

Wal::Fd::~Fd() {
    if (fd_ >= 0) ::close(fd_);
}

// ---- Opening

Wal::Wal(fs::path dir, config::FsyncMode fsync, WalLimits limits)
    : dir_(std::move(dir)), fsync_(fsync), limits_(limits) {}

Wal Wal::open(const fs::path& dir, config::FsyncMode fsync, WalLimits limits, Recovered& out) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw WalIoError("create " + dir.string(), ec);
    Wal wal(dir, fsync, limits);
    out = Recovered{};
    wal.recover(out);
    return wal;
}

void Wal::recover(Recovered& out) {
    const Listing listing = list_dir(dir_);
    const ChainPlan plan = find_chain(listing, limits_);
    if (plan.first_seq == 0 && !listing.snapshots.empty()) {
        throw WalCorruption(listing.snapshots.rbegin()->second, 0, "snapshot without any segment");
    }
    // A rollover writes its segment only after the previous one is synced, so
    // when the newest segment is torn whole, the one before must be intact.
    Replayed r = plan.first_seq == 0 ? Replayed{} : replay_chain(dir_, plan, limits_, !plan.torn);
    if (r.chain.base.value != 0) {
        const fs::path chain_start = segment_path(dir_, plan.first_seq);
        out.snapshot = load_snapshot(dir_, r.chain.base, r.chain.base_epoch, chain_start);
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
    const fs::path last = segment_path(dir_, plan.last_seq);
    segment_ = Fd(::open(last.c_str(), O_WRONLY | O_CLOEXEC));
    if (segment_.get() < 0) throw_io("open " + last.string(), errno);
    if (r.torn) {
        // Cut the torn record off now, so the next append lands after the
        // last whole record instead of burying garbage mid-file.
        int err = ::ftruncate(segment_.get(), static_cast<off_t>(r.last_bytes)) == 0 ? 0 : errno;
        if (err == 0) err = flush(segment_.get());
        if (err != 0) throw_io("truncate " + last.string(), err);
    }
    segment_seq_ = plan.last_seq;
    segment_bytes_ = r.last_bytes;
    chain_first_seq_ = plan.first_seq;
    snapshot_index_ = r.chain.base;
    snapshot_epoch_ = r.chain.base_epoch;
    last_index_ = synced_last_index_ = r.chain.last();
    out.durable = r.chain.durable;
    out.entries = std::move(r.chain.entries);
    delete_leftovers();
}

// ---- Buffering

void Wal::buffer(const WalRecord& record) {
    const auto framed = encode_record(record);
    require(framed.size() - kFrameHeaderBytes <= limits_.record_bytes_max,
                      "Wal: record over record_bytes_max (the log layer bounds commands)");
    pending_.insert(pending_.end(), framed.begin(), framed.end());
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

int Wal::flush(int fd) {
    if (fsync_ == config::FsyncMode::never) return 0;
    ++stats_.fsyncs;
    while (::fdatasync(fd) != 0) {
        if (errno != EINTR) return errno;
    }
    return 0;
}

int Wal::flush_dir() {
    if (fsync_ == config::FsyncMode::never) return 0;
    const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    ++stats_.fsyncs;
    const int err = ::fsync(fd) == 0 ? 0 : errno;
    ::close(fd);
    return err;
}

void Wal::sync() {
    if (pending_.empty()) return;
    if (tail_unclean_) {
        // An earlier cut-back failed. A rollover would leave that half record
        // at the end of a sealed segment, which recovery must call corruption.
        int err = ::ftruncate(segment_.get(), static_cast<off_t>(segment_bytes_)) == 0 ? 0 : errno;
        if (err == 0) err = flush(segment_.get());
        if (err != 0) throw_io("truncate " + segment_path(dir_, segment_seq_).string(), err);
        tail_unclean_ = false;
    }
    if (segment_bytes_ + pending_.size() > limits_.segment_bytes_max) {
        roll_and_write_batch();
    } else {
        write_batch();
    }
    ++stats_.syncs;
    stats_.bytes_written += pending_.size();
    stats_.records_written += pending_records_;
    pending_.clear();
    pending_records_ = 0;
    synced_last_index_ = last_index_;
}

void Wal::write_batch() {
    const fs::path path = segment_path(dir_, segment_seq_);
    int err = write_all(segment_.get(), segment_bytes_, pending_);
    if (err == 0) err = flush(segment_.get());
    if (err != 0) {
        // Cut back to the last whole record: the disk keeps a clean prefix and
        // the retry rewrites the whole batch from the same offset.
        std::string what = "write " + path.string();
        if (::ftruncate(segment_.get(), static_cast<off_t>(segment_bytes_)) != 0) {
            what += " (and cutting it back failed: " + std::error_code(errno, std::generic_category()).message() + ")";
            tail_unclean_ = true;
        }
        throw_io(what, err);
    }
    segment_bytes_ += pending_.size();
}

// The batch opens a new segment; the old one is complete and synced.
void Wal::roll_and_write_batch() {
    const std::uint64_t seq = segment_seq_ + 1;
    const fs::path path = segment_path(dir_, seq);
    const auto header = encode_record(SegmentStart{seq, synced_last_index_});
    Fd fd(::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw_io("create " + path.string(), errno);
    int err = write_all(fd.get(), 0, header, pending_);
    if (err == 0) err = flush(fd.get());
    if (err == 0) err = flush_dir();  // the new name must survive a crash along with its records
    if (err != 0) {
        std::string what = "write " + path.string();
        if (::unlink(path.c_str()) != 0) what += " (and removing it failed)";
        throw_io(what, err);
    }
    segment_ = std::move(fd);
    segment_seq_ = seq;
    segment_bytes_ = header.size() + pending_.size();
    stats_.bytes_written += header.size();
    ++stats_.records_written;
}

// Temp file, fsync, rename, fsync the folder: a crash leaves either no file
// or the whole file under `path`. Returns the file open for writing.
Wal::Fd Wal::write_file_atomically(const fs::path& path, std::span<const std::uint8_t> bytes) {
    const fs::path temp = temp_path(path);
    Fd fd(::open(temp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw_io("create " + temp.string(), errno);
    int err = write_all(fd.get(), 0, bytes);
    if (err == 0) err = flush(fd.get());
    if (err != 0) {
        ::unlink(temp.c_str());
        throw_io("write " + temp.string(), err);
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        err = errno;
        ::unlink(temp.c_str());
        throw_io("rename " + temp.string(), err);
    }
    if (err = flush_dir(); err != 0) {
        // Not known to be durable: take it back so the state in memory and on disk agree.
        ::unlink(path.c_str());
        throw_io("fsync " + dir_.string(), err);
    }
    stats_.bytes_written += bytes.size();
    return fd;
}

// ---- Snapshots

void Wal::compact(const Snapshot& snapshot) {
    require(snapshot.last_index >= snapshot_index_ && snapshot.last_index <= last_index_,
                      "Wal::compact: snapshot outside [snapshot_index(), last_index()]");
    sync();
    // The entries to keep are read back from disk: the WAL holds no copy of the log in memory.
    ChainPlan plan{chain_first_seq_, segment_seq_, std::nullopt};
    Replayed now = replay_chain(dir_, plan, limits_, false);
    require(now.chain.last() == last_index_, "Wal::compact: the log on disk differs from memory");
    const std::uint64_t kept_from = snapshot.last_index.value - snapshot_index_.value;
    const Epoch epoch_there = kept_from == 0 ? snapshot_epoch_ : now.chain.entries[kept_from - 1].epoch;
    require(epoch_there == snapshot.last_epoch, "Wal::compact: snapshot epoch differs from its entry's");
    restart_chain(&snapshot, std::span(now.chain.entries).subspan(kept_from));
}

void Wal::install_snapshot(const Snapshot& snapshot) {
    require(snapshot.last_index >= snapshot_index_, "Wal::install_snapshot: older than the current snapshot");
    require(snapshot.last_index != snapshot_index_ || snapshot.last_epoch == snapshot_epoch_,
                      "Wal::install_snapshot: same index as the current snapshot, other epoch");
    sync();
    restart_chain(&snapshot, {});
}

// Starts a new chain: the snapshot file (unless the chain already starts
// there), then a segment holding ChainStart, the Durable and `kept`, each
// renamed into place whole. Until that rename a crash recovers the old chain
// (a new snapshot file alone is a leftover); after it, the new one. Old
// files go last.
void Wal::restart_chain(const Snapshot* snapshot, std::span<const LogEntry> kept) {
    require(pending_.empty(), "Wal::restart_chain: sync() first");
    require(snapshot == nullptr || snapshot->last_index.value > 0,
                      "Wal: a snapshot holds at least one entry");
    const LogIndex base = snapshot != nullptr ? snapshot->last_index : LogIndex{};
    const Epoch base_epoch = snapshot != nullptr ? snapshot->last_epoch : Epoch{};
    if (snapshot != nullptr && base != snapshot_index_) {
        write_file_atomically(snapshot_path(dir_, base), frame_of(payload_of(*snapshot)));
    }
    const std::uint64_t seq = segment_seq_ + 1;
    std::vector<std::uint8_t> bytes = encode_record(ChainStart{seq, base, base_epoch});
    const auto add = [&bytes](const WalRecord& record) {
        const auto framed = encode_record(record);
        bytes.insert(bytes.end(), framed.begin(), framed.end());
    };
    add(durable_);
    for (const LogEntry& entry : kept) add(entry);
    segment_ = write_file_atomically(segment_path(dir_, seq), bytes);
    segment_seq_ = chain_first_seq_ = seq;
    segment_bytes_ = bytes.size();
    snapshot_index_ = base;
    snapshot_epoch_ = base_epoch;
    last_index_ = synced_last_index_ = kept.empty() ? base : kept.back().index;
    stats_.records_written += 2 + kept.size();
    delete_leftovers();
}

// Removes every segment outside the chain, every snapshot but its base and
// every temp file. Leftovers never change what recovery finds, so this runs
// after the new state is durable and a failure here loses nothing.
void Wal::delete_leftovers() const {
    const Listing listing = list_dir(dir_);
    std::vector<fs::path> doomed = listing.temps;
    for (const auto& [seq, path] : listing.segments) {
        if (seq < chain_first_seq_ || seq > segment_seq_) doomed.push_back(path);
    }
    for (const auto& [index, path] : listing.snapshots) {
        if (index != snapshot_index_.value) doomed.push_back(path);
    }
    std::error_code first_error;
    for (const auto& path : doomed) {
        std::error_code ec;
        fs::remove(path, ec);
        if (ec && !first_error) first_error = ec;
    }
    if (first_error) throw WalIoError("remove leftovers in " + dir_.string(), first_error);
}

}  // namespace rl::txn
