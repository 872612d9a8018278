// rlsyncprobe: what the disk under a deployment's data folders charges for
// the syncs one commit waits for, so that tools/bench/targets.sh can set
// the sequential latency beside the floor the disk puts under it
// (docs/performance.md, "Priced in every run").
//   rlsyncprobe --dir DIR [--writers 1,2,4] [--duration-ms 1000]
// For each count W of --writers, W WALs (txn::Wal, opened as rlnode opens
// its own: fsync always, space reserved ahead) in fresh folders under DIR,
// one thread each, run rounds for --duration-ms: all W start a round at
// once, each appends one transfer entry and syncs it (one write, one
// fdatasync, as a follower does for each batch), and the round ends when
// the last of them is done. That is what a sequential commit waits for
// when its shard's copies share one disk: an intra-shard transfer commits
// on two followers' syncs, a cross-shard one on four (two per shard).
// Prints one line per W: writers=W rounds=N p50_us=.. p90_us=.. p99_us=..
// of the rounds' times. The folders are removed afterwards.
#include "config/config.hpp"
#include "txn/wal.hpp"
#include "tools/percentile.hpp"

#include <boost/program_options.hpp>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace po = boost::program_options;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using namespace rl;

struct Args {
    fs::path dir;
    std::vector<unsigned> writers{1, 2, 4};
    std::uint64_t duration_ms = 1000;
};

// The round times of W writers, in µs.
std::vector<std::uint32_t> rounds(const fs::path& dir, unsigned writers, std::uint64_t duration_ms) {
    std::vector<txn::Wal> wals;
    for (unsigned w = 0; w < writers; ++w) {
        const fs::path d = dir / ("writers-" + std::to_string(writers) + "-" + std::to_string(w));
        fs::remove_all(d);
        txn::Recovered recovered;
        wals.push_back(txn::Wal::open(d, config::FsyncMode::always, txn::kNodeWalLimits, recovered));
    }
    std::atomic<bool> stop{false};
    std::barrier start(static_cast<std::ptrdiff_t>(writers) + 1);
    std::barrier done(static_cast<std::ptrdiff_t>(writers) + 1);
    std::vector<std::thread> threads;
    std::vector<std::string> errors(writers);
    for (unsigned w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
            txn::Wal& wal = wals[w];
            for (std::uint64_t i = 1;; ++i) {
                start.arrive_and_wait();
                if (stop.load()) return;
                try {
                    wal.append(txn::LogEntry{LogIndex{i}, Epoch{1},
                                             txn::Transfer{txn::TxnId{w + 1, i}, ItemId{1}, ItemId{2}, 1}});
                    wal.sync();
                } catch (const std::exception& e) {
                    if (errors[w].empty()) errors[w] = e.what();
                }
                done.arrive_and_wait();
            }
        });
    }
    std::vector<std::uint32_t> times;
    const auto end = Clock::now() + std::chrono::milliseconds(duration_ms);
    while (Clock::now() < end) {
        const auto t0 = Clock::now();
        start.arrive_and_wait();
        done.arrive_and_wait();
        times.push_back(static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
    }
    stop = true;
    start.arrive_and_wait();
    for (auto& t : threads) t.join();
    for (unsigned w = 0; w < writers; ++w) {
        fs::remove_all(wals[w].dir());
        if (!errors[w].empty()) throw std::runtime_error("writer " + std::to_string(w) + ": " + errors[w]);
    }
    return times;
}

std::vector<unsigned> parse_writers(const std::string& list) {
    const po::error bad("--writers must be a comma-separated list of counts 1..64, got '" + list + "'");
    if (list.empty() || list.back() == ',') throw bad;
    std::vector<unsigned> out;
    std::stringstream in(list);
    for (std::string part; std::getline(in, part, ',');) {
        std::size_t used = 0;
        unsigned long n = 0;
        try {
            n = std::stoul(part, &used);
        } catch (const std::exception&) {
            throw bad;
        }
        if (used != part.size() || n == 0 || n > 64) throw bad;
        out.push_back(static_cast<unsigned>(n));
    }
    return out;
}

Args parse_args(int argc, char** argv) {
    Args a;
    std::string dir, writers = "1,2,4";
    po::options_description desc("rlsyncprobe --dir DIR [options]\nOptions");
    desc.add_options()("help,h", "show this help")("dir", po::value(&dir), "folder for the WALs (on the disk to measure)")(
        "writers", po::value(&writers), "counts of writers syncing at once, comma-separated (default 1,2,4)")(
        "duration-ms", po::value(&a.duration_ms), "rounds per count for this long (default 1000)");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
        std::cout << desc << "\n";
        std::exit(0);
    }
    if (dir.empty()) throw po::error("--dir is required");
    if (a.duration_ms == 0 || a.duration_ms > 600'000) throw po::error("--duration-ms must be 1..600000");
    a.dir = dir;
    a.writers = parse_writers(writers);
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse_args(argc, argv);
        fs::create_directories(a.dir);
        for (unsigned w : a.writers) {
            std::vector<std::uint32_t> t = rounds(a.dir, w, a.duration_ms);
            const std::size_t n = t.size();
            std::cout << "writers=" << w << " rounds=" << n << " p50_us=" << rl::tools::percentile(t, 0.50)
                      << " p90_us=" << rl::tools::percentile(t, 0.90) << " p99_us=" << rl::tools::percentile(t, 0.99)
                      << std::endl;
        }
        return 0;
    } catch (const po::error& e) {
        std::cerr << "rlsyncprobe: " << e.what() << " (see rlsyncprobe --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "rlsyncprobe: " << e.what() << "\n";
        return 1;
    }
}
