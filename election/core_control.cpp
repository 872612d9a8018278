// Entry points for the log layer that shares this node's epoch: it reports
// epochs it sees on its own messages and asks to resign.
#include "election/core.hpp"

namespace rl::election {

void Core::observe(NodeId from, Epoch theirs) {
    if (from == params_.self || !is_member(from)) return;
    if (theirs == kEpochMax) {
        bad_message(from, "epoch_out_of_range");
    } else if (theirs > epoch()) {
        admit(from, theirs);
    }
    finish();
}

void Core::resign(const char* reason) {
    if (!std::holds_alternative<Leader>(role_)) return;
    become_follower(reason);
    // Let another member try first: do not stand again at once.
    retry_ticks_left_ = std::max(retry_ticks_left_, params_.timing.election_timeout_ticks);
    finish();
}

}  // namespace rl::election
