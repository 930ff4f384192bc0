// Connector: resolve a host, then try every returned address in order with uv_tcp_connect and a
// per-attempt timeout until one connects (upstreams.md: `localhost` → ::1 then 127.0.0.1).
// Lifetime: start() returns a heap object that frees itself once `done` has run (or after
// cancel()) and its handles are closed. `done` fires once, on the loop thread, never inside
// start(). On success the caller owns the connected uv_tcp_t (allocated with new): it must
// uv_close() it and delete it in the close callback (close_tcp() does both).
#pragma once
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "net/resolver.h"

namespace aloha::net {

// uv_close + delete for a uv_tcp_t handed out by Connector (when no other close callback is needed).
void close_tcp(uv_tcp_t* tcp);

class Connector {
 public:
  // status 0 with a connected tcp; otherwise a libuv error code (UV_ETIMEDOUT, UV_ECONNREFUSED,
  // UV_EAI_NONAME, ...) with tcp == nullptr. `error` describes every failed attempt.
  using Done = std::function<void(int status, uv_tcp_t* tcp, const std::string& error)>;

  static Connector* start(uv_loop_t* loop, const std::string& host, uint16_t port,
                          int64_t attempt_timeout_ms, Done done);

  // `done` will not run; an in-flight attempt is aborted. The object frees itself later.
  void cancel();

  // Optional: runs once when the name resolved and the first connect attempt is about to start.
  void set_on_resolved(std::function<void(size_t address_count)> hook) { on_resolved_hook_ = std::move(hook); }

 private:
  struct Attempt;
  Connector(uv_loop_t* loop, int64_t timeout_ms, Done done);
  void on_resolved(int status, const std::vector<sockaddr_storage>& addrs);
  void try_next();
  void attempt_failed(Attempt* a, int status);
  void finish(int status, uv_tcp_t* tcp);
  void maybe_free();
  static void on_connect(uv_connect_t* req, int status) noexcept;
  static void on_timeout(uv_timer_t* t) noexcept;

  uv_loop_t* loop_;
  int64_t timeout_ms_;
  Done done_;
  std::function<void(size_t)> on_resolved_hook_;
  std::string host_;
  Resolver* resolver_ = nullptr;
  std::vector<sockaddr_storage> addrs_;
  size_t next_ = 0;
  Attempt* current_ = nullptr;
  uv_timer_t timer_{};
  bool timer_closed_ = false;
  bool finished_ = false;  // done ran or cancel() was called
  int live_attempts_ = 0;  // attempts whose memory libuv still references
  std::string errors_;
  int last_status_ = UV_ECONNREFUSED;
};

}  // namespace aloha::net
