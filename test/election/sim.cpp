#include "election/quorum.hpp"
#include "sim.hpp"

#include "describe.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

namespace rl::election::sim {

namespace {

Epoch sender_epoch(const ElectionMessage& msg) {
    return std::visit([](const auto& m) { return m.epoch; }, msg);
}

}  // namespace

Sim::Sim(const SimConfig& config)
    : config_(config),
      rng_(config.seed),
      net_(config.nodes),
      heard_at_(config.nodes, std::vector<std::uint64_t>(config.nodes, 0)),
      delivered_by_(config.nodes, std::vector<std::uint64_t>(config.nodes, 0)) {
    for (std::size_t i = 0; i < config_.nodes; ++i) {
        Node n;
        n.id = NodeId{i + 1};
        n.tick_offset_ms = config_.aligned_ticks ? 0 : rng_() % config_.tick_ms;
        nodes_.push_back(std::move(n));
    }
}

Sim::Node& Sim::node(NodeId id) { return nodes_.at(id.value - 1); }
const Sim::Node& Sim::node(NodeId id) const { return nodes_.at(id.value - 1); }

std::vector<NodeId> Sim::ids() const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) out.push_back(n.id);
    return out;
}

bool Sim::is_up(NodeId id) const { return node(id).core.has_value(); }
const Core& Sim::core(NodeId id) const { return *node(id).core; }

std::vector<NodeId> Sim::up_nodes() const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) {
        if (n.core) out.push_back(n.id);
    }
    return out;
}

std::vector<NodeId> Sim::down_nodes() const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) {
        if (!n.core) out.push_back(n.id);
    }
    return out;
}

std::vector<NodeId> Sim::leaders() const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) {
        if (n.core && n.core->role_kind() == RoleKind::leader) out.push_back(n.id);
    }
    return out;
}

std::optional<std::pair<Epoch, NodeId>> Sim::agreed_leader(const std::vector<NodeId>& among) const {
    std::optional<std::pair<Epoch, NodeId>> view;
    for (NodeId id : among) {
        if (!is_up(id)) continue;
        const std::pair<Epoch, NodeId> mine{core(id).epoch(), core(id).leader()};
        if (mine.second == kNoNode || (view && *view != mine)) return std::nullopt;
        view = mine;
    }
    if (!view || !is_up(view->second)) return std::nullopt;
    const Core& l = core(view->second);
    if (l.role_kind() != RoleKind::leader || l.epoch() != view->first) return std::nullopt;
    return view;
}

std::uint64_t Sim::liveness_bound_ms() const {
    return 2 * (config_.timing.suspect_after_ticks + config_.timing.election_timeout_ticks) * config_.tick_ms;
}

// The detector suspects after suspect_after silent ticks and the leader
// checks the quorum in that same tick; the last message may have arrived
// just after a tick.
std::uint64_t Sim::step_down_bound_ms() const {
    return (config_.timing.suspect_after_ticks + 1) * config_.tick_ms;
}

void Sim::start(NodeId id) {
    Node& n = node(id);
    if (n.core) fail("start of a running node");
    Params p{id, ids(), config_.algorithm, config_.timing, rng_()};
    n.core.emplace(std::move(p), n.disk);
    ++n.incarnation;
    std::fill(heard_at_[id.value - 1].begin(), heard_at_[id.value - 1].end(), now_ms());
    trace("n" + std::to_string(id.value) + " start epoch=" + std::to_string(n.disk.epoch.value) +
          " promised=" + std::to_string(n.disk.promised.value));
    const std::uint64_t phase = now_ms() % config_.tick_ms;
    const std::uint64_t wait = (n.tick_offset_ms + config_.tick_ms - phase) % config_.tick_ms;
    timeline_.push(
        Item{now_ms() + (wait == 0 ? config_.tick_ms : wait), 0, Item::Kind::tick, id, kNoNode, n.incarnation, 0});
    handle_output(n);
    check_invariants();
}

void Sim::start_all() {
    for (const auto& id : ids()) {
        if (!is_up(id)) start(id);
    }
}

void Sim::crash(NodeId id) {
    if (simcommon::chance(rng_, config_.live_host_crashes)) return kill(id);
    crash_silently(id);
}

void Sim::crash_silently(NodeId id) {
    Node& n = node(id);
    if (!n.core) return;
    trace("n" + std::to_string(id.value) + " crash");
    n.core.reset();
    ++stats_.crashes;
    lose_contact(id);
}

// The peers' connections from the dead process drop (if its side of the
// link still carries anything) and their redials are refused a little later.
void Sim::kill(NodeId id) {
    if (!is_up(id)) return;
    crash_silently(id);
    trace("n" + std::to_string(id.value) + " host live: peers will be refused");
    const std::uint64_t crashed = node(id).incarnation;
    for (const auto& peer : nodes_) {
        if (peer.id == id || !peer.core || net_.links().is_cut(id, peer.id)) continue;
        const std::uint64_t delay = 1 + rng_() % std::max<std::uint64_t>(1, config_.refusal_delay_ms_max);
        const std::uint64_t at = std::max(now_ms() + delay, delivered_by_[id.value - 1][peer.id.value - 1] + 1);
        Item item{at, 0, Item::Kind::refused, peer.id, id, peer.incarnation, 0};
        item.from_incarnation = crashed;
        timeline_.push(item);
    }
}

// Only an observer that is still the incarnation that was connected sees
// the refusal, and only while the crashed node has not restarted.
void Sim::refuse(const Item& item) {
    Node& n = node(item.to);
    const Node& dead = node(item.from);
    if (!n.core || n.incarnation != item.incarnation || dead.core || dead.incarnation != item.from_incarnation) return;
    trace("n" + std::to_string(item.to.value) + " refused by n" + std::to_string(item.from.value));
    ++stats_.refusals;
    n.core->peer_refused(item.from);
}

void Sim::set_faults(const NetFaults& faults) {
    faults_ = faults;
    net_.set_faults(faults);
}

void Sim::partition(const std::vector<std::vector<NodeId>>& groups) {
    net_.links().partition(groups);
    trace("partition");
}

void Sim::cut(NodeId from, NodeId to) {
    net_.links().cut(from, to);
    trace("cut n" + std::to_string(from.value) + " -> n" + std::to_string(to.value));
}

void Sim::heal() {
    net_.links().heal();
    trace("heal");
}

void Sim::run_for(std::uint64_t ms) {
    run_until([] { return false; }, ms);
}

bool Sim::run_until(const std::function<bool()>& done, std::uint64_t max_ms) {
    return timeline_.run_until(done, max_ms, [this](Item& item) { process(item); });
}

void Sim::process(Item& item) {
    Node& n = node(item.to);
    if (item.kind == Item::Kind::refused) {
        refuse(item);
        if (!n.core) return;
    } else if (item.kind == Item::Kind::tick) {
        if (!n.core || n.incarnation != item.incarnation) return;  // a tick of a crashed incarnation
        n.core->tick();
        timeline_.push(Item{now_ms() + config_.tick_ms, 0, Item::Kind::tick, n.id, kNoNode, n.incarnation, 0});
    } else {
        const ElectionMessage msg = net_.take(item.mail_slot);
        if (!n.core || net_.links().is_cut(item.from, item.to)) {
            ++stats_.messages_lost;
            return;
        }
        if (config_.trace) trace(describe(item.from, item.to, msg));
        heard_at_[item.to.value - 1][item.from.value - 1] = now_ms();
        n.core->step(item.from, msg);
    }
    handle_output(n);
    check_invariants();
}

// The shell's fixed order (docs/design.md section 9, habit 1): persist, then send. A crash
// before the persist loses the output entirely; a crash after it loses only
// the messages, never what was written.
void Sim::handle_output(Node& n) {
    Output out = n.core->take_output();
    for (const auto& ev : out.events) {
        if (ev.kind == EventKind::election_started) ++stats_.elections_started;
        if (!config_.trace) continue;
        std::ostringstream os;
        os << "n" << n.id << " " << ev;
        trace(os.str());
    }
    if (out.persist) {
        if (simcommon::chance(rng_, faults_.crash_before_persist)) return crash(n.id);
        n.disk = *out.persist;
        if (simcommon::chance(rng_, faults_.crash_after_persist)) return crash(n.id);
    }
    if (out.elected) ++stats_.elections_won;
    for (auto& env : out.messages) {
        check_sent(n, env.msg);
        send(n.id, std::move(env));
    }
}

void Sim::send(NodeId from, Envelope&& env) {
    ++stats_.messages_sent;
    const bool sent = net_.send(rng_, std::move(env.msg), [&](std::uint64_t delay_ms, std::size_t slot) {
        auto& by = delivered_by_[from.value - 1][env.to.value - 1];
        by = std::max(by, now_ms() + delay_ms);
        timeline_.push(Item{now_ms() + delay_ms, 0, Item::Kind::deliver, env.to, from, 0, slot});
    });
    if (!sent) ++stats_.messages_lost;
}

// Persist before send (docs/design.md section 5): the epoch a message carries, and any
// promise it makes or asks for, is already on the sender's disk.
void Sim::check_sent(const Node& n, const ElectionMessage& msg) const {
    if (sender_epoch(msg) > n.disk.epoch) fail("n" + std::to_string(n.id.value) + " sent an epoch not on disk");
    const auto* reply = std::get_if<PromiseReply>(&msg);
    const auto* request = std::get_if<PromiseRequest>(&msg);
    const bool promises = (reply != nullptr && reply->granted) || request != nullptr;
    if (promises && n.disk.promised < sender_epoch(msg)) {
        fail("n" + std::to_string(n.id.value) + " sent a promise not on disk");
    }
}

// docs/design.md section 5 invariants, after every event.
void Sim::check_invariants() {
    for (auto& n : nodes_) {
        if (!n.core) continue;
        const Core& c = *n.core;
        const auto who = [&] { return "n" + std::to_string(n.id.value); };
        if (c.epoch() < n.max_epoch) fail(who() + " epoch decreased");
        n.max_epoch = c.epoch();
        if (c.durable() != n.disk) fail(who() + " state changed without a persist");
        if (c.role_kind() != RoleKind::leader) continue;
        const auto [it, fresh] = history_.emplace(c.epoch(), n.id);
        if (!fresh && it->second != n.id) {
            fail("two leaders in epoch " + std::to_string(c.epoch().value) + ": n" +
                 std::to_string(it->second.value) + " and " + who());
        }
        if (!heard_majority_lately(n.id)) fail(who() + " still leads without hearing a majority");
    }
    check_live_leader_kept();
}

// Check-quorum (docs/design.md section 5) as the checker sees it: a leader must step down
// once it has not received anything from a majority, itself included, for
// the step-down bound. Drops count like cuts: silence is silence.
bool Sim::heard_majority_lately(NodeId id) const {
    std::size_t heard = 1;
    for (const auto& from : nodes_) {
        if (from.id != id && now_ms() - heard_at_[id.value - 1][from.id.value - 1] <= step_down_bound_ms()) ++heard;
    }
    return heard >= election::majority(config_.nodes);
}

// No leader heard by a majority is ever deposed (docs/design.md section 5:
// stickiness, and the pre-vote before any epoch is raised). A guard watches
// each epoch an up node L leads. A node is in steady contact with L when it
// is up, in L's epoch and names L as leader, neither link between them is
// cut, and each received from the other within the contact window, which
// ends three ticks short of suspect_after: neither failure detector can
// suspect the other by the next event, so L passes check-quorum and the
// node refuses any pre-vote while it lasts. The guard arms once L (leading)
// and others, a majority in all, have each been in steady contact without a
// break for the hold time: an election timeout plus the longest delay of
// the run, so any pre-vote grant one of them sent before its contact began
// has reached its candidate, and the pre-vote it counted in is over. While
// armed:
// - no node's epoch rises above the ceiling, the highest epoch on any disk
//   when the guard armed: a new epoch needs a majority's pre-vote, so one of
//   L's majority would have had to grant it;
// - L keeps leading, unless it crashed or adopted an epoch that already
//   existed (at most the ceiling): the epoch gate must adopt an epoch that a
//   majority once agreed to, and a message may carry one from before.
// The guard is judged against the state its last update saw, after every
// event; an epoch whose leader no longer leads loses its guard.
void Sim::check_live_leader_kept() {
    if (contact_window_ms() == 0) return;  // a suspect timeout too short to leave a margin
    for (auto it = guards_.begin(); it != guards_.end();) {
        if (it->second.ceiling) {
            judge(it->first, it->second);
            ++stats_.guarded_checks;
        }
        const NodeId l = it->second.leader;
        const bool leads = is_up(l) && core(l).role_kind() == RoleKind::leader && core(l).epoch() == it->first;
        it = leads ? std::next(it) : guards_.erase(it);
    }
    for (const auto& n : nodes_) {
        if (!n.core || n.core->role_kind() != RoleKind::leader) continue;
        const Epoch led = n.core->epoch();
        auto it = guards_.find(led);
        if (it == guards_.end()) {
            it = guards_.emplace(led, Guard{n.id, std::vector<std::optional<std::uint64_t>>(nodes_.size()), {}}).first;
        }
        if (it->second.leader == n.id) update(led, it->second);
    }
}

void Sim::judge(Epoch led, const Guard& g) const {
    const auto who = [](NodeId id) { return "n" + std::to_string(id.value); };
    const auto why = [&] {
        return " while " + who(g.leader) + " led epoch " + std::to_string(led.value) +
               " heard by a majority (highest epoch anywhere then: " + std::to_string(g.ceiling->value) + ")";
    };
    for (const auto& n : nodes_) {
        if (n.disk.epoch > *g.ceiling) {
            fail(who(n.id) + " raised its epoch to " + std::to_string(n.disk.epoch.value) + why());
        }
    }
    const Node& l = node(g.leader);
    if (l.core && l.core->epoch() == led && l.core->role_kind() != RoleKind::leader) {
        fail(who(g.leader) + " stopped leading" + why());
    }
}

void Sim::update(Epoch led, Guard& g) {
    const std::uint64_t now = now_ms();
    const std::uint64_t hold = guard_hold_ms();
    const std::uint64_t window = contact_window_ms();
    std::size_t held = 0;
    for (const auto& n : nodes_) {
        auto& since = g.contact_since_ms[n.id.value - 1];
        if (n.id != g.leader && !in_steady_contact(g.leader, led, n, window)) {
            since.reset();
            continue;
        }
        if (!since) since = now;
        if (now - *since >= hold) ++held;
    }
    if (held < election::majority(nodes_.size())) {
        g.ceiling.reset();
    } else if (!g.ceiling) {
        g.ceiling = highest_epoch();
    }
}

// A crash ends the guard of an epoch the node led and its contact in the
// others at once: a crash and a restart may come with no event between them.
void Sim::lose_contact(NodeId id) {
    std::erase_if(guards_, [&](const auto& entry) { return entry.second.leader == id; });
    for (auto& [led, g] : guards_) {
        g.contact_since_ms[id.value - 1].reset();
        update(led, g);
    }
}

bool Sim::in_steady_contact(NodeId leader, Epoch led, const Node& n, std::uint64_t window_ms) const {
    if (!n.core || n.core->epoch() != led || n.core->leader() != leader) return false;
    if (net_.links().is_cut(leader, n.id) || net_.links().is_cut(n.id, leader)) return false;
    const std::uint64_t heard_leader = heard_at_[n.id.value - 1][leader.value - 1];
    const std::uint64_t leader_heard = heard_at_[leader.value - 1][n.id.value - 1];
    return now_ms() - heard_leader <= window_ms && now_ms() - leader_heard <= window_ms;
}

Epoch Sim::highest_epoch() const {
    Epoch top;
    for (const auto& n : nodes_) top = std::max(top, n.disk.epoch);
    return top;
}

std::uint64_t Sim::contact_window_ms() const {
    const std::uint64_t s = config_.timing.suspect_after_ticks;
    return s > 3 ? (s - 3) * config_.tick_ms : 0;
}

std::uint64_t Sim::guard_hold_ms() const {
    return (config_.timing.election_timeout_ticks + 1) * config_.tick_ms + max_delay_ever_ms();
}

void Sim::fail(const std::string& what) const {
    throw SimFailure("t=" + std::to_string(now_ms()) + "ms: " + what);
}

void Sim::trace(const std::string& line) const {
    if (config_.trace) std::cout << "[" << now_ms() << "ms] " << line << "\n";
}

}  // namespace rl::election::sim
