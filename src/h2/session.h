// HTTP/2 client session: a sans-I/O wrapper around an nghttp2 client session. Bytes from the peer go
// in through feed(), bytes for the peer come out of take_output(); the owner moves them (TLS, TCP).
// Requests beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS wait in a bounded queue.
//
// Ownership and callbacks: the Session owns each submitted request until its completion callback has
// run, exactly once. Completions never run inside nghttp2 callbacks or inside submit(): they are
// recorded and delivered at the end of feed(), take_output(), cancel(), terminate() or ping_expired().
// A completion may call submit(), cancel() or even destroy the Session.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "h2/slots.h"

struct nghttp2_session;

namespace aloha::h2 {

// Why a request produced no (complete) response. A small closed vocabulary (architecture.md).
enum class FailureKind {
  none,                // a response arrived (any status)
  reset,               // the server reset the stream (RST_STREAM); error_code says why
  goaway_unprocessed,  // never processed by the server (GOAWAY above last-stream-id, REFUSED_STREAM,
                       // or queued when GOAWAY arrived): safe to replay (RFC 9113 §6.8, §8.7)
  connection_lost,     // the connection failed while the request was open; see request_sent
  timeout,             // cancelled by the owner's deadline
};

const char* failure_name(FailureKind kind);

struct H2Header {
  std::string name;  // lower-case (HTTP/2 requires it)
  std::string value;
  // When set, sent instead of `value`: a long value repeated on many requests (the APNs JWT) is
  // shared instead of copied into each request.
  std::shared_ptr<const std::string> shared_value = {};
  // A value unique to this request (APNs' apns-id): sent as a literal "never indexed" (RFC 7541
  // §6.2.3) so it does not take a place in the HPACK dynamic table per request, pushing out the
  // entries that do repeat (authorization, apns-topic) and costing a table insert each time.
  bool no_index = false;

  std::string_view value_view() const { return shared_value ? std::string_view(*shared_value) : std::string_view(value); }
};

struct H2Request {
  std::string method = "POST";
  std::string path;
  std::string authority;           // host[:port]
  std::vector<H2Header> headers;   // sent in this order after the pseudo-headers (HPACK-friendly)
  std::string body;
  // When set, sent instead of `body`: one immutable buffer shared by every attempt (and every
  // device of a notify) instead of a copy per request.
  std::shared_ptr<const std::string> shared_body = {};

  std::string_view body_data() const { return shared_body ? std::string_view(*shared_body) : std::string_view(body); }
};

struct H2Response {
  uint64_t request_id = 0;              // as returned by Session::submit()
  int status = 0;                       // 0 on failure
  FailureKind failure = FailureKind::none;
  uint32_t error_code = 0;              // RST_STREAM / GOAWAY error code when relevant
  bool request_sent = false;            // HEADERS of the request were handed to the transport
  bool body_truncated = false;          // body exceeded SessionOptions::max_response_body
  std::vector<H2Header> headers;        // response headers (bounded), names lower-case
  std::string body;                     // at most max_response_body bytes
  // On failure (failure != none): the request as it was submitted, handed back so the owner can
  // replay it (GOAWAY, REFUSED_STREAM) without keeping a copy of every request it sends.
  std::optional<H2Request> request;

  // First header with this lower-case name, or nullptr.
  const std::string* header(std::string_view name) const;
};

// Receives the response by mutable reference: nobody reads it after the call, so a callee (the
// pool) may adjust or move from it instead of copying headers and body.
using Completion = std::function<void(H2Response&)>;

struct SessionOptions {
  size_t max_request_body = 64 * 1024;
  size_t max_response_body = 64 * 1024;
  size_t max_response_headers = 64;          // further headers are dropped
  // When non-empty, only response headers with these (lower-case) names are kept: a pusher that
  // reads only retry-after then stores nothing per response (no list, no copied values).
  std::vector<std::string> keep_response_headers;
  size_t max_queued = 1024;                  // requests waiting for a stream slot
  uint32_t max_concurrent_cap = 1000;        // our own cap on open streams
  // Streams opened before the server's first SETTINGS frame arrived (APNs then grants 1).
  uint32_t streams_before_settings = 1;
  int32_t stream_window = 1 << 20;           // SETTINGS_INITIAL_WINDOW_SIZE we advertise
  int32_t connection_window = 16 << 20;      // connection-level receive window
  size_t max_output_chunk = 256 * 1024;      // take_output() returns at most about this much
};

class Session {
 public:
  explicit Session(SessionOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Queues a request, taking it over. Returns a request id (> 0), or 0 when refused (body too
  // large, queue full, GOAWAY received, session failed); on refusal `done` is never called and
  // `request` is left as it was, so the caller may send it elsewhere.
  uint64_t submit(H2Request&& request, Completion done);

  // Fails one request with FailureKind::timeout (resetting its stream with CANCEL if open).
  // Returns false when the id is unknown (already completed). Delivers the completion before
  // returning.
  bool cancel(uint64_t request_id);

  // Bytes received from the server. False when the connection is unusable (malformed input,
  // protocol error): all requests are then failed and the owner should flush output and close.
  bool feed(const uint8_t* data, size_t len);

  // Whether take_output() has bytes to hand to the transport.
  bool want_write() const;
  // Appends pending bytes to `out` (at most about max_output_chunk, or `max` when smaller: it
  // stops after the frame that reaches it); returns how many.
  size_t take_output(std::string& out, size_t max = SIZE_MAX);

  // Sends a PING (one outstanding at a time). The owner calls it when idle and calls ping_expired()
  // when its ack deadline passes while ping_outstanding() is still true.
  void ping();
  bool ping_outstanding() const { return ping_outstanding_; }
  void ping_expired() { terminate(FailureKind::connection_lost); }

  // Fails every open and queued request with `kind` (the transport died). Idempotent.
  void terminate(FailureKind kind = FailureKind::connection_lost);

  // Graceful close: send GOAWAY, accept no new requests; open ones may still finish.
  void shutdown();

  // Gives back memory kept for the next burst: nghttp2's block cache, the serialized-output
  // buffer, the completion batch, and (with no request pending) the request slots. The owner
  // calls it when the connection has been quiet for a while; the next burst allocates afresh.
  // Not from inside a completion.
  void release_idle_memory();
  // Bytes currently kept for reuse (block cache, output and completion buffers, stream slots);
  // diagnostics and tests.
  size_t idle_capacity() const;

  // True while new requests are accepted (no GOAWAY either way, not failed).
  bool accepting() const { return !failed_ && !goaway_received_ && !shutdown_; }
  bool failed() const { return failed_; }
  // The server's first SETTINGS frame arrived (its stream limit is known).
  bool settings_received() const { return settings_received_; }
  bool goaway_received() const { return goaway_received_; }
  int32_t goaway_last_stream_id() const { return goaway_last_stream_id_; }
  // The session has nothing left to do (failed, or GOAWAY and no request left).
  bool finished() const;
  size_t active() const { return active_; }    // open streams
  size_t queued() const { return queue_.size(); }
  size_t pending() const { return slots_.live(); }  // active + queued
  // Streams allowed right now (server setting capped by ours).
  uint32_t max_concurrent() const;
  // How many more requests submit() would start immediately.
  size_t free_slots() const;

 private:
  struct Stream;
  struct Trampolines;
  class BlockCache;

  void start_queued();
  bool start_stream(Stream* s);
  void finish(Stream* s, FailureKind kind, uint32_t error_code);
  void deliver();
  void fail_all(FailureKind kind);
  Stream* by_stream_id(int32_t stream_id) const;
  Stream* by_request_id(uint64_t request_id) const;
  void release(Stream* s);

  SessionOptions opt_;
  std::unique_ptr<BlockCache> cache_;  // nghttp2's allocator; outlives ng_ (see ~Session)
  nghttp2_session* ng_ = nullptr;
  // Every unfinished request sits in a reused slot (slots.h): looking one up by request id is an
  // index plus a check, and Stream objects are not allocated per request. Open streams are found
  // through nghttp2's stream user data.
  SlotTable<Stream> slots_;
  std::deque<Stream*> queue_;                                       // waiting for a slot
  std::vector<std::pair<Completion, H2Response>> done_;             // recorded, not yet delivered
  size_t active_ = 0;
  bool settings_received_ = false;
  bool goaway_received_ = false;
  int32_t goaway_last_stream_id_ = 0;
  bool shutdown_ = false;
  bool failed_ = false;
  bool ping_outstanding_ = false;
  bool local_goaway_pending_ = false;  // nghttp2 queued a GOAWAY on its own (protocol error)
  std::string pending_out_;            // serialized inside feed(), handed out by take_output()
  int delivering_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aloha::h2
