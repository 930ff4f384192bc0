// Driving a libuv loop from an integration test: run until a predicate holds or a timeout passes,
// and drain closing handles before uv_loop_close. Single-threaded; the caller owns the loop.
#pragma once
#include <uv.h>

#include <chrono>
#include <cstdint>

namespace aloha::test {

// Runs loop until pred() or timeout_ms. A repeating tick_ms timer bounds each blocking
// UV_RUN_ONCE so the deadline is checked even when nothing else happens; it is closed on return.
template <class Pred>
bool run_loop_until(uv_loop_t* loop, Pred pred, int timeout_ms, uint64_t tick_ms) {
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, [](uv_timer_t*) noexcept {}, tick_ms, tick_ms);
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool ok = pred();
  while (!ok && std::chrono::steady_clock::now() < end) {
    uv_run(loop, UV_RUN_ONCE);
    ok = pred();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return ok;
}

// Up to 100 non-blocking passes so pending close callbacks run.
inline void drain_loop(uv_loop_t* loop) {
  for (int i = 0; i < 100 && uv_loop_alive(loop); ++i) uv_run(loop, UV_RUN_NOWAIT);
}

}  // namespace aloha::test
