// HTTP request and response as the server connection hands them to the router. Header names are
// lower-cased; values are kept verbatim (surrounding whitespace trimmed).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aloha::http {

struct Header {
  std::string name;   // lower-case
  std::string value;
};

struct Request {
  std::string method;   // "GET", "POST", ... as sent
  std::string target;   // raw request-target
  std::string path;     // target up to '?' (not percent-decoded)
  std::string query;    // after '?', without it; empty if none
  std::vector<Header> headers;
  std::string body;     // de-chunked
  std::string remote;   // peer address "ip:port" (for logs)
  // Not request content: emptied header entries of an earlier request on this thread that keep
  // their buffers' capacity (see recycle_request); the parser takes new entries from here first.
  std::vector<Header> spare_headers;

  // First header with this (lower-case) name, or nullptr.
  const std::string* header(std::string_view lname) const {
    for (const auto& h : headers)
      if (h.name == lname) return &h.value;
    return nullptr;
  }
};

// X-RateLimit-* values of an authenticated response (api.md §2). Kept as numbers and formatted
// by the response writer, so the hot path builds no header strings for them.
struct RateLimitHeaders {
  int limit = 0;
  int remaining = 0;
  int64_t reset_epoch_s = 0;
};

struct Response {
  int status = 200;
  // Static text (a literal): it must outlive the response. A pointer rather than a std::string
  // because "application/json" is one byte too long for the small-string buffer, and every
  // response would pay a malloc for it. nullptr or "" sends no Content-Type.
  const char* content_type = "application/json";
  std::vector<Header> headers;  // extra headers (Content-Type/Length/Connection are added by the server)
  std::optional<RateLimitHeaders> rate_limit;  // written after `headers` when set
  std::string body;
  // Server org id for the access log line ("-" when not authenticated); never logged content.
  std::string log_server;

  void add_header(std::string name, std::string value) {
    headers.push_back({std::move(name), std::move(value)});
  }
};

// Request recycling (hot path): a finished request's buffers (target, path, header list, body)
// keep their capacity for the next request parsed on the same thread, so a steady stream of
// similar requests does not allocate them again. The free list is thread-local and bounded
// (kMaxRecycledRequests, and requests whose body buffer exceeds kMaxRecycledBody are dropped).
inline constexpr size_t kMaxRecycledRequests = 64;
inline constexpr size_t kMaxRecycledBody = 16 * 1024;
// Header entries kept per recycled request, and the largest buffer one may keep (name or value).
inline constexpr size_t kMaxSpareHeaders = 16;
inline constexpr size_t kMaxSpareHeaderBytes = 256;
// Clears `r` (keeping capacity) into the free list, or frees it when the list is full.
void recycle_request(Request&& r) noexcept;
// An empty Request, from the free list when it has one.
Request fresh_request() noexcept;
// For a handler that keeps its request for a while after reading it (push/notify waits for its
// upstream answers): hands the content buffers (target, query, headers, body) to the free list at
// once, so requests in flight do not each hold a copy of what was already parsed. Keeps method,
// path and remote (error logs, the access log); the headers and body read empty afterwards.
void release_content(Request& r) noexcept;

// Reason phrase for a status code ("OK", "Bad Request", ...).
const char* reason_phrase(int status);

}  // namespace aloha::http
