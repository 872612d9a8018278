// The node's turn, txn::Shell (docs/design.md section 6), stepped by hand on
// a one-node shard over the real WAL on a SimStorage disk: persist before
// send and reply, a failing disk retried from where it stopped, and the
// bound on what waits for the disk (wal_backlog_bytes_max).
#define BOOST_TEST_MODULE shell
#include <boost/test/unit_test.hpp>

#include "test/sim_common/sim_storage.hpp"
#include "txn/shell.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

using namespace rl;
using namespace rl::txn;

namespace {

constexpr std::uint64_t kBacklogBytes = 8192;

config::Config one_node_config() {
    return config::Config::parse("[cluster]\nname = t\ninitial_balance = 100\nframe_bytes_max = 8192\n"
                                 "dedup_window = 4\ndedup_clients_max = 4\nwal_backlog_bytes_max = " +
                                     std::to_string(kBacklogBytes) +
                                     "\n[shard.1]\nitems = 1-10\nnodes = 1\n[node.1]\naddress = 127.0.0.1:7001\n",
                                 "/t/t.ini");
}

// The host side: what the shell sent and answered, in order.
struct Recorder : ShellHost {
    std::map<std::uint64_t, OpResult> replies;
    std::uint64_t wal_failures = 0;
    std::uint64_t syncs = 0;

    void send(NodeId, const election::ElectionMessage&) override {}
    void send(NodeId, const TxnMessage&) override {}
    void reply(std::uint64_t handle, const OpResult& result) override { replies.insert_or_assign(handle, result); }
    void report(const ReplicaOutput&) override {}
    void wal_failed(const WalIoError&, const ShellStats&) override { ++wal_failures; }
    void synced(const std::vector<WalOp>&) override { ++syncs; }
    // With `background`, fdatasyncs wait in `in_flight` until the test
    // finishes them, as io_uring's do in rlnode.
    std::optional<std::error_code> start_sync(StorageFile& file) override {
        if (!background) return file.sync_data();
        BOOST_REQUIRE(in_flight == nullptr);  // one at a time
        in_flight = &file;
        return std::nullopt;
    }
    bool background = false;
    StorageFile* in_flight = nullptr;
};

struct OneNode {
    config::Config config = one_node_config();
    simcommon::SimStorage disk;
    Recorder host;
    std::optional<Wal> wal;
    std::optional<Replica> replica;
    std::optional<Shell> shell;
    std::uint64_t next_handle = 1;

    OneNode() {
        Recovered rec;
        wal.emplace(Wal::open(disk, config.node_dir(NodeId{1}), config::FsyncMode::always, WalLimits{}, rec));
        replica.emplace(replica_params(config, NodeId{1}, 7), RecoveredState{rec.durable, rec.snapshot, rec.entries});
        shell.emplace(*replica, *wal, config.cluster().limits.wal_backlog_bytes_max, host);
        shell->flush();  // the no-op, then the Genesis, commit on this node's own disk
        shell->flush();
        BOOST_REQUIRE(replica->state().created());
    }

    std::uint64_t submit(const ClientOp& op) {
        const std::uint64_t h = next_handle++;
        shell->submit(h, op);
        shell->flush();
        return h;
    }
    template <class T>
    const T* reply(std::uint64_t handle) const {
        auto it = host.replies.find(handle);
        return it == host.replies.end() ? nullptr : std::get_if<T>(&it->second);
    }
    std::uint64_t open_session() {
        const std::uint64_t h = submit(SessionOp{ItemId{1}});
        BOOST_REQUIRE(reply<SessionDone>(h) != nullptr);
        return reply<SessionDone>(h)->session;
    }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_transfer_is_answered_only_after_its_entry_is_synced) {
    OneNode n;
    const std::uint64_t session = n.open_session();
    const std::uint64_t syncs = n.host.syncs;
    const std::uint64_t h = n.submit(TransferOp{TxnId{session, 1}, ItemId{1}, ItemId{2}, 5});
    BOOST_TEST_REQUIRE(n.reply<TransferDone>(h) != nullptr);
    BOOST_TEST((n.reply<TransferDone>(h)->outcome == Outcome::committed));
    BOOST_TEST(n.host.syncs > syncs);
    BOOST_TEST(n.replica->state().balance(ItemId{1}) == 95);
}

BOOST_AUTO_TEST_CASE(a_failing_disk_holds_the_turn_and_a_retry_goes_on_from_where_it_stopped) {
    OneNode n;
    const std::uint64_t session = n.open_session();
    n.disk.fail_next(simcommon::StorageCall::sync, 3, std::errc::io_error);
    const std::uint64_t h = n.submit(TransferOp{TxnId{session, 1}, ItemId{1}, ItemId{2}, 5});
    BOOST_TEST(n.reply<TransferDone>(h) == nullptr);  // nothing answered before it is durable
    BOOST_TEST(n.host.wal_failures == 1u);
    for (int turn = 0; turn < 4 && n.reply<TransferDone>(h) == nullptr; ++turn) n.shell->flush();
    BOOST_TEST_REQUIRE(n.reply<TransferDone>(h) != nullptr);
    BOOST_TEST((n.reply<TransferDone>(h)->outcome == Outcome::committed));
    BOOST_TEST(n.shell->backlog_bytes() == 0u);
}

// With the fdatasync in the background the node keeps taking work: what
// comes in meanwhile waits for the next sync, which starts as the first
// one ends and covers all of it; nothing is answered before its sync.
BOOST_AUTO_TEST_CASE(work_that_arrives_during_a_background_sync_waits_for_the_next_one) {
    OneNode n;
    const std::uint64_t session = n.open_session();
    n.host.background = true;
    const std::uint64_t first = n.submit(TransferOp{TxnId{session, 1}, ItemId{1}, ItemId{2}, 5});
    BOOST_TEST_REQUIRE(n.shell->syncing());
    BOOST_TEST(n.reply<TransferDone>(first) == nullptr);
    std::vector<std::uint64_t> later;
    for (std::uint64_t seq = 2; seq <= 4; ++seq) {
        later.push_back(n.submit(TransferOp{TxnId{session, seq}, ItemId{1}, ItemId{2}, 1}));
    }
    BOOST_TEST(n.shell->unsynced().size() == 4u);  // one in flight, three in the backlog
    BOOST_TEST(n.replica->state().balance(ItemId{1}) == 100);

    StorageFile* file = std::exchange(n.host.in_flight, nullptr);
    n.shell->sync_done(file->sync_data());
    BOOST_TEST_REQUIRE(n.reply<TransferDone>(first) != nullptr);
    BOOST_TEST((n.reply<TransferDone>(first)->outcome == Outcome::committed));
    for (std::uint64_t h : later) BOOST_TEST(n.reply<TransferDone>(h) == nullptr);
    BOOST_TEST_REQUIRE(n.shell->syncing());  // the next sync took the three at once
    BOOST_TEST(n.shell->unsynced().size() == 3u);

    file = std::exchange(n.host.in_flight, nullptr);
    n.shell->sync_done(file->sync_data());
    for (std::uint64_t h : later) {
        BOOST_TEST_REQUIRE(n.reply<TransferDone>(h) != nullptr);
        BOOST_TEST((n.reply<TransferDone>(h)->outcome == Outcome::committed));
    }
    BOOST_TEST(!n.shell->syncing());
    BOOST_TEST(n.shell->backlog_bytes() == 0u);
    BOOST_TEST(n.replica->state().balance(ItemId{1}) == 92);
}

// A background fdatasync that fails is a failed sync like any other: the
// batch is written again whole and synced by a later turn.
BOOST_AUTO_TEST_CASE(a_failed_background_sync_is_retried_and_nothing_is_answered_before) {
    OneNode n;
    const std::uint64_t session = n.open_session();
    n.host.background = true;
    const std::uint64_t h = n.submit(TransferOp{TxnId{session, 1}, ItemId{1}, ItemId{2}, 5});
    BOOST_TEST_REQUIRE(n.shell->syncing());
    n.host.in_flight = nullptr;
    n.shell->sync_done(std::make_error_code(std::errc::io_error));
    BOOST_TEST(n.host.wal_failures == 1u);
    BOOST_TEST(!n.shell->syncing());
    BOOST_TEST(n.reply<TransferDone>(h) == nullptr);
    n.host.background = false;
    for (int turn = 0; turn < 4 && n.reply<TransferDone>(h) == nullptr; ++turn) n.shell->flush();
    BOOST_TEST_REQUIRE(n.reply<TransferDone>(h) != nullptr);
    BOOST_TEST((n.reply<TransferDone>(h)->outcome == Outcome::committed));
    BOOST_TEST(n.replica->state().balance(ItemId{1}) == 95);
}

// While the disk fails, the WAL operations wait in the backlog; past
// wal_backlog_bytes_max the node takes no new work, and once the disk
// recovers everything that waited is written, in order, and answered.
BOOST_AUTO_TEST_CASE(the_backlog_stops_new_work_at_its_bound_and_drains_when_the_disk_recovers) {
    OneNode n;
    const std::uint64_t session = n.open_session();
    n.disk.fail_next(simcommon::StorageCall::write, 1'000'000, std::errc::no_space_on_device);
    std::vector<std::uint64_t> accepted;
    std::optional<std::uint64_t> refused;
    for (std::uint64_t seq = 1; seq <= 1000 && !refused; ++seq) {
        const std::uint64_t h = n.submit(TransferOp{TxnId{session, seq}, ItemId{1}, ItemId{2}, 1});
        if (const auto* f = n.reply<OpFailed>(h)) {
            BOOST_TEST(f->code == "unavailable");
            BOOST_TEST(f->message.find("disk") != std::string::npos);
            refused = h;
        } else {
            accepted.push_back(h);
        }
    }
    BOOST_TEST_REQUIRE(refused.has_value());
    BOOST_TEST(n.shell->overloaded());
    BOOST_TEST(n.shell->backlog_bytes() > kBacklogBytes);
    BOOST_TEST(n.shell->backlog_bytes() < 2 * kBacklogBytes);  // one turn past the bound at most
    BOOST_TEST(n.shell->stats().refused_overloaded == 1u);
    for (std::uint64_t h : accepted) BOOST_TEST(n.reply<TransferDone>(h) == nullptr);

    n.disk.clear_faults();
    n.shell->flush();
    BOOST_TEST(!n.shell->overloaded());
    BOOST_TEST(n.shell->backlog_bytes() == 0u);
    for (std::uint64_t h : accepted) {
        BOOST_TEST_REQUIRE(n.reply<TransferDone>(h) != nullptr);
        BOOST_TEST((n.reply<TransferDone>(h)->outcome == Outcome::committed));
    }
    BOOST_TEST(n.replica->state().balance(ItemId{1}) == 100 - static_cast<std::int64_t>(accepted.size()));
}

// A snapshot from a peer that this node cannot take (unreadable, of another
// shard, or whose envelope disagrees with its state) is refused and counted;
// the node keeps its state and goes on serving.
BOOST_AUTO_TEST_CASE(a_snapshot_this_node_cannot_take_is_refused_counted_and_survived) {
    OneNode n;
    const std::uint64_t session = n.open_session();
    const auto before = n.replica->state().snapshot();
    ShardState other_shard(ShardId{2});
    const std::vector<std::vector<std::uint8_t>> bad = {
        {1, 2, 3, 4},                         // unreadable
        other_shard.snapshot(),               // another shard's state
        n.replica->state().snapshot(),        // a real state under an envelope that claims index 1000
    };
    for (const auto& bytes : bad) {
        const Snapshot s{LogIndex{1000}, n.replica->epoch(), bytes};
        n.shell->step(NodeId{2}, TxnMessage{InstallSnapshot{n.replica->epoch(), s, LogIndex{1000}}});
        n.shell->flush();
    }
    BOOST_TEST(n.replica->snapshots_refused() == bad.size());
    BOOST_TEST((n.replica->state().snapshot() == before));
    const std::uint64_t h = n.submit(TransferOp{TxnId{session, 1}, ItemId{1}, ItemId{2}, 5});
    BOOST_TEST_REQUIRE(n.reply<TransferDone>(h) != nullptr);
    BOOST_TEST((n.reply<TransferDone>(h)->outcome == Outcome::committed));
}

// Forwarded operations pass the same epoch gate as every peer message: a
// member's higher epoch is adopted (and saved before anything is sent); a
// node of another shard, whose epochs mean nothing here, moves nothing.
BOOST_AUTO_TEST_CASE(a_forward_from_a_member_with_a_higher_epoch_passes_the_epoch_gate) {
    const auto config = config::Config::parse(
        "[cluster]\nname = t\n[shard.1]\nitems = 1-10\nnodes = 1,2,3\n[shard.2]\nitems = 11-20\nnodes = 4,5,6\n"
        "[node.1]\naddress = 127.0.0.1:7001\n[node.2]\naddress = 127.0.0.1:7002\n[node.3]\naddress = 127.0.0.1:7003\n"
        "[node.4]\naddress = 127.0.0.1:7004\n[node.5]\naddress = 127.0.0.1:7005\n[node.6]\naddress = 127.0.0.1:7006\n",
        "/t/t.ini");
    Replica r(replica_params(config, NodeId{1}, 7), RecoveredState{});
    (void)r.take_output();
    BOOST_TEST(r.epoch() == Epoch{0});

    r.step(NodeId{4}, TxnMessage{ForwardRequest{Epoch{9}, 1, 1, LeaderOp{}}});
    BOOST_TEST(r.epoch() == Epoch{0});  // another shard's epoch

    r.step(NodeId{2}, TxnMessage{ForwardRequest{Epoch{5}, 2, 1, LeaderOp{}}});
    BOOST_TEST(r.epoch() == Epoch{5});
    const ReplicaOutput out = r.take_output();
    BOOST_TEST_REQUIRE(out.durable.has_value());
    BOOST_TEST(out.durable->epoch == Epoch{5});
    // Both were answered, the member's with the adopted epoch.
    std::size_t answered = 0;
    for (const auto& m : out.txn_messages) {
        if (const auto* f = std::get_if<ForwardReply>(&m.msg)) {
            ++answered;
            if (m.to == NodeId{2}) BOOST_TEST(f->epoch == Epoch{5});
        }
    }
    BOOST_TEST(answered == 2u);
}
