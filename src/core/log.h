// Logging: one line per event on stderr, level-filtered. Never pass notification content here;
// tokens go through redact_token() unless [server] log_tokens is set.
#pragma once
#include <string>
#include <string_view>

namespace aloha {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

// Parses "error" | "warn" | "info" | "debug"; false on anything else.
bool parse_log_level(std::string_view s, LogLevel& out);

void log_set_level(LogLevel level);
LogLevel log_level();
inline bool log_enabled(LogLevel level) { return static_cast<int>(level) <= static_cast<int>(log_level()); }

// Whether tokens are logged in full (off by default: first and last 4 characters only).
void log_set_full_tokens(bool full);

// printf-style; writes "<UTC time> <level> <message>\n" to stderr in one write().
void logf(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define ALOHA_LOG(level, ...) \
  do { if (::aloha::log_enabled(level)) ::aloha::logf(level, __VA_ARGS__); } while (0)
#define LOG_ERROR(...) ALOHA_LOG(::aloha::LogLevel::error, __VA_ARGS__)
#define LOG_WARN(...) ALOHA_LOG(::aloha::LogLevel::warn, __VA_ARGS__)
#define LOG_INFO(...) ALOHA_LOG(::aloha::LogLevel::info, __VA_ARGS__)
#define LOG_DEBUG(...) ALOHA_LOG(::aloha::LogLevel::debug, __VA_ARGS__)

// "abcd…wxyz" (first and last 4 characters) unless full tokens are enabled; short tokens "…".
std::string redact_token(std::string_view token);

}  // namespace aloha
