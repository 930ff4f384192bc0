// The load tool's engine: N HTTP/1.1 keep-alive connections on one libuv loop, each keeping up to
// `pipeline` requests in flight, requests rendered from templates (template.h), latency of every
// response recorded in a Histogram, statuses counted. run_load() owns the loop and every handle;
// it returns when the duration has passed or the request budget is spent and the answers are in
// (or a grace period ran out). Connections that fail are reopened after a short pause.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "histogram.h"
#include "template.h"

namespace aloha::loadgen {

struct RequestSpec {
  std::string method = "GET";
  Template path;
  Template body;
  bool send_body = false;        // a Content-Length (also for an empty body)
  std::string fixed_headers;     // complete "Name: value\r\n" lines (Host, Authorization, ...)
};

struct RunOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  int port = 0;
  size_t connections = 64;
  size_t pipeline = 1;                 // requests in flight per connection
  uint64_t duration_ms = 10'000;       // 0 = no time bound (then max_requests must be set)
  uint64_t max_requests = 0;           // 0 = no count bound
  uint64_t grace_ms = 10'000;          // wait this long for answers after the stop / for progress
  std::vector<RequestSpec> specs;      // [0] the main request; [1] optional alternate
  uint64_t alt_every = 0;              // with specs[1]: request i uses it when i % alt_every == alt_every-1
  uint64_t first_n = 0;                // initial `n` of the main request (to resume a numbering)
  size_t show_errors = 0;              // print the first K answers >= 400 (status + body) to stderr
  bool progress = false;               // one stderr line per second
  size_t trace_max = 0;                // keep (send time, latency, connection) of the first K answers
};

// One answer of a traced run (RunOptions::trace_max): when the request was queued, relative to
// the run's start, how long its answer took, on which connection and with which status.
struct TraceRecord {
  uint64_t sent_ns = 0;
  uint32_t latency_ns = 0;             // saturates at ~4.29 s
  uint16_t conn = 0;                   // connection index (saturates at 65535)
  uint16_t status = 0;
};

struct RunResult {
  uint64_t sent = 0;                   // requests written
  uint64_t completed = 0;              // answers received (any status)
  double elapsed_s = 0;                // first connect attempt .. last answer
  Histogram latency;                   // nanoseconds, request queued .. answer complete
  std::array<uint64_t, 600> statuses{};
  uint64_t ok_2xx = 0, non_2xx = 0;
  uint64_t connect_errors = 0, io_errors = 0, parse_errors = 0;
  uint64_t unfinished = 0;             // requests lost with a connection or cut off by the stop
  uint64_t reconnects = 0;
  std::string fatal;                   // set when the run was abandoned (e.g. cannot connect)
  std::vector<TraceRecord> trace;      // answers in arrival order, at most trace_max
  uint64_t trace_dropped = 0;          // answers past trace_max
  uint64_t start_ns = 0;               // uv_hrtime() (CLOCK_MONOTONIC) at the start: trace times are relative to it
};

// The trace as CSV: "sent_us,latency_us,conn,status" then one line per record.
std::string trace_csv(const RunResult& r);

// Runs one load test. Throws std::invalid_argument on inconsistent options.
RunResult run_load(const RunOptions& opts);

}  // namespace aloha::loadgen
