// Blocking HTTP/1.1 client for the command-line tools and the tests (never the daemon: it blocks).
// http_request() does one request on a fresh connection (Connection: close); HttpConnection keeps
// a connection open for keep-alive and pipelining tests. Every read and write is bounded in time
// and every buffer in size; nothing here throws.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace aloha::cli {

struct HttpResult {
  int status = 0;                      // 0 when no response was read (see error)
  std::vector<http::Header> headers;   // names lower-cased, values trimmed
  std::string body;                    // de-chunked
  std::string error;                   // empty on success; set on any transport/parse failure

  // First header with this lower-case name, or nullptr.
  const std::string* header(std::string_view lname) const;
};

// Parts of an http:// URL. host is without brackets for IPv6 ("::1"); target is path + query
// ("/" when the URL has no path).
struct Url {
  std::string host;
  uint16_t port = 80;
  std::string target;
};
// Parses "http://host[:port][/path][?query]" (IPv6 as "[::1]"); false for anything else
// (https, user-info, bad port, fragments are cut off).
bool parse_url(std::string_view url, Url& out);

// url: http://host:port/path?query (IPv6 [::1]). getaddrinfo with AI_ADDRCONFIG, every address
// tried in order; connect/read timeouts; Content-Length and chunked responses; Connection: close.
// timeout_ms bounds each connect attempt and the whole exchange after connecting.
HttpResult http_request(const std::string& method, const std::string& url,
                        const std::vector<http::Header>& headers, const std::string& body,
                        int timeout_ms);

// "Basic <base64(user:password)>" (RFC 7617).
std::string basic_auth(std::string_view user, std::string_view password);

// Bound on a response's head and body; larger responses fail with an error.
inline constexpr size_t kMaxResponseHead = 64 * 1024;
inline constexpr size_t kMaxResponseBody = 64 * 1024 * 1024;

// One client connection, kept open across requests. Not copyable; movable. The socket is closed
// by close() or the destructor. Bytes read beyond one response stay buffered for the next
// read_response() (pipelining).
class HttpConnection {
 public:
  HttpConnection() = default;
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  HttpConnection(HttpConnection&& other) noexcept;
  HttpConnection& operator=(HttpConnection&& other) noexcept;

  // Resolves host (getaddrinfo, AI_ADDRCONFIG) and tries every address in order, each for at most
  // timeout_ms. false (see error()) when none connected.
  bool connect(const std::string& host, uint16_t port, int timeout_ms);
  bool is_open() const { return fd_ >= 0; }
  void close();
  int fd() const { return fd_; }
  const std::string& error() const { return error_; }

  // Writes all bytes within timeout_ms; false on error, timeout or a closed peer.
  bool send_all(std::string_view bytes, int timeout_ms);

  // Reads exactly one response. head: the request was HEAD (no body follows). A response without
  // Content-Length or chunked framing is read until the peer closes.
  HttpResult read_response(int timeout_ms, bool head = false);

  // Sends one request (Host and Content-Length added; the caller's headers as given) and reads
  // its response. target is the request-target ("/path?query").
  HttpResult request(const std::string& method, const std::string& target,
                     const std::vector<http::Header>& headers, const std::string& body,
                     int timeout_ms);

  // Waits until the peer closes the connection. true on EOF or reset within timeout_ms; any data
  // received meanwhile is discarded (counted in *discarded when given).
  bool wait_closed(int timeout_ms, size_t* discarded = nullptr);

 private:
  // Reads more bytes into buf_ before the deadline (monotonic ms). 1: got bytes, 0: EOF, -1: error.
  int fill(int64_t deadline_ms);
  bool read_line(std::string& line, int64_t deadline_ms, size_t max_len);

  int fd_ = -1;
  std::string host_header_;
  std::string buf_;
  size_t pos_ = 0;   // start of unread bytes in buf_
  std::string error_;
};

// Builds a request in wire format (used by HttpConnection::request; handy for pipelining tests).
std::string format_request(const std::string& method, const std::string& target,
                           const std::string& host_header, const std::vector<http::Header>& headers,
                           const std::string& body);

}  // namespace aloha::cli
