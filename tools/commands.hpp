// The client command table (docs/design.md section 4): each command's name, its
// arguments, how it becomes a request, and how its reply prints as text and
// as JSON. rlcat and rlbench both read it; a new command is one entry here
// plus its request/reply structs in transport/messages.hpp.
#pragma once

#include "transport/messages.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace rl::tools {

struct CommandSpec {
    const char* name;
    const char* usage;    // e.g. "transfer FROM TO AMOUNT"
    const char* summary;  // one line for --help
    std::size_t min_args;
    std::size_t max_args;
    // Builds the request; throws std::invalid_argument with a message
    // naming the bad argument. A transfer's txid is left empty: the
    // caller takes it from its client session (tools/client.hpp).
    transport::ClientRequest (*build)(const std::vector<std::string>& args);
};

const std::vector<CommandSpec>& command_table();

// Splits a command line into words and builds its request. Throws
// std::invalid_argument for an unknown command or bad arguments.
transport::ClientRequest parse_command(const std::string& line);

// A session id as a user types it (the `session` field of a SessionReply):
// a whole number whose shard part and entry index are both non-zero
// (docs/design.md section 6). Throws std::invalid_argument naming `what`.
std::uint64_t parse_session_id(const std::string& text, const std::string& what);

// True for a reply that reports success.
bool reply_ok(const transport::ClientReply& reply);
// True for an error that a retry (maybe at another node) can cure; for a
// batch, when some transfer failed that way (resent whole, same txids).
bool retryable(const transport::ClientReply& reply);
// How many transfers of a batch have no known outcome (status failed).
std::size_t batch_failed(const transport::TransfersReply& reply);
// The leader hint a reply carries (kNoNode if none).
NodeId leader_hint(const transport::ClientReply& reply);
// One JSON object (docs/design.md section 4 fields).
nlohmann::ordered_json reply_json(const transport::ClientReply& reply);
// One line of key=value text.
std::string reply_text(const transport::ClientReply& reply);
// The same text for any reply-shaped object (`ok` first).
std::string json_text(const nlohmann::ordered_json& j);
// A txid as `session:seq`, the way replies and the audit print it.
std::string txid_text(const txn::TxnId& t);
// The error line for a request that got no reply (timeouts, unreachable).
nlohmann::ordered_json local_error_json(const std::string& code, const std::string& message);

}  // namespace rl::tools
