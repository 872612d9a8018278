#include "tools/commands.hpp"

#include <sstream>
#include <stdexcept>

namespace rl::tools {
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

const std::vector<CommandSpec> kCommands = {
    {"ping", "ping", "check that the node answers", 0, 0,
     [](const std::vector<std::string>&) -> ClientRequest { return PingRequest{}; }},
    {"status", "status", "the node's role, epoch, leader, log position and peers", 0, 0,
     [](const std::vector<std::string>&) -> ClientRequest { return StatusRequest{}; }},
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

bool reply_ok(const transport::ClientReply& reply) { return !std::holds_alternative<ErrorReply>(reply); }

nlohmann::ordered_json reply_json(const transport::ClientReply& reply) {
    return std::visit([](const auto& r) { return to_json(r); }, reply);
}

// Text form: "ok" alone for a bare success, else key=value pairs in the
// JSON's field order; lists of objects as id:field:field,... runs.
std::string reply_text(const transport::ClientReply& reply) {
    const json j = reply_json(reply);
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
