// Test support for process tests: temp dirs, free loopback ports, child
// processes that are always killed and reaped, and waiting for a condition
// with a deadline (never a bare sleep).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace rl::test {

// The build tree (ctest sets RL_BIN_DIR) and the source tree (RL_SOURCE_DIR).
std::filesystem::path bin_dir();
std::filesystem::path source_dir();
std::filesystem::path rlnode_path();
std::filesystem::path rlcat_path();

class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// n distinct TCP ports on 127.0.0.1 that were free a moment ago.
std::vector<std::uint16_t> free_ports(std::size_t n);

// Polls `done` every few milliseconds until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);

// A child process with stdout and stderr sent to `output`. The destructor
// SIGKILLs and reaps it, so a failing test leaves nothing running.
class Process {
public:
    Process(const std::vector<std::string>& argv, const std::filesystem::path& output);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    bool running();
    void signal(int sig);
    // Waits for exit; the exit code (128+signal if killed), or nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

// Runs a command to completion; returns exit code and combined output.
struct RunResult {
    int code = -1;
    std::string output;
};
RunResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                      const std::string& stdin_text = "");

std::string read_file(const std::filesystem::path& p);
// Resident memory of a process in KiB (from /proc), 0 if unknown.
std::uint64_t rss_kib(pid_t pid);
// Peak resident memory of a process in KiB (VmHWM), 0 if unknown.
std::uint64_t peak_rss_kib(pid_t pid);
// Lowers the peak to the current resident size (Linux clear_refs 5), so a
// later peak_rss_kib() measures from now. False if /proc refused.
bool reset_peak_rss(pid_t pid);

}  // namespace rl::test
