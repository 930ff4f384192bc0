#include "core/clock.h"

#include <ctime>

namespace aloha {

int64_t SystemClock::mono_ms() const {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t SystemClock::wall_ms() const {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

SystemClock& SystemClock::instance() {
  static SystemClock c;
  return c;
}

}  // namespace aloha
