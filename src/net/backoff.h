// Backoff: jittered exponential retry delays (AWS "Exponential Backoff and Jitter": full and
// decorrelated jitter) for reconnects and retries. Pure computation; the random source is
// injectable so tests are deterministic. Owned by its user; no callbacks.
#pragma once
#include <cstdint>
#include <functional>

namespace aloha::net {

enum class Jitter {
  none,          // base * 2^attempt, capped
  full,          // uniform in [0, min(cap, base * 2^attempt)]
  decorrelated,  // uniform in [base, min(cap, previous * 3)]
};

struct BackoffOptions {
  int64_t base_ms = 1000;
  int64_t cap_ms = 60000;
  Jitter jitter = Jitter::full;
};

class Backoff {
 public:
  // Returns a uniformly distributed value in [0, 1). Default: a per-object xorshift seeded from
  // the address and time (adequate for spreading reconnects; not for secrets).
  using RandomSource = std::function<double()>;

  explicit Backoff(BackoffOptions options = {}, RandomSource random = {});

  // Delay before the next attempt; advances the attempt counter.
  int64_t next_ms();
  // Call after a success: the next failure starts from the base again.
  void reset();
  int attempts() const { return attempt_; }
  const BackoffOptions& options() const { return opt_; }

 private:
  double random01();

  BackoffOptions opt_;
  RandomSource random_;
  int attempt_ = 0;
  int64_t previous_ms_ = 0;
  uint64_t state_ = 0;
};

}  // namespace aloha::net
