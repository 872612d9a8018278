// The event loop, the nodes' lives and the simulated network.
#include "sim.hpp"

#include "describe_txn.hpp"

#include <array>
#include <iostream>
#include <tuple>

namespace rl::txn::sim {
namespace {

// The one INI of the simulated deployment as node `id` reads it.
std::string ini_text(const SimConfig& c, NodeId id) {
    std::uint32_t window = c.dedup_window;
    std::uint32_t sessions = c.sessions_max;
    if (auto it = c.dedup_of.find(id.value); it != c.dedup_of.end()) std::tie(window, sessions) = it->second;
    const auto ms = [&](std::uint64_t ticks) { return std::to_string(ticks * c.tick_ms); };
    std::string sections;
    for (std::size_t k = 1; k <= c.shards; ++k) {
        std::string nodes;
        for (std::size_t i = (k - 1) * c.nodes + 1; i <= k * c.nodes; ++i) {
            nodes += (nodes.empty() ? "" : ",") + std::to_string(i);
        }
        sections += "[shard." + std::to_string(k) + "]\nitems = " + std::to_string((k - 1) * c.items + 1) + "-" +
                    std::to_string(k * c.items) + "\nnodes = " + nodes + "\n";
    }
    for (std::size_t i = 1; i <= c.shards * c.nodes; ++i) {
        sections += "[node." + std::to_string(i) + "]\naddress = 127.0.0.1:" + std::to_string(7000 + i) + "\n";
    }
    return "[cluster]\nname = sim\nelection = " + std::string(config::to_string(c.algorithm)) +
           "\nheartbeat_ms = " + ms(c.timing.heartbeat_ticks) + "\nsuspect_after_ms = " + ms(c.timing.suspect_after_ticks) +
           "\nelection_timeout_ms = " + ms(c.timing.election_timeout_ticks) + "\ntick_ms = " + std::to_string(c.tick_ms) +
           "\ninitial_balance = " + std::to_string(c.initial_balance) + "\nfsync = always\nframe_bytes_max = " +
           std::to_string(c.frame_bytes_max) + "\nsnapshot_after_entries = " + std::to_string(c.snapshot_after_entries) +
           "\nsnapshot_after_bytes = " + std::to_string(c.snapshot_after_bytes) +
           "\ndedup_window = " + std::to_string(window) + "\ndedup_clients_max = " + std::to_string(sessions) +
           "\nwal_backlog_bytes_max = " + std::to_string(c.wal_backlog_bytes_max) + "\n" + sections;
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
    sessions_opened += o.sessions_opened;
    replays += o.replays;
    batches_answered += o.batches_answered;
    expired_answers += o.expired_answers;
    session_expired_answers += o.session_expired_answers;
    disk_errors += o.disk_errors;
    torn_recoveries += o.torn_recoveries;
    simulated_ms += o.simulated_ms;
    cross_committed_acked += o.cross_committed_acked;
    cross_aborted_acked += o.cross_aborted_acked;
    early_acks += o.early_acks;
    cross_prepared += o.cross_prepared;
    cross_committed += o.cross_committed;
    fences += o.fences;
    forgotten += o.forgotten;
    unreachable_reports += o.unreachable_reports;
    refusals += o.refusals;
}

Sim::Sim(const SimConfig& config)
    : config_(config),
      rng_(config.seed),
      sync_rng_(config.seed ^ 0x5eed5eedULL),
      background_sync_(std::array{0.0, 0.5, 1.0}[(config.seed / 3) % 3]),
      // Segments that grow write by write, or reserve a few batches or a
      // few dozen ahead (rlnode reserves megabytes).
      preallocate_bytes_(std::array<std::uint64_t, 3>{0, 256, 4096}[(config.seed / 9) % 3]),
      nodes_(config.shards * config.nodes),
      net_(config.shards * config.nodes),
      state_hashes_(config.shards),
      max_epoch_(config.shards * config.nodes) {
    for (std::size_t k = 1; k <= config_.shards; ++k) {
        oracles_.emplace_back(ShardId{k});
        mirrors_.emplace_back(ShardId{k});
    }
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        Node& n = nodes_[i];
        n.id = NodeId{i + 1};
        n.shard = shard_of(n.id);
        ids_.push_back(n.id);
        n.config = config::Config::parse(ini_text(config_, n.id), "/sim/sim.ini");
        n.tick_offset_ms = uniform(0, config_.tick_ms - 1);
    }
    start_clients();
}

Sim::Node& Sim::node(NodeId id) { return nodes_.at(id.value - 1); }
const Sim::Node& Sim::node(NodeId id) const { return nodes_.at(id.value - 1); }

std::vector<NodeId> Sim::ids() const { return ids_; }

std::vector<NodeId> Sim::shard_nodes(ShardId shard) const {
    std::vector<NodeId> out;
    for (std::size_t i = (shard.value - 1) * config_.nodes + 1; i <= shard.value * config_.nodes; ++i) {
        out.push_back(NodeId{i});
    }
    return out;
}

std::vector<NodeId> Sim::shard_up(ShardId shard) const {
    std::vector<NodeId> out;
    for (NodeId id : shard_nodes(shard)) {
        if (is_up(id)) out.push_back(id);
    }
    return out;
}

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

std::uint64_t Sim::tick_wakes(NodeId id) const { return node(id).tick_wakes; }
const ShellStats& Sim::shell_stats(NodeId id) const { return node(id).shell->stats(); }
const WalStats& Sim::wal_stats(NodeId id) const { return node(id).wal->stats(); }

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
    open_node(n);
    ++n.incarnation;
    n.flush_scheduled = false;
    // Links to and from it dial afresh.
    for (auto& [pair, dial] : dials_) {
        if (pair.first == id.value || pair.second == id.value) dial = Dial{};
    }
    rebuild_shadow(n);
    trace("n" + std::to_string(id.value) + " start epoch=" + std::to_string(n.model.disk().durable.epoch.value) +
          " snapshot=" + std::to_string(n.model.disk().snapshot_index().value) +
          " last=" + std::to_string(n.model.disk().last_index().value));
    const std::uint64_t phase = now_ms() % config_.tick_ms;
    const std::uint64_t wait = (n.tick_offset_ms + config_.tick_ms - phase) % config_.tick_ms;
    n.tick_origin_ms = now_ms() + (wait == 0 ? config_.tick_ms : wait) - config_.tick_ms;
    n.tick_armed = false;
    n.tick_wakes = 0;
    flush(n);  // the constructor's output (a one-node shard leads at once); arms the first tick
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
    n.unsynced = n.shell->unsynced();
    n.shell.reset();
    n.host.reset();
    n.replica.reset();
    n.wal.reset();
    n.disk.crash(rng_);
    n.model.crash();
    n.flush_scheduled = false;
    n.sync_file = nullptr;
    ++stats_.crashes;
    if (!chance(config_.live_host_crashes)) return;
    // A live host refuses the redials of its shard's members.
    for (NodeId peer : ids()) {
        if (peer == id || shard_of(peer) != shard_of(id) || !is_up(peer)) continue;
        timeline_.push(Item{now_ms() + uniform(1, 3), 0, Item::Kind::refused, peer, id, node(peer).incarnation});
    }
}

void Sim::set_faults(const NetFaults& faults) {
    faults_ = faults;
    net_.set_faults(faults);
    // Disk errors the WAL must live through: EIO or ENOSPC on writes and on
    // fsyncs (a failed fsync also drops the unsynced pages, as Linux may).
    if (faults.disk_error <= 0) {
        for (auto& n : nodes_) n.disk.clear_faults();
        return;
    }
    const auto error = [&] { return uniform(0, 1) == 0 ? std::errc::io_error : std::errc::no_space_on_device; };
    for (auto& n : nodes_) {
        n.disk.clear_faults();
        for (auto call : {simcommon::StorageCall::write, simcommon::StorageCall::sync, simcommon::StorageCall::sync_dir}) {
            n.disk.fail_randomly(call, faults.disk_error, error(), rng_);
        }
    }
}

SimStats Sim::stats() const {
    SimStats s = stats_;
    for (const auto& n : nodes_) s.disk_errors += n.disk.injected_total();
    for (const auto& o : oracles_) {
        s.cross_prepared += o.cross_prepared();
        s.fences += o.cross_fences();
        s.forgotten += o.cross_forgotten();
    }
    s.simulated_ms = now_ms();
    return s;
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
    return timeline_.run_until(done, max_ms, [this](const Item& item) { process(item); });
}

void Sim::process(const Item& item) {
    if (item.kind == Item::Kind::client) {
        client_timer(item.tag >> 32, item.tag & 0xffffffffu);
        return check_invariants();
    }
    Node& n = node(item.to);
    switch (item.kind) {
        case Item::Kind::tick:
            if (!n.replica || n.incarnation != item.tag) return;  // a tick of a crashed incarnation
            if (!n.tick_armed || item.time_ms != n.tick_at_ms) return;  // superseded by an earlier one
            n.tick_armed = false;
            ++n.tick_wakes;
            catch_up(n);
            after_input(n);
            arm_tick(n);  // in case the flush was deferred
            break;
        case Item::Kind::deliver:
            deliver(n, item.from, item.tag);
            break;
        case Item::Kind::flush:
            if (!n.replica || n.incarnation != item.tag) return;
            n.flush_scheduled = false;
            flush(n);
            break;
        case Item::Kind::unreachable:
            if (!n.replica || n.incarnation != item.tag) return;
            on_unreachable(n, item.from);
            break;
        case Item::Kind::sync_done:
            if (!n.replica || n.incarnation != item.tag) return;
            finish_sync(n);
            break;
        case Item::Kind::refused:
            if (!n.replica || n.incarnation != item.tag || is_up(item.from)) return;  // it restarted first
            ++stats_.refusals;
            trace("n" + std::to_string(n.id.value) + " refused by n" + std::to_string(item.from.value));
            catch_up(n);
            n.shell->peer_refused(item.from);
            after_input(n);
            break;
        case Item::Kind::client:
            break;
    }
    check_invariants();
}

void Sim::deliver(Node& n, NodeId from, std::uint64_t slot) {
    Mail mail = net_.take(slot);
    if (!n.replica || net_.links().is_cut(from, n.id)) {
        ++stats_.messages_lost;
        return;
    }
    if (config_.trace) trace(describe(from, n.id, mail));
    catch_up(n);
    std::visit([&](const auto& m) { n.shell->step(from, m); }, mail);
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
        timeline_.push(Item{now_ms() + uniform(1, 5), 0, Item::Kind::flush, n.id, kNoNode, n.incarnation});
        return;
    }
    flush(n);
}

void Sim::catch_up(Node& n) { n.shell->advance_to((now_ms() - n.tick_origin_ms) / config_.tick_ms); }

// After every turn, as rlnode: the timer follows the next tick that may
// act; an item armed before and superseded is ignored when it comes.
void Sim::arm_tick(Node& n) {
    if (!n.shell) return;  // it crashed in its turn
    const std::uint64_t at = n.tick_origin_ms + n.shell->next_tick() * config_.tick_ms;
    if (n.tick_armed && n.tick_at_ms == at) return;
    n.tick_armed = true;
    n.tick_at_ms = at;
    timeline_.push(Item{at, 0, Item::Kind::tick, n.id, kNoNode, n.incarnation});
}

void Sim::send(NodeId from, NodeId to, Mail mail) {
    ++stats_.messages_sent;
    if (capture_) {
        const auto* t = std::get_if<TxnMessage>(&mail);
        if (t != nullptr && std::holds_alternative<ShardRequest>(*t)) captured_.push_back({from, to, mail});
    }
    if (!is_up(to) && std::holds_alternative<TxnMessage>(mail)) note_unreachable(from, to);
    const bool sent = net_.send(rng_, std::move(mail), [&](std::uint64_t delay_ms, std::size_t slot) {
        timeline_.push(Item{now_ms() + delay_ms, 0, Item::Kind::deliver, to, from, slot});
    });
    if (!sent) ++stats_.messages_lost;
}

std::size_t Sim::replay_captured(bool prepares) {
    capture_ = false;
    std::size_t sent = 0;
    for (const Captured& c : captured_) {
        ShardRequest request = std::get<ShardRequest>(std::get<TxnMessage>(c.mail));
        std::erase_if(request.asks, [&](const ShardAsk& a) { return std::holds_alternative<PrepareAsk>(a) != prepares; });
        if (request.asks.empty() || !is_up(c.to)) continue;
        send(c.from, c.to, TxnMessage{std::move(request)});
        ++sent;
    }
    return sent;
}

// A send to a crashed node of another shard: as rlnode's peer link, the
// failed dial is reported to the sender's shell a moment later (then not
// again until its backoff has passed). A node's own shard members are left
// to the failure detector, as Replica::peer_unreachable does.
void Sim::note_unreachable(NodeId from, NodeId to) {
    if (!config_.report_unreachable || shard_of(from) == shard_of(to)) return;
    Dial& d = dials_[{from.value, to.value}];
    if (d.reporting || now_ms() < d.quiet_until_ms) return;
    d.reporting = true;
    const auto& limits = node(from).config.cluster().limits;
    d.backoff_ms = d.backoff_ms == 0 ? limits.reconnect_ms_min : std::min<std::uint64_t>(2 * d.backoff_ms, limits.reconnect_ms_max);
    const std::uint64_t at = now_ms() + uniform(1, 3);
    d.quiet_until_ms = at + d.backoff_ms;
    timeline_.push(Item{at, 0, Item::Kind::unreachable, from, to, node(from).incarnation});
}

void Sim::on_unreachable(Node& n, NodeId peer) {
    dials_[{n.id.value, peer.value}].reporting = false;
    if (is_up(peer)) return;  // it came back meanwhile: the dial succeeded
    ++stats_.unreachable_reports;
    trace("n" + std::to_string(n.id.value) + " cannot reach n" + std::to_string(peer.value));
    catch_up(n);
    n.shell->peer_unreachable(peer);
    after_input(n);
}

void Sim::fail(const std::string& what) const {
    throw SimFailure("t=" + std::to_string(now_ms()) + "ms: " + what);
}

void Sim::trace(const std::string& line) const {
    if (config_.trace) std::cout << "[" << now_ms() << "ms] " << line << "\n";
}

}  // namespace rl::txn::sim
