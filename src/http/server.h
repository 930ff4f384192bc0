// The inbound HTTP/1.1 server: listening sockets and keep-alive connections on a libuv loop,
// requests parsed by RequestParser and handed to one Handler; limits, timeouts and errors the
// server answers itself (JSON bodies as in api.md §1). Everything runs on the loop's thread.
// The Server owns its connections; a connection frees itself in its last close callback.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <uv.h>
#include <vector>

#include "http/message.h"

namespace aloha::http {

struct ServerLimits {
  size_t max_header_bytes = 16 * 1024;  // request line + headers
  size_t max_headers = 100;
  size_t max_body_bytes = 1024 * 1024;
  int64_t header_timeout_ms = 10'000;
  int64_t body_timeout_ms = 30'000;
  int64_t idle_timeout_ms = 60'000;
  size_t max_connections = 1024;
};

class Connection;

namespace detail {
// Shared by a connection and every Reply made for it; `conn` is cleared when the connection
// starts closing, so a late Reply::send() becomes a no-op instead of touching freed memory.
struct ConnAnchor {
  Connection* conn = nullptr;
};
}  // namespace detail

// Reply: the one-shot way to answer a request, possibly later (after a database commit or an
// upstream send). Copyable handle; send() may be called once; if the connection closed meanwhile
// it is a no-op. Responses go out in request order even if replies arrive out of order. Use it on
// the loop thread only. send() never calls back into the handler synchronously.
class Reply {
 public:
  Reply() = default;
  void send(Response&& r) const;
  bool connection_alive() const;

 private:
  friend class Connection;
  Reply(std::shared_ptr<detail::ConnAnchor> anchor, uint64_t seq)
      : anchor_(std::move(anchor)), seq_(seq) {}
  std::shared_ptr<detail::ConnAnchor> anchor_;
  uint64_t seq_ = 0;
};

// Called once per complete request, on the loop thread, in the order requests arrive on each
// connection. Exceptions are caught and answered with 500.
using Handler = std::function<void(Request&& req, Reply reply)>;

class Server {
 public:
  Server(uv_loop_t* loop, ServerLimits limits, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // host: IPv4 or IPv6 literal (no brackets). port 0 = ephemeral. Returns "" or an error text.
  // May be called more than once (e.g. one IPv4 and one IPv6 address).
  std::string listen(const std::string& host, int port);
  int port() const;               // the bound port of the first listener, 0 if none
  void stop_accepting();          // close the listening sockets
  // Graceful stop: stop accepting, close idle connections, let in-flight requests be answered
  // (then close those connections) until deadline_ms, then force-close; calls done() once all
  // handles are closed (the server's own included: uv_loop_close() may follow).
  void shutdown(int64_t deadline_ms, std::function<void()> done);
  size_t connection_count() const;

 private:
  friend class Connection;

  static void on_connection(uv_stream_t* listener, int status) noexcept;
  static void on_prepare(uv_prepare_t* h) noexcept;
  static void on_shutdown_deadline(uv_timer_t* t) noexcept;
  static void on_own_handle_closed(uv_handle_t* h) noexcept;

  void accept_one(uv_stream_t* listener);
  void close_own_handle(uv_handle_t* h);
  void connection_freed(Connection* c, bool rejecting);
  void mark_dirty(Connection* c);
  void forget_dirty(Connection* c);
  void maybe_finish_shutdown();

  uv_loop_t* loop_;
  ServerLimits limits_;
  Handler handler_;
  std::vector<uv_tcp_t*> listeners_;
  uv_prepare_t* prepare_ = nullptr;     // flushes replies sent outside a read callback
  uv_timer_t* deadline_timer_ = nullptr;
  std::vector<uv_handle_t*> own_handles_;  // every handle above until its close callback
  std::vector<Connection*> connections_;  // index kept in Connection::slot_index_
  std::vector<Connection*> dirty_;
  std::vector<Connection*> dirty_work_;
  size_t active_ = 0;                    // connections that count against max_connections
  size_t rejecting_ = 0;                 // connections being told 503
  uint64_t next_conn_id_ = 1;
  bool shutting_down_ = false;
  bool finished_ = false;
  std::function<void()> done_;
  std::unique_ptr<char[]> read_buf_;     // one buffer shared by all reads (one thread)
};

}  // namespace aloha::http
