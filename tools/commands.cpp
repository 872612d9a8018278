#include "tools/commands.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace rl::tools {

std::string txid_text(const txn::TxnId& t) { return std::to_string(t.session) + ":" + std::to_string(t.seq); }

namespace {

using json = nlohmann::ordered_json;
using namespace transport;

json node_or_null(NodeId id) { return id == kNoNode ? json(nullptr) : json(id.value); }

const char* role_name(NodeRole r) {
    switch (r) {
        case NodeRole::follower: return "follower";
        case NodeRole::candidate: return "candidate";
        case NodeRole::leader: return "leader";
    }
    return "unknown";
}

std::vector<std::string> split_words(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    return words;
}

// A whole decimal number in [min, max], or std::invalid_argument naming `what`.
std::int64_t number(const std::string& text, const char* what, std::int64_t min, std::int64_t max) {
    std::size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(text, &used, 10);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || text.empty() || v < min || v > max) {
        throw std::invalid_argument(std::string(what) + " must be a whole number from " + std::to_string(min) +
                                    " to " + std::to_string(max) + ", got \"" + text + "\"");
    }
    return v;
}

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
// Words a `transfers` command line may have: the node bounds a batch by
// batch_transfers_max, which never exceeds what fits in a 64 MiB frame.
constexpr std::size_t kTransfersArgsMax = 3 * (std::size_t{64} << 20) / 64;

ItemId item_arg(const std::string& text, const char* what) { return ItemId{static_cast<std::uint64_t>(number(text, what, 1, kMax))}; }

const std::vector<CommandSpec> kCommands = {
    {"ping", "ping", "check that the node answers", 0, 0,
     [](const std::vector<std::string>&) -> ClientRequest { return PingRequest{}; }},
    {"status", "status", "the node's role, epoch, leader, log position and peers", 0, 0,
     [](const std::vector<std::string>&) -> ClientRequest { return StatusRequest{}; }},
    {"transfer", "transfer FROM TO AMOUNT",
     "move AMOUNT from item FROM to item TO, in one shard or across two (exactly once, retried; in a session of "
     "FROM's shard)",
     3, 3,
     [](const std::vector<std::string>& a) -> ClientRequest {
         TransferRequest r;
         r.from = item_arg(a[0], "FROM");
         r.to = item_arg(a[1], "TO");
         // The node refuses a non-positive amount as bad_request: let it say so.
         r.amount = number(a[2], "AMOUNT", std::numeric_limits<std::int64_t>::min(), kMax);
         return r;
     }},
    {"transfers", "transfers FROM TO AMOUNT [FROM TO AMOUNT ...]",
     "many transfers in one request, each with its own txid and outcome, applied in order per FROM shard "
     "(exactly once, retried as a whole; at most batch_transfers_max)",
     3, kTransfersArgsMax,
     [](const std::vector<std::string>& a) -> ClientRequest {
         if (a.size() % 3 != 0) {
             throw std::invalid_argument("transfers takes FROM TO AMOUNT triples, got " + std::to_string(a.size()) +
                                         " words; usage: transfers FROM TO AMOUNT [FROM TO AMOUNT ...]");
         }
         TransfersRequest r;
         for (std::size_t i = 0; i < a.size(); i += 3) {
             const std::string n = std::to_string(i / 3 + 1);
             txn::TransferOp t;
             t.from = item_arg(a[i], ("FROM " + n).c_str());
             t.to = item_arg(a[i + 1], ("TO " + n).c_str());
             t.amount = number(a[i + 2], ("AMOUNT " + n).c_str(), std::numeric_limits<std::int64_t>::min(), kMax);
             r.transfers.push_back(t);
         }
         return r;
     }},
    {"balance", "balance ITEM [--local]",
     "ITEM's posted balance, held and pending amounts, linearizable; --local: this node's applied state", 1, 2,
     [](const std::vector<std::string>& a) -> ClientRequest {
         BalanceRequest r;
         r.item = item_arg(a[0], "ITEM");
         if (a.size() == 2 && a[1] != "--local") throw std::invalid_argument("usage: balance ITEM [--local]");
         r.local = a.size() == 2;
         return r;
     }},
    {"leader", "leader [SHARD]", "who leads SHARD (default: the node's own shard) and in which epoch", 0, 1,
     [](const std::vector<std::string>& a) -> ClientRequest {
         LeaderRequest r;
         if (!a.empty()) r.shard = ShardId{static_cast<std::uint64_t>(number(a[0], "SHARD", 1, kMax))};
         return r;
     }},
    {"session", "session ITEM", "open a client session with ITEM's shard (its id serves --session)", 1, 1,
     [](const std::vector<std::string>& a) -> ClientRequest { return SessionRequest{0, item_arg(a[0], "ITEM")}; }},
    // rlcat sends one AuditRequest per shard of its --config (tools/audit.hpp).
    {"audit", "audit",
     "every shard's books (needs --config): balances, holds, pending credits, undecided transactions, negatives; "
     "exits 1 unless they add up",
     0, 0, [](const std::vector<std::string>&) -> ClientRequest { return AuditRequest{}; }},
    // The fault switches (docs/design.md section 6.8): only where the INI
    // says fault_injection = true.
    {"fail", "fail",
     "the node drops all peer traffic and client requests but fail/recover, as if crashed with its disk kept "
     "(needs fault_injection = true)",
     0, 0, [](const std::vector<std::string>&) -> ClientRequest { return FaultRequest{0, FaultAction::fail}; }},
    {"recover", "recover", "a failed node starts again from its disk, as after a restart (needs fault_injection = true)",
     0, 0, [](const std::vector<std::string>&) -> ClientRequest { return FaultRequest{0, FaultAction::recover}; }},
    // With --config rlcat sends one ResetRequest per shard of the file.
    {"reset", "reset",
     "every shard's balances back to the initial balance (with --config; else the node's own shard); refused "
     "while a shard records cross-shard transactions, and retried (needs fault_injection = true)",
     0, 0, [](const std::vector<std::string>&) -> ClientRequest { return ResetRequest{}; }},
};

json to_json(const PingReply&) { return {{"ok", true}}; }

json to_json(const StatusReply& r) {
    json peers = json::array();
    for (const auto& p : r.peers) {
        peers.push_back({{"id", p.id.value}, {"suspected", p.suspected}, {"last_heard_ms", p.last_heard_ms}});
    }
    return {{"ok", true},
            {"node", r.node.value},
            {"shard", r.shard.value},
            {"role", role_name(r.role)},
            {"epoch", r.epoch.value},
            {"leader", node_or_null(r.leader)},
            {"commit_index", r.commit_index.value},
            {"applied_index", r.applied_index.value},
            {"peers", peers}};
}

json to_json(const TransferReply& r) {
    json j = {{"ok", true}, {"outcome", r.committed ? "committed" : "aborted"}};
    if (!r.committed) j["reason"] = r.reason;
    j["txid"] = txid_text(r.txid);
    return j;
}

// balance is posted; held waits on undecided cross-shard debits, pending on
// undecided credits (docs/design.md section 6.7).
json to_json(const BalanceReply& r) {
    std::int64_t available = 0;
    const bool wild = __builtin_sub_overflow(r.balance, r.held, &available);  // wire data: never trusted
    json j = {{"ok", true},     {"item", r.item.value}, {"balance", r.balance},
              {"held", r.held}, {"pending", r.pending}, {"available", wild ? json(nullptr) : json(available)}};
    if (r.local) {
        j["local"] = true;
        j["applied_index"] = r.applied_index.value;
    }
    return j;
}

json to_json(const LeaderReply& r) {
    return {{"ok", true}, {"shard", r.shard.value}, {"leader", node_or_null(r.leader)}, {"epoch", r.epoch.value}};
}

json to_json(const SessionReply& r) {
    return {{"ok", true}, {"shard", r.shard.value}, {"session", r.session}};
}

// One shard's answer as it came; rlcat's `audit` adds the shards up instead
// (tools/audit.hpp).
json to_json(const AuditReply& r) {
    const txn::AuditDone& a = r.audit;
    json negatives = json::array();
    for (const auto& [item, balance] : a.negatives) negatives.push_back({{"item", item.value}, {"balance", balance}});
    json txns = json::array();
    for (const auto& t : a.txns) {
        txns.push_back({{"txid", txid_text(t.txid)}, {"side", t.side == 1 ? "debit" : "credit"},
                        {"from", t.from.value}, {"to", t.to.value}, {"other", t.other.value}, {"amount", t.amount},
                        {"voted_yes", t.voted_yes}, {"fate", t.fate}, {"reason", t.reason}, {"age_ms", t.age_ms}});
    }
    return {{"ok", true}, {"shard", a.shard.value}, {"applied_index", a.applied_index.value}, {"items", a.items},
            {"initial_balance", a.initial_balance}, {"total", a.total}, {"held", a.held}, {"pending", a.pending},
            {"negatives", negatives}, {"txns", txns}};
}

json to_json(const FaultReply& r) {
    return {{"ok", true}, {"node", r.node.value}, {"failed", r.failed}, {"changed", r.changed}};
}

json to_json(const ResetReply& r) {
    return {{"ok", true}, {"shard", r.shard.value}, {"applied_at", r.applied_at.value}};
}

const char* status_name(txn::BatchStatus s) {
    switch (s) {
        case txn::BatchStatus::committed: return "committed";
        case txn::BatchStatus::aborted: return "aborted";
        case txn::BatchStatus::failed: return "failed";
    }
    return "unknown";
}

// One outcome per transfer, in the request's order, and how many of each;
// `ok` is false while some transfer's outcome is unknown (failed).
json to_json(const TransfersReply& r) {
    json each = json::array();
    std::uint64_t counts[3] = {0, 0, 0};
    for (const txn::TransferOutcome& o : r.each) {
        json one = {{"txid", txid_text(o.txid)}, {"outcome", status_name(o.status)}};
        if (o.status != txn::BatchStatus::committed) one["reason"] = o.reason;
        each.push_back(std::move(one));
        const auto s = static_cast<std::size_t>(o.status);
        if (s >= 1 && s <= 3) ++counts[s - 1];
    }
    return {{"ok", counts[2] == 0}, {"committed", counts[0]}, {"aborted", counts[1]}, {"failed", counts[2]},
            {"outcomes", each}};
}

json to_json(const ErrorReply& r) {
    return {{"ok", false}, {"error", r.code}, {"message", r.message}, {"leader_hint", node_or_null(r.leader_hint)}};
}

std::string scalar_text(const json& v) {
    if (v.is_null()) return "none";
    if (v.is_string()) {
        const auto s = v.get<std::string>();
        return s.find(' ') == std::string::npos && !s.empty() ? s : json(s).dump();
    }
    return v.dump();
}

}  // namespace

const std::vector<CommandSpec>& command_table() { return kCommands; }

transport::ClientRequest parse_command(const std::string& line) {
    const auto words = split_words(line);
    if (words.empty()) throw std::invalid_argument("empty command");
    for (const auto& spec : kCommands) {
        if (words[0] != spec.name) continue;
        const std::vector<std::string> args(words.begin() + 1, words.end());
        if (args.size() < spec.min_args || args.size() > spec.max_args) {
            throw std::invalid_argument(std::string("usage: ") + spec.usage);
        }
        return spec.build(args);
    }
    std::string names;
    for (const auto& spec : kCommands) names += std::string(names.empty() ? "" : ", ") + spec.name;
    throw std::invalid_argument("unknown command \"" + words[0] + "\"; commands: " + names);
}

std::uint64_t parse_session_id(const std::string& text, const std::string& what) {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    const std::uint64_t index_mask = (std::uint64_t{1} << txn::kSessionIndexBits) - 1;
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
        txn::session_shard(value) == ShardId{0} || (value & index_mask) == 0) {
        throw std::invalid_argument(what + " must be a session id as `session ITEM` prints it (the shard times 2^" +
                                    std::to_string(txn::kSessionIndexBits) + " plus a log index), got \"" + text +
                                    "\"");
    }
    return value;
}

bool reply_ok(const transport::ClientReply& reply) {
    if (const auto* b = std::get_if<TransfersReply>(&reply)) return batch_failed(*b) == 0;
    return !std::holds_alternative<ErrorReply>(reply);
}

namespace {
bool retryable_code(const std::string& code) { return code == "unavailable" || code == "timeout"; }
}  // namespace

bool retryable(const transport::ClientReply& reply) {
    if (const auto* b = std::get_if<TransfersReply>(&reply)) {
        return std::any_of(b->each.begin(), b->each.end(), [](const txn::TransferOutcome& o) {
            return o.status == txn::BatchStatus::failed && retryable_code(o.reason);
        });
    }
    const auto* e = std::get_if<ErrorReply>(&reply);
    return e != nullptr && retryable_code(e->code);
}

std::size_t batch_failed(const transport::TransfersReply& reply) {
    return static_cast<std::size_t>(std::count_if(reply.each.begin(), reply.each.end(), [](const txn::TransferOutcome& o) {
        return o.status == txn::BatchStatus::failed;
    }));
}

NodeId leader_hint(const transport::ClientReply& reply) {
    return std::visit([](const auto& r) -> NodeId {
        if constexpr (requires { r.leader_hint; }) {
            return r.leader_hint;
        } else {
            return kNoNode;
        }
    }, reply);
}

nlohmann::ordered_json reply_json(const transport::ClientReply& reply) {
    return std::visit([](const auto& r) { return to_json(r); }, reply);
}

// Text form: "ok" alone for a bare success, else key=value pairs in the
// JSON's field order; lists of objects as id:field:field,... runs.
std::string reply_text(const transport::ClientReply& reply) { return json_text(reply_json(reply)); }

std::string json_text(const nlohmann::ordered_json& j) {
    std::string out = j.at("ok").get<bool>() ? "ok" : "error";
    for (const auto& [key, value] : j.items()) {
        if (key == "ok") continue;
        out += " " + key + "=";
        if (!value.is_array()) {
            out += scalar_text(value);
            continue;
        }
        // A list of objects prints as first(k=v,k=v),...: "peers=2(suspected=false,last_heard_ms=40)".
        std::string list;
        for (const auto& item : value) {
            std::string one;
            for (const auto& [k, v] : item.items()) {
                one += one.empty() ? scalar_text(v) + "(" : (one.back() == '(' ? "" : ",") + k + "=" + scalar_text(v);
            }
            list += (list.empty() ? "" : ",") + one + ")";
        }
        out += list.empty() ? "none" : list;
    }
    return out;
}

nlohmann::ordered_json local_error_json(const std::string& code, const std::string& message) {
    return {{"ok", false}, {"error", code}, {"message", message}, {"leader_hint", nullptr}};
}

}  // namespace rl::tools
