#include "txn/log.hpp"

#include "config/check.hpp"

#include <algorithm>
#include <utility>

namespace rl::txn {


const char* to_string(LogEventKind k) {
    switch (k) {
        case LogEventKind::leader_ready: return "leader_ready";
        case LogEventKind::adopt_started: return "adopt_started";
        case LogEventKind::adopt_failed: return "adopt_failed";
        case LogEventKind::truncated: return "log_truncated";
        case LogEventKind::snapshot_sent: return "snapshot_sent";
        case LogEventKind::snapshot_installed: return "snapshot_installed";
        case LogEventKind::follower_regressed: return "follower_regressed";
        case LogEventKind::bad_message: return "bad_message";
    }
    return "unknown";
}

ReplicatedLog::ReplicatedLog(NodeId self, std::vector<NodeId> members, LogLimits limits,
                             const std::optional<Snapshot>& snapshot, std::vector<LogEntry> entries)
    : self_(self), members_(std::move(members)), limits_(limits), snapshot_(snapshot) {
    if (snapshot_) {
        snapshot_index_ = snapshot_->last_index;
        snapshot_epoch_ = snapshot_->last_epoch;
        commit_ = snapshot_index_;  // a snapshot holds only committed state
    }
    for (auto& e : entries) {
        require(e.index.value == last_index().value + 1, "recovered entries are consecutive");
        entries_.push_back(std::move(e));
    }
    durable_ = last_index();
    handed_ = durable_;
}

LogIndex ReplicatedLog::last_index() const {
    return LogIndex{snapshot_index_.value + entries_.size()};
}

Epoch ReplicatedLog::last_epoch() const { return entries_.empty() ? snapshot_epoch_ : entries_.back().epoch; }

const LogEntry& ReplicatedLog::at(LogIndex index) const {
    require(index > snapshot_index_ && index <= last_index(), "log index in memory");
    return entries_[index.value - snapshot_index_.value - 1];
}

std::optional<Epoch> ReplicatedLog::epoch_at(LogIndex index) const {
    if (index == snapshot_index_) return snapshot_epoch_;
    if (index < snapshot_index_ || index > last_index()) return std::nullopt;
    return at(index).epoch;
}

// ---- local changes, each mirrored into the output for the WAL ----

void ReplicatedLog::append_local(LogEntry e) {
    require(e.index.value == last_index().value + 1, "append at last + 1");
    out_.appended.push_back(e);
    entries_.push_back(std::move(e));
}

void ReplicatedLog::truncate_local(LogIndex after) {
    // Raft: a committed entry is never removed; a leader that asks for it
    // broke the log-matching rule, which callers rule out before this.
    require(after >= commit_, "never truncate committed entries");
    while (last_index() > after) entries_.pop_back();
    // Appends buffered in this output past the cut never reach the disk.
    while (!out_.appended.empty() && out_.appended.back().index > after) out_.appended.pop_back();
    if (out_.appended.empty()) out_.truncate_after = out_.truncate_after ? std::min(*out_.truncate_after, after) : after;
    // The disk holds the old entries past `after` until this output is
    // written: no sync reported before then may count them.
    durable_ = std::min(durable_, after);
    handed_ = std::min(handed_, after);
    event(LogEventKind::truncated, kNoNode, after);
}

void ReplicatedLog::install_local(const Snapshot& s) {
    entries_.clear();
    out_.appended.clear();
    out_.truncate_after.reset();
    snapshot_index_ = s.last_index;
    snapshot_epoch_ = s.last_epoch;
    snapshot_ = s;
    commit_ = std::max(commit_, s.last_index);
    durable_ = std::min(durable_, s.last_index);
    handed_ = std::min(handed_, s.last_index);
    out_.install = s;
    event(LogEventKind::snapshot_installed, kNoNode, s.last_index);
}

// ---- role changes ----

void ReplicatedLog::follow(Epoch e, NodeId leader) {
    require(e >= epoch_, "epochs only grow");
    epoch_ = e;
    leader_ = leader;
    leading_ = false;
    ready_ = false;
    epoch_start_ = LogIndex{};
    adoption_.reset();
    progress_.clear();
}

void ReplicatedLog::lead(const election::Elected& elected) {
    require(elected.epoch >= epoch_, "epochs only grow");
    epoch_ = elected.epoch;
    leader_ = self_;
    leading_ = true;
    ready_ = false;
    epoch_start_ = LogIndex{};
    adoption_.reset();
    progress_.clear();
    for (NodeId m : members_) {
        if (m != self_) progress_[m] = Progress{last_index().next(), LogIndex{0}};
    }
    if (elected.best_log_holder == self_ || elected.best_log <= position()) return become_ready();
    // Another promiser holds a more up-to-date log. It holds every committed
    // entry (a majority has each, and the promise quorum meets that
    // majority), so fetch its suffix past our commit index before appending.
    adoption_ = Adoption{elected.best_log_holder, elected.best_log, commit_.next(),
                         std::max<std::uint64_t>(1, limits_.adopt_timeout_ticks)};
    event(LogEventKind::adopt_started, elected.best_log_holder);
    fetch_next();
}

void ReplicatedLog::fetch_next() {
    send(adoption_->holder, FetchLog{epoch_, adoption_->cursor, limits_.append_entries_max});
    adoption_->refetch_ticks = std::max<std::uint64_t>(1, limits_.heartbeat_ticks * 2);
}

// Answers a new leader's fetch. Reading our log is harmless whoever asks; a
// lower epoch is fenced like everything else.
void ReplicatedLog::step(NodeId from, const FetchLog& m) {
    if (m.epoch < epoch_) return send(from, AppendReply{epoch_, false, LogIndex{}, LogIndex{}, 0, last_index()});
    FetchReply r{epoch_, m.from_index, {}, last_index(), std::nullopt};
    LogIndex next = m.from_index;
    if (next <= snapshot_index_) {
        // The snapshot alone fills the frame budget; entries follow in
        // the next fetch.
        r.snapshot = snapshot_;
        return send(from, std::move(r));
    }
    const std::uint32_t max = std::clamp<std::uint32_t>(m.max_entries, 1, limits_.append_entries_max);
    for (std::size_t weight = 0; next <= last_index(); next = next.next()) {
        weight += entry_weight(at(next));
        if (!r.entries.empty() && weight > max) break;
        r.entries.push_back(at(next));
    }
    send(from, std::move(r));
}

void ReplicatedLog::step(NodeId from, const FetchReply& m) {
    if (!adoption_ || from != adoption_->holder || m.from_index != adoption_->cursor) return;
    if (m.epoch > epoch_) {
        higher_epoch_ = {from, m.epoch};
        return;
    }
    adopt(m);
    finish_adoption_if_done();
}

// Takes the holder's entries in place of ours from the cursor on: entries
// that agree are kept, the first that disagrees cuts our suffix (never a
// committed entry: the holder has all of those too).
void ReplicatedLog::adopt(const FetchReply& m) {
    if (m.snapshot) {
        const Snapshot& s = *m.snapshot;
        if (s.last_index < commit_) return event(LogEventKind::bad_message, adoption_->holder, {}, "old_snapshot");
        // As for InstallSnapshot: when we hold the snapshot's last entry in
        // its epoch, our entries after it agree with the holder's and may be
        // durable copies of committed entries. Wiping them to re-append
        // them would leave a window where a crash loses those copies.
        if (epoch_at(s.last_index) != s.last_epoch) install_local(s);
        adoption_->cursor = s.last_index.next();
    }
    for (const auto& e : m.entries) {
        if (e.index != adoption_->cursor) return event(LogEventKind::bad_message, adoption_->holder, e.index, "gap");
        const auto mine = epoch_at(e.index);
        if (mine && *mine == e.epoch) {
            adoption_->cursor = e.index.next();
            continue;
        }
        if (e.index <= last_index()) truncate_local(e.index.prev());
        append_local(e);
        adoption_->cursor = e.index.next();
    }
    if (m.last_index < adoption_->target.last_index) {
        // The holder no longer has what it promised: it lost unsynced
        // writes or lies. Leading on would risk a committed entry.
        event(LogEventKind::adopt_failed, adoption_->holder, m.last_index, "holder_log_shrank");
        resign_ = true;
        adoption_.reset();
    }
}

void ReplicatedLog::finish_adoption_if_done() {
    if (!adoption_) return;
    if (adoption_->cursor.value <= adoption_->target.last_index.value) return fetch_next();
    // Our own entries past the holder's log are not in it, hence not
    // committed: drop them. A holder snapshot reaching past the promised
    // position is committed state and stays (never cut below commit).
    const LogIndex keep = std::max(adoption_->target.last_index, commit_);
    if (last_index() > keep) truncate_local(keep);
    adoption_.reset();
    become_ready();
}

// Raft's rule for a new leader: it commits earlier epochs' entries only by
// committing one of its own, so the first thing it appends is a no-op.
void ReplicatedLog::become_ready() {
    ready_ = true;
    for (auto& [id, p] : progress_) p.next = last_index().next();
    append_local(LogEntry{last_index().next(), epoch_, Noop{}});
    epoch_start_ = last_index();
    heartbeat_due_ = true;
    event(LogEventKind::leader_ready, kNoNode, last_index());
}

std::optional<LogIndex> ReplicatedLog::propose(Command c) {
    if (!ready()) return std::nullopt;
    append_local(LogEntry{last_index().next(), epoch_, std::move(c)});
    return last_index();
}

std::uint64_t ReplicatedLog::start_read_round() {
    heartbeat_due_ = true;
    return ++round_;
}

std::uint64_t ReplicatedLog::confirmed_round() const {
    if (!leading_) return 0;
    std::vector<std::uint64_t> rounds{round_};
    for (const auto& [id, p] : progress_) rounds.push_back(p.acked_round);
    std::sort(rounds.begin(), rounds.end(), std::greater<>());
    return rounds[majority() - 1];
}

// ---- follower side ----

// The epoch gate for a leader's message: only the leader this node knows
// for its current epoch may change its log. A lower epoch is told ours.
bool ReplicatedLog::accept_from_leader(NodeId from, Epoch e) {
    if (e < epoch_) {
        send(from, AppendReply{epoch_, false, LogIndex{}, LogIndex{}, 0, last_index()});
        return false;
    }
    if (e > epoch_) {
        higher_epoch_ = {from, e};
        return false;  // the election adopts it; the leader resends
    }
    return !leading_ && from == leader_;
}

void ReplicatedLog::step(NodeId from, const AppendEntries& m) {
    if (!accept_from_leader(from, m.epoch)) return;
    if (m.prev_index > last_index()) {
        return send(from, AppendReply{epoch_, false, LogIndex{}, last_index().next(), m.round, last_index()});
    }
    const auto prev_epoch = m.prev_index < snapshot_index_ ? std::optional<Epoch>{} : epoch_at(m.prev_index);
    if (m.prev_index >= snapshot_index_ && prev_epoch != m.prev_epoch) {
        return send(from, AppendReply{epoch_, false, LogIndex{}, conflict_hint(m.prev_index), m.round, last_index()});
    }
    LogIndex match = m.prev_index;
    accept_entries(m, match);
    // Raft: commit no further than what this message proved we share.
    const LogIndex commit = std::min(m.commit_index, match);
    if (commit > commit_) commit_ = commit;
    send(from, AppendReply{epoch_, true, match, LogIndex{}, m.round, last_index()});
}

void ReplicatedLog::accept_entries(const AppendEntries& m, LogIndex& match) {
    for (const auto& e : m.entries) {
        if (e.index.value != match.value + 1) {
            event(LogEventKind::bad_message, leader_, e.index, "entries_not_consecutive");
            return;
        }
        match = e.index;
        if (e.index <= snapshot_index_) continue;  // compacted: committed, so equal
        const auto mine = epoch_at(e.index);
        if (mine && *mine == e.epoch) continue;
        if (mine) {
            if (e.index <= commit_) {
                event(LogEventKind::bad_message, leader_, e.index, "conflicts_with_committed");
                match = e.index.prev();
                return;
            }
            truncate_local(e.index.prev());
        }
        append_local(e);
    }
}

// Where the leader should resume: the first index of the epoch that
// conflicts, so a long divergent suffix costs one round trip per epoch.
LogIndex ReplicatedLog::conflict_hint(LogIndex prev_index) const {
    const auto bad = epoch_at(prev_index);
    LogIndex i = prev_index;
    while (i > snapshot_index_ && i > commit_ && epoch_at(i.prev()) == bad) i = i.prev();
    return std::max(i, commit_.next());
}

void ReplicatedLog::step(NodeId from, const InstallSnapshot& m) {
    if (!accept_from_leader(from, m.epoch)) return;
    // Raft section 7: a snapshot within our committed prefix (a duplicate
    // or a late one) holds nothing new and must not roll the log back; one
    // whose last entry we hold in the same epoch keeps the entries after it.
    const Snapshot& s = m.snapshot;
    if (s.last_index > commit_ && epoch_at(s.last_index) != s.last_epoch) install_local(s);
    // Only the snapshot's prefix is proven shared with this leader.
    commit_ = std::max(commit_, std::min(m.commit_index, s.last_index));
    send(from, AppendReply{epoch_, true, s.last_index, LogIndex{}, 0, last_index()});
}

// ---- leader side ----

void ReplicatedLog::step(NodeId from, const AppendReply& m) {
    if (m.epoch > epoch_) {
        higher_epoch_ = {from, m.epoch};
        return;
    }
    auto it = progress_.find(from);
    if (!leading_ || m.epoch < epoch_ || it == progress_.end()) return;
    Progress& p = it->second;
    p.silent_ticks = 0;
    // Any answer in our epoch shows the follower still took us as leader
    // when it got the append with this stamp (ReadIndex).
    p.acked_round = std::max(p.acked_round, m.round);
    if (m.success) return on_append_success(from, p, m.match_index);
    // A refusal of a send older than the current pipeline (a duplicate, or
    // one overtaken by a restart) was acted on already: rewinding again
    // would resend what is in flight and break the inflight bound.
    if (m.round < p.pipeline_from) return;
    if (m.last_index < p.match) {
        // The follower lost entries it had acknowledged (fsync=never and a
        // crash, or a damaged disk): what we knew it held is gone.
        event(LogEventKind::follower_regressed, from, m.last_index);
        p.match = m.last_index;
    }
    restart_pipeline(p, std::clamp(m.hint, p.match.next(), last_index().next()));
}

// A success stays true however late it arrives: our epoch's log only grows,
// so the follower still matches it through `match`. It can raise match and
// settle the sends it covers, never lower anything.
void ReplicatedLog::on_append_success(NodeId from, Progress& p, LogIndex match) {
    if (match > last_index()) return event(LogEventKind::bad_message, from, match, "match_beyond_log");
    p.match = std::max(p.match, match);
    p.next = std::max(p.next, p.match.next());
    while (!p.inflight.empty() && p.inflight.front() <= p.match) p.inflight.pop_front();
    if (p.snapshot_sent <= p.match) p.snapshot_sent = LogIndex{};
    advance_commit();
}

// Commit on a durable majority, and only through an entry of the current
// epoch (Raft section 5.4.2): older entries commit with it.
void ReplicatedLog::advance_commit() {
    std::vector<LogIndex> matches{durable_};
    for (const auto& [id, p] : progress_) matches.push_back(p.match);
    std::sort(matches.begin(), matches.end(), std::greater<>());
    const LogIndex n = matches[majority() - 1];
    if (n > commit_ && epoch_at(n) == epoch_) commit_ = n;
}

// Only what the shell was handed can be on disk: a sync that completes
// after a truncation vouches for the old entries, not their replacements.
void ReplicatedLog::persisted(LogIndex index) {
    durable_ = std::max(durable_, std::min(index, handed_));
    if (leading_) advance_commit();
}

void ReplicatedLog::compact(Snapshot s) {
    require(s.last_index <= commit_ && s.last_index > snapshot_index_, "compact committed entries only");
    require(epoch_at(s.last_index) == s.last_epoch, "snapshot epoch matches the log");
    while (!entries_.empty() && entries_.front().index <= s.last_index) entries_.pop_front();
    snapshot_index_ = s.last_index;
    snapshot_epoch_ = s.last_epoch;
    snapshot_ = std::move(s);
}

// Abandons what is in flight to a follower and resumes at `next`. Answers
// to the abandoned sends carry older stamps and count as stale.
void ReplicatedLog::restart_pipeline(Progress& p, LogIndex next) {
    p.next = next;
    p.inflight.clear();
    p.snapshot_sent = LogIndex{};
    p.silent_ticks = 0;
    p.pipeline_from = round_ + 1;
}

void ReplicatedLog::replicate(NodeId peer, Progress& p, bool heartbeat) {
    // Until the snapshot is in, any append would be refused for its prev.
    if (p.snapshot_sent.value != 0) return;
    if (p.next <= snapshot_index_) return send_snapshot(peer, p);
    bool sent = false;
    while (p.next <= last_index() && p.inflight.size() < limits_.inflight_max) {
        send_append(peer, p, true);
        sent = true;
    }
    // Every append carries the commit index and a round: a heartbeat is
    // needed only when nothing else went out.
    if (heartbeat && !sent) send_append(peer, p, false);
}

// One AppendEntries from p.next, stamped with a new round (its answer
// echoes it: the read round, and which pipeline it belongs to).
void ReplicatedLog::send_append(NodeId peer, Progress& p, bool with_entries) {
    const LogIndex prev = p.next.prev();
    AppendEntries m{epoch_, prev, *epoch_at(prev), {}, commit_, ++round_};
    // Bounded by weight, so that batch entries keep the message within a frame.
    std::size_t weight = 0;
    for (LogIndex i = p.next; with_entries && i <= last_index(); i = i.next()) {
        weight += entry_weight(at(i));
        if (!m.entries.empty() && weight > limits_.append_entries_max) break;
        m.entries.push_back(at(i));
    }
    if (!m.entries.empty()) {
        p.next = LogIndex{p.next.value + m.entries.size()};
        p.inflight.push_back(m.entries.back().index);
    }
    send(peer, std::move(m));
}

// The follower needs entries we compacted away (Raft section 7). Nothing
// else goes to it until the snapshot is answered or the silence restarts.
void ReplicatedLog::send_snapshot(NodeId peer, Progress& p) {
    require(snapshot_.has_value(), "a compacted log has its snapshot");
    restart_pipeline(p, snapshot_index_.next());
    p.snapshot_sent = snapshot_index_;
    p.inflight.push_back(snapshot_index_);
    event(LogEventKind::snapshot_sent, peer, snapshot_index_);
    send(peer, InstallSnapshot{epoch_, *snapshot_, commit_});
}

void ReplicatedLog::tick() {
    if (!leading_) return;
    if (adoption_) return tick_adoption();
    tick_leader();
}

std::uint64_t ReplicatedLog::ticks_until_due() const {
    if (!leading_) return UINT64_MAX;
    if (adoption_) return 1;
    // tick_leader(): the heartbeat is due on the tick that takes the count
    // to 0, a pipeline restarts on the tick whose silence reaches the limit.
    std::uint64_t due = std::max<std::uint64_t>(1, heartbeat_ticks_left_);
    for (const auto& [id, p] : progress_) {
        if (p.inflight.empty()) continue;
        const std::uint64_t silent = std::min(p.silent_ticks, limits_.retransmit_ticks - 1);
        due = std::min(due, limits_.retransmit_ticks - silent);
    }
    return due;
}

// The holder must answer within adopt_timeout_ticks; a lost FetchLog or
// FetchReply is asked for again meanwhile.
void ReplicatedLog::tick_adoption() {
    if (--adoption_->ticks_left == 0) {
        event(LogEventKind::adopt_failed, adoption_->holder, {}, "timeout");
        resign_ = true;
        adoption_.reset();
    } else if (--adoption_->refetch_ticks == 0) {
        fetch_next();
    }
}

void ReplicatedLog::tick_leader() {
    for (auto& [id, p] : progress_) {
        // A lost message leaves its reply missing forever: after a silence,
        // restart the pipeline from what the follower is known to have.
        if (!p.inflight.empty() && ++p.silent_ticks >= limits_.retransmit_ticks) {
            restart_pipeline(p, p.match.next());
            ++tick_restarts_;
        }
    }
    if (heartbeat_ticks_left_ > 0) --heartbeat_ticks_left_;
    if (heartbeat_ticks_left_ == 0) heartbeat_due_ = true;
}

LogOutput ReplicatedLog::take_output() {
    if (ready()) {
        const bool heartbeat = std::exchange(heartbeat_due_, false);
        if (heartbeat) heartbeat_ticks_left_ = limits_.heartbeat_ticks;
        for (auto& [id, p] : progress_) replicate(id, p, heartbeat);
    }
    handed_ = last_index();
    return std::exchange(out_, LogOutput{});
}

}  // namespace rl::txn
