// Request/reply model of the mock upstream: one HTTP/2 request as a handler sees it, the reply a
// handler chooses (an answer, or a fault such as RST_STREAM or a dropped connection), and the
// Router that picks a handler by path prefix. Handlers run on the loop thread after nghttp2 has
// returned (never inside its callbacks); they only fill a Reply, the connection carries it out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace aloha::mock {

// One request. Objects are pooled per connection and reused (clear() keeps capacity), so the hot
// path does not allocate once warm.
struct Request {
  std::string method;
  std::string path;                 // :path as sent (query included)
  std::vector<http::Header> headers;  // regular headers, names lower-case; first header_count used
  size_t header_count = 0;
  std::string body;                 // at most kMaxBodyKept bytes are kept...
  size_t body_bytes = 0;            // ...but every received byte is counted here
  bool client_cert_verified = false;  // the TLS peer presented a certificate signed by --client-ca

  static constexpr size_t kMaxBodyKept = 64 * 1024;
  static constexpr size_t kMaxHeaders = 64;

  const std::string* header(std::string_view lname) const;
  void add_header(std::string_view name, std::string_view value);  // ignored beyond kMaxHeaders
  void add_body(const uint8_t* data, size_t len);
  void clear();
};

// What the connection does with a request.
enum class Action : uint8_t {
  respond,          // send status/headers/body (after delay_ms)
  reset_stream,     // RST_STREAM INTERNAL_ERROR, no answer
  drop_connection,  // close the TCP connection at once, mid-stream, without GOAWAY
  hang,             // never answer (the stream stays open until the client gives up)
  goaway,           // GOAWAY with last-stream-id below this stream: this one and later are unprocessed
};

struct Reply {
  Action action = Action::respond;
  int status = 200;
  std::string apns_id;       // sent as `apns-id` when non-empty
  std::string content_type;  // sent when non-empty
  std::string retry_after;   // sent as `retry-after` when non-empty (429/503 answers)
  std::string body;
  int64_t delay_ms = 0;      // respond this much later (loop time)
  bool token_auth_success = false;  // 200 under JWT auth: raises SETTINGS_MAX_CONCURRENT_STREAMS
  std::string goaway_debug;  // debug data of an Action::goaway frame

  void clear();
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Fills `reply` (cleared by the caller). Must not throw; runs on the loop thread.
  virtual void handle(const Request& req, Reply& reply) = 0;
};

// Path-prefix router: the first registered prefix that `path` starts with wins. Handlers are owned
// by the caller and must outlive the router. Route ids index the per-path statistics.
class Router {
 public:
  // Returns the route id.
  size_t add(std::string prefix, std::string name, Handler* handler);
  // Route id for path, or npos (no route: the connection answers 404 BadPath).
  size_t find(std::string_view path) const;
  Handler* handler(size_t id) const { return routes_[id].handler; }
  const std::string& name(size_t id) const { return routes_[id].name; }
  size_t size() const { return routes_.size(); }
  static constexpr size_t npos = static_cast<size_t>(-1);

 private:
  struct Route {
    std::string prefix, name;
    Handler* handler;
  };
  std::vector<Route> routes_;
};

// {"reason":"<reason>"} — the APNs error body shape.
std::string reason_json(std::string_view reason);

}  // namespace aloha::mock
