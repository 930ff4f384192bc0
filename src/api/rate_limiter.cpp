#include "api/rate_limiter.h"

#include <algorithm>

namespace aloha::api {

void RateLimiter::RunRing::reallocate(size_t cap) {
  auto buf = std::make_unique<Run[]>(cap);
  for (size_t i = 0; i < size_; ++i) buf[i] = buf_[(head_ + i) & (cap_ - 1)];
  buf_ = std::move(buf);
  cap_ = cap;
  head_ = 0;
}

void RateLimiter::RunRing::push_back(Run r) {
  if (size_ == cap_) reallocate(cap_ == 0 ? kMinRuns : cap_ * 2);
  buf_[(head_ + size_) & (cap_ - 1)] = r;
  ++size_;
}

void RateLimiter::RunRing::shrink() {
  size_t cap = cap_;
  while (cap > kMinRuns && size_ <= cap / 4) cap /= 2;
  if (cap != cap_) reallocate(cap);
}

RateLimiter::RateLimiter(int limit_per_minute, const Clock& clock)
    : limit_(std::max(1, limit_per_minute)), clock_(clock) {}

RateLimiter::Decision RateLimiter::check(int64_t key) {
  if (keys_.size() >= prune_at_) {
    prune();
    prune_at_ = std::max<size_t>(1024, keys_.size() * 2);
  }
  const int64_t now = clock_.mono_ms();
  const int64_t wall = clock_.wall_ms();
  Window& w = keys_[key];
  // api.md §2: a request is refused when the N-th most recent accepted request is "at most 60 s
  // old", so an entry exactly 60 000 ms old still counts; only older ones leave the window.
  while (!w.runs.empty() && now - w.runs.front().ms > kWindowMs) {
    w.total -= w.runs.front().count;
    w.runs.pop_front();
  }

  Decision d{};
  d.limit = limit_;
  if (w.total >= limit_) {
    // Requests are accepted only while fewer than N are in the window, so it holds exactly N:
    // the oldest run's time is that of the N-th most recent accepted request.
    const int64_t retry_ms = w.runs.front().ms + kWindowMs - now;
    d.allowed = false;
    d.remaining = 0;
    d.retry_after_s = static_cast<double>(retry_ms) / 1000.0;
    d.reset_epoch_s = (wall + retry_ms) / 1000;
    return d;
  }
  if (!w.runs.empty() && w.runs.back().ms == now) {
    ++w.runs.back().count;
  } else if ((w.runs.size() >= kMaxRuns / 2 && now - w.run_start < kCoarseMs) || w.runs.size() >= kMaxRuns) {
    // Coarse mode (see Window::run_start): only reachable with N > kMaxRuns / 2. Run starts
    // kCoarseMs apart keep a window below kMaxRuns; the second test makes that the buffer's
    // hard bound whatever the clock does (joining the newest run is only ever stricter).
    w.runs.back().ms = now;
    ++w.runs.back().count;
  } else {
    w.runs.push_back(Run{now, 1});
    w.run_start = now;
  }
  ++w.total;
  d.allowed = true;
  d.remaining = limit_ - static_cast<int>(w.total);
  d.retry_after_s = 0;
  d.reset_epoch_s = (wall + kWindowMs) / 1000;
  return d;
}

void RateLimiter::prune() {
  const int64_t now = clock_.mono_ms();
  for (auto it = keys_.begin(); it != keys_.end();) {
    Window& w = it->second;
    if (w.runs.empty() || now - w.runs.back().ms > kWindowMs) {
      it = keys_.erase(it);
      continue;
    }
    // Runs that left the window go now (check() only drops them on the key's next request), and
    // a buffer sized for an earlier burst is given back.
    while (now - w.runs.front().ms > kWindowMs) {
      w.total -= w.runs.front().count;
      w.runs.pop_front();
    }
    w.runs.shrink();
    ++it;
  }
}

}  // namespace aloha::api
