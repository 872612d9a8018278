// Bully (docs/design.md section 5, "Who"): the highest live id wins. ELECTION goes to
// every live higher id; a higher id that could lead answers OK and runs its
// own election; a node no higher id answers stands in the promise round and,
// with a majority, announces itself with COORDINATOR.
#include "election/core.hpp"

namespace rl::election {

void Core::start_bully() {
    bool asked = false;
    for (NodeId id : params_.members) {
        if (id > params_.self && !fd_.suspected(id)) {
            send(id, BullyElection{epoch()});
            asked = true;
        }
    }
    // No live higher id: this node is the highest and stands at once.
    if (!asked) return stand();
    role_ = Candidate{Soliciting{}, answer_wait_ticks()};
}

void Core::on_message(NodeId from, const BullyElection& m) {
    if (!runs(config::ElectionAlgorithm::bully, from)) return;
    // ELECTION only ever goes to higher ids.
    if (from > params_.self) return bad_message(from, "election_from_higher_id");
    if (!admit(from, m.epoch)) return;
    // No pre-emption: a live leader answers with its announcement instead of
    // taking part, whatever the ids.
    if (std::holds_alternative<Leader>(role_)) return send(from, BullyCoordinator{epoch(), params_.self});
    if (std::holds_alternative<Candidate>(role_)) return send(from, BullyOk{epoch()});
    // A node that may not stand (listening after a restart, hearing a live
    // leader, cut off from a majority) stays silent, so the lower id does
    // not wait for an announcement that will never come.
    if (!may_stand()) return;
    send(from, BullyOk{epoch()});
    // Having promised another candidate, only vouch for it; otherwise take over.
    if (retry_ticks_left_ == 0) start_election();
}

void Core::on_message(NodeId from, const BullyOk& m) {
    if (!runs(config::ElectionAlgorithm::bully, from)) return;
    // OK only ever comes from higher ids.
    if (from < params_.self) return bad_message(from, "ok_from_lower_id");
    if (!admit(from, m.epoch)) return;
    if (!soliciting()) return;  // a late answer: this attempt is over
    // A higher id took over: wait one election timeout for its COORDINATOR
    // before trying again (the classic Bully timeout).
    become_follower("higher_id_alive");
    ok_from_ = from;  // suspected before its COORDINATOR comes: try again at once
    retry_ticks_left_ = params_.timing.election_timeout_ticks;
}

void Core::on_message(NodeId from, const BullyCoordinator& m) {
    if (!runs(config::ElectionAlgorithm::bully, from)) return;
    if (m.leader != from) return bad_message(from, "coordinator_names_another");
    if (!admit(from, m.epoch)) return;
    recognise_leader(from);
}

}  // namespace rl::election
