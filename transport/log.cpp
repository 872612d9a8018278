#include "transport/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <stdexcept>

namespace rl {
namespace {

const char* level_name(LogLevel l) {
    switch (l) {
        case LogLevel::debug: return "debug";
        case LogLevel::info: return "info";
        case LogLevel::warn: return "warn";
        case LogLevel::error: return "error";
    }
    return "info";
}

std::string timestamp_now() {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    const std::time_t secs = system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

bool needs_quotes(const std::string& v) {
    if (v.empty()) return true;
    for (char c : v)
        if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t') return true;
    return false;
}

}  // namespace

Logger::Logger(std::string who, LogLevel min_level) : who_(std::move(who)), min_level_(min_level) {}

void Logger::also_to_file(const std::string& path) {
    auto f = std::make_unique<std::ofstream>(path, std::ios::app);
    if (!*f) throw std::runtime_error("cannot open log file " + path);
    file_ = std::move(f);
}

void Logger::write(const std::string& line) {
    std::cerr << line << '\n';
    if (file_) {
        *file_ << line << '\n';
        file_->flush();
    }
}

Logger::Line::Line(Logger* owner, LogLevel level, std::string_view event) : owner_(owner) {
    if (owner_ == nullptr) return;
    text_ = "ts=" + timestamp_now() + " level=" + level_name(level) + " node=" + owner_->who_ + " event=";
    text_ += event;
}

Logger::Line::~Line() {
    if (owner_ != nullptr) owner_->write(text_);
}

void Logger::Line::append(std::string_view key, const std::string& value) {
    text_ += ' ';
    text_ += key;
    text_ += '=';
    if (!needs_quotes(value)) {
        text_ += value;
        return;
    }
    text_ += '"';
    for (char c : value) {
        if (c == '"' || c == '\\') text_ += '\\';
        text_ += (c == '\n' || c == '\t') ? ' ' : c;
    }
    text_ += '"';
}

}  // namespace rl
