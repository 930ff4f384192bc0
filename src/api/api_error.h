// ApiError: a client-visible error with the status, code and message of api.md §1. Thrown by
// parameter decoding and handlers (C++ only; never across C callbacks) and turned into the JSON
// error body by the router.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace aloha::api {

struct ApiError {
  int status = 400;
  std::string code = "BAD_REQUEST";
  std::string msg;
  // Extra top-level keys of the error body: key and its value as raw JSON text.
  std::vector<std::pair<std::string, std::string>> extra;
  // Extra response headers (e.g. WWW-Authenticate on 401).
  std::vector<std::pair<std::string, std::string>> headers;

  static ApiError bad_request(std::string m) { return ApiError{400, "BAD_REQUEST", std::move(m), {}, {}}; }
};

}  // namespace aloha::api
