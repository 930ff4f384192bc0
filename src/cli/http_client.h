// Blocking HTTP/1.1 client for the command-line tools and the tests (never the daemon: it blocks).
// http_request() does one request on a fresh connection (Connection: close), over plain TCP or,
// for https:// URLs, over a net::TlsSession driven on the same socket; HttpConnection keeps a
// connection open for keep-alive and pipelining tests. Every read and write is bounded in time
// and every buffer in size; nothing here throws and nothing calls back.
#pragma once
#include <cstdint>
#include <memory>
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

// Parts of an http:// or https:// URL. host is without brackets for IPv6 ("::1"); target is
// path + query ("/" when the URL has no path).
struct Url {
  std::string host;
  uint16_t port = 80;   // 443 by default when tls
  std::string target;
  bool tls = false;     // https://
};
// Parses "http://host[:port][/path][?query]" (IPv6 as "[::1]") and, when allow_https, also
// "https://..."; false for anything else (user-info, bad port; fragments are cut off).
bool parse_url(std::string_view url, Url& out, bool allow_https = false);

// Transport settings for https:// URLs (ignored for http://).
struct HttpOptions {
  // PEM bundle the server certificate must chain to; empty = the system bundle
  // (/etc/ssl/certs/ca-certificates.crt). Verification (chain + host name) is always on.
  std::string ca_file;
};

// url: http(s)://host:port/path?query (IPv6 [::1]). getaddrinfo with AI_ADDRCONFIG, every address
// tried in order; connect/read timeouts; Content-Length and chunked responses; Connection: close.
// https: TLS with SNI = host, ALPN http/1.1, certificate verified against opts.ca_file (names
// only with mbedTLS 2.28: an IP-literal host fails verification); a failure reads
// "TLS handshake with HOST failed: certificate verify failed: ...".
// timeout_ms bounds each connect attempt, the TLS handshake, and the exchange after it.
HttpResult http_request(const std::string& method, const std::string& url,
                        const std::vector<http::Header>& headers, const std::string& body,
                        int timeout_ms, const HttpOptions& opts = {});

// "Basic <base64(user:password)>" (RFC 7617).
std::string basic_auth(std::string_view user, std::string_view password);

// Bound on a response's head and body; larger responses fail with an error.
inline constexpr size_t kMaxResponseHead = 64 * 1024;
inline constexpr size_t kMaxResponseBody = 64 * 1024 * 1024;

// One client connection, kept open across requests. Not copyable; movable. The socket (and the
// TLS session, if start_tls() ran) is closed by close() or the destructor. Bytes read beyond one
// response stay buffered for the next read_response() (pipelining). The request writer and the
// response parser are the same for both transports: they only call send_all() and fill(), which
// go to the socket directly or through the TLS session.
class HttpConnection {
 public:
  HttpConnection();
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  HttpConnection(HttpConnection&& other) noexcept;
  HttpConnection& operator=(HttpConnection&& other) noexcept;

  // Resolves host (getaddrinfo, AI_ADDRCONFIG) and tries every address in order, each for at most
  // timeout_ms. false (see error()) when none connected.
  bool connect(const std::string& host, uint16_t port, int timeout_ms);
  bool is_open() const { return fd_ >= 0; }
  // After connect(): TLS handshake on the connection within timeout_ms (SNI and the name checked
  // against the certificate = host; ALPN http/1.1; CA = opts.ca_file or the system bundle). Later
  // requests and responses go through TLS. false (see error(); the connection is closed) on
  // failure, e.g. "TLS handshake with localhost failed: certificate verify failed: ...".
  bool start_tls(const std::string& host, const HttpOptions& opts, int timeout_ms);
  bool is_tls() const { return tls_ != nullptr; }
  // Closes the socket; with TLS a close_notify is sent first if the socket takes it at once.
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
  struct Tls;  // TlsContext + TlsSession (http_client.cpp); the session is destroyed first

  // Reads more (plaintext) bytes into buf_ before the deadline (monotonic ms). 1: got bytes,
  // 0: EOF, -1: error. Through the TLS session when there is one.
  int fill(int64_t deadline_ms);
  bool read_line(std::string& line, int64_t deadline_ms, size_t max_len);
  // The socket itself: send every byte / receive up to cap bytes (n set) before the deadline.
  // recv_raw: 1 got bytes, 0 EOF or reset, -1 error (error_ set).
  bool send_raw(std::string_view bytes, int64_t deadline_ms);
  int recv_raw(char* buf, size_t cap, size_t& n, int64_t deadline_ms);
  // Sends all ciphertext the TLS session has ready.
  bool flush_tls(int64_t deadline_ms);

  int fd_ = -1;
  uint16_t port_ = 0;
  std::unique_ptr<Tls> tls_;
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
