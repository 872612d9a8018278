#include "test/support/netns.hpp"

#include "test/support/process.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace rl::test {
namespace {

constexpr const char* kPrefix = "rl-test-";

std::string ip_binary() {
    for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
        if (std::filesystem::exists(p)) return p;
    }
    return "ip";
}

void must(const std::vector<std::string>& argv, const std::string& what) {
    const auto r = run_command(argv, std::chrono::seconds(10));
    if (r.code != 0) throw std::runtime_error(what + " failed (exit " + std::to_string(r.code) + "): " + r.output);
}

}  // namespace

bool can_create_namespaces() { return ::geteuid() == 0; }

std::vector<long> namespace_pids(const std::string& name) {
    std::vector<long> out;
    if (!std::filesystem::exists("/run/netns/" + name)) return out;
    std::istringstream in(run_command({ip_binary(), "netns", "pids", name}, std::chrono::seconds(10)).output);
    for (long pid = 0; in >> pid;) out.push_back(pid);
    return out;
}

void remove_stale_namespaces(const std::string& prefix) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind(prefix, 0) != 0) continue;
        const long pid = std::atol(n.c_str() + prefix.size());
        if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0) delete_namespace(n);
    }
}

void delete_namespace(const std::string& name) {
    if (!std::filesystem::exists("/run/netns/" + name)) return;
    for (long pid : namespace_pids(name)) {
        if (pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    run_command({ip_binary(), "netns", "del", name}, std::chrono::seconds(10));
}

NetNamespace::NetNamespace() {
    if (!can_create_namespaces()) {
        throw std::runtime_error("partition tests need root (CAP_NET_ADMIN) to create a network namespace");
    }
    remove_stale_namespaces(kPrefix);
    static std::atomic<int> counter{0};
    name_ = kPrefix + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    must({ip_binary(), "netns", "add", name_}, "ip netns add " + name_);
    must({ip_binary(), "-n", name_, "link", "set", "lo", "up"}, "bringing up lo in " + name_);
}

NetNamespace::~NetNamespace() { delete_namespace(name_); }

std::vector<std::string> NetNamespace::exec_prefix() const { return {ip_binary(), "netns", "exec", name_}; }

void NetNamespace::iptables(const std::vector<std::string>& args) {
    std::vector<std::string> argv = exec_prefix();
    argv.push_back("iptables");
    argv.insert(argv.end(), args.begin(), args.end());
    must(argv, "iptables in " + name_);
}

void NetNamespace::cut_one_way(const std::string& from, const std::string& to) {
    iptables({"-A", "INPUT", "-s", from, "-d", to, "-j", "DROP"});
}

void NetNamespace::cut_between(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    std::string rules = "*filter\n";
    for (const auto& x : a) {
        for (const auto& y : b) {
            rules += "-A INPUT -s " + x + " -d " + y + " -j DROP\n";
            rules += "-A INPUT -s " + y + " -d " + x + " -j DROP\n";
        }
    }
    rules += "COMMIT\n";
    std::vector<std::string> argv = exec_prefix();
    argv.insert(argv.end(), {"iptables-restore", "--noflush"});
    const auto r = run_command(argv, std::chrono::seconds(10), rules);
    if (r.code != 0) {
        throw std::runtime_error("iptables-restore in " + name_ + " failed (exit " + std::to_string(r.code) + "): " + r.output);
    }
}

void NetNamespace::heal() { iptables({"-F", "INPUT"}); }

}  // namespace rl::test
