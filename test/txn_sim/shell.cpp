// rlnode's turn (node/node.cpp flush() and persist()), replayed against the
// WAL model with fsync=always: persist (durable epoch, truncation, snapshot
// install, appended entries, compaction), sync, persisted(), then send and
// reply. Crashes can strike between those steps.
#include "sim.hpp"

#include "describe_txn.hpp"

#include <sstream>

namespace rl::txn::sim {
namespace {

std::string who(NodeId id) { return "n" + std::to_string(id.value); }

}  // namespace

// As rlnode: persisted() can commit, and committing can answer or send
// more, so a few rounds drain it; anything left waits for the next turn.
void Sim::flush(Node& n) {
    for (int round = 0; round < 4; ++round) {
        if (!flush_round(n)) return;
    }
}

// One round; false when the node crashed or had nothing more to say.
bool Sim::flush_round(Node& n) {
    ReplicaOutput out = n.replica->take_output();
    if (config_.trace) trace_output(n, out);
    if (chance(faults_.crash_before_persist)) {
        crash(n.id);
        return false;
    }
    persist(n, out);
    n.shadow_current = true;
    if (chance(faults_.crash_before_sync)) {
        crash(n.id);
        return false;
    }
    sync(n);
    n.replica->persisted(n.wal.last_index());
    observe(n);
    if (chance(faults_.crash_after_sync)) {
        crash(n.id);
        return false;
    }
    const bool more = !out.election_messages.empty() || !out.txn_messages.empty() || !out.replies.empty();
    send_all(n, out);
    for (auto& [handle, result] : out.replies) on_reply(handle, result);
    return more;
}

// The order of Node::persist(). install() and compact() sync what is
// buffered before them, like txn::Wal, so a crash after them keeps it.
void Sim::persist(Node& n, const ReplicaOutput& out) {
    if (out.durable) n.wal.save_durable(*out.durable);
    if (out.truncate_after) {
        n.wal.truncate_after(*out.truncate_after);
        n.shadow.erase(n.shadow.upper_bound(out.truncate_after->value), n.shadow.end());
    }
    if (out.install) {
        check_dropped(n, n.wal.install(*out.install), "a snapshot install");
        n.shadow.clear();
        n.shadow_base = out.install->last_index;
        ++stats_.snapshots_installed;
    }
    for (const auto& e : out.appended) {
        n.wal.append(e);
        n.shadow.insert_or_assign(e.index.value, e);
    }
    if (out.compact) n.wal.compact(*out.compact);
}

void Sim::sync(Node& n) {
    check_dropped(n, n.wal.sync(), "a truncation");
    const Epoch e = n.wal.disk().durable.epoch;
    Epoch& max = max_epoch_[n.id.value - 1];
    if (e < max) fail("n" + std::to_string(n.id.value) + " durable epoch decreased");
    max = e;
}

// A committed entry stays on a majority of disks (docs/design.md section 6: it survives
// any minority failure). A disk may drop its copy only while a majority
// keeps one; with strict_durability not even then, since a crash in the
// window before the copy is rewritten would leave one copy fewer.
void Sim::check_dropped(const Node& n, const std::vector<LogEntry>& dropped, const char* how) {
    for (const auto& e : dropped) {
        if (e.index > oracle_.size() || oracle_.at(e.index).epoch != e.epoch) continue;
        if (n.wal.disk().snapshot_index() >= e.index) continue;  // folded into the snapshot
        ++stats_.committed_copies_dropped;
        const std::size_t copies = durable_copies(e);
        if (copies > config_.nodes / 2 && !config_.strict_durability) continue;
        fail(who(n.id) + " dropped committed entry " + std::to_string(e.index.value) + " (epoch " +
             std::to_string(e.epoch.value) + ") from its disk in " + how + "; " + std::to_string(copies) +
             " durable copies remain");
    }
}

void Sim::send_all(Node& n, ReplicaOutput& out) {
    for (auto& m : out.election_messages) {
        Mail mail{std::move(m.msg)};
        check_sent(n, mail);
        send(n.id, m.to, std::move(mail));
    }
    for (auto& m : out.txn_messages) {
        Mail mail{std::move(m.msg)};
        check_sent(n, mail);
        send(n.id, m.to, std::move(mail));
    }
}

void Sim::trace_output(const Node& n, const ReplicaOutput& out) {
    const std::string who = "n" + std::to_string(n.id.value) + " ";
    for (const auto& ev : out.election_events) {
        std::ostringstream os;
        os << who << ev;
        trace(os.str());
    }
    for (const auto& ev : out.log_events) trace(who + describe(ev));
    if (out.durable) {
        trace(who + "persist epoch=" + std::to_string(out.durable->epoch.value) +
              " promised=" + std::to_string(out.durable->promised.value));
    }
    if (out.truncate_after) trace(who + "truncate after " + std::to_string(out.truncate_after->value));
    if (out.install) trace(who + "install snapshot " + std::to_string(out.install->last_index.value));
    if (!out.appended.empty()) {
        trace(who + "append " + std::to_string(out.appended.front().index.value) + ".." +
              std::to_string(out.appended.back().index.value));
    }
    if (out.compact) trace(who + "compact through " + std::to_string(out.compact->last_index.value));
}

// After a restart the log is what the disk held.
void Sim::rebuild_shadow(Node& n) {
    n.shadow.clear();
    for (const auto& e : n.wal.disk().entries) n.shadow.emplace(e.index.value, e);
    n.shadow_base = n.wal.disk().snapshot_index();
    n.shadow_current = true;
    n.learned = n.replica->commit_index();
    n.applied_seen = LogIndex{};
}

}  // namespace rl::txn::sim
