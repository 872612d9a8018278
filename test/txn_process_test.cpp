// The replicated ledger with real rlnode processes: acknowledged transfers
// survive a leader SIGKILL, retries are applied once (also from a session
// the shard has evicted), a restarted or lagging follower catches up (from
// its WAL, or by snapshot), a rolling restart under load leaves identical
// replicas, and a damaged WAL refuses to start while a torn tail is cut and
// logged. Transfers run in client sessions (docs/design.md section 6).
#define BOOST_TEST_MODULE txn_process
#include "test/support/cluster.hpp"
#include "test/support/status_probe.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"
#include "txn/wal.hpp"

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iterator>
#include <stop_token>
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
    std::uint64_t session = 0;  // opened with shard 1 at start
    std::uint64_t seq = 0;      // the last seq used in `session`

    explicit Ledger(ClusterSpec spec) : cluster(std::move(spec)), client("test", endpoints(cluster)) {
        cluster.start_all();
        for (auto id : cluster.ids()) BOOST_REQUIRE(cluster.wait_ready(id, 10s));
        session = open_session(1);
    }
    transport::ClientReply send(const transport::ClientRequest& r, std::chrono::seconds t = 15s) {
        return client.call(r, tools::Clock::now() + t, true);
    }
    // A new session with `item`'s shard.
    std::uint64_t open_session(std::uint64_t item) {
        const auto reply = send(transport::SessionRequest{0, ItemId{item}});
        const auto* s = std::get_if<transport::SessionReply>(&reply);
        BOOST_REQUIRE_MESSAGE(s != nullptr, "no session: " << tools::reply_text(reply));
        return s->session;
    }
    // The id of a new transfer in `session`.
    txn::TxnId next() { return {session, ++seq}; }
    transport::TransferReply transfer(std::uint64_t from, std::uint64_t to, std::int64_t amount, txn::TxnId id) {
        const auto reply = send(transport::TransferRequest{0, id, ItemId{from}, ItemId{to}, amount});
        const auto* t = std::get_if<transport::TransferReply>(&reply);
        BOOST_REQUIRE_MESSAGE(t != nullptr, "transfer got no final answer: " << tools::reply_text(reply));
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
    std::atomic<int> acked_at_kill{kTransfers};
    std::thread killer([&] {
        rl::test::wait_until([&] { return acked.load() >= kTransfers / 3; }, 30s);
        acked_at_kill = acked.load();
        l.cluster.kill(old);
    });
    std::vector<std::pair<txn::TxnId, transport::TransferReply>> done;
    for (int i = 0; i < kTransfers; ++i) {
        const std::uint64_t from = 1 + i % 20, to = 21 + i % 20;
        const txn::TxnId id = l.next();
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
    // The leader died mid-stream. A client on a survivor may ride it out
    // without a retry: its node passes forwarded transfers on to the new
    // leader (docs/design.md section 6.5).
    BOOST_TEST(acked_at_kill.load() < kTransfers, "the stream ended before the kill");
    const auto fresh = l.wait_leader();
    BOOST_TEST(fresh != old);
    // Retries of acknowledged txids after the failover: the first result, no
    // effect. Within the session's dedup window (the last 64 seqs) that is
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
    const auto aborted = l.transfer(5, 6, kInitial + 1, l.next());
    BOOST_TEST(!aborted.committed);
    BOOST_TEST(aborted.reason == "insufficient_funds");
    BOOST_TEST(l.balance(5) == kInitial);
    for (auto [from, to, amount, code] : {std::tuple{5, 5, 1, "bad_request"}, std::tuple{5, 6, 0, "bad_request"},
                                          std::tuple{5, 6, -3, "bad_request"}, std::tuple{5, 100000, 1, "unknown_item"}}) {
        const auto reply = l.send(transport::TransferRequest{0, l.next(), ItemId{std::uint64_t(from)},
                                                             ItemId{std::uint64_t(to)}, amount});
        const auto* e = std::get_if<transport::ErrorReply>(&reply);
        BOOST_REQUIRE(e != nullptr);
        BOOST_TEST(e->code == code);
    }
    // A transfer's session must be of its FROM item's shard (docs/design.md
    // section 6): one of shard 2 cannot move money of shard 1.
    const auto reply = l.send(transport::TransferRequest{0, {txn::session_id(ShardId{2}, LogIndex{1}), 1}, ItemId{5},
                                                         ItemId{6}, 1});
    const auto* e = std::get_if<transport::ErrorReply>(&reply);
    BOOST_REQUIRE_MESSAGE(e != nullptr, tools::reply_text(reply));
    BOOST_TEST(e->code == "bad_request");
    BOOST_TEST(l.balance(5) == kInitial);
}

BOOST_AUTO_TEST_CASE(a_restarted_follower_catches_up_from_its_wal_and_the_leader) {
    Ledger l(ledger_spec());
    const auto leader = l.wait_leader();
    const std::uint64_t follower = leader == 1 ? 2 : 1;
    for (int i = 0; i < 10; ++i) BOOST_REQUIRE(l.transfer(1, 2, 1, l.next()).committed);
    l.cluster.kill(follower);
    for (int i = 0; i < 10; ++i) BOOST_REQUIRE(l.transfer(3, 4, 1, l.next()).committed);
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
        BOOST_REQUIRE(l.transfer(41 + i % 30, 71 + i % 30, 1, l.next()).committed);
    }
    BOOST_TEST(l.cluster.wait_event(leader, "snapshot_taken", {}, 5s).has_value());
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

// Where the segment's batches end: rlnode reserves space ahead of them,
// which reads as zeros (docs/design.md section 6.2).
std::uint64_t batches_end(const std::filesystem::path& seg) {
    std::ifstream in(seg, std::ios::binary);
    const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto be32 = [&](std::uint64_t at) {
        return std::uint32_t{bytes[at]} << 24 | std::uint32_t{bytes[at + 1]} << 16 | std::uint32_t{bytes[at + 2]} << 8 |
               std::uint32_t{bytes[at + 3]};
    };
    std::uint64_t at = 0;
    while (at + rl::txn::kWalBatchHeaderBytes <= bytes.size() && be32(at) == rl::txn::kWalBatchMarker) {
        at += rl::txn::kWalBatchHeaderBytes + be32(at + 4);
    }
    return at;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_corrupt_wal_refuses_to_start_naming_file_and_offset) {
    Ledger l(ledger_spec());
    l.wait_leader();
    for (int i = 0; i < 20; ++i) BOOST_REQUIRE(l.transfer(81 + i % 10, 91 + i % 10, 1, l.next()).committed);
    l.cluster.signal(1, SIGTERM);
    BOOST_REQUIRE(l.cluster.process(1)->wait(5s).has_value());
    const auto seg = first_segment(l.cluster, 1);
    BOOST_REQUIRE(!seg.empty());
    const auto size = batches_end(seg);
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
    for (int i = 0; i < 5; ++i) BOOST_REQUIRE(l.transfer(11, 12, 1, l.next()).committed);
    l.cluster.kill(2);
    // A crash in the middle of a write leaves the start of a record the
    // disk never finished: a length promising more bytes than follow.
    const auto seg = first_segment(l.cluster, 2);
    {
        std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(batches_end(seg)));
        f.write("\x00\x00\x00\x40\x12\x34\x56", 7);
    }
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
    for (int i = 0; i < 5; ++i) BOOST_REQUIRE(l.transfer(13, 14, 1, l.next()).committed);
    // The follower must hold (and so have acknowledged) the last entries
    // before it loses them; a majority can commit without it.
    BOOST_REQUIRE(rl::test::wait_until(
        [&] { return local_balance(l.cluster, follower, 14) == std::optional<std::int64_t>(kInitial + 5); }, 10s));
    l.cluster.kill(follower);
    const auto seg = first_segment(l.cluster, follower);
    std::filesystem::resize_file(seg, batches_end(seg) - 3);
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
        BOOST_REQUIRE(l.transfer(forth ? a : b, forth ? b : a, 1, l.next()).committed);
    }
    BOOST_TEST(l.cluster.wait_event(3, "wal_io_error", {}, 10s).has_value());
    BOOST_TEST(l.cluster.running(3));
    BOOST_TEST(l.cluster.rlcat(3, {"-c", "ping"}).code == 0);
    BOOST_TEST(l.cluster.rlcat(3, {"-c", "status"}).code == 0);
    BOOST_TEST(l.transfer(15, 25, 1, l.next()).committed);
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

namespace {

std::vector<std::string> with_rlcat(const LocalCluster& c, std::vector<std::string> args) {
    args.insert(args.begin(), {rl::test::rlcat_path().string(), "--config", c.ini().string(), "--json"});
    return args;
}

}  // namespace

// docs/design.md section 6: a shard keeps at most dedup_clients_max sessions
// and evicts the least recently used. A retry from an evicted session is
// refused as session_expired and never applied again, however many sessions
// came since: no hole through which a forgotten client applies twice. The
// txid is sent from outside, by two separate rlcat runs.
BOOST_AUTO_TEST_CASE(a_retry_from_an_evicted_session_is_refused_and_never_applied_twice) {
    Ledger l(ledger_spec("dedup_clients_max = 4\n"));
    l.wait_leader();
    const auto opened = rl::test::run_command(with_rlcat(l.cluster, {"-c", "session 1"}), 20s);
    BOOST_REQUIRE_MESSAGE(opened.code == 0, opened.output);
    const auto session = std::to_string(nlohmann::json::parse(opened.output).at("session").get<std::uint64_t>());
    const auto send = with_rlcat(l.cluster, {"--session", session, "--seq", "1", "-c", "transfer 1 2 5"});
    const auto first = rl::test::run_command(send, 20s);
    BOOST_REQUIRE_MESSAGE(first.code == 0, first.output);
    const auto answer = nlohmann::json::parse(first.output);
    BOOST_TEST(answer.at("outcome").get<std::string>() == "committed");
    BOOST_TEST(answer.at("txid").get<std::string>() == session + ":1");
    const auto again = rl::test::run_command(send, 20s);
    BOOST_TEST(again.code == 0);
    BOOST_TEST(again.output == first.output);
    BOOST_TEST(l.balance(1) == kInitial - 5);

    // Twelve newer sessions, each used once: the table holds four.
    for (std::uint64_t k = 0; k < 12; ++k) {
        const auto other = l.open_session(50 + k);
        BOOST_REQUIRE(other != std::stoull(session));
        const auto t = l.transfer(50 + k, 70 + k, 1, {other, 1});
        BOOST_REQUIRE_MESSAGE(t.committed, "transfer in session " << k << " aborted: " << t.reason);
    }
    const auto late = rl::test::run_command(send, 20s);
    BOOST_TEST(late.code == 0, late.output);
    const auto refused = nlohmann::json::parse(late.output, nullptr, false);
    BOOST_REQUIRE_MESSAGE(!refused.is_discarded(), late.output);
    BOOST_TEST(refused.at("ok").get<bool>());
    BOOST_TEST(refused.at("outcome").get<std::string>() == "aborted");
    BOOST_TEST(refused.at("reason").get<std::string>() == "session_expired");
    BOOST_TEST(refused.at("txid").get<std::string>() == session + ":1");

    // A session this shard never opened is refused the same way.
    const auto never = l.transfer(3, 4, 1, {txn::session_id(ShardId{1}, LogIndex{1'000'000}), 1});
    BOOST_TEST(!never.committed);
    BOOST_TEST(never.reason == "session_expired");

    BOOST_TEST(l.balance(1) == kInitial - 5);
    BOOST_TEST(l.balance(2) == kInitial + 5);
    BOOST_TEST(l.balance(3) == kInitial);
    BOOST_TEST(l.balance(4) == kInitial);
    for (std::uint64_t k = 0; k < 12; ++k) {
        BOOST_TEST(l.balance(50 + k) == kInitial - 1);
        BOOST_TEST(l.balance(70 + k) == kInitial + 1);
    }
}

namespace {

using rl::test::status_of;

// `node` has applied everything the others knew committed when asked.
bool caught_up(const LocalCluster& c, std::uint64_t node, std::chrono::seconds timeout) {
    LogIndex target;
    for (auto id : c.ids()) {
        if (const auto s = status_of(c, id); s && id != node) target = std::max(target, s->commit_index);
    }
    return rl::test::wait_until(
        [&] {
            const auto s = status_of(c, node);
            return s && s->applied_index >= target;
        },
        timeout);
}

// One node's applied state as `balance ITEM --local` reads it.
struct NodeState {
    LogIndex applied;
    std::map<std::uint64_t, std::int64_t> balances;
    bool operator==(const NodeState&) const = default;
};

std::ostream& operator<<(std::ostream& os, const NodeState& s) {
    os << "applied=" << s.applied << " balances:";
    for (const auto& [item, balance] : s.balances) os << " " << item << "=" << balance;
    return os;
}

// nullopt when the node does not answer or applied more during the read.
std::optional<NodeState> local_state(const LocalCluster& c, std::uint64_t node, const std::vector<std::uint64_t>& items) {
    try {
        tools::Client client("test");
        const auto deadline = tools::Clock::now() + 5s;
        client.connect(c.endpoint(node), deadline);
        NodeState state;
        for (auto item : items) {
            const auto reply = client.call(transport::BalanceRequest{0, ItemId{item}, true}, deadline);
            const auto* b = std::get_if<transport::BalanceReply>(&reply);
            if (b == nullptr || (!state.balances.empty() && b->applied_index != state.applied)) return std::nullopt;
            state.applied = b->applied_index;
            state.balances[item] = b->balance;
        }
        return state;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

// Transfers of 1 between items 1..30 and 31..60, back and forth so no item
// runs dry, round-robin over `sessions`, from a thread of their own until
// stopped. Each is resent with its txid until it has a final answer, so
// the acknowledged transfers say exactly what the balances must be.
class Traffic {
public:
    struct Sent {
        txn::TxnId id;
        std::uint64_t from = 0, to = 0;
    };
    static constexpr std::uint64_t kItems = 60;

    Traffic(const LocalCluster& c, std::vector<std::uint64_t> sessions)
        : nodes_(endpoints(c)), sessions_(std::move(sessions)),
          thread_([this](std::stop_token stop) { run(stop); }) {}
    ~Traffic() { stop(); }

    void stop() {
        thread_.request_stop();
        if (thread_.joinable()) thread_.join();
    }
    std::uint64_t committed() const { return committed_.load(); }
    bool failed() const { return failed_.load(); }
    // Waits until `more` transfers were acknowledged; false if they stalled.
    bool flowed(std::uint64_t more) const {
        const auto target = committed() + more;
        return rl::test::wait_until([&] { return committed() >= target || failed(); }, 60s) && !failed();
    }
    // After stop():
    const std::string& error() const { return error_; }
    const std::map<std::uint64_t, std::int64_t>& expect() const { return expect_; }
    const std::vector<Sent>& sent() const { return sent_; }

private:
    void run(const std::stop_token& stop) {
        tools::RetryingClient client("test", nodes_);
        std::map<std::uint64_t, std::uint64_t> seqs;
        for (std::uint64_t item = 1; item <= kItems; ++item) expect_[item] = kInitial;
        for (std::uint64_t i = 0; !stop.stop_requested(); ++i) {
            const std::uint64_t a = 1 + i % 30, b = 31 + i % 30;
            const bool forth = (i / 30) % 2 == 0;
            const auto session = sessions_[i % sessions_.size()];
            const Sent s{{session, ++seqs[session]}, forth ? a : b, forth ? b : a};
            const auto answer = final_answer(client, s);
            if (!answer.empty()) return fail(answer);
            --expect_[s.from];
            ++expect_[s.to];
            sent_.push_back(s);
            ++committed_;
        }
    }
    // "" once committed; else what went wrong.
    static std::string final_answer(tools::RetryingClient& client, const Sent& s) {
        const transport::TransferRequest request{0, s.id, ItemId{s.from}, ItemId{s.to}, 1};
        const auto until = tools::Clock::now() + 60s;
        std::string last = "no reply";
        while (tools::Clock::now() < until) {
            try {
                const auto reply = client.call(request, std::min(until, tools::Clock::now() + 10s), true);
                if (const auto* t = std::get_if<transport::TransferReply>(&reply); t && t->committed) return "";
                last = tools::reply_text(reply);
                if (!tools::retryable(reply)) break;
            } catch (const std::exception& e) {
                last = e.what();
            }
        }
        return "transfer " + std::to_string(s.id.session) + ":" + std::to_string(s.id.seq) + " got " + last;
    }
    void fail(const std::string& what) {
        error_ = what;
        failed_ = true;
    }

    std::vector<tools::NodeEndpoint> nodes_;
    std::vector<std::uint64_t> sessions_;
    std::atomic<std::uint64_t> committed_{0};
    std::atomic<bool> failed_{false};
    std::string error_;
    std::map<std::uint64_t, std::int64_t> expect_;
    std::vector<Sent> sent_;
    std::jthread thread_;  // last: starts once everything above exists
};

std::size_t count_events(const LocalCluster& c, std::uint64_t node, const std::string& event, std::size_t from = 0) {
    const auto lines = c.log(node);
    std::size_t n = 0;
    for (std::size_t i = from; i < lines.size(); ++i) n += lines[i].get("event") == event ? 1 : 0;
    return n;
}

// Stops and restarts every node in turn while `traffic` flows, node 2 with
// `narrow`; returns the length of node 2's log before its restart.
std::size_t restart_each_node(LocalCluster& c, const Traffic& traffic, const std::filesystem::path& narrow) {
    std::size_t narrow_from = 0;
    for (std::uint64_t node : {1, 2, 3}) {
        BOOST_REQUIRE_MESSAGE(traffic.flowed(40), "transfers stalled before node " << node << " was stopped");
        c.signal(node, SIGTERM);
        BOOST_REQUIRE(c.process(node)->wait(10s).has_value());
        BOOST_REQUIRE_MESSAGE(traffic.flowed(20), "transfers stalled while node " << node << " was down");
        if (node == 2) {
            narrow_from = c.log_lines(2);
            c.start_with_ini(2, narrow);
        } else {
            c.start(node);
        }
        BOOST_REQUIRE(c.wait_ready(node, 10s));
        BOOST_REQUIRE_MESSAGE(caught_up(c, node, 30s), "node " << node << " did not catch up");
    }
    return narrow_from;
}

// Every node is up, has applied the same index and holds `expect` in items
// 1..Traffic::kItems, read on each with `balance ITEM --local`.
void expect_identical_replicas(LocalCluster& c, const std::map<std::uint64_t, std::int64_t>& expect) {
    std::vector<std::uint64_t> items;
    for (std::uint64_t item = 1; item <= Traffic::kItems; ++item) items.push_back(item);
    std::map<std::uint64_t, std::optional<NodeState>> states;
    const bool agreed = rl::test::wait_until(
        [&] {
            for (auto id : c.ids()) states[id] = local_state(c, id, items);
            return states[1] && states[1] == states[2] && states[1] == states[3];
        },
        30s);
    for (auto id : c.ids()) {
        BOOST_TEST(c.running(id), "node " << id << " is not running");
        BOOST_TEST_INFO("node " << id);
        BOOST_REQUIRE(states[id].has_value());
        BOOST_TEST_MESSAGE("node " << id << ": " << *states[id]);
        BOOST_TEST(states[id]->applied == states[1]->applied);
        BOOST_TEST((states[id]->balances == expect), "node " << id << " differs from the acknowledged transfers");
    }
    BOOST_TEST(agreed);
}

}  // namespace

// docs/design.md section 6: what applying an entry does is fixed in
// replicated state. Every node is restarted in turn under a stream of
// transfers while snapshots are taken, node 2 with an INI whose
// dedup_window differs: it warns once and follows the log, and at the end
// the three replicas are identical and hold exactly the acknowledged
// transfers.
BOOST_AUTO_TEST_CASE(a_rolling_restart_with_a_different_dedup_window_leaves_identical_replicas) {
    Ledger l(ledger_spec("snapshot_after_entries = 20\ndedup_window = 64\n"));
    l.wait_leader();
    const auto narrow = l.cluster.write_ini_copy("narrow.ini", {{"dedup_window = 64", "dedup_window = 8"}});
    const std::vector<std::uint64_t> sessions = {l.session, l.open_session(2), l.open_session(3)};
    Traffic traffic(l.cluster, sessions);
    const auto narrow_from = restart_each_node(l.cluster, traffic, narrow);
    BOOST_REQUIRE(traffic.flowed(40));
    traffic.stop();
    BOOST_REQUIRE_MESSAGE(traffic.error().empty(), traffic.error());
    BOOST_TEST_MESSAGE("transfers acknowledged: " << traffic.committed());

    // Every session did more transfers than the narrow window holds, so a
    // retry 20 seqs back is inside the replicated window only: it gets its
    // first answer whichever node leads (docs/design.md section 6).
    std::map<std::uint64_t, std::vector<Traffic::Sent>> by_session;
    for (const auto& s : traffic.sent()) by_session[s.id.session].push_back(s);
    for (auto session : sessions) BOOST_REQUIRE(by_session[session].size() > 20u);
    const auto leader = l.leader();  // often node 2: then the node with the narrow INI answers
    BOOST_TEST_MESSAGE("leader at the end: node " << leader);
    for (auto session : sessions) {
        const auto& old = by_session[session][by_session[session].size() - 21];
        const auto again = l.transfer(old.from, old.to, 1, old.id);
        BOOST_TEST(again.committed, "retry of " << old.id.session << ":" << old.id.seq << " got " << again.reason);
    }
    expect_identical_replicas(l.cluster, traffic.expect());

    const auto warned = l.cluster.wait_event(
        2, "config_differs", {{"key", "dedup_window"}, {"ini", "8"}, {"replicated", "64"}}, 5s, narrow_from);
    BOOST_REQUIRE(warned.has_value());
    BOOST_TEST(warned->get("level") == "warn");
    BOOST_TEST(count_events(l.cluster, 2, "config_differs", narrow_from) == 1u);
    BOOST_TEST(count_events(l.cluster, 1, "config_differs") == 0u);
    BOOST_TEST(count_events(l.cluster, 3, "config_differs") == 0u);
    // Snapshots were taken all along, by node 2 also under its narrow INI.
    for (auto id : l.cluster.ids()) BOOST_TEST(count_events(l.cluster, id, "snapshot_taken") >= 3u, "node " << id);
    BOOST_TEST(count_events(l.cluster, 2, "snapshot_taken", narrow_from) >= 1u);
}
