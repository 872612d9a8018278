// One-line renderings of election messages for simulator traces.
#pragma once

#include "election/messages.hpp"

#include <string>

namespace rl::election::sim {

// "n1 -> n2 Heartbeat{epoch=3 leader=2 commit=0}"
std::string describe(NodeId from, NodeId to, const ElectionMessage& msg);

}  // namespace rl::election::sim
