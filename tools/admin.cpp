#include "tools/admin.hpp"

#include "tools/commands.hpp"

namespace rl::tools {

transport::ClientReply switch_fault(const std::string& cluster_name, const std::string& endpoint,
                                    transport::FaultAction action, Clock::time_point deadline) {
    Client client(cluster_name);
    client.connect(endpoint, deadline);
    return client.call(transport::FaultRequest{0, action}, deadline);
}

std::vector<transport::ClientReply> reset_shards(RetryingClient& client, const config::Config& config,
                                                 Clock::time_point deadline) {
    std::vector<transport::ClientReply> replies;
    for (const auto& [shard, unused] : config.shards()) {
        replies.push_back(client.call(transport::ResetRequest{0, shard}, deadline, true));
        auto* error = std::get_if<transport::ErrorReply>(&replies.back());
        if (error != nullptr) error->message = "shard " + std::to_string(shard.value) + ": " + error->message;
        if (!std::holds_alternative<transport::ResetReply>(replies.back())) break;
    }
    return replies;
}

nlohmann::ordered_json resets_json(const std::vector<transport::ClientReply>& replies) {
    nlohmann::ordered_json shards = nlohmann::ordered_json::array();
    for (const auto& reply : replies) {
        const auto* done = std::get_if<transport::ResetReply>(&reply);
        if (done == nullptr) return reply_json(reply);
        shards.push_back({{"shard", done->shard.value}, {"applied_at", done->applied_at.value}});
    }
    return {{"ok", true}, {"shards", shards}};
}

}  // namespace rl::tools
