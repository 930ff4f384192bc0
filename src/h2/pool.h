// Pool: the HTTP/2 connections for one (credential, endpoint). Sends each request on a connected
// connection with a free stream slot, opens another connection (up to max_connections) when all
// are saturated, queues (bounded) otherwise, reconnects with jittered backoff, replays requests
// the server never processed (GOAWAY above last-stream-id, REFUSED_STREAM, connection lost before
// the request went out) once on another connection, and enforces a deadline per request.
//
// Ownership: the pool owns its connections (they free themselves after on_conn_closed). Each
// submitted request's completion runs exactly once, on the loop thread, never inside submit();
// after the pool is destroyed no completion runs. The header provider is called every time a
// request is handed to a connection, so e.g. the APNs JWT can change without reconnecting.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "h2/connection.h"
#include "h2/slots.h"
#include "net/backoff.h"

namespace aloha::h2 {

struct PoolOptions {
  size_t max_connections = 2;
  size_t max_queued = 10000;          // requests waiting for any connection
  int max_replays = 1;                // per request, for unprocessed / not-sent requests
  int64_t default_timeout_ms = 30000; // used when submit() gets timeout_ms <= 0
  net::BackoffOptions backoff{1000, 60000, net::Jitter::full};
};

struct PoolStats {
  size_t queued = 0;        // waiting in the pool
  size_t in_flight = 0;     // handed to a connection
  size_t connections = 0;   // not closed
  size_t connected = 0;     // ready for requests
  uint64_t replays = 0;
  uint64_t connect_failures = 0;
};

class Pool final : public ConnListener {
 public:
  // Creates a connection reporting to the given listener (production: Connection::create).
  using ConnFactory = std::function<Conn*(ConnListener* listener)>;
  // Arms a one-shot wake-up `delay_ms` from now that calls on_timer(), replacing any earlier one.
  using Scheduler = std::function<void(int64_t delay_ms)>;
  // Appends headers (e.g. authorization) placed before the request's own headers.
  using HeaderProvider = std::function<void(std::vector<H2Header>& headers)>;

  Pool(PoolOptions options, const Clock& clock, ConnFactory factory, Scheduler scheduler,
       HeaderProvider headers = {}, net::Backoff::RandomSource random = {});
  ~Pool() override;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Production wiring: connections via Connection::create on `loop`, a uv timer for deadlines
  // and backoff, the system clock. tls may be nullptr (cleartext, tests only) and must outlive the pool.
  static std::unique_ptr<Pool> create(uv_loop_t* loop, const net::TlsContext* tls,
                                      ConnectionOptions conn_options, PoolOptions options,
                                      HeaderProvider headers = {});

  // Returns a request id, or 0 when the queue is full or the pool is closed (no callback then:
  // the caller answers 503/429 itself). timeout_ms <= 0 uses the default.
  uint64_t submit(H2Request request, int64_t timeout_ms, Completion done);

  // Deadlines and reconnect backoff; called by the scheduler's timer.
  void on_timer();

  // Fails every request (FailureKind::connection_lost, status 0) and closes the connections.
  void close();

  PoolStats stats() const;

  // ConnListener
  void on_conn_ready(Conn* c) override;
  void on_conn_capacity(Conn* c) override;
  void on_conn_closed(Conn* c, const std::string& error) override;
  // A connection went quiet: with no request in the pool, the request slots of the busiest
  // moment are given back (they are reallocated by the next burst).
  void on_conn_idle(Conn* c) override;
  // Bytes kept for reuse (request slots, deadline heap); diagnostics and tests.
  size_t idle_capacity() const;

 private:
  struct Req {
    uint64_t id = 0;
    // Owned here while queued; moved into the connection when sent (no copy per push) and
    // handed back by a failure, so a replay needs no copy either.
    H2Request request;
    size_t provider_headers = 0;  // leading headers added by the provider (stripped on replay)
    Completion done;
    int64_t deadline_ms = 0;
    int replays = 0;
    Conn* conn = nullptr;         // set while handed to a connection
    uint64_t conn_req_id = 0;
    Conn* failed_on = nullptr;    // last connection that gave it back unprocessed
    size_t heap_pos = 0;          // index in deadlines_ while in use
    bool in_use = false;
  };
  struct ConnInfo {
    Conn* conn = nullptr;
    bool ready = false;
  };

  void dispatch();
  bool send(Req* r, Conn* c);
  void strip_provider_headers(Req* r);
  void on_response(uint64_t id, H2Response& resp);
  void complete(uint64_t id, H2Response& resp);
  void maybe_open_connection();
  void reschedule();
  ConnInfo* find(Conn* c);
  Req* lookup(uint64_t id) const;
  void release(Req* r);
  // deadlines_: a binary min-heap on deadline_ms whose entries know their position, so a
  // completed request leaves it in O(log n) without a node allocation per request.
  bool heap_less(size_t a, size_t b) const { return deadlines_[a]->deadline_ms < deadlines_[b]->deadline_ms; }
  void heap_swap(size_t a, size_t b);
  void heap_up(size_t i);
  void heap_down(size_t i);
  void heap_push(Req* r);
  void heap_erase(Req* r);

  PoolOptions opt_;
  const Clock& clock_;
  ConnFactory factory_;
  Scheduler scheduler_;
  HeaderProvider headers_;
  net::Backoff backoff_;
  // Requests live in reused slots (slots.h): a completion's id is resolved by an index and a check
  // instead of a map entry allocated per request.
  SlotTable<Req> slots_;
  std::deque<uint64_t> queue_;   // ids waiting for a connection, oldest first
  std::vector<Req*> deadlines_;  // min-heap on deadline_ms, for the earliest wake-up
  std::vector<ConnInfo> conns_;
  int64_t next_connect_ms_ = 0;  // backoff: no new connection before this
  int64_t scheduled_at_ms_ = -1;
  bool closed_ = false;
  bool dispatching_ = false;
  bool destroying_ = false;  // completions delivered while ~Pool closes connections are ignored
  uint64_t replays_ = 0;
  uint64_t connect_failures_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::function<void()> on_destroy_;  // production: closes the uv timer
};

}  // namespace aloha::h2
