// `rlcat --config FILE --testfile SETS.tsv`: runs the test sets of a file
// (tools/testfile.hpp) against a live cluster, set by set. Before each set:
// every node is recovered, every shard reset (unless keep_state), and the
// nodes not in the set's live list failed (docs/design.md section 6.8).
// Each command prints one line with its outcome and latency; each set ends
// with the balances of the items it touched per shard, its throughput and
// latency percentiles.
#pragma once

#include "config/config.hpp"

#include <chrono>
#include <ostream>
#include <string>

namespace rl::tools {

struct TestfileOptions {
    std::string path;
    bool json = false;        // one JSON object per line instead of text
    bool keep_state = false;  // no reset between sets
    bool pause = true;        // wait for Enter between sets, when stdin is a terminal
    std::chrono::milliseconds timeout{5000};  // per command, retries included
};

// 0 when every command of every set got an answer (an aborted transfer is
// one), 1 otherwise. Throws testfile::ParseError or std::invalid_argument
// (a usage error) before anything is sent when the file cannot be read,
// or names a node or item the config does not have, or the config leaves
// fault_injection off.
int run_testfile(const config::Config& config, const TestfileOptions& options, std::ostream& out);

}  // namespace rl::tools
