// Connection: one accepted HTTP/1.1 connection of the Server (internal to src/http). Reads into
// the server's shared buffer, parses with RequestParser, hands requests to the handler, keeps
// responses in request order in a bounded ring, writes them coalesced, runs the per-connection
// deadlines. Lives on the heap; close() is idempotent and the last close callback deletes it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <uv.h>
#include <vector>

#include "http/parser.h"
#include "http/response_writer.h"
#include "http/server.h"

namespace aloha::http {

class Connection {
 public:
  // Bounds (architecture.md: every queue and buffer has one).
  static constexpr size_t kMaxPipelined = 32;          // requests waiting for their response
  static constexpr size_t kOutputHighWater = 256 * 1024;  // stop reading above this much output
  static constexpr int64_t kLingerMs = 2000;           // read-and-discard after a final response
  // Memory kept per connection between requests (performance.md: RSS grows with connections).
  static constexpr size_t kInitialSlots = 2;           // response ring before pipelining grows it
  static constexpr size_t kKeepOutputCapacity = 8 * 1024;  // larger output buffers are released

  Connection(Server* server, uint64_t id, bool rejecting);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // uv_accept()s from `listener` and starts reading (or, when rejecting, answers 503 and closes).
  // On failure the connection closes itself.
  void start(uv_stream_t* listener);
  void close();                 // idempotent; frees the object in the last close callback
  void begin_drain();           // graceful shutdown: finish in-flight requests, then close
  void detach_server() { server_ = nullptr; }
  bool rejecting() const { return rejecting_; }
  bool closing() const { return state_ == State::closing; }

  // From Reply.
  void on_reply(uint64_t seq, Response&& r);
  // From the server's prepare handle: flush output and resume paused reading.
  void on_prepare();

  bool in_dirty_ = false;       // Server bookkeeping
  size_t list_index_ = 0;       // position in Server::connections_

 private:
  enum class State { open, lingering, closing };
  enum class TimerKind { none, fresh, headers, body, idle, output, linger };

  struct Slot {
    uint64_t seq = 0;
    bool ready = false;
    bool close_after = false;
    bool head = false;          // HEAD request: no body in the response
    bool http10_keep_alive = false;
    uint64_t start_ns = 0;
    std::string method;         // for the access log only
    std::string path;
    Response resp;
  };

  ~Connection();

  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write(uv_write_t* req, int status) noexcept;
  static void on_shutdown(uv_shutdown_t* req, int status) noexcept;
  static void on_timer(uv_timer_t* t) noexcept;
  static void on_close(uv_handle_t* h) noexcept;

  void handle_read(ssize_t nread, const uv_buf_t* buf);
  size_t process(const char* data, size_t len);
  bool can_process() const;
  void dispatch(Request&& req);
  void queue_error(int status, const char* code, const char* msg);
  Slot& push_slot();
  void grow_slots();
  void release_output_buffers();
  void move_ready_to_output();
  void flush();
  void after_output_drained();
  void resume_reading();
  void start_linger();
  void update_timer();
  void set_deadline(TimerKind kind, int64_t ms);
  void on_timeout();
  void log_access(const Slot& s) const;
  size_t buffered_output() const { return out_.size() + (write_buf_.size() - write_off_); }

  Server* server_;
  uint64_t id_;
  bool rejecting_;
  State state_ = State::open;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_write_t write_req_;
  uv_shutdown_t shutdown_req_;
  int handles_open_ = 0;
  std::shared_ptr<detail::ConnAnchor> anchor_;
  std::string remote_ = "-";
  RequestParser parser_;

  // Responses in request order; head_ is the oldest. One extra place for a server error. The
  // ring starts small and grows (up to max_slots_) only when a client pipelines.
  std::vector<Slot> slots_;
  size_t max_slots_;
  size_t head_ = 0;
  size_t count_ = 0;
  uint64_t next_seq_ = 1;

  std::string out_;             // serialized, not yet handed to libuv
  std::string write_buf_;       // in flight with uv_write (stable memory until on_write)
  size_t write_off_ = 0;
  bool write_in_flight_ = false;
  bool close_after_write_ = false;  // a response with Connection: close is in out_/write_buf_
  bool no_more_requests_ = false;   // error queued, closing response queued, or draining done
  bool draining_ = false;
  bool continue_owed_ = false;      // 100 Continue to send once earlier responses are out
  bool processing_ = false;
  bool reading_ = false;
  bool read_paused_ = false;        // stopped for a bound; bytes may wait in stash_
  bool eof_ = false;
  std::string stash_;               // unparsed input kept while paused

  TimerKind timer_kind_ = TimerKind::none;
  uint64_t timer_msg_ = 0;          // parser_.messages_begun() the deadline belongs to
  uint64_t deadline_ = 0;           // uv_now() ms
  uint64_t timer_due_ = 0;
  bool timer_armed_ = false;
};

}  // namespace aloha::http
