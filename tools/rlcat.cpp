// rlcat: ncat-style client (docs/design.md section 4). `rlcat HOST:PORT`
// reads commands from stdin, one per line, and prints one reply per line;
// `-c CMD` sends one command; `--json` prints replies as JSON objects;
// `--config FILE -n ID` picks a node by id. Transfers run in client sessions
// it opens itself, one per shard, unless `--session ID [--seq N]` names one;
// a transfer between shards runs in a session of FROM's shard, whose leader
// coordinates it. `audit` (with --config) adds up every shard's books;
// `reset` (with --config) resets every shard; `--testfile SETS.tsv` runs
// test sets (tools/testfile_runner.hpp).
// Exit: 0 success, 1 a failed request, 2 usage or connection errors.
#include "config/config.hpp"
#include "tools/admin.hpp"
#include "tools/audit.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"
#include "tools/testfile_runner.hpp"

#include <boost/program_options.hpp>

#include <charconv>
#include <iostream>
#include <optional>
#include <thread>

namespace po = boost::program_options;
using rl::tools::Clock;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

struct Args {
    std::string endpoint;
    std::string command;
    bool json = false;
    std::string config;
    std::uint64_t node = 0;
    std::uint32_t timeout_ms = 5000;
    std::string session;  // empty: open sessions as needed
    std::string seq;      // empty: 1
    std::string testfile; // --testfile: run these test sets
    bool keep_state = false;
    bool no_pause = false;
};

class Usage : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::string commands_help() {
    std::string out = "Commands:\n";
    for (const auto& c : rl::tools::command_table()) out += "  " + std::string(c.usage) + "\n      " + c.summary + "\n";
    return out;
}

Args parse_args(int argc, char** argv, bool& help) {
    Args a;
    po::options_description desc(
        "rlcat [HOST:PORT] [options] [COMMAND...]: send commands to a Ringleader node\n"
        "Reads commands from stdin, one per line, unless -c is given or a command follows\n"
        "the options (rlcat --config FILE audit).\nOptions");
    desc.add_options()("help,h", "show this help")("command,c", po::value(&a.command), "send one command and exit")(
        "json", po::bool_switch(&a.json), "print each reply as one JSON object")(
        "config", po::value(&a.config), "deployment INI file: lets -n pick a node by id")(
        "node,n", po::value(&a.node), "node id to talk to (needs --config)")(
        "timeout", po::value(&a.timeout_ms), "bound on each request, retries included, in ms (default 5000)")(
        "session", po::value(&a.session)->value_name("ID"),
        "session ID for every transfer of this run, as `session ITEM` prints it; it must be of the FROM "
        "items' shard (default: open a session per shard when first needed)")(
        "seq", po::value(&a.seq)->value_name("N"),
        "first seq of the transfers in --session (default 1): a (session, seq) sent again gets its "
        "first answer and is not applied twice")(
        "testfile", po::value(&a.testfile)->value_name("SETS.tsv"),
        "run the test sets of SETS.tsv (needs --config and fault_injection = true): before each set reset "
        "every shard, recover every node and fail those not live; one line per command; per set the balances "
        "touched, throughput and latency percentiles")(
        "keep-state", po::bool_switch(&a.keep_state), "--testfile: carry balances from set to set (no reset)")(
        "no-pause", po::bool_switch(&a.no_pause),
        "--testfile: do not wait for Enter between sets (it never waits when stdin is not a terminal)");
    po::options_description hidden;
    std::vector<std::string> words;
    hidden.add_options()("words", po::value(&words));
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description pos;
    pos.add("words", -1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw Usage(e.what());
    }
    // HOST:PORT first if it looks like one; any other words are one command.
    if (!words.empty() && words.front().find(':') != std::string::npos) {
        a.endpoint = words.front();
        words.erase(words.begin());
    }
    for (const auto& w : words) a.command += (a.command.empty() ? "" : " ") + w;
    if (!words.empty() && vm.count("command") > 0) throw Usage("give the command either with -c or after the options, not both");
    help = vm.count("help") > 0;
    if (help) std::cout << desc << "\n" << commands_help();
    return a;
}

struct Target {
    std::vector<rl::tools::NodeEndpoint> nodes;  // every node it may talk to
    std::size_t first = 0;                       // the one to start with
    std::string cluster;                         // name for Hello ("" without a config)
    std::optional<rl::config::Config> config;    // --config, when given
};

// The node to talk to: HOST:PORT as given, or node -n from --config; with a
// config, every node, so retries can follow the leader.
Target resolve_target(const Args& a) {
    if (!a.endpoint.empty() && a.node != 0) throw Usage("give either HOST:PORT or -n, not both");
    if (a.node != 0 && a.config.empty()) throw Usage("-n needs --config");
    if (a.config.empty()) {
        if (a.endpoint.empty()) throw Usage("no node: give HOST:PORT, or --config FILE -n ID");
        return {{{rl::kNoNode, a.endpoint}}, 0, "", std::nullopt};
    }
    Target t;
    t.config = rl::config::Config::load(a.config);
    const auto& config = *t.config;
    t.cluster = config.cluster().name;
    if (!a.endpoint.empty()) t.nodes.push_back({rl::kNoNode, a.endpoint});
    for (const auto& [id, node] : config.nodes()) {
        if (id.value == a.node) t.first = t.nodes.size();
        t.nodes.push_back({id, node.address.to_string()});
    }
    if (a.node != 0 && config.node(rl::NodeId{a.node}) == nullptr) {
        throw Usage("no [node." + std::to_string(a.node) + "] in " + a.config);
    }
    return t;
}

void print_reply(const nlohmann::ordered_json& j, const std::string& text, bool as_json) {
    std::cout << (as_json ? j.dump() : text) << std::endl;
}

// Requests about data may move between nodes to find the leader; ping,
// status, fail and recover are about the node asked.
bool may_hop(const rl::transport::ClientRequest& r) {
    return !std::holds_alternative<rl::transport::PingRequest>(r) &&
           !std::holds_alternative<rl::transport::StatusRequest>(r) &&
           !std::holds_alternative<rl::transport::FaultRequest>(r);
}

// What every command of one run shares.
struct Run {
    const Args& args;
    const std::optional<rl::config::Config>& config;  // --config, when given
    rl::tools::RetryingClient client;
    rl::tools::Sessions sessions;
};

// Sends one request: a transfer under its shard's client session (opened
// first if need be), `session` through the session book, the rest as is.
// A transfer between shards is sent the same way: its session is FROM's
// shard's, the node passes it to that shard's leader, and a retry keeps its
// txid (docs/design.md section 6.7).
rl::transport::ClientReply send(Run& s, rl::transport::ClientRequest request, Clock::time_point deadline) {
    if (auto* transfer = std::get_if<rl::transport::TransferRequest>(&request)) {
        auto txid = s.sessions.next_txid(s.client, transfer->from, deadline);
        if (auto* failed = std::get_if<rl::transport::ClientReply>(&txid)) return *failed;
        transfer->txid = std::get<rl::txn::TxnId>(txid);
        auto reply = s.client.call(request, deadline, true);
        s.sessions.observe(reply);
        return reply;
    }
    if (auto* batch = std::get_if<rl::transport::TransfersRequest>(&request)) {
        // Each transfer from its FROM shard's session; a resend (RetryingClient)
        // keeps every txid, so settled ones get their first outcome.
        if (auto failed = s.sessions.number_batch(s.client, *batch, deadline)) return *failed;
        auto reply = s.client.call(request, deadline, true);
        s.sessions.observe(reply);
        return reply;
    }
    if (const auto* open = std::get_if<rl::transport::SessionRequest>(&request)) {
        return s.sessions.open(s.client, open->item, deadline);
    }
    return s.client.call(request, deadline, may_hop(request));
}

int bad_command(const std::string& what, bool as_json) {
    print_reply(rl::tools::local_error_json("bad_command", what), "error: " + what, as_json);
    return kExitUsage;
}

// The shards are read one after another, so a transfer that moves between
// two reads can make the books look off; rlcat reads them all again, a few
// times while time is left, before it says they do not add up.
constexpr std::uint32_t kAuditReadsMax = 5;
constexpr auto kAuditPause = std::chrono::milliseconds(50);

// Every shard's books, one AuditRequest per shard of the config, each sent,
// retried and moved to the leader like any request; or the reply of the
// first shard that did not give its books.
std::variant<std::vector<rl::txn::AuditDone>, rl::transport::ClientReply> read_books(Run& s,
                                                                                     Clock::time_point deadline) {
    std::vector<rl::txn::AuditDone> books;
    for (const auto& [shard, unused] : s.config->shards()) {
        auto reply = s.client.call(rl::transport::AuditRequest{0, shard}, deadline, true);
        const std::string name = "shard " + std::to_string(shard.value);
        if (auto* error = std::get_if<rl::transport::ErrorReply>(&reply)) {
            error->message = name + ": " + error->message;
            return reply;
        }
        auto* audit = std::get_if<rl::transport::AuditReply>(&reply);
        if (audit == nullptr || audit->audit.shard != shard) {
            return rl::transport::ErrorReply{0, "unavailable", "asked for the books of " + name + ", got another reply",
                                             rl::tools::leader_hint(reply)};
        }
        books.push_back(std::move(audit->audit));
    }
    return books;
}

void print_audit(const rl::tools::AuditReport& report, std::uint32_t reads, bool as_json) {
    if (as_json) {
        std::cout << rl::tools::audit_json(report, reads).dump() << std::endl;
        return;
    }
    for (const auto& line : rl::tools::audit_text(report, reads)) std::cout << line << "\n";
    std::cout << std::flush;
}

// `audit`: the books of every shard added up (tools/audit.hpp). Exit 1 when
// they do not add up, or when a shard's books could not be read.
int run_audit(Run& s, Clock::time_point deadline) {
    if (!s.config) throw std::invalid_argument("audit needs --config FILE: it reads every shard the file lists");
    std::optional<rl::tools::AuditReport> report;
    std::uint32_t reads = 0;
    for (;;) {
        if (report) {
            const auto pause = kAuditPause * reads;
            if (report->ok || !report->may_be_skew || reads >= kAuditReadsMax || Clock::now() + pause >= deadline) {
                break;
            }
            std::this_thread::sleep_for(pause);
        }
        std::variant<std::vector<rl::txn::AuditDone>, rl::transport::ClientReply> books;
        try {
            books = read_books(s, deadline);
        } catch (const std::runtime_error&) {  // TimeoutError, ConnectError
            if (!report) throw;
            break;  // a read again that failed: the last whole one stands
        }
        if (const auto* failed = std::get_if<rl::transport::ClientReply>(&books)) {
            if (report) break;
            print_reply(rl::tools::reply_json(*failed), rl::tools::reply_text(*failed), s.args.json);
            return kExitFailed;
        }
        report = rl::tools::audit_books(std::get<std::vector<rl::txn::AuditDone>>(books));
        ++reads;
    }
    print_audit(*report, reads, s.args.json);
    return report->ok ? kExitOk : kExitFailed;
}

// One command: its reply printed, the exit code returned.
int run_one(Run& s, const std::string& line) {
    const Args& a = s.args;
    rl::transport::ClientRequest request;
    try {
        request = rl::tools::parse_command(line);
    } catch (const std::invalid_argument& e) {
        return bad_command(e.what(), a.json);
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(a.timeout_ms);
    try {
        if (std::holds_alternative<rl::transport::AuditRequest>(request)) return run_audit(s, deadline);
        if (std::holds_alternative<rl::transport::ResetRequest>(request) && s.config) {
            const auto j = rl::tools::resets_json(rl::tools::reset_shards(s.client, *s.config, deadline));
            print_reply(j, rl::tools::json_text(j), a.json);
            return j.at("ok").get<bool>() ? kExitOk : kExitFailed;
        }
        const auto reply = send(s, std::move(request), deadline);
        print_reply(rl::tools::reply_json(reply), rl::tools::reply_text(reply), a.json);
        return rl::tools::reply_ok(reply) ? kExitOk : kExitFailed;
    } catch (const std::invalid_argument& e) {
        return bad_command(e.what(), a.json);
    } catch (const rl::tools::TimeoutError& e) {
        const std::string msg = "no reply within " + std::to_string(a.timeout_ms) + " ms (" + e.what() + ")";
        print_reply(rl::tools::local_error_json("timeout", msg), "error: " + msg, a.json);
        return kExitFailed;
    }
}

// --session and --seq, checked before anything is sent.
void pin_session(const Args& a, const Target& target, rl::tools::Sessions& sessions) {
    if (a.session.empty()) {
        if (!a.seq.empty()) throw Usage("--seq needs --session");
        return;
    }
    std::uint64_t session = 0;
    try {
        session = rl::tools::parse_session_id(a.session, "--session");
    } catch (const std::invalid_argument& e) {
        throw Usage(e.what());
    }
    const auto shard = rl::txn::session_shard(session);
    if (target.config && target.config->shard(shard) == nullptr) {
        throw Usage("--session " + a.session + " belongs to shard " + std::to_string(shard.value) + ", which " +
                    a.config + " does not have");
    }
    std::uint64_t seq = 1;
    if (!a.seq.empty()) {
        const auto [end, ec] = std::from_chars(a.seq.data(), a.seq.data() + a.seq.size(), seq);
        if (ec != std::errc{} || end != a.seq.data() + a.seq.size() || seq == 0) {
            throw Usage("--seq must be a whole number from 1, got \"" + a.seq + "\"");
        }
    }
    sessions.pin(session, seq);
}

rl::tools::Sessions::ShardOf shard_of(const Target& target) {
    if (!target.config) return {};
    return [config = *target.config](rl::ItemId item) { return config.shard_of_item(item); };
}

int run_sets(const Args& a) {
    if (!a.command.empty() || !a.endpoint.empty() || a.node != 0 || !a.session.empty()) {
        throw Usage("--testfile takes no command, HOST:PORT, -n or --session: the file says what to send");
    }
    if (a.config.empty()) throw Usage("--testfile needs --config FILE: the sets name nodes and items of it");
    rl::tools::TestfileOptions o;
    o.path = a.testfile;
    o.json = a.json;
    o.keep_state = a.keep_state;
    o.pause = !a.no_pause;
    o.timeout = std::chrono::milliseconds(a.timeout_ms);
    return rl::tools::run_testfile(rl::config::Config::load(a.config), o, std::cout);
}

int run(const Args& a) {
    if (!a.testfile.empty()) return run_sets(a);
    if (a.keep_state || a.no_pause) throw Usage("--keep-state and --no-pause go with --testfile");
    Target target = resolve_target(a);
    Run s{a, target.config, rl::tools::RetryingClient(target.cluster, target.nodes, target.first),
              rl::tools::Sessions(shard_of(target))};
    pin_session(a, target, s.sessions);
    if (!a.command.empty()) return run_one(s, a.command);
    int worst = kExitOk;
    for (std::string line; std::getline(std::cin, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') {
            continue;
        }
        // A bad line in a stream is reported and skipped: the rest still runs.
        worst = std::max(worst, std::min(run_one(s, line), kExitFailed));
    }
    return worst;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        bool help = false;
        const Args args = parse_args(argc, argv, help);
        if (help) return kExitOk;
        return run(args);
    } catch (const Usage& e) {
        std::cerr << "rlcat: " << e.what() << " (see rlcat --help)\n";
        return kExitUsage;
    } catch (const rl::config::ConfigError& e) {
        std::cerr << "rlcat: " << e.what() << "\n";
        return kExitUsage;
    } catch (const rl::tools::ConnectError& e) {
        std::cerr << "rlcat: " << e.what() << "\n";
        return kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "rlcat: " << e.what() << "\n";
        return kExitUsage;
    }
}
