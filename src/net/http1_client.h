// One-shot HTTP/1.1 client over TLS (or cleartext) on libuv: the fallback transport for the FCM
// OAuth token exchange when the token host does not speak HTTP/2 (issue 4). Connector (DNS + TCP)
// → TlsSession (ALPN offered by the caller's TlsContext, e.g. {h2, http/1.1}) → one request with
// `Connection: close` → the response parsed by Http1ResponseParser (llhttp; Content-Length,
// chunked or close-delimited; bounded head and body) → done. If the server selects ALPN "h2" the
// request is not sent and the result says so (Http1Failure::h2_selected), so the caller can use
// its HTTP/2 path instead. Http1ResponseParser and format_http1_request() are sans-I/O.
//
// Lifetime (architecture.md): Http1Client is heap-allocated and frees itself once `done` has run
// (or after cancel()) and every libuv handle/request it owns has completed. `done` runs exactly
// once, on the loop thread, never inside start(); after cancel() it never runs.
#pragma once
#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"
#include "net/tls_stream.h"

namespace aloha::net {

class TlsContext;
class Connector;

// ---- sans-I/O -------------------------------------------------------------------------------

// Parses one HTTP/1.x response (llhttp, HTTP_RESPONSE mode). Interim 1xx responses are skipped.
// Bounds: the status line + headers ≤ max_head bytes and ≤ kMaxHeaders fields, the de-chunked
// body ≤ max_body bytes; exceeding one fails the parse (too_large() tells).
class Http1ResponseParser {
 public:
  enum class State { reading, complete, failed };
  static constexpr size_t kMaxHeaders = 100;

  explicit Http1ResponseParser(size_t max_body = 64 * 1024, size_t max_head = 16 * 1024);
  Http1ResponseParser(const Http1ResponseParser&) = delete;
  Http1ResponseParser& operator=(const Http1ResponseParser&) = delete;

  // Bytes from the peer. Bytes after the end of the response are ignored.
  State feed(const char* data, size_t len);
  State feed(std::string_view s) { return feed(s.data(), s.size()); }
  // The peer closed the connection: completes a close-delimited body; anything else still
  // reading fails ("connection closed before the response was complete").
  State finish();

  State state() const { return state_; }
  int status() const { return status_; }                      // 0 until the status line is read
  const std::vector<http::Header>& headers() const { return headers_; }  // names lower-cased
  const std::string* header(std::string_view lname) const;
  const std::string& body() const { return body_; }
  const std::string& error() const { return error_; }         // empty unless failed
  bool too_large() const { return too_large_; }

 private:
  static int on_status_cb(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_field_cb(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_value_cb(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_value_complete_cb(llhttp_t* p) noexcept;
  static int on_headers_complete_cb(llhttp_t* p) noexcept;
  static int on_body_cb(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_message_complete_cb(llhttp_t* p) noexcept;
  static const llhttp_settings_t settings_;

  int fail(std::string why, bool too_large = false);
  bool count_head(size_t len);

  llhttp_t parser_{};
  size_t max_body_, max_head_;
  size_t head_bytes_ = 0;
  State state_ = State::reading;
  int status_ = 0;
  bool interim_ = false;  // inside a 1xx response
  std::vector<http::Header> headers_;
  std::string field_, value_;
  std::string body_;
  std::string error_;
  bool too_large_ = false;
};

struct Http1Request {
  std::string host;        // connect target; SNI and the certificate name with TLS
  uint16_t port = 443;
  std::string authority;   // Host header; empty: host (bracketed if IPv6) plus ":port" unless 443
  std::string method = "POST";
  std::string path = "/";  // origin-form request-target
  std::vector<http::Header> headers;  // extra fields (e.g. content-type); Host, Content-Length
                                      // and Connection are added
  std::string body;
  int64_t timeout_ms = 15000;          // overall: connect + TLS + request + whole response
  int64_t connect_timeout_ms = 10000;  // per address tried (capped by timeout_ms)
  size_t max_body = 64 * 1024;         // response body bound
};

// The request bytes: "<method> <path> HTTP/1.1", Host, the extra headers, Content-Length,
// Connection: close, blank line, body. Empty + err when a field would break the framing (CR/LF or
// NUL in the method, path, a header name or value; a path not starting with '/'; a body over
// kMaxRequestBody).
inline constexpr size_t kMaxRequestBody = 1u << 20;
std::string format_http1_request(const Http1Request& req, std::string& err);

// ---- the libuv client ------------------------------------------------------------------------

enum class Http1Failure {
  none,         // a complete response was read (any status)
  bad_request,  // format_http1_request refused the request
  connect,      // DNS or TCP failed
  tls,          // TLS handshake or record failure other than the certificate
  certificate,  // the server certificate failed verification (chain or host name)
  h2_selected,  // the server picked ALPN "h2": nothing was sent; use the HTTP/2 path
  timeout,      // timeout_ms passed before the response was complete
  closed,       // the peer closed before the response was complete
  protocol,     // the response is not valid HTTP/1.x
  too_large,    // the response head or body exceeds its bound
};
const char* http1_failure_name(Http1Failure f);

struct Http1Response {
  Http1Failure failure = Http1Failure::none;
  int status = 0;                     // valid when failure == none
  std::vector<http::Header> headers;  // names lower-cased
  std::string body;                   // de-chunked
  std::string alpn;                   // negotiated protocol ("" without TLS or without ALPN)
  std::string error;                  // human-readable when failure != none (never body content)
};

class Http1Client : private StreamListener {
 public:
  using Done = std::function<void(const Http1Response& response)>;

  // tls == nullptr: cleartext HTTP/1.1. tls must stay alive until `done` has run or cancel()
  // was called (not longer). Never calls done inside start().
  static Http1Client* start(uv_loop_t* loop, const TlsContext* tls, Http1Request request, Done done);

  // `done` will not run; the connection is closed and the object frees itself later. Safe to
  // call from inside `done` (then a no-op).
  void cancel();

  Http1Client(const Http1Client&) = delete;
  Http1Client& operator=(const Http1Client&) = delete;

 private:
  enum class Phase { connecting, handshaking, exchanging, finished };
  Http1Client(uv_loop_t* loop, const TlsContext* tls, Http1Request request, Done done);
  ~Http1Client() override;

  void on_connected(int status, uv_tcp_t* tcp, const std::string& error);
  void send_request();
  void finish(Http1Failure failure, std::string error);
  void shut_down();
  void maybe_free();
  static const char* phase_text(Phase p);

  // StreamListener: the TLS transport's events.
  void on_stream_ready() override;
  void on_stream_data(const char* data, size_t len) override;
  void on_stream_eof(bool close_notify) override;
  void on_stream_error(StreamFailure kind, const std::string& message) override;
  void on_stream_closed() override;

  static void timer_cb(uv_timer_t* t) noexcept;

  uv_loop_t* loop_;
  const TlsContext* tls_ctx_;
  Http1Request req_;
  Done done_;
  Phase phase_ = Phase::connecting;
  std::string request_bytes_;
  Http1Failure early_failure_ = Http1Failure::none;  // set by start(); reported from the timer
  std::string early_error_;
  Connector* connector_ = nullptr;
  TlsStream* stream_ = nullptr;  // TCP (+ TLS) once connected; frees itself after close()
  std::string alpn_;             // kept from the handshake: the stream drops its session on close
  uv_timer_t timer_{};
  int open_ = 0;  // timer + stream; the last one to finish frees us
  std::unique_ptr<Http1ResponseParser> parser_;
};

}  // namespace aloha::net
