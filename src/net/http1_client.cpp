#include "net/http1_client.h"

#include <algorithm>
#include <utility>

#include "net/connector.h"
#include "net/tls.h"

namespace aloha::net {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// tchar of RFC 9110 §5.6.2: what a method or a field name may contain.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}
// Field values and the request-target must not carry CR, LF or NUL: they would end the line and
// let the rest be read as another header or request (RFC 9112 §2.2, request smuggling).
bool safe_line_text(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

// ---- Http1ResponseParser --------------------------------------------------------------------

const llhttp_settings_t Http1ResponseParser::settings_ = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_status = &Http1ResponseParser::on_status_cb;
  s.on_header_field = &Http1ResponseParser::on_field_cb;
  s.on_header_value = &Http1ResponseParser::on_value_cb;
  s.on_header_value_complete = &Http1ResponseParser::on_value_complete_cb;
  s.on_headers_complete = &Http1ResponseParser::on_headers_complete_cb;
  s.on_body = &Http1ResponseParser::on_body_cb;
  s.on_message_complete = &Http1ResponseParser::on_message_complete_cb;
  return s;
}();

namespace {
inline Http1ResponseParser* self_of(llhttp_t* p) { return static_cast<Http1ResponseParser*>(p->data); }
}  // namespace

Http1ResponseParser::Http1ResponseParser(size_t max_body, size_t max_head)
    : max_body_(max_body), max_head_(max_head) {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

const std::string* Http1ResponseParser::header(std::string_view lname) const {
  for (const auto& h : headers_)
    if (h.name == lname) return &h.value;
  return nullptr;
}

int Http1ResponseParser::fail(std::string why, bool too_large) {
  if (state_ == State::reading) {
    state_ = State::failed;
    error_ = std::move(why);
    too_large_ = too_large;
  }
  return -1;  // makes llhttp_execute stop with HPE_USER / a callback error
}

bool Http1ResponseParser::count_head(size_t len) {
  head_bytes_ += len;
  return head_bytes_ <= max_head_;
}

int Http1ResponseParser::on_status_cb(llhttp_t* p, const char*, size_t len) noexcept {
  auto* self = self_of(p);
  if (!self->count_head(len)) return self->fail("response head too large", true);
  return 0;
}

int Http1ResponseParser::on_field_cb(llhttp_t* p, const char* at, size_t len) noexcept {
  auto* self = self_of(p);
  if (!self->count_head(len)) return self->fail("response head too large", true);
  // The head bound keeps these appends small; a string append cannot throw below it in practice,
  // but a trampoline must not let an exception into llhttp (architecture.md).
  try {
    for (size_t i = 0; i < len; ++i) self->field_.push_back(lower(at[i]));
  } catch (...) {
    return self->fail("out of memory");
  }
  return 0;
}

int Http1ResponseParser::on_value_cb(llhttp_t* p, const char* at, size_t len) noexcept {
  auto* self = self_of(p);
  if (!self->count_head(len)) return self->fail("response head too large", true);
  try {
    self->value_.append(at, len);
  } catch (...) {
    return self->fail("out of memory");
  }
  return 0;
}

int Http1ResponseParser::on_value_complete_cb(llhttp_t* p) noexcept {
  auto* self = self_of(p);
  if (self->headers_.size() >= kMaxHeaders) return self->fail("too many response headers", true);
  try {
    self->headers_.push_back({std::move(self->field_), trim(self->value_)});
  } catch (...) {
    return self->fail("out of memory");
  }
  self->field_.clear();
  self->value_.clear();
  return 0;
}

int Http1ResponseParser::on_headers_complete_cb(llhttp_t* p) noexcept {
  auto* self = self_of(p);
  int status = llhttp_get_status_code(p);
  // We never ask for an upgrade, so 101 is a protocol error (RFC 9110 §15.2.2); other 1xx are
  // interim responses (e.g. an unsolicited 100 Continue) that precede the final one (§15.2).
  if (status == 101) return self->fail("unexpected 101 Switching Protocols");
  self->interim_ = status >= 100 && status < 200;
  self->status_ = self->interim_ ? 0 : status;
  if (self->interim_) self->headers_.clear();
  return 0;
}

int Http1ResponseParser::on_body_cb(llhttp_t* p, const char* at, size_t len) noexcept {
  auto* self = self_of(p);
  if (self->body_.size() + len > self->max_body_)
    return self->fail("response body larger than " + std::to_string(self->max_body_) + " bytes", true);
  try {
    self->body_.append(at, len);
  } catch (...) {
    return self->fail("out of memory");
  }
  return 0;
}

int Http1ResponseParser::on_message_complete_cb(llhttp_t* p) noexcept {
  auto* self = self_of(p);
  if (self->interim_) {
    self->interim_ = false;  // the final response follows on the same connection
    return 0;
  }
  self->state_ = State::complete;
  return HPE_PAUSED;  // one response per connection (Connection: close): ignore anything after
}

Http1ResponseParser::State Http1ResponseParser::feed(const char* data, size_t len) {
  if (state_ != State::reading || len == 0) return state_;
  llhttp_errno_t rc = llhttp_execute(&parser_, data, len);
  if (state_ == State::reading && rc != HPE_OK) {
    const char* reason = llhttp_get_error_reason(&parser_);
    fail(std::string("malformed response: ") + llhttp_errno_name(rc) +
         (reason != nullptr ? std::string(" (") + reason + ")" : std::string()));
  }
  return state_;
}

Http1ResponseParser::State Http1ResponseParser::finish() {
  if (state_ != State::reading) return state_;
  // A body without Content-Length or chunking ends when the connection does (RFC 9112 §6.3 item
  // 8); llhttp_finish completes it. Anything else cut short is an incomplete response.
  if (llhttp_message_needs_eof(&parser_) != 0) llhttp_finish(&parser_);
  if (state_ == State::reading) fail("connection closed before the response was complete");
  return state_;
}

// ---- request --------------------------------------------------------------------------------

std::string format_http1_request(const Http1Request& req, std::string& err) {
  std::string authority = req.authority;
  if (authority.empty()) {
    bool v6 = req.host.find(':') != std::string::npos;
    if (v6) authority.push_back('[');
    authority.append(req.host);
    if (v6) authority.push_back(']');
    if (req.port != 443) authority.append(":").append(std::to_string(req.port));
  }
  if (!is_token(req.method)) {
    err = "bad method";
    return {};
  }
  if (req.path.empty() || req.path.front() != '/' || !safe_line_text(req.path) ||
      req.path.find_first_of(" \t") != std::string::npos) {
    err = "bad request path";
    return {};
  }
  if (req.host.empty() || !safe_line_text(authority) || authority.find_first_of(" \t") != std::string::npos) {
    err = "bad host";
    return {};
  }
  if (req.body.size() > kMaxRequestBody) {
    err = "request body too large";
    return {};
  }
  std::string out;
  out.reserve(128 + req.path.size() + req.body.size());
  out.append(req.method).append(" ").append(req.path).append(" HTTP/1.1\r\nHost: ").append(authority);
  out.append("\r\n");
  for (const auto& h : req.headers) {
    std::string name;
    for (char c : h.name) name.push_back(lower(c));
    if (!is_token(name) || !safe_line_text(h.value)) {
      err = "bad header field";
      return {};
    }
    // Framing headers are ours: a second Content-Length or a Transfer-Encoding would make the
    // message ambiguous (RFC 9112 §6.3).
    if (name == "host" || name == "content-length" || name == "transfer-encoding" || name == "connection") {
      err = "header '" + name + "' is set by the client";
      return {};
    }
    out.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  out.append("Content-Length: ").append(std::to_string(req.body.size())).append("\r\n");
  // One request per connection: the server ends the response by closing, and nothing is left
  // half-used for a later request (token fetches are rare; upstreams.md).
  out.append("Connection: close\r\n\r\n");
  out.append(req.body);
  return out;
}

const char* http1_failure_name(Http1Failure f) {
  switch (f) {
    case Http1Failure::none: return "none";
    case Http1Failure::bad_request: return "bad_request";
    case Http1Failure::connect: return "connect";
    case Http1Failure::tls: return "tls";
    case Http1Failure::certificate: return "certificate";
    case Http1Failure::h2_selected: return "h2_selected";
    case Http1Failure::timeout: return "timeout";
    case Http1Failure::closed: return "closed";
    case Http1Failure::protocol: return "protocol";
    case Http1Failure::too_large: return "too_large";
  }
  return "?";
}

// ---- Http1Client ----------------------------------------------------------------------------

Http1Client* Http1Client::start(uv_loop_t* loop, const TlsContext* tls, Http1Request request,
                                Done done) {
  auto* c = new Http1Client(loop, tls, std::move(request), std::move(done));
  std::string err;
  c->request_bytes_ = format_http1_request(c->req_, err);
  if (c->request_bytes_.empty()) {
    // Reported from the timer: done never runs inside start().
    c->early_failure_ = Http1Failure::bad_request;
    c->early_error_ = err;
    uv_timer_start(&c->timer_, &Http1Client::timer_cb, 0, 0);
    return c;
  }
  int64_t timeout = std::max<int64_t>(c->req_.timeout_ms, 1);
  uv_timer_start(&c->timer_, &Http1Client::timer_cb, static_cast<uint64_t>(timeout), 0);
  int64_t attempt = std::clamp<int64_t>(c->req_.connect_timeout_ms, 1, timeout);
  // Started after construction so its (asynchronous) callback always finds a complete object.
  c->connector_ = Connector::start(loop, c->req_.host, c->req_.port, attempt,
      [c](int status, uv_tcp_t* tcp, const std::string& error) { c->on_connected(status, tcp, error); });
  return c;
}

Http1Client::Http1Client(uv_loop_t* loop, const TlsContext* tls, Http1Request request, Done done)
    : loop_(loop), tls_ctx_(tls), req_(std::move(request)), done_(std::move(done)),
      parser_(std::make_unique<Http1ResponseParser>(req_.max_body)) {
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  ++open_;
}

Http1Client::~Http1Client() = default;

const char* Http1Client::phase_text(Phase p) {
  switch (p) {
    case Phase::connecting: return "connecting";
    case Phase::handshaking: return "in the TLS handshake";
    case Phase::exchanging: return "waiting for the response";
    case Phase::finished: return "finished";
  }
  return "?";
}

void Http1Client::timer_cb(uv_timer_t* t) noexcept {
  auto* self = static_cast<Http1Client*>(t->data);
  try {
    if (self->early_failure_ != Http1Failure::none) {
      self->finish(self->early_failure_, self->early_error_);
      return;
    }
    self->finish(Http1Failure::timeout, "no complete answer within " + std::to_string(self->req_.timeout_ms) +
                                            " ms (" + phase_text(self->phase_) + ")");
  } catch (...) {
    self->cancel();
  }
}

void Http1Client::on_connected(int status, uv_tcp_t* tcp, const std::string& error) {
  connector_ = nullptr;  // frees itself
  if (phase_ == Phase::finished) {  // defensive: cancel() stops the connector's callback
    if (tcp != nullptr) close_tcp(tcp);
    return;
  }
  if (status != 0 || tcp == nullptr) {
    finish(Http1Failure::connect, error.empty() ? std::string(uv_strerror(status)) : error);
    return;
  }
  stream_ = TlsStream::attach(loop_, tcp, tls_ctx_, this);
  ++open_;
  phase_ = tls_ctx_ == nullptr ? Phase::exchanging : Phase::handshaking;
  stream_->start(req_.host);  // a failure finishes us through on_stream_error
  if (tls_ctx_ == nullptr && phase_ == Phase::exchanging) send_request();
}

void Http1Client::on_stream_ready() {
  // `done` may throw: then it is not called again (cancel), and nothing reaches libuv.
  try {
    if (phase_ != Phase::handshaking) return;
    alpn_ = stream_->tls()->alpn();
    if (alpn_ == "h2") {
      // RFC 7301 §3.2: the server's choice binds the connection; we would have to speak HTTP/2.
      finish(Http1Failure::h2_selected, "server selected ALPN h2");
      return;
    }
    if (!alpn_.empty() && alpn_ != "http/1.1") {
      finish(Http1Failure::protocol, "server selected ALPN '" + alpn_ + "'");
      return;
    }
    // http/1.1, or no ALPN at all: a server without ALPN speaks HTTP/1.1 over TLS (RFC 2818).
    phase_ = Phase::exchanging;
    send_request();
  } catch (...) {
    cancel();
  }
}

void Http1Client::on_stream_error(StreamFailure kind, const std::string& message) {
  // `done` may throw: then it is not called again (cancel), and nothing reaches libuv.
  try {
    switch (kind) {
      case StreamFailure::start: finish(Http1Failure::connect, message); return;
      case StreamFailure::read:
      case StreamFailure::write: finish(Http1Failure::closed, message); return;
      case StreamFailure::tls: finish(Http1Failure::tls, message); return;
      case StreamFailure::certificate: finish(Http1Failure::certificate, message); return;
    }
  } catch (...) {
    cancel();
  }
}

void Http1Client::on_stream_closed() {
  stream_ = nullptr;
  --open_;
  maybe_free();
}

void Http1Client::send_request() {
  std::string bytes;
  bytes.swap(request_bytes_);  // also drops our copy of the assertion early
  stream_->write(bytes);       // a failure finishes us through on_stream_error
}

void Http1Client::on_stream_data(const char* data, size_t len) {
  // `done` may throw: then it is not called again (cancel), and nothing reaches libuv.
  try {
    if (phase_ == Phase::finished) return;
    if (phase_ != Phase::exchanging) {
      finish(Http1Failure::protocol, "data from the server before the request was sent");
      return;
    }
    switch (parser_->feed(data, len)) {
      case Http1ResponseParser::State::reading: return;
      case Http1ResponseParser::State::complete: finish(Http1Failure::none, {}); return;
      case Http1ResponseParser::State::failed:
        finish(parser_->too_large() ? Http1Failure::too_large : Http1Failure::protocol, parser_->error());
        return;
    }
  } catch (...) {
    cancel();
  }
}

void Http1Client::on_stream_eof(bool) {
  // `done` may throw: then it is not called again (cancel), and nothing reaches libuv.
  try {
    if (phase_ == Phase::finished) return;
    if (phase_ != Phase::exchanging) {
      finish(Http1Failure::closed, std::string("connection closed by the server ") +
                                       phase_text(phase_));
      return;
    }
    if (parser_->finish() == Http1ResponseParser::State::complete) {
      finish(Http1Failure::none, {});
    } else {
      finish(Http1Failure::closed, parser_->error());
    }
  } catch (...) {
    cancel();
  }
}

void Http1Client::finish(Http1Failure failure, std::string error) {
  if (phase_ == Phase::finished) return;
  phase_ = Phase::finished;
  Http1Response r;
  r.failure = failure;
  r.error = std::move(error);
  r.alpn = alpn_;
  if (failure == Http1Failure::none) {
    r.status = parser_->status();
    r.headers = parser_->headers();
    r.body = parser_->body();
  }
  shut_down();
  // The timer's close callback is still pending, so the object outlives this call even if
  // `done` destroys whoever owns the request.
  Done d = std::move(done_);
  done_ = nullptr;
  if (d) d(r);
}

void Http1Client::cancel() {
  if (phase_ == Phase::finished) return;
  phase_ = Phase::finished;
  done_ = nullptr;
  shut_down();
}

void Http1Client::shut_down() {
  if (connector_ != nullptr) {
    connector_->cancel();
    connector_ = nullptr;
  }
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_))) {
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) noexcept {
      auto* self = static_cast<Http1Client*>(h->data);
      --self->open_;
      self->maybe_free();
    });
  }
  // Best effort close_notify (RFC 8446 §6.1); the stream drops its TLS session at once, so it
  // never outlives the caller's TlsContext, which `done` (or the owner after cancel()) may destroy.
  if (stream_ != nullptr) stream_->close();
}

void Http1Client::maybe_free() {
  if (open_ == 0 && phase_ == Phase::finished) delete this;
}

}  // namespace aloha::net
