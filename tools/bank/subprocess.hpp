// Runs a helper program (tools/rlcluster, tools/partition, rlcat, gnuplot)
// to completion with a deadline, capturing its output. A child that
// overruns is killed with its whole process group.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace rl::bank {

struct Ran {
    int code = -1;       // exit code; 128+N when killed by signal N; -1 when it could not start
    bool timed_out = false;
    std::string output;  // stdout and stderr together
    std::string command; // the argv joined, for messages
};

Ran run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// The last `lines` lines of `text`, for error messages.
std::string tail_lines(const std::string& text, std::size_t lines);

}  // namespace rl::bank
