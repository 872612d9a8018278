// Every message that crosses a TCP connection, gathered in one variant
// (docs/design.md section 3). Each struct names its frame type byte in kWireType:
//   1..19   connection control (this file)
//   20..59  election (election/messages.hpp)
//   60..99  replication and transactions (txn/messages.hpp)
//   100..159 client requests and replies (this file)
// A type byte, once shipped, never changes meaning.
#pragma once

#include "config/types.hpp"
#include "election/messages.hpp"
#include "txn/messages.hpp"

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace rl::transport {

inline constexpr std::uint8_t kProtocolVersion = 1;

enum class Role : std::uint8_t { peer = 1, client = 2 };

// First frame on every connection, both ways for clients.
struct Hello {
    static constexpr std::uint8_t kWireType = 1;
    Role role = Role::client;       // what the sender is
    NodeId node_id;                 // sender's node id; kNoNode for a client
    std::string cluster_name;       // must match the receiver's; a client may leave it empty
    std::uint8_t version = kProtocolVersion;  // protocol version the sender speaks

    template <class Archive>
    void serialize(Archive& ar) { ar(role, node_id, cluster_name, version); }
};

// Sent just before a connection is closed on purpose, so the other side
// can log why instead of guessing.
struct Refuse {
    static constexpr std::uint8_t kWireType = 2;
    std::string reason;  // human-readable, one line

    template <class Archive>
    void serialize(Archive& ar) { ar(reason); }
};

// ---- client requests (docs/design.md section 4) ----

struct PingRequest {
    static constexpr std::uint8_t kWireType = 100;
    std::uint64_t request_id = 0;  // echoed in the reply; chosen by the client

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id); }
};

struct StatusRequest {
    static constexpr std::uint8_t kWireType = 101;
    std::uint64_t request_id = 0;  // echoed in the reply

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id); }
};

struct TransferRequest {
    static constexpr std::uint8_t kWireType = 102;
    std::uint64_t request_id = 0;  // echoed in the reply
    txn::TxnId txid;               // (session, seq): a retry reuses it
    ItemId from;                   // debited
    ItemId to;                     // credited
    std::int64_t amount = 0;       // > 0

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, txid, from, to, amount); }
};

struct BalanceRequest {
    static constexpr std::uint8_t kWireType = 103;
    std::uint64_t request_id = 0;  // echoed in the reply
    ItemId item;
    bool local = false;  // answer from this node's applied state instead of through the leader

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, item, local); }
};

struct LeaderRequest {
    static constexpr std::uint8_t kWireType = 104;
    std::uint64_t request_id = 0;  // echoed in the reply
    ShardId shard;                 // 0: the answering node's own shard

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, shard); }
};

// Opens a client session with the shard that holds `item`; its transfers
// then carry (session, seq) ids (docs/design.md section 6).
struct SessionRequest {
    static constexpr std::uint8_t kWireType = 105;
    std::uint64_t request_id = 0;  // echoed in the reply
    ItemId item;                   // names the shard

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, item); }
};

// ---- client replies ----

struct PingReply {
    static constexpr std::uint8_t kWireType = 130;
    std::uint64_t request_id = 0;  // from the request
    NodeId leader_hint;            // leader of the answering node's shard as it knows it; kNoNode if none

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, leader_hint); }
};

struct PeerStatus {
    NodeId id;                       // a member of the same shard
    bool suspected = false;          // the failure detector's verdict
    std::uint64_t last_heard_ms = 0; // time since the last frame from it

    template <class Archive>
    void serialize(Archive& ar) { ar(id, suspected, last_heard_ms); }
};

enum class NodeRole : std::uint8_t { follower = 1, candidate = 2, leader = 3 };

struct StatusReply {
    static constexpr std::uint8_t kWireType = 131;
    std::uint64_t request_id = 0;    // from the request
    NodeId node;                     // the answering node
    ShardId shard;                   // its shard
    NodeRole role = NodeRole::follower;
    Epoch epoch;                     // its current epoch
    NodeId leader;                   // leader it knows for `epoch`; kNoNode if none
    LogIndex commit_index;           // highest index known committed
    LogIndex applied_index;          // highest index applied to its state
    std::vector<PeerStatus> peers;   // the other members of its shard

    template <class Archive>
    void serialize(Archive& ar) {
        ar(request_id, node, shard, role, epoch, leader, commit_index, applied_index, peers);
    }
};

struct TransferReply {
    static constexpr std::uint8_t kWireType = 132;
    std::uint64_t request_id = 0;  // from the request
    bool committed = false;        // outcome: committed or aborted
    std::string reason;            // why it aborted (insufficient_funds, ...); empty when committed
    txn::TxnId txid;               // the transaction's id
    NodeId leader_hint;            // leader of the items' shard as known where it was answered

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, committed, reason, txid, leader_hint); }
};

struct BalanceReply {
    static constexpr std::uint8_t kWireType = 133;
    std::uint64_t request_id = 0;  // from the request
    ItemId item;
    std::int64_t balance = 0;      // posted
    bool local = false;            // true: one node's applied state, possibly stale
    LogIndex applied_index;        // the state's log position
    NodeId leader_hint;
    std::int64_t held = 0;         // held by undecided cross-shard debits (available = balance - held)
    std::int64_t pending = 0;      // undecided cross-shard credits

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, item, balance, local, applied_index, leader_hint, held, pending); }
};

struct LeaderReply {
    static constexpr std::uint8_t kWireType = 134;
    std::uint64_t request_id = 0;  // from the request
    ShardId shard;
    NodeId leader;                 // kNoNode if the answering member knows none
    Epoch epoch;                   // that member's epoch

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, shard, leader, epoch); }
};

struct SessionReply {
    static constexpr std::uint8_t kWireType = 135;
    std::uint64_t request_id = 0;  // from the request
    ShardId shard;                 // the shard the session belongs to
    std::uint64_t session = 0;     // the session id for TxnId
    NodeId leader_hint;            // leader of that shard as known where it was answered

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, shard, session, leader_hint); }
};

// One shard's books: balances summed, holds, pending credits, negatives and
// every cross-shard transaction it records, read linearizably through the
// shard's leader (docs/design.md section 4, `audit`).
struct AuditRequest {
    static constexpr std::uint8_t kWireType = 106;
    std::uint64_t request_id = 0;  // echoed in the reply
    ShardId shard;                 // 0: the answering node's own shard

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, shard); }
};

struct AuditReply {
    static constexpr std::uint8_t kWireType = 136;
    std::uint64_t request_id = 0;  // from the request
    txn::AuditDone audit;
    NodeId leader_hint;            // the leader that answered

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, audit, leader_hint); }
};

// ---- fault switches (docs/design.md section 6.8): only with
// fault_injection = true in [cluster], refused with `forbidden` otherwise ----

enum class FaultAction : std::uint8_t { fail = 1, recover = 2 };

// `fail`: the answering node drops every peer message and every client
// request but these, and stops acting, as if crashed with its disk kept;
// `recover`: it starts again from its disk, as after a restart. Not
// replicated: it concerns the node asked.
struct FaultRequest {
    static constexpr std::uint8_t kWireType = 107;
    std::uint64_t request_id = 0;           // echoed in the reply
    FaultAction action = FaultAction::fail;

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, action); }
};

struct FaultReply {
    static constexpr std::uint8_t kWireType = 137;
    std::uint64_t request_id = 0;  // from the request
    NodeId node;                   // the answering node
    bool failed = false;           // its state now
    bool changed = false;          // false: it was already in that state

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, node, failed, changed); }
};

// Puts a shard's balances back to their initial value with a Reset log
// entry, served by the shard's leader like a transfer.
struct ResetRequest {
    static constexpr std::uint8_t kWireType = 108;
    std::uint64_t request_id = 0;  // echoed in the reply
    ShardId shard;                 // 0: the answering node's own shard

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, shard); }
};

struct ResetReply {
    static constexpr std::uint8_t kWireType = 138;
    std::uint64_t request_id = 0;  // from the request
    ShardId shard;                 // the shard reset
    LogIndex applied_at;           // index of its Reset entry
    NodeId leader_hint;            // the leader that answered

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, shard, applied_at, leader_hint); }
};

// Many transfers in one request (docs/design.md section 6.9, `transfers`):
// each with its own txid, the (session, seq) of its FROM item's shard
// session, applied in order per FROM shard; at most batch_transfers_max.
// A malformed batch is refused whole with an ErrorReply.
struct TransfersRequest {
    static constexpr std::uint8_t kWireType = 109;
    std::uint64_t request_id = 0;              // echoed in the reply
    std::vector<txn::TransferOp> transfers;    // txid, from, to, amount each

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, transfers); }
};

struct TransfersReply {
    static constexpr std::uint8_t kWireType = 139;
    std::uint64_t request_id = 0;              // from the request
    std::vector<txn::TransferOutcome> each;    // one per transfer, in the request's order
    NodeId leader_hint;                        // leader of the answering node's shard as it knows it

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, each, leader_hint); }
};

// Any request that failed: bad input, no leader, unknown item...
struct ErrorReply {
    static constexpr std::uint8_t kWireType = 159;
    std::uint64_t request_id = 0;  // from the request (0 if it could not be read)
    std::string code;              // machine-readable: unavailable, bad_request, unknown_item, ...
    std::string message;           // one human-readable line
    NodeId leader_hint;            // best known leader of the relevant shard; kNoNode if none

    template <class Archive>
    void serialize(Archive& ar) { ar(request_id, code, message, leader_hint); }
};

namespace detail {
template <class... A>
struct Cat;
template <class... A>
struct Cat<std::variant<A...>> {
    using type = std::variant<A...>;
};
template <class... A, class... B, class... Rest>
struct Cat<std::variant<A...>, std::variant<B...>, Rest...> {
    using type = typename Cat<std::variant<A..., B...>, Rest...>::type;
};
}  // namespace detail

using ControlMessage = std::variant<Hello, Refuse>;
using ClientRequest = std::variant<PingRequest, StatusRequest, TransferRequest, BalanceRequest, LeaderRequest,
                                   SessionRequest, AuditRequest, FaultRequest, ResetRequest, TransfersRequest>;
using ClientReply = std::variant<PingReply, StatusReply, TransferReply, BalanceReply, LeaderReply, SessionReply,
                                 AuditReply, FaultReply, ResetReply, ErrorReply, TransfersReply>;

using Message = typename detail::Cat<ControlMessage, election::ElectionMessage, txn::TxnMessage, ClientRequest,
                                     ClientReply>::type;

// The frame type byte of a message.
std::uint8_t wire_type(const Message& m);
// True when some message kind uses this type byte.
bool known_wire_type(std::uint8_t type);

template <class T, class V>
struct is_alternative;
template <class T, class... A>
struct is_alternative<T, std::variant<A...>> : std::bool_constant<(std::is_same_v<T, A> || ...)> {};
template <class T, class V>
inline constexpr bool is_alternative_v = is_alternative<T, V>::value;

}  // namespace rl::transport
