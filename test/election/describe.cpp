#include "describe.hpp"

#include <sstream>

namespace rl::election::sim {
namespace {

void body(std::ostream& os, const Heartbeat& m) {
    os << "Heartbeat{epoch=" << m.epoch << " leader=" << m.leader << " commit=" << m.commit_index << "}";
}
void body(std::ostream& os, const BullyElection& m) { os << "BullyElection{epoch=" << m.epoch << "}"; }
void body(std::ostream& os, const BullyOk& m) { os << "BullyOk{epoch=" << m.epoch << "}"; }
void body(std::ostream& os, const BullyCoordinator& m) {
    os << "BullyCoordinator{epoch=" << m.epoch << " leader=" << m.leader << "}";
}
void body(std::ostream& os, const RingElection& m) {
    os << "RingElection{epoch=" << m.epoch << " initiator=" << m.initiator << " hops=" << m.hops << " ids=";
    for (std::size_t i = 0; i < m.ids.size(); ++i) os << (i ? "," : "") << m.ids[i];
    os << "}";
}
void body(std::ostream& os, const RingCoordinator& m) {
    os << "RingCoordinator{epoch=" << m.epoch << " initiator=" << m.initiator << " winner=" << m.winner
       << " hops=" << m.hops << "}";
}
void body(std::ostream& os, const RingAck& m) {
    os << "RingAck{epoch=" << m.epoch << " initiator=" << m.initiator << " hops=" << m.hops
       << " coordinator=" << m.coordinator << "}";
}
void body(std::ostream& os, const PreVoteRequest& m) {
    os << "PreVoteRequest{epoch=" << m.epoch << " proposed=" << m.proposed << "}";
}
void body(std::ostream& os, const PreVoteReply& m) {
    os << "PreVoteReply{epoch=" << m.epoch << " proposed=" << m.proposed << " granted=" << m.granted
       << " leader=" << m.leader << "}";
}
void body(std::ostream& os, const PromiseRequest& m) { os << "PromiseRequest{epoch=" << m.epoch << "}"; }
void body(std::ostream& os, const PromiseReply& m) {
    os << "PromiseReply{epoch=" << m.epoch << " granted=" << m.granted << " leader=" << m.leader
       << " log=" << m.log.last_epoch << "/" << m.log.last_index << "}";
}

}  // namespace

std::string describe(NodeId from, NodeId to, const ElectionMessage& msg) {
    std::ostringstream os;
    os << "n" << from << " -> n" << to << " ";
    std::visit([&](const auto& m) { body(os, m); }, msg);
    return os.str();
}

}  // namespace rl::election::sim
