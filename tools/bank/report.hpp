// What a bank run prints and writes: the summary (operations by outcome,
// throughput, faults), the nemesis timeline, the history as JSON lines,
// and the plot of throughput and errors per second with the faults marked
// (drawn by gnuplot from a data file and a script written beside it).
#pragma once

#include "tools/bank/check.hpp"
#include "tools/bank/history.hpp"
#include "tools/bank/nemesis.hpp"
#include "tools/bank/workload.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace rl::bank {

std::vector<std::string> summary_lines(const History& h, const WorkloadStats& stats, double duration_s,
                                       const std::vector<TimelineEvent>& timeline);
std::vector<std::string> timeline_lines(const std::vector<TimelineEvent>& timeline);
std::vector<std::string> check_lines(const CheckResult& result);

void write_history(const History& h, const std::filesystem::path& file);

// Writes `png` with gnuplot (DATA and script next to it, same stem);
// returns an empty string, or why it could not.
std::string plot(const History& h, const std::vector<TimelineEvent>& timeline, const std::filesystem::path& png);

}  // namespace rl::bank
