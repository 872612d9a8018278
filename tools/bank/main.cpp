// rlbank: the Jepsen "bank" test, stricter, against a real cluster. See
// kUsage below (rlbank --help) for the invocation and what it checks.
#include "tools/bank/check.hpp"
#include "tools/bank/cluster.hpp"
#include "tools/bank/nemesis.hpp"
#include "tools/bank/report.hpp"
#include "tools/bank/schedule.hpp"
#include "tools/bank/workload.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace rl;
using namespace rl::bank;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUsage = R"(rlbank --config FILE.ini --run DIR [--netns NAME] [options]

Starts the cluster of FILE.ini with tools/rlcluster (inside network namespace
NAME when given; partition faults need it), runs concurrent transfers within
and across shards and balance reads for --duration-s while a nemesis drawn
from --seed kills and restarts leaders, followers and whole shards, isolates
leaders, splits shards and delays links (tools/rlcluster, tools/partition).
Then it heals, restarts every node, waits until the replicas of every shard
have applied the same log, reads every item in play on every node and runs
`rlcat audit`, and checks: no negative balance in any read or at the end;
every acknowledged commit applied exactly once and no acknowledged abort
applied (per item: final = initial + acknowledged commits + a subset of the
transfers whose outcome the clients never learned, found per connected
component); replicas equal; audit balanced. The cluster is stopped (and the
namespace deleted) at the end, pass or fail. FILE.ini must say fsync = always
and its data_dir must not hold an earlier run's state.

Prints the schedule, a summary (operations by outcome, throughput, faults),
the nemesis timeline and the verdict; writes into DIR: bank.png (operations
per second with faults shaded, by gnuplot; also bank.dat and bank.gp),
bank-history.jsonl (every operation), the cluster's logs (tools/rlcluster).
Exit code 0: the checks passed; 1: a check failed; 2: bad usage or a setup
failure (say, no namespace could be created), with the reason.

  rlbank --config examples/partition.ini --run /tmp/bank --netns rlbank --duration-s 60 --seed 7
  rlbank --config F --run D --netns N --schedule-only --seed 7    (print the faults, run nothing)

Options)";

struct Args {
    std::string config, run_dir, netns, bin_dir, tools_dir, faults = "all", rlcat;
    std::uint32_t duration_s = 60, quiesce_s = 60;
    std::optional<std::uint64_t> seed;
    std::uint64_t search_steps = 20'000'000;
    bool schedule_only = false;
    WorkloadSpec workload;
};

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop = true; }

Args parse_args(int argc, char** argv) {
    Args a;
    std::uint64_t seed = 0;
    std::uint32_t op_ms = 5000, attempt_ms = 1500;
    po::options_description d(kUsage);
    d.add_options()("help,h", "this help")("config", po::value(&a.config), "deployment INI (required)")(
        "run", po::value(&a.run_dir), "run folder for rlcluster, logs and results (required)")(
        "netns", po::value(&a.netns), "network namespace to create and run the cluster in")(
        "bin", po::value(&a.bin_dir)->default_value(RL_BANK_BIN_DIR), "build folder, passed to rlcluster --bin")(
        "tools", po::value(&a.tools_dir)->default_value(RL_BANK_TOOLS_DIR), "folder of rlcluster and partition")(
        "duration-s", po::value(&a.duration_s), "seconds of workload and faults (default 60)")(
        "seed", po::value(&seed), "seed of the schedule and the draws (default: random, printed)")(
        "faults", po::value(&a.faults), "comma-separated kinds, or all, or none: kill-leader, kill-follower, "
                                        "kill-shard, isolate-leader, split, delay")(
        "clients", po::value(&a.workload.clients), "concurrent clients (default 16)")(
        "items", po::value(&a.workload.items_per_shard), "items in play per shard, its first ones (default 100)")(
        "cross-shard", po::value(&a.workload.cross_share), "share of transfers across shards (default 0.4)")(
        "reads", po::value(&a.workload.read_share), "share of operations that are reads (default 0.3)")(
        "amount-max", po::value(&a.workload.amount_max), "amounts are drawn from 1..N (default 20)")(
        "op-timeout-ms", po::value(&op_ms), "one operation with its retries (default 5000)")(
        "attempt-timeout-ms", po::value(&attempt_ms), "one request to one node (default 1500)")(
        "quiesce-s", po::value(&a.quiesce_s), "longest wait for the replicas to agree at the end (default 60)")(
        "search-steps", po::value(&a.search_steps), "bound of the unknown-outcome search (default 2e7)")(
        "schedule-only", po::bool_switch(&a.schedule_only), "print the nemesis schedule and exit");
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, d), vm);
    po::notify(vm);
    if (vm.count("help")) {
        std::cout << d << "\n";
        std::exit(0);
    }
    if (a.config.empty() || a.run_dir.empty()) throw po::error("--config and --run are required");
    if (a.duration_s == 0 || a.duration_s > 86400) throw po::error("--duration-s must be 1..86400");
    if (a.workload.clients == 0 || a.workload.clients > 1000) throw po::error("--clients must be 1..1000");
    if (a.workload.items_per_shard < 2) throw po::error("--items must be at least 2");
    if (!(a.workload.cross_share >= 0 && a.workload.cross_share <= 1)) throw po::error("--cross-shard must be 0..1");
    if (!(a.workload.read_share >= 0 && a.workload.read_share < 1)) throw po::error("--reads must be 0..1 (not 1)");
    if (a.workload.amount_max < 1) throw po::error("--amount-max must be at least 1");
    if (op_ms < attempt_ms || attempt_ms < 10) throw po::error("need 10 <= --attempt-timeout-ms <= --op-timeout-ms");
    std::random_device entropy;
    a.seed = vm.count("seed") ? seed : (std::uint64_t{entropy()} << 32) ^ entropy();
    a.workload.seed = *a.seed;
    a.workload.duration = std::chrono::seconds(a.duration_s);
    a.workload.op_timeout = std::chrono::milliseconds(op_ms);
    a.workload.attempt_timeout = std::chrono::milliseconds(attempt_ms);
    return a;
}

std::vector<FaultKind> parse_kinds(const std::string& text, bool have_netns) {
    if (text == "none") return {};
    std::vector<FaultKind> kinds;
    if (text == "all") {
        kinds = all_faults();
    } else {
        std::stringstream in(text);
        for (std::string word; std::getline(in, word, ',');) {
            const auto k = parse_fault(word);
            if (!k) throw po::error("unknown fault \"" + word + "\" in --faults");
            kinds.push_back(*k);
        }
    }
    for (FaultKind k : kinds) {
        const bool network = k == FaultKind::isolate_leader || k == FaultKind::split || k == FaultKind::delay_leader;
        if (network && !have_netns) {
            throw po::error(std::string("fault ") + fault_name(k) + " needs --netns (partitions live in a namespace)");
        }
    }
    return kinds;
}

}  // namespace

namespace {

// Stops the cluster (and deletes its namespace) on every way out of run().
// rlcluster down ends every process inside the namespace, so this process
// first goes back to the network namespace it started in.
struct ClusterGuard {
    const ClusterControl& cluster;
    int home_ns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ~ClusterGuard() {
        std::cout.flush();
        if (home_ns >= 0) {
            if (::setns(home_ns, CLONE_NEWNET) != 0) std::cerr << "rlbank: cannot leave the cluster's namespace\n";
            ::close(home_ns);
        }
        const Ran r = cluster.down();
        if (r.code != 0) std::cerr << "rlbank: rlcluster down exited " << r.code << ": " << tail_lines(r.output, 5) << "\n";
    }
};

void enter_namespace(const std::string& name) {
    for (const char* dir : {"/run/netns/", "/var/run/netns/"}) {
        const int fd = ::open((std::string(dir) + name).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        const int rc = ::setns(fd, CLONE_NEWNET);
        ::close(fd);
        if (rc == 0) return;
        throw std::runtime_error("cannot enter network namespace " + name + ": " + std::strerror(errno));
    }
    throw std::runtime_error("network namespace " + name + " does not exist after rlcluster up");
}

// tools/partition delays with tc netem inside the namespace this process
// is in (the cluster's) or, where the kernel lacks it, with the build's
// rldelay; with neither the schedule goes without delays. Empty when one
// is there, else why neither is.
std::string delay_missing(const std::string& bin_dir) {
    const Ran add = run_program({"tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"}, std::chrono::seconds(10));
    if (add.code == 0) {
        run_program({"tc", "qdisc", "del", "dev", "lo", "root"}, std::chrono::seconds(10));
        return {};
    }
    const fs::path rldelay = fs::path(bin_dir) / "tools" / "rldelay";
    if (::access(rldelay.c_str(), X_OK) == 0) return {};
    return "tc netem is not available here (" + tail_lines(add.output, 1) + ") and there is no " + rldelay.string();
}

void check_setup(const config::Config& config, const ClusterTools& t) {
    if (config.cluster().fsync != config::FsyncMode::always) {
        throw std::runtime_error(config.file().string() + ": [cluster] fsync must be always: the checker counts "
                                 "every acknowledged commit as surviving any crash");
    }
    for (const auto& [id, node] : config.nodes()) {
        std::error_code ec;
        const auto dir = config.node_dir(id);
        if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
            throw std::runtime_error(dir.string() + " holds an earlier run's state: remove it (the checker needs "
                                     "the initial balances)");
        }
    }
    for (const auto& p : {t.rlcluster, t.partition, t.rlcat}) {
        if (::access(p.c_str(), X_OK) != 0) throw std::runtime_error(p + " is missing or not executable");
    }
}

std::string find_rlcat(const std::string& bin) {
    for (const auto& p : {fs::path(bin) / "tools" / "rlcat", fs::path(bin) / "rlcat"}) {
        if (fs::exists(p)) return p.string();
    }
    return (fs::path(bin) / "tools" / "rlcat").string();
}

// One pass over a shard: every member answers and has applied the same
// log, and nothing is held or pending. Fills `out` with what it read.
bool shard_quiet(const ClusterControl& c, ShardId shard, const std::vector<std::uint64_t>& items, ShardReplicas& out) {
    const auto& members = c.config().shard(shard)->nodes;
    out = ShardReplicas{shard.value, {}, members.size()};
    bool quiet = true;
    for (NodeId id : members) {
        const auto s = c.status(id.value, std::chrono::milliseconds(500));
        quiet = quiet && s && s->commit_index == s->applied_index;
        if (auto r = c.read_replica(id.value, items)) out.replicas.push_back(std::move(*r));
    }
    if (!quiet || out.replicas.size() != members.size()) return false;
    for (const Replica& r : out.replicas) {
        if (r.applied_index != out.replicas.front().applied_index) return false;
        for (const auto& [item, state] : r.items) {
            if (state.held != 0 || state.pending != 0) return false;
        }
    }
    return true;
}

// Polls until every shard is quiet or `timeout` passes; returns the last
// reads either way (the checker judges them).
std::vector<ShardReplicas> quiesce(const ClusterControl& c, const std::map<std::uint64_t, std::int64_t>& initial,
                                   std::chrono::seconds timeout, bool& quiet) {
    std::map<ShardId, std::vector<std::uint64_t>> items;
    for (const auto& [item, balance] : initial) items[*c.config().shard_of_item(ItemId{item})].push_back(item);
    const auto deadline = Clock::now() + timeout;
    std::vector<ShardReplicas> out;
    do {
        out.clear();
        quiet = true;
        for (const auto& [shard, its] : items) {
            out.emplace_back();
            quiet = shard_quiet(c, shard, its, out.back()) && quiet;
        }
        if (quiet) return out;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } while (Clock::now() < deadline && !g_stop);
    return out;
}

// Heals the network and brings back every node that does not answer.
void restore(const ClusterControl& c, std::set<std::uint64_t> down) {
    if (!c.tools().netns.empty()) {
        const Ran r = c.partition({"heal"});
        if (r.code != 0) std::cout << "heal failed: " << tail_lines(r.output, 3) << "\n";
    }
    for (const auto& [id, node] : c.config().nodes()) {
        if (!c.status(id.value, std::chrono::milliseconds(1000))) down.insert(id.value);
    }
    for (std::uint64_t n : down) {
        const Ran r = c.restart(n);
        std::cout << "restart node " << n << ": " << (r.code == 0 ? "ok" : "FAILED " + tail_lines(r.output, 3)) << "\n";
    }
}

void print(const std::string& title, const std::vector<std::string>& lines) {
    std::cout << "== " << title << "\n";
    for (const auto& l : lines) std::cout << "  " << l << "\n";
    std::cout.flush();
}

std::vector<Fault> schedule_for(const Args& a, const config::Config& config, const std::vector<FaultKind>& kinds) {
    if (kinds.empty()) return {};
    ScheduleSpec spec;
    spec.seed = *a.seed;
    spec.duration_ms = std::int64_t{a.duration_s} * 1000;
    spec.kinds = kinds;
    for (const auto& [id, shard] : config.shards()) {
        for (NodeId n : shard.nodes) spec.shards[id.value].push_back(n.value);
    }
    return make_schedule(spec);
}

int run(const Args& a) {
    const auto config = config::Config::load(a.config);
    ClusterTools t{(fs::path(a.tools_dir) / "rlcluster").string(), (fs::path(a.tools_dir) / "partition").string(),
                   find_rlcat(a.bin_dir), fs::absolute(a.run_dir).string(), a.netns, a.bin_dir,
                   fs::absolute(a.config).string()};
    auto kinds = parse_kinds(a.faults, !a.netns.empty());
    std::cout << "seed " << *a.seed << "\n";
    if (a.schedule_only) {
        std::vector<std::string> lines;
        for (const Fault& f : schedule_for(a, config, kinds)) lines.push_back(describe(f));
        print("schedule", lines);
        return 0;
    }
    check_setup(config, t);
    fs::create_directories(t.run_dir);
    ClusterControl cluster(t, config);
    const Ran up = cluster.up();
    ClusterGuard guard{cluster};
    if (up.code != 0) throw std::runtime_error("rlcluster up exited " + std::to_string(up.code) + ":\n" + up.output);
    if (!a.netns.empty()) enter_namespace(a.netns);
    if (std::find(kinds.begin(), kinds.end(), FaultKind::delay_leader) != kinds.end()) {
        if (const auto why = delay_missing(a.bin_dir); !why.empty()) {
            std::cout << "delay: left out of the schedule: " << why << "\n";
            kinds.erase(std::find(kinds.begin(), kinds.end(), FaultKind::delay_leader));
        }
    }
    const auto schedule = schedule_for(a, config, kinds);
    std::vector<std::string> lines;
    for (const Fault& f : schedule) lines.push_back(describe(f));
    print("schedule (seed " + std::to_string(*a.seed) + ")", lines);
    ::signal(SIGINT, on_signal);
    ::signal(SIGTERM, on_signal);

    History h;
    h.initial = initial_balances(config, a.workload.items_per_shard);
    WorkloadStats stats;
    std::set<std::uint64_t> down;
    std::vector<TimelineEvent> timeline;
    const auto start = Clock::now();
    std::thread nemesis([&] { timeline = run_nemesis(cluster, schedule, start, g_stop, down); });
    run_workload(config, a.workload, start, g_stop, h.transfers, h.reads, stats);
    nemesis.join();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    restore(cluster, down);
    bool quiet = false;
    h.shards = quiesce(cluster, h.initial, std::chrono::seconds(a.quiesce_s), quiet);
    if (!quiet) std::cout << "replicas not quiescent within " << a.quiesce_s << " s; checking what they hold\n";
    const Ran audit = cluster.audit();
    h.audit = AuditRun{audit.code >= 0, audit.code, tail_lines(audit.output, 20)};
    CheckLimits limits;
    limits.search_steps_max = a.search_steps;
    const CheckResult result = check(h, limits);

    print("summary", summary_lines(h, stats, secs, timeline));
    print("nemesis timeline", timeline_lines(timeline));
    write_history(h, fs::path(t.run_dir) / "bank-history.jsonl");
    const auto png = fs::path(t.run_dir) / "bank.png";
    const std::string plot_error = plot(h, timeline, png);
    std::cout << (plot_error.empty() ? "plot: " + png.string() : "plot FAILED: " + plot_error) << "\n";
    std::cout << "history: " << (fs::path(t.run_dir) / "bank-history.jsonl").string() << "\n";
    print("check", check_lines(result));
    bool faults_ok = true;
    for (const TimelineEvent& e : timeline) faults_ok = faults_ok && e.ok;
    if (!faults_ok) std::cout << "FAIL: a fault action failed (see the timeline)\n";
    if (g_stop) std::cout << "FAIL: interrupted\n";
    const bool pass = result.ok && faults_ok && plot_error.empty() && !g_stop;
    std::cout << (pass ? "PASS" : "FAIL") << "  (replay the schedule: --seed " << *a.seed << ")\n";
    return pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse_args(argc, argv));
    } catch (const po::error& e) {
        std::cerr << "rlbank: " << e.what() << " (see rlbank --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "rlbank: " << e.what() << "\n";
        return 2;
    }
}
