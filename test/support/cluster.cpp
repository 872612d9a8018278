#include "test/support/cluster.hpp"

#include <boost/test/results_collector.hpp>
#include <boost/test/unit_test.hpp>
#include <signal.h>

#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace rl::test {
namespace fs = std::filesystem;

std::string LogLine::get(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? std::string() : it->second;
}

std::optional<LogLine> parse_log_line(const std::string& raw) {
    if (raw.rfind("ts=", 0) != 0) return std::nullopt;
    LogLine line;
    line.raw = raw;
    std::size_t i = 0;
    while (i < raw.size()) {
        const auto eq = raw.find('=', i);
        if (eq == std::string::npos) break;
        const std::string key = raw.substr(i, eq - i);
        std::string value;
        std::size_t j = eq + 1;
        if (j < raw.size() && raw[j] == '"') {
            for (++j; j < raw.size() && raw[j] != '"'; ++j) {
                if (raw[j] == '\\' && j + 1 < raw.size()) ++j;
                value += raw[j];
            }
            ++j;
        } else {
            const auto sp = raw.find(' ', j);
            value = raw.substr(j, sp == std::string::npos ? std::string::npos : sp - j);
            j = sp == std::string::npos ? raw.size() : sp;
        }
        line.fields[key] = value;
        i = j + 1;
    }
    return line;
}

std::int64_t parse_ts_ms(const std::string& ts) {
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(ts.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec, &ms) != 7) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

LocalCluster::LocalCluster(ClusterSpec spec) : spec_(std::move(spec)) {
    if (spec_.netns) {
        spec_.distinct_hosts = true;
        ns_ = std::make_unique<NetNamespace>();
    }
    std::size_t n = 0;
    for (const auto& s : spec_.shards) n += s.size();
    const auto ports = free_ports(n);
    std::size_t k = 0;
    for (const auto& s : spec_.shards)
        for (auto id : s) {
            ports_[id] = ports[k++];
            hosts_[id] = spec_.distinct_hosts ? "127.0.0." + std::to_string(10 + id) : "127.0.0.1";
        }
    write_ini();
}

LocalCluster::~LocalCluster() {
    // Processes first, then the namespace they ran in.
    for (auto& [id, p] : procs_) p.reset();
    ns_.reset();
    // The folder goes with the cluster: a failed test shows what its nodes
    // logged last, so that a failure seen once (on CI, say) can be read.
    namespace ut = boost::unit_test;
    if (!ut::framework::test_in_progress()) return;
    const ut::test_results& r = ut::results_collector.results(ut::framework::current_test_case().p_id);
    if (r.p_assertions_failed == 0U) return;
    constexpr std::size_t kTailLines = 60;
    for (const auto& [id, port] : ports_) {
        std::ifstream in(log_path(id));
        std::deque<std::string> tail;
        for (std::string line; std::getline(in, line);) {
            tail.push_back(std::move(line));
            if (tail.size() > kTailLines) tail.pop_front();
        }
        std::cerr << "---- the last " << tail.size() << " lines of node " << id << "'s log (the test failed) ----\n";
        for (const auto& line : tail) std::cerr << line << '\n';
    }
}

void LocalCluster::write_ini() {
    ini_ = dir_.path() / "cluster.ini";
    std::ofstream out(ini_);
    out << "[cluster]\nname = test\nelection = " << spec_.election << "\nheartbeat_ms = " << spec_.heartbeat_ms
        << "\nsuspect_after_ms = " << spec_.suspect_after_ms << "\nelection_timeout_ms = " << spec_.election_timeout_ms
        << "\ninitial_balance = 10\ndata_dir = data\nfsync = " << spec_.fsync << "\n"
        << spec_.extra_cluster_lines << "\n";
    std::uint64_t first_item = 1;
    for (std::size_t s = 0; s < spec_.shards.size(); ++s) {
        out << "[shard." << s + 1 << "]\nitems = " << first_item << "-" << first_item + 99 << "\nnodes = ";
        first_item += 100;
        for (std::size_t i = 0; i < spec_.shards[s].size(); ++i) out << (i ? "," : "") << spec_.shards[s][i];
        out << "\n\n";
    }
    for (const auto& [id, port] : ports_) out << "[node." << id << "]\naddress = " << hosts_.at(id) << ":" << port << "\n\n";
}

std::string LocalCluster::endpoint(std::uint64_t id) const { return hosts_.at(id) + ":" + std::to_string(ports_.at(id)); }

std::vector<std::uint64_t> LocalCluster::ids() const {
    std::vector<std::uint64_t> out;
    for (const auto& [id, port] : ports_) out.push_back(id);
    return out;
}

fs::path LocalCluster::log_path(std::uint64_t id) const { return dir_.path() / ("node-" + std::to_string(id) + ".log"); }

std::vector<std::string> LocalCluster::prefix() const { return ns_ ? ns_->exec_prefix() : std::vector<std::string>{}; }

void LocalCluster::start(std::uint64_t id) { start_with_ini(id, ini_); }

fs::path LocalCluster::write_ini_copy(const std::string& name, const std::map<std::string, std::string>& replace) const {
    std::istringstream in(read_file(ini_));
    std::string text;
    std::set<std::string> found;
    for (std::string line; std::getline(in, line);) {
        if (auto it = replace.find(line); it != replace.end()) {
            found.insert(line);
            line = it->second;
        }
        text += line + "\n";
    }
    if (found.size() != replace.size()) throw std::logic_error("write_ini_copy: a line to replace is not in " + ini_.string());
    const auto path = dir_.path() / name;
    std::ofstream(path) << text;
    return path;
}

void LocalCluster::start_with_ini(std::uint64_t id, const fs::path& ini) {
    std::vector<std::string> argv = prefix();
    if (auto it = spec_.file_bytes_max.find(id); it != spec_.file_bytes_max.end()) {
        for (const auto& a : {std::string("/usr/bin/prlimit"), "--fsize=" + std::to_string(it->second), std::string("--")}) {
            argv.push_back(a);
        }
    }
    for (const auto& a : {rlnode_path().string(), std::string("--config"), ini.string(), std::string("--id"),
                          std::to_string(id), std::string("--log-file"), log_path(id).string()}) {
        argv.push_back(a);
    }
    procs_[id] = std::make_unique<Process>(argv, dir_.path() / ("node-" + std::to_string(id) + ".out"));
}

void LocalCluster::partition(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
    if (!ns_) throw std::logic_error("partition needs a netns cluster");
    std::vector<std::string> ha;
    std::vector<std::string> hb;
    for (auto x : a) ha.push_back(hosts_.at(x));
    for (auto y : b) hb.push_back(hosts_.at(y));
    ns_->cut_between(ha, hb);
}

void LocalCluster::cut_one_way(std::uint64_t from, std::uint64_t to) {
    if (!ns_) throw std::logic_error("cut_one_way needs a netns cluster");
    ns_->cut_one_way(hosts_.at(from), hosts_.at(to));
}

void LocalCluster::heal() {
    if (ns_) ns_->heal();
}

void LocalCluster::start_all() {
    for (auto id : ids()) start(id);
}

void LocalCluster::signal(std::uint64_t id, int sig) { procs_.at(id)->signal(sig); }

void LocalCluster::kill(std::uint64_t id) {
    procs_.at(id)->signal(SIGKILL);
    procs_.at(id)->wait(std::chrono::seconds(10));
}

bool LocalCluster::running(std::uint64_t id) {
    auto it = procs_.find(id);
    return it != procs_.end() && it->second->running();
}

Process* LocalCluster::process(std::uint64_t id) {
    auto it = procs_.find(id);
    return it == procs_.end() ? nullptr : it->second.get();
}

std::vector<LogLine> LocalCluster::log(std::uint64_t id) const {
    std::vector<LogLine> lines;
    std::ifstream in(log_path(id));
    for (std::string raw; std::getline(in, raw);) {
        if (auto l = parse_log_line(raw)) lines.push_back(std::move(*l));
    }
    return lines;
}

std::optional<LogLine> LocalCluster::wait_event(std::uint64_t id, const std::string& event,
                                                const std::map<std::string, std::string>& fields,
                                                std::chrono::milliseconds timeout, std::size_t from) const {
    std::optional<LogLine> found;
    wait_until(
        [&] {
            const auto lines = log(id);
            for (std::size_t i = from; i < lines.size(); ++i) {
                if (lines[i].get("event") != event) continue;
                bool all = true;
                for (const auto& [k, v] : fields) all = all && lines[i].get(k) == v;
                if (all) {
                    found = lines[i];
                    return true;
                }
            }
            return false;
        },
        timeout);
    return found;
}

RunResult LocalCluster::rlcat(std::uint64_t id, const std::vector<std::string>& args,
                              std::chrono::milliseconds timeout) const {
    std::vector<std::string> argv = prefix();
    argv.push_back(rlcat_path().string());
    argv.push_back(endpoint(id));
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, timeout);
}

bool LocalCluster::wait_ready(std::uint64_t id, std::chrono::milliseconds timeout) const {
    return wait_until([&] { return rlcat(id, {"--timeout", "500", "-c", "ping"}).code == 0; }, timeout);
}

}  // namespace rl::test
