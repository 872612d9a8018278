// The fault switches and the test-set runner against real rlnode processes
// (docs/design.md section 6.8): refused without fault_injection; a failed
// node drops its traffic, is suspected by its peers and rejoins on recover
// without deposing the leader that replaced it; `rlcat --testfile` runs
// examples/sets.tsv with the outcomes and balances the sets imply.
#define BOOST_TEST_MODULE fault_process
#include "test/support/cluster.hpp"
#include "test/support/status_probe.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <sstream>

using namespace std::chrono_literals;
using rl::test::LocalCluster;
using rl::test::run_command;
using rl::test::status_of;
using rl::test::wait_until;

namespace {

const std::string kDisabled = "fault injection is disabled: set fault_injection = true in [cluster]";

rl::test::ClusterSpec spec(std::vector<std::vector<std::uint64_t>> shards, bool faults) {
    rl::test::ClusterSpec s;
    s.shards = std::move(shards);
    if (faults) s.extra_cluster_lines = "fault_injection = true\n";
    return s;
}

void start_and_wait(LocalCluster& c) {
    c.start_all();
    for (auto id : c.ids()) BOOST_REQUIRE(c.wait_ready(id, 10s));
}

// The leader every one of `members` names, once they agree.
std::uint64_t agreed_leader(const LocalCluster& c, const std::vector<std::uint64_t>& members,
                            std::chrono::milliseconds timeout) {
    std::uint64_t leader = 0;
    wait_until(
        [&] {
            std::set<std::uint64_t> seen;
            for (auto id : members) {
                const auto s = status_of(c, id);
                if (!s || s->leader == rl::kNoNode) return false;
                seen.insert(s->leader.value);
            }
            leader = seen.size() == 1 ? *seen.begin() : 0;
            return leader != 0;
        },
        timeout);
    return leader;
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
    std::vector<nlohmann::json> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        if (!l.empty()) out.push_back(nlohmann::json::parse(l));
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fail_recover_reset_and_testfile_are_refused_without_fault_injection) {
    LocalCluster c(spec({{1, 2, 3}}, false));
    start_and_wait(c);
    for (const std::string cmd : {"fail", "recover", "reset"}) {
        const auto r = c.rlcat(1, {"--json", "-c", cmd});
        BOOST_TEST(r.code == 1, cmd << ": " << r.output);
        const auto j = nlohmann::json::parse(r.output);
        BOOST_TEST(j.at("error") == "forbidden");
        BOOST_TEST(j.at("message") == kDisabled);
    }
    const auto reset = run_command({rl::test::rlcat_path().string(), "--config", c.ini().string(), "-n", "2", "reset"}, 10s);
    BOOST_TEST(reset.code == 1);
    BOOST_TEST(reset.output.find("forbidden") != std::string::npos, reset.output);
    // The node was not failed: it still answers, and so does its shard.
    BOOST_TEST(c.rlcat(1, {"-c", "ping"}).code == 0);
    BOOST_TEST(c.rlcat(1, {"-c", "transfer 1 2 3"}).output.find("outcome=committed") != std::string::npos);
    const auto sets = run_command({rl::test::rlcat_path().string(), "--config", c.ini().string(), "--testfile",
                                   (rl::test::source_dir() / "examples" / "sets.tsv").string()},
                                  10s);
    BOOST_TEST(sets.code == 2);
    BOOST_TEST(sets.output.find("needs fault_injection = true") != std::string::npos, sets.output);
}

BOOST_AUTO_TEST_CASE(a_failed_leader_drops_its_traffic_and_rejoins_without_deposing_its_successor) {
    LocalCluster c(spec({{1, 2, 3}}, true));
    start_and_wait(c);
    const std::vector<std::uint64_t> all{1, 2, 3};
    const std::uint64_t old_leader = agreed_leader(c, all, 10s);
    BOOST_REQUIRE(old_leader != 0);
    std::vector<std::uint64_t> others;
    for (auto id : all) {
        if (id != old_leader) others.push_back(id);
    }
    const auto failed = c.rlcat(old_leader, {"--json", "-c", "fail"});
    BOOST_REQUIRE(failed.code == 0);
    BOOST_TEST(nlohmann::json::parse(failed.output).at("failed") == true);

    // Its peers stop hearing it and elect a successor among themselves.
    BOOST_TEST(wait_until(
        [&] {
            const auto s = status_of(c, others[0]);
            if (!s) return false;
            for (const auto& p : s->peers) {
                if (p.id.value == old_leader) return p.suspected;
            }
            return false;
        },
        5s));
    const std::uint64_t successor = agreed_leader(c, others, 10s);
    BOOST_REQUIRE(successor != 0);
    BOOST_TEST(successor != old_leader);
    // No client request but the switches gets an answer from it.
    for (const std::string cmd : {"ping", "status", "balance 1"}) {
        const auto r = c.rlcat(old_leader, {"--timeout", "300", "-c", cmd});
        BOOST_TEST(r.code == 1, cmd << ": " << r.output);
        BOOST_TEST(r.output.find("no reply within 300 ms") != std::string::npos, r.output);
    }
    BOOST_TEST(c.rlcat(others[0], {"-c", "transfer 1 2 4"}).output.find("outcome=committed") != std::string::npos);
    const auto before = status_of(c, successor);
    BOOST_REQUIRE(before.has_value());

    BOOST_REQUIRE(c.rlcat(old_leader, {"-c", "recover"}).code == 0);
    // It follows the successor, in the successor's epoch...
    BOOST_TEST(wait_until(
        [&] {
            const auto s = status_of(c, old_leader);
            return s && s->leader.value == successor && s->epoch == before->epoch &&
                   s->applied_index >= before->applied_index;
        },
        5s));
    // ...and stays a follower through more than a suspect and an election
    // timeout: a recovered node listens before it may stand.
    const auto until = std::chrono::steady_clock::now() + 1s;
    while (std::chrono::steady_clock::now() < until) {
        const auto s = status_of(c, successor);
        BOOST_REQUIRE(s.has_value());
        BOOST_REQUIRE(s->role == rl::transport::NodeRole::leader);
        BOOST_REQUIRE(s->epoch == before->epoch);
    }
    const auto balance = c.rlcat(old_leader, {"-c", "balance 2"});
    BOOST_TEST(balance.output.find("balance=14") != std::string::npos, balance.output);
}

// The example sets of examples/sets.ini, on free ports: every command's
// outcome, and the balances each set leaves.
BOOST_AUTO_TEST_CASE(rlcat_testfile_runs_the_example_sets_against_a_real_cluster) {
    LocalCluster c(spec({{1, 2, 3}, {4, 5, 6}}, true));
    const auto ini = c.write_ini_copy("sets.ini", {{"items = 1-100", "items = 1-3000"}, {"items = 101-200", "items = 3001-6000"}});
    for (auto id : c.ids()) c.start_with_ini(id, ini);
    for (auto id : c.ids()) BOOST_REQUIRE(c.wait_ready(id, 10s));
    const auto r = run_command({rl::test::rlcat_path().string(), "--config", ini.string(), "--testfile",
                                (rl::test::source_dir() / "examples" / "sets.tsv").string(), "--no-pause", "--json",
                                "--timeout", "2000"},
                               120s);
    BOOST_TEST_MESSAGE(r.output);
    // Sets 3 and 5 send transfers to a shard without quorum: not every
    // command is answered.
    BOOST_TEST(r.code == 1);
    std::map<int, nlohmann::json> by_line;     // commands
    std::map<int, nlohmann::json> balances;    // per set: item -> balance
    std::map<int, nlohmann::json> summaries;   // per set
    for (const auto& j : json_lines(r.output)) {
        if (j.contains("line")) by_line[j.at("line").get<int>()] = j;
        if (j.contains("balances")) balances[j.at("set").get<int>()] = j.at("balances");
        if (j.contains("commands")) summaries[j.at("set").get<int>()] = j;
    }
    BOOST_REQUIRE(by_line.size() == 32u);
    const auto outcome = [&](int line) { return by_line[line].value("outcome", "none") + by_line[line].value("reason", ""); };
    for (int line : {2, 3, 4, 5, 9, 13, 17, 19, 22, 25, 28, 32}) BOOST_TEST(outcome(line) == "committed", "line " << line);
    for (int line : {8, 10, 11}) BOOST_TEST(outcome(line) == "abortedinsufficient_funds", "line " << line);
    for (int line : {18, 20, 21, 23, 24, 26, 29, 31}) BOOST_TEST(by_line[line].at("ok") == true, "line " << line);
    // A shard without quorum: a clear failure within the timeout.
    for (int line : {14, 15, 16, 30}) {
        BOOST_TEST(by_line[line].at("ok") == false, "line " << line);
        BOOST_TEST(by_line[line].at("latency_ms").get<double>() < 3000, "line " << line);
    }
    // Reads right after a cross-shard commit may precede its decision.
    const auto settled = [&](int line) { return by_line[line].at("balance").get<int>() + by_line[line].at("pending").get<int>(); };
    BOOST_TEST(settled(6) == 13);
    BOOST_TEST(settled(7) == 15);
    BOOST_TEST(by_line[12].at("balance") == 0);
    BOOST_TEST(by_line[27].at("balance") == 12);
    BOOST_TEST(by_line[33].at("balance") == 12);
    const auto item = [&](int set, std::size_t shard, const char* id) {
        return balances[set].at(shard).at("balances").at(id).at("balance").get<int>();
    };
    BOOST_TEST(item(1, 0, "1") == 13);
    BOOST_TEST(item(1, 0, "2") == 8);
    BOOST_TEST(item(1, 1, "3001") == 6);
    BOOST_TEST(item(1, 1, "3003") == 15);
    BOOST_TEST(item(1, 1, "3004") == 4);
    BOOST_TEST(item(2, 0, "5") == 0);
    BOOST_TEST(item(2, 0, "6") == 20);
    BOOST_TEST(item(3, 0, "1") == 9);
    BOOST_TEST(balances[3].at(1).at("balances").contains("error"));
    BOOST_TEST(item(4, 0, "10") == 7);
    BOOST_TEST(item(4, 0, "11") == 12);
    BOOST_TEST(item(4, 0, "13") == 11);
    BOOST_TEST(item(4, 1, "3010") == 13);
    BOOST_TEST(item(5, 1, "3020") == 8);
    BOOST_TEST(summaries[2].at("answered") == 5);
    BOOST_TEST(summaries[3].at("answered") == 1);
    BOOST_TEST(summaries[3].at("failed") == 2);
    BOOST_TEST(summaries[4].at("committed") == 4);
    // Afterwards the books of both shards add up.
    const auto audit = run_command({rl::test::rlcat_path().string(), "--config", ini.string(), "audit"}, 20s);
    BOOST_TEST(audit.code == 0, audit.output);
}
