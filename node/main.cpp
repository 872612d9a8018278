// rlnode --config FILE.ini --id N [--log-file PATH] [--log-level LEVEL]
#include "config/config.hpp"
#include "node/node.hpp"
#include "transport/log.hpp"
#include "txn/wal.hpp"

#include <boost/asio.hpp>
#include <boost/program_options.hpp>

#include <chrono>
#include <csignal>
#include <iostream>

namespace po = boost::program_options;

#ifdef RL_JEMALLOC
// Read by jemalloc when the process starts (docs/design.md section 6.6):
// a background thread returns freed pages to the system once they have
// been unused for the default 10 s, so a node that is idle after a load
// gives back what the load made it hold. Without it the decay advances
// only while the process allocates, which an idle node hardly does. The
// thread sleeps while there is nothing to return. MALLOC_CONF overrides.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "background_thread:true";
}
#endif

namespace {

constexpr int kExitUsage = 2;
// Longest a stop waits for handlers still pending after Node::stop(); well
// inside the promised 1 s.
constexpr std::chrono::milliseconds kStopGrace{300};

struct Args {
    std::string config;
    std::uint64_t id = 0;
    std::string log_file;
    std::string log_level = "info";
};

// Returns nullopt after printing help or a usage error (exit code in `code`).
std::optional<Args> parse_args(int argc, char** argv, int& code) {
    Args a;
    po::options_description desc("rlnode: one node of a Ringleader cluster\nOptions");
    desc.add_options()("help,h", "show this help")(
        "config,c", po::value(&a.config)->required(), "deployment INI file (the same for every node and tool)")(
        "id,i", po::value(&a.id)->required(), "this node's id: a [node.N] section of the config")(
        "log-file", po::value(&a.log_file), "also append log lines to this file")(
        "log-level", po::value(&a.log_level), "debug | info | warn | error (default info)");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        if (vm.count("help")) {
            std::cout << desc << "\n";
            code = 0;
            return std::nullopt;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "rlnode: " << e.what() << "\n" << desc << "\n";
        code = kExitUsage;
        return std::nullopt;
    }
    return a;
}

std::optional<rl::LogLevel> parse_level(const std::string& s) {
    if (s == "debug") return rl::LogLevel::debug;
    if (s == "info") return rl::LogLevel::info;
    if (s == "warn") return rl::LogLevel::warn;
    if (s == "error") return rl::LogLevel::error;
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    // A file-size limit or a full disk is an I/O error for the WAL to
    // report and retry, not a signal that kills the node.
    std::signal(SIGXFSZ, SIG_IGN);
    int code = 0;
    auto args = parse_args(argc, argv, code);
    if (!args) return code;
    auto level = parse_level(args->log_level);
    if (!level) {
        std::cerr << "rlnode: --log-level must be debug, info, warn or error\n";
        return kExitUsage;
    }
    std::optional<rl::config::Config> config;
    try {
        config = rl::config::Config::load(args->config);
    } catch (const rl::config::ConfigError& e) {
        std::cerr << "rlnode: " << e.what() << "\n";
        return kExitUsage;
    }
    const rl::NodeId self{args->id};
    if (config->node(self) == nullptr) {
        std::cerr << "rlnode: " << args->config << ": no [node." << args->id << "] section for --id " << args->id
                  << "\n";
        return kExitUsage;
    }
    rl::Logger log(std::to_string(args->id), *level);
    try {
        if (!args->log_file.empty()) log.also_to_file(args->log_file);
        boost::asio::io_context io(1);
        rl::node::Node node(io, *config, self, log);
        boost::asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            log.info("shutdown").kv("signal", sig);
            node.stop();
            io.stop();
        });
        node.start();
        io.run();
        // node.stop() closed every socket and timer; the handlers of those
        // closes still run here. run_for returns as soon as none is left, so
        // a clean stop takes as long as they do, and one that leaks a wait
        // still ends within the grace. A timer for the grace would itself be
        // work that run() waits for: every stop would take the whole grace.
        io.restart();
        io.run_for(kStopGrace);
    } catch (const rl::txn::WalCorruption& e) {
        // Starting on a damaged log could forget acknowledged writes.
        log.error("wal_corrupt").kv("file", e.file().string()).kv("offset", e.offset()).kv("error", e.what());
        std::cerr << "rlnode: refusing to start: " << e.what() << "\n";
        return 1;
    } catch (const std::exception& e) {
        log.error("fatal").kv("error", e.what());
        std::cerr << "rlnode: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
