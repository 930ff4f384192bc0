#include "core/log.h"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace aloha {
namespace {
LogLevel g_level = LogLevel::info;
bool g_full_tokens = false;
const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::error: return "error";
    case LogLevel::warn: return "warn";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
  }
  return "?";
}
}  // namespace

bool parse_log_level(std::string_view s, LogLevel& out) {
  if (s == "error") out = LogLevel::error;
  else if (s == "warn") out = LogLevel::warn;
  else if (s == "info") out = LogLevel::info;
  else if (s == "debug") out = LogLevel::debug;
  else return false;
  return true;
}

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }
void log_set_full_tokens(bool full) { g_full_tokens = full; }

void logf(LogLevel level, const char* fmt, ...) {
  char buf[2048];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   level_name(level));
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  size_t len = static_cast<size_t>(n) + (m < 0 ? 0 : static_cast<size_t>(m));
  if (len > sizeof buf - 2) len = sizeof buf - 2;  // truncated line
  buf[len++] = '\n';
  // One write() per line so concurrent writers never interleave inside a line.
  ssize_t w = write(STDERR_FILENO, buf, len);
  (void)w;
}

std::string redact_token(std::string_view token) {
  if (g_full_tokens) return std::string(token);
  if (token.size() <= 12) return "…";
  std::string out(token.substr(0, 4));
  out += "…";
  out += token.substr(token.size() - 4);
  return out;
}

}  // namespace aloha
