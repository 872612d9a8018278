// rlcat and rlnode as a user meets them: replies, JSON, stdin mode, exit
// codes, and one clear line for every kind of error.
#define BOOST_TEST_MODULE rlcat
#include "test/support/cluster.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace std::chrono_literals;
using rl::test::LocalCluster;
using rl::test::run_command;

namespace {

struct Running {
    LocalCluster cluster{rl::test::ClusterSpec{.shards = {{1, 2, 3}}}};
    Running() {
        cluster.start_all();
        for (auto id : cluster.ids()) BOOST_REQUIRE(cluster.wait_ready(id, 10s));
    }
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

std::string rlcat() { return rl::test::rlcat_path().string(); }

// "ok outcome=committed txid=S:N" -> "S".
std::string session_of_txid(const std::string& line) {
    const auto at = line.find("txid=");
    if (at == std::string::npos) return "";
    const auto colon = line.find(':', at);
    return colon == std::string::npos ? "" : line.substr(at + 5, colon - at - 5);
}
std::string rlnode() { return rl::test::rlnode_path().string(); }

}  // namespace

BOOST_FIXTURE_TEST_SUITE(with_cluster, Running)

BOOST_AUTO_TEST_CASE(ping_prints_ok_and_exits_zero) {
    const auto r = cluster.rlcat(1, {"-c", "ping"});
    BOOST_TEST(r.code == 0);
    BOOST_TEST(r.output == "ok\n");
}

BOOST_AUTO_TEST_CASE(status_json_has_every_contract_field) {
    const auto r = cluster.rlcat(2, {"--json", "-c", "status"});
    BOOST_REQUIRE(r.code == 0);
    const auto j = nlohmann::json::parse(r.output);
    BOOST_TEST(j.at("ok").get<bool>());
    BOOST_TEST(j.at("node").get<int>() == 2);
    BOOST_TEST(j.at("shard").get<int>() == 1);
    BOOST_TEST(j.contains("role"));
    BOOST_TEST(j.contains("epoch"));
    BOOST_TEST(j.contains("leader"));
    BOOST_TEST(j.contains("commit_index"));
    BOOST_TEST(j.contains("applied_index"));
    BOOST_REQUIRE(j.at("peers").size() == 2u);
    for (const auto& p : j.at("peers")) {
        BOOST_TEST(p.contains("id"));
        BOOST_TEST(p.contains("suspected"));
        BOOST_TEST(p.contains("last_heard_ms"));
    }
}

BOOST_AUTO_TEST_CASE(stdin_mode_prints_one_reply_per_line) {
    const auto r = run_command({rlcat(), cluster.endpoint(3)}, 10s, "ping\n\n# a comment\nstatus\nping\n");
    BOOST_TEST(r.code == 0);
    const auto lines = lines_of(r.output);
    BOOST_REQUIRE(lines.size() == 3u);
    BOOST_TEST(lines[0] == "ok");
    BOOST_TEST(lines[1].rfind("ok node=3 shard=1 role=", 0) == 0);
    BOOST_TEST(lines[2] == "ok");
}

BOOST_AUTO_TEST_CASE(stdin_mode_reports_a_bogus_command_and_goes_on) {
    const auto r = run_command({rlcat(), "--json", cluster.endpoint(1)}, 10s, "frobnicate 3\nping\n");
    BOOST_TEST(r.code == 1);
    const auto lines = lines_of(r.output);
    BOOST_REQUIRE(lines.size() == 2u);
    const auto err = nlohmann::json::parse(lines[0]);
    BOOST_TEST(!err.at("ok").get<bool>());
    BOOST_TEST(err.at("error").get<std::string>() == "bad_command");
    BOOST_TEST(nlohmann::json::parse(lines[1]).at("ok").get<bool>());
}

BOOST_AUTO_TEST_CASE(bogus_command_with_c_is_a_usage_error) {
    const auto r = cluster.rlcat(1, {"-c", "frobnicate"});
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("unknown command \"frobnicate\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(wrong_argument_count_prints_the_usage) {
    const auto r = cluster.rlcat(1, {"-c", "ping extra"});
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("usage: ping") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(config_and_node_id_pick_the_node) {
    const auto r = run_command({rlcat(), "--config", cluster.ini().string(), "-n", "3", "--json", "-c", "status"}, 10s);
    BOOST_REQUIRE(r.code == 0);
    BOOST_TEST(nlohmann::json::parse(r.output).at("node").get<int>() == 3);
}

BOOST_AUTO_TEST_CASE(transfer_balance_and_leader_print_their_contract_fields) {
    const auto ini = cluster.ini().string();
    const auto r = run_command({rlcat(), "--config", ini, "-n", "2"}, 20s,
                               "transfer 1 2 3\nbalance 2\nbalance 1 --local\nleader\ntransfer 1 2 999\n");
    BOOST_TEST(r.code == 0);
    const auto lines = lines_of(r.output);
    BOOST_REQUIRE(lines.size() == 5u);
    // Both transfers run in the one session rlcat opened with shard 1.
    const std::string session = session_of_txid(lines[0]);
    BOOST_TEST(lines[0] == "ok outcome=committed txid=" + session + ":1");
    BOOST_TEST(lines[1] == "ok item=2 balance=13 held=0 pending=0 available=13");
    BOOST_TEST(lines[2].rfind("ok item=1 balance=", 0) == 0);
    BOOST_TEST(lines[2].find("local=true applied_index=") != std::string::npos);
    BOOST_TEST(lines[3].rfind("ok shard=1 leader=", 0) == 0);
    BOOST_TEST(lines[4] == "ok outcome=aborted reason=insufficient_funds txid=" + session + ":2");
}

BOOST_AUTO_TEST_CASE(session_prints_the_shard_and_a_session_of_that_shard) {
    auto r = cluster.rlcat(1, {"-c", "session 7"});
    BOOST_TEST(r.code == 0);
    BOOST_TEST(r.output.rfind("ok shard=1 session=", 0) == 0, r.output);
    r = cluster.rlcat(3, {"--json", "-c", "session 7"});
    BOOST_REQUIRE(r.code == 0);
    const auto j = nlohmann::json::parse(r.output);
    BOOST_TEST(j.at("ok").get<bool>());
    BOOST_TEST(j.at("shard").get<int>() == 1);
    // docs/design.md section 6: the shard in the high 16 bits, the index of
    // the opening entry in the low 48.
    const auto session = j.at("session").get<std::uint64_t>();
    BOOST_TEST((session >> 48) == 1u);
    BOOST_TEST((session & ((std::uint64_t{1} << 48) - 1)) > 0u);
    r = cluster.rlcat(1, {"-c", "session"});
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("usage: session ITEM") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(without_a_config_items_of_one_shard_share_one_session) {
    const auto r = run_command({rlcat(), cluster.endpoint(2)}, 20s, "transfer 21 22 1\ntransfer 23 24 1\n");
    BOOST_TEST(r.code == 0);
    const auto lines = lines_of(r.output);
    BOOST_REQUIRE(lines.size() == 2u);
    const std::string session = session_of_txid(lines[0]);
    BOOST_TEST(lines[0] == "ok outcome=committed txid=" + session + ":1");
    BOOST_TEST(lines[1] == "ok outcome=committed txid=" + session + ":2");
}

// A txid given by hand, sent by two runs: applied once, the same answer twice.
BOOST_AUTO_TEST_CASE(session_and_seq_sent_again_by_a_second_run_get_the_first_answer) {
    const auto ini = cluster.ini().string();
    const auto opened = run_command({rlcat(), "--config", ini, "--json", "-c", "session 31"}, 20s);
    BOOST_REQUIRE(opened.code == 0);
    const auto session = std::to_string(nlohmann::json::parse(opened.output).at("session").get<std::uint64_t>());
    const std::vector<std::string> send = {rlcat(), "--config", ini, "--session", session, "--seq", "1", "-c",
                                           "transfer 31 32 5"};
    const auto first = run_command(send, 20s);
    const auto second = run_command(send, 20s);
    BOOST_TEST(first.code == 0);
    BOOST_TEST(first.output == "ok outcome=committed txid=" + session + ":1\n");
    BOOST_TEST(second.code == 0);
    BOOST_TEST(second.output == first.output);
    const auto balances = run_command({rlcat(), "--config", ini}, 20s, "balance 31\nbalance 32\n");
    BOOST_TEST(balances.output == "ok item=31 balance=5 held=0 pending=0 available=5\n"
                                  "ok item=32 balance=15 held=0 pending=0 available=15\n");
    // The next seq of the same session is a new transfer.
    const auto next = run_command({rlcat(), "--config", ini, "--session", session, "--seq", "2", "-c",
                                   "transfer 31 32 5"},
                                  20s);
    BOOST_TEST(next.output == "ok outcome=committed txid=" + session + ":2\n");
}

BOOST_AUTO_TEST_CASE(balance_json_has_held_pending_and_available) {
    const auto r = cluster.rlcat(1, {"--json", "-c", "balance 9"});
    BOOST_REQUIRE(r.code == 0);
    const auto j = nlohmann::json::parse(r.output);
    BOOST_TEST(j.at("ok").get<bool>());
    BOOST_TEST(j.at("item").get<int>() == 9);
    BOOST_TEST(j.at("balance").get<int>() == 10);
    BOOST_TEST(j.at("held").get<int>() == 0);
    BOOST_TEST(j.at("pending").get<int>() == 0);
    BOOST_TEST(j.at("available").get<int>() == 10);
}

// docs/design.md section 4: one line per shard, a total line, then ok.
BOOST_AUTO_TEST_CASE(audit_of_a_quiet_shard_adds_up) {
    const auto ini = cluster.ini().string();
    const auto r = run_command({rlcat(), "--config", ini, "-n", "2"}, 20s, "transfer 41 42 3\naudit\n");
    BOOST_TEST(r.code == 0, r.output);
    const auto lines = lines_of(r.output);
    BOOST_REQUIRE(lines.size() == 4u);
    BOOST_TEST(lines[1].rfind("shard=1 applied_index=", 0) == 0, lines[1]);
    BOOST_TEST(lines[1].find(" items=100 initial_balance=10 expected=1000 posted=1000 held=0 pending=0 "
                             "available=1000 undecided=0 negatives=none") != std::string::npos,
               lines[1]);
    BOOST_TEST(lines[2] == "total items=100 expected=1000 posted=1000 held=0 pending=0 available=1000 undecided=0 "
                           "negatives=0 debited_not_credited=0 credited_not_debited=0 balanced_by=books reads=1");
    BOOST_TEST(lines[3] == "ok");
    const auto j = run_command({rlcat(), "--config", ini, "--json", "-c", "audit"}, 20s);
    BOOST_TEST(j.code == 0);
    const auto report = nlohmann::json::parse(j.output);
    BOOST_TEST(report.at("ok").get<bool>());
    BOOST_TEST(report.at("shards").size() == 1u);
    BOOST_TEST(report.at("total").at("posted").get<int>() == 1000);
    BOOST_TEST(report.at("in_flight").empty());
    BOOST_TEST(report.at("problems").empty());
}

BOOST_AUTO_TEST_CASE(transfer_json_and_a_bad_amount_exits_one) {
    const auto ini = cluster.ini().string();
    auto r = run_command({rlcat(), "--config", ini, "--json", "-c", "transfer 4 5 1"}, 20s);
    BOOST_TEST(r.code == 0);
    auto j = nlohmann::json::parse(r.output);
    BOOST_TEST(j.at("ok").get<bool>());
    BOOST_TEST(j.at("outcome").get<std::string>() == "committed");
    BOOST_TEST(j.contains("txid"));
    r = run_command({rlcat(), "--config", ini, "--json", "-c", "transfer 4 5 0"}, 20s);
    BOOST_TEST(r.code == 1);
    j = nlohmann::json::parse(r.output);
    BOOST_TEST(j.at("error").get<std::string>() == "bad_request");
    BOOST_TEST(j.contains("leader_hint"));
    r = run_command({rlcat(), "--config", ini, "-c", "transfer 4 five 1"}, 20s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("TO must be a whole number") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(unreachable_node_gives_one_line_and_exit_two) {
    const auto port = rl::test::free_ports(1)[0];
    const auto r = run_command({rlcat(), "127.0.0.1:" + std::to_string(port), "-c", "ping"}, 10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(lines_of(r.output).size() == 1u);
    BOOST_TEST(r.output.rfind("rlcat: cannot connect to 127.0.0.1:", 0) == 0);
}

BOOST_AUTO_TEST_CASE(audit_without_a_config_is_a_usage_error) {
    const auto port = rl::test::free_ports(1)[0];
    auto r = run_command({rlcat(), "127.0.0.1:" + std::to_string(port), "-c", "audit"}, 10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output == "error: audit needs --config FILE: it reads every shard the file lists\n");
    r = run_command({rlcat(), "127.0.0.1:" + std::to_string(port), "-c", "audit 1"}, 10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("usage: audit") != std::string::npos);
}

// A transfer between shards runs in a session of FROM's shard, is answered
// like any transfer, and leaves books that add up (docs/design.md section 6.7).
BOOST_AUTO_TEST_CASE(a_transfer_across_shards_runs_in_a_session_of_the_from_shard_and_audits_clean) {
    LocalCluster c(rl::test::ClusterSpec{.shards = {{1}, {2}}});  // items 1-100 and 101-200
    c.start_all();
    for (auto id : c.ids()) BOOST_REQUIRE(c.wait_ready(id, 10s));
    const auto ini = c.ini().string();
    const auto r = run_command({rlcat(), "--config", ini, "-n", "2"}, 30s,
                               "transfer 150 3 4\ntransfer 7 120 2\ntransfer 8 130 11\n");
    BOOST_TEST(r.code == 0, r.output);
    const auto lines = lines_of(r.output);
    BOOST_REQUIRE(lines.size() == 3u);
    // FROM 150 is in shard 2, FROM 7 and 8 in shard 1: one session each.
    const auto two = session_of_txid(lines[0]);
    const auto one = session_of_txid(lines[1]);
    BOOST_TEST(lines[0] == "ok outcome=committed txid=" + two + ":1");
    BOOST_TEST((std::stoull(two) >> 48) == 2u);
    BOOST_TEST(lines[1] == "ok outcome=committed txid=" + one + ":1");
    BOOST_TEST((std::stoull(one) >> 48) == 1u);
    BOOST_TEST(lines[2] == "ok outcome=aborted reason=insufficient_funds txid=" + one + ":2");
    // The decisions may still be on their way: posted plus pending, and
    // posted minus held, are already final.
    const auto balance = [&](int item) {
        return nlohmann::json::parse(
            run_command({rlcat(), "--config", ini, "--json", "-c", "balance " + std::to_string(item)}, 20s).output);
    };
    BOOST_TEST(balance(150).at("available").get<int>() == 6);
    const auto three = balance(3);
    BOOST_TEST(three.at("balance").get<int>() + three.at("pending").get<int>() == 14);
    // Every audit adds up; once the decisions are applied nothing is in flight.
    nlohmann::json j;
    BOOST_TEST(rl::test::wait_until(
        [&] {
            const auto audit = run_command({rlcat(), "--config", ini, "--json", "-c", "audit"}, 20s);
            j = nlohmann::json::parse(audit.output, nullptr, false);
            BOOST_TEST(audit.code == 0, audit.output);
            return audit.code != 0 || !j.contains("total") || j.at("total").at("undecided").get<int>() == 0;
        },
        10s));
    BOOST_REQUIRE_MESSAGE(j.contains("total"), j.dump());
    BOOST_TEST(j.at("ok").get<bool>(), j.dump());
    BOOST_TEST(j.at("shards").size() == 2u);
    BOOST_TEST(j.at("total").at("expected").get<int>() == 2000);
    BOOST_TEST(j.at("total").at("balanced_by").get<std::string>() == "books");
    BOOST_TEST(j.at("shards")[0].at("posted").get<int>() == 1002);
    BOOST_TEST(j.at("shards")[1].at("posted").get<int>() == 998);
}

BOOST_AUTO_TEST_CASE(node_id_without_config_is_a_usage_error) {
    const auto r = run_command({rlcat(), "-n", "3", "-c", "ping"}, 10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("-n needs --config") != std::string::npos);
}

// The shard evicts the least recently used session beyond dedup_clients_max
// (docs/design.md section 6): the transfer in the evicted session is
// answered session_expired, and the next one runs in a new session.
BOOST_AUTO_TEST_CASE(after_session_expired_the_next_transfer_opens_a_new_session) {
    LocalCluster c(rl::test::ClusterSpec{.shards = {{1, 2, 3}}, .extra_cluster_lines = "dedup_clients_max = 2\n"});
    c.start_all();
    for (auto id : c.ids()) BOOST_REQUIRE(c.wait_ready(id, 10s));
    const auto r = run_command({rlcat(), "--config", c.ini().string()}, 20s,
                               "transfer 1 2 1\nsession 3\nsession 4\ntransfer 1 2 1\ntransfer 1 2 1\nbalance 1\n");
    BOOST_TEST(r.code == 0);
    const auto lines = lines_of(r.output);
    BOOST_REQUIRE(lines.size() == 6u);
    const auto first = session_of_txid(lines[0]);
    BOOST_TEST(lines[0] == "ok outcome=committed txid=" + first + ":1");
    BOOST_TEST(lines[3] == "ok outcome=aborted reason=session_expired txid=" + first + ":2");
    const auto second = session_of_txid(lines[4]);
    BOOST_TEST(second != first);
    BOOST_TEST(lines[4] == "ok outcome=committed txid=" + second + ":1");
    BOOST_TEST(lines[5] == "ok item=1 balance=8 held=0 pending=0 available=8");
}

BOOST_AUTO_TEST_CASE(a_malformed_session_or_seq_is_a_usage_error_naming_it) {
    LocalCluster c;  // its INI only: nothing is sent
    const auto ini = c.ini().string();
    const auto one_shard_session = std::to_string((std::uint64_t{1} << 48) + 5);
    for (const auto& [args, says] :
         std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"--session", "abc"}, "--session must be a session id"},
             {{"--session", "-3"}, "--session must be a session id"},
             {{"--session", "12"}, "--session must be a session id"},  // shard 0
             {{"--session", std::to_string(std::uint64_t{1} << 48)}, "--session must be a session id"},  // index 0
             {{"--session", std::to_string((std::uint64_t{9} << 48) + 1)}, "belongs to shard 9"},
             {{"--session", one_shard_session, "--seq", "0"}, "--seq must be a whole number from 1"},
             {{"--session", one_shard_session, "--seq", "x1"}, "--seq must be a whole number from 1"},
             {{"--seq", "4"}, "--seq needs --session"},
         }) {
        std::vector<std::string> argv = {rlcat(), "--config", ini, "-n", "1", "-c", "transfer 1 2 1"};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto r = run_command(argv, 10s);
        BOOST_TEST(r.code == 2, args[1]);
        BOOST_TEST(lines_of(r.output).size() == 1u, r.output);
        BOOST_TEST(r.output.rfind("rlcat: ", 0) == 0, r.output);
        BOOST_TEST(r.output.find(says) != std::string::npos, r.output);
    }
}

BOOST_AUTO_TEST_CASE(a_session_of_another_shard_than_the_from_item_is_refused_before_sending) {
    LocalCluster c(rl::test::ClusterSpec{.shards = {{1}, {2}}});  // items 1-100 and 101-200; nothing runs
    const auto shard_two = std::to_string((std::uint64_t{2} << 48) + 3);
    const auto r = run_command({rlcat(), "--config", c.ini().string(), "-n", "1", "--session", shard_two, "-c",
                                "transfer 1 2 1"},
                               10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output == "error: session " + shard_two + " belongs to shard 2 but item 1 is in shard 1; a " +
                               "transfer's session must be of its FROM item's shard\n");
}

BOOST_AUTO_TEST_CASE(bad_endpoint_is_a_usage_error) {
    const auto r = run_command({rlcat(), "localhost", "-c", "ping"}, 10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(lines_of(r.output).size() == 1u);
}

BOOST_AUTO_TEST_CASE(help_lists_the_commands) {
    const auto r = run_command({rlcat(), "--help"}, 10s);
    BOOST_TEST(r.code == 0);
    BOOST_TEST(r.output.find("status") != std::string::npos);
    BOOST_TEST(r.output.find("--timeout") != std::string::npos);
    BOOST_TEST(r.output.find("--session") != std::string::npos);
    BOOST_TEST(r.output.find("--seq") != std::string::npos);
    BOOST_TEST(r.output.find("session ITEM") != std::string::npos);
    BOOST_TEST(r.output.find("--client-id") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(rlnode_with_a_bad_config_exits_two_naming_file_section_key) {
    rl::test::TempDir dir;
    const auto ini = dir.path() / "bad.ini";
    std::ofstream(ini) << "[cluster]\nname = x\nelection = raft\n[shard.1]\nitems = 1-10\nnodes = 1\n"
                          "[node.1]\naddress = 127.0.0.1:7999\n";
    const auto r = run_command({rlnode(), "--config", ini.string(), "--id", "1"}, 10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("bad.ini") != std::string::npos);
    BOOST_TEST(r.output.find("[cluster] election") != std::string::npos);
    BOOST_TEST(r.output.find("raft") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(rlnode_with_an_unknown_id_exits_two) {
    LocalCluster c;
    const auto r = run_command({rlnode(), "--config", c.ini().string(), "--id", "42"}, 10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("no [node.42]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(rlnode_without_arguments_exits_two_with_usage) {
    const auto r = run_command({rlnode()}, 10s);
    BOOST_TEST(r.code == 2);
    BOOST_TEST(r.output.find("--config") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(rlnode_on_a_taken_address_fails_with_a_clear_error) {
    LocalCluster c(rl::test::ClusterSpec{.shards = {{1}}});
    c.start(1);
    BOOST_REQUIRE(c.wait_ready(1, 10s));
    const auto r = run_command({rlnode(), "--config", c.ini().string(), "--id", "1"}, 10s);
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.output.find("Address already in use") != std::string::npos);
}
