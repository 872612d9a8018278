#include "tools/testfile_runner.hpp"

#include "config/overload.hpp"
#include "tools/admin.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"
#include "tools/testfile.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

namespace rl::tools {
namespace {

using json = nlohmann::ordered_json;
using testfile::Step;
using testfile::TestSet;

constexpr auto kSettlePoll = std::chrono::milliseconds(20);

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string ms_text(double ms) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(ms < 10 ? 2 : 1) << ms << " ms";
    return s.str();
}

// The q-th quantile of sorted values (nearest rank).
double quantile(const std::vector<double>& sorted, double q) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

std::string read_whole(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::invalid_argument("cannot open test file " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Every node and item the sets name must be in the config.
void check_against(const config::Config& config, const std::vector<TestSet>& sets, const std::string& file) {
    const auto node = [&](NodeId n, std::size_t line) {
        if (config.node(n) == nullptr) {
            throw testfile::ParseError(file, line, "node n" + std::to_string(n.value) + " is not in the config");
        }
    };
    const auto item = [&](ItemId i, std::size_t line) {
        if (!config.shard_of_item(i)) {
            throw testfile::ParseError(file, line, "item " + std::to_string(i.value) + " is in no shard of the config");
        }
    };
    for (const TestSet& set : sets) {
        for (NodeId n : set.live) node(n, set.line);
        for (const Step& s : set.steps) {
            std::visit(Overload{
                           [&](const testfile::Transfer& t) {
                               item(t.from, s.line);
                               item(t.to, s.line);
                           },
                           [&](const testfile::Balance& b) { item(b.item, s.line); },
                           [&](const testfile::Fail& f) { node(f.node, s.line); },
                           [&](const testfile::Recover& r) { node(r.node, s.line); },
                       },
                       s.command);
        }
    }
}

// What one command came to, for the line printed and the set's summary.
struct Done {
    json reply;  // reply_json of the answer, or a local error
    bool answered = false;
    double latency_ms = 0;
};

// One line of text for a command's reply.
std::string outcome_text(const json& j) {
    if (!j.at("ok").get<bool>()) {
        return "FAILED " + j.at("error").get<std::string>() + ": " + j.at("message").get<std::string>();
    }
    if (j.contains("outcome")) {
        const auto outcome = j.at("outcome").get<std::string>();
        return outcome == "committed" ? outcome : outcome + " " + j.at("reason").get<std::string>();
    }
    if (j.contains("balance")) {
        std::string out = "balance=" + j.at("balance").dump();
        if (j.at("held").get<std::int64_t>() != 0) out += " held=" + j.at("held").dump();
        if (j.at("pending").get<std::int64_t>() != 0) out += " pending=" + j.at("pending").dump();
        return out;
    }
    if (j.contains("failed")) {
        const std::string state = j.at("failed").get<bool>() ? "failed" : "recovered";
        return "node " + j.at("node").dump() + " " + state + (j.at("changed").get<bool>() ? "" : " (already)");
    }
    return json_text(j);
}

struct SetStats {
    std::size_t commands = 0;
    std::size_t answered = 0;
    std::size_t transfers = 0;
    std::size_t committed = 0;
    std::size_t aborted = 0;
    std::vector<double> latencies_ms;  // of answered transfers and reads
    Clock::time_point start;
    Clock::time_point end;
    std::set<ItemId> touched;
};

class Runner {
public:
    Runner(const config::Config& config, const TestfileOptions& o, std::ostream& out)
        : config_(config),
          o_(o),
          out_(out),
          sessions_([this](ItemId item) { return config_.shard_of_item(item); }) {}

    int run(const std::vector<TestSet>& sets);

private:
    void prepare(const TestSet& set);
    void switch_all(const std::vector<NodeId>& nodes, transport::FaultAction action);
    void reset_all();
    void settle(const TestSet& set);
    bool shard_has_live_leader(const config::ShardConfig& shard);
    Done run_step(const Step& step, SetStats& stats);
    Done send(const testfile::Command& c);
    Done fault(NodeId node, transport::FaultAction action);
    void print_step(const TestSet& set, const Step& step, const Done& d);
    json read_settled(const std::vector<ItemId>& items);
    void print_balances(const TestSet& set, const SetStats& stats);
    void print_summary(const TestSet& set, const SetStats& stats);
    void note(const TestSet& set, const std::string& text, bool problem);
    std::vector<NodeEndpoint> live_endpoints() const;
    RetryingClient* client();
    void pause_before(const TestSet& next);

    const config::Config& config_;
    const TestfileOptions& o_;
    std::ostream& out_;
    Sessions sessions_;
    std::set<NodeId> failed_;  // nodes this run failed and has not recovered
    std::optional<RetryingClient> client_;  // over the nodes not failed; rebuilt when that changes
    bool client_stale_ = true;
    bool all_answered_ = true;
    bool may_pause_ = true;
};

std::vector<NodeEndpoint> Runner::live_endpoints() const {
    std::vector<NodeEndpoint> nodes;
    for (const auto& [id, node] : config_.nodes()) {
        if (!failed_.contains(id)) nodes.push_back({id, node.address.to_string()});
    }
    return nodes;
}

// A failed node drops requests, and a client waiting on one would use up
// its whole deadline: requests go only to nodes the run has not failed.
RetryingClient* Runner::client() {
    if (client_stale_) {
        client_.reset();
        if (auto nodes = live_endpoints(); !nodes.empty()) client_.emplace(config_.cluster().name, std::move(nodes));
        client_stale_ = false;
    }
    return client_ ? &*client_ : nullptr;
}

void Runner::note(const TestSet& set, const std::string& text, bool problem) {
    if (problem) all_answered_ = false;
    if (o_.json) {
        out_ << json{{"set", set.number}, {"setup", text}, {"ok", !problem}}.dump() << std::endl;
    } else {
        out_ << "set " << set.number << ": " << (problem ? "PROBLEM " : "") << text << std::endl;
    }
}

int Runner::run(const std::vector<TestSet>& sets) {
    for (std::size_t i = 0; i < sets.size(); ++i) {
        const TestSet& set = sets[i];
        if (i > 0) pause_before(set);
        prepare(set);
        SetStats stats;
        stats.start = Clock::now();
        for (const Step& step : set.steps) print_step(set, step, run_step(step, stats));
        stats.end = Clock::now();
        print_balances(set, stats);
        print_summary(set, stats);
    }
    return all_answered_ ? 0 : 1;
}

void Runner::pause_before(const TestSet& next) {
    if (!o_.pause || !may_pause_ || isatty(STDIN_FILENO) == 0) return;
    std::cerr << "press Enter to run set " << next.number << " " << std::flush;
    std::string line;
    if (!std::getline(std::cin, line)) may_pause_ = false;  // stdin closed: run the rest straight through
}

// Every node recovered (fail/recover of a node this run does not know
// about included), every shard reset, then the set's non-live nodes
// failed, and a leader awaited in each shard that can have one.
void Runner::prepare(const TestSet& set) {
    std::vector<NodeId> all;
    std::vector<NodeId> down;
    for (const auto& [id, node] : config_.nodes()) {
        all.push_back(id);
        if (std::find(set.live.begin(), set.live.end(), id) == set.live.end()) down.push_back(id);
    }
    switch_all(all, transport::FaultAction::recover);
    failed_.clear();
    client_stale_ = true;
    if (!o_.keep_state) reset_all();
    for (NodeId n : down) {
        if (auto d = fault(n, transport::FaultAction::fail); !d.answered) {
            note(set, "fail n" + std::to_string(n.value) + ": " + outcome_text(d.reply), true);
        }
    }
    std::string live;
    for (NodeId n : set.live) live += (live.empty() ? "n" : ", n") + std::to_string(n.value);
    note(set, std::string(o_.keep_state ? "state kept" : "every shard reset") + "; live nodes [" + live + "]", false);
    settle(set);
}

void Runner::switch_all(const std::vector<NodeId>& nodes, transport::FaultAction action) {
    for (NodeId n : nodes) {
        const Done d = fault(n, action);
        if (d.answered) continue;
        all_answered_ = false;
        out_ << (o_.json ? d.reply.dump() : "setup: node " + std::to_string(n.value) + ": " + outcome_text(d.reply))
             << std::endl;
    }
}

// A shard that still records cross-shard transactions (one of the last
// set's, waiting for a shard that had no quorum) refuses the reset with
// `unavailable` until they settle: the client retries, for up to twice the
// command timeout.
void Runner::reset_all() {
    const auto deadline = Clock::now() + 2 * o_.timeout;
    json j;
    try {
        j = resets_json(reset_shards(*client(), config_, deadline));
    } catch (const std::runtime_error& e) {  // TimeoutError, ConnectError
        j = local_error_json("timeout", std::string("reset: ") + e.what());
    }
    if (j.at("ok").get<bool>()) return;
    all_answered_ = false;
    out_ << (o_.json ? j.dump() : "setup: reset " + outcome_text(j)) << std::endl;
}

// Each shard with a majority of its members live gets a leader among them
// before the set's first command, so latencies measure the set, not the
// failover its setup caused. A shard without a live majority is named.
void Runner::settle(const TestSet& set) {
    for (const auto& [id, shard] : config_.shards()) {
        std::size_t live = 0;
        for (NodeId n : shard.nodes) live += failed_.contains(n) ? 0 : 1;
        const std::string name = "shard " + std::to_string(id.value);
        if (2 * live <= shard.nodes.size()) {
            note(set, name + " has " + std::to_string(live) + " of " + std::to_string(shard.nodes.size()) +
                          " nodes live: no quorum, its transfers fail",
                 false);
            continue;
        }
        const auto deadline = Clock::now() + o_.timeout;
        while (!shard_has_live_leader(shard) && Clock::now() < deadline) std::this_thread::sleep_for(kSettlePoll);
        if (Clock::now() >= deadline) note(set, name + " has no leader among its live nodes yet", false);
    }
}

bool Runner::shard_has_live_leader(const config::ShardConfig& shard) {
    for (NodeId n : shard.nodes) {
        if (failed_.contains(n)) continue;
        try {
            Client c(config_.cluster().name);
            const auto deadline = Clock::now() + std::chrono::milliseconds(500);
            c.connect(config_.node(n)->address.to_string(), deadline);
            const auto reply = c.call(transport::StatusRequest{}, deadline);
            const auto* s = std::get_if<transport::StatusReply>(&reply);
            if (s != nullptr && s->role == transport::NodeRole::leader) return true;
        } catch (const std::runtime_error&) {  // down or slow: ask the next
        }
    }
    return false;
}

Done Runner::fault(NodeId node, transport::FaultAction action) {
    const auto start = Clock::now();
    Done d;
    try {
        const auto reply = switch_fault(config_.cluster().name, config_.node(node)->address.to_string(), action,
                                        start + o_.timeout);
        d.reply = reply_json(reply);
        d.answered = reply_ok(reply);
    } catch (const std::runtime_error& e) {  // TimeoutError, ConnectError
        d.reply = local_error_json("unreachable", "node " + std::to_string(node.value) + ": " + e.what());
    }
    d.latency_ms = ms_between(start, Clock::now());
    if (d.answered) {
        if (action == transport::FaultAction::fail) failed_.insert(node);
        if (action == transport::FaultAction::recover) failed_.erase(node);
        client_stale_ = true;
    }
    return d;
}

// A transfer or a read through the live nodes, retried and sent on to the
// leader as rlcat does; its answer, or why there was none.
Done Runner::send(const testfile::Command& c) {
    const auto start = Clock::now();
    const auto deadline = start + o_.timeout;
    Done d;
    RetryingClient* rc = client();
    try {
        if (rc == nullptr) throw TimeoutError("every node is failed");
        std::optional<transport::ClientReply> reply;
        if (const auto* t = std::get_if<testfile::Transfer>(&c)) {
            auto txid = sessions_.next_txid(*rc, t->from, deadline);
            if (auto* failed = std::get_if<transport::ClientReply>(&txid)) reply = *failed;
            if (!reply) {
                reply = rc->call(transport::TransferRequest{0, std::get<txn::TxnId>(txid), t->from, t->to, t->amount},
                                 deadline, true);
                sessions_.observe(*reply);
            }
        } else {
            reply = rc->call(transport::BalanceRequest{0, std::get<testfile::Balance>(c).item, false}, deadline, true);
        }
        d.reply = reply_json(*reply);
        d.answered = reply_ok(*reply);
    } catch (const std::runtime_error& e) {  // TimeoutError, ConnectError
        d.reply = local_error_json("timeout", "no answer within " + std::to_string(o_.timeout.count()) + " ms (" +
                                                  e.what() + ")");
    }
    d.latency_ms = ms_between(start, Clock::now());
    return d;
}

Done Runner::run_step(const Step& step, SetStats& stats) {
    ++stats.commands;
    Done d;
    if (const auto* f = std::get_if<testfile::Fail>(&step.command)) {
        d = fault(f->node, transport::FaultAction::fail);
    } else if (const auto* r = std::get_if<testfile::Recover>(&step.command)) {
        d = fault(r->node, transport::FaultAction::recover);
    } else {
        d = send(step.command);
        if (d.answered) stats.latencies_ms.push_back(d.latency_ms);
    }
    if (const auto* t = std::get_if<testfile::Transfer>(&step.command)) {
        ++stats.transfers;
        stats.touched.insert({t->from, t->to});
        const std::string outcome = d.reply.value("outcome", "");
        stats.committed += outcome == "committed" ? 1 : 0;
        stats.aborted += outcome == "aborted" ? 1 : 0;
    }
    if (const auto* b = std::get_if<testfile::Balance>(&step.command)) stats.touched.insert(b->item);
    stats.answered += d.answered ? 1 : 0;
    if (!d.answered) all_answered_ = false;
    return d;
}

void Runner::print_step(const TestSet& set, const Step& step, const Done& d) {
    const std::string command = testfile::to_text(step.command);
    if (!o_.json) {
        out_ << "set " << set.number << " line " << step.line << "  " << command << "  " << outcome_text(d.reply)
             << "  " << ms_text(d.latency_ms) << std::endl;
        return;
    }
    json j = {{"set", set.number}, {"line", step.line}, {"command", command}};
    for (const auto& [k, v] : d.reply.items()) j[k] = v;
    j["latency_ms"] = std::round(d.latency_ms * 1000) / 1000;
    out_ << j.dump() << std::endl;
}

// The touched items' balances of one shard, read through its leader once
// nothing is held or pending on them (a committed cross-shard transfer's
// decisions follow its answer, docs/design.md section 6.7), or as they
// stand when that takes longer than the timeout. A shard that cannot
// answer (no quorum) costs one timeout and is reported as such.
json Runner::read_settled(const std::vector<ItemId>& items) {
    const auto deadline = Clock::now() + o_.timeout;
    for (;;) {
        json balances = json::object();
        bool settled = true;
        for (ItemId item : items) {
            const Done d = send(testfile::Balance{item});
            if (!d.answered) return {{"error", d.reply.at("message")}};
            const json& r = d.reply;
            settled = settled && r.at("held").get<std::int64_t>() == 0 && r.at("pending").get<std::int64_t>() == 0;
            balances[std::to_string(item.value)] = {{"balance", r.at("balance")}, {"held", r.at("held")},
                                                    {"pending", r.at("pending")}};
        }
        if (settled || Clock::now() + kSettlePoll >= deadline) return balances;
        std::this_thread::sleep_for(kSettlePoll);
    }
}

void Runner::print_balances(const TestSet& set, const SetStats& stats) {
    std::map<ShardId, std::vector<ItemId>> by_shard;
    for (ItemId item : stats.touched) by_shard[*config_.shard_of_item(item)].push_back(item);
    json shards = json::array();
    std::string text;
    for (const auto& [shard, items] : by_shard) {
        const json balances = read_settled(items);
        shards.push_back({{"shard", shard.value}, {"balances", balances}});
        std::string line = "shard " + std::to_string(shard.value) + ":";
        if (balances.contains("error")) line += " unavailable (" + balances.at("error").get<std::string>() + ")";
        for (const auto& [item, b] : balances.items()) {
            if (item == "error") continue;
            line += " " + item + "=" + b.at("balance").dump();
            if (b.at("held").get<std::int64_t>() != 0) line += "(held " + b.at("held").dump() + ")";
            if (b.at("pending").get<std::int64_t>() != 0) line += "(pending " + b.at("pending").dump() + ")";
        }
        text += (text.empty() ? "" : "; ") + line;
    }
    if (o_.json) {
        out_ << json{{"set", set.number}, {"balances", shards}}.dump() << std::endl;
    } else {
        out_ << "set " << set.number << " balances: " << (text.empty() ? "no item touched" : text) << std::endl;
    }
}

void Runner::print_summary(const TestSet& set, const SetStats& stats) {
    std::vector<double> l = stats.latencies_ms;
    std::sort(l.begin(), l.end());
    const double seconds = std::max(ms_between(stats.start, stats.end), 0.001) / 1000;
    const double throughput = static_cast<double>(stats.answered) / seconds;
    const std::size_t failed = stats.transfers - stats.committed - stats.aborted;
    if (o_.json) {
        json latency = json::object();
        if (!l.empty()) latency = {{"p50", quantile(l, 0.5)}, {"p90", quantile(l, 0.9)}, {"p99", quantile(l, 0.99)},
                                   {"max", l.back()}};
        out_ << json{{"set", set.number},         {"commands", stats.commands},   {"answered", stats.answered},
                     {"transfers", stats.transfers}, {"committed", stats.committed}, {"aborted", stats.aborted},
                     {"failed", failed},           {"throughput_per_s", throughput}, {"latency_ms", latency}}
                    .dump()
             << std::endl;
        return;
    }
    std::ostringstream s;
    s << "set " << set.number << ": " << stats.commands << " commands, " << stats.answered << " answered ("
      << stats.transfers << " transfers: " << stats.committed << " committed, " << stats.aborted << " aborted, "
      << failed << " failed), " << std::fixed << std::setprecision(1) << throughput << " answers/s";
    if (!l.empty()) {
        s << ", latency p50 " << ms_text(quantile(l, 0.5)) << " p90 " << ms_text(quantile(l, 0.9)) << " p99 "
          << ms_text(quantile(l, 0.99)) << " max " << ms_text(l.back());
    }
    out_ << s.str() << std::endl;
}

}  // namespace

int run_testfile(const config::Config& config, const TestfileOptions& options, std::ostream& out) {
    if (!config.cluster().fault_injection) {
        throw std::invalid_argument("--testfile needs fault_injection = true in [cluster] of the config: it fails, "
                                    "recovers and resets nodes");
    }
    const auto sets = testfile::parse(read_whole(options.path), options.path);
    check_against(config, sets, options.path);
    return Runner(config, options, out).run(sets);
}

}  // namespace rl::tools
