#include "cli/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include "core/encoding.h"
#include "net/tls.h"

namespace aloha::cli {

namespace {

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

int remaining_ms(int64_t deadline) {
  int64_t left = deadline - now_ms();
  if (left < 0) return 0;
  return left > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(left);
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Connects a non-blocking socket to one address within timeout_ms; returns the fd (blocking mode
// off, CLOEXEC) or -1 with err set.
int connect_one(const addrinfo* ai, int timeout_ms, std::string& err) {
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
  if (rc != 0 && errno != EINPROGRESS) {
    err = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
      int n = ::poll(&p, 1, remaining_ms(deadline));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n == 0 ? "connect: timed out" : std::string("poll: ") + std::strerror(errno);
        ::close(fd);
        return -1;
      }
      break;
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr != 0) {
      err = std::string("connect: ") + std::strerror(soerr);
      ::close(fd);
      return -1;
    }
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t& out, int base = 10) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return false;
    if (v > (max - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base)) return false;
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  out = v;
  return true;
}

}  // namespace

const std::string* HttpResult::header(std::string_view lname) const {
  for (const auto& h : headers)
    if (h.name == lname) return &h.value;
  return nullptr;
}

std::string basic_auth(std::string_view user, std::string_view password) {
  std::string creds(user);
  creds += ':';
  creds.append(password);
  return "Basic " + enc::base64_encode(creds);  // RFC 7617 §2
}

bool parse_url(std::string_view url, Url& out, bool allow_https) {
  auto has_scheme = [&](std::string_view scheme) {
    return url.size() >= scheme.size() && lower(url.substr(0, scheme.size())) == scheme;
  };
  bool tls = false;
  if (has_scheme("http://")) {
    url.remove_prefix(7);
  } else if (allow_https && has_scheme("https://")) {
    url.remove_prefix(8);
    tls = true;
  } else {
    return false;
  }
  if (auto hash = url.find('#'); hash != std::string_view::npos) url = url.substr(0, hash);
  size_t end = url.find_first_of("/?");
  std::string_view authority = url.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view{} : url.substr(end);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  Url u;
  u.tls = tls;
  u.port = tls ? 443 : 80;  // RFC 9110 §4.2.1, §4.2.2
  std::string_view port_part;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      port_part = after.substr(1);
      if (port_part.empty()) return false;
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      port_part = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
      if (port_part.empty()) return false;
    }
    if (authority.empty()) return false;
    u.host = std::string(authority);
  }
  if (!port_part.empty()) {
    uint64_t p = 0;
    if (!parse_uint(port_part, 65535, p) || p == 0) return false;
    u.port = static_cast<uint16_t>(p);
  }
  // Built with assign/append: GCC 12 warns falsely (-Wrestrict, bug 105329) on "lit" + string.
  if (rest.empty() || rest.front() == '?') u.target.assign(1, '/');
  u.target.append(rest);
  out = std::move(u);
  return true;
}

std::string format_request(const std::string& method, const std::string& target,
                           const std::string& host_header, const std::vector<http::Header>& headers,
                           const std::string& body) {
  std::string req;
  req.reserve(256 + body.size());
  req += method;
  req += ' ';
  req += target;
  req += " HTTP/1.1\r\n";
  bool has_host = false, has_length = false;
  for (const auto& h : headers) {
    std::string ln = lower(h.name);
    if (ln == "host") has_host = true;
    if (ln == "content-length" || ln == "transfer-encoding") has_length = true;
  }
  if (!has_host) req += "Host: " + host_header + "\r\n";
  for (const auto& h : headers) req += h.name + ": " + h.value + "\r\n";
  // A body-less GET/HEAD/OPTIONS sends no Content-Length (RFC 9110 §8.6: a user agent should not
  // send it then); anything else states its length, even 0, so the server need not guess.
  bool bodyless = body.empty() && (method == "GET" || method == "HEAD" || method == "OPTIONS");
  if (!has_length && !bodyless) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  req += body;
  return req;
}

// The session refers to the context, so it is declared (and destroyed) after it.
struct HttpConnection::Tls {
  std::unique_ptr<net::TlsContext> ctx;
  std::unique_ptr<net::TlsSession> session;
};

namespace {
std::string host_header(const std::string& host, uint16_t port, uint16_t default_port) {
  // Built with append: GCC 12 warns falsely (-Wrestrict, bug 105329) on "lit" + string.
  const bool v6 = host.find(':') != std::string::npos;
  std::string h;
  if (v6) h.assign(1, '[');
  h.append(host);
  if (v6) h.push_back(']');
  if (port != default_port) h.append(1, ':').append(std::to_string(port));
  return h;
}
}  // namespace

HttpConnection::HttpConnection() = default;
HttpConnection::~HttpConnection() { close(); }

HttpConnection::HttpConnection(HttpConnection&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      port_(std::exchange(o.port_, 0)),
      tls_(std::move(o.tls_)),
      host_header_(std::move(o.host_header_)),
      buf_(std::move(o.buf_)),
      pos_(std::exchange(o.pos_, 0)),
      error_(std::move(o.error_)) {}

HttpConnection& HttpConnection::operator=(HttpConnection&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    port_ = std::exchange(o.port_, 0);
    tls_ = std::move(o.tls_);
    host_header_ = std::move(o.host_header_);
    buf_ = std::move(o.buf_);
    pos_ = std::exchange(o.pos_, 0);
    error_ = std::move(o.error_);
  }
  return *this;
}

void HttpConnection::close() {
  if (tls_ != nullptr && fd_ >= 0 && tls_->session->handshake_done() && !tls_->session->failed()) {
    // RFC 8446 §6.1: announce the end of our data; best effort, never waits (MSG_DONTWAIT).
    tls_->session->close_notify();
    std::string alert;
    tls_->session->take_output(alert);
    if (!alert.empty()) (void)::send(fd_, alert.data(), alert.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  tls_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
  pos_ = 0;
}

bool HttpConnection::connect(const std::string& host, uint16_t port, int timeout_ms) {
  close();
  error_.clear();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
  // AI_ADDRCONFIG hides ::1 on hosts without a non-loopback IPv6 address; a literal address is
  // still what the caller asked for, so numeric hosts are resolved without it.
  in6_addr a6{};
  in_addr a4{};
  if (::inet_pton(AF_INET6, host.c_str(), &a6) == 1 || ::inet_pton(AF_INET, host.c_str(), &a4) == 1)
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) {
    error_ = "resolve " + host + ": " + ::gai_strerror(rc);
    return false;
  }
  std::string last_err = "no addresses";
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = connect_one(ai, timeout_ms, last_err);
    if (fd >= 0) {
      fd_ = fd;
      break;
    }
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) {
    error_ = "connect " + host + ":" + port_s + ": " + last_err;
    return false;
  }
  port_ = port;
  host_header_ = host_header(host, port, 80);
  return true;
}

bool HttpConnection::start_tls(const std::string& host, const HttpOptions& opts, int timeout_ms) {
  if (fd_ < 0 || tls_ != nullptr) {
    error_ = fd_ < 0 ? "not connected" : "TLS already started";
    return false;
  }
  error_.clear();
  const int64_t deadline = now_ms() + timeout_ms;
  const std::string what = "TLS handshake with " + host;
  auto fail = [&](const std::string& why) {
    error_ = what + " failed: " + why;
    close();
    return false;
  };
  net::TlsContext::ClientOptions co;
  co.ca_file = opts.ca_file;
  co.alpn = {"http/1.1"};  // we speak nothing else; a server picking h2 is refused below
  std::string err;
  auto t = std::make_unique<Tls>();
  t->ctx = net::TlsContext::client(co, err);
  if (t->ctx == nullptr) {
    error_ = "TLS setup: " + err;  // names the CA file and mbedTLS's reason
    close();
    return false;
  }
  t->session = std::make_unique<net::TlsSession>(*t->ctx, host);  // SNI + certificate name
  tls_ = std::move(t);
  net::TlsSession& s = *tls_->session;
  char tmp[16 * 1024];
  for (;;) {
    const net::TlsStatus st = s.handshake();
    // On error the output may hold a fatal alert for the peer (tls.h): send it, then give up.
    const bool flushed = flush_tls(deadline);
    if (st == net::TlsStatus::error) return fail(s.error());
    if (!flushed) return fail(error_);
    if (st == net::TlsStatus::ok) break;
    size_t n = 0;
    const int r = recv_raw(tmp, sizeof tmp, n, deadline);
    if (r == 0) return fail("connection closed by the server");
    if (r < 0) return fail(error_);
    if (!s.feed(tmp, n)) return fail(s.error());
  }
  if (!s.alpn().empty() && s.alpn() != "http/1.1")
    return fail("server chose ALPN protocol " + s.alpn() + ", not http/1.1");
  host_header_ = host_header(host, port_, 443);
  return true;
}

bool HttpConnection::flush_tls(int64_t deadline_ms) {
  net::TlsSession& s = *tls_->session;
  // take_output() encrypts more queued plaintext as it hands output over (tls.h), so loop.
  while (s.pending_output() > 0) {
    std::string out;
    s.take_output(out);
    if (!send_raw(out, deadline_ms)) return false;
  }
  return true;
}

bool HttpConnection::send_all(std::string_view bytes, int timeout_ms) {
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  const int64_t deadline = now_ms() + timeout_ms;
  if (tls_ == nullptr) return send_raw(bytes, deadline);
  net::TlsSession& s = *tls_->session;
  // Pieces of at most 1 MiB keep the session's plaintext queue under its bound
  // (TlsSession::kMaxPendingPlaintext); each piece is flushed before the next.
  constexpr size_t kPiece = 1u << 20;
  while (!bytes.empty()) {
    const size_t n = std::min({bytes.size(), kPiece, s.write_capacity()});
    if (n == 0 || s.write(bytes.substr(0, n)) == net::TlsStatus::error) {
      error_ = "TLS write: " + (s.failed() ? s.error() : std::string("no queue space"));
      return false;
    }
    bytes.remove_prefix(n);
    if (!flush_tls(deadline)) return false;
  }
  return true;
}

bool HttpConnection::send_raw(std::string_view bytes, int64_t deadline) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      int r = ::poll(&p, 1, remaining_ms(deadline));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) {
        error_ = "send: timed out";
        return false;
      }
      if (r < 0) {
        error_ = std::string("poll: ") + std::strerror(errno);
        return false;
      }
      continue;
    }
    error_ = std::string("send: ") + std::strerror(errno);
    return false;
  }
  return true;
}

int HttpConnection::fill(int64_t deadline_ms) {
  if (fd_ < 0) {
    error_ = "not connected";
    return -1;
  }
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 64 * 1024) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  char tmp[16 * 1024];
  size_t n = 0;
  if (tls_ == nullptr) {
    const int r = recv_raw(tmp, sizeof tmp, n, deadline_ms);
    if (r == 1) buf_.append(tmp, n);
    return r;
  }
  net::TlsSession& s = *tls_->session;
  for (;;) {
    // Decrypt what was fed so far (at most one recv_raw() of ciphertext, so the plaintext
    // appended per call is bounded too); the response parser bounds buf_ as a whole.
    const size_t before = buf_.size();
    if (s.read(buf_) == net::TlsStatus::error) {
      error_ = "TLS read: " + s.error();
      return -1;
    }
    if (s.pending_output() > 0 && !flush_tls(deadline_ms)) return -1;
    if (buf_.size() > before) return 1;
    if (s.peer_closed()) return 0;
    // A TCP EOF without close_notify is taken as the end too, as for plain HTTP: the framing
    // (Content-Length, chunked) still detects a cut-short body (RFC 9112 §9.8).
    const int r = recv_raw(tmp, sizeof tmp, n, deadline_ms);
    if (r <= 0) return r;
    if (!s.feed(tmp, n)) {
      error_ = "TLS read: " + s.error();
      return -1;
    }
  }
}

int HttpConnection::recv_raw(char* tmp, size_t cap, size_t& got, int64_t deadline_ms) {
  for (;;) {
    ssize_t n = ::recv(fd_, tmp, cap, 0);
    if (n > 0) {
      got = static_cast<size_t>(n);
      return 1;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, remaining_ms(deadline_ms));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) {
        error_ = "read: timed out";
        return -1;
      }
      if (r < 0) {
        error_ = std::string("poll: ") + std::strerror(errno);
        return -1;
      }
      continue;
    }
    if (errno == ECONNRESET) return 0;
    error_ = std::string("recv: ") + std::strerror(errno);
    return -1;
  }
}

bool HttpConnection::read_line(std::string& line, int64_t deadline_ms, size_t max_len) {
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      if (nl - pos_ > max_len) {
        error_ = "response line too long";
        return false;
      }
      size_t end = nl;
      if (end > pos_ && buf_[end - 1] == '\r') --end;
      line.assign(buf_, pos_, end - pos_);
      pos_ = nl + 1;
      return true;
    }
    if (buf_.size() - pos_ > max_len) {
      error_ = "response line too long";
      return false;
    }
    int r = fill(deadline_ms);
    if (r == 0) {
      error_ = "connection closed before the response was complete";
      return false;
    }
    if (r < 0) return false;
  }
}

HttpResult HttpConnection::read_response(int timeout_ms, bool head) {
  HttpResult res;
  error_.clear();
  int64_t deadline = now_ms() + timeout_ms;
  auto fail = [&](std::string why) {
    res.status = 0;
    res.error = std::move(why);
    close();  // the stream position is unknown now
    return res;
  };
  for (;;) {  // 1xx interim responses (e.g. 100 Continue) are skipped, RFC 9110 §15.2
    res.headers.clear();
    std::string line;
    size_t head_bytes = 0;
    if (!read_line(line, deadline, kMaxResponseHead)) return fail(error_);
    // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
    if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ')
      return fail("malformed status line");
    uint64_t st = 0;
    if (!parse_uint(std::string_view(line).substr(9, 3), 999, st) || st < 100)
      return fail("malformed status line");
    res.status = static_cast<int>(st);
    for (;;) {
      if (!read_line(line, deadline, kMaxResponseHead)) return fail(error_);
      head_bytes += line.size() + 2;
      if (head_bytes > kMaxResponseHead) return fail("response head too large");
      if (line.empty()) break;
      size_t colon = line.find(':');
      if (colon == std::string::npos || colon == 0) return fail("malformed header line");
      res.headers.push_back({lower(std::string_view(line).substr(0, colon)),
                             std::string(trim(std::string_view(line).substr(colon + 1)))});
    }
    if (res.status >= 200 || res.status == 101) break;
  }

  // Body framing, RFC 9112 §6.3.
  if (head || res.status == 204 || res.status == 304 || res.status < 200) return res;
  const std::string* te = res.header("transfer-encoding");
  const std::string* cl = res.header("content-length");
  if (te != nullptr && lower(*te).find("chunked") != std::string::npos) {
    for (;;) {
      std::string line;
      if (!read_line(line, deadline, 1024)) return fail(error_);
      std::string_view size_sv = line;
      if (auto semi = size_sv.find(';'); semi != std::string_view::npos) size_sv = size_sv.substr(0, semi);
      uint64_t size = 0;
      if (!parse_uint(trim(size_sv), kMaxResponseBody, size, 16)) return fail("malformed chunk size");
      if (res.body.size() + size > kMaxResponseBody) return fail("response body too large");
      if (size == 0) {
        for (;;) {  // trailer section
          if (!read_line(line, deadline, kMaxResponseHead)) return fail(error_);
          if (line.empty()) break;
        }
        return res;
      }
      while (buf_.size() - pos_ < size + 2) {
        int r = fill(deadline);
        if (r == 0) return fail("connection closed inside a chunk");
        if (r < 0) return fail(error_);
      }
      res.body.append(buf_, pos_, size);
      if (buf_.compare(pos_ + size, 2, "\r\n") != 0) return fail("malformed chunk end");
      pos_ += size + 2;
    }
  }
  if (cl != nullptr) {
    uint64_t len = 0;
    if (!parse_uint(*cl, kMaxResponseBody, len)) return fail("bad Content-Length: " + *cl);
    while (buf_.size() - pos_ < len) {
      int r = fill(deadline);
      if (r == 0) return fail("connection closed before the body was complete");
      if (r < 0) return fail(error_);
    }
    res.body.assign(buf_, pos_, len);
    pos_ += len;
    return res;
  }
  // Neither: the body runs until the server closes.
  for (;;) {
    if (buf_.size() - pos_ > kMaxResponseBody) return fail("response body too large");
    int r = fill(deadline);
    if (r == 0) break;
    if (r < 0) return fail(error_);
  }
  res.body.assign(buf_, pos_, std::string::npos);
  pos_ = buf_.size();
  return res;
}

HttpResult HttpConnection::request(const std::string& method, const std::string& target,
                                   const std::vector<http::Header>& headers,
                                   const std::string& body, int timeout_ms) {
  if (!send_all(format_request(method, target, host_header_, headers, body), timeout_ms)) {
    HttpResult r;
    r.error = error_;
    return r;
  }
  return read_response(timeout_ms, method == "HEAD");
}

bool HttpConnection::wait_closed(int timeout_ms, size_t* discarded) {
  int64_t deadline = now_ms() + timeout_ms;
  size_t dropped = buf_.size() - pos_;
  buf_.clear();
  pos_ = 0;
  bool closed = false;
  for (;;) {
    int r = fill(deadline);
    if (r == 0) {
      closed = true;
      break;
    }
    if (r < 0) break;
    dropped += buf_.size();
    buf_.clear();
  }
  if (discarded != nullptr) *discarded = dropped;
  if (closed) close();
  return closed;
}

HttpResult http_request(const std::string& method, const std::string& url,
                        const std::vector<http::Header>& headers, const std::string& body,
                        int timeout_ms, const HttpOptions& opts) {
  HttpResult res;
  Url u;
  if (!parse_url(url, u, true)) {
    res.error = "invalid URL: " + url;
    return res;
  }
  HttpConnection conn;
  if (!conn.connect(u.host, u.port, timeout_ms) ||
      (u.tls && !conn.start_tls(u.host, opts, timeout_ms))) {
    res.error = conn.error();
    return res;
  }
  std::vector<http::Header> hs = headers;
  bool has_conn = false;
  for (const auto& h : hs)
    if (lower(h.name) == "connection") has_conn = true;
  if (!has_conn) hs.push_back({"Connection", "close"});
  return conn.request(method, u.target, hs, body, timeout_ms);
}

}  // namespace aloha::cli
