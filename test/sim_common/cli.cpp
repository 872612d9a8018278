#include "cli.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace rl::simcommon {
namespace {

namespace utf = boost::unit_test;

char g_replay[512] = "";

// "suite/sub/case" of the test case running now, as --run_test takes it.
std::string test_path() {
    const auto& tc = utf::framework::current_test_case();
    std::string path = tc.p_name;
    for (auto id = tc.p_parent_id; id != utf::framework::master_test_suite().p_id;) {
        const auto& suite = utf::framework::get<utf::test_suite>(id);
        path = std::string(suite.p_name) + "/" + path;
        id = suite.p_parent_id;
    }
    return path;
}

}  // namespace

SeedArgs seed_args(std::uint64_t seeds) {
    SeedArgs a;
    a.seeds = seeds;
    for_each_arg([&](const std::string& arg) {
        if (auto v = flag_value(arg, "--seed")) a.seed = std::stoull(*v);
        if (auto v = flag_value(arg, "--seeds")) a.seeds = std::stoull(*v);
        if (auto v = flag_value(arg, "--first-seed")) a.first_seed = std::stoull(*v);
        if (arg == "--trace") a.trace = true;
    });
    return a;
}

void for_each_arg(const std::function<void(const std::string&)>& each) {
    const auto& suite = utf::framework::master_test_suite();
    for (int i = 1; i < suite.argc; ++i) each(suite.argv[i]);
}

std::optional<std::string> flag_value(const std::string& arg, const char* key) {
    const std::string k = std::string(key) + "=";
    if (arg.rfind(k, 0) != 0) return std::nullopt;
    return arg.substr(k.size());
}

std::string replay_command(std::uint64_t seed, const std::string& extra) {
    const std::string cmd = std::string(utf::framework::master_test_suite().argv[0]) + " --run_test=" + test_path() +
                            " -- --seed=" + std::to_string(seed) + extra;
    std::snprintf(g_replay, sizeof g_replay, "\nreplay: %s --trace\n", cmd.c_str());
    // A broken invariant inside a core aborts; Boost.Test reports the
    // signal together with this last checkpoint.
    BOOST_TEST_CHECKPOINT("seed " << seed << "; replay: " << cmd << " --trace");
    return cmd;
}

}  // namespace rl::simcommon

extern "C" void __sanitizer_set_death_callback(void (*)()) __attribute__((weak));
extern "C" void print_replay_on_death() {
    [[maybe_unused]] const auto n = ::write(2, rl::simcommon::g_replay, std::strlen(rl::simcommon::g_replay));
}

namespace rl::simcommon {
namespace {

// Registered from this file, which every driver links through
// replay_command(), so that a sanitizer report ends with the replay command.
struct ReplayOnSanitizerDeath {
    ReplayOnSanitizerDeath() {
        if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(print_replay_on_death);
    }
};
BOOST_TEST_GLOBAL_FIXTURE(ReplayOnSanitizerDeath);

}  // namespace
}  // namespace rl::simcommon
