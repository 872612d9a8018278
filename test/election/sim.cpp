#include "sim.hpp"

#include "describe.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

namespace rl::election::sim {

namespace {

bool later(const auto& a, const auto& b) {
    return a.time_ms != b.time_ms ? a.time_ms > b.time_ms : a.seq > b.seq;
}

Epoch sender_epoch(const ElectionMessage& msg) {
    return std::visit([](const auto& m) { return m.epoch; }, msg);
}

}  // namespace

Sim::Sim(const SimConfig& config)
    : config_(config),
      rng_(config.seed),
      cut_(config.nodes, std::vector<bool>(config.nodes, false)),
      heard_at_(config.nodes, std::vector<std::uint64_t>(config.nodes, 0)) {
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
    std::fill(heard_at_[id.value - 1].begin(), heard_at_[id.value - 1].end(), now_ms_);
    trace("n" + std::to_string(id.value) + " start epoch=" + std::to_string(n.disk.epoch.value) +
          " promised=" + std::to_string(n.disk.promised.value));
    const std::uint64_t phase = now_ms_ % config_.tick_ms;
    const std::uint64_t wait = (n.tick_offset_ms + config_.tick_ms - phase) % config_.tick_ms;
    push(Item{now_ms_ + (wait == 0 ? config_.tick_ms : wait), 0, Item::Kind::tick, id, kNoNode, n.incarnation, 0});
    handle_output(n);
    check_invariants();
}

void Sim::start_all() {
    for (const auto& id : ids()) {
        if (!is_up(id)) start(id);
    }
}

void Sim::crash(NodeId id) {
    Node& n = node(id);
    if (!n.core) return;
    trace("n" + std::to_string(id.value) + " crash");
    n.core.reset();
    ++stats_.crashes;
}

void Sim::set_faults(const NetFaults& faults) {
    faults_ = faults;
    max_delay_ever_ms_ = std::max(max_delay_ever_ms_, faults.delay_max_ms);
}

void Sim::partition(const std::vector<std::vector<NodeId>>& groups) {
    std::vector<std::size_t> group_of(config_.nodes, groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
        for (NodeId id : groups[g]) group_of.at(id.value - 1) = g;
    }
    for (std::size_t a = 0; a < config_.nodes; ++a) {
        for (std::size_t b = 0; b < config_.nodes; ++b) cut_[a][b] = group_of[a] != group_of[b];
    }
    trace("partition");
}

void Sim::cut(NodeId from, NodeId to) {
    cut_.at(from.value - 1).at(to.value - 1) = true;
    trace("cut n" + std::to_string(from.value) + " -> n" + std::to_string(to.value));
}

void Sim::heal() {
    for (auto& row : cut_) std::fill(row.begin(), row.end(), false);
    trace("heal");
}

void Sim::run_for(std::uint64_t ms) {
    run_until([] { return false; }, ms);
}

bool Sim::run_until(const std::function<bool()>& done, std::uint64_t max_ms) {
    const std::uint64_t end = now_ms_ + max_ms;
    if (done()) return true;
    while (!heap_.empty() && heap_.front().time_ms <= end) {
        std::pop_heap(heap_.begin(), heap_.end(), [](const Item& a, const Item& b) { return later(a, b); });
        Item item = std::move(heap_.back());
        heap_.pop_back();
        process(item);
        if (done()) return true;
    }
    now_ms_ = end;
    return false;
}

void Sim::push(Item item) {
    item.seq = seq_++;
    heap_.push_back(std::move(item));
    std::push_heap(heap_.begin(), heap_.end(), [](const Item& a, const Item& b) { return later(a, b); });
}

void Sim::process(Item& item) {
    now_ms_ = item.time_ms;
    Node& n = node(item.to);
    if (item.kind == Item::Kind::tick) {
        if (!n.core || n.incarnation != item.incarnation) return;  // a tick of a crashed incarnation
        n.core->tick();
        push(Item{now_ms_ + config_.tick_ms, 0, Item::Kind::tick, n.id, kNoNode, n.incarnation, 0});
    } else {
        const ElectionMessage msg = std::move(mail_[item.mail_slot]);
        free_slots_.push_back(item.mail_slot);
        if (!n.core || cut_[item.from.value - 1][item.to.value - 1]) {
            ++stats_.messages_lost;
            return;
        }
        if (config_.trace) trace(describe(item.from, item.to, msg));
        heard_at_[item.to.value - 1][item.from.value - 1] = now_ms_;
        n.core->step(item.from, msg);
    }
    handle_output(n);
    check_invariants();
}

// The shell's fixed order (STYLE.md habit 1): persist, then send. A crash
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
        if (chance(faults_.crash_before_persist)) return crash(n.id);
        n.disk = *out.persist;
        if (chance(faults_.crash_after_persist)) return crash(n.id);
    }
    if (out.elected) ++stats_.elections_won;
    for (auto& env : out.messages) {
        check_sent(n, env.msg);
        send(n.id, std::move(env));
    }
}

bool Sim::chance(double p) {
    return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p;
}

void Sim::send(NodeId from, Envelope&& env) {
    ++stats_.messages_sent;
    if (chance(faults_.drop)) {
        ++stats_.messages_lost;
        return;
    }
    const int copies = chance(faults_.duplicate) ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
        const std::uint64_t delay =
            std::uniform_int_distribution<std::uint64_t>(faults_.delay_min_ms, faults_.delay_max_ms)(rng_);
        std::size_t slot = mail_.size();
        if (free_slots_.empty()) {
            mail_.push_back(env.msg);
        } else {
            slot = free_slots_.back();
            free_slots_.pop_back();
            mail_[slot] = env.msg;
        }
        push(Item{now_ms_ + delay, 0, Item::Kind::deliver, env.to, from, 0, slot});
    }
}

// Persist before send (DESIGN.md 5): the epoch a message carries, and any
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

// DESIGN.md 5 invariants, after every event.
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
}

// Check-quorum (DESIGN.md 5) as the checker sees it: a leader must step down
// once it has not received anything from a majority, itself included, for
// the step-down bound. Drops count like cuts: silence is silence.
bool Sim::heard_majority_lately(NodeId id) const {
    std::size_t heard = 1;
    for (const auto& from : nodes_) {
        if (from.id != id && now_ms_ - heard_at_[id.value - 1][from.id.value - 1] <= step_down_bound_ms()) ++heard;
    }
    return heard >= config_.nodes / 2 + 1;
}

void Sim::fail(const std::string& what) const {
    throw SimFailure("t=" + std::to_string(now_ms_) + "ms: " + what);
}

void Sim::trace(const std::string& line) const {
    if (config_.trace) std::cout << "[" << now_ms_ << "ms] " << line << "\n";
}

}  // namespace rl::election::sim
