// The write-ahead log: round trips, group commit, and every kind of damage a
// crash or a bad disk leaves behind (docs/design.md section 6.2): a torn tail
// is cut off and reported, anything else refuses to start with the file and
// offset. The last part runs the same Wal on the simulated disk (section
// 7.2): failed calls retried, crashes at any call, seeded random runs.
#define BOOST_TEST_MODULE wal
#include "test/sim_common/cli.hpp"
#include "test/sim_common/sim_storage.hpp"
#include "test/support/process.hpp"
#include "config/crc32c.hpp"
#include "config/random.hpp"
#include "txn/wal.hpp"

#include <boost/test/unit_test.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

namespace rl::txn {
namespace {

namespace fs = std::filesystem;
namespace tt = boost::test_tools;
using config::FsyncMode;

// ---- Log content

LogEntry entry(std::uint64_t index, std::uint64_t epoch = 1) {
    return LogEntry{LogIndex{index}, Epoch{epoch}, Transfer{TxnId{7, index}, ItemId{1}, ItemId{2}, 10}};
}

Snapshot snapshot_at(std::uint64_t index, std::uint64_t epoch = 1) {
    return Snapshot{LogIndex{index}, Epoch{epoch}, {1, 2, 3, static_cast<std::uint8_t>(index)}};
}

// The entries after `snapshot` through the WAL's last, as a node hands
// them to Wal::compact from its log in memory: every log of these tests
// but the random one is entry(i) at epoch 1.
std::vector<LogEntry> kept_after(const Wal& wal, const Snapshot& snapshot) {
    std::vector<LogEntry> kept;
    for (auto i = snapshot.last_index.value + 1; i <= wal.last_index().value; ++i) kept.push_back(entry(i));
    return kept;
}

void compact(Wal& wal, const Snapshot& snapshot) { wal.compact(snapshot, kept_after(wal, snapshot)); }

std::vector<std::uint64_t> indexes_of(const std::vector<LogEntry>& entries) {
    std::vector<std::uint64_t> out;
    for (const auto& e : entries) out.push_back(e.index.value);
    return out;
}

std::vector<std::uint64_t> epochs_of(const std::vector<LogEntry>& entries) {
    std::vector<std::uint64_t> out;
    for (const auto& e : entries) out.push_back(e.epoch.value);
    return out;
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
    std::vector<std::uint64_t> out;
    for (std::uint64_t i = first; i <= last; ++i) out.push_back(i);
    return out;
}

// ---- Opening

// Each test works in `<tmp>/node-1`, which open() must create.
struct NodeDir {
    test::TempDir tmp;
    fs::path path = tmp.path() / "node-1";
};

Wal open_wal(const fs::path& dir, Recovered& out, FsyncMode mode = FsyncMode::always, WalLimits limits = {}) {
    return Wal::open(dir, mode, limits, out);
}

// What a restart would find.
Recovered reopen(const fs::path& dir, WalLimits limits = {}) {
    Recovered out;
    open_wal(dir, out, FsyncMode::never, limits);
    return out;
}

void append_range(Wal& wal, std::uint64_t first, std::uint64_t last, std::uint64_t epoch = 1) {
    for (std::uint64_t i = first; i <= last; ++i) wal.append(entry(i, epoch));
}

// Durable{2, 3}, then entries 1..n at epoch 1, one sync each.
void write_log(const fs::path& dir, std::uint64_t n, WalLimits limits = {}) {
    Recovered out;
    Wal wal = open_wal(dir, out, FsyncMode::never, limits);
    wal.save_durable({Epoch{2}, Epoch{3}});
    for (std::uint64_t i = 1; i <= n; ++i) {
        wal.append(entry(i));
        wal.sync();
    }
}

// ---- Files

std::vector<fs::path> files_named(const fs::path& dir, std::string_view prefix) {
    std::vector<fs::path> out;
    for (const auto& f : fs::directory_iterator(dir)) {
        if (f.path().filename().string().starts_with(prefix)) out.push_back(f.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<fs::path> segments(const fs::path& dir) { return files_named(dir, "wal-"); }
std::vector<fs::path> snapshots(const fs::path& dir) { return files_named(dir, "snapshot-"); }

fs::path only_segment(const fs::path& dir) {
    const auto all = segments(dir);
    BOOST_REQUIRE_EQUAL(all.size(), 1u);
    return all.front();
}

std::vector<std::uint8_t> slurp(const fs::path& p) {
    std::vector<std::uint8_t> bytes(fs::file_size(p));
    std::ifstream in(p, std::ios::binary);
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return bytes;
}

void spit(const fs::path& p, std::span<const std::uint8_t> bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::uint32_t be32(std::span<const std::uint8_t> bytes, std::uint64_t at) {
    return (std::uint32_t{bytes[at]} << 24) | (std::uint32_t{bytes[at + 1]} << 16) |
           (std::uint32_t{bytes[at + 2]} << 8) | bytes[at + 3];
}

void put_be32(std::span<std::uint8_t> bytes, std::uint64_t at, std::uint32_t v) {
    for (std::uint64_t i = 0; i < 4; ++i) bytes[at + i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

// One batch of a well-formed segment.
struct BatchLayout {
    std::uint64_t offset = 0;           // of its header
    std::uint64_t end = 0;              // just past its last record
    std::vector<std::uint64_t> records;  // start offsets of its records
};

std::vector<BatchLayout> batches_of(std::span<const std::uint8_t> bytes) {
    std::vector<BatchLayout> out;
    for (std::uint64_t at = 0; at < bytes.size();) {
        BatchLayout batch{at, at + kWalBatchHeaderBytes + be32(bytes, at + 4), {}};
        for (std::uint64_t r = at + kWalBatchHeaderBytes; r < batch.end; r += 8 + be32(bytes, r)) {
            batch.records.push_back(r);
        }
        at = batch.end;
        out.push_back(std::move(batch));
    }
    return out;
}

// The batch of `batches` that holds byte `at`.
const BatchLayout& batch_holding(const std::vector<BatchLayout>& batches, std::uint64_t at) {
    const auto it = std::find_if(batches.begin(), batches.end(), [at](const auto& b) { return at < b.end; });
    BOOST_REQUIRE(it != batches.end());
    return *it;
}

// Where recovery reports damage to byte `at`: its batch when the byte is in
// the batch's header, else the record holding it.
std::uint64_t damage_offset(const std::vector<BatchLayout>& batches, std::uint64_t at) {
    const BatchLayout& batch = batch_holding(batches, at);
    if (at < batch.offset + kWalBatchHeaderBytes) return batch.offset;
    return *std::prev(std::upper_bound(batch.records.begin(), batch.records.end(), at));
}

// Rewrites the header crc of the batch at `at` after its fields were changed.
void reseal_header(std::span<std::uint8_t> bytes, std::uint64_t at) {
    put_be32(bytes, at + 12, crc32c(bytes.subspan(at, 12)));
}

void append_bytes(const fs::path& p, std::span<const std::uint8_t> more) {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    out.write(reinterpret_cast<const char*>(more.data()), static_cast<std::streamsize>(more.size()));
}

// Flips one bit in place. Rewriting the file instead would make ext4 flush
// it on close (its replace-by-truncate heuristic): seconds over a loop.
void flip_bit(const fs::path& p, std::uint64_t bit) {
    std::fstream f(p, std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(static_cast<std::streamoff>(bit / 8));
    const auto byte = static_cast<char>(f.get() ^ (1 << (bit % 8)));
    f.seekp(static_cast<std::streamoff>(bit / 8));
    f.put(byte);
}

WalCorruption corruption_on_open(const fs::path& dir) {
    try {
        reopen(dir);
    } catch (const WalCorruption& e) {
        return e;
    }
    BOOST_FAIL("open accepted a corrupt log");
    throw;  // unreachable: BOOST_FAIL throws
}

// ============================================================ round trips

BOOST_AUTO_TEST_CASE(entries_truncations_and_durable_state_survive_reopen) {
    NodeDir dir;
    {
        Recovered fresh;
        Wal wal = open_wal(dir.path, fresh);
        BOOST_TEST(fresh.entries.empty());
        BOOST_TEST(!fresh.snapshot.has_value());
        BOOST_TEST(fresh.torn_bytes_dropped == 0u);
        BOOST_TEST((fresh.durable == election::Durable{}));
        append_range(wal, 1, 5);
        wal.save_durable({Epoch{2}, Epoch{2}});
        wal.sync();
        wal.truncate_after(LogIndex{3});
        append_range(wal, 4, 5, 2);
        wal.sync();
    }
    Recovered out;
    Wal wal = open_wal(dir.path, out);
    BOOST_TEST(indexes_of(out.entries) == range(1, 5), tt::per_element());
    BOOST_TEST(epochs_of(out.entries) == (std::vector<std::uint64_t>{1, 1, 1, 2, 2}), tt::per_element());
    BOOST_TEST((out.durable == election::Durable{Epoch{2}, Epoch{2}}));
    BOOST_TEST(wal.last_index() == LogIndex{5});
    BOOST_TEST(out.torn_bytes_dropped == 0u);
}

BOOST_AUTO_TEST_CASE(one_sync_writes_every_buffered_record_with_one_fsync) {
    NodeDir dir;
    Recovered out;
    Wal wal = open_wal(dir.path, out, FsyncMode::always);
    const WalStats before = wal.stats();
    std::uint64_t expected_bytes = 0;
    for (std::uint64_t i = 1; i <= 100; ++i) {
        wal.append(entry(i));
        expected_bytes += encode_record(entry(i)).size();
    }
    wal.save_durable({Epoch{1}, Epoch{1}});
    expected_bytes += encode_record(election::Durable{Epoch{1}, Epoch{1}}).size() + kWalBatchHeaderBytes;
    BOOST_TEST(wal.dirty());
    BOOST_TEST(wal.stats().bytes_written == before.bytes_written);  // appends only buffer

    wal.sync();
    BOOST_TEST(!wal.dirty());
    BOOST_TEST(wal.stats().syncs == before.syncs + 1);
    BOOST_TEST(wal.stats().fsyncs == before.fsyncs + 1);
    BOOST_TEST(wal.stats().records_written == before.records_written + 101);
    BOOST_TEST(wal.stats().bytes_written == before.bytes_written + expected_bytes);

    wal.sync();  // nothing buffered: no write, no fsync
    BOOST_TEST(wal.stats().syncs == before.syncs + 1);
    BOOST_TEST(wal.stats().fsyncs == before.fsyncs + 1);
}

BOOST_AUTO_TEST_CASE(fsync_never_writes_without_fsync) {
    NodeDir dir;
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out, FsyncMode::never, WalLimits{.segment_bytes_max = 512});
        append_range(wal, 1, 40);
        wal.sync();
        compact(wal, snapshot_at(30));
        append_range(wal, 41, 60);
        wal.sync();
        BOOST_TEST(wal.stats().fsyncs == 0u);
        BOOST_TEST(wal.stats().bytes_written > 0u);
        BOOST_TEST(segments(dir.path).size() > 1u);  // rolled over, still without fsync
    }
    const Recovered out = reopen(dir.path, WalLimits{.segment_bytes_max = 512});
    BOOST_TEST(indexes_of(out.entries) == range(31, 60), tt::per_element());
}

BOOST_AUTO_TEST_CASE(segments_roll_over_at_segment_bytes_max) {
    NodeDir dir;
    const WalLimits limits{.segment_bytes_max = 512};
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out, FsyncMode::always, limits);
        for (std::uint64_t i = 1; i <= 100; ++i) {
            wal.append(entry(i));
            wal.sync();
        }
    }
    const auto all = segments(dir.path);
    BOOST_TEST(all.size() > 5u);
    for (const auto& s : all) BOOST_TEST(fs::file_size(s) <= limits.segment_bytes_max);
    const Recovered out = reopen(dir.path, limits);
    BOOST_TEST(indexes_of(out.entries) == range(1, 100), tt::per_element());
}

BOOST_AUTO_TEST_CASE(truncate_after_then_new_appends_replay_the_new_suffix) {
    NodeDir dir;
    const WalLimits limits{.segment_bytes_max = 512};
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out, FsyncMode::always, limits);
        append_range(wal, 1, 20);
        wal.sync();
        wal.truncate_after(LogIndex{12});  // reaches back into an earlier segment
        append_range(wal, 13, 17, 2);
        wal.sync();
        wal.truncate_after(LogIndex{15});  // drops synced entries 16 and 17
        append_range(wal, 16, 19, 2);
        wal.truncate_after(LogIndex{15});  // drops entries never synced, in the batch that wrote them
        wal.append(entry(16, 3));
        wal.sync();
        BOOST_TEST(wal.last_index() == LogIndex{16});
    }
    BOOST_TEST(segments(dir.path).size() > 1u);
    const Recovered out = reopen(dir.path, limits);
    BOOST_TEST(indexes_of(out.entries) == range(1, 16), tt::per_element());
    std::vector<std::uint64_t> epochs(12, 1);
    epochs.insert(epochs.end(), {2, 2, 2, 3});
    BOOST_TEST(epochs_of(out.entries) == epochs, tt::per_element());
}

// ============================================================ torn tails

BOOST_AUTO_TEST_CASE(cutting_the_last_batch_at_every_byte_drops_only_that_batch) {
    NodeDir dir;
    write_log(dir.path, 5);
    const fs::path segment = only_segment(dir.path);
    const auto whole = slurp(segment);
    const std::uint64_t last = batches_of(whole).back().offset;
    for (std::uint64_t cut = 1; last + cut < whole.size(); ++cut) {
        BOOST_TEST_CONTEXT("cut " << cut << " bytes into the last batch") {
            spit(segment, std::span(whole).first(last + cut));
            {
                Recovered out;
                Wal wal = open_wal(dir.path, out, FsyncMode::never);
                BOOST_TEST(indexes_of(out.entries) == range(1, 4), tt::per_element());
                BOOST_TEST((out.durable == election::Durable{Epoch{2}, Epoch{3}}));
                BOOST_TEST(out.torn_bytes_dropped == cut);
                BOOST_TEST(out.torn_file == segment.string());
                BOOST_TEST(fs::file_size(segment) == last);
                wal.append(entry(5, 2));
                wal.sync();
            }
            const Recovered again = reopen(dir.path);
            BOOST_TEST(indexes_of(again.entries) == range(1, 5), tt::per_element());
            BOOST_TEST(again.entries.back().epoch == Epoch{2});
            BOOST_TEST(again.torn_bytes_dropped == 0u);
        }
    }
}

BOOST_AUTO_TEST_CASE(flipping_any_bit_of_the_last_batch_is_a_torn_tail) {
    NodeDir dir;
    write_log(dir.path, 5);
    const fs::path segment = only_segment(dir.path);
    const auto whole = slurp(segment);
    const std::uint64_t last = batches_of(whole).back().offset;
    const auto last_record = std::span(whole).subspan(last);
    for (std::uint64_t bit = last * 8; bit < whole.size() * 8; ++bit) {
        BOOST_TEST_CONTEXT("bit " << bit) {
            flip_bit(segment, bit);
            const Recovered out = reopen(dir.path);
            BOOST_TEST(indexes_of(out.entries) == range(1, 4), tt::per_element());
            BOOST_TEST(out.torn_bytes_dropped == last_record.size());
            BOOST_TEST(!out.torn_reason.empty());
            BOOST_TEST(fs::file_size(segment) == last);
            append_bytes(segment, last_record);  // undamaged again, for the next bit
        }
    }
}

BOOST_AUTO_TEST_CASE(a_batch_cut_short_by_zeros_is_torn_and_zeros_after_the_last_batch_are_reserved_space) {
    NodeDir dir;
    write_log(dir.path, 5);
    const fs::path segment = only_segment(dir.path);
    const auto whole = slurp(segment);
    const std::uint64_t last = batches_of(whole).back().offset;
    // A crash after the size grew but before the data landed: the last
    // batch's header and its record's header made it, the rest of the block
    // reads as zeros.
    auto damaged = std::vector<std::uint8_t>(whole.begin(),
                                             whole.begin() + static_cast<std::ptrdiff_t>(last + kWalBatchHeaderBytes + 8));
    damaged.resize(4096, 0);
    spit(segment, damaged);
    const Recovered out = reopen(dir.path);
    BOOST_TEST(indexes_of(out.entries) == range(1, 4), tt::per_element());
    BOOST_TEST(out.torn_bytes_dropped == 4096 - last);

    // Zeros after the last whole batch are space reserved ahead
    // (WalLimits::preallocate_bytes): nothing is cut, and the next batch
    // goes over them.
    append_bytes(segment, std::vector<std::uint8_t>(4096, 0));
    {
        Recovered zeros;
        Wal wal = open_wal(dir.path, zeros);
        BOOST_TEST(zeros.torn_bytes_dropped == 0u);
        BOOST_TEST(indexes_of(zeros.entries) == range(1, 4), tt::per_element());
        BOOST_TEST(fs::file_size(segment) == last + 4096);
        wal.append(entry(5, 2));
        wal.sync();
    }
    const Recovered after = reopen(dir.path);
    BOOST_TEST(after.torn_bytes_dropped == 0u);
    BOOST_TEST(indexes_of(after.entries) == range(1, 5), tt::per_element());
    BOOST_TEST(fs::file_size(segment) == last + 4096);
}

// Segments reserve space ahead of their batches, capped at the segment
// size; recovery reads the zeros as that space in every segment, and the
// log goes on over them.
BOOST_AUTO_TEST_CASE(segments_reserve_space_ahead_and_the_log_goes_on_over_it) {
    NodeDir dir;
    const WalLimits limits{.segment_bytes_max = 2048, .preallocate_bytes = 700};
    // The bytes of the segment's batches, up to the first zeros.
    const auto used_bytes = [](const fs::path& file) {
        const auto bytes = slurp(file);
        std::uint64_t at = 0;
        while (at + kWalBatchHeaderBytes <= bytes.size() && be32(bytes, at) == kWalBatchMarker) {
            at += kWalBatchHeaderBytes + be32(bytes, at + 4);
        }
        return at;
    };
    // What the file should be: a batch past the reserved space reserves
    // preallocate_bytes beyond its end, or up to the segment size.
    std::map<fs::path, std::uint64_t> reserved;
    for (std::uint64_t round = 0; round < 3; ++round) {
        Recovered out;
        Wal wal = open_wal(dir.path, out, FsyncMode::always, limits);
        BOOST_TEST(out.torn_bytes_dropped == 0u);
        BOOST_TEST(indexes_of(out.entries) == range(1, 20 * round), tt::per_element());
        for (std::uint64_t i = 20 * round + 1; i <= 20 * (round + 1); ++i) {
            wal.append(entry(i));
            wal.sync();
            const fs::path last = segments(dir.path).back();
            const std::uint64_t used = used_bytes(last);
            if (used > reserved[last]) reserved[last] = std::min(limits.segment_bytes_max, used + limits.preallocate_bytes);
            BOOST_TEST_CONTEXT("entry " << i << " in " << last << ", " << used << " bytes used") {
                BOOST_TEST(fs::file_size(last) == reserved[last]);
            }
        }
    }
    BOOST_TEST(segments(dir.path).size() > 2u);
    BOOST_TEST(indexes_of(reopen(dir.path, limits).entries) == range(1, 60), tt::per_element());
}

BOOST_AUTO_TEST_CASE(a_huge_length_in_the_last_batch_is_a_torn_tail_read_without_allocating) {
    NodeDir dir;
    write_log(dir.path, 5);
    const fs::path segment = only_segment(dir.path);
    const auto whole = slurp(segment);
    const BatchLayout last = batches_of(whole).back();
    // The batch's length, with a header crc to match, and its record's length: 2 GiB each.
    const std::vector<std::pair<std::string, std::uint64_t>> fields{{"ends past the end of the file", last.offset + 4},
                                                                    {"batch crc mismatch", last.records.front()}};
    for (const auto& [reason, at] : fields) {
        BOOST_TEST_CONTEXT(reason) {
            auto bytes = whole;
            std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), 4, std::uint8_t{0x7f});
            reseal_header(bytes, last.offset);
            spit(segment, bytes);
            const std::uint64_t rss_before_kib = test::rss_kib(::getpid());
            const Recovered out = reopen(dir.path);
            BOOST_TEST(test::rss_kib(::getpid()) < rss_before_kib + 64 * 1024);
            BOOST_TEST(indexes_of(out.entries) == range(1, 4), tt::per_element());
            BOOST_TEST(out.torn_bytes_dropped == bytes.size() - last.offset);
            BOOST_TEST(out.torn_reason.find(reason) != std::string::npos);
            append_bytes(segment, std::span(whole).subspan(last.offset));
        }
    }
}

// A rollover cut short by a crash leaves a new segment without a whole
// header; the segment before it is complete.
BOOST_AUTO_TEST_CASE(a_new_segment_torn_inside_its_header_is_dropped_whole) {
    NodeDir dir;
    const WalLimits limits{.segment_bytes_max = 512};
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out, FsyncMode::never, limits);
        append_range(wal, 1, 30);
        wal.sync();
    }
    const auto before = segments(dir.path);
    const fs::path torn = before.back().parent_path() / "wal-00000000000000000099.log";
    spit(torn, std::vector<std::uint8_t>{0, 0, 0, 30, 1});
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out, FsyncMode::always, limits);
        BOOST_TEST(indexes_of(out.entries) == range(1, 30), tt::per_element());
        BOOST_TEST(out.torn_file == torn.string());
        BOOST_TEST(out.torn_bytes_dropped == 5u);
        BOOST_TEST(!fs::exists(torn));
        append_range(wal, 31, 40);
        wal.sync();
    }
    BOOST_TEST(indexes_of(reopen(dir.path, limits).entries) == range(1, 40), tt::per_element());
}

// ---- A last batch of many records over several pages, as one group commit
// writes it: Durable{2, 3} and entries 1..10 in a batch each, then entries
// 11..210 in one batch and, when `followed`, entry 211 in a batch of its own.

constexpr std::uint64_t kPageBytes = 4096;
constexpr std::uint64_t kSectorBytes = 512;

// Bytes that read otherwise after a crash or on bad media.
struct Patch {
    std::uint64_t offset = 0;
    std::vector<std::uint8_t> bytes;
};

struct Damage {
    std::string what;
    std::vector<Patch> patches;
};

void overwrite(const fs::path& p, const Patch& patch) {
    std::fstream f(p, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(patch.offset));
    f.write(reinterpret_cast<const char*>(patch.bytes.data()), static_cast<std::streamsize>(patch.bytes.size()));
}

Patch zeroed(std::uint64_t from, std::uint64_t to) { return {from, std::vector<std::uint8_t>(to - from, 0)}; }

class BigBatch {
public:
    explicit BigBatch(bool followed) {
        {
            Recovered out;
            Wal wal = open_wal(dir_.path, out, FsyncMode::never);
            wal.save_durable({Epoch{2}, Epoch{3}});
            for (std::uint64_t i = 1; i <= 10; ++i) {
                wal.append(entry(i));
                wal.sync();
            }
            append_range(wal, 11, 210);
            wal.sync();
            if (followed) {
                wal.append(entry(211));
                wal.sync();
            }
        }
        segment_ = only_segment(dir_.path);
        whole_ = slurp(segment_);
        batches_ = batches_of(whole_);
        big_ = batches_[batches_.size() - (followed ? 2 : 1)];
        BOOST_REQUIRE_EQUAL(big_.records.size(), 200u);
        BOOST_REQUIRE(big_.end - big_.offset > 3 * kPageBytes);
    }

    // Every way this test damages the big batch, each confined to it.
    std::vector<Damage> damages() const {
        std::vector<Damage> out;
        for (std::size_t i = 0; i < big_.records.size(); ++i) {
            const std::uint64_t at = big_.records[i] + 8 + be32(whole_, big_.records[i]) / 2;
            out.push_back({"record " + std::to_string(i) + " alone, the ones after it intact",
                           {{at, {static_cast<std::uint8_t>(whole_[at] ^ 0xff)}}}});
        }
        const auto pages = spans_of(kPageBytes);
        for (std::size_t i = 0; i < pages.size(); ++i) {
            out.push_back({"page " + std::to_string(i) + " zeroed", {zeroed(pages[i].first, pages[i].second)}});
            Patch stale = zeroed(pages[i].first, pages[i].second);
            std::fill(stale.bytes.begin(), stale.bytes.end(), std::uint8_t{0xa5});
            out.push_back({"page " + std::to_string(i) + " stale", {stale}});
        }
        for (std::uint64_t landed = 0; landed + 1 < (1u << pages.size()); ++landed) {
            Damage d{"pages that landed: mask " + std::to_string(landed), {}};
            for (std::size_t i = 0; i < pages.size(); ++i) {
                if ((landed >> i & 1) == 0) d.patches.push_back(zeroed(pages[i].first, pages[i].second));
            }
            out.push_back(std::move(d));
        }
        const auto sectors = spans_of(kSectorBytes);
        for (std::size_t i = 0; i < sectors.size(); ++i) {
            out.push_back({"a zeroed hole at sector " + std::to_string(i), {zeroed(sectors[i].first, sectors[i].second)}});
        }
        return out;
    }

    // The parts of the big batch in each `unit`-aligned block of the file.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> spans_of(std::uint64_t unit) const {
        std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
        for (std::uint64_t at = big_.offset; at < big_.end; at = (at / unit + 1) * unit) {
            out.emplace_back(at, std::min(big_.end, (at / unit + 1) * unit));
        }
        return out;
    }

    // The first byte `d` changes.
    std::uint64_t first_changed(const Damage& d) const {
        std::uint64_t first = whole_.size();
        for (const Patch& p : d.patches) {
            for (std::uint64_t i = 0; i < p.bytes.size(); ++i) {
                if (p.bytes[i] != whole_[p.offset + i]) first = std::min(first, p.offset + i);
            }
        }
        return first;
    }

    // Recovery cut the big batch off as a torn tail: the log is as its
    // previous batch left it, and goes on from there.
    void expect_cut(std::uint64_t file_bytes) const {
        const Recovered out = reopen(dir_.path);
        BOOST_TEST(indexes_of(out.entries) == range(1, 10), tt::per_element());
        BOOST_TEST((out.durable == election::Durable{Epoch{2}, Epoch{3}}));
        BOOST_TEST(out.torn_bytes_dropped == file_bytes - big_.offset);
        BOOST_TEST(out.torn_file == segment_.string());
        BOOST_TEST(!out.torn_reason.empty());
        BOOST_TEST(fs::file_size(segment_) == big_.offset);
    }

    // Puts the big batch back after expect_cut() cut it off.
    void restore_after_cut() const { append_bytes(segment_, std::span(whole_).subspan(big_.offset)); }

protected:
    NodeDir dir_;
    fs::path segment_;
    std::vector<std::uint8_t> whole_;
    std::vector<BatchLayout> batches_;
    BatchLayout big_;
};

struct LastBigBatch : BigBatch {
    LastBigBatch() : BigBatch(false) {}
};

BOOST_FIXTURE_TEST_CASE(any_damage_inside_the_last_batch_is_a_torn_tail_back_to_the_batch_before, LastBigBatch) {
    for (const Damage& d : damages()) {
        BOOST_TEST_CONTEXT(d.what) {
            for (const Patch& p : d.patches) overwrite(segment_, p);
            const auto damaged = slurp(segment_);
            if (std::all_of(damaged.begin() + static_cast<std::ptrdiff_t>(big_.offset), damaged.end(),
                            [](std::uint8_t b) { return b == 0; })) {
                // None of it landed: zeros to the end of the file are space
                // reserved ahead, and the log ends at the batch before.
                const Recovered out = reopen(dir_.path);
                BOOST_TEST(indexes_of(out.entries) == range(1, 10), tt::per_element());
                BOOST_TEST(out.torn_bytes_dropped == 0u);
                BOOST_TEST(fs::file_size(segment_) == whole_.size());
                spit(segment_, whole_);
                continue;
            }
            expect_cut(whole_.size());
            restore_after_cut();
        }
    }
    BOOST_TEST((slurp(segment_) == whole_));
    BOOST_TEST(indexes_of(reopen(dir_.path).entries) == range(1, 210), tt::per_element());
}

BOOST_FIXTURE_TEST_CASE(a_last_batch_cut_short_anywhere_is_a_torn_tail_back_to_the_batch_before, LastBigBatch) {
    std::vector<std::uint64_t> ends{big_.offset + 1, big_.offset + 8, big_.offset + kWalBatchHeaderBytes - 1,
                                    big_.offset + kWalBatchHeaderBytes};
    for (std::size_t i = 0; i < big_.records.size(); i += 13) {
        ends.push_back(big_.records[i]);       // at a record boundary
        ends.push_back(big_.records[i] + 20);  // inside a record
    }
    for (const auto& [from, to] : spans_of(kPageBytes)) ends.push_back(to);  // whole pages
    ends.back() = big_.end - 1;  // all but the last byte
    for (const std::uint64_t end : ends) {
        BOOST_TEST_CONTEXT("the file ends at " << end << ", the batch at " << big_.end) {
            fs::resize_file(segment_, end);
            expect_cut(end);
            restore_after_cut();
        }
    }
}

// ============================================================ corruption

// Batches before the last were synced before it was written: damage there
// is corruption, reported at the bad record, or at the batch when its
// header is hit.
BOOST_AUTO_TEST_CASE(flipping_any_bit_before_the_last_batch_refuses_start_at_its_offset) {
    NodeDir dir;
    write_log(dir.path, 3);
    const fs::path segment = only_segment(dir.path);
    const auto whole = slurp(segment);
    const auto batches = batches_of(whole);
    for (std::uint64_t bit = 0; bit < batches.back().offset * 8; ++bit) {
        const std::uint64_t expected = damage_offset(batches, bit / 8);
        BOOST_TEST_CONTEXT("bit " << bit << ", reported at " << expected) {
            flip_bit(segment, bit);
            auto damaged = whole;
            damaged[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
            const WalCorruption e = corruption_on_open(dir.path);
            BOOST_TEST(e.file() == segment);
            BOOST_TEST(e.offset() == expected);
            const std::string what = e.what();
            BOOST_TEST(what.find(segment.string()) != std::string::npos);
            BOOST_TEST(what.find("offset " + std::to_string(expected)) != std::string::npos);
            BOOST_TEST((slurp(segment) == damaged));  // a refusal leaves the evidence as found
            flip_bit(segment, bit);
        }
    }
}

struct EarlierBigBatch : BigBatch {
    EarlierBigBatch() : BigBatch(true) {}
};

// The batch after it was written only once its fsync had returned: the same
// damage that would be a torn tail at the end is corruption here.
BOOST_FIXTURE_TEST_CASE(any_damage_inside_a_batch_followed_by_a_whole_one_refuses_start_at_its_offset,
                        EarlierBigBatch) {
    for (const Damage& d : damages()) {
        const std::uint64_t expected = damage_offset(batches_, first_changed(d));
        BOOST_TEST_CONTEXT(d.what << ", reported at " << expected) {
            for (const Patch& p : d.patches) overwrite(segment_, p);
            const auto damaged = slurp(segment_);
            const WalCorruption e = corruption_on_open(dir_.path);
            BOOST_TEST(e.file() == segment_);
            BOOST_TEST(e.offset() == expected);
            BOOST_TEST((slurp(segment_) == damaged));  // a refusal leaves the evidence as found
            for (const Patch& p : d.patches) {
                overwrite(segment_, {p.offset, {whole_.begin() + static_cast<std::ptrdiff_t>(p.offset),
                                                whole_.begin() + static_cast<std::ptrdiff_t>(p.offset + p.bytes.size())}});
            }
        }
    }
    BOOST_TEST(indexes_of(reopen(dir_.path).entries) == range(1, 211), tt::per_element());
}

// Even when the batch after it is torn: its intact header shows the damaged
// batch had been synced.
BOOST_FIXTURE_TEST_CASE(damage_before_a_torn_batch_whose_header_landed_refuses_start, EarlierBigBatch) {
    const std::uint64_t record = big_.records[5];
    overwrite(segment_, zeroed(record + 8, record + 12));
    fs::resize_file(segment_, big_.end + kWalBatchHeaderBytes + 4);
    const WalCorruption e = corruption_on_open(dir_.path);
    BOOST_TEST(e.offset() == record);
    BOOST_TEST(std::string(e.what()).find("crc mismatch") != std::string::npos);
}

// An older segment format (records without batch framing) is refused, never
// read as a torn segment and an empty log.
BOOST_AUTO_TEST_CASE(a_segment_without_batch_framing_refuses_start) {
    NodeDir dir;
    fs::create_directories(dir.path);
    const fs::path segment = dir.path / "wal-00000000000000000001.log";
    auto bytes = encode_record(ChainStart{1, LogIndex{}, Epoch{}});
    const auto durable = encode_record(election::Durable{Epoch{2}, Epoch{2}});
    bytes.insert(bytes.end(), durable.begin(), durable.end());
    spit(segment, bytes);
    const WalCorruption e = corruption_on_open(dir.path);
    BOOST_TEST(e.file() == segment);
    BOOST_TEST(std::string(e.what()).find("older format") != std::string::npos);
}

// Only a rollover may leave a segment torn from its first byte, and a
// rollover has a segment before it; the first segment is renamed in whole.
BOOST_AUTO_TEST_CASE(an_only_segment_unreadable_from_its_first_byte_refuses_start) {
    NodeDir dir;
    {
        Recovered out;
        open_wal(dir.path, out, FsyncMode::never);  // one segment with one batch: its chain start
    }
    const fs::path segment = only_segment(dir.path);
    overwrite(segment, zeroed(0, kWalBatchHeaderBytes));
    const WalCorruption e = corruption_on_open(dir.path);
    BOOST_TEST(e.file() == segment);
    BOOST_TEST(e.offset() == 0u);
}

BOOST_AUTO_TEST_CASE(a_bad_crc_in_an_earlier_segment_refuses_start) {
    NodeDir dir;
    const WalLimits limits{.segment_bytes_max = 512};
    write_log(dir.path, 40, limits);
    const auto all = segments(dir.path);
    BOOST_REQUIRE(all.size() > 2u);
    auto bytes = slurp(all.front());
    const std::uint64_t last = batches_of(bytes).back().records.back();
    bytes.back() ^= 0x01;  // the first segment's last record: not the log's tail
    spit(all.front(), bytes);
    const WalCorruption e = corruption_on_open(dir.path);
    BOOST_TEST(e.file() == all.front());
    BOOST_TEST(e.offset() == last);
    BOOST_TEST(std::string(e.what()).find("crc mismatch") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_huge_length_in_an_earlier_record_refuses_start) {
    NodeDir dir;
    write_log(dir.path, 5);
    const fs::path segment = only_segment(dir.path);
    auto bytes = slurp(segment);
    const std::uint64_t record = batches_of(bytes)[2].records.front();
    std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(record), 4, std::uint8_t{0xff});
    spit(segment, bytes);
    const WalCorruption e = corruption_on_open(dir.path);
    BOOST_TEST(e.offset() == record);
    BOOST_TEST(std::string(e.what()).find("over the limit") != std::string::npos);
}

// A record with a good CRC around `payload`.
std::vector<std::uint8_t> framed(std::span<const std::uint8_t> payload) {
    std::vector<std::uint8_t> out;
    const auto put = [&out](std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
    };
    put(static_cast<std::uint32_t>(payload.size()));
    put(crc32c(payload));
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

// A payload whose CRC holds was written as it is: a bug, never a torn write.
BOOST_AUTO_TEST_CASE(an_undecodable_payload_with_a_good_crc_refuses_start_even_at_the_tail) {
    auto trailing = encode_record(entry(4));
    trailing.erase(trailing.begin(), trailing.begin() + 8);  // the payload alone
    trailing.push_back(0);
    const std::vector<std::pair<std::string, std::vector<std::uint8_t>>> payloads{
        {"an unknown record kind", {1, 99, 0, 0, 0}},  // little-endian marker, variant index 99
        {"a payload cut short", {1, 2, 0, 0, 0, 4}},   // an entry whose index has one byte of eight
        {"bytes after the record", trailing},
    };
    for (const auto& [what, payload] : payloads) {
        BOOST_TEST_CONTEXT(what) {
            NodeDir dir;
            write_log(dir.path, 3);
            const fs::path segment = only_segment(dir.path);
            const std::uint64_t tail = fs::file_size(segment);
            append_bytes(segment, encode_batch(framed(payload)));
            const WalCorruption e = corruption_on_open(dir.path);
            BOOST_TEST(e.offset() == tail + kWalBatchHeaderBytes);
            BOOST_TEST(std::string(e.what()).find("payload") != std::string::npos);
        }
    }
}

BOOST_AUTO_TEST_CASE(an_impossible_record_sequence_refuses_start) {
    const std::vector<std::pair<std::string, WalRecord>> forged{
        {"an index gap", entry(5)},
        {"a repeated index", entry(3)},
        {"a truncation past the end", TruncateAfter{LogIndex{3}}},
        {"a header inside a segment", SegmentStart{1, LogIndex{3}}},
        {"a durable state going back", election::Durable{Epoch{1}, Epoch{1}}},
    };
    for (const auto& [what, record] : forged) {
        BOOST_TEST_CONTEXT(what) {
            NodeDir dir;
            write_log(dir.path, 3);  // Durable{2, 3} last
            const fs::path segment = only_segment(dir.path);
            const std::uint64_t tail = fs::file_size(segment);
            append_bytes(segment, encode_batch(encode_record(record)));
            const WalCorruption e = corruption_on_open(dir.path);
            BOOST_TEST(e.file() == segment);
            BOOST_TEST(e.offset() == tail + kWalBatchHeaderBytes);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_missing_segment_in_the_middle_refuses_start) {
    NodeDir dir;
    write_log(dir.path, 40, WalLimits{.segment_bytes_max = 512});
    const auto all = segments(dir.path);
    BOOST_REQUIRE(all.size() > 2u);
    fs::remove(all[1]);
    const WalCorruption e = corruption_on_open(dir.path);
    BOOST_TEST(e.file() == all[1]);
}

// ============================================================ I/O errors

// Sets RLIMIT_FSIZE for the scope: writes past it fail with EFBIG, a disk
// filling up in the middle of a batch.
class FileSizeLimit {
public:
    explicit FileSizeLimit(std::uint64_t bytes) {
        ::getrlimit(RLIMIT_FSIZE, &saved_);
        old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
        rlimit lowered = saved_;
        lowered.rlim_cur = bytes;
        ::setrlimit(RLIMIT_FSIZE, &lowered);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &saved_);
        std::signal(SIGXFSZ, old_handler_);
    }
    FileSizeLimit(const FileSizeLimit&) = delete;
    FileSizeLimit& operator=(const FileSizeLimit&) = delete;

private:
    rlimit saved_{};
    void (*old_handler_)(int) = nullptr;
};

BOOST_AUTO_TEST_CASE(a_write_error_cuts_the_file_back_and_keeps_the_batch_for_a_retry) {
    NodeDir dir;
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out);
        append_range(wal, 1, 3);
        wal.sync();
        const fs::path segment = only_segment(dir.path);
        const std::uint64_t clean = fs::file_size(segment);
        append_range(wal, 4, 10);
        {
            const FileSizeLimit full(clean + 20);  // the batch gets 20 bytes in, then the disk is full
            BOOST_CHECK_EXCEPTION(wal.sync(), WalIoError,
                                  [](const WalIoError& e) { return e.code() == std::errc::file_too_large; });
        }
        BOOST_TEST(fs::file_size(segment) == clean);
        BOOST_TEST(wal.dirty());
        wal.sync();
        BOOST_TEST(!wal.dirty());
    }
    BOOST_TEST(indexes_of(reopen(dir.path).entries) == range(1, 10), tt::per_element());
}

// ============================================================ snapshots

BOOST_AUTO_TEST_CASE(compaction_removes_old_segments_and_snapshots) {
    NodeDir dir;
    const WalLimits limits{.segment_bytes_max = 512};
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out, FsyncMode::always, limits);
        for (std::uint64_t i = 1; i <= 50; ++i) {
            wal.append(entry(i));
            wal.sync();
        }
        wal.save_durable({Epoch{4}, Epoch{4}});
        wal.sync();
        BOOST_TEST(segments(dir.path).size() > 2u);
        compact(wal, snapshot_at(40));
        BOOST_TEST(segments(dir.path).size() == 1u);
        BOOST_TEST(snapshots(dir.path).size() == 1u);
        BOOST_TEST(wal.snapshot_index() == LogIndex{40});
        BOOST_TEST(wal.last_index() == LogIndex{50});
        append_range(wal, 51, 60);
        wal.sync();
        compact(wal, snapshot_at(55));
    }
    BOOST_TEST(snapshots(dir.path) == std::vector<fs::path>{dir.path / "snapshot-00000000000000000055.bin"});
    BOOST_TEST(segments(dir.path).size() == 1u);
    const Recovered out = reopen(dir.path, limits);
    BOOST_REQUIRE(out.snapshot.has_value());
    BOOST_TEST((*out.snapshot == snapshot_at(55)));
    BOOST_TEST(indexes_of(out.entries) == range(56, 60), tt::per_element());
    BOOST_TEST((out.durable == election::Durable{Epoch{4}, Epoch{4}}));
}

std::uint64_t dir_bytes(const fs::path& dir) {
    std::uint64_t total = 0;
    for (const auto& f : fs::directory_iterator(dir)) total += f.file_size();
    return total;
}

BOOST_AUTO_TEST_CASE(disk_use_stays_bounded_over_many_appends_and_compactions) {
    NodeDir dir;
    const WalLimits limits{.segment_bytes_max = 1024};
    std::uint64_t most_bytes = 0;
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out, FsyncMode::never, limits);
        for (std::uint64_t round = 0; round < 200; ++round) {
            append_range(wal, wal.last_index().value + 1, wal.last_index().value + 50);
            wal.sync();
            compact(wal, snapshot_at(wal.last_index().value - 5));
            most_bytes = std::max(most_bytes, dir_bytes(dir.path));
        }
        BOOST_TEST(wal.stats().bytes_written > 500 * most_bytes);
    }
    BOOST_TEST(most_bytes < 1024u);  // a snapshot and a segment with five entries, whatever was written
    const Recovered out = reopen(dir.path, limits);
    BOOST_TEST(indexes_of(out.entries) == range(9996, 10000), tt::per_element());
}

BOOST_AUTO_TEST_CASE(install_snapshot_drops_every_entry_and_the_log_continues_after_it) {
    NodeDir dir;
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out);
        append_range(wal, 1, 10);  // 9 and 10 conflict with the leader's log
        wal.save_durable({Epoch{3}, Epoch{3}});
        wal.sync();
        wal.install_snapshot(snapshot_at(8, 3));
        BOOST_TEST(wal.last_index() == LogIndex{8});
        wal.append(entry(9, 3));
        wal.sync();
    }
    BOOST_TEST(segments(dir.path).size() == 1u);
    const Recovered out = reopen(dir.path);
    BOOST_REQUIRE(out.snapshot.has_value());
    BOOST_TEST((*out.snapshot == snapshot_at(8, 3)));
    BOOST_TEST(indexes_of(out.entries) == std::vector<std::uint64_t>{9}, tt::per_element());
    BOOST_TEST(epochs_of(out.entries) == std::vector<std::uint64_t>{3}, tt::per_element());
    BOOST_TEST((out.durable == election::Durable{Epoch{3}, Epoch{3}}));
}

BOOST_AUTO_TEST_CASE(a_missing_snapshot_refuses_start) {
    NodeDir dir;
    {
        Recovered out;
        Wal wal = open_wal(dir.path, out);
        append_range(wal, 1, 10);
        wal.sync();
        compact(wal, snapshot_at(5));
    }
    const fs::path snapshot = dir.path / "snapshot-00000000000000000005.bin";
    fs::remove(snapshot);
    BOOST_TEST(corruption_on_open(dir.path).file() == snapshot);
}

// ---- Crash points of compaction, rebuilt from the files before and after
// one compaction: the old state has snapshot 10 and entries 11..30, the new
// one snapshot 25 and entries 26..30.

struct CompactionCrash {
    test::TempDir tmp;
    fs::path before = tmp.path() / "before";
    fs::path after = tmp.path() / "after";
    fs::path crashed = tmp.path() / "crashed";
    const WalLimits limits{.segment_bytes_max = 512};

    CompactionCrash() {
        {
            Recovered out;
            Wal wal = open_wal(before, out, FsyncMode::never, limits);
            append_range(wal, 1, 30);
            wal.sync();
            compact(wal, snapshot_at(10));
            for (std::uint64_t i = 31; i <= 60; ++i) {
                wal.append(entry(i));
                wal.sync();
            }
            wal.truncate_after(LogIndex{30});
            wal.save_durable({Epoch{2}, Epoch{2}});
            wal.sync();
        }
        fs::copy(before, after);
        Recovered out;
        Wal wal = open_wal(after, out, FsyncMode::never, limits);
        compact(wal, snapshot_at(25));
        fs::copy(before, crashed);
    }

    fs::path new_file(std::string_view prefix) const {
        const auto files = files_named(after, prefix);
        BOOST_REQUIRE_EQUAL(files.size(), 1u);
        return files.front();
    }

    // Recovers `crashed`, checks it holds the expected state and only that
    // state's files, and that the log goes on from there.
    void expect_state(std::uint64_t snapshot_index) const {
        {
            Recovered out;
            Wal wal = open_wal(crashed, out, FsyncMode::never, limits);
            BOOST_REQUIRE(out.snapshot.has_value());
            BOOST_TEST((*out.snapshot == snapshot_at(snapshot_index)));
            BOOST_TEST(indexes_of(out.entries) == range(snapshot_index + 1, 30), tt::per_element());
            BOOST_TEST((out.durable == election::Durable{Epoch{2}, Epoch{2}}));
            BOOST_TEST(snapshots(crashed).size() == 1u);
            BOOST_TEST(files_named(crashed, "").size() == segments(crashed).size() + 1);  // no temp files left
            wal.append(entry(31, 2));
            wal.sync();
        }
        BOOST_TEST(indexes_of(reopen(crashed, limits).entries) == range(snapshot_index + 1, 31), tt::per_element());
    }
};

BOOST_FIXTURE_TEST_CASE(a_crash_while_writing_the_snapshot_recovers_the_old_state, CompactionCrash) {
    const fs::path snapshot = new_file("snapshot-");
    const auto bytes = slurp(snapshot);
    spit(crashed / (snapshot.filename().string() + ".tmp"), std::span(bytes).first(bytes.size() / 2));
    expect_state(10);
}

BOOST_FIXTURE_TEST_CASE(a_crash_after_the_snapshot_rename_recovers_the_old_state, CompactionCrash) {
    fs::copy(new_file("snapshot-"), crashed);
    expect_state(10);
}

BOOST_FIXTURE_TEST_CASE(a_crash_while_writing_the_new_segment_recovers_the_old_state, CompactionCrash) {
    fs::copy(new_file("snapshot-"), crashed);
    fs::copy(new_file("wal-"), crashed / (new_file("wal-").filename().string() + ".tmp"));
    expect_state(10);
}

BOOST_FIXTURE_TEST_CASE(a_crash_before_the_old_files_are_deleted_recovers_the_new_state, CompactionCrash) {
    fs::copy(after, crashed, fs::copy_options::overwrite_existing | fs::copy_options::recursive);
    expect_state(25);
}

BOOST_FIXTURE_TEST_CASE(a_crash_midway_through_deleting_the_old_files_recovers_the_new_state, CompactionCrash) {
    fs::copy(after, crashed, fs::copy_options::overwrite_existing | fs::copy_options::recursive);
    const auto old_segments = segments(before);
    BOOST_REQUIRE(old_segments.size() > 2u);
    fs::remove(crashed / "snapshot-00000000000000000010.bin");  // gone, with the oldest segments
    fs::remove(crashed / old_segments[0].filename());
    fs::remove(crashed / old_segments[1].filename());
    expect_state(25);
}

// ============================================================ on the simulated disk

using simcommon::SimStorage;
using simcommon::StorageCall;

const fs::path kSimDir = "/disk/node-1";

Wal open_sim(SimStorage& disk, Recovered& out, WalLimits limits = {}) {
    return Wal::open(disk, kSimDir, FsyncMode::always, limits, out);
}

Recovered reopen_sim(SimStorage& disk, WalLimits limits = {}) {
    Recovered out;
    open_sim(disk, out, limits);
    return out;
}

std::vector<std::uint8_t> sim_bytes(SimStorage& disk, const fs::path& path) {
    std::vector<std::uint8_t> bytes;
    BOOST_REQUIRE(!disk.read_file(path, std::numeric_limits<std::uint64_t>::max(), bytes));
    return bytes;
}

std::vector<std::string> sim_names(SimStorage& disk, const fs::path& dir) {
    std::vector<std::string> names;
    BOOST_REQUIRE(!disk.list_dir(dir, names));
    std::sort(names.begin(), names.end());
    return names;
}

std::unique_ptr<StorageFile> sim_create(SimStorage& disk, const fs::path& path) {
    std::unique_ptr<StorageFile> file;
    BOOST_REQUIRE(!disk.create_file(path, file));
    return file;
}

std::vector<std::uint8_t> filled(std::uint64_t bytes, char c) { return std::vector<std::uint8_t>(bytes, c); }

// Compaction writes the entries it is handed and never reads the log back
// (a node's thread would stall for the whole log, tens of ms at 50,000
// entries): with every read refused it still succeeds, and the recovered
// log is the snapshot and exactly those entries, content included.
BOOST_AUTO_TEST_CASE(compaction_reads_nothing_back_and_keeps_the_entries_it_is_handed) {
    SimStorage disk;
    {
        Recovered out;
        Wal wal = open_sim(disk, out, WalLimits{.segment_bytes_max = 512});
        append_range(wal, 1, 40, 2);
        wal.sync();
        std::vector<LogEntry> kept;
        for (std::uint64_t i = 31; i <= 40; ++i) kept.push_back(entry(i, 2));
        disk.fail_next(StorageCall::read, 1000, std::errc::io_error);
        wal.compact(snapshot_at(30, 2), kept);
        disk.clear_faults();
        BOOST_TEST(wal.snapshot_index() == LogIndex{30});
        BOOST_TEST(wal.last_index() == LogIndex{40});
    }
    const Recovered out = reopen_sim(disk, WalLimits{.segment_bytes_max = 512});
    BOOST_REQUIRE(out.snapshot.has_value());
    BOOST_TEST((*out.snapshot == snapshot_at(30, 2)));
    BOOST_REQUIRE_EQUAL(out.entries.size(), 10u);
    for (std::uint64_t i = 31; i <= 40; ++i) {
        BOOST_TEST((encode_record(out.entries[i - 31]) == encode_record(entry(i, 2))));
    }
}

// ---- The simulated disk itself

// One sector of 'a' synced, then four sectors of 'b' written over it and
// past it, unsynced. Each sector reads whole as it was, as written, as zeros
// past the old end, or is gone with the end of the file.
BOOST_AUTO_TEST_CASE(sim_disk_a_crash_keeps_any_subset_of_the_unsynced_sectors) {
    constexpr std::uint64_t kSector = SimStorage::kSectorBytes;
    std::set<std::string> seen;
    for (std::uint64_t seed = 1; seed <= 300; ++seed) {
        SimStorage disk;
        BOOST_REQUIRE(!disk.create_dir("/d"));
        auto file = sim_create(disk, "/d/f");
        BOOST_REQUIRE(!file->write_at(0, filled(kSector, 'a')));
        BOOST_REQUIRE(!file->sync_data());
        BOOST_REQUIRE(!disk.sync_dir("/d"));
        BOOST_REQUIRE(!file->write_at(0, filled(4 * kSector, 'b')));
        rl::Rng rng(seed);
        disk.crash(rng);
        const auto bytes = sim_bytes(disk, "/d/f");
        BOOST_REQUIRE(bytes.size() % kSector == 0);
        std::string sectors;  // one letter a sector: its byte, '0' for zeros, '-' past the end
        for (std::uint64_t at = 0; at < 4 * kSector; at += kSector) {
            if (at >= bytes.size()) {
                sectors += '-';
                continue;
            }
            const auto sector = std::span(bytes).subspan(at, kSector);
            BOOST_TEST(std::all_of(sector.begin(), sector.end(), [&](std::uint8_t b) { return b == sector[0]; }));
            sectors += sector[0] == 0 ? '0' : static_cast<char>(sector[0]);
        }
        seen.insert(sectors);
    }
    for (const std::string& s : seen) {
        BOOST_TEST_CONTEXT(s) {
            BOOST_TEST((s[0] == 'a' || s[0] == 'b'));
            BOOST_TEST(s.find_first_not_of("b0-", 1) == std::string::npos);
            BOOST_TEST(s.find_first_not_of('-', s.find('-')) == std::string::npos);
        }
    }
    for (const char* expected : {"a---", "bbbb", "b---", "ab--", "a0b-", "bb0b"}) BOOST_TEST(seen.contains(expected));
}

// Create, rename, create, with no folder fsync: a crash keeps a prefix.
BOOST_AUTO_TEST_CASE(sim_disk_names_are_durable_after_the_folder_fsync_and_a_crash_keeps_a_prefix_before) {
    const std::set<std::vector<std::string>> prefixes{{}, {"t"}, {"f"}, {"f", "g"}};
    std::set<std::vector<std::string>> seen;
    for (std::uint64_t seed = 1; seed <= 100; ++seed) {
        SimStorage disk;
        BOOST_REQUIRE(!disk.create_dir("/d"));
        auto file = sim_create(disk, "/d/t");
        BOOST_REQUIRE(!file->write_at(0, filled(10, 'a')));
        BOOST_REQUIRE(!file->sync_data());
        BOOST_REQUIRE(!disk.rename("/d/t", "/d/f"));
        sim_create(disk, "/d/g");
        BOOST_TEST(disk.unsynced() == 3u);
        const bool synced = seed % 2 == 0;
        if (synced) BOOST_REQUIRE(!disk.sync_dir("/d"));
        rl::Rng rng(seed);
        disk.crash(rng);
        const auto names = sim_names(disk, "/d");
        BOOST_TEST(prefixes.contains(names));
        if (synced) BOOST_TEST((names == std::vector<std::string>{"f", "g"}));
        if (std::find(names.begin(), names.end(), "f") != names.end()) {
            BOOST_TEST((sim_bytes(disk, "/d/f") == filled(10, 'a')));  // the data was synced before the rename
        }
        seen.insert(names);
    }
    BOOST_TEST(seen == prefixes);
}

// Linux may drop the pages of a failed write-back: a later fsync that
// succeeds does not bring them back.
BOOST_AUTO_TEST_CASE(sim_disk_a_failed_fsync_drops_the_unsynced_writes) {
    SimStorage disk;
    BOOST_REQUIRE(!disk.create_dir("/d"));
    auto file = sim_create(disk, "/d/f");
    BOOST_REQUIRE(!disk.sync_dir("/d"));
    BOOST_REQUIRE(!file->write_at(0, filled(10, 'a')));
    BOOST_REQUIRE(!file->sync_data());
    BOOST_REQUIRE(!file->write_at(10, filled(10, 'b')));
    disk.fail_next(StorageCall::sync, 1, std::errc::io_error);
    BOOST_TEST((file->sync_data() == std::errc::io_error));
    BOOST_TEST(disk.injected(StorageCall::sync) == 1u);
    BOOST_TEST((sim_bytes(disk, "/d/f") == filled(10, 'a')));
    BOOST_REQUIRE(!file->sync_data());
    rl::Rng rng(1);
    disk.crash(rng);
    BOOST_TEST((sim_bytes(disk, "/d/f") == filled(10, 'a')));
    BOOST_TEST(disk.injected_total() == 1u);
}

BOOST_AUTO_TEST_CASE(sim_disk_faults_come_after_the_calls_skipped_and_a_power_cut_changes_nothing) {
    SimStorage disk;
    BOOST_REQUIRE(!disk.create_dir("/d"));
    auto file = sim_create(disk, "/d/f");
    disk.fail_next(StorageCall::write, 2, std::errc::no_space_on_device, 1);
    BOOST_TEST(!file->write_at(0, filled(8, 'a')));
    BOOST_TEST((file->write_at(8, filled(8, 'b')) == std::errc::no_space_on_device));
    BOOST_TEST((file->write_at(16, filled(8, 'c')) == std::errc::no_space_on_device));
    BOOST_TEST(!file->write_at(24, filled(8, 'd')));
    BOOST_TEST(disk.injected(StorageCall::write) == 2u);
    const auto before = sim_bytes(disk, "/d/f");
    BOOST_TEST(before.size() == 32u);  // failed writes left a prefix each, then the last filled the gap

    disk.cut_power_after(1);
    BOOST_TEST(!file->write_at(32, filled(8, 'e')));
    BOOST_TEST((file->sync_data() == std::errc::io_error));
    BOOST_TEST((disk.rename("/d/f", "/d/g") == std::errc::io_error));
    rl::Rng rng(3);
    disk.crash(rng);
    BOOST_TEST((file->write_at(0, filled(1, 'x')) == std::errc::bad_file_descriptor));  // closed by the crash
    BOOST_TEST(disk.unsynced() == 0u);
    BOOST_TEST(!disk.create_dir("/d"));  // the power is back
}

// ---- The Wal on the simulated disk

BOOST_AUTO_TEST_CASE(a_sync_retried_after_a_failed_write_or_fsync_writes_the_whole_batch_again) {
    for (const StorageCall call : {StorageCall::write, StorageCall::sync}) {
        for (const std::errc error : {std::errc::io_error, std::errc::no_space_on_device}) {
            BOOST_TEST_CONTEXT("call " << static_cast<int>(call) << ", error " << static_cast<int>(error)) {
                SimStorage disk;
                {
                    Recovered out;
                    Wal wal = open_sim(disk, out);
                    append_range(wal, 1, 3);
                    wal.sync();
                    append_range(wal, 4, 40);
                    disk.fail_next(call, 1, error);
                    BOOST_CHECK_EXCEPTION(wal.sync(), WalIoError,
                                          [&](const WalIoError& e) { return e.code() == error; });
                    BOOST_TEST(wal.dirty());
                    wal.sync();
                    BOOST_TEST(!wal.dirty());
                    BOOST_TEST(disk.unsynced() == 0u);  // nothing a crash could take
                }
                rl::Rng rng(7);
                disk.crash(rng);
                const Recovered out = reopen_sim(disk);
                BOOST_TEST(indexes_of(out.entries) == range(1, 40), tt::per_element());
                BOOST_TEST(out.torn_bytes_dropped == 0u);
            }
        }
    }
}

// Fails each call of each kind a compaction or an installed snapshot makes,
// one at a time; the retry must leave the new state durable.
BOOST_AUTO_TEST_CASE(a_snapshot_file_or_chain_start_retried_after_any_failed_call_is_written_again) {
    const StorageCall calls[] = {StorageCall::create, StorageCall::write,    StorageCall::sync,
                                 StorageCall::rename, StorageCall::sync_dir, StorageCall::remove,
                                 StorageCall::list,   StorageCall::read};
    for (const bool install : {false, true}) {
        for (const StorageCall call : calls) {
            for (std::uint64_t skip = 0;; ++skip) {
                BOOST_TEST_CONTEXT((install ? "install" : "compact") << ", call " << static_cast<int>(call)
                                                                     << " failing after " << skip) {
                    SimStorage disk;
                    const Snapshot snapshot = snapshot_at(20);
                    bool struck = false;
                    {
                        Recovered out;
                        Wal wal = open_sim(disk, out);
                        append_range(wal, 1, 30);
                        wal.sync();
                        const auto run = [&] { install ? wal.install_snapshot(snapshot) : compact(wal, snapshot); };
                        disk.fail_next(call, 1, std::errc::io_error, skip);
                        try {
                            run();
                        } catch (const WalIoError&) {
                            disk.clear_faults();
                            // A failure while deleting old files comes after the new state is in effect.
                            if (wal.snapshot_index() != snapshot.last_index) run();
                        }
                        struck = disk.injected(call) > 0;
                        disk.clear_faults();
                        BOOST_TEST(wal.snapshot_index() == LogIndex{20});
                        append_range(wal, wal.last_index().value + 1, 35);
                        wal.sync();
                    }
                    rl::Rng rng(skip);
                    disk.crash(rng);
                    const Recovered out = reopen_sim(disk);
                    BOOST_REQUIRE(out.snapshot.has_value());
                    BOOST_TEST((*out.snapshot == snapshot));
                    BOOST_TEST(indexes_of(out.entries) == range(21, 35), tt::per_element());
                    if (!struck) break;  // the fault fell after every call of the snapshot
                }
            }
        }
    }
}

// The power goes after the batch is written and before its fsync returns:
// the crash keeps any subset of its sectors. Recovery finds the batch
// whole, or cuts what landed as a torn tail, or finds nothing of it.
BOOST_AUTO_TEST_CASE(a_crash_between_a_batch_write_and_its_fsync_recovers_the_batch_or_the_one_before) {
    std::set<std::string> outcomes;
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
        BOOST_TEST_CONTEXT("seed " << seed) {
            SimStorage disk;
            {
                Recovered out;
                Wal wal = open_sim(disk, out);
                wal.save_durable({Epoch{2}, Epoch{3}});
                append_range(wal, 1, 10);
                wal.sync();
                append_range(wal, 11, 60);  // a batch of several sectors
                disk.cut_power_after(1);    // its write, not its fsync
                BOOST_CHECK_THROW(wal.sync(), WalIoError);
            }
            rl::Rng rng(seed);
            disk.crash(rng);
            const Recovered out = reopen_sim(disk);
            if (out.entries.size() == 60) {
                BOOST_TEST(out.torn_file.empty());
                outcomes.insert("whole");
            } else {
                BOOST_TEST(indexes_of(out.entries) == range(1, 10), tt::per_element());
                outcomes.insert(out.torn_bytes_dropped > 0 ? "torn" : "lost");
            }
            BOOST_TEST((out.durable == election::Durable{Epoch{2}, Epoch{3}}));
        }
    }
    BOOST_TEST(outcomes == (std::set<std::string>{"whole", "torn", "lost"}));
}

// ---- Seeded random runs: appends, truncations, promises, syncs,
// compactions and installed snapshots, with EIO and ENOSPC on any call and
// crashes between calls or inside one, each recovery checked against the
// states the Wal could have made durable. --seed=S replays one run, with
// --trace printing its steps.

constexpr std::uint64_t kRandomRuns = 300;
constexpr std::uint64_t kStepsPerRun = 60;

// A log as the test tracks it.
struct LogState {
    std::optional<Snapshot> snapshot;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> entries;  // (index, epoch) after the snapshot
    election::Durable durable;

    bool operator==(const LogState&) const = default;
    std::uint64_t base() const { return snapshot ? snapshot->last_index.value : 0; }
    std::uint64_t last() const { return base() + entries.size(); }
    std::uint64_t epoch_at(std::uint64_t index) const {
        if (index == base()) return snapshot ? snapshot->last_epoch.value : 0;
        return entries[index - base() - 1].second;
    }
};

std::ostream& operator<<(std::ostream& os, const LogState& s) {
    os << "{snapshot " << s.base() << ", entries " << s.base() + 1 << ".." << s.last() << " epochs";
    for (const auto& [index, epoch] : s.entries) os << ' ' << epoch;
    return os << ", durable " << s.durable.promised.value << '/' << s.durable.epoch.value << '}';
}

LogState state_of(const Recovered& out) {
    LogState s{out.snapshot, {}, out.durable};
    for (const auto& e : out.entries) s.entries.emplace_back(e.index.value, e.epoch.value);
    return s;
}

// What one run saw, summed over the runs to show they reached every case.
struct RunCounts {
    std::uint64_t crashes = 0;
    std::uint64_t crashes_inside_a_call = 0;
    std::uint64_t torn_tails = 0;
    std::uint64_t attempts_recovered = 0;  // recoveries that found a state whose call had failed
    std::uint64_t failed_calls = 0;        // Wal calls that threw WalIoError
    std::uint64_t snapshots = 0;           // compactions and installs that returned
    std::uint64_t injected = 0;            // faults the disk injected
};

class RandomRun {
public:
    RandomRun(std::uint64_t seed, bool trace)
        : rng_(seed),
          trace_(trace),
          limits_{.segment_bytes_max = uniform(rng_, 600, 3000),
                  .preallocate_bytes = seed % 3 == 0 ? 0 : uniform(rng_, 1, 2000)} {
        reopen();
    }

    void step() {
        switch (uniform(rng_, 0, 13)) {
            case 0: case 1: case 2: append(); break;
            case 3: truncate(); break;
            case 4: save_durable(); break;
            case 5: case 6: attempt("sync", mem_, [this] { wal_->sync(); }); break;
            case 7: compact(); break;
            case 8: install(); break;
            case 9: set_faults(); break;
            case 10: heal(); break;
            case 11: crash_inside_a_call(); break;
            default: crash(); break;
        }
    }

    // The faults cleared, a retried sync succeeds and a crash loses nothing of it.
    void finish() {
        heal();
        crash();
        counts_.injected = disk_.injected_total();
    }

    bool ok() const { return ok_; }
    const RunCounts& counts() const { return counts_; }

private:
    void note(const std::string& what) {
        if (trace_) std::cerr << "  " << what << "  mem " << mem_ << '\n';
    }

    void check(bool holds, const std::string& what) {
        if (holds) return;
        ok_ = false;
        BOOST_ERROR(what);
    }

    void append() {
        const std::uint64_t n = uniform(rng_, 1, 8);
        for (std::uint64_t i = 0; i < n; ++i) {
            const std::uint64_t index = mem_.last() + 1;
            wal_->append(entry(index, epoch_));
            mem_.entries.emplace_back(index, epoch_);
        }
        note("append " + std::to_string(n));
    }

    void truncate() {
        const std::uint64_t after = uniform(rng_, mem_.base(), mem_.last());
        wal_->truncate_after(LogIndex{after});
        mem_.entries.resize(after - mem_.base());
        ++epoch_;  // what follows comes from a newer leader
        note("truncate after " + std::to_string(after));
    }

    void save_durable() {
        election::Durable& d = mem_.durable;
        d.promised = Epoch{d.promised.value + uniform(rng_, 0, 1)};
        d.epoch = Epoch{std::max(d.promised.value, d.epoch.value + uniform(rng_, 0, 1))};
        wal_->save_durable(d);
        note("save durable");
    }

    // A call that makes `after` durable when it returns. When it throws,
    // the disk may hold `after` as well as any state it could hold before.
    bool attempt(const std::string& what, const LogState& after, const std::function<void()>& call) {
        possible_.push_back(after);
        try {
            call();
        } catch (const WalIoError& e) {
            ++counts_.failed_calls;
            note(what + " failed: " + e.what());
            return false;
        }
        mem_ = after;
        possible_ = {after};
        note(what);
        return true;
    }

    // Compaction and install sync first, and a failure after their new
    // state is in effect (deleting old files) leaves the Wal in it.
    void snapshot_call(const std::string& what, const LogState& after, const std::function<void()>& call) {
        possible_.push_back(mem_);
        if (attempt(what, after, call)) {
            ++counts_.snapshots;
        } else if (wal_->snapshot_index().value == after.base() && wal_->last_index().value == after.last()) {
            mem_ = after;
        }
    }

    void compact() {
        if (mem_.last() == 0) return;
        const std::uint64_t index = uniform(rng_, std::max<std::uint64_t>(1, mem_.base()), mem_.last());
        const Snapshot snapshot = snapshot_at(index, mem_.epoch_at(index));
        LogState after = mem_;
        after.entries.erase(after.entries.begin(), after.entries.begin() + static_cast<std::ptrdiff_t>(index - mem_.base()));
        after.snapshot = snapshot;
        std::vector<LogEntry> kept;
        for (const auto& [i, epoch] : after.entries) kept.push_back(entry(i, epoch));
        snapshot_call("compact at " + std::to_string(index), after,
                      [this, snapshot, kept] { wal_->compact(snapshot, kept); });
    }

    void install() {
        const std::uint64_t index = uniform(rng_, std::max<std::uint64_t>(1, mem_.base()), mem_.last() + 3);
        const std::uint64_t epoch = index == mem_.base() ? mem_.epoch_at(index) : epoch_;
        const Snapshot snapshot = snapshot_at(index, epoch);
        const LogState after{snapshot, {}, mem_.durable};
        snapshot_call("install at " + std::to_string(index), after,
                      [this, snapshot] { wal_->install_snapshot(snapshot); });
    }

    void set_faults() {
        disk_.clear_faults();
        const auto call = static_cast<StorageCall>(uniform(rng_, 0, simcommon::kStorageCalls - 1));
        const std::errc error = uniform(rng_, 0, 1) == 0 ? std::errc::io_error : std::errc::no_space_on_device;
        if (uniform(rng_, 0, 1) == 0) {
            disk_.fail_next(call, uniform(rng_, 1, 3), error, uniform(rng_, 0, 3));
        } else {
            disk_.fail_randomly(call, 0.3, error, rng_);
        }
        note("faults on call " + std::to_string(static_cast<int>(call)));
    }

    void heal() {
        disk_.clear_faults();
        check(attempt("sync after healing", mem_, [this] { wal_->sync(); }), "a sync with no fault set failed");
    }

    // The power goes a few calls into a sync, compaction or install.
    void crash_inside_a_call() {
        append();
        disk_.cut_power_after(uniform(rng_, 0, 8));
        switch (uniform(rng_, 0, 2)) {
            case 0: attempt("sync", mem_, [this] { wal_->sync(); }); break;
            case 1: compact(); break;
            default: install(); break;
        }
        ++counts_.crashes_inside_a_call;
        crash();
    }

    void crash() {
        wal_.reset();
        disk_.crash(rng_);
        ++counts_.crashes;
        note("crash");
        reopen();
    }

    // Opens as rlnode does; an I/O error is retried, with the faults
    // cleared after a few tries. WalCorruption fails the run.
    void reopen() {
        Recovered out;
        for (int tries = 1;; ++tries) {
            try {
                wal_.emplace(Wal::open(disk_, kSimDir, FsyncMode::always, limits_, out));
                break;
            } catch (const WalIoError& e) {
                note(std::string("open failed: ") + e.what());
                if (tries == 3) disk_.clear_faults();
            }
        }
        check_recovered(out);
    }

    void check_recovered(const Recovered& out) {
        const LogState found = state_of(out);
        const auto hit = std::find(possible_.begin(), possible_.end(), found);
        if (hit == possible_.end()) {
            std::ostringstream what;
            what << "recovered a state the Wal never synced: " << found << "; possible:";
            for (const LogState& s : possible_) what << "\n    " << s;
            check(false, what.str());
        }
        // Only a batch whose sync never returned may be torn.
        check(out.torn_file.empty() || possible_.size() > 1,
              "torn tail with every batch synced: " + out.torn_file + ": " + out.torn_reason);
        check(wal_->last_index().value == found.last() && wal_->snapshot_index().value == found.base(),
              "the Wal's indexes differ from what it recovered");
        if (!out.torn_file.empty()) ++counts_.torn_tails;
        if (hit != possible_.begin()) ++counts_.attempts_recovered;
        note("recovered" + std::string(out.torn_file.empty() ? "" : " cutting a torn tail: " + out.torn_reason));
        mem_ = found;
        possible_ = {found};
        epoch_ = std::max(epoch_, found.entries.empty() ? found.epoch_at(found.base()) : found.entries.back().second);
    }

    SimStorage disk_;
    rl::Rng rng_;
    bool trace_;
    WalLimits limits_;
    std::optional<Wal> wal_;
    LogState mem_;                           // what the Wal holds, its buffer included
    std::vector<LogState> possible_{LogState{}};  // the last state made durable first, then failed attempts since
    std::uint64_t epoch_ = 1;
    bool ok_ = true;
    RunCounts counts_;
};

BOOST_AUTO_TEST_CASE(random_runs_recover_a_state_the_wal_could_have_synced) {
    const simcommon::SeedArgs args = simcommon::seed_args(kRandomRuns);
    const std::uint64_t first = args.seed.value_or(args.first_seed);
    const std::uint64_t runs = args.seed ? 1 : args.seeds;
    RunCounts total;
    bool all_ok = true;
    for (std::uint64_t seed = first; all_ok && seed < first + runs; ++seed) {
        const std::string replay = simcommon::replay_command(seed);
        bool ok = false;
        BOOST_TEST_CONTEXT("seed " << seed << "; replay: " << replay << " --trace") {
            try {
                RandomRun run(seed, args.trace);
                for (std::uint64_t i = 0; i < kStepsPerRun && run.ok(); ++i) run.step();
                run.finish();
                ok = run.ok();
                const RunCounts& c = run.counts();
                total.crashes += c.crashes;
                total.crashes_inside_a_call += c.crashes_inside_a_call;
                total.torn_tails += c.torn_tails;
                total.attempts_recovered += c.attempts_recovered;
                total.failed_calls += c.failed_calls;
                total.snapshots += c.snapshots;
                total.injected += c.injected;
            } catch (const std::exception& e) {
                BOOST_ERROR(e.what());
            }
        }
        all_ok = ok;  // one failing seed is enough to replay
    }
    BOOST_TEST_MESSAGE("random runs: " << total.crashes << " crashes (" << total.crashes_inside_a_call
                                       << " inside a call), " << total.torn_tails << " torn tails, "
                                       << total.attempts_recovered << " failed calls found durable, "
                                       << total.failed_calls << " failed calls, " << total.injected
                                       << " faults injected, " << total.snapshots << " snapshots");
    if (all_ok && runs >= kRandomRuns) {  // the runs reached every case they check
        BOOST_TEST(total.torn_tails > 0u);
        BOOST_TEST(total.attempts_recovered > 0u);
        BOOST_TEST(total.failed_calls > 0u);
        BOOST_TEST(total.snapshots > 0u);
    }
}

}  // namespace
}  // namespace rl::txn
