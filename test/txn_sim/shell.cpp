// Each simulated node runs what rlnode runs: txn::Shell over a txn::Replica
// and the real txn::Wal, here on a SimStorage disk. The Host below is the
// simulator's side of the shell (rlnode's is node::Node): it carries sends
// to the simulated network and replies to the clients, and feeds the
// durable model from every successful sync so that the checkers know what
// each disk holds. Crashes strike inside the turn: while a batch is
// written, while it is synced (any subset of its writes survives), or
// after the sync before anything is sent.
#include "sim.hpp"

#include "describe_txn.hpp"

#include "config/overload.hpp"
#include "election/quorum.hpp"

#include <sstream>

namespace rl::txn::sim {
namespace {

// An entry's command in a few words, for traces.
std::string command_text(const Command& c) {
    const auto amount = [](std::int64_t a) { return " " + std::to_string(a); };
    const auto decide_str = [](const Decide& d) {
        return "Decide(" + txid_str(d.txid) + (d.fate == Fate::committed ? " commit" : " abort") +
               (d.final_elsewhere ? " final" : "") + ")";
    };
    return std::visit(Overload{
                          [](const Noop&) { return std::string("Noop"); },
                          [](const Genesis&) { return std::string("Genesis"); },
                          [](const OpenSession&) { return std::string("OpenSession"); },
                          [&](const Transfer& t) { return "Transfer(" + txid_str(t.txid) + amount(t.amount) + ")"; },
                          [&](const PrepareDebit& p) {
                              return "PrepareDebit(" + txid_str(p.txid) + amount(p.amount) + ")";
                          },
                          [&](const PrepareCredit& p) {
                              return "PrepareCredit(" + txid_str(p.txid) + amount(p.amount) + ")";
                          },
                          [&](const Decide& d) { return decide_str(d); },
                          [&](const Decisions& ds) {
                              std::string s = "Decisions(";
                              for (const auto& d : ds.each) s += (s.size() > 10 ? " " : "") + decide_str(d);
                              return s + ")";
                          },
                          [](const Query& q) { return "Query(" + txid_str(q.txid) + ")"; },
                          [](const Release& r) { return "Release(" + txid_str(r.txid) + ")"; },
                          [](const Reset&) { return std::string("Reset"); },
                          [&](const TransferBatch& b) {
                              std::string s = "TransferBatch(";
                              for (const auto& x : b.each) {
                                  s += (s.size() > 14 ? " " : "") + txid_str(TxnId{b.session, x.seq}) + amount(x.amount);
                              }
                              return s + ")";
                          },
                          [](const Forget& f) {
                              std::string s = "Forget(";
                              for (const auto& t : f.txids) s += (s.size() > 7 ? " " : "") + txid_str(t);
                              return s + ")";
                          },
                      },
                      c);
}

// Unwinds a node's turn at the moment it crashes; never escapes the Sim.
struct SimCrash {};

// One WAL operation, applied to the durable model as txn::Wal applies it.
void apply_to_model(WalModel& m, const WalOp& op) {
    std::visit(Overload{
                   [&](const election::Durable& d) { m.save_durable(d); },
                   [&](const TruncateOp& t) { m.truncate_after(t.after); },
                   [&](const InstallOp& i) { (void)m.install(i.snapshot); },
                   [&](const LogEntry& e) { m.append(e); },
                   [&](const CompactOp& c) { m.compact(c.snapshot, c.kept); },
               },
               op);
}

// The node's disk as its WAL sees it: the SimStorage, with the run's
// crashes struck at writes and fsyncs.
class FaultyFile final : public StorageFile {
public:
    FaultyFile(std::unique_ptr<StorageFile> inner, const std::function<std::error_code(bool sync)>& fault)
        : inner_(std::move(inner)), fault_(fault) {}
    std::error_code write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) override {
        if (auto ec = fault_(false)) return ec;
        return inner_->write_at(offset, bytes);
    }
    std::error_code sync_data() override {
        if (auto ec = fault_(true)) return ec;
        return inner_->sync_data();
    }
    std::error_code truncate(std::uint64_t size_bytes) override { return inner_->truncate(size_bytes); }

private:
    std::unique_ptr<StorageFile> inner_;
    std::function<std::error_code(bool sync)> fault_;
};

class FaultyDisk final : public Storage {
public:
    FaultyDisk(Storage& inner, std::function<std::error_code(bool sync)> fault)
        : inner_(inner), fault_(std::move(fault)) {}
    std::error_code create_dir(const std::filesystem::path& d) override { return inner_.create_dir(d); }
    std::error_code list_dir(const std::filesystem::path& d, std::vector<std::string>& names) override {
        return inner_.list_dir(d, names);
    }
    std::error_code file_size(const std::filesystem::path& p, std::uint64_t& size) override {
        return inner_.file_size(p, size);
    }
    std::error_code read_file(const std::filesystem::path& p, std::uint64_t max, std::vector<std::uint8_t>& b) override {
        return inner_.read_file(p, max, b);
    }
    std::error_code open_file(const std::filesystem::path& p, std::unique_ptr<StorageFile>& f) override {
        return wrap(inner_.open_file(p, f), f);
    }
    std::error_code create_file(const std::filesystem::path& p, std::unique_ptr<StorageFile>& f) override {
        return wrap(inner_.create_file(p, f), f);
    }
    std::error_code rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
        return inner_.rename(from, to);
    }
    std::error_code remove(const std::filesystem::path& p) override { return inner_.remove(p); }
    std::error_code sync_dir(const std::filesystem::path& d) override {
        if (auto ec = fault_(true)) return ec;
        return inner_.sync_dir(d);
    }

private:
    std::error_code wrap(std::error_code ec, std::unique_ptr<StorageFile>& f) {
        if (!ec) f = std::make_unique<FaultyFile>(std::move(f), fault_);
        return ec;
    }
    Storage& inner_;
    std::function<std::error_code(bool sync)> fault_;
};

}  // namespace

Sim::Host::Host(Sim& sim, Node& n)
    : sim_(sim), n_(n), disk_(std::make_unique<FaultyDisk>(n.disk, [this](bool sync) { return fault(sync); })) {}

void Sim::Host::send(NodeId to, const election::ElectionMessage& m) { send_mail(to, Mail{m}); }
void Sim::Host::send(NodeId to, const TxnMessage& m) { send_mail(to, Mail{m}); }

void Sim::Host::reply(std::uint64_t handle, const OpResult& result) {
    sim_.observe(n_);  // an answer may follow a commit of this very turn
    sim_.on_reply(handle, result);
}

void Sim::Host::report(const ReplicaOutput& out) { sim_.on_report(n_, out); }

void Sim::Host::wal_failed(const WalIoError& error, const ShellStats&) {
    sim_.trace(who(n_.id) + " wal error: " + error.what());
}

void Sim::Host::synced(const std::vector<WalOp>& ops) {
    sim_.on_synced(n_, ops);
    if (sim_.chance(sim_.faults_.crash_after_sync)) throw SimCrash{};
}

// As rlnode's io_uring: some fdatasyncs finish a few milliseconds later,
// while the node goes on taking inputs; the disk is only synced then, so a
// crash meanwhile loses the batch.
std::optional<std::error_code> Sim::Host::start_sync(StorageFile& file) {
    if (!simcommon::chance(sim_.sync_rng_, sim_.background_sync_)) return file.sync_data();
    n_.sync_file = &file;
    sim_.timeline_.push(Item{sim_.now_ms() + simcommon::uniform(sim_.sync_rng_, 0, 3), 0, Item::Kind::sync_done, n_.id,
                             kNoNode, n_.incarnation});
    return std::nullopt;
}

void Sim::Host::send_mail(NodeId to, Mail mail) {
    sim_.check_sent(n_, mail);
    sim_.send(n_.id, to, std::move(mail));
}

// A write or fsync of this node's disk: maybe the power goes in the middle
// of it. (Errors the WAL must survive come from the SimStorage.)
std::error_code Sim::Host::fault(bool sync) {
    if (sim_.chance(sync ? sim_.faults_.crash_in_sync : sim_.faults_.crash_in_write)) throw SimCrash{};
    return {};
}

// Opens the node's WAL from its disk, as rlnode does at start, and checks
// that the real recovery gives back what the syncs made durable.
void Sim::open_node(Node& n) {
    n.host = std::make_unique<Host>(*this, n);
    Recovered rec;
    // A disk error at start stops rlnode, and its supervisor starts it
    // again: a few attempts, each from what is on disk.
    for (int attempt = 1; !n.wal; ++attempt) {
        try {
            rec = Recovered{};
            n.wal.emplace(
                Wal::open(n.host->disk(), n.config.node_dir(n.id), config::FsyncMode::always,
                          WalLimits{.preallocate_bytes = preallocate_bytes_}, rec));
        } catch (const WalIoError& e) {
            trace(who(n.id) + " could not open its WAL: " + e.what());
            if (attempt == 20) fail(who(n.id) + " could not open its WAL 20 times: " + e.what());
        } catch (const WalCorruption& e) {
            fail(who(n.id) + " WAL refused to start after a crash: " + e.what());
        } catch (const SimCrash&) {
            trace(who(n.id) + " crashed while opening its WAL");
            n.disk.crash(rng_);
            ++stats_.crashes;
        }
    }
    if (rec.torn_bytes_dropped > 0) ++stats_.torn_recoveries;
    check_recovered(n, rec);
    const std::uint64_t seed = rng_();
    ReplicaParams params = replica_params(n.config, n.id, seed);
    if (config_.seed % 3 == 0) params.between_shards_per_frame = 2;  // a turn's requests in several frames
    n.replica.emplace(std::move(params),
                      RecoveredState{rec.durable, std::move(rec.snapshot), std::move(rec.entries)});
    n.shell = std::make_unique<Shell>(*n.replica, *n.wal, n.config.cluster().limits.wal_backlog_bytes_max, *n.host);
}

// As rlnode: one flush per turn; a crash anywhere in it takes the node down.
void Sim::flush(Node& n) {
    try {
        catch_up(n);
        n.shell->flush();
    } catch (const SimCrash&) {
        crash(n.id);
        return;
    }
    n.shadow_current = true;
    arm_tick(n);
    observe(n);
}

// A background fdatasync finishes, and the shell takes its turn.
void Sim::finish_sync(Node& n) {
    StorageFile* file = std::exchange(n.sync_file, nullptr);
    try {
        catch_up(n);
        n.shell->sync_done(file->sync_data());
    } catch (const SimCrash&) {
        crash(n.id);
        return;
    }
    n.shadow_current = true;
    arm_tick(n);
    observe(n);
}

// Everything the WAL accepted up to a successful sync is on disk: the model
// follows, and a committed entry may leave a disk only while a majority
// keeps it.
void Sim::on_synced(Node& n, const std::vector<WalOp>& ops) {
    for (const WalOp& op : ops) {
        if (const auto* i = std::get_if<InstallOp>(&op)) {
            check_dropped(n, n.model.install(i->snapshot), "a snapshot install");
            ++stats_.snapshots_installed;
        } else {
            apply_to_model(n.model, op);
        }
    }
    check_dropped(n, n.model.sync(), "a truncation");
    const Epoch e = n.model.disk().durable.epoch;
    Epoch& max = max_epoch_[n.id.value - 1];
    if (e < max) fail(who(n.id) + " durable epoch decreased");
    max = e;
}

// The real WAL's recovery against the durable model: everything synced is
// back, and of what the WAL had accepted since (the batch a crash
// interrupted) some prefix, nothing else: nothing reordered, invented or
// half-applied.
void Sim::check_recovered(Node& n, const Recovered& rec) {
    const auto same = [&](const Disk& d) {
        const LogIndex snap = rec.snapshot ? rec.snapshot->last_index : LogIndex{};
        if (rec.durable.epoch != d.durable.epoch || rec.durable.promised != d.durable.promised) return false;
        if (snap != d.snapshot_index() || (rec.snapshot && rec.snapshot->state != d.snapshot->state)) return false;
        if (rec.entries.size() != d.entries.size()) return false;
        for (std::size_t i = 0; i < rec.entries.size(); ++i) {
            if (rec.entries[i].index != d.entries[i].index || rec.entries[i].epoch != d.entries[i].epoch) return false;
        }
        return true;
    };
    // The model follows what the disk turned out to keep.
    WalModel candidate = n.model;
    if (same(candidate.disk())) return;
    for (const WalOp& op : n.unsynced) {
        apply_to_model(candidate, op);
        candidate.sync();
        if (same(candidate.disk())) {
            n.model = candidate;
            return;
        }
    }
    const LogIndex last = rec.entries.empty() ? (rec.snapshot ? rec.snapshot->last_index : LogIndex{})
                                              : rec.entries.back().index;
    fail(who(n.id) + " recovered epoch " + std::to_string(rec.durable.epoch.value) + ", log through " +
         std::to_string(last.value) + " from its WAL; it had synced epoch " +
         std::to_string(n.model.disk().durable.epoch.value) + ", log through " +
         std::to_string(n.model.disk().last_index().value) + ", with " + std::to_string(n.unsynced.size()) +
         " operations unsynced");
}

void Sim::check_dropped(const Node& n, const std::vector<LogEntry>& dropped, const char* how) {
    const Oracle& oracle = oracles_.at(n.shard.value - 1);
    for (const auto& e : dropped) {
        if (e.index > oracle.size() || oracle.at(e.index).epoch != e.epoch) continue;
        if (n.model.disk().snapshot_index() >= e.index) continue;  // folded into the snapshot
        ++stats_.committed_copies_dropped;
        const std::size_t copies = durable_copies(n.shard, e);
        if (election::is_majority(copies, config_.nodes) && !config_.strict_durability) continue;
        fail(who(n.id) + " dropped committed entry " + std::to_string(e.index.value) + " (epoch " +
             std::to_string(e.epoch.value) + ") from its disk in " + how + "; " + std::to_string(copies) +
             " durable copies remain");
    }
}

// The shadow is the log as the replica handed it to its shell this incarnation.
void Sim::on_report(Node& n, const ReplicaOutput& out) {
    if (config_.trace) trace_output(n, out);
    // The replica's whole log so far has been handed over now (the WAL may
    // still be failing to take it: the shadow is what the replica decided).
    n.shadow_current = true;
    if (out.truncate_after) n.shadow.erase(n.shadow.upper_bound(out.truncate_after->value), n.shadow.end());
    if (out.install) {
        n.shadow.clear();
        n.shadow_base = out.install->last_index;
    }
    for (const auto& e : out.appended) n.shadow.insert_or_assign(e.index.value, e);
    for (const auto& ev : out.events) {
        if (const auto* r = std::get_if<SnapshotRefused>(&ev)) fail(who(n.id) + " refused a snapshot: " + r->reason);
    }
}

void Sim::trace_output(const Node& n, const ReplicaOutput& out) {
    const std::string who = "n" + std::to_string(n.id.value) + " ";
    for (const auto& ev : out.election_events) {
        std::ostringstream os;
        os << who << ev;
        trace(os.str());
    }
    for (const auto& ev : out.log_events) trace(who + describe(ev));
    for (const auto& ev : out.events) {
        if (const auto* d = std::get_if<ConfigDiffers>(&ev)) {
            trace(who + "config_differs " + d->key + " ini=" + d->ini + " replicated=" + d->replicated);
        }
    }
    if (out.durable) {
        trace(who + "persist epoch=" + std::to_string(out.durable->epoch.value) +
              " promised=" + std::to_string(out.durable->promised.value));
    }
    if (out.truncate_after) trace(who + "truncate after " + std::to_string(out.truncate_after->value));
    if (out.install) trace(who + "install snapshot " + std::to_string(out.install->last_index.value));
    if (!out.appended.empty()) {
        std::string what;
        for (const auto& e : out.appended) what += " " + command_text(e.command);
        trace(who + "append " + std::to_string(out.appended.front().index.value) + ".." +
              std::to_string(out.appended.back().index.value) + ":" + what);
    }
    if (out.compact) trace(who + "compact through " + std::to_string(out.compact->last_index.value));
}

// After a restart the log is what the disk held.
void Sim::rebuild_shadow(Node& n) {
    n.shadow.clear();
    const ReplicatedLog& log = n.replica->log();
    for (LogIndex i = log.snapshot_index().next(); i <= log.last_index(); i = i.next()) {
        n.shadow.emplace(i.value, log.at(i));
    }
    n.shadow_base = log.snapshot_index();
    n.shadow_current = true;
    n.learned = n.replica->commit_index();
    n.applied_seen = LogIndex{};
}

}  // namespace rl::txn::sim
