// The mass-deletion guard and the 410 rule (upstreams.md safety rules), with a FakeClock.
#include <doctest/doctest.h>

#include <limits>

#include "core/clock.h"
#include "push/dead_tokens.h"

using namespace aloha;
using push::DeadTokenGuard;
using push::DeadTokenGuardOptions;

namespace {
DeadTokenGuardOptions opts(int64_t window_s = 300, int min = 100, double share = 0.5) {
  return DeadTokenGuardOptions{window_s, min, share, 300'000};
}
}  // namespace

TEST_SUITE("dead tokens") {

TEST_CASE("dead-token guard: deletes while fewer than min answers were seen") {
  FakeClock clock;
  DeadTokenGuard g(clock, opts());
  for (int i = 0; i < 99; ++i) CHECK(g.record("apns", true));
  CHECK(g.counts("apns").dead == 99);
  CHECK(g.counts("apns").refused == 0);
}

TEST_CASE("dead-token guard: the 100th dead answer of 100 is kept (answer at hand included)") {
  FakeClock clock;
  DeadTokenGuard g(clock, opts());
  for (int i = 0; i < 99; ++i) REQUIRE(g.record("apns", true));
  CHECK_FALSE(g.record("apns", true));
  CHECK(g.counts("apns").refused == 1);
}

TEST_CASE("dead-token guard: exactly the share is not more than the share") {
  FakeClock clock;
  DeadTokenGuard g(clock, opts());
  for (int i = 0; i < 50; ++i) g.record("fcm", false);
  for (int i = 0; i < 49; ++i) REQUIRE(g.record("fcm", true));
  CHECK(g.record("fcm", true));       // 50 of 100: not more than 0.5
  CHECK_FALSE(g.record("fcm", true)); // 51 of 101
  CHECK(g.record("fcm", false));      // delivered answers are always fine
}

TEST_CASE("dead-token guard: apps are counted separately") {
  FakeClock clock;
  DeadTokenGuard g(clock, opts());
  for (int i = 0; i < 200; ++i) g.record("apns.broken", true);
  CHECK_FALSE(g.record("apns.broken", true));
  CHECK(g.record("apns.other", true));
  CHECK(g.record("fcm", true));
  CHECK(g.counts("apns.other").dead == 1);
}

TEST_CASE("dead-token guard: answers older than the window stop counting") {
  FakeClock clock;
  DeadTokenGuard g(clock, opts(300, 100, 0.5));
  for (int i = 0; i < 150; ++i) g.record("apns", true);
  CHECK_FALSE(g.record("apns", true));
  clock.advance_ms(299'000);
  CHECK_FALSE(g.record("apns", true));  // still inside the window
  clock.advance_ms(2'000);              // the first burst is now more than 300 s old
  CHECK(g.counts("apns").dead == 1);
  CHECK(g.record("apns", true));
}

TEST_CASE("dead-token guard: a configured share and minimum are honoured") {
  FakeClock clock;
  DeadTokenGuard g(clock, opts(60, 10, 0.9));
  for (int i = 0; i < 2; ++i) g.record("fcm", false);
  for (int i = 0; i < 18; ++i) REQUIRE(g.record("fcm", true));  // up to 18 of 20 = 0.9: not more
  CHECK_FALSE(g.record("fcm", true));                           // 19 of 21 > 0.9
}

TEST_CASE("410 rule: the timestamp is the cutoff, no timestamp deletes always") {
  push::Outcome o;
  o.kind = push::OutcomeKind::dead_token;
  CHECK(push::dead_token_cutoff_ms(o) == std::numeric_limits<int64_t>::max());
  o.apns_timestamp_ms = 1'700'000'000'123;
  CHECK(push::dead_token_cutoff_ms(o) == 1'700'000'000'123);
}

TEST_CASE("warn limiter: once per interval per key") {
  FakeClock clock;
  push::WarnLimiter w(clock, 1000, 4);
  CHECK(w.should_log("a"));
  CHECK_FALSE(w.should_log("a"));
  CHECK(w.should_log("b"));
  clock.advance_ms(999);
  CHECK_FALSE(w.should_log("a"));
  clock.advance_ms(1);
  CHECK(w.should_log("a"));
}

}  // TEST_SUITE
