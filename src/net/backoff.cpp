#include "net/backoff.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace aloha::net {

Backoff::Backoff(BackoffOptions options, RandomSource random)
    : opt_(options), random_(std::move(random)) {
  if (opt_.base_ms < 1) opt_.base_ms = 1;
  if (opt_.cap_ms < opt_.base_ms) opt_.cap_ms = opt_.base_ms;
  previous_ms_ = opt_.base_ms;
  auto now = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  state_ = (now ^ reinterpret_cast<uintptr_t>(this)) | 1;
}

double Backoff::random01() {
  if (random_) {
    double r = random_();
    // A misbehaving source must not push delays outside [0, cap].
    if (!(r >= 0.0)) r = 0.0;
    if (r >= 1.0) r = std::nextafter(1.0, 0.0);
    return r;
  }
  // xorshift64*: cheap, good enough to de-synchronise reconnecting clients.
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return static_cast<double>((state_ * 2685821657736338717ULL) >> 11) * 0x1.0p-53;
}

void Backoff::reset() {
  attempt_ = 0;
  previous_ms_ = opt_.base_ms;
}

int64_t Backoff::next_ms() {
  // base * 2^attempt without overflow: stop doubling once the cap is reached.
  int64_t exp = opt_.base_ms;
  for (int i = 0; i < attempt_ && exp < opt_.cap_ms; ++i) exp *= 2;
  exp = std::min(exp, opt_.cap_ms);
  if (attempt_ < 1000) ++attempt_;

  switch (opt_.jitter) {
    case Jitter::none:
      return exp;
    case Jitter::full:
      // Full jitter: sleep = random(0, min(cap, base * 2^n)); spreads herds the most.
      return static_cast<int64_t>(random01() * static_cast<double>(exp + 1));
    case Jitter::decorrelated: {
      // Decorrelated jitter: sleep = min(cap, random(base, previous * 3)).
      int64_t hi = std::min(opt_.cap_ms, std::max(opt_.base_ms, previous_ms_ * 3));
      int64_t d = opt_.base_ms +
                  static_cast<int64_t>(random01() * static_cast<double>(hi - opt_.base_ms + 1));
      d = std::min(d, opt_.cap_ms);
      previous_ms_ = d;
      return d;
    }
  }
  return exp;
}

}  // namespace aloha::net
