#include "tools/client.hpp"

#include <charconv>

namespace rl::tools {
std::pair<std::string, std::uint16_t> split_endpoint(const std::string& endpoint) {
    const auto colon = endpoint.rfind(':');
    if (colon == std::string::npos || colon == 0) throw std::invalid_argument("expected HOST:PORT, got \"" + endpoint + "\"");
    std::string host = endpoint.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string port_text = endpoint.substr(colon + 1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
        throw std::invalid_argument("bad port in \"" + endpoint + "\"");
    }
    return {host, static_cast<std::uint16_t>(port)};
}

Client::Client(std::string cluster_name, std::uint32_t frame_bytes_max)
    : cluster_name_(std::move(cluster_name)), frame_bytes_max_(frame_bytes_max) {}

Client::~Client() {
    if (conn_) conn_->close("closed");
}

void Client::run_until(Clock::time_point deadline, const std::function<bool()>& done) {
    io_.restart();
    while (!done() && Clock::now() < deadline) {
        if (io_.run_one_until(deadline) == 0 && io_.stopped()) io_.restart();
    }
}

void Client::connect(const std::string& endpoint, Clock::time_point deadline) {
    endpoint_ = endpoint;
    std::pair<std::string, std::uint16_t> hp;
    boost::asio::ip::address addr;
    try {
        hp = split_endpoint(endpoint);
        addr = boost::asio::ip::make_address(hp.first);
    } catch (const std::exception& e) {
        throw ConnectError(std::string("bad address: ") + e.what());
    }
    transport::tcp::socket socket(io_);
    std::optional<boost::system::error_code> result;
    socket.async_connect({addr, hp.second}, [&](const boost::system::error_code& ec) { result = ec; });
    run_until(deadline, [&] { return result.has_value(); });
    if (!result) throw ConnectError("cannot connect to " + endpoint + ": timed out");
    if (*result) throw ConnectError("cannot connect to " + endpoint + ": " + result->message());

    conn_ = std::make_shared<transport::Connection>(std::move(socket),
                                                    transport::ConnectionLimits{frame_bytes_max_, 1024});
    conn_->start(transport::Connection::Handlers{
        .on_message = [this](transport::Message&& m) { inbox_.push_back(std::move(m)); },
        .on_close = [this](const std::string& reason,
                           const std::string& detail) { closed_reason_ = reason + (detail.empty() ? "" : ": " + detail); },
    });
    conn_->send(transport::Hello{transport::Role::client, kNoNode, cluster_name_, transport::kProtocolVersion});
    run_until(deadline, [&] { return !inbox_.empty() || !conn_->open(); });
    if (!inbox_.empty()) {
        transport::Message first = std::move(inbox_.front());
        inbox_.pop_front();
        if (auto* refuse = std::get_if<transport::Refuse>(&first)) {
            throw ConnectError(endpoint + " refused the connection: " + refuse->reason);
        }
        if (auto* hello = std::get_if<transport::Hello>(&first)) node_id_ = hello->node_id;
        if (node_id_ != kNoNode) return;
    }
    if (!conn_->open()) throw ConnectError(endpoint + " closed the connection: " + closed_reason_);
    throw ConnectError(endpoint + " did not answer the handshake in time");
}

transport::ClientReply Client::call(transport::ClientRequest request, Clock::time_point deadline) {
    if (!connected()) throw ConnectError("not connected to " + endpoint_ + (closed_reason_.empty() ? "" : ": " + closed_reason_));
    want_id_ = next_request_id_++;
    std::visit([&](auto& r) { r.request_id = want_id_; }, request);
    std::visit([&](const auto& r) { conn_->send(r); }, request);
    std::optional<transport::ClientReply> reply;
    run_until(deadline, [&] {
        while (!inbox_.empty() && !reply) {
            transport::Message m = std::move(inbox_.front());
            inbox_.pop_front();
            std::visit([&](auto&& msg) {
                using T = std::decay_t<decltype(msg)>;
                if constexpr (transport::is_alternative_v<T, transport::ClientReply>) {
                    if (msg.request_id == want_id_ || msg.request_id == 0) reply = std::move(msg);
                }
            }, std::move(m));
        }
        return reply.has_value() || !conn_->open();
    });
    if (reply) return *reply;
    if (!conn_->open()) throw ConnectError(endpoint_ + " closed the connection: " + closed_reason_);
    throw TimeoutError("no reply from " + endpoint_ + " in time");
}

}  // namespace rl::tools

#include "tools/commands.hpp"

#include <thread>

namespace rl::tools {

RetryingClient::RetryingClient(std::string cluster_name, std::vector<NodeEndpoint> nodes, std::size_t first)
    : cluster_name_(std::move(cluster_name)), nodes_(std::move(nodes)), current_(first) {
    if (nodes_.empty()) throw std::invalid_argument("no node to talk to");
    current_ %= nodes_.size();
}

void RetryingClient::connect(Clock::time_point deadline) {
    if (client_ && client_->connected()) return;
    client_ = std::make_unique<Client>(cluster_name_);
    client_->connect(nodes_[current_].endpoint, deadline);
    ever_connected_ = true;
}

void RetryingClient::move_on(NodeId hint) {
    client_.reset();
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (hint != kNoNode && nodes_[i].id == hint && i != current_) {
            current_ = i;
            return;
        }
    }
    current_ = (current_ + 1) % nodes_.size();
}

transport::ClientReply RetryingClient::call(const transport::ClientRequest& request, Clock::time_point deadline,
                                            bool hop) {
    auto backoff = std::chrono::milliseconds(20);
    std::optional<transport::ClientReply> last;
    std::string last_error = "no reply";
    while (Clock::now() < deadline) {
        try {
            connect(deadline);
            auto reply = client_->call(request, deadline);
            if (!retryable(reply)) return reply;
            last = reply;
            if (hop && nodes_.size() > 1) move_on(leader_hint(reply));
        } catch (const ConnectError& e) {
            last_error = e.what();
            client_.reset();
            // One address that never answered: a typo or a node that is
            // down; say so now rather than at the deadline.
            if (!ever_connected_ && !(hop && nodes_.size() > 1)) throw;
            if (hop && nodes_.size() > 1) move_on(kNoNode);
        } catch (const TimeoutError& e) {
            last_error = e.what();
            break;
        }
        ++retries_;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        std::this_thread::sleep_for(std::max(std::chrono::milliseconds(0), std::min(backoff, left)));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
    }
    if (last) return *last;
    if (!ever_connected_) throw ConnectError(last_error);
    throw TimeoutError(last_error);
}

}  // namespace rl::tools

namespace rl::tools {

Sessions::Sessions(ShardOf shard_of) : shard_of_(std::move(shard_of)) {}

void Sessions::pin(std::uint64_t session, std::uint64_t first_seq) { pinned_ = Session{session, first_seq}; }

std::optional<ShardId> Sessions::known_shard(ItemId item) const {
    if (shard_of_) {
        if (auto shard = shard_of_(item)) return shard;
    }
    const auto it = item_shards_.find(item);
    return it == item_shards_.end() ? std::nullopt : std::optional<ShardId>(it->second);
}

void Sessions::learn(ItemId item, ShardId shard) {
    if (shard_of_ && shard_of_(item)) return;
    if (item_shards_.size() >= kItemShardsMax) item_shards_.clear();
    item_shards_[item] = shard;
}

std::variant<txn::TxnId, transport::ClientReply> Sessions::next_txid(RetryingClient& client, ItemId from,
                                                                     Clock::time_point deadline) {
    if (pinned_) {
        // The node would refuse it as bad_request; with the config we can say why.
        const auto shard = known_shard(from);
        const auto own = txn::session_shard(pinned_->id);
        if (shard && *shard != own) {
            throw std::invalid_argument("session " + std::to_string(pinned_->id) + " belongs to shard " +
                                        std::to_string(own.value) + " but item " + std::to_string(from.value) +
                                        " is in shard " + std::to_string(shard->value) +
                                        "; a transfer's session must be of its FROM item's shard");
        }
        return txn::TxnId{pinned_->id, pinned_->next_seq++};
    }
    auto shard = known_shard(from);
    if (!shard || !by_shard_.contains(*shard)) {
        auto reply = open(client, from, deadline);
        const auto* opened = std::get_if<transport::SessionReply>(&reply);
        if (opened == nullptr) return reply;
        shard = opened->shard;
        // A shard this run already has a session with keeps it (the item's
        // shard was unknown before the reply): its seqs go on.
        by_shard_.try_emplace(opened->shard, Session{opened->session, 1});
    }
    auto& session = by_shard_.at(*shard);
    return txn::TxnId{session.id, session.next_seq++};
}

transport::ClientReply Sessions::open(RetryingClient& client, ItemId item, Clock::time_point deadline) {
    auto reply = client.call(transport::SessionRequest{0, item}, deadline, true);
    if (const auto* opened = std::get_if<transport::SessionReply>(&reply)) learn(item, opened->shard);
    return reply;
}

std::optional<transport::ClientReply> Sessions::number_batch(RetryingClient& client,
                                                             transport::TransfersRequest& batch,
                                                             Clock::time_point deadline) {
    for (txn::TransferOp& t : batch.transfers) {
        auto txid = next_txid(client, t.from, deadline);
        if (auto* failed = std::get_if<transport::ClientReply>(&txid)) return std::move(*failed);
        t.txid = std::get<txn::TxnId>(txid);
    }
    return std::nullopt;
}

void Sessions::observe(const transport::ClientReply& reply) {
    const auto forget = [&](std::uint64_t session) {
        std::erase_if(by_shard_, [&](const auto& kv) { return kv.second.id == session; });
    };
    if (const auto* b = std::get_if<transport::TransfersReply>(&reply)) {
        for (const txn::TransferOutcome& o : b->each) {
            if (o.status == txn::BatchStatus::aborted && o.reason == "session_expired") forget(o.txid.session);
        }
        return;
    }
    const auto* t = std::get_if<transport::TransferReply>(&reply);
    if (t == nullptr || t->committed || t->reason != "session_expired") return;
    forget(t->txid.session);
}

transport::TransfersRequest batch_request(std::uint64_t request_id, const std::vector<TransferSpec>& transfers,
                                          const std::function<txn::TxnId(ItemId from)>& txid_of) {
    transport::TransfersRequest r;
    r.request_id = request_id;
    r.transfers.reserve(transfers.size());
    for (const TransferSpec& t : transfers) r.transfers.push_back(txn::TransferOp{txid_of(t.from), t.from, t.to, t.amount});
    return r;
}

BatchTally tally(const transport::TransfersReply& reply) {
    BatchTally out;
    for (const txn::TransferOutcome& o : reply.each) {
        switch (o.status) {
            case txn::BatchStatus::committed: ++out.committed; break;
            case txn::BatchStatus::aborted:
                ++out.aborted;
                out.session_expired = out.session_expired || o.reason == "session_expired";
                break;
            case txn::BatchStatus::failed: ++out.failed; break;
        }
    }
    out.retry = retryable(transport::ClientReply{reply});
    return out;
}

}  // namespace rl::tools
