#include "push/dead_tokens.h"

#include <algorithm>
#include <limits>

#include "core/log.h"

namespace aloha::push {

DeadTokenGuard::DeadTokenGuard(const Clock& clock, DeadTokenGuardOptions opts) : clock_(clock), opts_(opts) {
  // The window is kept as a ring of at most 300 buckets: 1 s each for the default 300 s window,
  // coarser for longer ones. Memory per app is fixed whatever the push rate.
  int64_t window_ms = std::max<int64_t>(1, opts_.window_s) * 1000;
  buckets_ = static_cast<size_t>(std::min<int64_t>(std::max<int64_t>(1, opts_.window_s), 300));
  bucket_ms_ = (window_ms + static_cast<int64_t>(buckets_) - 1) / static_cast<int64_t>(buckets_);
}

void DeadTokenGuard::advance(Window& w, int64_t index) const {
  // Buckets older than the window leave the sums (and are reused for newer indexes).
  for (auto& b : w.ring) {
    if (b.index >= 0 && b.index <= index - static_cast<int64_t>(buckets_)) {
      w.delivered -= b.delivered;
      w.dead -= b.dead;
      b = Bucket{};
    }
  }
}

bool DeadTokenGuard::record(std::string_view app, bool dead) {
  auto it = apps_.find(app);
  if (it == apps_.end()) {
    it = apps_.emplace(std::string(app), Window{}).first;
    it->second.ring.resize(buckets_);
  }
  Window& w = it->second;
  int64_t now = clock_.mono_ms();
  int64_t index = now / bucket_ms_;
  Bucket& slot = w.ring[static_cast<size_t>(index % static_cast<int64_t>(buckets_))];
  if (slot.index != index) {
    // A new bucket started: expire every bucket that left the window (a scan of the fixed ring,
    // once per bucket period, not per answer).
    advance(w, index);
    if (slot.index != -1) {  // still an old bucket in this slot (only when index went backwards)
      w.delivered -= slot.delivered;
      w.dead -= slot.dead;
    }
    slot = Bucket{index, 0, 0};
  }
  if (dead) {
    ++slot.dead;
    ++w.dead;
  } else {
    ++slot.delivered;
    ++w.delivered;
    return true;
  }
  int64_t total = w.delivered + w.dead;
  bool tripped = total >= opts_.min_answers &&
                 static_cast<double>(w.dead) > opts_.share * static_cast<double>(total);
  if (!tripped) return true;
  ++w.refused;
  if (!w.alerted || now - w.last_alert_ms >= opts_.warn_interval_ms) {
    w.alerted = true;
    w.last_alert_ms = now;
    LOG_ERROR("dead-token guard: %s: %lld of the last %lld answers in %llds say the token is dead; "
              "keeping tokens instead of deleting them (check the app's topic, environment or "
              "sender id); %lld deletions refused so far",
              std::string(app).c_str(), static_cast<long long>(w.dead), static_cast<long long>(total),
              static_cast<long long>(opts_.window_s), static_cast<long long>(w.refused));
  }
  return false;
}

DeadTokenGuard::Counts DeadTokenGuard::counts(std::string_view app) const {
  auto it = apps_.find(app);
  if (it == apps_.end()) return {};
  // Report what record() would see now: buckets that left the window do not count.
  int64_t index = clock_.mono_ms() / bucket_ms_;
  Counts c;
  for (const auto& b : it->second.ring) {
    if (b.index < 0 || b.index <= index - static_cast<int64_t>(buckets_)) continue;
    c.delivered += b.delivered;
    c.dead += b.dead;
  }
  c.refused = it->second.refused;
  return c;
}

int64_t dead_token_cutoff_ms(const Outcome& o) {
  // upstreams.md: a 410 timestamp means "the token was invalid from this instant"; a token
  // registered again afterwards (registered_ms >= timestamp) is kept.
  if (o.apns_timestamp_ms >= 0) return o.apns_timestamp_ms;
  return std::numeric_limits<int64_t>::max();
}

bool WarnLimiter::should_log(std::string_view key) {
  int64_t now = clock_.mono_ms();
  std::string k(key);
  auto it = last_.find(k);
  if (it != last_.end()) {
    if (now - it->second < interval_ms_) return false;
    it->second = now;
    return true;
  }
  if (last_.size() >= max_keys_) last_.clear();
  last_.emplace(std::move(k), now);
  return true;
}

}  // namespace aloha::push
