// Deterministic simulator for the election core (docs/design.md section 7.2, in
// the spirit of TigerBeetle's VOPR): N cores on a simulated network and
// clock, no Asio, no threads. Everything random comes from one seed, so a
// failing run replays exactly. Invariants are checked after every event and
// a violation throws SimFailure.
#pragma once

#include "election/core.hpp"
#include "test/sim_common/network.hpp"
#include "test/sim_common/timeline.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace rl::election::sim {

// Faults while they are set: the network's on every message, and crashes
// around the shell's persist.
struct NetFaults : simcommon::LinkFaults {
    double crash_before_persist = 0;   // per output with a persist: crash before writing it
    double crash_after_persist = 0;    // per output with a persist: crash after writing, before sending
};

struct SimConfig {
    std::size_t nodes = 5;  // ids 1..nodes
    config::ElectionAlgorithm algorithm = config::ElectionAlgorithm::bully;
    std::uint64_t seed = 1;
    Timing timing{5, 20, 30};      // heartbeat 50 ms, suspect 200 ms, election 300 ms at 10 ms ticks
    std::uint64_t tick_ms = 10;
    bool aligned_ticks = false;    // all nodes tick in the same millisecond
    bool trace = false;            // print every event and message to stdout
    // The chance that a crash() is of a process on a live host: its peers'
    // redials are refused, and each peer that can hear it learns so
    // (Core::peer_refused) within refusal_delay_ms_max. Otherwise the host
    // is dead or cut off and the crash is only silence.
    double live_host_crashes = 0;
    std::uint64_t refusal_delay_ms_max = 20;
};

class SimFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct SimStats {
    std::uint64_t messages_sent = 0;
    std::uint64_t messages_lost = 0;
    std::uint64_t crashes = 0;
    std::uint64_t refusals = 0;  // refused reconnects reported to a core
    std::uint64_t elections_started = 0;
    std::uint64_t elections_won = 0;
    std::uint64_t guarded_checks = 0;  // checks after an event that judged an armed live-leader guard
};

class Sim {
public:
    explicit Sim(const SimConfig& config);

    // (Re)starts a node from its disk; a fresh node's disk is Durable{}.
    void start(NodeId id);
    void start_all();
    // Stops a node now, between two events: everything it persisted stays.
    // Its host is live (refusing) with the chance live_host_crashes.
    void crash(NodeId id);
    // Crashes a node on a live host: every up peer whose link from it is
    // not cut sees a refused reconnect (docs/design.md section 5, "Fast
    // crash detection"), unless the node restarts first.
    void kill(NodeId id);
    // Crashes a node on a dead host: its peers only hear silence.
    void crash_silently(NodeId id);

    void set_faults(const NetFaults& faults);
    // Cuts every link between different groups, both ways.
    void partition(const std::vector<std::vector<NodeId>>& groups);
    // Cuts the one direction from -> to.
    void cut(NodeId from, NodeId to);
    void heal();

    void run_for(std::uint64_t ms);
    // Runs until `done` holds (checked after every event) or `max_ms` pass.
    bool run_until(const std::function<bool()>& done, std::uint64_t max_ms);

    std::uint64_t now_ms() const { return timeline_.now_ms(); }
    std::vector<NodeId> ids() const;
    bool is_up(NodeId id) const;
    const Core& core(NodeId id) const;
    // Up nodes whose role is leader.
    std::vector<NodeId> leaders() const;
    // The (epoch, leader) every up node in `among` agrees on, with that
    // leader up and leading; nullopt when they do not all agree.
    std::optional<std::pair<Epoch, NodeId>> agreed_leader(const std::vector<NodeId>& among) const;
    std::vector<NodeId> up_nodes() const;
    std::vector<NodeId> down_nodes() const;
    const std::map<Epoch, NodeId>& leader_history() const { return history_; }
    const SimStats& stats() const { return stats_; }
    const SimConfig& config() const { return config_; }
    std::mt19937_64& rng() { return rng_; }
    // Longest delay any message of this run can have taken.
    std::uint64_t max_delay_ever_ms() const { return net_.max_delay_ever_ms(); }
    // docs/design.md section 5: 2 x (suspect_after + election_timeout).
    std::uint64_t liveness_bound_ms() const;
    // Check-quorum: how long a leader may keep leading after it last heard
    // from a majority.
    std::uint64_t step_down_bound_ms() const;

private:
    struct Node {
        NodeId id;
        std::optional<Core> core;       // empty while crashed
        Durable disk;                   // what survived: the last persist written
        std::uint64_t incarnation = 0;  // bumped on every start; ticks of older ones are ignored
        std::uint64_t tick_offset_ms = 0;
        Epoch max_epoch;                // highest epoch held after a handled output, over all restarts
    };
    // One entry of the event heap; kept small (the message waits in net_)
    // because the heap moves entries around on every event.
    struct Item {
        enum class Kind { tick, deliver, refused };
        std::uint64_t time_ms;
        std::uint64_t seq;  // set by the timeline: ties break in scheduling order
        Kind kind;
        NodeId to;
        NodeId from;
        std::uint64_t incarnation;  // tick, refused: the incarnation of `to` it belongs to
        std::size_t mail_slot;      // deliver: the message's slot in net_
        std::uint64_t from_incarnation = 0;  // refused: the crashed incarnation of `from`
    };

    // The live-leader invariant's memory for one epoch an up node leads
    // (see check_live_leader_kept in sim.cpp).
    struct Guard {
        NodeId leader;
        // By id - 1: since when that node has been in steady contact with the
        // leader without a break (the leader: since it leads); nullopt while not.
        std::vector<std::optional<std::uint64_t>> contact_since_ms;
        // Set while armed: the highest epoch on any node's disk when it armed.
        std::optional<Epoch> ceiling;
    };

    Node& node(NodeId id);
    const Node& node(NodeId id) const;
    void process(Item& item);
    void refuse(const Item& item);
    void handle_output(Node& n);
    void send(NodeId from, Envelope&& env);
    void check_sent(const Node& n, const ElectionMessage& msg) const;
    void check_invariants();
    bool heard_majority_lately(NodeId id) const;
    void check_live_leader_kept();
    void judge(Epoch led, const Guard& g) const;
    void update(Epoch led, Guard& g);
    void lose_contact(NodeId id);
    bool in_steady_contact(NodeId leader, Epoch led, const Node& n, std::uint64_t window_ms) const;
    Epoch highest_epoch() const;
    std::uint64_t contact_window_ms() const;
    std::uint64_t guard_hold_ms() const;
    [[noreturn]] void fail(const std::string& what) const;
    void trace(const std::string& line) const;

    SimConfig config_;
    std::mt19937_64 rng_;
    std::vector<Node> nodes_;
    simcommon::Timeline<Item> timeline_;
    simcommon::Network<ElectionMessage> net_;
    NetFaults faults_;
    // heard_at_[to][from]: when `to` last received a message from `from`
    // (or started, which its failure detector counts as hearing everyone).
    std::vector<std::vector<std::uint64_t>> heard_at_;
    // delivered_by_[from][to]: when the last message sent from -> to so far
    // arrives. A refusal comes after it: TCP delivers what a process sent
    // before its connection's end, and the redial follows that end.
    std::vector<std::vector<std::uint64_t>> delivered_by_;
    std::map<Epoch, NodeId> history_;     // every leadership seen: at most one leader per epoch, ever
    std::map<Epoch, Guard> guards_;       // one per epoch an up node leads now
    SimStats stats_;
};

}  // namespace rl::election::sim
