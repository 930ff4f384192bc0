// Dead-token handling (upstreams.md "Safety rules"): the 410 timestamp rule and the per-app
// mass-deletion guard. DeadTokenGuard counts, per app ("apns", "apns.NAME", "fcm"), the delivered
// and dead-token answers of a sliding window and refuses deletions while more than `share` of at
// least `min` answers say "dead token" (a misconfigured topic or environment makes every token look
// dead); it logs one error per app per warn interval while refusing. Single-threaded (loop thread);
// memory is bounded per app (a fixed ring of time buckets).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "push/outcome.h"

namespace aloha::push {

struct DeadTokenGuardOptions {
  int64_t window_s = 300;           // [push] dead_token_guard_window
  int min_answers = 100;            // [push] dead_token_guard_min
  double share = 0.5;               // [push] dead_token_guard_share
  int64_t warn_interval_ms = 300'000;  // [push] warn_interval
};

class DeadTokenGuard {
 public:
  DeadTokenGuard(const Clock& clock, DeadTokenGuardOptions opts);

  // Records one answer of `app` (delivered or dead token; other outcomes are not counted).
  // For a dead-token answer returns whether the token may be deleted: false while the app's
  // window (the answer at hand included) holds at least min_answers answers of which more than
  // `share` are dead. Delivered answers always return true.
  bool record(std::string_view app, bool dead);

  struct Counts {
    int64_t delivered = 0, dead = 0;
    int64_t refused = 0;  // deletions refused since start (all time)
  };
  Counts counts(std::string_view app) const;

 private:
  struct Bucket {
    int64_t index = -1;
    uint32_t delivered = 0, dead = 0;
  };
  struct Window {
    std::vector<Bucket> ring;
    int64_t delivered = 0, dead = 0;  // sums over the live buckets
    int64_t refused = 0;
    int64_t last_alert_ms = 0;
    bool alerted = false;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void advance(Window& w, int64_t index) const;

  const Clock& clock_;
  DeadTokenGuardOptions opts_;
  int64_t bucket_ms_ = 1000;
  size_t buckets_ = 300;
  std::unordered_map<std::string, Window, Hash, std::equal_to<>> apps_;  // one per configured app
};

// The 410 rule: delete only rows registered before the answer's timestamp (epoch ms); INT64_MAX
// (always) when the answer carries none.
int64_t dead_token_cutoff_ms(const Outcome& o);

// At most one log line per key per interval ("no credentials for ios_app_id X", ...). Bounded:
// beyond max_keys distinct keys the table is cleared (a few extra lines, never unbounded memory).
class WarnLimiter {
 public:
  WarnLimiter(const Clock& clock, int64_t interval_ms, size_t max_keys = 1024)
      : clock_(clock), interval_ms_(interval_ms), max_keys_(max_keys) {}
  // True when a warning for `key` should be logged now (and records it).
  bool should_log(std::string_view key);

 private:
  const Clock& clock_;
  int64_t interval_ms_;
  size_t max_keys_;
  std::unordered_map<std::string, int64_t> last_;
};

}  // namespace aloha::push
