// A network namespace of the test's own, with loopback up, for partition
// tests: nodes run inside it on distinct 127.0.0.x addresses, and iptables
// rules inside it cut pairs of them. Nothing touches the host's network or
// rules; deleting the namespace (the destructor) removes every rule with it.
#pragma once

#include <string>
#include <vector>

namespace rl::test {

class NetNamespace {
public:
    // Creates it; throws std::runtime_error with the reason (e.g. not root).
    NetNamespace();
    ~NetNamespace();
    NetNamespace(const NetNamespace&) = delete;
    NetNamespace& operator=(const NetNamespace&) = delete;

    const std::string& name() const { return name_; }
    // argv prefix that runs a command inside the namespace.
    std::vector<std::string> exec_prefix() const;
    // Drops all traffic between every host of `a` and every host of `b`,
    // both ways, in one iptables-restore transaction: the partition starts
    // at one instant. Rule by rule, the side cut off first could elect a
    // leader and reach the other side before the last rule was in.
    void cut_between(const std::vector<std::string>& a, const std::vector<std::string>& b);
    // Drops traffic from a to b only.
    void cut_one_way(const std::string& from, const std::string& to);
    // Removes every rule: the network is whole again.
    void heal();

private:
    void iptables(const std::vector<std::string>& args);
    std::string name_;
};

// True when this process may create namespaces (root with CAP_NET_ADMIN).
bool can_create_namespaces();

// The processes running inside namespace `name` (none if it is gone).
std::vector<long> namespace_pids(const std::string& name);
// Kills whatever still runs inside `name` (a node, an rldelay of
// tools/partition), then deletes it: a process keeps its namespace alive
// after `ip netns del`. Nothing happens if it does not exist.
void delete_namespace(const std::string& name);
// Namespaces named `prefix` + the pid of the test process that made them
// (and more after it), whose process is gone (killed before its
// destructors ran), are deleted with everything in them: they never pile up.
void remove_stale_namespaces(const std::string& prefix);

}  // namespace rl::test
