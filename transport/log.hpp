// Structured log lines: `ts=<UTC, ms> level=<l> node=<id> event=<name> k=v ...`,
// one event a line, to stderr and optionally a file. Values with spaces or
// quotes are quoted so every line splits cleanly on spaces.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

namespace rl {

enum class LogLevel { debug, info, warn, error };

class Logger {
public:
    // node_id 0 is printed as a tool name instead (e.g. "rlcat").
    Logger(std::string who, LogLevel min_level = LogLevel::info);

    // Also append every line to `path`; throws std::runtime_error if it
    // cannot be opened.
    void also_to_file(const std::string& path);
    void set_level(LogLevel l) { min_level_ = l; }
    bool enabled(LogLevel l) const { return l >= min_level_; }

    class Line {
    public:
        Line(Logger* owner, LogLevel level, std::string_view event);
        Line(Line&&) = delete;
        ~Line();
        template <class V>
        Line& kv(std::string_view key, const V& value) {
            if (owner_ == nullptr) return *this;
            std::ostringstream v;
            v << value;
            append(key, v.str());
            return *this;
        }

    private:
        void append(std::string_view key, const std::string& value);
        Logger* owner_;
        std::string text_;
    };

    Line info(std::string_view event) { return Line(enabled(LogLevel::info) ? this : nullptr, LogLevel::info, event); }
    Line warn(std::string_view event) { return Line(enabled(LogLevel::warn) ? this : nullptr, LogLevel::warn, event); }
    Line error(std::string_view event) { return Line(enabled(LogLevel::error) ? this : nullptr, LogLevel::error, event); }
    Line debug(std::string_view event) { return Line(enabled(LogLevel::debug) ? this : nullptr, LogLevel::debug, event); }

private:
    void write(const std::string& line);
    std::string who_;
    LogLevel min_level_;
    std::unique_ptr<std::ofstream> file_;
};

}  // namespace rl
