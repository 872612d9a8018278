// A local cluster of real rlnode processes for process tests: writes an INI
// with free loopback ports into a temp dir, starts and kills nodes, and
// reads their log files. Everything is torn down by the destructor.
#pragma once

#include "test/support/netns.hpp"
#include "test/support/process.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rl::test {

struct ClusterSpec {
    std::vector<std::vector<std::uint64_t>> shards{{1, 2, 3}};  // node ids per shard
    std::string election = "bully";
    std::uint32_t heartbeat_ms = 50;
    std::uint32_t suspect_after_ms = 200;
    std::uint32_t election_timeout_ms = 300;
    std::string fsync = "never";
    std::string extra_cluster_lines;  // appended to [cluster]
    bool distinct_hosts = false;      // node N listens on 127.0.0.(10+N) instead of 127.0.0.1
    bool netns = false;               // run inside a network namespace of the test's own (implies distinct_hosts)
    std::map<std::uint64_t, std::uint64_t> file_bytes_max;  // per node: RLIMIT_FSIZE (a disk that fills up)
};

// One parsed log line: its fields by key.
struct LogLine {
    std::map<std::string, std::string> fields;
    std::string raw;
    std::string get(const std::string& key) const;
};
std::optional<LogLine> parse_log_line(const std::string& raw);
// Milliseconds since the epoch of a `ts=` value (UTC, ms).
std::int64_t parse_ts_ms(const std::string& ts);
std::int64_t now_ms();

class LocalCluster {
public:
    explicit LocalCluster(ClusterSpec spec = {});
    ~LocalCluster();

    const std::filesystem::path& ini() const { return ini_; }
    const std::filesystem::path& dir() const { return dir_.path(); }
    std::string endpoint(std::uint64_t id) const;
    const std::string& host(std::uint64_t id) const { return hosts_.at(id); }
    std::vector<std::uint64_t> ids() const;

    void start(std::uint64_t id);
    void start_all();
    // A copy of ini() in the same folder (so data_dir names the same place)
    // with each line that equals a key of `replace` replaced by its value;
    // throws if one is not in ini(). For a node whose INI differs.
    std::filesystem::path write_ini_copy(const std::string& name,
                                         const std::map<std::string, std::string>& replace) const;
    // Starts node `id` with `ini` instead of ini().
    void start_with_ini(std::uint64_t id, const std::filesystem::path& ini);
    void signal(std::uint64_t id, int sig);
    // SIGKILL and reap.
    void kill(std::uint64_t id);
    bool running(std::uint64_t id);
    Process* process(std::uint64_t id);

    std::filesystem::path log_path(std::uint64_t id) const;
    std::vector<LogLine> log(std::uint64_t id) const;
    // First line of `id`'s log at or after line `from` with event=`event`
    // and every given field equal, waiting up to `timeout`.
    std::optional<LogLine> wait_event(std::uint64_t id, const std::string& event,
                                      const std::map<std::string, std::string>& fields,
                                      std::chrono::milliseconds timeout, std::size_t from = 0) const;
    std::size_t log_lines(std::uint64_t id) const { return log(id).size(); }

    // rlcat against node `id` with `args` appended; stdin empty.
    RunResult rlcat(std::uint64_t id, const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    // Waits until `id` answers ping.
    bool wait_ready(std::uint64_t id, std::chrono::milliseconds timeout) const;

    // Partitions (netns clusters only): cut every pair across the two sides.
    void partition(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b);
    void cut_one_way(std::uint64_t from, std::uint64_t to);
    void heal();

private:
    void write_ini();

    std::vector<std::string> prefix() const;

    ClusterSpec spec_;
    std::unique_ptr<NetNamespace> ns_;  // destroyed after the processes (declared before procs_)
    TempDir dir_;
    std::filesystem::path ini_;
    std::map<std::uint64_t, std::uint16_t> ports_;
    std::map<std::uint64_t, std::string> hosts_;
    std::map<std::uint64_t, std::unique_ptr<Process>> procs_;
};

}  // namespace rl::test
