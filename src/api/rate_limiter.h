// Per-server request rate limit of api.md §2: N accepted requests per sliding 60 s window.
// The limiter keeps, per key, the accepted times of the window as (millisecond, count) runs, at
// most kMaxRuns per key (64 KB) however large N is, in one ring buffer per key; callers (the router) ask check() once per
// authenticated request and turn the Decision into headers or a 429. Exact for N <= kMaxRuns / 2
// (the spec's 1000 included); above that, see Window::run_start.
// Single-threaded (loop thread); the Clock must outlive the limiter.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
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
  // Runs the key's buffer has room for (its memory: 16 bytes each); 0 for an unknown key.
  size_t run_capacity(int64_t key) const {
    auto it = keys_.find(key);
    return it == keys_.end() ? 0 : it->second.runs.capacity();
  }
  // Smallest ring buffer of a key.
  static constexpr size_t kMinRuns = 16;

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
  // A key's runs, oldest first, in one buffer used as a ring: it doubles (up to kMaxRuns) when
  // full and halves in prune() when mostly empty, so a steady stream of requests allocates
  // nothing. (A std::deque allocated a 512-byte block every 32 runs and freed the oldest: small
  // blocks living up to 60 s, made all through a burst, that kept the pages of the burst's freed
  // buffers resident around them; ~300 of them when the bench's 1M-token scenario began.)
  class RunRing {
   public:
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    size_t capacity() const { return cap_; }
    Run& front() { return buf_[head_]; }
    Run& back() { return buf_[(head_ + size_ - 1) & (cap_ - 1)]; }
    void pop_front() {
      head_ = (head_ + 1) & (cap_ - 1);
      --size_;
    }
    // Room is the caller's bound (size() < kMaxRuns).
    void push_back(Run r);
    // Halves the buffer while it is at most a quarter full (not below kMinRuns).
    void shrink();

   private:
    void reallocate(size_t cap);
    std::unique_ptr<Run[]> buf_;
    size_t cap_ = 0;  // 0 or a power of two
    size_t head_ = 0;
    size_t size_ = 0;
  };
  struct Window {
    RunRing runs;
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
