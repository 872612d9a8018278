#include "election/output.hpp"

#include <ostream>

namespace rl::election {

const char* to_string(RoleKind r) {
    switch (r) {
        case RoleKind::follower: return "follower";
        case RoleKind::candidate: return "candidate";
        case RoleKind::leader: return "leader";
    }
    return "?";
}

std::ostream& operator<<(std::ostream& os, RoleKind r) { return os << to_string(r); }

const char* to_string(EventKind k) {
    switch (k) {
        case EventKind::peer_suspected: return "peer_suspected";
        case EventKind::peer_recovered: return "peer_recovered";
        case EventKind::election_started: return "election_started";
        case EventKind::winner_chosen: return "winner_chosen";
        case EventKind::election_failed: return "election_failed";
        case EventKind::prevote_round: return "prevote_round";
        case EventKind::prevote_granted: return "prevote_granted";
        case EventKind::prevote_refused: return "prevote_refused";
        case EventKind::promise_round: return "promise_round";
        case EventKind::promised: return "promised";
        case EventKind::promise_refused: return "promise_refused";
        case EventKind::became_leader: return "became_leader";
        case EventKind::stepped_down: return "stepped_down";
        case EventKind::epoch_adopted: return "epoch_adopted";
        case EventKind::leader_changed: return "leader_changed";
        case EventKind::fenced: return "fenced";
        case EventKind::bad_message: return "bad_message";
    }
    return "?";
}

std::ostream& operator<<(std::ostream& os, const Event& e) {
    os << "event=" << to_string(e.kind) << " epoch=" << e.epoch;
    if (e.peer != kNoNode) os << " peer=" << e.peer;
    if (e.leader != kNoNode || e.kind == EventKind::leader_changed) os << " leader=" << e.leader;
    if (*e.reason != '\0') os << " reason=" << e.reason;
    return os;
}

bool Output::empty() const {
    return !persist && messages.empty() && events.empty() && !leader_change && !elected;
}

}  // namespace rl::election
