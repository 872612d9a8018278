// The node's edge: client requests in, replies out, and peer messages
// handed to the replica. Requests for another shard are passed to a node of
// that shard; nothing here reads "who leads" from the config.
#include "node/node.hpp"

#include "config/overload.hpp"

#include <set>
#include <type_traits>

namespace rl::node {
namespace {
const char* event_name(election::EventKind k) {
    // The failure detector's transitions keep the names operators grep for.
    if (k == election::EventKind::peer_suspected) return "suspect";
    if (k == election::EventKind::peer_recovered) return "recover";
    return election::to_string(k);
}

transport::NodeRole node_role(election::RoleKind r) {
    switch (r) {
        case election::RoleKind::leader: return transport::NodeRole::leader;
        case election::RoleKind::candidate: return transport::NodeRole::candidate;
        case election::RoleKind::follower: return transport::NodeRole::follower;
    }
    return transport::NodeRole::follower;
}

}  // namespace

void Node::on_peer_message(NodeId from, Message&& m) {
    if (failed_) return;  // fault injection: a failed node hears nothing
    catch_up();
    std::visit(
        [&](auto&& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (transport::is_alternative_v<T, election::ElectionMessage>) {
                shell_->step(from, election::ElectionMessage{std::move(msg)});
            } else if constexpr (transport::is_alternative_v<T, txn::TxnMessage>) {
                shell_->step(from, txn::TxnMessage{std::move(msg)});
            } else {
                log_.warn("unexpected_peer_message").kv("peer", from).kv("type", int{T::kWireType});
            }
        },
        std::move(m));
    schedule_flush();
}

void Node::on_client_message(const std::shared_ptr<Connection>& session, Message&& m) {
    if (failed_) return answer_while_failed(session, m);
    catch_up();
    std::visit(Overload{
                   [&](transport::TransferRequest& r) {
                       ShardId shard;
                       if (auto err = route_check(r, shard)) return (void)session->send(*err);
                       submit(session, r.request_id, shard, txn::TransferOp{r.txid, r.from, r.to, r.amount});
                   },
                   [&](transport::TransfersRequest& r) { submit_batch(session, r); },
                   [&](transport::BalanceRequest& r) {
                       submit_for_item(session, r.request_id, r.item, txn::BalanceOp{r.item, r.local});
                   },
                   [&](transport::SessionRequest& r) {
                       submit_for_item(session, r.request_id, r.item, txn::SessionOp{r.item});
                   },
                   [&](transport::AuditRequest& r) {
                       if (auto shard = named_shard(session, r.request_id, r.shard)) {
                           submit(session, r.request_id, *shard, txn::AuditOp{});
                       }
                   },
                   [&](transport::LeaderRequest& r) {
                       if (auto shard = named_shard(session, r.request_id, r.shard)) {
                           submit(session, r.request_id, *shard, txn::LeaderOp{});
                       }
                   },
                   [&](transport::FaultRequest& r) { on_fault(session, r); },
                   [&](transport::ResetRequest& r) {
                       if (!config_.cluster().fault_injection) {
                           return (void)session->send(
                               transport::ErrorReply{r.request_id, "forbidden", txn::kFaultInjectionDisabled, kNoNode});
                       }
                       // Served by the shard's leader, as a transfer is.
                       if (auto shard = named_shard(session, r.request_id, r.shard)) {
                           submit(session, r.request_id, *shard, txn::ResetOp{});
                       }
                   },
                   [&](auto&) { answer_locally(session, std::move(m)); },
               },
               m);
    schedule_flush();
}

std::optional<ShardId> Node::named_shard(const std::shared_ptr<Connection>& session, std::uint64_t request_id,
                                         ShardId named) const {
    const ShardId shard = named == ShardId{0} ? me_.shard : named;
    if (config_.shard(shard) != nullptr) return shard;
    session->send(transport::ErrorReply{request_id, "bad_request", "no shard " + std::to_string(shard.value), kNoNode});
    return std::nullopt;
}

// A failed node drops every request but the fault switches, as a crashed
// one would. A reset it cannot serve is answered `unavailable`, so the
// client moves to another node at once instead of waiting out its deadline.
void Node::answer_while_failed(const std::shared_ptr<Connection>& session, const Message& m) {
    if (const auto* f = std::get_if<transport::FaultRequest>(&m)) return on_fault(session, *f);
    if (const auto* r = std::get_if<transport::ResetRequest>(&m)) {
        session->send(transport::ErrorReply{
            r->request_id, "unavailable",
            "node " + std::to_string(self_.value) + " is failed (fault injection); ask another node", kNoNode});
    }
}

// `fail` and `recover` concern this node only; asking for the state it is
// already in changes nothing and says so.
void Node::on_fault(const std::shared_ptr<Connection>& session, const transport::FaultRequest& r) {
    const auto error = [&](const char* code, const std::string& message) {
        session->send(transport::ErrorReply{r.request_id, code, message, kNoNode});
    };
    if (!config_.cluster().fault_injection) return error("forbidden", txn::kFaultInjectionDisabled);
    const bool fail = r.action == transport::FaultAction::fail;
    if (!fail && r.action != transport::FaultAction::recover) {
        return error("bad_request", "unknown fault action " + std::to_string(static_cast<int>(r.action)));
    }
    const bool changed = fail != failed_;
    if (changed && fail) fail_node();
    if (changed && !fail) {
        if (auto problem = recover_node()) return error("unavailable", *problem);
    }
    session->send(transport::FaultReply{r.request_id, self_, failed_, changed});
}

void Node::answer_locally(const std::shared_ptr<Connection>& session, Message&& m) {
    std::visit(
        [&](const auto& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (std::is_same_v<T, transport::PingRequest>) {
                session->send(transport::PingReply{msg.request_id, replica_->leader()});
            } else if constexpr (std::is_same_v<T, transport::StatusRequest>) {
                session->send(status(msg.request_id));
            } else {
                session->send(transport::ErrorReply{
                    0, "bad_request", "message type " + std::to_string(T::kWireType) + " is not a client request",
                    replica_->leader()});
            }
        },
        m);
}

// Edge checks that need only the config: both items exist. The sender's
// shard serves the transfer; across shards, its leader coordinates the
// two-phase commit (docs/design.md section 6.7).
std::optional<transport::ErrorReply> Node::route_check(const transport::TransferRequest& r, ShardId& shard) const {
    const auto from = config_.shard_of_item(r.from);
    const auto to = config_.shard_of_item(r.to);
    auto error = [&](const char* code, const std::string& msg) {
        return transport::ErrorReply{r.request_id, code, msg, kNoNode};
    };
    if (!from) return error("unknown_item", "item " + std::to_string(r.from.value) + " is in no shard");
    if (!to) return error("unknown_item", "item " + std::to_string(r.to.value) + " is in no shard");
    shard = *from;
    return std::nullopt;
}

// An operation on one item goes to the item's shard.
void Node::submit_for_item(const std::shared_ptr<Connection>& session, std::uint64_t request_id, ItemId item,
                           const txn::ClientOp& op) {
    const auto shard = config_.shard_of_item(item);
    if (!shard) {
        session->send(transport::ErrorReply{request_id, "unknown_item",
                                            "item " + std::to_string(item.value) + " is in no shard", kNoNode});
        return;
    }
    submit(session, request_id, *shard, op);
}

void Node::submit(const std::shared_ptr<Connection>& session, std::uint64_t request_id, ShardId shard,
                  const txn::ClientOp& op) {
    std::size_t& mine = inflight_[session];
    if (mine >= config_.cluster().limits.client_inflight_max) {
        session->send(transport::ErrorReply{request_id, "unavailable", "too many requests in flight on this connection",
                                            replica_->leader()});
        return;
    }
    launch(PendingRequest{session, request_id, shard, 0, {}}, op);
}

void Node::launch(PendingRequest req, const txn::ClientOp& op) {
    ++inflight_[req.session];
    const std::uint64_t handle = next_handle_++;
    const ShardId shard = req.shard;
    pending_[handle] = std::move(req);
    if (shard == me_.shard) return shell_->submit(handle, op);
    shell_->forward_elsewhere(handle, shard, op);
}

// Everything about a batch the config can tell, so that a malformed batch
// is refused whole before any of it is applied (docs/design.md section
// 6.9): its size, each transfer's items, amount and session, one session
// per FROM shard, no txid twice.
std::optional<transport::ErrorReply> Node::batch_check(const transport::TransfersRequest& r,
                                                       std::vector<ShardId>& from_shards) const {
    auto error = [&](const char* code, const std::string& msg) {
        return transport::ErrorReply{r.request_id, code, msg, kNoNode};
    };
    const std::size_t limit = config_.cluster().limits.batch_transfers_max;
    if (r.transfers.empty()) return error("bad_request", "a transfers request needs at least one transfer");
    if (r.transfers.size() > limit) {
        return error("bad_request", std::to_string(r.transfers.size()) + " transfers in one request, more than " +
                                        "batch_transfers_max = " + std::to_string(limit));
    }
    std::map<ShardId, std::uint64_t> session_of;
    std::set<txn::TxnId> seen;
    from_shards.clear();
    for (std::size_t i = 0; i < r.transfers.size(); ++i) {
        const txn::TransferOp& t = r.transfers[i];
        const std::string at = "transfer " + std::to_string(i + 1) + ": ";
        const auto from = config_.shard_of_item(t.from);
        const auto to = config_.shard_of_item(t.to);
        if (!from) return error("unknown_item", at + "item " + std::to_string(t.from.value) + " is in no shard");
        if (!to) return error("unknown_item", at + "item " + std::to_string(t.to.value) + " is in no shard");
        if (t.amount <= 0) {
            return error("bad_request", at + "transfer amount must be positive, got " + std::to_string(t.amount));
        }
        if (t.from == t.to) {
            return error("bad_request", at + "cannot transfer from item " + std::to_string(t.from.value) + " to itself");
        }
        if (txn::session_shard(t.txid.session) != *from) {
            return error("bad_request", at + "session " + std::to_string(t.txid.session) + " belongs to shard " +
                                            std::to_string(txn::session_shard(t.txid.session).value) + ", item " +
                                            std::to_string(t.from.value) + " to shard " +
                                            std::to_string(from->value) + "; use that shard's session");
        }
        if (const auto [it, fresh] = session_of.emplace(*from, t.txid.session); !fresh && it->second != t.txid.session) {
            return error("bad_request", at + "the transfers from shard " + std::to_string(from->value) +
                                            " must use one session, " + std::to_string(it->second) + ", not also " +
                                            std::to_string(t.txid.session));
        }
        if (!seen.insert(t.txid).second) {
            return error("bad_request", at + "txid " + std::to_string(t.txid.session) + ":" +
                                            std::to_string(t.txid.seq) + " appears twice in the batch");
        }
        from_shards.push_back(*from);
    }
    return std::nullopt;
}

// A batch is split by FROM shard, keeping the request's order within each
// part; each part goes to its shard like a single transfer would, and one
// reply is assembled in the request's order (docs/design.md section 6.9).
void Node::submit_batch(const std::shared_ptr<Connection>& session, transport::TransfersRequest& r) {
    std::vector<ShardId> from_shards;
    if (auto err = batch_check(r, from_shards)) return (void)session->send(*err);
    std::map<ShardId, std::pair<std::vector<std::uint32_t>, txn::BatchOp>> parts;
    for (std::uint32_t i = 0; i < r.transfers.size(); ++i) {
        auto& [positions, op] = parts[from_shards[i]];
        positions.push_back(i);
        op.transfers.push_back(r.transfers[i]);
    }
    const auto held = inflight_.find(session);
    const std::size_t mine = held == inflight_.end() ? 0 : held->second;
    if (mine + parts.size() > config_.cluster().limits.client_inflight_max) {
        session->send(transport::ErrorReply{r.request_id, "unavailable", "too many requests in flight on this connection",
                                            replica_->leader()});
        return;
    }
    const std::uint64_t id = next_batch_++;
    PendingBatch& b = batches_[id];
    b.session = session;
    b.request_id = r.request_id;
    b.missing = parts.size();
    b.each.reserve(r.transfers.size());
    for (const txn::TransferOp& t : r.transfers) b.each.push_back({t.txid, txn::BatchStatus::failed, "timeout"});
    for (auto& [shard, part] : parts) {
        launch(PendingRequest{session, r.request_id, shard, id, std::move(part.first)}, part.second);
    }
}

void Node::batch_part_done(const PendingRequest& req, const txn::OpResult& result) {
    auto it = batches_.find(req.batch);
    if (it == batches_.end()) return;
    PendingBatch& b = it->second;
    if (!txn::place_outcomes(b.each, req.positions, result)) {
        txn::place_outcomes(b.each, req.positions, txn::OpFailed{"unavailable", "", kNoNode});
    }
    if (--b.missing > 0) return;
    PendingBatch done = std::move(b);
    batches_.erase(it);
    if (auto session = done.session.lock()) {
        session->send(transport::TransfersReply{done.request_id, std::move(done.each), replica_->leader()});
    }
}

void Node::reply(std::uint64_t handle, const txn::OpResult& result) {
    auto it = pending_.find(handle);
    if (it == pending_.end()) return;
    const PendingRequest req = std::move(it->second);
    pending_.erase(it);
    if (auto n = inflight_.find(req.session); n != inflight_.end() && --n->second == 0) inflight_.erase(n);
    if (req.batch != 0) return batch_part_done(req, result);
    auto session = req.session.lock();
    if (!session) return;  // the client left; the answer has nowhere to go
    const NodeId hint = req.shard == me_.shard ? replica_->leader() : replica_->router().leader(req.shard);
    std::visit(Overload{
                   [&](const txn::TransferDone& d) {
                       session->send(transport::TransferReply{req.request_id, d.outcome == txn::Outcome::committed,
                                                              d.reason, d.txid, hint});
                   },
                   [&](const txn::BalanceDone& d) {
                       session->send(transport::BalanceReply{req.request_id, d.item, d.balance, d.local,
                                                             d.applied_index, hint, d.held, d.pending});
                   },
                   [&](const txn::LeaderDone& d) {
                       session->send(transport::LeaderReply{req.request_id, d.shard, d.leader, d.epoch});
                   },
                   [&](const txn::SessionDone& d) {
                       session->send(transport::SessionReply{req.request_id, d.shard, d.session, hint});
                   },
                   [&](const txn::AuditDone& d) { session->send(transport::AuditReply{req.request_id, d, hint}); },
                   [&](const txn::ResetDone& d) {
                       session->send(transport::ResetReply{req.request_id, d.shard, d.applied_at, hint});
                   },
                   [&](const txn::BatchDone& d) {
                       session->send(transport::TransfersReply{req.request_id, d.each, hint});
                   },
                   [&](const txn::OpFailed& f) {
                       session->send(transport::ErrorReply{req.request_id, f.code, f.message,
                                                           f.leader_hint != kNoNode ? f.leader_hint : hint});
                   },
               },
               result);
}

transport::StatusReply Node::status(std::uint64_t request_id) const {
    transport::StatusReply r;
    r.request_id = request_id;
    r.node = self_;
    r.shard = me_.shard;
    r.role = node_role(replica_->role());
    r.epoch = replica_->epoch();
    r.leader = replica_->leader();
    r.commit_index = replica_->commit_index();
    r.applied_index = replica_->applied_index();
    for (const auto& h : replica_->peers()) {
        r.peers.push_back({h.id, h.suspected, h.last_heard_ticks * config_.cluster().tick_ms});
    }
    return r;
}

void Node::report(const txn::ReplicaOutput& out) {
    for (const auto& e : out.election_events) {
        // The shell logs the whole view (epoch, leader, role) itself, below.
        if (e.kind == election::EventKind::leader_changed) continue;
        auto line = e.kind == election::EventKind::peer_suspected ? log_.warn(event_name(e.kind))
                                                                    : log_.info(event_name(e.kind));
        if (e.peer != kNoNode) line.kv("peer", e.peer);
        line.kv("epoch", e.epoch);
        if (e.leader != kNoNode) line.kv("leader", e.leader);
        if (e.reason[0] != '\0') line.kv("reason", e.reason);
    }
    for (const auto& e : out.log_events) {
        auto line = log_.info(txn::to_string(e.kind));
        if (e.peer != kNoNode) line.kv("peer", e.peer);
        if (e.index != LogIndex{}) line.kv("index", e.index);
        if (e.reason[0] != '\0') line.kv("reason", e.reason);
    }
    if (out.leader_change) {
        const auto& c = *out.leader_change;
        log_.info("leader_changed")
            .kv("epoch", c.epoch)
            .kv("leader", c.leader == kNoNode ? std::string("none") : std::to_string(c.leader.value))
            .kv("role", election::to_string(c.role));
    }
    if (out.compact) log_.info("snapshot_taken").kv("through", out.compact->last_index);
    log_replica_events(out);
}

void Node::log_replica_events(const txn::ReplicaOutput& out) {
    for (const auto& e : out.events) {
        std::visit(Overload{
                       [&](const txn::ConfigDiffers& d) {
                           log_.warn("config_differs")
                               .kv("key", d.key)
                               .kv("ini", d.ini)
                               .kv("replicated", d.replicated)
                               .kv("action", "following the log");
                       },
                       [&](const txn::SnapshotRefused& r) {
                           log_.error("snapshot_refused")
                               .kv("peer", r.from)
                               .kv("reason", r.reason)
                               .kv("refused_so_far", replica_->snapshots_refused());
                       },
                   },
                   e);
    }
}

}  // namespace rl::node
