// The mock upstream's HTTP/2 server: a libuv TCP listener whose connections speak HTTP/2 (nghttp2
// server sessions) over TLS (net::TlsSession, ALPN h2) or, with no TLS context, cleartext h2 with
// prior knowledge. Requests go to the Router's handlers. Output is coalesced: connections mark
// themselves dirty and each dirty one is flushed once per loop phase: a uv_check handle after the
// poll phase (reads, write completions) and a uv_prepare handle before it (timer output).
// The server owns its connections; a connection frees itself in its last close callback.
#pragma once
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "exchange.h"
#include "net/tls.h"
#include "stats.h"

namespace aloha::mock {

class Connection;

struct ServerOptions {
  uint32_t initial_streams = 1;   // SETTINGS_MAX_CONCURRENT_STREAMS until a token-auth success
  uint32_t max_streams = 1000;    // ...and after it
  uint32_t goaway_after = 0;      // >0: GOAWAY once a connection has started this many streams
  size_t max_connections = 4096;  // beyond: accepted and closed at once
  int64_t goaway_close_ms = 10'000;  // a connection still open this long after GOAWAY is dropped
};

class Server {
 public:
  // tls may be null (cleartext h2). tls, router, stats must outlive the server.
  Server(uv_loop_t* loop, ServerOptions opts, const net::TlsContext* tls, Router& router,
         Stats& stats);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // IPv4/IPv6 literal; port 0 = ephemeral. "" or an error text.
  std::string listen(const std::string& host, int port);
  int port() const { return port_; }
  // Closes the listener and every connection (no goodbye); done() runs once all handles are
  // closed, after which uv_loop_close() can succeed.
  void shutdown(std::function<void()> done);
  size_t connection_count() const { return connections_.size(); }

 private:
  friend class Connection;

  static void on_connection(uv_stream_t* listener, int status) noexcept;
  static void on_check(uv_check_t* h) noexcept;
  static void on_prepare(uv_prepare_t* h) noexcept;
  void flush_dirty();
  static void on_own_closed(uv_handle_t* h) noexcept;
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) noexcept;

  void mark_dirty(Connection* c);
  void connection_freed(Connection* c);
  void maybe_done();

  uv_loop_t* loop_;
  ServerOptions opts_;
  const net::TlsContext* tls_;
  Router& router_;
  Stats& stats_;
  uv_tcp_t* listener_ = nullptr;
  uv_check_t* check_ = nullptr;
  uv_prepare_t* prepare_ = nullptr;
  int own_open_ = 0;
  int port_ = 0;
  uint64_t next_id_ = 1;
  bool shutting_down_ = false;
  std::function<void()> done_;
  std::vector<Connection*> connections_;
  std::vector<Connection*> dirty_, dirty_work_;
  static constexpr size_t kReadBuf = 64 * 1024;
  std::unique_ptr<char[]> read_buf_;  // one buffer for all reads: each read is consumed at once
};

}  // namespace aloha::mock
