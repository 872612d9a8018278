// One-line renderings for simulator traces; election messages reuse the
// election simulator's describe().
#pragma once

#include "election/messages.hpp"
#include "txn/log.hpp"
#include "txn/messages.hpp"

#include <string>
#include <variant>

namespace rl::txn::sim {

// "n3": a node in traces and failure messages.
inline std::string who(NodeId id) { return "n" + std::to_string(id.value); }

// "n1 -> n2 AppendEntries{epoch=3 prev=4/2 n=2 commit=4 round=9}"
std::string describe(NodeId from, NodeId to, const std::variant<election::ElectionMessage, TxnMessage>& mail);
// "log_truncated peer=0 index=5"
std::string describe(const LogEvent& e);

}  // namespace rl::txn::sim
