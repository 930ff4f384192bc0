// Per-server request rate limit of api.md §2: N accepted requests per sliding 60 s window.
// The limiter owns one bounded ring of the last N accepted times per key; callers (the router)
// ask check() once per authenticated request and turn the Decision into headers or a 429.
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

 private:
  int limit_;
  const Clock& clock_;
  // Accepted request times (monotonic ms), oldest first; at most limit_ entries, all within
  // the window after check() has trimmed them.
  std::unordered_map<int64_t, std::deque<int64_t>> keys_;
  size_t prune_at_ = 1024;
};

}  // namespace aloha::api
