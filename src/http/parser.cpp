// RequestParser: llhttp driven so that it never decides anything inside its own callbacks beyond
// recording data. The callbacks pause llhttp at "headers complete" (so the caller can send
// 100 Continue, RFC 9110 §10.1.1, and so header bytes can be counted exactly) and at "message
// complete" (so pipelined requests are handed out one at a time, in order, RFC 9112 §9.3.2).
#include "http/parser.h"
#include "core/encoding.h"

#include <cstring>

namespace aloha::http {

namespace {

constexpr const char* kBadRequestMsg = "Malformed request";

inline char lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// tchar of RFC 9110 §5.6.2. llhttp 8.1 lets a space through inside a field name ("Bad Header",
// "Content-Length :"), which RFC 9112 §5.1 says must be rejected, so names are checked here.
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

void trim_in_place(std::string& s) {
  size_t end = s.size();
  while (end > 0 && is_ows(s[end - 1])) --end;
  size_t begin = 0;
  while (begin < end && is_ows(s[begin])) ++begin;
  // In place: a copy would allocate for values past the small-string size.
  s.erase(end);
  s.erase(0, begin);
}

inline RequestParser* self(llhttp_t* p) { return static_cast<RequestParser*>(p->data); }

}  // namespace

const llhttp_settings_t RequestParser::settings_ = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = &RequestParser::on_message_begin;
  s.on_url = &RequestParser::on_url;
  s.on_header_field = &RequestParser::on_header_field;
  s.on_header_field_complete = &RequestParser::on_header_field_complete;
  s.on_header_value = &RequestParser::on_header_value;
  s.on_headers_complete = &RequestParser::on_headers_complete;
  s.on_body = &RequestParser::on_body;
  s.on_message_complete = &RequestParser::on_message_complete;
  return s;
}();

RequestParser::RequestParser(const ParserLimits& limits) : limits_(limits) {
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

int RequestParser::fail(int status, const char* code, const char* msg, const char* detail) {
  if (!failed_) {
    failed_ = true;
    error_ = ParseError{status, code, msg, detail};
  }
  phase_ = ParsePhase::done;
  return HPE_USER;
}

ParseEvent RequestParser::feed(const char* data, size_t len, size_t& consumed) {
  consumed = 0;
  if (failed_) return ParseEvent::error;
  const char* p = data;
  size_t left = len;
  for (;;) {
    if (phase_ == ParsePhase::done) {
      // Nothing may follow a closing request (RFC 9112 §9.6); discard instead of parsing.
      consumed = len;
      return ParseEvent::need_more;
    }
    const bool in_head = phase_ == ParsePhase::idle || phase_ == ParsePhase::headers;
    headers_paused_ = false;
    message_done_ = false;
    const llhttp_errno_t err = llhttp_execute(&parser_, p, left);
    if (failed_) return ParseEvent::error;
    size_t used = left;
    if (err == HPE_PAUSED) {
      used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - p);
      llhttp_resume(&parser_);
    } else if (err != HPE_OK) {
      fail(400, "BAD_REQUEST", kBadRequestMsg, llhttp_errno_name(err));
      return ParseEvent::error;
    }
    p += used;
    left -= used;
    consumed = static_cast<size_t>(p - data);
    if (in_head) {
      // Raw bytes, separators included: the limit covers what the client made us read.
      header_bytes_ += used;
      if (header_bytes_ > limits_.max_header_bytes && !message_done_) {
        fail(413, "REQUEST_TOO_LARGE", "Request headers too large", "header bytes");
        return ParseEvent::error;
      }
    }
    if (message_done_) {
      header_bytes_ = 0;
      return ParseEvent::request;
    }
    if (headers_paused_) {
      if (expect_) return ParseEvent::expect_continue;
      // Even with no bytes left, run llhttp once more: a request without a body completes
      // without consuming anything after its header block.
      continue;
    }
    if (left == 0) return ParseEvent::need_more;
  }
}

Request RequestParser::take_request() {
  Request r = std::move(cur_);
  cur_ = Request{};  // moved-from: give it a defined empty state; on_message_begin refills it
  return r;
}

int RequestParser::on_message_begin(llhttp_t* p) noexcept {
  RequestParser* s = self(p);
  s->phase_ = ParsePhase::headers;
  ++s->begun_;
  // A recycled request keeps its buffers' capacity (see recycle_request): fewer mallocs.
  s->cur_ = fresh_request();
  s->field_done_ = true;
  s->stored_bytes_ = 0;
  s->expect_ = false;
  return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, size_t len) noexcept {
  RequestParser* s = self(p);
  if (!s->store_bytes(len)) return HPE_USER;
  s->cur_.target.append(at, len);
  return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, size_t len) noexcept {
  RequestParser* s = self(p);
  if (!s->store_bytes(len)) return HPE_USER;
  if (s->phase_ == ParsePhase::body) return 0;  // chunked trailer fields: counted, not kept
  if (s->field_done_) {
    if (s->cur_.headers.size() >= s->limits_.max_headers)
      return s->fail(413, "REQUEST_TOO_LARGE", "Too many request headers", "header count");
    Request& r = s->cur_;
    if (r.headers.empty()) r.headers.reserve(16);
    if (!r.spare_headers.empty()) {
      r.headers.push_back(std::move(r.spare_headers.back()));  // empty, keeps its buffers
      r.spare_headers.pop_back();
    } else {
      r.headers.emplace_back();
    }
    s->field_done_ = false;
  }
  std::string& name = s->cur_.headers.back().name;
  const size_t old = name.size();
  name.resize(old + len);
  for (size_t i = 0; i < len; ++i) {
    if (!is_tchar(static_cast<unsigned char>(at[i])))
      return s->fail(400, "BAD_REQUEST", kBadRequestMsg, "invalid header name");
    name[old + i] = lower_ascii(at[i]);
  }
  return 0;
}

int RequestParser::on_header_field_complete(llhttp_t* p) noexcept {
  self(p)->field_done_ = true;
  return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, size_t len) noexcept {
  RequestParser* s = self(p);
  if (!s->store_bytes(len)) return HPE_USER;
  if (s->phase_ == ParsePhase::body || s->cur_.headers.empty()) return 0;
  s->cur_.headers.back().value.append(at, len);
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) noexcept {
  RequestParser* s = self(p);
  Request& r = s->cur_;
  s->phase_ = ParsePhase::body;
  for (auto& h : r.headers) trim_in_place(h.value);

  const bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  const bool chunked = (p->flags & F_CHUNKED) != 0;
  // A declared length over the limit is refused before any of the body is read (and before any
  // 100 Continue), so the client need not send it (RFC 9110 §15.5.14).
  if (has_length && p->content_length > s->limits_.max_body_bytes)
    return s->fail(413, "REQUEST_TOO_LARGE", "Request body too large", "content-length");
  if (has_length && p->content_length > 0) r.body.reserve(static_cast<size_t>(p->content_length));

  r.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  const size_t q = r.target.find('?');
  if (q == std::string::npos) {
    r.path = r.target;
  } else {
    r.path.assign(r.target, 0, q);
    r.query.assign(r.target, q + 1, std::string::npos);
  }

  // Expect: 100-continue only means something in HTTP/1.1 and when a body is coming
  // (RFC 9110 §10.1.1). Other expectations are ignored rather than answered with 417.
  s->expect_ = false;
  if (p->http_major == 1 && p->http_minor >= 1 && (chunked || (has_length && p->content_length > 0))) {
    const std::string* e = r.header("expect");
    s->expect_ = e != nullptr && enc::ascii_iequals(*e, "100-continue");
  }
  s->headers_paused_ = true;
  return HPE_PAUSED;
}

int RequestParser::on_body(llhttp_t* p, const char* at, size_t len) noexcept {
  RequestParser* s = self(p);
  // Chunked bodies have no declared length: enforce the limit as the chunks arrive.
  if (s->cur_.body.size() + len > s->limits_.max_body_bytes)
    return s->fail(413, "REQUEST_TOO_LARGE", "Request body too large", "body bytes");
  s->cur_.body.append(at, len);
  return 0;
}

int RequestParser::on_message_complete(llhttp_t* p) noexcept {
  RequestParser* s = self(p);
  s->message_done_ = true;
  s->last_minor_ = p->http_minor;
  // An Upgrade/CONNECT request is answered like any other, then the connection closes: what
  // follows its header block is not HTTP/1.1 (RFC 9110 §7.8).
  s->last_keep_alive_ = llhttp_should_keep_alive(p) != 0 && p->upgrade == 0;
  s->phase_ = s->last_keep_alive_ ? ParsePhase::idle : ParsePhase::done;
  return HPE_PAUSED;
}

bool RequestParser::store_bytes(size_t n) {
  stored_bytes_ += n;
  if (stored_bytes_ <= limits_.max_header_bytes) return true;
  fail(413, "REQUEST_TOO_LARGE", "Request headers too large", "stored header bytes");
  return false;
}

}  // namespace aloha::http
