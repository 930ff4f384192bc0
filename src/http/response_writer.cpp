// Response serialization: one append per piece into a reused buffer, integers through
// std::to_chars, no iostreams (hot path: every response passes through here).
#include "http/response_writer.h"

#include <charconv>
#include <string_view>

namespace aloha::http {

namespace {

template <typename Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(res.ptr - buf));
}

bool has_crlf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

}  // namespace

void append_response(std::string& out, const Response& r, bool head_request, ConnectionHeader conn) {
  const int status = (r.status >= 100 && r.status <= 999) ? r.status : 500;
  out.append("HTTP/1.1 ");
  append_int(out, static_cast<size_t>(status));
  out.push_back(' ');
  out.append(reason_phrase(status));
  out.append("\r\n");
  if ((!r.body.empty() || status != 204) && r.content_type != nullptr && r.content_type[0] != '\0' &&
      !has_crlf(r.content_type)) {
    out.append("Content-Type: ");
    out.append(r.content_type);
    out.append("\r\n");
  }
  for (const auto& h : r.headers) {
    if (h.name.empty() || has_crlf(h.name) || has_crlf(h.value)) continue;
    out.append(h.name);
    out.append(": ");
    out.append(h.value);
    out.append("\r\n");
  }
  if (r.rate_limit) {
    out.append("X-RateLimit-Limit: ");
    append_int(out, r.rate_limit->limit);
    out.append("\r\nX-RateLimit-Remaining: ");
    append_int(out, r.rate_limit->remaining);
    out.append("\r\nX-RateLimit-Reset: ");
    append_int(out, r.rate_limit->reset_epoch_s);
    out.append("\r\n");
  }
  // RFC 9110 §8.6: no Content-Length in 1xx and 204 responses; everything else carries one so
  // the client can tell where the response ends on a kept-alive connection.
  const bool no_body_status = status == 204 || status < 200 || status == 304;
  if (!(status == 204 || status < 200)) {
    out.append("Content-Length: ");
    append_int(out, r.body.size());
    out.append("\r\n");
  }
  if (conn == ConnectionHeader::close) out.append("Connection: close\r\n");
  else if (conn == ConnectionHeader::keep_alive) out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
  if (!head_request && !no_body_status) out.append(r.body);
}

Response make_error_response(int status, const char* code, const char* msg) {
  Response r;
  r.status = status;
  r.body.reserve(64);
  r.body.append("{\"result\":\"error\",\"msg\":\"");
  r.body.append(msg);
  r.body.append("\",\"code\":\"");
  r.body.append(code);
  r.body.append("\"}");
  return r;
}

}  // namespace aloha::http
