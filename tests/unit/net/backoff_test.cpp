// net::Backoff with a scripted random source.
#include <doctest/doctest.h>

#include <vector>

#include "net/backoff.h"

using aloha::net::Backoff;
using aloha::net::BackoffOptions;
using aloha::net::Jitter;

namespace {
Backoff::RandomSource fixed(double v) { return [v] { return v; }; }
}  // namespace

TEST_SUITE("backoff") {

TEST_CASE("backoff: without jitter doubles from base and stops at the cap") {
  Backoff b(BackoffOptions{100, 1000, Jitter::none});
  std::vector<int64_t> got;
  for (int i = 0; i < 7; ++i) got.push_back(b.next_ms());
  CHECK(got == std::vector<int64_t>{100, 200, 400, 800, 1000, 1000, 1000});
  CHECK(b.attempts() == 7);
}

TEST_CASE("backoff: full jitter scales the exponential ceiling by the random draw") {
  Backoff hi(BackoffOptions{100, 1000, Jitter::full}, fixed(0.999999));
  CHECK(hi.next_ms() == 100);
  CHECK(hi.next_ms() == 200);
  CHECK(hi.next_ms() == 400);
  Backoff half(BackoffOptions{100, 1000, Jitter::full}, fixed(0.5));
  CHECK(half.next_ms() == 50);
  CHECK(half.next_ms() == 100);
  CHECK(half.next_ms() == 200);
  CHECK(half.next_ms() == 400);
  CHECK(half.next_ms() == 500);  // ceiling capped at 1000
  Backoff zero(BackoffOptions{100, 1000, Jitter::full}, fixed(0.0));
  CHECK(zero.next_ms() == 0);
}

TEST_CASE("backoff: decorrelated jitter grows from the previous delay, within base and cap") {
  Backoff b(BackoffOptions{100, 1000, Jitter::decorrelated}, fixed(0.999999));
  CHECK(b.next_ms() == 300);   // [100, 3*100]
  CHECK(b.next_ms() == 900);   // [100, 3*300]
  CHECK(b.next_ms() == 1000);  // capped
  Backoff low(BackoffOptions{100, 1000, Jitter::decorrelated}, fixed(0.0));
  CHECK(low.next_ms() == 100);
  CHECK(low.next_ms() == 100);
}

TEST_CASE("backoff: reset starts again from the base") {
  Backoff b(BackoffOptions{100, 10000, Jitter::none});
  b.next_ms();
  b.next_ms();
  b.next_ms();
  b.reset();
  CHECK(b.attempts() == 0);
  CHECK(b.next_ms() == 100);
}

TEST_CASE("backoff: an out-of-range random source cannot escape [0, cap]") {
  Backoff b(BackoffOptions{100, 1000, Jitter::full}, fixed(7.0));
  for (int i = 0; i < 20; ++i) {
    int64_t d = b.next_ms();
    CHECK(d >= 0);
    CHECK(d <= 1000);
  }
  Backoff n(BackoffOptions{100, 1000, Jitter::decorrelated}, fixed(-3.0));
  CHECK(n.next_ms() == 100);
}

TEST_CASE("backoff: the default random source stays in range and varies") {
  Backoff b(BackoffOptions{1000, 1000, Jitter::full});
  int64_t first = b.next_ms();
  bool varied = false;
  for (int i = 0; i < 50; ++i) {
    int64_t d = b.next_ms();
    CHECK(d >= 0);
    CHECK(d <= 1000);
    if (d != first) varied = true;
  }
  CHECK(varied);
}

}  // TEST_SUITE
