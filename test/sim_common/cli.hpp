// The seed arguments of a simulator's test driver and the command that
// replays a failing case. Arguments come after "--": --seed=S (one seed),
// --seeds=K --first-seed=F (a batch), --trace (print every event).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace rl::simcommon {

struct SeedArgs {
    std::optional<std::uint64_t> seed;  // one seed only
    std::uint64_t first_seed = 1;
    std::uint64_t seeds = 0;            // batch size
    bool trace = false;
};

// The seed arguments of the test module's command line; `seeds` is the
// batch size when none is given.
SeedArgs seed_args(std::uint64_t seeds);
// The value of `arg` when it reads "key=value".
std::optional<std::string> flag_value(const std::string& arg, const char* key);
// Calls `each(arg)` for every argument of the test module's command line.
void for_each_arg(const std::function<void(const std::string&)>& each);

// The command that reruns the current test case on one seed, `extra`
// appended; also kept for a sanitizer report or an assertion inside a core,
// which end the process without unwinding, and set as the Boost.Test
// checkpoint.
std::string replay_command(std::uint64_t seed, const std::string& extra = "");

}  // namespace rl::simcommon

