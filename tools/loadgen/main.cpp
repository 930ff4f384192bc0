// aloha-loadgen: HTTP/1.1 load generator for the bouncer benchmark (tools/bench). See cli.cpp's
// usage text; exit status 0 after a run (whatever the statuses), 1 when the run was abandoned
// (cannot connect, no progress), 2 on a bad command line.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>

#include "cli.h"

int main(int argc, char** argv) {
  using namespace aloha::loadgen;
  std::signal(SIGPIPE, SIG_IGN);  // a server closing mid-write is an I/O error, not a crash
  CliOptions opts;
  try {
    opts = parse_args(argc, argv);
  } catch (const CliError& e) {
    std::fprintf(stderr, "aloha-loadgen: %s\n%s", e.what(), kUsage);
    return 2;
  }
  if (opts.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  RunResult r;
  try {
    r = run_load(opts.run);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aloha-loadgen: %s\n", e.what());
    return 2;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  CpuUsage cpu;
  cpu.user_s = static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
  cpu.system_s = static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
  cpu.max_rss_kb = ru.ru_maxrss;
  // Time spent runnable but not running: on a machine shared with the bouncer and the sink this
  // says how much of the measured latency was the load tool waiting for a core.
  cpu.run_delay_s = -1;
  if (std::FILE* f = std::fopen("/proc/self/schedstat", "r")) {
    unsigned long long run_ns = 0, wait_ns = 0;
    if (std::fscanf(f, "%llu %llu", &run_ns, &wait_ns) == 2) cpu.run_delay_s = static_cast<double>(wait_ns) / 1e9;
    std::fclose(f);
  }
  if (!opts.trace_path.empty()) {
    std::string csv = trace_csv(r);
    std::FILE* f = std::fopen(opts.trace_path.c_str(), "wb");
    if (f == nullptr || std::fwrite(csv.data(), 1, csv.size(), f) != csv.size() || std::fclose(f) != 0) {
      std::fprintf(stderr, "aloha-loadgen: cannot write %s\n", opts.trace_path.c_str());
      return 2;
    }
  }
  std::string out = opts.json ? report_json(r, cpu) : report_table(r, cpu);
  std::fputs(out.c_str(), stdout);
  if (!r.fatal.empty()) {
    std::fprintf(stderr, "aloha-loadgen: %s\n", r.fatal.c_str());
    return 1;
  }
  return 0;
}
