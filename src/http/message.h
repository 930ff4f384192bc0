// HTTP request and response as the server connection hands them to the router. Header names are
// lower-cased; values are kept verbatim (surrounding whitespace trimmed).
#pragma once
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

  // First header with this (lower-case) name, or nullptr.
  const std::string* header(std::string_view lname) const {
    for (const auto& h : headers)
      if (h.name == lname) return &h.value;
    return nullptr;
  }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<Header> headers;  // extra headers (Content-Type/Length/Connection are added by the server)
  std::string body;
  // Server org id for the access log line ("-" when not authenticated); never logged content.
  std::string log_server;

  void add_header(std::string name, std::string value) {
    headers.push_back({std::move(name), std::move(value)});
  }
};

// Reason phrase for a status code ("OK", "Bad Request", ...).
const char* reason_phrase(int status);

}  // namespace aloha::http
