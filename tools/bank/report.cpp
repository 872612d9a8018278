#include "tools/bank/report.hpp"

#include "tools/bank/subprocess.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <map>

namespace rl::bank {
namespace {

std::string fixed(double v, int digits = 1) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

// Per second of the run (by end time): committed, aborted, unknown
// transfers, reads answered, reads failed.
std::vector<std::array<std::uint64_t, 5>> per_second(const History& h) {
    std::vector<std::array<std::uint64_t, 5>> out;
    const auto bump = [&out](std::int64_t ms, std::size_t column) {
        const auto s = static_cast<std::size_t>(std::max<std::int64_t>(0, ms / 1000));
        if (out.size() <= s) out.resize(s + 1, {0, 0, 0, 0, 0});
        ++out[s][column];
    };
    for (const Transfer& t : h.transfers) bump(t.end_ms, static_cast<std::size_t>(t.outcome));
    for (const Read& r : h.reads) bump(r.end_ms, r.ok ? 3 : 4);
    return out;
}

}  // namespace

std::vector<std::string> summary_lines(const History& h, const WorkloadStats& stats, double duration_s,
                                       const std::vector<TimelineEvent>& timeline) {
    std::map<std::string, std::uint64_t> by_outcome, aborts;
    std::uint64_t cross = 0, reads_ok = 0;
    for (const Transfer& t : h.transfers) {
        ++by_outcome[outcome_name(t.outcome)];
        if (t.outcome == Outcome::aborted) ++aborts[t.reason.empty() ? "?" : t.reason];
        cross += t.cross ? 1 : 0;
    }
    for (const Read& r : h.reads) reads_ok += r.ok ? 1 : 0;
    std::string abort_text;
    for (const auto& [reason, n] : aborts) abort_text += " " + reason + "=" + std::to_string(n);
    std::map<std::string, std::uint64_t> faults;
    std::uint64_t failed = 0;
    for (const TimelineEvent& e : timeline) {
        ++faults[fault_name(e.kind)];
        failed += e.ok ? 0 : 1;
    }
    std::string fault_text;
    for (const auto& [kind, n] : faults) fault_text += " " + kind + "=" + std::to_string(n);
    const double secs = duration_s > 0 ? duration_s : 1;
    return {
        "transfers: " + std::to_string(h.transfers.size()) + " (" + std::to_string(cross) + " across shards): committed=" +
            std::to_string(by_outcome["committed"]) + " aborted=" + std::to_string(by_outcome["aborted"]) +
            " unknown=" + std::to_string(by_outcome["unknown"]),
        "aborts by reason:" + (abort_text.empty() ? std::string(" none") : abort_text),
        "reads: " + std::to_string(h.reads.size()) + " answered=" + std::to_string(reads_ok) +
            " failed=" + std::to_string(h.reads.size() - reads_ok),
        "throughput: " + fixed(static_cast<double>(by_outcome["committed"]) / secs) + " commits/s, " +
            fixed(static_cast<double>(h.transfers.size() + h.reads.size()) / secs) + " operations/s over " +
            fixed(duration_s) + " s",
        "sessions: opened=" + std::to_string(stats.sessions_opened) + " failed=" + std::to_string(stats.sessions_failed) +
            " retries=" + std::to_string(stats.retries),
        "faults: " + std::to_string(timeline.size()) + (fault_text.empty() ? std::string() : " (" + fault_text.substr(1) + ")") +
            ", failed actions: " + std::to_string(failed),
    };
}

std::vector<std::string> timeline_lines(const std::vector<TimelineEvent>& timeline) {
    std::vector<std::string> out;
    for (const TimelineEvent& e : timeline) {
        out.push_back(fixed(static_cast<double>(e.start_ms) / 1000) + "s .. " +
                      fixed(static_cast<double>(e.end_ms) / 1000) + "s  " + e.what +
                      (e.ok ? std::string() : "  FAILED: " + e.error));
    }
    return out;
}

std::vector<std::string> check_lines(const CheckResult& r) {
    std::vector<std::string> out{
        "unknown-outcome transfers: " + std::to_string(r.unknown) + " in " + std::to_string(r.components) +
        " components (largest " + std::to_string(r.largest_component) + "), " +
        std::to_string(r.unknown_applied.size()) + " applied in the explanation found, search steps " +
        std::to_string(r.search_steps) + (r.search_bound_hit ? " (BOUND HIT)" : "")};
    for (const auto& f : r.failures) out.push_back("FAIL: " + f);
    out.push_back(r.ok ? "check: PASS" : "check: FAIL (" + std::to_string(r.failures.size()) + " lines above)");
    return out;
}

void write_history(const History& h, const std::filesystem::path& file) {
    std::ofstream out(file);
    for (const Transfer& t : h.transfers) {
        out << nlohmann::ordered_json{{"op", "transfer"}, {"txid", t.txid},        {"from", t.from},
                                      {"to", t.to},       {"amount", t.amount},    {"cross", t.cross},
                                      {"outcome", outcome_name(t.outcome)},        {"reason", t.reason},
                                      {"start_ms", t.start_ms}, {"end_ms", t.end_ms}, {"attempts", t.attempts}}
                   .dump()
            << "\n";
    }
    for (const Read& r : h.reads) {
        out << nlohmann::ordered_json{{"op", "read"},       {"item", r.item},     {"ok", r.ok},
                                      {"balance", r.balance}, {"held", r.held},   {"pending", r.pending},
                                      {"start_ms", r.start_ms}, {"end_ms", r.end_ms}, {"error", r.error}}
                   .dump()
            << "\n";
    }
}

std::string plot(const History& h, const std::vector<TimelineEvent>& timeline, const std::filesystem::path& png) {
    auto data = png, script = png;
    data.replace_extension(".dat");
    script.replace_extension(".gp");
    {
        std::ofstream d(data);
        d << "# second committed aborted unknown reads_ok reads_failed\n";
        const auto rows = per_second(h);
        for (std::size_t s = 0; s < rows.size(); ++s) {
            d << s << " " << rows[s][0] << " " << rows[s][1] << " " << rows[s][2] << " " << rows[s][3] << " "
              << rows[s][4] << "\n";
        }
    }
    std::ofstream g(script);
    g << "set terminal pngcairo size 1400,600\nset output '" << png.string() << "'\n"
      << "set title 'bank workload: operations per second, faults shaded'\n"
      << "set xlabel 'seconds since start'\nset ylabel 'per second'\nset key outside right top\nset grid\n";
    int n = 1;
    for (const TimelineEvent& e : timeline) {
        const double a = static_cast<double>(e.start_ms) / 1000, b = static_cast<double>(e.end_ms) / 1000;
        g << "set object " << n << " rect from " << a << ", graph 0 to " << b
          << ", graph 1 fc rgb '#ffcccc' fs solid 0.4 noborder behind\n"
          << "set label " << n << " '" << fault_name(e.kind) << "' at " << a << ", graph 0.97 rotate by 90 right font ',8'\n";
        ++n;
    }
    const std::string d = "'" + data.string() + "'";
    g << "plot " << d << " using 1:2 with lines lw 2 title 'committed', " << d
      << " using 1:3 with lines title 'aborted', " << d << " using 1:4 with impulses lw 3 title 'unknown', " << d
      << " using 1:5 with lines title 'reads', " << d << " using 1:6 with impulses lw 3 title 'failed reads'\n";
    g.close();
    const Ran r = run_program({"gnuplot", script.string()}, std::chrono::seconds(30));
    if (r.code != 0) return "gnuplot " + script.string() + " exited " + std::to_string(r.code) + ": " + tail_lines(r.output, 3);
    return {};
}

}  // namespace rl::bank
