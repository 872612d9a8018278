// rlcat: ncat-style client. `rlcat HOST:PORT` reads commands from stdin, one
// per line, and prints one reply per line; `-c CMD` sends one command;
// `--json` prints replies as JSON objects; `--config FILE -n ID` picks a node
// by id. Exit: 0 success, 1 a failed request, 2 usage or connection errors.
#include "config/config.hpp"
#include "tools/client.hpp"
#include "tools/commands.hpp"

#include <boost/program_options.hpp>

#include <iostream>
#include <random>

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
    std::uint64_t client_id = 0;
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
        "rlcat [HOST:PORT] [options]: send commands to a Ringleader node\n"
        "Reads commands from stdin, one per line, unless -c is given.\nOptions");
    desc.add_options()("help,h", "show this help")("command,c", po::value(&a.command), "send one command and exit")(
        "json", po::bool_switch(&a.json), "print each reply as one JSON object")(
        "config", po::value(&a.config), "deployment INI file: lets -n pick a node by id")(
        "node,n", po::value(&a.node), "node id to talk to (needs --config)")(
        "timeout", po::value(&a.timeout_ms), "bound on each request, retries included, in ms (default 5000)")(
        "client-id", po::value(&a.client_id), "client id of this run's transfers (default: random)");
    po::options_description hidden;
    hidden.add_options()("endpoint", po::value(&a.endpoint));
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description pos;
    pos.add("endpoint", 1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw Usage(e.what());
    }
    help = vm.count("help") > 0;
    if (help) std::cout << desc << "\n" << commands_help();
    return a;
}

struct Target {
    std::vector<rl::tools::NodeEndpoint> nodes;  // every node it may talk to
    std::size_t first = 0;                       // the one to start with
    std::string cluster;                         // name for Hello ("" without a config)
};

// The node to talk to: HOST:PORT as given, or node -n from --config; with a
// config, every node, so retries can follow the leader.
Target resolve_target(const Args& a) {
    if (!a.endpoint.empty() && a.node != 0) throw Usage("give either HOST:PORT or -n, not both");
    if (a.node != 0 && a.config.empty()) throw Usage("-n needs --config");
    if (a.config.empty()) {
        if (a.endpoint.empty()) throw Usage("no node: give HOST:PORT, or --config FILE -n ID");
        return {{{rl::kNoNode, a.endpoint}}, 0, ""};
    }
    const auto config = rl::config::Config::load(a.config);
    Target t;
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

// Requests about data may move between nodes to find the leader; ping and
// status are about the node asked.
bool may_hop(const rl::transport::ClientRequest& r) {
    return !std::holds_alternative<rl::transport::PingRequest>(r) &&
           !std::holds_alternative<rl::transport::StatusRequest>(r);
}

// One command: its reply printed, the exit code returned.
int run_one(rl::tools::RetryingClient& client, rl::tools::RequestContext& ctx, const std::string& line,
            const Args& a) {
    rl::transport::ClientRequest request;
    try {
        request = rl::tools::parse_command(line, ctx);
    } catch (const std::invalid_argument& e) {
        print_reply(rl::tools::local_error_json("bad_command", e.what()), std::string("error: ") + e.what(), a.json);
        return kExitUsage;
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(a.timeout_ms);
    try {
        const auto reply = client.call(request, deadline, may_hop(request));
        print_reply(rl::tools::reply_json(reply), rl::tools::reply_text(reply), a.json);
        return rl::tools::reply_ok(reply) ? kExitOk : kExitFailed;
    } catch (const rl::tools::TimeoutError& e) {
        const std::string msg = "no reply within " + std::to_string(a.timeout_ms) + " ms (" + e.what() + ")";
        print_reply(rl::tools::local_error_json("timeout", msg), "error: " + msg, a.json);
        return kExitFailed;
    }
}

std::uint64_t random_client_id() {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) | rd();
}

int run(const Args& a) {
    Target target = resolve_target(a);
    rl::tools::RetryingClient client(target.cluster, std::move(target.nodes), target.first);
    rl::tools::RequestContext ctx{a.client_id != 0 ? a.client_id : random_client_id(), 1};
    if (!a.command.empty()) return run_one(client, ctx, a.command, a);
    int worst = kExitOk;
    for (std::string line; std::getline(std::cin, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') {
            continue;
        }
        // A bad line in a stream is reported and skipped: the rest still runs.
        worst = std::max(worst, std::min(run_one(client, ctx, line, a), kExitFailed));
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
