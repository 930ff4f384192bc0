// Command line and report of aloha-loadgen: turns argv into RunOptions (throws CliError with a
// message for the user), and a RunResult plus the tool's own CPU time into a JSON object or a
// short table. Pure functions; main.cpp does the I/O.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>

#include "client.h"

namespace aloha::loadgen {

class CliError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Url {
  std::string address;  // IP literal (localhost -> 127.0.0.1), IPv6 without brackets
  std::string authority;  // as written: host[:port], for the Host header
  int port = 80;
  std::string path = "/";  // may contain ${...} placeholders
};
// http://HOST[:PORT][/PATH]; HOST an IPv4 literal, [IPv6] or localhost.
Url parse_url(std::string_view url);

struct CliOptions {
  RunOptions run;
  bool json = false;
  bool help = false;
  std::string trace_path;  // --trace FILE: per-answer CSV (RunResult::trace)
};
CliOptions parse_args(int argc, const char* const* argv);
extern const char* const kUsage;

struct CpuUsage {
  double user_s = 0, system_s = 0;
  long max_rss_kb = 0;
  double run_delay_s = 0;  // runnable but waiting for a CPU (/proc/self/schedstat), -1 unknown
};
std::string report_json(const RunResult& r, const CpuUsage& cpu);
std::string report_table(const RunResult& r, const CpuUsage& cpu);

}  // namespace aloha::loadgen
