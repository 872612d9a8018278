// The replicated ledger with real rlnode processes: acknowledged transfers
// survive a leader SIGKILL, retries are applied once, a restarted or lagging
// follower catches up (from its WAL, or by snapshot), and a damaged WAL
// refuses to start while a torn tail is cut and logged.
#define BOOST_TEST_MODULE txn_process
#include "test/support/cluster.hpp"
#include "tools/client.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <fstream>
#include <thread>

using namespace std::chrono_literals;
using namespace rl;
using rl::test::ClusterSpec;
using rl::test::LocalCluster;

namespace {

constexpr std::int64_t kInitial = 10;  // the harness's initial_balance

ClusterSpec ledger_spec(std::string extra = "") {
    ClusterSpec s;
    s.shards = {{1, 2, 3}};
    s.fsync = "always";
    s.extra_cluster_lines = std::move(extra);
    return s;
}

std::vector<tools::NodeEndpoint> endpoints(const LocalCluster& c) {
    std::vector<tools::NodeEndpoint> out;
    for (auto id : c.ids()) out.push_back({NodeId{id}, c.endpoint(id)});
    return out;
}

struct Ledger {
    LocalCluster cluster;
    tools::RetryingClient client;
    std::uint64_t client_id = 0xC0FFEE;
    std::uint64_t seq = 0;

    explicit Ledger(ClusterSpec spec) : cluster(std::move(spec)), client("test", endpoints(cluster)) {
        cluster.start_all();
        for (auto id : cluster.ids()) BOOST_REQUIRE(cluster.wait_ready(id, 10s));
    }
    transport::ClientReply send(const transport::ClientRequest& r, std::chrono::seconds t = 15s) {
        return client.call(r, tools::Clock::now() + t, true);
    }
    transport::TransferReply transfer(std::uint64_t from, std::uint64_t to, std::int64_t amount, txn::TxnId id) {
        const auto reply = send(transport::TransferRequest{0, id, ItemId{from}, ItemId{to}, amount});
        const auto* t = std::get_if<transport::TransferReply>(&reply);
        BOOST_REQUIRE_MESSAGE(t != nullptr, "transfer got no final answer");
        return *t;
    }
    std::int64_t balance(std::uint64_t item) {
        const auto reply = send(transport::BalanceRequest{0, ItemId{item}, false});
        const auto* b = std::get_if<transport::BalanceReply>(&reply);
        BOOST_REQUIRE(b != nullptr);
        return b->balance;
    }
    std::uint64_t leader() {
        const auto reply = send(transport::LeaderRequest{0, ShardId{1}});
        const auto* l = std::get_if<transport::LeaderReply>(&reply);
        BOOST_REQUIRE(l != nullptr);
        return l->leader.value;
    }
    std::uint64_t wait_leader() {
        std::uint64_t l = 0;
        BOOST_REQUIRE(rl::test::wait_until([&] { return (l = leader()) != 0; }, 15s));
        return l;
    }
};

// A node's own applied state, without going through the leader.
std::optional<std::int64_t> local_balance(const LocalCluster& c, std::uint64_t node, std::uint64_t item) {
    const auto r = c.rlcat(node, {"--json", "--timeout", "1000", "-c", "balance " + std::to_string(item) + " --local"});
    if (r.code != 0) return std::nullopt;
    return nlohmann::json::parse(r.output).at("balance").get<std::int64_t>();
}

}  // namespace

// The acceptance test: a stream of transfers while the leader is
// SIGKILLed. Every acknowledged transfer is in the final balances exactly
// once; a retry of an acknowledged txid after the failover gets the first
// result and moves nothing.
BOOST_AUTO_TEST_CASE(leader_sigkill_under_a_transfer_stream_loses_nothing_and_applies_nothing_twice) {
    Ledger l(ledger_spec());
    const auto old = l.wait_leader();
    constexpr int kTransfers = 120;
    std::map<std::uint64_t, std::int64_t> expect;  // item -> balance implied by acknowledged commits
    for (std::uint64_t i = 1; i <= 40; ++i) expect[i] = kInitial;
    std::atomic<int> acked{0};
    std::thread killer([&] {
        rl::test::wait_until([&] { return acked.load() >= kTransfers / 3; }, 30s);
        l.cluster.kill(old);
    });
    std::vector<std::pair<txn::TxnId, transport::TransferReply>> done;
    for (int i = 0; i < kTransfers; ++i) {
        const std::uint64_t from = 1 + i % 20, to = 21 + i % 20;
        const txn::TxnId id{l.client_id, ++l.seq};
        const auto r = l.transfer(from, to, 1, id);
        BOOST_TEST(r.committed, "transfer " << i << " aborted: " << r.reason);
        if (r.committed) {
            --expect[from];
            ++expect[to];
        }
        done.emplace_back(id, r);
        ++acked;
    }
    killer.join();
    BOOST_TEST(l.client.retries() > 0u, "the failover never made the client retry");
    const auto fresh = l.wait_leader();
    BOOST_TEST(fresh != old);
    // Retries of acknowledged txids after the failover: the first result, no
    // effect. Within the client's dedup window (the last 64 seqs) that is
    // exact; below it the answer may only be `expired`, still never a second
    // application (the balances below would show one).
    for (int k : {kTransfers - 40, kTransfers - 2, kTransfers - 1}) {
        const auto& [id, first] = done[k];
        const auto again = l.transfer(1 + k % 20, 21 + k % 20, 1, id);
        BOOST_TEST(again.committed == first.committed);
    }
    const auto oldest = l.transfer(1, 21, 1, done[0].first);
    BOOST_TEST((oldest.committed == done[0].second.committed || oldest.reason == "expired"));
    std::int64_t total = 0;
    for (const auto& [item, want] : expect) {
        const auto got = l.balance(item);
        BOOST_TEST(got == want, "item " << item << ": balance " << got << ", acknowledged transfers imply " << want);
        total += got;
    }
    BOOST_TEST(total == 40 * kInitial);
}

BOOST_AUTO_TEST_CASE(insufficient_funds_abort_and_edge_errors) {
    Ledger l(ledger_spec());
    l.wait_leader();
    const auto aborted = l.transfer(5, 6, kInitial + 1, {l.client_id, ++l.seq});
    BOOST_TEST(!aborted.committed);
    BOOST_TEST(aborted.reason == "insufficient_funds");
    BOOST_TEST(l.balance(5) == kInitial);
    for (auto [from, to, amount, code] : {std::tuple{5, 5, 1, "bad_request"}, std::tuple{5, 6, 0, "bad_request"},
                                          std::tuple{5, 6, -3, "bad_request"}, std::tuple{5, 100000, 1, "unknown_item"}}) {
        const auto reply = l.send(transport::TransferRequest{0, {l.client_id, ++l.seq}, ItemId{std::uint64_t(from)},
                                                             ItemId{std::uint64_t(to)}, amount});
        const auto* e = std::get_if<transport::ErrorReply>(&reply);
        BOOST_REQUIRE(e != nullptr);
        BOOST_TEST(e->code == code);
    }
}

BOOST_AUTO_TEST_CASE(a_restarted_follower_catches_up_from_its_wal_and_the_leader) {
    Ledger l(ledger_spec());
    const auto leader = l.wait_leader();
    const std::uint64_t follower = leader == 1 ? 2 : 1;
    for (int i = 0; i < 10; ++i) BOOST_REQUIRE(l.transfer(1, 2, 1, {l.client_id, ++l.seq}).committed);
    l.cluster.kill(follower);
    for (int i = 0; i < 10; ++i) BOOST_REQUIRE(l.transfer(3, 4, 1, {l.client_id, ++l.seq}).committed);
    l.cluster.start(follower);
    BOOST_TEST(rl::test::wait_until(
        [&] {
            return local_balance(l.cluster, follower, 2) == std::optional<std::int64_t>(kInitial + 10) &&
                   local_balance(l.cluster, follower, 4) == std::optional<std::int64_t>(kInitial + 10);
        },
        15s));
}

BOOST_AUTO_TEST_CASE(a_lagging_follower_catches_up_by_snapshot) {
    Ledger l(ledger_spec("snapshot_after_entries = 20\n"));
    const auto leader = l.wait_leader();
    const std::uint64_t follower = leader == 3 ? 2 : 3;
    l.cluster.kill(follower);
    // Items 41..70 each pay twice to items 71..100.
    for (int i = 0; i < 60; ++i) {
        BOOST_REQUIRE(l.transfer(41 + i % 30, 71 + i % 30, 1, {l.client_id, ++l.seq}).committed);
    }
    BOOST_TEST(l.cluster.wait_event(leader, "wal_compacted", {}, 5s).has_value());
    const auto from = l.cluster.log_lines(follower);
    l.cluster.start(follower);
    BOOST_TEST(l.cluster.wait_event(follower, "snapshot_installed", {}, 15s, from).has_value());
    BOOST_TEST(rl::test::wait_until(
        [&] {
            return local_balance(l.cluster, follower, 71) == std::optional<std::int64_t>(kInitial + 2) &&
                   local_balance(l.cluster, follower, 41) == std::optional<std::int64_t>(kInitial - 2);
        },
        15s));
}

BOOST_AUTO_TEST_CASE(a_shard_without_a_majority_answers_unavailable_with_a_hint) {
    ClusterSpec spec = ledger_spec();
    LocalCluster c(spec);
    c.start(1);
    BOOST_REQUIRE(c.wait_ready(1, 10s));
    const auto r = c.rlcat(1, {"--json", "--timeout", "1500", "-c", "transfer 1 2 1"}, 20s);
    BOOST_TEST(r.code == 1);
    const auto j = nlohmann::json::parse(r.output);
    BOOST_TEST(!j.at("ok").get<bool>());
    BOOST_TEST((j.at("error") == "unavailable" || j.at("error") == "timeout"));
    BOOST_TEST(j.contains("leader_hint"));
}

namespace {

std::filesystem::path first_segment(const LocalCluster& c, std::uint64_t node) {
    for (const auto& e : std::filesystem::directory_iterator(c.dir() / "data" / ("node-" + std::to_string(node)))) {
        if (e.path().filename().string().rfind("wal-", 0) == 0) return e.path();
    }
    return {};
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_corrupt_wal_refuses_to_start_naming_file_and_offset) {
    Ledger l(ledger_spec());
    l.wait_leader();
    for (int i = 0; i < 20; ++i) BOOST_REQUIRE(l.transfer(81 + i % 10, 91 + i % 10, 1, {l.client_id, ++l.seq}).committed);
    l.cluster.signal(1, SIGTERM);
    BOOST_REQUIRE(l.cluster.process(1)->wait(5s).has_value());
    const auto seg = first_segment(l.cluster, 1);
    BOOST_REQUIRE(!seg.empty());
    const auto size = std::filesystem::file_size(seg);
    BOOST_REQUIRE(size > 200);
    {
        std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size / 2));
        char ch = 0;
        f.read(&ch, 1);
        f.seekp(static_cast<std::streamoff>(size / 2));
        ch = static_cast<char>(ch ^ 0x5A);
        f.write(&ch, 1);
    }
    const auto r = rl::test::run_command({rl::test::rlnode_path().string(), "--config", l.cluster.ini().string(),
                                          "--id", "1"},
                                         10s);
    BOOST_TEST(r.code == 1);
    BOOST_TEST(r.output.find(seg.filename().string()) != std::string::npos, r.output);
    BOOST_TEST(r.output.find("offset") != std::string::npos, r.output);
}

BOOST_AUTO_TEST_CASE(a_torn_wal_tail_is_cut_logged_and_the_node_rejoins) {
    Ledger l(ledger_spec());
    l.wait_leader();
    for (int i = 0; i < 5; ++i) BOOST_REQUIRE(l.transfer(11, 12, 1, {l.client_id, ++l.seq}).committed);
    l.cluster.kill(2);
    // A crash in the middle of a write leaves the start of a record the
    // disk never finished: a length promising more bytes than follow.
    const auto seg = first_segment(l.cluster, 2);
    std::ofstream(seg, std::ios::binary | std::ios::app) << std::string("\x00\x00\x00\x40\x12\x34\x56", 7);
    const auto from = l.cluster.log_lines(2);
    l.cluster.start(2);
    BOOST_TEST(l.cluster.wait_event(2, "wal_torn_tail", {}, 10s, from).has_value());
    BOOST_TEST(rl::test::wait_until(
        [&] { return local_balance(l.cluster, 2, 12) == std::optional<std::int64_t>(kInitial + 5); }, 15s));
}

// A follower that comes back with less than it acknowledged (fsync=never
// and a crash, or a damaged disk: here its last WAL record is cut) is
// noticed by the leader and brought back up to date.
BOOST_AUTO_TEST_CASE(a_follower_that_lost_acknowledged_entries_is_repaired) {
    Ledger l(ledger_spec());
    const auto leader = l.wait_leader();
    const std::uint64_t follower = leader == 1 ? 2 : 1;
    for (int i = 0; i < 5; ++i) BOOST_REQUIRE(l.transfer(13, 14, 1, {l.client_id, ++l.seq}).committed);
    l.cluster.kill(follower);
    const auto seg = first_segment(l.cluster, follower);
    std::filesystem::resize_file(seg, std::filesystem::file_size(seg) - 3);
    const auto from = l.cluster.log_lines(leader);
    l.cluster.start(follower);
    BOOST_TEST(l.cluster.wait_event(leader, "follower_regressed", {{"peer", std::to_string(follower)}}, 10s, from)
                   .has_value());
    BOOST_TEST(rl::test::wait_until(
        [&] { return local_balance(l.cluster, follower, 14) == std::optional<std::int64_t>(kInitial + 5); }, 15s));
}

// A node whose disk is full (here: a file-size limit on its process) can no
// longer persist: it reports it, stays up and answers, and the other two
// keep the shard committing.
BOOST_AUTO_TEST_CASE(a_node_with_a_full_disk_keeps_answering_and_the_shard_keeps_committing) {
    ClusterSpec spec = ledger_spec();
    spec.file_bytes_max[3] = 24 * 1024;
    Ledger l(spec);
    l.wait_leader();
    // Enough log entries to push node 3's WAL segment past its limit; money
    // goes back and forth between items 15..24 and 25..34, netting zero.
    for (int i = 0; i < 400; ++i) {
        const std::uint64_t a = 15 + i % 10, b = 25 + i % 10;
        const bool forth = (i / 10) % 2 == 0;
        BOOST_REQUIRE(l.transfer(forth ? a : b, forth ? b : a, 1, {l.client_id, ++l.seq}).committed);
    }
    BOOST_TEST(l.cluster.wait_event(3, "wal_io_error", {}, 10s).has_value());
    BOOST_TEST(l.cluster.running(3));
    BOOST_TEST(l.cluster.rlcat(3, {"-c", "ping"}).code == 0);
    BOOST_TEST(l.cluster.rlcat(3, {"-c", "status"}).code == 0);
    BOOST_TEST(l.transfer(15, 25, 1, {l.client_id, ++l.seq}).committed);
    BOOST_TEST(l.balance(25) == kInitial + 1);
}

// rlcat itself rides out a failover: sent right after the leader dies, the
// transfer is retried (same txid) until a new leader commits it.
BOOST_AUTO_TEST_CASE(rlcat_retries_a_transfer_across_a_leader_change) {
    Ledger l(ledger_spec());
    const auto old = l.wait_leader();
    l.cluster.kill(old);
    const auto r = rl::test::run_command({rl::test::rlcat_path().string(), "--config", l.cluster.ini().string(), "-n",
                                          std::to_string(old), "--json", "--timeout", "10000", "-c",
                                          "transfer 35 36 2"},
                                         20s);
    BOOST_TEST(r.code == 0, r.output);
    const auto j = nlohmann::json::parse(r.output, nullptr, false);
    BOOST_REQUIRE(!j.is_discarded());
    BOOST_TEST(j.at("outcome").get<std::string>() == "committed");
    BOOST_TEST(l.balance(36) == kInitial + 2);
}
