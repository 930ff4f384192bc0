// Reason phrases for the status line (RFC 9110 §15). Clients ignore the phrase; it is for humans
// reading captures, so unknown codes get a generic phrase per class instead of an empty one.
#include "http/message.h"

#include <utility>

namespace aloha::http {

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";  // RFC 9110 §15.5.14 (was "Payload Too Large")
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
  }
  if (status >= 100 && status < 200) return "Informational";
  if (status >= 200 && status < 300) return "Success";
  if (status >= 300 && status < 400) return "Redirection";
  if (status >= 400 && status < 500) return "Client Error";
  return "Server Error";
}

namespace {
std::vector<Request>& request_pool() {
  thread_local std::vector<Request> pool;
  return pool;
}
}  // namespace

void recycle_request(Request&& r) noexcept {
  auto& pool = request_pool();
  if (pool.size() >= kMaxRecycledRequests || r.body.capacity() > kMaxRecycledBody) return;
  // A request whose content went back already (release_content) keeps nothing worth reusing;
  // pooled, it would be handed out before the full ones and the next parse would allocate again.
  if (r.headers.capacity() == 0 && r.spare_headers.empty() && r.body.capacity() <= std::string().capacity())
    return;
  if (pool.capacity() == 0) {
    // The pool's own storage is allocated once; reserve may throw, and recycling is optional.
    try {
      pool.reserve(kMaxRecycledRequests);
    } catch (...) {
      return;
    }
  }
  r.method.clear();
  r.target.clear();
  r.path.clear();
  r.query.clear();
  // Header names and values outgrow the small-string buffer (authorization, content-type,
  // user-agent): keeping the emptied entries saves those allocations on the next request.
  // Reserved to the bound first, so the moves below cannot allocate (or throw).
  if (r.spare_headers.capacity() < kMaxSpareHeaders) {
    try {
      r.spare_headers.reserve(kMaxSpareHeaders);
    } catch (...) {
    }
  }
  for (auto& h : r.headers) {
    if (r.spare_headers.size() >= r.spare_headers.capacity() ||
        r.spare_headers.size() >= kMaxSpareHeaders)
      break;
    if (h.name.capacity() > kMaxSpareHeaderBytes || h.value.capacity() > kMaxSpareHeaderBytes) continue;
    h.name.clear();
    h.value.clear();
    r.spare_headers.push_back(std::move(h));
  }
  r.headers.clear();
  r.body.clear();
  r.remote.clear();
  pool.push_back(std::move(r));  // within the reserved capacity: no allocation, cannot throw
}

void release_content(Request& r) noexcept {
  Request content;
  content.target = std::move(r.target);
  content.query = std::move(r.query);
  content.headers = std::move(r.headers);
  content.body = std::move(r.body);
  content.spare_headers = std::move(r.spare_headers);
  // Moved-from strings and vectors are valid but unspecified: make them plainly empty.
  r.target.clear();
  r.query.clear();
  r.headers.clear();
  r.body.clear();
  r.spare_headers.clear();
  recycle_request(std::move(content));
}

Request fresh_request() noexcept {
  auto& pool = request_pool();
  if (pool.empty()) return Request{};
  Request r = std::move(pool.back());
  pool.pop_back();
  return r;
}

}  // namespace aloha::http
