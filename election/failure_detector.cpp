#include "election/failure_detector.hpp"

#include "config/check.hpp"

#include <algorithm>

namespace rl::election {

FailureDetector::FailureDetector(const std::vector<NodeId>& peers, std::uint64_t suspect_after_ticks)
    : suspect_after_ticks_(suspect_after_ticks) {
    require(suspect_after_ticks_ > 0, "suspect_after_ticks > 0");
    for (NodeId p : peers) peers_[p] = State{};
}

std::vector<DetectorEvent> FailureDetector::heard(NodeId peer) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return {};
    it->second.silent_ticks = 0;
    if (!it->second.suspected) return {};
    it->second.suspected = false;
    return {DetectorEvent{DetectorEvent::Kind::recover, peer}};
}

std::vector<DetectorEvent> FailureDetector::refused(NodeId peer) {
    auto it = peers_.find(peer);
    if (it == peers_.end() || it->second.suspected) return {};
    it->second.suspected = true;
    return {DetectorEvent{DetectorEvent::Kind::suspect, peer}};
}

std::vector<DetectorEvent> FailureDetector::tick() {
    std::vector<DetectorEvent> events;
    for (auto& [id, state] : peers_) {
        ++state.silent_ticks;
        if (!state.suspected && state.silent_ticks >= suspect_after_ticks_) {
            state.suspected = true;
            events.push_back(DetectorEvent{DetectorEvent::Kind::suspect, id});
        }
    }
    return events;
}

std::uint64_t FailureDetector::ticks_until_suspect() const {
    std::uint64_t due = UINT64_MAX;
    for (const auto& [id, state] : peers_) {
        if (!state.suspected) due = std::min(due, suspect_after_ticks_ - state.silent_ticks);
    }
    return due;
}

bool FailureDetector::suspected(NodeId peer) const {
    auto it = peers_.find(peer);
    return it != peers_.end() && it->second.suspected;
}

std::size_t FailureDetector::live_peers() const {
    std::size_t n = 0;
    for (const auto& [id, state] : peers_) n += state.suspected ? 0 : 1;
    return n;
}

std::vector<PeerHealth> FailureDetector::health() const {
    std::vector<PeerHealth> out;
    out.reserve(peers_.size());
    for (const auto& [id, state] : peers_) out.push_back(PeerHealth{id, state.suspected, state.silent_ticks});
    return out;
}

}  // namespace rl::election
