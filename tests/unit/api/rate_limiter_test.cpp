#include <doctest/doctest.h>

#include <algorithm>
#include <deque>

#include "api/rate_limiter.h"
#include "core/clock.h"

using aloha::FakeClock;
using aloha::api::RateLimiter;

namespace {
constexpr int64_t kWall0 = 1'767'225'600;  // FakeClock's initial wall time, epoch seconds
}

TEST_SUITE("rate_limiter") {

TEST_CASE("rate limiter: refuses the 1001st request in 60 s with the right retry-after") {
  FakeClock clock;
  RateLimiter rl(1000, clock);
  // 1000 requests spread 50 ms apart: the first at t=0, the last at t=49.95 s.
  for (int i = 0; i < 1000; ++i) {
    auto d = rl.check(7);
    REQUIRE(d.allowed);
    CHECK(d.remaining == 999 - i);
    clock.advance_ms(50);
  }
  // now t = 50 s: the 1000th most recent accepted request (t=0) is 50 s old.
  auto d = rl.check(7);
  CHECK_FALSE(d.allowed);
  CHECK(d.limit == 1000);
  CHECK(d.remaining == 0);
  CHECK(d.retry_after_s == doctest::Approx(10.0));
  CHECK(d.reset_epoch_s == kWall0 + 50 + 10);
  // Another key is unaffected.
  auto other = rl.check(8);
  CHECK(other.allowed);
  CHECK(other.remaining == 999);
}

TEST_CASE("rate limiter: retry-after is fractional seconds") {
  FakeClock clock;
  RateLimiter rl(2, clock);
  CHECK(rl.check(1).allowed);
  clock.advance_ms(250);
  CHECK(rl.check(1).allowed);
  clock.advance_ms(500);  // t = 0.75 s
  auto d = rl.check(1);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after_s == doctest::Approx(59.25));
  // reset = now + retry-after = t0 + 60 s, truncated.
  CHECK(d.reset_epoch_s == kWall0 + 60);
}

TEST_CASE("rate limiter: a request exactly 60 s old still counts; 1 ms later it has left") {
  FakeClock clock;
  RateLimiter rl(1, clock);
  CHECK(rl.check(1).allowed);
  clock.advance_ms(60'000);
  auto d = rl.check(1);
  CHECK_FALSE(d.allowed);          // "at most 60 s old" -> refused
  CHECK(d.retry_after_s == 0.0);
  clock.advance_ms(1);
  d = rl.check(1);
  CHECK(d.allowed);
  CHECK(d.remaining == 0);
}

TEST_CASE("rate limiter: refused requests do not count against the limit") {
  FakeClock clock;
  RateLimiter rl(3, clock);
  for (int i = 0; i < 3; ++i) REQUIRE(rl.check(5).allowed);  // all at t=0
  clock.advance_ms(30'000);
  for (int i = 0; i < 100; ++i) REQUIRE_FALSE(rl.check(5).allowed);
  clock.advance_ms(30'001);  // t = 60.001 s: the three from t=0 have left
  auto d = rl.check(5);
  CHECK(d.allowed);
  // Had the 100 refusals been recorded (at t=30 s), the window would still be full.
  CHECK(d.remaining == 2);
  CHECK(rl.check(5).allowed);
  CHECK(rl.check(5).allowed);
  CHECK_FALSE(rl.check(5).allowed);
}

TEST_CASE("rate limiter: sliding window frees one slot per expired request") {
  FakeClock clock;
  RateLimiter rl(3, clock);
  CHECK(rl.check(1).allowed);   // t=0
  clock.advance_ms(10'000);
  CHECK(rl.check(1).allowed);   // t=10
  clock.advance_ms(10'000);
  CHECK(rl.check(1).allowed);   // t=20
  clock.advance_ms(40'500);     // t=60.5: only the t=0 one has left
  auto d = rl.check(1);
  CHECK(d.allowed);
  CHECK(d.remaining == 0);
  d = rl.check(1);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after_s == doctest::Approx(9.5));  // t=10 request + 60 - 60.5
}

TEST_CASE("rate limiter: remaining counts accepted requests of the last 60 s incl. this one") {
  FakeClock clock;
  RateLimiter rl(10, clock);
  auto d = rl.check(1);
  CHECK(d.allowed);
  CHECK(d.limit == 10);
  CHECK(d.remaining == 9);
  CHECK(d.retry_after_s == 0.0);
  CHECK(d.reset_epoch_s == kWall0 + 60);
  clock.advance_ms(1'500);
  d = rl.check(1);
  CHECK(d.remaining == 8);
  CHECK(d.reset_epoch_s == kWall0 + 61);  // now + 60 = 61.5 s, truncated
  clock.advance_ms(59'000);                // t=60.5: the first has left
  d = rl.check(1);
  CHECK(d.remaining == 8);
}

TEST_CASE("rate limiter: reset uses the wall clock, the window the monotonic clock") {
  FakeClock clock;
  RateLimiter rl(1, clock);
  CHECK(rl.check(1).allowed);
  clock.set_wall_ms(2'000'000'000'000);  // wall clock jumps; monotonic does not
  auto d = rl.check(1);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after_s == doctest::Approx(60.0));
  CHECK(d.reset_epoch_s == 2'000'000'000 + 60);
}

TEST_CASE("rate limiter: prune drops keys idle for more than 60 s") {
  FakeClock clock;
  RateLimiter rl(5, clock);
  rl.check(1);
  rl.check(2);
  clock.advance_ms(30'000);
  rl.check(3);
  CHECK(rl.tracked_keys() == 3);
  clock.advance_ms(30'000);  // keys 1 and 2 exactly 60 s old: still in the window
  rl.prune();
  CHECK(rl.tracked_keys() == 3);
  clock.advance_ms(1);
  rl.prune();
  CHECK(rl.tracked_keys() == 1);
  clock.advance_ms(30'000);
  rl.prune();
  CHECK(rl.tracked_keys() == 0);
  // A pruned key starts afresh.
  CHECK(rl.check(1).remaining == 4);
}

TEST_CASE("rate limiter: requests of one millisecond count singly and leave the window together") {
  FakeClock clock;
  RateLimiter rl(5, clock);
  for (int i = 0; i < 3; ++i) CHECK(rl.check(1).remaining == 4 - i);  // 3 at t=0
  clock.advance_ms(10);
  CHECK(rl.check(1).remaining == 1);  // 2 at t=10
  CHECK(rl.check(1).remaining == 0);
  CHECK(rl.tracked_runs(1) == 2);
  clock.advance_ms(10);  // t=20: the 5th most recent is one of t=0
  auto d = rl.check(1);
  CHECK_FALSE(d.allowed);
  CHECK(d.retry_after_s == doctest::Approx(59.98));
  clock.advance_ms(59'980);  // t=60 000: those of t=0 are exactly 60 s old and still count
  CHECK_FALSE(rl.check(1).allowed);
  clock.advance_ms(1);  // t=60 001: all three of t=0 have left at once
  CHECK(rl.check(1).remaining == 2);
  CHECK(rl.check(1).remaining == 1);
  CHECK(rl.check(1).remaining == 0);
  auto r = rl.check(1);
  CHECK_FALSE(r.allowed);
  // The 5th most recent is now one of t=10, 60 s old at t=60 010.
  CHECK(r.retry_after_s == doctest::Approx(0.009));
}

TEST_CASE("rate limiter: memory grows with distinct milliseconds, not with the limit") {
  FakeClock clock;
  RateLimiter rl(1'000'000, clock);
  for (int ms = 0; ms < 100; ++ms) {
    for (int i = 0; i < 500; ++i) REQUIRE(rl.check(3).allowed);
    clock.advance_ms(1);
  }
  CHECK(rl.tracked_runs(3) == 100);
  CHECK(rl.check(3).remaining == 1'000'000 - 50'001);
}

TEST_CASE("rate limiter: memory stays bounded with many short-lived keys") {
  FakeClock clock;
  RateLimiter rl(5, clock);
  for (int64_t k = 0; k < 20'000; ++k) {
    rl.check(k);
    if (k % 1000 == 999) clock.advance_ms(61'000);
  }
  // Only keys of the last minute (plus at most one doubling of slack) survive the automatic prune.
  CHECK(rl.tracked_keys() <= 3000);
}


TEST_CASE("rate limiter: a large limit keeps at most kMaxRuns runs and never accepts more than N in 60 s") {
  FakeClock clock;
  constexpr int kLimit = 100'000;
  RateLimiter rl(kLimit, clock);
  // Three requests every millisecond, and bursts, for 3 minutes (more than the limit); the test keeps the exact accepted
  // times and checks the sliding-window bound at every step.
  std::deque<int64_t> accepted;  // accepted times within the last 60 s (exact)
  int64_t refused = 0;
  size_t most_runs = 0;
  for (int64_t t = 0; t < 180'000; ++t) {
    const int n = t % 1000 < 10 ? 100 : 3;  // and 10 ms of 100 per ms every second
    for (int i = 0; i < n; ++i) {
      auto d = rl.check(9);
      while (!accepted.empty() && t - accepted.front() > RateLimiter::kWindowMs) accepted.pop_front();
      if (d.allowed) {
        accepted.push_back(t);
        REQUIRE(accepted.size() <= static_cast<size_t>(kLimit));
      } else {
        ++refused;
      }
    }
    most_runs = std::max(most_runs, rl.tracked_runs(9));
    clock.advance_ms(1);
  }
  CHECK(most_runs <= RateLimiter::kMaxRuns);
  CHECK(most_runs > RateLimiter::kMaxRuns / 2);  // coarse mode was reached
  CHECK(refused > 0);                             // ~4000 per s: the limit was reached
}

TEST_CASE("rate limiter: up to kMaxRuns / 2 distinct milliseconds the window stays exact") {
  FakeClock clock;
  constexpr int kLimit = static_cast<int>(RateLimiter::kMaxRuns / 2);
  RateLimiter rl(kLimit, clock);
  for (int i = 0; i < kLimit; ++i) {
    REQUIRE(rl.check(4).allowed);
    clock.advance_ms(7);
  }
  CHECK(rl.tracked_runs(4) == static_cast<size_t>(kLimit));
  // The first request (t = 0) leaves the window at exactly 60 s + 1 ms, not later.
  clock.advance_ms(60'000 - kLimit * 7);  // now t = 60 s
  CHECK_FALSE(rl.check(4).allowed);
  clock.advance_ms(1);
  CHECK(rl.check(4).allowed);
}

TEST_CASE("rate limiter: a coarse run leaves the window with its newest request, never earlier") {
  FakeClock clock;
  constexpr int kLimit = 3000;
  RateLimiter rl(kLimit, clock);
  // One request per ms for 3 s: 2048 one-ms runs (t = 0..2047); from then on the newest run
  // takes every request within 30 ms of its start, so the run of t = 2047 covers t = 2047..2076.
  for (int t = 0; t < kLimit; ++t) {
    REQUIRE(rl.check(5).allowed);
    clock.advance_ms(1);
  }
  CHECK(rl.tracked_runs(5) < static_cast<size_t>(kLimit));
  // t = 62 049: exactly, the requests of t = 0..2048 (2049) have left the window. The coarse run
  // counts until 60 s after its newest request (t = 2076), so 2047 slots are free, two fewer than
  // exact; counting it from its first request would free 2077, more than exact.
  clock.advance_ms(62'049 - kLimit);
  int accepted = 0;
  for (int i = 0; i < 2100; ++i) accepted += rl.check(5).allowed ? 1 : 0;
  CHECK(accepted == 2047);
}

TEST_CASE("rate limiter: the ring buffer grows, wraps and shrinks without changing a decision") {
  // Against an exact model (every accepted time): irregular gaps and bursts make the buffer
  // wrap, double while wrapped, and halve in prune(); every decision must match the model.
  FakeClock clock;
  constexpr int kLimit = 1500;  // <= kMaxRuns / 2: the limiter is exact
  RateLimiter rl(kLimit, clock);
  std::deque<int64_t> accepted;
  uint64_t rnd = 12345;
  auto next = [&rnd] {
    rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int64_t>(rnd >> 33);
  };
  int64_t t = 0;
  size_t most_capacity = 0;
  for (int step = 0; step < 40'000; ++step) {
    // Phases of ~20 s: busy (gaps 0-20 ms), quiet (gaps up to 3 s).
    const bool busy = (t / 20'000) % 3 != 2;
    const int64_t gap = busy ? next() % 21 : next() % 3000;
    t += gap;
    clock.advance_ms(gap);
    while (!accepted.empty() && t - accepted.front() > RateLimiter::kWindowMs) accepted.pop_front();
    auto d = rl.check(1);
    const bool expect = accepted.size() < static_cast<size_t>(kLimit);
    REQUIRE(d.allowed == expect);
    if (d.allowed) {
      accepted.push_back(t);
      REQUIRE(d.remaining == kLimit - static_cast<int>(accepted.size()));
    }
    if (step % 997 == 0) rl.prune();
    most_capacity = std::max(most_capacity, rl.run_capacity(1));
    REQUIRE(rl.run_capacity(1) >= rl.tracked_runs(1));
  }
  CHECK(most_capacity >= 1024);  // it grew (and wrapped: 40 000 requests through it)
  CHECK(most_capacity <= RateLimiter::kMaxRuns);
}

TEST_CASE("rate limiter: prune gives back a buffer sized for an earlier burst") {
  FakeClock clock;
  RateLimiter rl(1'000'000, clock);
  for (int ms = 0; ms < 3000; ++ms) {  // one request per ms: kMaxRuns / 2 runs, then coarse
    REQUIRE(rl.check(2).allowed);
    clock.advance_ms(1);
  }
  const size_t burst_capacity = rl.run_capacity(2);
  CHECK(burst_capacity >= RateLimiter::kMaxRuns / 2);
  CHECK(burst_capacity <= RateLimiter::kMaxRuns);
  clock.advance_ms(50'000);  // t = 53 s: one more request keeps the key alive
  REQUIRE(rl.check(2).allowed);
  clock.advance_ms(10'000);  // t = 63 s: the burst has left the window, the last request not
  rl.prune();
  CHECK(rl.tracked_keys() == 1);
  CHECK(rl.tracked_runs(2) == 1);
  CHECK(rl.run_capacity(2) == RateLimiter::kMinRuns);
  // The window is still right after the shrink: 1 accepted in the last 60 s.
  CHECK(rl.check(2).remaining == 1'000'000 - 2);
}

}  // TEST_SUITE
