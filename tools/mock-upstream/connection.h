// One accepted connection of the mock upstream: TCP (libuv) → TLS (optional, sans-I/O) → nghttp2
// server session. Requests complete inside nghttp2 callbacks but are handled only after
// nghttp2_session_mem_recv returns (never re-entering nghttp2); delayed answers wait in a
// per-connection timer heap. Lives on the heap, owned by Server; close() is idempotent and the
// last close callback deletes the object.
#pragma once
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "exchange.h"
#include "net/tls.h"

namespace aloha::mock {

class Server;

class Connection {
 public:
  Connection(Server& server, uint64_t id);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Accepts from listener and starts reading. false: the connection is closing (no accept).
  bool start(uv_stream_t* listener);
  void close();
  // Moves pending nghttp2 output through TLS onto the socket (one write in flight at a time).
  void flush();
  bool closing() const { return closing_; }
  bool in_dirty = false;  // maintained by Server::mark_dirty / on_check

 private:
  friend class Server;
  struct Stream {
    int32_t id = 0;
    Request req;
    Reply reply;
    size_t body_off = 0;
    size_t slot = 0;  // index in live_
  };
  struct Pending {
    uint64_t due;
    int32_t stream_id;
    bool operator>(const Pending& o) const { return due > o.due; }
  };

  ~Connection();

  // libuv trampolines
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write(uv_write_t* req, int status) noexcept;
  static void on_timer(uv_timer_t* t) noexcept;
  static void on_closed(uv_handle_t* h) noexcept;
  // nghttp2 trampolines
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*) noexcept;
  static int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                       const uint8_t*, size_t, uint8_t, void*) noexcept;
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t,
                           void*) noexcept;
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*) noexcept;
  static int on_stream_close(nghttp2_session*, int32_t, uint32_t, void*) noexcept;
  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                           nghttp2_data_source*, void*) noexcept;

  void handle_input(const char* data, size_t len);
  void process_completed();
  void dispatch(Stream* s);
  void execute(Stream* s);
  void arm_timer();
  void fire_due();
  void submit_goaway(int32_t last_id, const std::string& debug);
  Stream* stream(int32_t id);
  Stream* acquire_stream();
  void release_stream(Stream* s);

  Server& server_;
  uint64_t id_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_write_t write_req_;
  int open_handles_ = 0;
  bool closing_ = false;
  bool write_in_flight_ = false;
  bool drop_requested_ = false;
  bool tls_checked_ = false;
  bool cert_verified_ = false;
  bool streams_raised_ = false;
  std::unique_ptr<net::TlsSession> tls_;
  nghttp2_session* h2_ = nullptr;
  std::string plain_in_;    // decrypted input of one read
  std::string plain_out_;   // nghttp2 output of one flush, before TLS
  std::string out_;         // ciphertext (or cleartext h2) waiting for the socket
  std::string writing_;     // the buffer of the write in flight
  std::vector<int32_t> completed_;  // requests that ended during the last mem_recv
  std::vector<Stream*> live_;  // streams nghttp2 knows (owned here; freed at stream close)
  std::vector<std::unique_ptr<Stream>> free_streams_;  // pool (bounded)
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> pending_;
  uint64_t open_streams_ = 0;
  uint64_t started_streams_ = 0;
  int32_t goaway_last_id_ = -1;  // ≥0 once GOAWAY decided: higher streams are not processed
  bool goaway_pending_ = false;  // decided inside a callback, submitted after mem_recv
  std::string goaway_debug_;
  uint64_t goaway_at_ = 0;       // loop time of the GOAWAY, for the close deadline
};

}  // namespace aloha::mock
