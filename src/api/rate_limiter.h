// Per-server request rate limit of api.md §2: N accepted requests per sliding 60 s window.
// The limiter keeps, per key, the accepted times of the window as (millisecond, count) runs, at
// most kMaxRuns per key (64 KB) however large N is; callers (the router) ask check() once per
// authenticated request and turn the Decision into headers or a 429. Exact for N <= kMaxRuns / 2
// (the spec's 1000 included); above that, see Window::run_start.
// Single-threaded (loop thread); the Clock must outlive the limiter.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>

#include "core/clock.h"

namespace aloha::api {

class RateLimiter {
 public:
  static constexpr int64_t kWindowMs = 60'000;
  // Runs kept per key at most. Past half of them, a run covers up to kCoarseMs of requests.
  static constexpr size_t kMaxRuns = 4096;
  static constexpr int64_t kCoarseMs = (kWindowMs + kMaxRuns / 2 - 1) / (kMaxRuns / 2);  // 30 ms

  // limit_per_minute below 1 is treated as 1.
  RateLimiter(int limit_per_minute, const Clock& clock);

  struct Decision {
    bool allowed;
    int limit;               // X-RateLimit-Limit
    int remaining;           // X-RateLimit-Remaining: N - accepted in the window incl. this; 0 if refused
    double retry_after_s;    // seconds until a request would be accepted; 0 when allowed
    int64_t reset_epoch_s;   // X-RateLimit-Reset: epoch second (truncated) when all have left the window
  };

  // Decides for one request of `key` at clock.now and records it if allowed. Refused requests
  // are not recorded (they do not count against the limit).
  Decision check(int64_t key);

  // Drops keys whose newest accepted request has left the window. check() also calls this
  // whenever the number of tracked keys has doubled since the last prune, so memory stays
  // proportional to the keys active in the last minute even without a timer.
  void prune();
  size_t tracked_keys() const { return keys_.size(); }
  // Runs (distinct accepted milliseconds) held for `key`: what its memory is proportional to.
  size_t tracked_runs(int64_t key) const {
    auto it = keys_.find(key);
    return it == keys_.end() ? 0 : it->second.runs.size();
  }

 private:
  int limit_;
  const Clock& clock_;
  // Accepted requests of one key: runs of (monotonic ms, how many were accepted in that ms),
  // oldest first, all within the window after check() has trimmed them; `total` is the sum of the
  // counts (at most limit_). One run per millisecond instead of one entry per request: with a
  // large limit (a benchmark's 1 000 000 per minute) the old per-request ring held up to 8 MB
  // per busy server.
  struct Run {
    int64_t ms;
    int64_t count;
  };
  struct Window {
    std::deque<Run> runs;
    int64_t total = 0;
    // First millisecond of the newest run. Once a key holds kMaxRuns / 2 runs, a request within
    // kCoarseMs of it joins that run and moves the run's time to its own (the newest request of
    // the run): every request is then counted until at least 60 s after it, never less, so the
    // window is only ever stricter than exact, by under kCoarseMs, and run starts are kCoarseMs
    // apart, which bounds the runs of 60 s to kMaxRuns. (A one-millisecond run per request
    // stream held up to 60 000 runs, ~1 MB, per busy key under a large limit.)
    int64_t run_start = 0;
  };
  std::unordered_map<int64_t, Window> keys_;
  size_t prune_at_ = 1024;
};

}  // namespace aloha::api
