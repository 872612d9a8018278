// The event heap of a simulator in logical time: no clock, no threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace rl::simcommon {

// Item: any event with `std::uint64_t time_ms` and `std::uint64_t seq`;
// keep it small, the heap moves items around on every event.
template <class Item>
class Timeline {
public:
    std::uint64_t now_ms() const { return now_ms_; }

    // Schedules `item` at its time_ms; events at the same time run in the
    // order they were scheduled, so runs are deterministic.
    void push(Item item) {
        item.seq = seq_++;
        heap_.push_back(std::move(item));
        std::push_heap(heap_.begin(), heap_.end(), later);
    }

    // Hands every event due within `max_ms` to `process`, in time order,
    // until `done` holds (checked first and after every event). The clock
    // stands at each event's time while it is processed.
    template <class Process>
    bool run_until(const std::function<bool()>& done, std::uint64_t max_ms, Process&& process) {
        const std::uint64_t end = now_ms_ + max_ms;
        if (done()) return true;
        while (!heap_.empty() && heap_.front().time_ms <= end) {
            std::pop_heap(heap_.begin(), heap_.end(), later);
            Item item = std::move(heap_.back());
            heap_.pop_back();
            now_ms_ = item.time_ms;
            process(item);
            if (done()) return true;
        }
        now_ms_ = end;
        return false;
    }

private:
    static bool later(const Item& a, const Item& b) {
        return a.time_ms != b.time_ms ? a.time_ms > b.time_ms : a.seq > b.seq;
    }

    std::vector<Item> heap_;
    std::uint64_t seq_ = 0;
    std::uint64_t now_ms_ = 0;
};

}  // namespace rl::simcommon
