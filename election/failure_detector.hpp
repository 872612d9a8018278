// Heartbeat failure detector (sans-I/O). The node reports every frame heard
// from a peer and calls tick() once per tick_ms; the detector says when a
// peer crosses suspect_after and when it comes back. It owns no clock.
// The host may also report a peer whose dropped connection was refused on
// redial (docs/design.md section 5, "Fast crash detection"): a crashed process
// on a live host, suspected at once.
#pragma once

#include "config/types.hpp"

#include <cstdint>
#include <map>
#include <vector>

namespace rl::election {

struct PeerHealth {
    NodeId id;
    bool suspected = false;
    std::uint64_t last_heard_ticks = 0;  // ticks since the last frame from this peer
};

struct DetectorEvent {
    enum class Kind { suspect, recover };
    Kind kind;
    NodeId peer;
};

class FailureDetector {
public:
    // A peer silent for suspect_after_ticks ticks is suspected. Peers
    // start as "just heard": a node that (re)starts gives everyone one full
    // timeout before suspecting them.
    FailureDetector(const std::vector<NodeId>& peers, std::uint64_t suspect_after_ticks);

    // Any frame from `peer`. Returns a recover event when it was suspected.
    std::vector<DetectorEvent> heard(NodeId peer);
    // The host saw `peer` refuse a reconnect right after its connection
    // dropped. Returns a suspect event unless it was suspected already; the
    // next frame heard from it clears the suspicion as always.
    std::vector<DetectorEvent> refused(NodeId peer);
    // One tick of logical time; returns the peers that became suspected.
    std::vector<DetectorEvent> tick();
    // The coming tick (1: the next one) at which the first peer not
    // suspected yet would be, if nothing is heard from it meanwhile;
    // UINT64_MAX when every peer is suspected already.
    std::uint64_t ticks_until_suspect() const;

    bool suspected(NodeId peer) const;
    // Peers not suspected, self excluded.
    std::size_t live_peers() const;
    std::vector<PeerHealth> health() const;

private:
    struct State {
        std::uint64_t silent_ticks = 0;
        bool suspected = false;
    };
    std::uint64_t suspect_after_ticks_;
    std::map<NodeId, State> peers_;
};

}  // namespace rl::election
