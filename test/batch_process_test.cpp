// Batched transfers (docs/design.md section 6.9) through rlcat and real
// rlnode processes: two shards of three nodes. A batch mixing intra- and
// cross-shard transfers enters at a follower and gets one outcome per
// transfer in order; the same batch sent again, to another node, gets the
// same outcomes and moves nothing; a malformed batch is refused whole. The
// books add up at the end.
#define BOOST_TEST_MODULE batch_process
#include "test/support/cluster.hpp"
#include "test/support/status_probe.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

using namespace std::chrono_literals;
using namespace rl;
using nlohmann::json;
using rl::test::LocalCluster;
using rl::test::run_command;

namespace {

// The harness's INI: initial_balance = 10, shard s holds items
// 100(s-1)+1 .. 100s.
struct Running {
    LocalCluster cluster{rl::test::ClusterSpec{.shards = {{1, 2, 3}, {4, 5, 6}},
                                               .extra_cluster_lines = "batch_transfers_max = 8\n"}};
    Running() {
        cluster.start_all();
        for (auto id : cluster.ids()) BOOST_REQUIRE(cluster.wait_ready(id, 10s));
    }

    json rlcat_json(std::uint64_t node, const std::string& command, int want_code = 0) const {
        const auto r = run_command({rl::test::rlcat_path().string(), "--config", cluster.ini().string(), "-n",
                                    std::to_string(node), "--json", "-c", command},
                                   20s);
        BOOST_TEST_INFO(command << " -> " << r.output);
        BOOST_TEST(r.code == want_code);
        return json::parse(r.output);
    }

    std::int64_t balance(std::uint64_t item) const {
        return rlcat_json(1, "balance " + std::to_string(item)).at("balance").get<std::int64_t>();
    }

    // A member of `shard`'s nodes that is not its leader, once one is elected.
    std::uint64_t follower(const std::vector<std::uint64_t>& nodes) const {
        std::uint64_t found = 0;
        rl::test::wait_until(
            [&] {
                for (auto id : nodes) {
                    const auto s = rl::test::status_of(cluster, id);
                    if (s && s->leader != kNoNode && s->leader != NodeId{id}) found = id;
                }
                return found != 0;
            },
            10s);
        BOOST_REQUIRE(found != 0);
        return found;
    }
};

std::vector<std::string> outcomes(const json& reply) {
    std::vector<std::string> out;
    for (const auto& o : reply.at("outcomes")) {
        out.push_back(o.at("outcome").get<std::string>() + (o.contains("reason") ? ":" + o.at("reason").get<std::string>() : ""));
    }
    return out;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(with_cluster, Running)

BOOST_AUTO_TEST_CASE(a_mixed_batch_at_a_follower_gets_each_outcome_in_order_and_a_retry_the_same) {
    // 1: intra shard 1; 2: sees 1's debit (2 left); 3: cross 1 -> 2; 4: intra
    // shard 2; 5: sees 3's hold on item 2 (18 posted, 7 held); 6: sees 5's credit.
    const std::string batch = "transfers 1 2 8  1 2 5  2 150 7  160 161 3  2 3 11  3 1 21";
    const auto first = rlcat_json(follower({1, 2, 3}), batch);
    const std::vector<std::string> want = {"committed", "aborted:insufficient_funds", "committed",
                                           "committed", "committed",                  "committed"};
    BOOST_TEST(outcomes(first) == want, boost::test_tools::per_element());
    BOOST_TEST(first.at("ok").get<bool>());
    BOOST_TEST(first.at("committed").get<int>() == 5);
    BOOST_TEST(first.at("aborted").get<int>() == 1);
    BOOST_TEST(first.at("failed").get<int>() == 0);
    // Txids: FROM's shard's session, numbered in the batch's order.
    const auto& o = first.at("outcomes");
    const auto session_of = [&](std::size_t i) {
        const auto t = o.at(i).at("txid").get<std::string>();
        return t.substr(0, t.find(':'));
    };
    BOOST_TEST(o.at(4).at("txid").get<std::string>() == session_of(0) + ":4");
    BOOST_TEST(o.at(3).at("txid").get<std::string>() == session_of(3) + ":1");
    BOOST_TEST(session_of(3) != session_of(0));

    const std::vector<std::pair<std::uint64_t, std::int64_t>> after = {{1, 23}, {2, 0}, {3, 0}, {150, 17},
                                                                       {160, 7}, {161, 13}};
    // The credit of the cross-shard transfer posts with its Decide, which
    // may follow the answer (parallel commits, docs/design.md section 6.7).
    const auto check_balances = [&] {
        const auto all_there = [&] {
            for (const auto& [item, want_balance] : after) {
                if (balance(item) != want_balance) return false;
            }
            return true;
        };
        rl::test::wait_until(all_there, 10s);
        for (const auto& [item, want_balance] : after) BOOST_TEST(balance(item) == want_balance, "item " << item);
    };
    check_balances();

    // The same batch, same txids, sent again through the client library to
    // a follower of the other shard: the first outcomes, nothing moves.
    transport::TransfersRequest again;
    const std::vector<std::array<std::int64_t, 3>> items = {{1, 2, 8},     {1, 2, 5},    {2, 150, 7},
                                                            {160, 161, 3}, {2, 3, 11}, {3, 1, 21}};
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto t = o.at(i).at("txid").get<std::string>();
        const txn::TxnId txid{std::stoull(t.substr(0, t.find(':'))), std::stoull(t.substr(t.find(':') + 1))};
        again.transfers.push_back({txid, ItemId{static_cast<std::uint64_t>(items[i][0])},
                                   ItemId{static_cast<std::uint64_t>(items[i][1])}, items[i][2]});
    }
    tools::RetryingClient client("", {{NodeId{0}, cluster.endpoint(follower({4, 5, 6}))}});
    const auto reply = client.call(again, tools::Clock::now() + 10s, true);
    const auto* r = std::get_if<transport::TransfersReply>(&reply);
    BOOST_REQUIRE_MESSAGE(r != nullptr, tools::reply_text(reply));
    BOOST_TEST(json::parse(tools::reply_json(reply).dump()).at("outcomes") == o);
    check_balances();
    BOOST_TEST(rlcat_json(2, "audit").at("ok").get<bool>());
}

BOOST_AUTO_TEST_CASE(a_pinned_batch_sent_twice_by_rlcat_prints_the_same_outcomes) {
    const auto session = std::to_string(rlcat_json(2, "session 41").at("session").get<std::uint64_t>());
    const std::vector<std::string> send = {rl::test::rlcat_path().string(), "--config", cluster.ini().string(),
                                           "--session", session, "--seq", "1", "-c",
                                           "transfers 41 42 4 42 43 14 41 43 7"};
    const auto one = run_command(send, 20s);
    const auto two = run_command(send, 20s);
    BOOST_TEST(one.code == 0);
    BOOST_TEST(one.output == "ok committed=2 aborted=1 failed=0 outcomes=" + session + ":1(outcome=committed)," +
                                 session + ":2(outcome=committed)," + session +
                                 ":3(outcome=aborted,reason=insufficient_funds)\n");
    BOOST_TEST(two.output == one.output);
    BOOST_TEST(balance(41) == 6);
    BOOST_TEST(balance(43) == 24);
}

BOOST_AUTO_TEST_CASE(a_malformed_batch_is_refused_whole_and_moves_nothing) {
    const auto zero = rlcat_json(3, "transfers 51 52 1 53 54 0", 1);
    BOOST_TEST(zero.at("error").get<std::string>() == "bad_request");
    BOOST_TEST(zero.at("message").get<std::string>() == "transfer 2: transfer amount must be positive, got 0");
    const auto unknown = rlcat_json(3, "transfers 51 52 1 53 900 1", 1);
    BOOST_TEST(unknown.at("error").get<std::string>() == "unknown_item");
    std::string nine = "transfers";
    for (int i = 0; i < 9; ++i) nine += " 55 56 1";
    const auto over = rlcat_json(3, nine, 1);
    BOOST_TEST(over.at("message").get<std::string>() == "9 transfers in one request, more than batch_transfers_max = 8");
    BOOST_TEST(balance(51) == 10);
    BOOST_TEST(balance(55) == 10);
    const auto usage = rlcat_json(3, "transfers 51 52", 2);
    BOOST_TEST(usage.at("error").get<std::string>() == "bad_command");
}

BOOST_AUTO_TEST_SUITE_END()
