// Election scenarios with real rlnode processes, for both algorithms
// (docs/design.md section 5): failover in time, a 2|3 partition where only the
// majority leads, healing, a follower that rejoins without an election,
// followers restarted and isolated over and over under a leader that stays,
// simultaneous starts, rising epochs, and a cut-off leader stepping down.
// Partitions are iptables rules inside a network namespace of the test's own.
#define BOOST_TEST_MODULE election_process
#include "test/support/cluster.hpp"

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <set>

using namespace std::chrono_literals;
using rl::test::ClusterSpec;
using rl::test::LocalCluster;
namespace bdata = boost::unit_test::data;

namespace {

const std::vector<std::string> kAlgorithms{"bully", "ring"};

struct View {
    std::string role;
    std::uint64_t epoch = 0;
    std::uint64_t leader = 0;            // 0: none
    std::set<std::uint64_t> suspected;   // peers its failure detector suspects
    bool answered = false;
};

View view_of(const LocalCluster& c, std::uint64_t id) {
    const auto r = c.rlcat(id, {"--json", "--timeout", "1000", "-c", "status"}, 5s);
    View v;
    if (r.code != 0) return v;
    const auto j = nlohmann::json::parse(r.output, nullptr, false);
    if (j.is_discarded()) return v;
    v.answered = true;
    v.role = j.at("role").get<std::string>();
    v.epoch = j.at("epoch").get<std::uint64_t>();
    v.leader = j.at("leader").is_null() ? 0 : j.at("leader").get<std::uint64_t>();
    for (const auto& p : j.at("peers")) {
        if (p.at("suspected").get<bool>()) v.suspected.insert(p.at("id").get<std::uint64_t>());
    }
    return v;
}

// Waits until every node in `ids` names the same leader (one of `ids`, and
// itself in role leader) in the same epoch; returns {leader, epoch}.
std::optional<std::pair<std::uint64_t, std::uint64_t>> wait_agreed_leader(const LocalCluster& c,
                                                                          const std::vector<std::uint64_t>& ids,
                                                                          std::chrono::milliseconds timeout) {
    std::optional<std::pair<std::uint64_t, std::uint64_t>> found;
    rl::test::wait_until(
        [&] {
            std::map<std::uint64_t, View> views;
            for (auto id : ids) views[id] = view_of(c, id);
            const View& first = views.begin()->second;
            if (!first.answered || first.leader == 0 || !views.count(first.leader)) return false;
            for (const auto& [id, v] : views) {
                if (!v.answered || v.leader != first.leader || v.epoch != first.epoch) return false;
            }
            if (views[first.leader].role != "leader") return false;
            found = {first.leader, first.epoch};
            return true;
        },
        timeout);
    return found;
}

// The invariant behind every scenario: at most one node ever became leader
// of a given epoch, and each node's epochs in its log never go down.
void check_log_invariants(const LocalCluster& c) {
    std::map<std::string, std::string> leader_of_epoch;
    for (auto id : c.ids()) {
        std::uint64_t last_epoch = 0;
        for (const auto& line : c.log(id)) {
            const auto e = line.get("epoch");
            if (line.get("event") == "became_leader") {
                auto [it, fresh] = leader_of_epoch.emplace(e, std::to_string(id));
                BOOST_TEST((fresh || it->second == std::to_string(id)),
                           "epoch " << e << " had two leaders: " << it->second << " and " << id);
            }
            if (line.get("event") == "leader_changed" && !e.empty()) {
                const std::uint64_t epoch = std::stoull(e);
                BOOST_TEST(epoch >= last_epoch, "node " << id << " epoch went from " << last_epoch << " to " << epoch);
                last_epoch = std::max(last_epoch, epoch);
            }
        }
    }
}

ClusterSpec spec_for(const std::string& algorithm, std::vector<std::uint64_t> nodes, bool netns = false) {
    ClusterSpec s;
    s.shards = {std::move(nodes)};
    s.election = algorithm;
    s.heartbeat_ms = 50;
    s.suspect_after_ms = 200;
    s.election_timeout_ms = 300;
    s.netns = netns;
    return s;
}

std::vector<std::uint64_t> without(std::vector<std::uint64_t> ids, std::uint64_t x) {
    std::erase(ids, x);
    return ids;
}

// 3 x (suspect_after_ms + election_timeout_ms): long enough for any node to
// suspect, stand and finish an attempt, one and a half times over.
std::chrono::milliseconds settle_window(const ClusterSpec& s) {
    return std::chrono::milliseconds(3 * (s.suspect_after_ms + s.election_timeout_ms));
}

// True when `id` has logged `event` with these fields at or after line `from`.
bool logged(const LocalCluster& c, std::uint64_t id, const std::string& event,
            const std::map<std::string, std::string>& fields, std::size_t from) {
    return c.wait_event(id, event, fields, 0ms, from).has_value();
}

using Views = std::map<std::uint64_t, View>;

// Watches a leader that must stay: every sample polls the status of every
// node not known to be down, and the first answer that shows another
// epoch, another leader, or the leader not leading ends the test case.
// Waiting on a condition samples all the while, so nothing between two
// checks goes unseen for longer than one round of status calls.
struct SteadyLeader {
    const LocalCluster& c;
    std::uint64_t leader;
    std::uint64_t epoch;
    std::set<std::uint64_t> down;  // killed: not polled
    std::size_t samples = 0;       // answers checked

    Views sample() {
        Views views;
        for (auto id : c.ids()) {
            if (down.count(id)) continue;
            const View v = view_of(c, id);
            views[id] = v;
            if (!v.answered) continue;  // starting up
            ++samples;
            const bool role_right =
                id == leader ? v.role == "leader" : v.role != "leader" && (v.leader == leader || v.leader == 0);
            BOOST_REQUIRE_MESSAGE(v.epoch == epoch && role_right,
                                  "node " << id << " is " << v.role << " in epoch " << v.epoch << " with leader "
                                          << v.leader << " where " << leader << " should still lead epoch " << epoch);
        }
        return views;
    }

    // Samples until `done` holds for a sample or `timeout` passes.
    bool until(const std::function<bool(const Views&)>& done, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (done(sample())) return true;
            if (std::chrono::steady_clock::now() >= deadline) return false;
        }
    }

    // Samples for the whole of `window`.
    void hold(std::chrono::milliseconds window) {
        until([](const Views&) { return false; }, window);
    }

    bool follows(const Views& views, std::uint64_t id) const {
        const auto it = views.find(id);
        return it != views.end() && it->second.answered && it->second.leader == leader;
    }

    void require_followed(std::uint64_t f) {
        BOOST_REQUIRE_MESSAGE(until([&](const Views& v) { return follows(v, f); }, 10s),
                              "node " << f << " never followed the leader");
    }

    void require_logged(std::uint64_t id, const std::string& event, const std::map<std::string, std::string>& fields,
                        std::size_t from) {
        BOOST_REQUIRE_MESSAGE(until([&](const Views&) { return logged(c, id, event, fields, from); }, 10s),
                              "node " << id << " never logged " << event);
    }
};

// Runs iptables inside the namespace the nodes run in, entered through the
// process of running node `via`, for a cut finer than LocalCluster's.
void iptables_in(LocalCluster& c, std::uint64_t via, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"nsenter", "-t", std::to_string(c.process(via)->pid()), "-n", "iptables"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = rl::test::run_command(argv, 10s);
    BOOST_REQUIRE_MESSAGE(r.code == 0, "iptables failed: " << r.output);
}

// Drops the TCP connection that `from` dials to `to`, both directions of
// it, and nothing else: the connection `to` dials to `from` still carries
// everything `to` sends. So `to` hears nothing from `from` while `from`
// hears `to`, which is how a leader whose link to a rejoining node is still
// in reconnect backoff looks. LocalCluster::heal() removes it with the rest.
void cut_link(LocalCluster& c, std::uint64_t from, std::uint64_t to) {
    const std::string port = c.endpoint(to).substr(c.endpoint(to).rfind(':') + 1);
    const std::string& a = c.host(from);
    const std::string& b = c.host(to);
    iptables_in(c, from, {"-A", "INPUT", "-p", "tcp", "-s", a, "-d", b, "--dport", port, "-j", "DROP"});
    iptables_in(c, from, {"-A", "INPUT", "-p", "tcp", "-s", b, "--sport", port, "-d", a, "-j", "DROP"});
}

// SIGKILL `f` and wait until the leader suspects it: by then the leader's
// link to it has failed over and over, and its reconnect backoff has grown.
void kill_follower(LocalCluster& c, SteadyLeader& w, std::uint64_t f) {
    w.down.insert(f);
    c.kill(f);
    BOOST_REQUIRE_MESSAGE(w.until([&](const Views& v) { return v.at(w.leader).suspected.count(f) == 1; }, 5s),
                          "the leader never suspected node " << f);
}

void start_follower(LocalCluster& c, SteadyLeader& w, std::uint64_t f) {
    c.start(f);
    w.down.erase(f);
}

// `f` has rejoined (its log from line `from_f` on), by a restart or from an
// isolation, while the leader's messages to it are still lost (the caller
// cut the leader's link to it); everything else flows. It stands, the
// others refuse it (Bully: both refuse its pre-vote; Ring: nobody adds
// a vote to its ELECTION), and the leader and its epoch stay; once the
// leader's messages flow again it follows.
void rejoin_unheard(LocalCluster& c, SteadyLeader& w, const std::string& algorithm, std::uint64_t f,
                    std::size_t from_f, std::size_t from_leader, std::chrono::milliseconds window) {
    w.require_logged(f, "election_started", {}, from_f);
    if (algorithm == "bully") {
        w.require_logged(w.leader, "prevote_refused", {{"peer", std::to_string(f)}, {"reason", "live_leader"}},
                         from_leader);
    }
    w.hold(window);
    c.heal();
    w.require_followed(f);
    w.hold(window);
}

}  // namespace

BOOST_DATA_TEST_CASE(killed_leader_is_replaced_within_two_election_timeouts_of_detection, bdata::make(kAlgorithms),
                     algorithm) {
    const auto spec = spec_for(algorithm, {1, 2, 3});
    LocalCluster c(spec);
    c.start_all();
    const auto first = wait_agreed_leader(c, c.ids(), 15s);
    BOOST_REQUIRE(first.has_value());
    const auto old = first->first;
    std::map<std::uint64_t, std::size_t> from;
    for (auto id : c.ids()) from[id] = c.log_lines(id);
    c.kill(old);
    const auto survivors = without(c.ids(), old);
    const auto next = wait_agreed_leader(c, survivors, 15s);
    BOOST_REQUIRE(next.has_value());
    BOOST_TEST(next->second > first->second);
    // Detection: the first survivor to suspect the old leader.
    std::int64_t detected = INT64_MAX;
    for (auto id : survivors) {
        if (auto l = c.wait_event(id, "suspect", {{"peer", std::to_string(old)}}, 5s, from[id])) {
            detected = std::min(detected, rl::test::parse_ts_ms(l->get("ts")));
        }
    }
    // A failover nobody detected cannot be timed: that is a failure, not a pass.
    BOOST_REQUIRE_MESSAGE(detected != INT64_MAX, "no survivor logged suspect for the killed leader " << old);
    const auto elected = c.wait_event(next->first, "became_leader", {{"epoch", std::to_string(next->second)}}, 5s,
                                      from[next->first]);
    BOOST_REQUIRE(elected.has_value());
    const auto took = rl::test::parse_ts_ms(elected->get("ts")) - detected;
    BOOST_TEST_MESSAGE(algorithm << ": new leader " << next->first << " " << took << " ms after detection");
    BOOST_TEST(took >= 0, "the new leader was elected " << -took << " ms before any survivor suspected the old one");
    BOOST_TEST(took <= 2 * static_cast<std::int64_t>(spec.election_timeout_ms));
    check_log_invariants(c);
}

BOOST_DATA_TEST_CASE(simultaneous_starts_end_with_one_leader_and_one_epoch, bdata::make(kAlgorithms), algorithm) {
    LocalCluster c(spec_for(algorithm, {1, 2, 3}));
    c.start_all();  // every node's stickiness ends at once: concurrent elections
    const auto agreed = wait_agreed_leader(c, c.ids(), 15s);
    BOOST_REQUIRE(agreed.has_value());
    std::set<std::uint64_t> leaders;
    for (auto id : c.ids()) {
        if (view_of(c, id).role == "leader") leaders.insert(id);
    }
    BOOST_TEST(leaders.size() == 1u);
    check_log_invariants(c);
}

BOOST_DATA_TEST_CASE(restarted_follower_rejoins_without_an_election, bdata::make(kAlgorithms), algorithm) {
    LocalCluster c(spec_for(algorithm, {1, 2, 3}));
    c.start_all();
    const auto agreed = wait_agreed_leader(c, c.ids(), 15s);
    BOOST_REQUIRE(agreed.has_value());
    const auto follower = agreed->first == 1 ? 2u : 1u;
    c.kill(follower);
    c.start(follower);
    BOOST_REQUIRE(c.wait_ready(follower, 10s));
    const auto after = wait_agreed_leader(c, c.ids(), 15s);
    BOOST_REQUIRE(after.has_value());
    BOOST_TEST(after->first == agreed->first);
    BOOST_TEST(after->second == agreed->second, "epoch moved from " << agreed->second << " to " << after->second);
    check_log_invariants(c);
}

// Followers come and go under a leader that must stay (docs/design.md
// section 5: stickiness, and the pre-vote before any epoch is raised). Each
// round, each follower in turn is SIGKILLed and restarted; restarted while
// the leader's messages to it are lost (the leader's link still in
// reconnect backoff); and isolated, then let back while the leader's
// messages to it are still lost. Every status answer all along names the
// same leader and epoch, and no log shows a new leadership, an adopted
// epoch, a promise round or the leader stepping down.
// Two rounds in the release build; one under the sanitizers, where a round
// takes about 25 s of the suite's time budget.
#ifdef __SANITIZE_ADDRESS__
constexpr int kFollowerRounds = 1;
#else
constexpr int kFollowerRounds = 2;
#endif
BOOST_DATA_TEST_CASE(followers_restarted_or_isolated_never_depose_the_leader, bdata::make(kAlgorithms), algorithm) {
    const auto spec = spec_for(algorithm, {1, 2, 3}, true);
    LocalCluster c(spec);
    c.start_all();
    const auto agreed = wait_agreed_leader(c, c.ids(), 15s);
    BOOST_REQUIRE(agreed.has_value());
    const auto [leader, epoch] = *agreed;
    std::map<std::uint64_t, std::size_t> from;
    for (auto id : c.ids()) from[id] = c.log_lines(id);
    SteadyLeader w{c, leader, epoch};
    const auto window = std::chrono::milliseconds(spec.suspect_after_ms + spec.election_timeout_ms);
    for (int round = 0; round < kFollowerRounds; ++round) {
        for (auto f : without(c.ids(), leader)) {
            kill_follower(c, w, f);
            start_follower(c, w, f);
            w.require_followed(f);
            w.hold(window);

            kill_follower(c, w, f);
            const std::size_t restarted_at = c.log_lines(f);
            const std::size_t refused_at = c.log_lines(leader);
            cut_link(c, leader, f);
            start_follower(c, w, f);
            rejoin_unheard(c, w, algorithm, f, restarted_at, refused_at, window);

            c.partition({f}, without(c.ids(), f));
            BOOST_REQUIRE_MESSAGE(w.until([&](const Views& v) {
                return v.at(leader).suspected.count(f) == 1 && v.at(f).suspected.size() == 2;
            }, 5s), "node " << f << " and the leader never suspected each other");
            const std::size_t healed_at = c.log_lines(f);
            const std::size_t heal_refused_at = c.log_lines(leader);
            c.heal();
            cut_link(c, leader, f);
            rejoin_unheard(c, w, algorithm, f, healed_at, heal_refused_at, window);
        }
    }
    BOOST_TEST_MESSAGE(algorithm << ": " << w.samples << " status answers, all naming leader " << leader
                                 << " in epoch " << epoch);
    for (auto id : c.ids()) {
        for (const char* event : {"became_leader", "epoch_adopted", "promise_round"}) {
            BOOST_TEST(!logged(c, id, event, {}, from[id]), "node " << id << " logged " << event);
        }
    }
    BOOST_TEST(!logged(c, leader, "stepped_down", {}, from[leader]), "the leader stepped down");
    check_log_invariants(c);
}

BOOST_DATA_TEST_CASE(epochs_strictly_increase_across_successive_elections, bdata::make(kAlgorithms), algorithm) {
    LocalCluster c(spec_for(algorithm, {1, 2, 3}));
    c.start_all();
    const auto first = wait_agreed_leader(c, c.ids(), 15s);
    BOOST_REQUIRE(first.has_value());
    std::uint64_t leader = first->first;
    std::vector<std::uint64_t> epochs{first->second};
    for (int round = 0; round < 3; ++round) {
        const auto old = leader;
        c.kill(old);
        const auto next = wait_agreed_leader(c, without(c.ids(), old), 15s);
        BOOST_REQUIRE(next.has_value());
        leader = next->first;
        epochs.push_back(next->second);
        c.start(old);
        BOOST_REQUIRE(c.wait_ready(old, 10s));
        BOOST_REQUIRE(wait_agreed_leader(c, c.ids(), 15s).has_value());
    }
    for (std::size_t i = 1; i < epochs.size(); ++i) BOOST_TEST(epochs[i] > epochs[i - 1]);
    check_log_invariants(c);
}

// 5 nodes cut 2|3 with the leader on the small side: it steps down, the
// small side has no leader, the big side elects one; healing brings the
// small side to the majority's leader and epoch.
BOOST_DATA_TEST_CASE(partition_two_three_only_the_majority_leads_then_heals, bdata::make(kAlgorithms), algorithm) {
    const auto spec = spec_for(algorithm, {1, 2, 3, 4, 5}, true);
    LocalCluster c(spec);
    c.start_all();
    const auto agreed = wait_agreed_leader(c, c.ids(), 20s);
    BOOST_REQUIRE(agreed.has_value());
    const auto old = agreed->first;
    const std::uint64_t buddy = old == 1 ? 2 : 1;
    const std::vector<std::uint64_t> minority{old, buddy};
    std::vector<std::uint64_t> majority;
    for (auto id : c.ids()) {
        if (id != old && id != buddy) majority.push_back(id);
    }
    const auto from_old = c.log_lines(old);
    c.partition(minority, majority);

    const auto fresh = wait_agreed_leader(c, majority, 20s);
    BOOST_REQUIRE(fresh.has_value());
    BOOST_TEST(fresh->second > agreed->second);
    // Check-quorum: the cut-off leader stepped down.
    BOOST_TEST(c.wait_event(old, "stepped_down", {}, 10s, from_old).has_value());
    // And the minority has no leader for a stated window, long enough for
    // any of its nodes to suspect, stand and fail one and a half times over:
    // both are sampled without pause for all of it, and on until each was
    // sampled kMinSamples times however slow a status call is (a sanitizer
    // build on a busy machine took 4 in the window); any sample showing a
    // leader there (or an epoch other than the old one: a minority cannot
    // win a pre-vote, so it raises none) fails.
    constexpr std::size_t kMinSamples = 10;
    const auto window = settle_window(spec);
    std::map<std::uint64_t, std::size_t> samples;
    const auto end = std::chrono::steady_clock::now() + window;
    const auto sampled_enough = [&] {
        for (auto id : minority) {
            if (samples[id] < kMinSamples) return false;
        }
        return true;
    };
    while (std::chrono::steady_clock::now() < end || !sampled_enough()) {
        for (auto id : minority) {
            const auto v = view_of(c, id);
            BOOST_REQUIRE_MESSAGE(v.answered, "minority node " << id << " did not answer status");
            ++samples[id];
            BOOST_REQUIRE_MESSAGE(v.role != "leader" && v.leader == 0,
                                  "minority node " << id << " is " << v.role << " with leader " << v.leader
                                                   << " in epoch " << v.epoch);
            BOOST_REQUIRE_MESSAGE(v.epoch == agreed->second,
                                  "minority node " << id << " moved from epoch " << agreed->second << " to " << v.epoch);
        }
    }
    BOOST_TEST_MESSAGE(algorithm << ": minority sampled " << samples[old] + samples[buddy] << " times over at least "
                                 << window.count() << " ms");
    c.heal();
    const auto healed = wait_agreed_leader(c, c.ids(), 20s);
    BOOST_REQUIRE(healed.has_value());
    BOOST_TEST(healed->second >= fresh->second);
    check_log_invariants(c);
}

// The leader alone is cut from everyone: it must stop leading by itself.
BOOST_DATA_TEST_CASE(isolated_leader_steps_down, bdata::make(kAlgorithms), algorithm) {
    LocalCluster c(spec_for(algorithm, {1, 2, 3}, true));
    c.start_all();
    const auto agreed = wait_agreed_leader(c, c.ids(), 15s);
    BOOST_REQUIRE(agreed.has_value());
    const auto old = agreed->first;
    const auto from = c.log_lines(old);
    c.partition({old}, without(c.ids(), old));
    BOOST_TEST(c.wait_event(old, "stepped_down", {}, 10s, from).has_value());
    BOOST_TEST(rl::test::wait_until([&] { return view_of(c, old).role != "leader"; }, 10s));
    BOOST_TEST(wait_agreed_leader(c, without(c.ids(), old), 20s).has_value());
    check_log_invariants(c);
}
