// Unit tests of the replicated log (docs/design.md section 6) stepped by hand
// (docs/design.md section 9, habit 9): one behaviour per test, named for it. A tiny in-test
// cluster plays the shell: flush() takes a node's output, writes it to a
// model disk, reports the sync with persisted(), then queues the messages;
// deliver() hands queued messages to their receivers. After every flush the
// harness checks that the disk equals the in-memory log, that no commit
// index went backwards and that committed prefixes agree.
#define BOOST_TEST_MODULE log
#include <boost/test/unit_test.hpp>

#include "config/random.hpp"
#include "txn/log.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <random>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace rl::txn {
namespace {

NodeId n(std::uint64_t id) { return NodeId{id}; }
Epoch e(std::uint64_t v) { return Epoch{v}; }
LogIndex i(std::uint64_t v) { return LogIndex{v}; }

constexpr LogLimits kLimits{.append_entries_max = 1024,
                            .inflight_max = 16,
                            .heartbeat_ticks = 5,
                            .retransmit_ticks = 20,
                            .adopt_timeout_ticks = 60};

LogLimits limits_with(std::uint32_t append_entries_max, std::uint32_t inflight_max) {
    LogLimits l = kLimits;
    l.append_entries_max = append_entries_max;
    l.inflight_max = inflight_max;
    return l;
}

LogEntry entry(std::uint64_t index, std::uint64_t epoch) { return LogEntry{i(index), e(epoch), Noop{}}; }

// A log whose entry k (from 1) has the k-th epoch of `epochs`.
std::vector<LogEntry> log_of(std::initializer_list<std::uint64_t> epochs) {
    std::vector<LogEntry> out;
    for (std::uint64_t ep : epochs) out.push_back(entry(out.size() + 1, ep));
    return out;
}

// Entries `from`..`to` in epoch `epoch`, to follow a snapshot.
std::vector<LogEntry> run_of(std::uint64_t from, std::uint64_t to, std::uint64_t epoch) {
    std::vector<LogEntry> out;
    for (std::uint64_t k = from; k <= to; ++k) out.push_back(entry(k, epoch));
    return out;
}

Command transfer(std::uint64_t seq) { return Transfer{TxnId{1, seq}, ItemId{1}, ItemId{2}, 1}; }

std::vector<NodeId> members(std::size_t size) {
    std::vector<NodeId> m;
    for (std::uint64_t id = 1; id <= size; ++id) m.push_back(n(id));
    return m;
}

template <class M>
std::vector<std::pair<NodeId, M>> sent(const LogOutput& out) {
    std::vector<std::pair<NodeId, M>> found;
    for (const auto& env : out.messages) {
        if (const auto* m = std::get_if<M>(&env.msg)) found.emplace_back(env.to, *m);
    }
    return found;
}

bool has_event(const std::vector<LogEvent>& events, LogEventKind kind) {
    return std::any_of(events.begin(), events.end(), [&](const LogEvent& ev) { return ev.kind == kind; });
}

// What a node's WAL holds: the model the log's persist instructions drive.
struct Disk {
    std::optional<Snapshot> snapshot;
    std::vector<LogEntry> entries;  // from the snapshot's last index + 1

    LogIndex last() const {
        if (!entries.empty()) return entries.back().index;
        return snapshot ? snapshot->last_index : LogIndex{};
    }
    std::optional<Epoch> epoch_at(LogIndex index) const {
        for (const auto& en : entries) {
            if (en.index == index) return en.epoch;
        }
        return std::nullopt;
    }
    // The shell's persist order: truncate, install, append.
    void apply(const LogOutput& out) {
        if (out.truncate_after) {
            std::erase_if(entries, [&](const LogEntry& en) { return en.index > *out.truncate_after; });
        }
        if (out.install) {
            snapshot = out.install;
            entries.clear();
        }
        for (const auto& en : out.appended) {
            BOOST_REQUIRE_EQUAL(en.index.value, last().value + 1);
            entries.push_back(en);
        }
    }
};

struct Wire {
    NodeId from;
    NodeId to;
    TxnMessage msg;
};

template <class M>
bool is(const Wire& w) {
    return std::holds_alternative<M>(w.msg);
}

// True for AppendEntries that carry entries.
bool carries_entries(const Wire& w) {
    const auto* m = std::get_if<AppendEntries>(&w.msg);
    return m != nullptr && !m->entries.empty();
}

bool entries_to_2(const Wire& w) { return w.to == n(2) && carries_entries(w); }

bool prev_is(const Wire& w, std::uint64_t prev) {
    const auto* m = std::get_if<AppendEntries>(&w.msg);
    return m != nullptr && m->prev_index == i(prev);
}

enum class Sync { yes, no };

class Cluster {
public:
    explicit Cluster(std::vector<std::vector<LogEntry>> logs, LogLimits limits = kLimits,
                     std::vector<std::optional<Snapshot>> snapshots = {}) {
        snapshots.resize(logs.size());
        for (std::size_t k = 0; k < logs.size(); ++k) {
            Disk disk{snapshots[k], logs[k]};
            nodes_.push_back(Node{ReplicatedLog(n(k + 1), members(logs.size()), limits, snapshots[k], logs[k]),
                                  std::move(disk), {}, {}});
        }
    }
    explicit Cluster(std::size_t size, LogLimits limits = kLimits)
        : Cluster(std::vector<std::vector<LogEntry>>(size), limits) {}

    ReplicatedLog& log(std::uint64_t id) { return nodes_.at(id - 1).log; }
    const std::vector<LogEvent>& events(std::uint64_t id) { return nodes_.at(id - 1).events; }
    std::size_t size() const { return nodes_.size(); }

    // `leader` leads `epoch` with the promises of `quorum` (everyone when
    // empty): the election hands it the best log position among them.
    void elect(std::uint64_t leader, std::uint64_t epoch, std::vector<std::uint64_t> quorum = {}) {
        if (quorum.empty()) {
            for (std::uint64_t id = 1; id <= size(); ++id) quorum.push_back(id);
        }
        election::Elected el{e(epoch), log(leader).position(), n(leader), {}};
        for (std::uint64_t id : quorum) {
            el.quorum.push_back(n(id));
            if (log(id).position() > el.best_log) {
                el.best_log = log(id).position();
                el.best_log_holder = n(id);
            }
        }
        for (std::uint64_t id = 1; id <= size(); ++id) {
            if (id != leader) log(id).follow(e(epoch), n(leader));
        }
        log(leader).lead(el);
    }

    // One shell turn of node `id`: persist the output, report the sync
    // (unless told not to), then send.
    void flush(std::uint64_t id, Sync sync = Sync::yes) {
        Node& node = nodes_.at(id - 1);
        LogOutput out = node.log.take_output();
        node.disk.apply(out);
        if (sync == Sync::yes) node.log.persisted(node.log.last_index());
        for (auto& env : out.messages) net.push_back(Wire{n(id), env.to, std::move(env.msg)});
        for (const auto& ev : out.events) node.events.push_back(ev);
        check(id);
    }
    void flush_all() {
        for (std::uint64_t id = 1; id <= size(); ++id) flush(id);
    }

    // Delivers, in order, every queued message `pick` selects; the rest stay.
    std::size_t deliver(const std::function<bool(const Wire&)>& pick) {
        std::vector<Wire> now;
        std::vector<Wire> keep;
        for (auto& w : net) (pick(w) ? now : keep).push_back(std::move(w));
        net = std::move(keep);
        for (const auto& w : now) step(w);
        return now.size();
    }
    std::size_t deliver_to(std::uint64_t id) {
        return deliver([&](const Wire& w) { return w.to == n(id); });
    }
    std::size_t drop(const std::function<bool(const Wire&)>& pick) { return std::erase_if(net, pick); }
    std::size_t count(const std::function<bool(const Wire&)>& pick) const {
        return static_cast<std::size_t>(std::count_if(net.begin(), net.end(), pick));
    }

    void step(const Wire& w) {
        std::visit(
            [&](const auto& m) {
                using M = std::decay_t<decltype(m)>;
                if constexpr (std::is_same_v<M, ForwardRequest> || std::is_same_v<M, ForwardReply> ||
                              std::is_same_v<M, ShardRequest> || std::is_same_v<M, ShardReply>) {
                    BOOST_FAIL("the log never sends forwarding or two-phase commit messages");
                } else {
                    log(w.to.value).step(w.from, m);
                }
            },
            w.msg);
    }

    // Flush and deliver until nothing is left in flight, losing whatever
    // goes to or from a node in `cut`.
    void settle(std::vector<std::uint64_t> cut = {}) {
        for (int round = 0; round < 100; ++round) {
            flush_all();
            drop([&](const Wire& w) {
                return std::find(cut.begin(), cut.end(), w.to.value) != cut.end() ||
                       std::find(cut.begin(), cut.end(), w.from.value) != cut.end();
            });
            if (net.empty()) return;
            deliver([](const Wire&) { return true; });
        }
        BOOST_FAIL("the cluster did not settle");
    }

    void tick_all(std::uint64_t ticks) {
        for (std::uint64_t t = 0; t < ticks; ++t) {
            for (auto& node : nodes_) node.log.tick();
        }
    }

    std::vector<Wire> net;

private:
    struct Node {
        ReplicatedLog log;
        Disk disk;
        std::vector<LogEvent> events;
        LogIndex last_commit;
    };

    // Invariants after every turn: disk == memory, commit only rises and
    // stays within the log, committed prefixes agree across nodes.
    void check(std::uint64_t id) {
        Node& node = nodes_.at(id - 1);
        const ReplicatedLog& l = node.log;
        BOOST_REQUIRE_EQUAL(node.disk.last().value, l.last_index().value);
        for (LogIndex k = l.snapshot_index().next(); k <= l.last_index(); k = k.next()) {
            BOOST_REQUIRE(node.disk.epoch_at(k) == l.epoch_at(k));
        }
        BOOST_REQUIRE(l.commit_index() >= node.last_commit);
        BOOST_REQUIRE(l.commit_index() <= l.last_index());
        node.last_commit = l.commit_index();
        for (const auto& other : nodes_) {
            const LogIndex upto = std::min(l.commit_index(), other.log.commit_index());
            for (LogIndex k{1}; k <= upto; k = k.next()) {
                const auto a = l.epoch_at(k);
                const auto b = other.log.epoch_at(k);
                if (a && b) BOOST_REQUIRE(*a == *b);
            }
        }
    }

    std::vector<Node> nodes_;
};

// Lets the commit index reach the followers with a heartbeat, then checks
// that everyone holds the leader's log and commit index.
void require_converged(Cluster& c, std::uint64_t leader) {
    c.settle();
    c.tick_all(kLimits.heartbeat_ticks);
    c.settle();
    for (std::uint64_t id = 1; id <= c.size(); ++id) {
        BOOST_TEST_CONTEXT("node " << id) {
            BOOST_TEST(c.log(id).last_index().value == c.log(leader).last_index().value);
            BOOST_TEST(c.log(id).commit_index().value == c.log(leader).commit_index().value);
            const LogIndex from{std::max(c.log(id).snapshot_index(), c.log(leader).snapshot_index()).value + 1};
            for (LogIndex k = from; k <= c.log(id).last_index(); k = k.next()) {
                BOOST_TEST((c.log(id).epoch_at(k) == c.log(leader).epoch_at(k)));
            }
        }
    }
}

// A settled 3-node cluster led by node 1 in epoch 2, its no-op committed.
Cluster settled_three(LogLimits limits = kLimits) {
    Cluster c(3, limits);
    c.elect(1, 2);
    c.settle();
    BOOST_REQUIRE(c.log(1).ready());
    BOOST_REQUIRE_EQUAL(c.log(1).commit_index().value, 1u);
    return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(commit)

BOOST_AUTO_TEST_CASE(entry_commits_once_a_majority_persisted_it) {
    Cluster c = settled_three();
    const auto index = c.log(1).propose(transfer(1));
    BOOST_REQUIRE(index);
    c.flush(1);
    BOOST_TEST(c.log(1).commit_index() < *index);
    c.deliver_to(2);
    c.flush(2);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).commit_index() == *index);
    require_converged(c, 1);  // the next heartbeat tells the followers
}

BOOST_AUTO_TEST_CASE(entry_does_not_commit_before_the_followers_persist) {
    Cluster c = settled_three();
    const auto index = c.log(1).propose(transfer(1));
    c.flush(1);
    c.deliver_to(2);
    c.deliver_to(3);
    // The followers hold the entry in memory; their acks leave only after
    // their WAL sync (the next flush).
    BOOST_TEST(c.log(1).commit_index() < *index);
    c.flush(2);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).commit_index() == *index);
}

BOOST_AUTO_TEST_CASE(entry_does_not_commit_before_the_leader_persists_with_one_follower) {
    Cluster c = settled_three();
    const auto index = c.log(1).propose(transfer(1));
    c.flush(1, Sync::no);  // sent, but the leader's own sync has not finished
    c.deliver_to(2);
    c.flush(2);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).commit_index() < *index);  // one durable copy of three
    c.log(1).persisted(*index);
    BOOST_TEST(c.log(1).commit_index() == *index);
}

// Whether a leader's own sync may wait (docs/design.md section 6.11): only
// while at least a majority of followers keep up, so that they alone commit.
BOOST_AUTO_TEST_CASE(followers_suffice_only_while_a_majority_of_them_keep_up) {
    const auto none = [](NodeId) { return false; };
    Cluster c = settled_three();
    BOOST_TEST(c.log(1).followers_suffice(none));
    BOOST_TEST(!c.log(2).followers_suffice(none));  // a follower has no followers
    BOOST_TEST(!c.log(1).followers_suffice([](NodeId id) { return id == n(3); }));

    // Both followers commit an entry the leader never synced.
    const auto first = c.log(1).propose(transfer(1));
    c.flush(1, Sync::no);
    c.deliver_to(2);
    c.flush(2);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).commit_index() < *first);
    BOOST_TEST(c.log(1).followers_suffice(none));  // node 3 owes only the send node 2 answered
    c.deliver_to(3);
    c.flush(3);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).commit_index() == *first);

    // Node 3 leaves a send unanswered that is older than one node 2 answered.
    c.log(1).propose(transfer(2));
    c.flush(1, Sync::no);
    const auto third = c.log(1).propose(transfer(3));
    c.flush(1, Sync::no);
    c.deliver_to(2);
    c.flush(2);
    c.deliver_to(1);
    BOOST_TEST(!c.log(1).followers_suffice(none));
    c.deliver_to(3);
    c.flush(3);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).commit_index() == *third);
    BOOST_TEST(c.log(1).followers_suffice(none));

    // A send unanswered through a tick.
    c.log(1).propose(transfer(4));
    c.flush(1, Sync::no);
    c.tick_all(1);
    BOOST_TEST(!c.log(1).followers_suffice(none));
    c.settle();
    BOOST_TEST(c.log(1).followers_suffice(none));

    // In a shard of two, the leader's copy is always half the majority.
    Cluster two(2);
    two.elect(1, 2);
    two.settle();
    BOOST_REQUIRE(two.log(1).ready());
    BOOST_TEST(!two.log(1).followers_suffice(none));
}

// Raft figure 8: an entry of an earlier epoch on a majority is not
// committed by counting; only an entry of the leader's epoch commits it.
BOOST_AUTO_TEST_CASE(old_epoch_entry_does_not_commit_by_count_alone) {
    Cluster c({log_of({1, 2}), log_of({1}), log_of({1})}, limits_with(1, 1));
    c.elect(1, 3);
    BOOST_REQUIRE(c.log(1).ready());  // no-op at 3
    const std::vector<std::uint64_t> cut{3};
    c.flush(1);
    c.drop([](const Wire& w) { return w.to == n(3); });
    // Node 2 refuses prev 2, then takes entry 2 alone (one entry per append).
    for (int k = 0; k < 2; ++k) {
        c.deliver_to(2);
        c.flush(2);
        c.deliver_to(1);
        c.flush(1);
        c.drop([](const Wire& w) { return w.to == n(3); });
    }
    BOOST_REQUIRE_EQUAL(c.log(2).last_index().value, 2u);  // epoch-2 entry on 2 of 3
    BOOST_TEST(c.log(1).commit_index().value == 0u);
    c.settle(cut);
    BOOST_TEST(c.log(1).commit_index().value == 3u);  // with the no-op
}

BOOST_AUTO_TEST_CASE(commit_index_never_moves_backwards) {
    Cluster c = settled_three();
    c.log(1).propose(transfer(1));
    c.flush(1);
    const std::vector<Wire> first = c.net;  // carries commit 1
    c.settle();
    c.tick_all(kLimits.heartbeat_ticks);
    c.settle();
    BOOST_REQUIRE_EQUAL(c.log(2).commit_index().value, 2u);
    c.net = first;  // a late copy of the older append
    c.deliver_to(2);
    BOOST_TEST(c.log(2).commit_index().value == 2u);
    c.settle();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(follower)

BOOST_AUTO_TEST_CASE(follower_truncates_a_conflicting_suffix_and_acks_through_the_match) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1, 1, 2, 2}));
    f.follow(e(3), n(1));
    f.step(n(1), AppendEntries{e(3), i(2), e(1), {entry(3, 3)}, i(0), 7});
    const LogOutput out = f.take_output();
    BOOST_REQUIRE(out.truncate_after);
    BOOST_TEST(out.truncate_after->value == 2u);
    BOOST_REQUIRE_EQUAL(out.appended.size(), 1u);
    BOOST_TEST(out.appended[0].epoch == e(3));
    BOOST_TEST(f.last_index().value == 3u);
    const auto replies = sent<AppendReply>(out);
    BOOST_REQUIRE_EQUAL(replies.size(), 1u);
    BOOST_TEST(replies[0].second.success);
    BOOST_TEST(replies[0].second.match_index.value == 3u);
    BOOST_TEST(replies[0].second.round == 7u);
}

BOOST_AUTO_TEST_CASE(follower_commits_and_acks_only_through_the_verified_match) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1, 1, 2}));
    f.follow(e(3), n(1));
    f.step(n(1), AppendEntries{e(3), i(1), e(1), {}, i(3), 0});
    const auto replies = sent<AppendReply>(f.take_output());
    BOOST_REQUIRE_EQUAL(replies.size(), 1u);
    BOOST_TEST(replies[0].second.match_index.value == 1u);
    BOOST_TEST(f.commit_index().value == 1u);  // not 3: entries 2 and 3 are unverified
}

BOOST_AUTO_TEST_CASE(follower_rejects_a_lower_epoch_and_tells_its_epoch) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1}));
    f.follow(e(5), n(3));
    f.step(n(1), AppendEntries{e(3), i(1), e(1), {entry(2, 3)}, i(2), 0});
    f.step(n(1), InstallSnapshot{e(3), Snapshot{i(4), e(3), {}}, i(4)});
    const LogOutput out = f.take_output();
    BOOST_TEST(out.persist_empty());
    const auto replies = sent<AppendReply>(out);
    BOOST_REQUIRE_EQUAL(replies.size(), 2u);
    for (const auto& [to, r] : replies) {
        BOOST_TEST(to == n(1));
        BOOST_TEST(!r.success);
        BOOST_TEST(r.epoch == e(5));
    }
    BOOST_TEST(f.last_index().value == 1u);
    BOOST_TEST(f.commit_index().value == 0u);
    BOOST_TEST(!f.take_higher_epoch());
}

BOOST_AUTO_TEST_CASE(higher_epoch_in_an_append_is_reported_and_not_applied) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1}));
    f.follow(e(2), n(1));
    f.step(n(3), AppendEntries{e(4), i(1), e(1), {entry(2, 4)}, i(2), 0});
    BOOST_TEST(f.take_output().persist_empty());
    const auto higher = f.take_higher_epoch();
    BOOST_REQUIRE(higher);
    BOOST_TEST(higher->first == n(3));
    BOOST_TEST(higher->second == e(4));
    BOOST_TEST(f.last_index().value == 1u);
}

BOOST_AUTO_TEST_CASE(conflict_hint_skips_a_whole_epoch) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1, 2, 2, 2, 2}));
    f.follow(e(4), n(1));
    f.step(n(1), AppendEntries{e(4), i(5), e(3), {}, i(0), 0});
    const auto replies = sent<AppendReply>(f.take_output());
    BOOST_REQUIRE_EQUAL(replies.size(), 1u);
    BOOST_TEST(!replies[0].second.success);
    BOOST_TEST(replies[0].second.hint.value == 2u);  // the first index of epoch 2
}

BOOST_AUTO_TEST_CASE(leader_repairs_a_divergent_epoch_in_one_extra_round_trip) {
    Cluster c({log_of({1, 3, 3, 3, 3}), log_of({1, 2, 2, 2, 2}), log_of({1, 3, 3, 3, 3})});
    c.elect(1, 4);
    std::size_t appends_to_2 = 0;
    for (int round = 0; round < 20; ++round) {
        c.flush_all();
        appends_to_2 += c.count([](const Wire& w) { return w.to == n(2) && is<AppendEntries>(w); });
        c.deliver([](const Wire&) { return true; });
    }
    c.settle();
    BOOST_TEST(appends_to_2 == 2u);  // refused at 5, then everything from 2
    require_converged(c, 1);
}

BOOST_AUTO_TEST_CASE(short_follower_hints_its_last_index_plus_one) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1, 1}));
    f.follow(e(2), n(1));
    f.step(n(1), AppendEntries{e(2), i(6), e(1), {}, i(0), 0});
    const auto replies = sent<AppendReply>(f.take_output());
    BOOST_REQUIRE_EQUAL(replies.size(), 1u);
    BOOST_TEST(!replies[0].second.success);
    BOOST_TEST(replies[0].second.hint.value == 3u);
}

BOOST_AUTO_TEST_CASE(follower_never_truncates_a_committed_entry) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1, 1, 1}));
    f.follow(e(2), n(1));
    f.step(n(1), AppendEntries{e(2), i(2), e(1), {}, i(2), 0});  // commit 2
    (void)f.take_output();
    BOOST_REQUIRE_EQUAL(f.commit_index().value, 2u);
    f.step(n(1), AppendEntries{e(2), i(1), e(1), {entry(2, 9)}, i(2), 0});
    const LogOutput out = f.take_output();
    BOOST_TEST(out.persist_empty());
    BOOST_TEST(has_event(out.events, LogEventKind::bad_message));
    BOOST_TEST((f.epoch_at(i(2)) == std::optional<Epoch>(e(1))));
    const auto replies = sent<AppendReply>(out);
    BOOST_REQUIRE_EQUAL(replies.size(), 1u);
    BOOST_TEST(replies[0].second.match_index.value == 1u);
}

BOOST_AUTO_TEST_CASE(reordered_older_append_does_not_truncate_newer_entries) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1}));
    f.follow(e(2), n(1));
    const AppendEntries older{e(2), i(1), e(1), {entry(2, 2)}, i(1), 0};
    f.step(n(1), AppendEntries{e(2), i(1), e(1), {entry(2, 2), entry(3, 2)}, i(1), 0});
    (void)f.take_output();
    f.step(n(1), older);
    const LogOutput out = f.take_output();
    BOOST_TEST(out.persist_empty());
    BOOST_TEST(f.last_index().value == 3u);
    const auto replies = sent<AppendReply>(out);
    BOOST_REQUIRE_EQUAL(replies.size(), 1u);
    BOOST_TEST(replies[0].second.match_index.value == 2u);
}

// Two leaders' appends inside one turn: the first leader's entry, still
// buffered for the WAL, is dropped by the second's truncation.
BOOST_AUTO_TEST_CASE(truncation_inside_one_turn_drops_buffered_appends) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1, 1}));
    f.follow(e(2), n(1));
    f.step(n(1), AppendEntries{e(2), i(2), e(1), {entry(3, 2)}, i(0), 0});
    f.follow(e(3), n(3));
    f.step(n(3), AppendEntries{e(3), i(1), e(1), {entry(2, 3), entry(3, 3)}, i(0), 0});
    const LogOutput out = f.take_output();
    Disk disk{std::nullopt, log_of({1, 1})};
    disk.apply(out);
    BOOST_TEST(disk.last().value == 3u);
    BOOST_TEST((disk.epoch_at(i(2)) == std::optional<Epoch>(e(3))));
    BOOST_TEST((disk.epoch_at(i(3)) == std::optional<Epoch>(e(3))));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(adoption)

BOOST_AUTO_TEST_CASE(new_leader_adopts_the_best_log_from_its_holder_before_its_noop) {
    Cluster c({log_of({1, 2, 2}), log_of({1, 3, 3, 3}), log_of({1})});
    c.elect(1, 4, {1, 2});
    BOOST_TEST(!c.log(1).ready());
    BOOST_TEST(!c.log(1).propose(transfer(1)));
    c.flush(1);
    BOOST_TEST(has_event(c.events(1), LogEventKind::adopt_started));
    BOOST_REQUIRE_EQUAL(c.count(is<FetchLog>), 1u);
    BOOST_TEST(c.log(1).last_index().value == 3u);  // nothing appended yet
    c.deliver_to(2);
    c.flush(2);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).ready());
    BOOST_TEST(c.log(1).epoch_start().value == 5u);  // the no-op follows the adopted log
    c.settle();
    BOOST_TEST(has_event(c.events(1), LogEventKind::truncated));  // its own epoch-2 suffix
    BOOST_TEST((c.log(1).epoch_at(i(2)) == std::optional<Epoch>(e(3))));
    BOOST_TEST(c.log(1).commit_index().value == 5u);
    require_converged(c, 1);
}

BOOST_AUTO_TEST_CASE(adoption_fetches_in_batches_of_append_entries_max) {
    Cluster c({log_of({1}), log_of({1, 2, 2, 2, 2, 2}), log_of({1})}, limits_with(2, 16));
    c.elect(1, 3, {1, 2});
    std::size_t fetches = 0;
    for (int round = 0; round < 10 && !c.log(1).ready(); ++round) {
        c.flush_all();
        fetches += c.count(is<FetchLog>);
        c.deliver([](const Wire&) { return true; });
    }
    BOOST_TEST(fetches == 3u);  // entries 2-3, 4-5, 6
    BOOST_REQUIRE(c.log(1).ready());
    BOOST_TEST(c.log(1).epoch_start().value == 7u);
    c.settle();
    require_converged(c, 1);
}

BOOST_AUTO_TEST_CASE(adoption_installs_the_holders_snapshot_when_it_compacted) {
    const Snapshot snap{i(3), e(2), {1, 2, 3}};
    Cluster c({log_of({1}), run_of(4, 4, 2), {}}, kLimits, {std::nullopt, snap, std::nullopt});
    c.elect(1, 3, {1, 2});
    c.settle();
    BOOST_REQUIRE(c.log(1).ready());
    BOOST_TEST(has_event(c.events(1), LogEventKind::snapshot_installed));
    BOOST_REQUIRE(c.log(1).snapshot());
    BOOST_TEST((*c.log(1).snapshot() == snap));
    BOOST_TEST(c.log(1).epoch_start().value == 5u);
    // Node 3 had nothing: it needs the snapshot too.
    BOOST_TEST(has_event(c.events(1), LogEventKind::snapshot_sent));
    BOOST_TEST(c.log(3).snapshot_index().value == 3u);
    require_converged(c, 1);
}

// The holder's snapshot reaches past the position it promised: its
// entries are committed, so adoption must not cut them off again.
BOOST_AUTO_TEST_CASE(adoption_never_cuts_below_a_snapshot_beyond_the_promise) {
    ReplicatedLog l(n(1), members(3), kLimits, std::nullopt, log_of({1}));
    l.lead(election::Elected{e(3), {e(2), i(4)}, n(2), {n(1), n(2)}});
    (void)l.take_output();
    l.step(n(2), FetchReply{e(2), i(1), {}, i(5), Snapshot{i(5), e(2), {}}});
    BOOST_TEST(l.ready());
    BOOST_TEST(l.commit_index().value == 5u);
    BOOST_TEST(l.epoch_start().value == 6u);
}

BOOST_AUTO_TEST_CASE(adoption_resigns_after_adopt_timeout_ticks) {
    Cluster c({log_of({1}), log_of({1, 2}), log_of({1})});
    c.elect(1, 3, {1, 2});
    c.flush(1);
    std::size_t fetches = c.drop(is<FetchLog>);  // the holder never answers
    for (std::uint64_t t = 1; t < kLimits.adopt_timeout_ticks; ++t) {
        c.log(1).tick();
        BOOST_REQUIRE(!c.log(1).take_resign());
        c.flush(1);
        fetches += c.drop(is<FetchLog>);
    }
    BOOST_TEST(fetches > 1u);  // it asked again meanwhile
    c.log(1).tick();
    BOOST_TEST(c.log(1).take_resign());
    BOOST_TEST(!c.log(1).take_resign());  // reported once
    c.flush(1);
    BOOST_TEST(has_event(c.events(1), LogEventKind::adopt_failed));
    BOOST_TEST(!c.log(1).ready());
}

BOOST_AUTO_TEST_CASE(adoption_resigns_when_the_holder_log_shrank) {
    ReplicatedLog l(n(1), members(3), kLimits, std::nullopt, log_of({1}));
    l.lead(election::Elected{e(3), {e(2), i(5)}, n(2), {n(1), n(2)}});
    (void)l.take_output();
    l.step(n(2), FetchReply{e(2), i(1), log_of({1, 2, 2}), i(3), std::nullopt});
    BOOST_TEST(l.take_resign());
    BOOST_TEST(!l.ready());
    BOOST_TEST(has_event(l.take_output().events, LogEventKind::adopt_failed));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(snapshots)

BOOST_AUTO_TEST_CASE(lagging_follower_gets_the_snapshot_after_compact) {
    Cluster c = settled_three();
    const std::vector<std::uint64_t> cut{3};
    for (std::uint64_t k = 1; k <= 4; ++k) c.log(1).propose(transfer(k));
    c.settle(cut);
    BOOST_REQUIRE_EQUAL(c.log(1).commit_index().value, 5u);
    c.log(1).compact(Snapshot{i(4), e(2), {4}});
    // Node 3 is back: the heartbeat is refused, entry 2 is gone, so it
    // gets the snapshot, once, however many heartbeats pass meanwhile.
    c.tick_all(kLimits.heartbeat_ticks);
    std::size_t snapshots = 0;
    for (int round = 0; round < 20; ++round) {
        c.flush_all();
        snapshots += c.count(is<InstallSnapshot>);
        c.tick_all(kLimits.heartbeat_ticks);
        c.deliver([](const Wire&) { return true; });
    }
    c.settle();
    BOOST_TEST(snapshots == 1u);
    BOOST_TEST(has_event(c.events(3), LogEventKind::snapshot_installed));
    BOOST_TEST(c.log(3).snapshot_index().value == 4u);
    require_converged(c, 1);
}

// The snapshot is lost and a copy of the refusal that caused it arrives
// late: the follower must still get the snapshot once the silence is over.
BOOST_AUTO_TEST_CASE(stale_refusal_during_a_lost_snapshot_does_not_wedge_the_follower) {
    Cluster c = settled_three();
    const std::vector<std::uint64_t> cut{3};
    for (std::uint64_t k = 1; k <= 4; ++k) c.log(1).propose(transfer(k));
    c.settle(cut);
    c.log(1).compact(Snapshot{i(4), e(2), {4}});
    c.tick_all(kLimits.heartbeat_ticks);
    c.flush(1);
    c.drop([](const Wire& w) { return w.to == n(2); });
    c.deliver_to(3);  // heartbeat, prev 5: refused
    c.flush(3);
    const Wire refusal = c.net.front();
    c.deliver_to(1);
    c.flush(1);
    BOOST_REQUIRE_EQUAL(c.drop(is<InstallSnapshot>), 1u);  // lost
    c.net.push_back(refusal);
    c.deliver_to(1);
    std::size_t resent = 0;
    for (std::uint64_t t = 0; t < kLimits.retransmit_ticks && resent == 0; ++t) {
        c.tick_all(1);
        c.flush(1);
        resent = c.count(is<InstallSnapshot>);
        c.drop([](const Wire& w) { return w.to == n(2); });
    }
    BOOST_TEST(resent == 1u);
    require_converged(c, 1);
}

BOOST_AUTO_TEST_CASE(stale_install_snapshot_does_not_regress_a_follower) {
    const Snapshot newer{i(5), e(2), {5}};
    ReplicatedLog f(n(2), members(3), kLimits, newer, run_of(6, 7, 2));
    f.follow(e(2), n(1));
    f.step(n(1), InstallSnapshot{e(2), Snapshot{i(3), e(2), {3}}, i(3)});
    const LogOutput out = f.take_output();
    BOOST_TEST(out.persist_empty());
    BOOST_TEST(f.snapshot_index().value == 5u);
    BOOST_TEST(f.last_index().value == 7u);
    const auto replies = sent<AppendReply>(out);
    BOOST_REQUIRE_EQUAL(replies.size(), 1u);
    BOOST_TEST(replies[0].second.success);
    BOOST_TEST(replies[0].second.match_index.value == 3u);
}

BOOST_AUTO_TEST_CASE(install_snapshot_keeps_a_matching_suffix) {
    ReplicatedLog f(n(2), members(3), kLimits, std::nullopt, log_of({1, 2, 2, 2}));
    f.follow(e(2), n(1));
    f.step(n(1), InstallSnapshot{e(2), Snapshot{i(2), e(2), {2}}, i(2)});
    const LogOutput out = f.take_output();
    BOOST_TEST(!out.install);
    BOOST_TEST(f.last_index().value == 4u);
    BOOST_TEST(f.commit_index().value == 2u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pipeline)

BOOST_AUTO_TEST_CASE(pipelining_keeps_at_most_inflight_max_unanswered_appends) {
    Cluster c = settled_three(limits_with(1, 3));
    for (std::uint64_t k = 1; k <= 6; ++k) c.log(1).propose(transfer(k));
    for (int turn = 0; turn < 4; ++turn) c.flush(1);
    BOOST_TEST(c.count(entries_to_2) == 3u);  // entries 2, 3, 4
    // One answer frees one slot.
    c.deliver([](const Wire& w) { return entries_to_2(w) && prev_is(w, 1); });
    c.flush(2);
    c.deliver_to(1);
    c.flush(1);
    BOOST_TEST(c.count(entries_to_2) == 3u);  // 3, 4 and now 5
    c.settle();
    require_converged(c, 1);
}

// A TransferBatch weighs one entry more per four transfers: an append
// carries entries up to append_entries_max in weight (always at least one),
// so batch entries keep it within a frame (docs/design.md section 6.9).
BOOST_AUTO_TEST_CASE(appends_are_bounded_by_the_weight_of_batch_entries) {
    Cluster c = settled_three(limits_with(8, 16));
    const auto batch = [](std::size_t transfers) {
        TransferBatch b{1, {}};
        for (std::uint64_t k = 1; k <= transfers; ++k) b.each.push_back({k, ItemId{1}, ItemId{2}, 1});
        return b;
    };
    c.log(1).propose(batch(12));  // weight 4
    c.log(1).propose(batch(12));  // 4: 8 in all
    c.log(1).propose(transfer(1));  // 1: would make 9
    c.log(1).propose(batch(40));  // 11: alone over the bound, sent alone
    c.log(1).propose(transfer(2));
    std::vector<std::size_t> sizes;
    for (int turn = 0; turn < 4; ++turn) {
        c.flush(1);
        for (const Wire& w : c.net) {
            if (entries_to_2(w)) sizes.push_back(std::get<AppendEntries>(w.msg).entries.size());
        }
        c.deliver([](const Wire& w) { return w.to == n(2); });
        c.flush(2);
        c.deliver_to(1);
        c.drop([](const Wire&) { return true; });
    }
    BOOST_TEST(sizes == (std::vector<std::size_t>{2, 1, 1, 1}), boost::test_tools::per_element());
    BOOST_TEST(entry_weight(LogEntry{i(1), e(1), batch(3)}) == 1u);
    BOOST_TEST(entry_weight(LogEntry{i(1), e(1), batch(4)}) == 2u);
}

// Node 2 lost entries 2-3 and refuses the heartbeat; the refusal reaches
// the leader twice. The second copy answers a pipeline already restarted.
BOOST_AUTO_TEST_CASE(duplicated_refusal_neither_rewinds_next_nor_reopens_the_pipeline) {
    Cluster c = settled_three();
    for (std::uint64_t k = 1; k <= 2; ++k) c.log(1).propose(transfer(k));
    c.flush(1);
    c.drop([](const Wire& w) { return w.to == n(2); });
    c.tick_all(kLimits.heartbeat_ticks);
    c.flush(1);
    c.drop([](const Wire& w) { return w.to == n(3); });
    c.deliver_to(2);
    c.flush(2);
    BOOST_REQUIRE_EQUAL(c.net.size(), 1u);
    const Wire refusal = c.net.front();
    BOOST_REQUIRE(!std::get<AppendReply>(refusal.msg).success);
    c.deliver_to(1);
    c.flush(1);
    BOOST_TEST(c.count(entries_to_2) == 1u);  // entries 2-3 again
    c.net.push_back(refusal);
    c.deliver_to(1);
    c.flush(1);
    BOOST_TEST(c.count(entries_to_2) == 1u);  // nothing sent twice
    c.settle();
    require_converged(c, 1);
}

// A success from before a restart arrives when the new pipeline is full:
// it proves nothing about the new appends, so no slot opens.
BOOST_AUTO_TEST_CASE(stale_success_does_not_free_a_slot_of_the_new_pipeline) {
    Cluster c = settled_three(limits_with(1, 2));
    c.log(1).propose(transfer(1));
    c.log(1).propose(transfer(2));
    c.flush(1);
    c.flush(1);
    c.drop([](const Wire& w) { return w.to == n(3); });
    c.drop([](const Wire& w) { return entries_to_2(w) && prev_is(w, 2); });  // entry 3 lost
    c.deliver_to(2);
    c.flush(2);
    BOOST_REQUIRE_EQUAL(c.net.size(), 1u);
    const Wire late_success = c.net.front();  // match 2, delayed
    c.net.clear();
    c.tick_all(kLimits.heartbeat_ticks);
    c.flush(1);
    c.drop([](const Wire& w) { return w.to == n(3); });
    c.deliver_to(2);  // heartbeat, prev 3: refused, resume at 3
    c.flush(2);
    c.deliver_to(1);
    c.flush(1);  // entry 3 again
    c.log(1).propose(transfer(3));
    c.flush(1);  // entry 4: the pipeline is full
    c.log(1).propose(transfer(4));
    c.flush(1);
    c.drop([](const Wire& w) { return w.to == n(3); });
    BOOST_REQUIRE_EQUAL(c.count(entries_to_2), 2u);
    c.net.push_back(late_success);
    c.deliver([](const Wire& w) { return w.to == n(1); });
    c.flush(1);
    BOOST_TEST(c.count(entries_to_2) == 2u);
    c.settle();
    require_converged(c, 1);
}

BOOST_AUTO_TEST_CASE(leader_retransmits_after_retransmit_ticks_of_silence) {
    Cluster c = settled_three();
    c.log(1).propose(transfer(1));
    c.flush(1);
    c.drop([](const Wire& w) { return w.to == n(2); });
    std::size_t resent = 0;
    for (std::uint64_t t = 1; t < kLimits.retransmit_ticks; ++t) {
        c.tick_all(1);
        c.flush(1);
        resent += c.drop(entries_to_2);
        c.drop([](const Wire& w) { return w.to == n(2); });
        c.deliver_to(3);
        c.flush(3);
        c.deliver_to(1);
    }
    BOOST_TEST(resent == 0u);
    c.tick_all(1);
    c.flush(1);
    BOOST_TEST(c.count([](const Wire& w) { return entries_to_2(w) && prev_is(w, 1); }) == 1u);
    c.settle();
    require_converged(c, 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(reads)

BOOST_AUTO_TEST_CASE(confirmed_round_requires_a_majority) {
    Cluster c(5);
    c.elect(1, 2);
    c.settle();
    const std::uint64_t round = c.log(1).start_read_round();
    BOOST_TEST(c.log(1).confirmed_round() < round);
    c.flush(1);
    for (std::uint64_t peer : {2, 3}) {
        BOOST_TEST(c.log(1).confirmed_round() < round);
        c.deliver_to(peer);
        c.flush(peer);
        c.deliver_to(1);
    }
    BOOST_TEST(c.log(1).confirmed_round() >= round);  // 3 of 5 with the leader
}

BOOST_AUTO_TEST_CASE(answers_to_appends_sent_before_the_round_do_not_confirm_it) {
    Cluster c = settled_three();
    c.tick_all(kLimits.heartbeat_ticks);
    c.flush(1);  // heartbeats that predate the read
    const std::uint64_t round = c.log(1).start_read_round();
    c.deliver_to(2);
    c.deliver_to(3);
    c.flush(2);
    c.flush(3);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).confirmed_round() < round);
    c.settle();
    BOOST_TEST(c.log(1).confirmed_round() >= round);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(durability)

// The WAL sync of the old log completes after adoption rewrote entries 2-6
// in memory: it vouches for none of the new ones.
BOOST_AUTO_TEST_CASE(sync_from_before_a_truncation_does_not_count_toward_commit) {
    Cluster c({log_of({1, 1, 1, 1, 1, 1}), log_of({1, 2, 2}), log_of({1})});
    c.elect(1, 3, {1, 2});
    c.flush(1);
    c.deliver_to(2);
    c.flush(2);
    c.deliver_to(1);
    BOOST_REQUIRE(c.log(1).ready());
    BOOST_REQUIRE_EQUAL(c.log(1).epoch_start().value, 4u);
    c.log(1).persisted(i(6));  // late: it covers the old entries 2-6
    c.flush(1, Sync::no);
    c.deliver_to(2);
    c.flush(2);
    c.deliver_to(1);
    BOOST_TEST(c.log(1).commit_index().value == 0u);  // only node 2 holds the no-op
    c.log(1).persisted(i(4));
    BOOST_TEST(c.log(1).commit_index().value == 4u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(chaos)

// Every node snapshots its committed prefix, as the state machine does.
void compact_all_committed(Cluster& c) {
    for (std::uint64_t id = 1; id <= c.size(); ++id) {
        ReplicatedLog& l = c.log(id);
        if (l.commit_index() > l.snapshot_index()) {
            l.compact(Snapshot{l.commit_index(), *l.epoch_at(l.commit_index()), {}});
        }
    }
}

// Runs `steps` random events on a 3-node cluster: proposals, ticks, turns,
// deliveries in random order, duplicates, drops, compactions and a leader
// change now and then (promised by the leader and one random peer, so a suffix of the
// third may be cut); then heals the network and checks that the leader's
// whole log committed everywhere. The harness checks its invariants after every turn.
void run_chaos(std::uint32_t seed, int steps) {
    BOOST_TEST_CONTEXT("seed " << seed) {
        rl::Rng rng(seed);
        Cluster c(3, limits_with(3, 4));
        std::uint64_t leader = 1;
        std::uint64_t epoch = 2;
        c.elect(leader, epoch);
        std::uint64_t seq = 0;
        const auto pick = [&](std::uint32_t below) { return static_cast<std::uint32_t>(rl::uniform(rng, 0, below - 1)); };
        for (int s = 0; s < steps; ++s) {
            const std::uint32_t what = pick(100);
            if (what < 10) {
                c.log(leader).propose(transfer(++seq));
            } else if (what < 20) {
                c.tick_all(1);
            } else if (what < 45) {
                c.flush(pick(3) + 1);
            } else if (what < 97 && !c.net.empty()) {
                const std::size_t k = pick(static_cast<std::uint32_t>(c.net.size()));
                const Wire w = c.net[k];
                if (pick(10) != 0) c.net.erase(c.net.begin() + static_cast<std::ptrdiff_t>(k));  // else duplicated
                if (pick(20) != 0) c.step(w);                                                     // else lost
            } else if (what == 98) {
                compact_all_committed(c);
            } else if (what == 99) {
                for (std::uint64_t id = 1; id <= 3; ++id) c.flush(id);
                leader = leader % 3 + 1;
                const std::uint64_t other = (leader + pick(2)) % 3 + 1;  // a 2-of-3 promise quorum
                c.elect(leader, ++epoch, {leader, other});
            }
        }
        for (int heal = 0; heal < 200 && !(c.log(leader).ready() &&
                                           c.log(leader).commit_index() == c.log(leader).last_index());
             ++heal) {
            c.tick_all(1);
            c.settle();
        }
        BOOST_REQUIRE(c.log(leader).ready());
        // A follower whose last append was lost hears it again only after
        // retransmit_ticks of silence.
        c.tick_all(kLimits.retransmit_ticks);
        c.settle();
        require_converged(c, leader);
        BOOST_TEST(c.log(leader).commit_index() == c.log(leader).last_index());
    }
}

BOOST_AUTO_TEST_CASE(duplicated_reordered_and_lost_messages_are_harmless) {
    for (std::uint32_t seed = 1; seed <= 40; ++seed) run_chaos(seed, 600);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace rl::txn
