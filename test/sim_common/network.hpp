// The simulated network between nodes 1..n: per-message faults (drops,
// duplicates, delays that reorder) and links cut symmetrically by a
// partition or in one direction only.
#pragma once

#include "random.hpp"

#include "config/types.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace rl::simcommon {

// Faults on every message while they are set.
struct LinkFaults {
    double drop = 0;                  // probability a message is lost
    double duplicate = 0;             // probability it is delivered twice
    std::uint64_t delay_min_ms = 1;   // each copy is delayed uniformly in [min, max];
    std::uint64_t delay_max_ms = 3;   // overlapping delays reorder messages
};

// Which directed links are cut. A message is judged when it arrives, so a
// cut also loses what was in flight on the link.
class Links {
public:
    explicit Links(std::size_t nodes);

    // Cuts every link between different groups, both ways; the nodes in no
    // group form one more group.
    void partition(const std::vector<std::vector<NodeId>>& groups);
    // Cuts the one direction from -> to.
    void cut(NodeId from, NodeId to);
    void heal();
    bool is_cut(NodeId from, NodeId to) const { return cut_[from.value - 1][to.value - 1]; }

private:
    std::vector<std::vector<bool>> cut_;  // cut_[from][to], indexed by id - 1
};

// Messages of type Mail in flight. They wait in slots, reused, so that the
// simulator's event heap holds only a slot number.
template <class Mail>
class Network {
public:
    explicit Network(std::size_t nodes) : links_(nodes) {}

    Links& links() { return links_; }
    const Links& links() const { return links_; }

    void set_faults(const LinkFaults& faults) {
        faults_ = faults;
        max_delay_ever_ms_ = std::max(max_delay_ever_ms_, faults.delay_max_ms);
    }
    // Longest delay any message of this run can have taken.
    std::uint64_t max_delay_ever_ms() const { return max_delay_ever_ms_; }

    // Draws the message's fate in a fixed order (drop, duplicate, then one
    // delay per copy) and hands each copy's delay and slot to
    // `schedule(delay_ms, slot)`. Returns false when the message is lost.
    template <class Schedule>
    bool send(std::mt19937_64& r, Mail mail, Schedule&& schedule) {
        if (chance(r, faults_.drop)) return false;
        const int copies = chance(r, faults_.duplicate) ? 2 : 1;
        for (int i = 0; i < copies; ++i) {
            const std::uint64_t delay_ms = uniform(r, faults_.delay_min_ms, faults_.delay_max_ms);
            schedule(delay_ms, park(i + 1 < copies ? mail : std::move(mail)));
        }
        return true;
    }

    // Takes a message out of its slot when its delivery comes due.
    Mail take(std::size_t slot) {
        Mail mail = std::move(mail_[slot]);
        free_slots_.push_back(slot);
        return mail;
    }

private:
    std::size_t park(Mail&& mail) {
        if (free_slots_.empty()) {
            mail_.push_back(std::move(mail));
            return mail_.size() - 1;
        }
        const std::size_t slot = free_slots_.back();
        free_slots_.pop_back();
        mail_[slot] = std::move(mail);
        return slot;
    }

    Links links_;
    LinkFaults faults_;
    std::uint64_t max_delay_ever_ms_ = LinkFaults{}.delay_max_ms;
    std::vector<Mail> mail_;               // messages in flight, by slot
    std::vector<std::size_t> free_slots_;  // slots of mail_ free for reuse
};

}  // namespace rl::simcommon
