// Clock: monotonic time for every timer and duration, wall time only for timestamps that leave the
// process (database rows, APNs expiration, JWT iat). Injectable so engines can be tested with a
// fake clock.
#pragma once
#include <cstdint>

namespace aloha {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t mono_ms() const = 0;   // monotonic milliseconds, arbitrary origin
  virtual int64_t wall_ms() const = 0;   // UNIX epoch milliseconds
};

class SystemClock final : public Clock {
 public:
  int64_t mono_ms() const override;
  int64_t wall_ms() const override;
  static SystemClock& instance();
};

class FakeClock final : public Clock {
 public:
  int64_t mono_ms() const override { return mono_; }
  int64_t wall_ms() const override { return wall_; }
  void advance_ms(int64_t ms) { mono_ += ms; wall_ += ms; }
  void set_wall_ms(int64_t ms) { wall_ = ms; }
 private:
  int64_t mono_ = 1'000'000;
  int64_t wall_ = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
};

}  // namespace aloha
