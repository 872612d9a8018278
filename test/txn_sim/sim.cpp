// The event loop, the nodes' lives and the simulated network.
#include "sim.hpp"

#include "describe_txn.hpp"

#include <algorithm>
#include <iostream>

namespace rl::txn::sim {
namespace {

bool later(const auto& a, const auto& b) { return a.time_ms != b.time_ms ? a.time_ms > b.time_ms : a.seq > b.seq; }

config::ShardConfig make_shard(const SimConfig& c) {
    config::ShardConfig s{ShardId{1}, {config::ItemRange{ItemId{1}, ItemId{c.items}}}, {}};
    for (std::size_t i = 1; i <= c.nodes; ++i) s.nodes.push_back(NodeId{i});
    return s;
}

}  // namespace

void SimStats::add(const SimStats& o) {
    messages_sent += o.messages_sent;
    messages_lost += o.messages_lost;
    crashes += o.crashes;
    committed_acked += o.committed_acked;
    aborted_acked += o.aborted_acked;
    reads_checked += o.reads_checked;
    client_retries += o.client_retries;
    snapshots_installed += o.snapshots_installed;
    committed_entries += o.committed_entries;
    committed_copies_dropped += o.committed_copies_dropped;
}

Sim::Sim(const SimConfig& config)
    : config_(config),
      shard_(make_shard(config)),
      rng_(config.seed),
      cut_(config.nodes, std::vector<bool>(config.nodes, false)),
      oracle_(config.items, config.initial_balance),
      max_epoch_(config.nodes) {
    for (std::size_t i = 0; i < config_.nodes; ++i) {
        Node n;
        n.id = NodeId{i + 1};
        n.tick_offset_ms = rng_() % config_.tick_ms;
        nodes_.push_back(std::move(n));
    }
    start_clients();
}

Sim::Node& Sim::node(NodeId id) { return nodes_.at(id.value - 1); }
const Sim::Node& Sim::node(NodeId id) const { return nodes_.at(id.value - 1); }

std::vector<NodeId> Sim::ids() const { return shard_.nodes; }

std::vector<NodeId> Sim::up_nodes() const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) {
        if (n.replica) out.push_back(n.id);
    }
    return out;
}

std::vector<NodeId> Sim::down_nodes() const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) {
        if (!n.replica) out.push_back(n.id);
    }
    return out;
}

bool Sim::is_up(NodeId id) const { return node(id).replica.has_value(); }
const Replica& Sim::replica(NodeId id) const { return *node(id).replica; }

std::vector<NodeId> Sim::leaders() const {
    std::vector<NodeId> out;
    for (const auto& n : nodes_) {
        if (n.replica && n.replica->role() == election::RoleKind::leader) out.push_back(n.id);
    }
    return out;
}

std::optional<std::pair<Epoch, NodeId>> Sim::agreed_leader(const std::vector<NodeId>& among) const {
    std::optional<std::pair<Epoch, NodeId>> view;
    for (NodeId id : among) {
        if (!is_up(id)) continue;
        const std::pair<Epoch, NodeId> mine{replica(id).epoch(), replica(id).leader()};
        if (mine.second == kNoNode || (view && *view != mine)) return std::nullopt;
        view = mine;
    }
    if (!view || !is_up(view->second)) return std::nullopt;
    const Replica& l = replica(view->second);
    if (l.role() != election::RoleKind::leader || l.epoch() != view->first || !l.log().ready()) return std::nullopt;
    return view;
}

std::uint64_t Sim::liveness_bound_ms() const {
    return 2 * (config_.timing.suspect_after_ticks + config_.timing.election_timeout_ticks) * config_.tick_ms;
}

void Sim::start(NodeId id) {
    Node& n = node(id);
    if (n.replica) fail("start of a running node");
    ReplicaParams p;
    p.election = {id, ids(), config_.algorithm, config_.timing, rng_()};
    p.log.append_entries_max = config_.append_entries_max;
    p.log.heartbeat_ticks = config_.timing.heartbeat_ticks;
    p.log.retransmit_ticks = config_.timing.suspect_after_ticks;
    p.log.adopt_timeout_ticks = 2 * config_.timing.election_timeout_ticks;
    p.compact_after_entries = config_.compact_after_entries;
    p.op_timeout_ticks = config_.op_timeout_ticks;
    // Like rlnode's random base: forward ids never repeat across restarts.
    p.forward_id_base = (std::uint64_t{n.incarnation} + 1) << 40;
    n.replica.emplace(p, shard_, config_.initial_balance, n.wal.recovered());
    ++n.incarnation;
    n.flush_scheduled = false;
    rebuild_shadow(n);
    trace("n" + std::to_string(id.value) + " start epoch=" + std::to_string(n.wal.disk().durable.epoch.value) +
          " snapshot=" + std::to_string(n.wal.disk().snapshot_index().value) +
          " last=" + std::to_string(n.wal.disk().last_index().value));
    const std::uint64_t phase = now_ms_ % config_.tick_ms;
    const std::uint64_t wait = (n.tick_offset_ms + config_.tick_ms - phase) % config_.tick_ms;
    push(Item{now_ms_ + (wait == 0 ? config_.tick_ms : wait), 0, Item::Kind::tick, id, kNoNode, n.incarnation});
    flush(n);  // the constructor's output (a one-node shard leads at once)
    check_invariants();
}

void Sim::start_all() {
    for (NodeId id : ids()) {
        if (!is_up(id)) start(id);
    }
}

void Sim::crash(NodeId id) {
    Node& n = node(id);
    if (!n.replica) return;
    observe(n);  // what it committed before dying stays committed
    trace("n" + std::to_string(id.value) + " crash");
    n.replica.reset();
    n.wal.crash();
    n.flush_scheduled = false;
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
        const Item item = heap_.back();
        heap_.pop_back();
        process(item);
        if (done()) return true;
    }
    now_ms_ = end;
    return false;
}

void Sim::push(Item item) {
    item.seq = seq_++;
    heap_.push_back(item);
    std::push_heap(heap_.begin(), heap_.end(), [](const Item& a, const Item& b) { return later(a, b); });
}

void Sim::process(const Item& item) {
    now_ms_ = item.time_ms;
    if (item.kind == Item::Kind::client) {
        client_timer(item.tag >> 32, item.tag & 0xffffffffu);
        return check_invariants();
    }
    Node& n = node(item.to);
    switch (item.kind) {
        case Item::Kind::tick:
            if (!n.replica || n.incarnation != item.tag) return;  // a tick of a crashed incarnation
            n.replica->tick();
            push(Item{now_ms_ + config_.tick_ms, 0, Item::Kind::tick, n.id, kNoNode, n.incarnation});
            after_input(n);
            break;
        case Item::Kind::deliver:
            deliver(n, item.from, item.tag);
            break;
        case Item::Kind::flush:
            if (!n.replica || n.incarnation != item.tag) return;
            n.flush_scheduled = false;
            flush(n);
            break;
        case Item::Kind::client:
            break;
    }
    check_invariants();
}

void Sim::deliver(Node& n, NodeId from, std::uint64_t slot) {
    Mail mail = std::move(mail_[slot]);
    free_slots_.push_back(slot);
    if (!n.replica || cut_[from.value - 1][n.id.value - 1]) {
        ++stats_.messages_lost;
        return;
    }
    if (config_.trace) trace(describe(from, n.id, mail));
    std::visit([&](const auto& m) { n.replica->step(from, m); }, mail);
    after_input(n);
}

// rlnode posts one flush per io_context turn after its inputs land in the
// replica; a deferred flush lets several inputs share one sync (group
// commit), and a crash before it loses them all.
void Sim::after_input(Node& n) {
    n.shadow_current = false;
    if (n.flush_scheduled) return;
    if (chance(faults_.defer_sync)) {
        n.flush_scheduled = true;
        push(Item{now_ms_ + uniform(1, 5), 0, Item::Kind::flush, n.id, kNoNode, n.incarnation});
        return;
    }
    flush(n);
}

bool Sim::chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

std::uint64_t Sim::uniform(std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
}

void Sim::send(NodeId from, NodeId to, Mail mail) {
    ++stats_.messages_sent;
    if (chance(faults_.drop)) {
        ++stats_.messages_lost;
        return;
    }
    const int copies = chance(faults_.duplicate) ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
        std::size_t slot = mail_.size();
        if (free_slots_.empty()) {
            mail_.push_back(i + 1 < copies ? mail : std::move(mail));
        } else {
            slot = free_slots_.back();
            free_slots_.pop_back();
            mail_[slot] = i + 1 < copies ? mail : std::move(mail);
        }
        push(Item{now_ms_ + uniform(faults_.delay_min_ms, faults_.delay_max_ms), 0, Item::Kind::deliver, to, from, slot});
    }
}

void Sim::fail(const std::string& what) const { throw SimFailure("t=" + std::to_string(now_ms_) + "ms: " + what); }

void Sim::trace(const std::string& line) const {
    if (config_.trace) std::cout << "[" << now_ms_ << "ms] " << line << "\n";
}

}  // namespace rl::txn::sim
