#include "tools/bank/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rl::bank {
namespace {

// In the child: own process group (so a timeout kills its children too),
// output into the pipe, then exec. Only async-signal-safe calls.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, int out_fd) {
    ::setpgid(0, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    const char msg[] = "exec failed\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
}

int exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

Ran run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    Ran r;
    for (const auto& a : argv) r.command += (r.command.empty() ? "" : " ") + a;
    int fds[2];
    if (argv.empty() || ::pipe2(fds, O_CLOEXEC) != 0) {
        r.output = "cannot start " + r.command + ": " + std::strerror(errno);
        return r;
    }
    const pid_t pid = ::fork();
    if (pid == 0) exec_child(argv, fds[1]);
    ::close(fds[1]);
    if (pid < 0) {
        ::close(fds[0]);
        r.output = "fork failed: " + std::string(std::strerror(errno));
        return r;
    }
    // Reads until the child itself exits: nodes it leaves running in the
    // background may hold the pipe open for ever.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    int status = 0;
    bool exited = false;
    bool eof = false;
    while (!exited) {
        if (std::chrono::steady_clock::now() >= deadline) {
            r.timed_out = true;
            ::kill(-pid, SIGKILL);
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, eof ? 0 : 1, 20) > 0) {
            const ssize_t n = ::read(fds[0], buf, sizeof buf);
            if (n > 0) r.output.append(buf, static_cast<std::size_t>(n));
            eof = n <= 0;
        }
        exited = ::waitpid(pid, &status, WNOHANG) == pid;
    }
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) r.output.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    r.code = exit_code(status);
    if (r.timed_out) r.output += "\n(killed after " + std::to_string(timeout.count()) + " ms)";
    return r;
}

std::string tail_lines(const std::string& text, std::size_t lines) {
    std::size_t pos = text.size();
    while (pos > 0 && text[pos - 1] == '\n') --pos;
    const std::size_t end = pos;
    for (std::size_t seen = 0; pos > 0; --pos) {
        if (text[pos - 1] == '\n' && ++seen == lines) break;
    }
    return text.substr(pos, end - pos);
}

}  // namespace rl::bank
