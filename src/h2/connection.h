// One HTTP/2 client connection: Connector (DNS + TCP) → TLS (ALPN h2; optional for cleartext
// tests) → h2::Session, on a libuv loop. Explicit states; PING when idle; closes on any error and
// reports each request's outcome through its completion (connection_lost / goaway_unprocessed let
// the pool replay). Also declares Conn, the small interface the Pool drives (faked in unit tests).
//
// Lifetime (architecture.md): heap-allocated, never copied or moved; close() is idempotent and
// starts closing every handle; the last close callback calls ConnListener::on_conn_closed() and
// deletes the object. Listener callbacks never run inside submit()/cancel()/close().
#pragma once
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

#include "h2/session.h"
#include "net/tls_stream.h"

namespace aloha::net {
class TlsContext;
class Connector;
}  // namespace aloha::net

namespace aloha::h2 {

enum class ConnState { resolving, connecting, handshaking, connected, draining, closed };
const char* conn_state_name(ConnState s);

class Conn;

// Events from a connection to its owner (the pool). All run on the loop thread.
class ConnListener {
 public:
  virtual ~ConnListener() = default;
  // HTTP/2 is up and the server's SETTINGS arrived: requests may be submitted.
  virtual void on_conn_ready(Conn* c) = 0;
  // Streams closed, SETTINGS changed, GOAWAY arrived, or the connection stopped accepting.
  virtual void on_conn_capacity(Conn* c) = 0;
  // Last event: the object is deleted right after this returns. `error` is empty after a clean
  // close (drained, or close() by the owner).
  virtual void on_conn_closed(Conn* c, const std::string& error) = 0;
  // The connection was quiet for idle_release_ms and gave back its burst buffers: a good moment
  // for the owner to give back its own (request slots).
  virtual void on_conn_idle(Conn*) {}
};

// What the pool needs from a connection.
class Conn {
 public:
  virtual ~Conn() = default;
  virtual ConnState state() const = 0;
  // Requests that would start a stream right now (0 unless connected).
  virtual size_t free_slots() const = 0;
  virtual size_t pending() const = 0;
  // As Session::submit: request id or 0 when refused (then `done` never runs and `request` is
  // left as it was). Taken over on success; a failure hands it back in H2Response::request.
  virtual uint64_t submit(H2Request&& request, Completion done) = 0;
  virtual bool cancel(uint64_t request_id) = 0;
  // Fails open requests with connection_lost and closes; on_conn_closed follows asynchronously.
  virtual void close() = 0;
  // No new requests; GOAWAY to the server; closes once open requests finish.
  virtual void drain() = 0;
  // nullptr: no further listener calls (used when the owner goes away first).
  virtual void set_listener(ConnListener* listener) = 0;
};

struct ConnectionOptions {
  std::string host;
  uint16_t port = 443;
  std::string authority;               // :authority of requests that have none; default host,
                                       // plus ":port" unless 443
  int64_t connect_timeout_ms = 10000;  // per address tried
  int64_t handshake_timeout_ms = 10000;
  int64_t ping_idle_ms = 60000;        // PING after this long without reading anything
  int64_t ping_timeout_ms = 10000;     // ... and give up if no ack within this
  size_t max_write_buffer = 4 << 20;   // bytes queued in uv_write before we stop pulling h2 output
  // After this long without reading or writing anything, the connection gives back the buffers
  // it keeps for the next burst (TLS chunks, nghttp2 block cache, request slots: up to ~0.5 MB
  // after a busy spell) and keeps only what an open TLS + HTTP/2 session needs. 0: never.
  int64_t idle_release_ms = 5000;
  SessionOptions session;
};

class Connection final : public Conn, private net::StreamListener {
 public:
  // tls == nullptr: cleartext HTTP/2 with prior knowledge (tests only). tls must outlive the
  // connection. Starts resolving at once; events go to `listener`.
  static Connection* create(uv_loop_t* loop, const net::TlsContext* tls, ConnectionOptions options,
                            ConnListener* listener);

  ConnState state() const override { return state_; }
  size_t free_slots() const override;
  size_t pending() const override;
  uint64_t submit(H2Request&& request, Completion done) override;
  bool cancel(uint64_t request_id) override;
  void close() override { close_with(""); }
  void drain() override;
  void set_listener(ConnListener* listener) override { listener_ = listener; }

  const ConnectionOptions& options() const { return opt_; }
  const std::string& error() const { return error_; }
  // Bytes kept for reuse between bursts (TLS stream, pump scratch, session); diagnostics, tests.
  size_t idle_capacity() const;
  // How many times any connection of the process gave its burst buffers back: the freed memory
  // is in the middle of the heap, so the owner of the allocator policy (app.cpp: malloc_trim)
  // watches this count to hand the pages back to the kernel soon after. Loop thread only.
  static uint64_t idle_releases() { return idle_releases_; }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

 private:
  Connection(uv_loop_t* loop, const net::TlsContext* tls, ConnectionOptions options,
             ConnListener* listener);
  ~Connection();

  void on_connected(int status, uv_tcp_t* tcp, const std::string& error);
  void on_handshake_done();
  void on_timer();
  void arm_timer(int64_t ms);
  void pump();
  void schedule_pump();
  void close_with(const std::string& error);
  void after_session_events();
  void handle_closed();

  // net::StreamListener: the TLS transport's events.
  void on_stream_ready() override;
  void on_stream_data(const char* data, size_t len) override;
  void on_stream_eof(bool close_notify) override;
  void on_stream_error(net::StreamFailure kind, const std::string& message) override;
  void on_stream_written() override { pump(); }  // output was paused at the write bound
  void on_stream_closed() override;

  static void timer_cb(uv_timer_t* t) noexcept;

  uv_loop_t* loop_;
  const net::TlsContext* tls_ctx_;
  ConnectionOptions opt_;
  ConnListener* listener_;
  ConnState state_ = ConnState::resolving;
  std::string error_;

  net::Connector* connector_ = nullptr;
  net::TlsStream* stream_ = nullptr;  // TCP (+ TLS) once connected; frees itself after close()
  uv_timer_t timer_{};
  // Output of submit()/cancel() is written once per loop iteration (just before libuv polls), so
  // the pushes of one iteration share TLS records and one write() instead of one each.
  uv_prepare_t flush_{};
  bool flush_scheduled_ = false;
  int open_handles_ = 0;    // timer + flush + stream; the last close callback deletes the object
  std::unique_ptr<Session> session_;
  static constexpr size_t kPumpPiece = 16u << 10;
  static constexpr size_t kPumpReserve = 40u << 10;
  std::string h2_out_;      // scratch: h2 output on its way to TLS (only inside pump())
  bool pumping_ = false;
  bool pump_again_ = false;
  bool ready_reported_ = false;
  uint64_t last_read_ms_ = 0;
  uint64_t ping_sent_ms_ = 0;
  uint64_t last_active_ms_ = 0;   // uv_now() of the last read or output (idle_release_ms)
  bool idle_released_ = false;    // burst buffers given back; set again by the next activity
  void mark_active();
  void release_idle_buffers();
  static inline uint64_t idle_releases_ = 0;
  static constexpr size_t kReleaseWorthIt = 16u << 10;
};

}  // namespace aloha::h2
