#include "wal_model.hpp"

#include "failure.hpp"
#include "txn/wal.hpp"

#include <string>

namespace rl::txn::sim {
namespace {

// The real shell would stop on rl::require inside txn::Wal.
void wal_require(bool ok, const std::string& what) {
    if (!ok) throw SimFailure("the WAL would abort: " + what);
}

}  // namespace

const LogEntry* Disk::find(LogIndex index) const {
    if (index <= snapshot_index() || index > last_index()) return nullptr;
    return &entries[index.value - snapshot_index().value - 1];
}

void WalModel::save_durable(const election::Durable& d) {
    wal_require(d.promised >= buffered_durable_.promised && d.epoch >= buffered_durable_.epoch,
                "Wal::save_durable: epochs only rise");
    buffered_durable_ = d;
    pending_.emplace_back(d);
}

void WalModel::truncate_after(LogIndex index) {
    wal_require(index >= disk_.snapshot_index() && index <= last_,
                "Wal::truncate_after " + std::to_string(index.value) + " outside [snapshot " +
                    std::to_string(disk_.snapshot_index().value) + ", last " + std::to_string(last_.value) + "]");
    if (index == last_) return;
    pending_.emplace_back(Truncate{index});
    last_ = index;
}

void WalModel::append(const LogEntry& e) {
    wal_require(e.index.value == last_.value + 1, "Wal::append " + std::to_string(e.index.value) +
                                                      " after last " + std::to_string(last_.value));
    pending_.emplace_back(e);
    last_ = e.index;
}

std::vector<LogEntry> WalModel::sync() {
    std::vector<LogEntry> dropped;
    for (auto& op : pending_) {
        if (auto* d = std::get_if<election::Durable>(&op)) {
            disk_.durable = *d;
        } else if (auto* t = std::get_if<Truncate>(&op)) {
            while (disk_.last_index() > t->after) {
                dropped.push_back(disk_.entries.back());
                disk_.entries.pop_back();
            }
        } else {
            disk_.entries.push_back(std::get<LogEntry>(op));
        }
    }
    pending_.clear();
    return dropped;
}

void WalModel::crash() {
    pending_.clear();
    buffered_durable_ = disk_.durable;
    last_ = disk_.last_index();
}

std::vector<LogEntry> WalModel::install(const Snapshot& s) {
    wal_require(s.last_index >= disk_.snapshot_index(),
                "Wal::install_snapshot: older than the current snapshot");
    wal_require(!disk_.snapshot || s.last_index != disk_.snapshot_index() || s.last_epoch == disk_.snapshot->last_epoch,
                "Wal::install_snapshot: same index as the current snapshot, other epoch");
    auto dropped = sync();
    for (const auto& e : disk_.entries) dropped.push_back(e);
    restart(s, s.last_index);
    disk_.entries.clear();
    last_ = s.last_index;
    return dropped;
}

void WalModel::compact(const Snapshot& s, const std::vector<LogEntry>& kept) {
    wal_require(s.last_index >= disk_.snapshot_index() && s.last_index <= last_,
                "Wal::compact at " + std::to_string(s.last_index.value) + " outside [snapshot " +
                    std::to_string(disk_.snapshot_index().value) + ", last " + std::to_string(last_.value) + "]");
    sync();
    const LogEntry* there = disk_.find(s.last_index);
    const Epoch epoch_there = there ? there->epoch : disk_.snapshot ? disk_.snapshot->last_epoch : Epoch{};
    wal_require(epoch_there == s.last_epoch, "Wal::compact: snapshot epoch differs from its entry's");
    // The node hands txn::Wal the entries to keep from its log in memory;
    // they must be exactly what its disk holds after the snapshot.
    std::vector<std::vector<std::uint8_t>> want;
    for (const auto& e : disk_.entries) {
        if (e.index > s.last_index) want.push_back(encode_record(e));
    }
    wal_require(want.size() == kept.size(), "Wal::compact: the kept entries are not those the disk holds after the snapshot");
    for (std::size_t k = 0; k < kept.size(); ++k) {
        wal_require(encode_record(kept[k]) == want[k],
                    "Wal::compact: kept entry " + std::to_string(kept[k].index.value) + " differs from the disk's");
    }
    restart(s, s.last_index);
}

// Keeps the entries after `keep_after` and makes `s` the base.
void WalModel::restart(const Snapshot& s, LogIndex keep_after) {
    std::vector<LogEntry> kept;
    for (const auto& e : disk_.entries) {
        if (e.index > keep_after) kept.push_back(e);
    }
    disk_.snapshot = s;
    disk_.entries = std::move(kept);
}

}  // namespace rl::txn::sim
