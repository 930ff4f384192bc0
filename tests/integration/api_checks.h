// Shared checks for the API integration tests (api.md §1–3): response-shape comparisons that
// return a description of every mismatch ("" when it matches), so a failing CHECK says exactly
// what the bouncer answered instead.
#pragma once
#include <doctest/doctest.h>

#include <ctime>
#include <string>
#include <vector>

#include "support/fixture.h"
#include "support/http_client.h"

namespace aloha::test {

inline std::string show(const HttpResult& r) {
  std::string s = "got " + std::to_string(r.status);
  if (!r.error.empty()) s += " [transport error: " + r.error + "]";
  s += " body=" + r.body.substr(0, 600);
  return s;
}

inline bool is_json_type(const HttpResult& r) {
  const std::string* ct = r.header("content-type");
  return ct != nullptr && ct->rfind("application/json", 0) == 0;
}

// 200, application/json, {"result":"success","msg":""}.
inline std::string success_mismatch(const HttpResult& r) {
  std::string m;
  JsonBody j(r.body);
  if (r.status != 200) m += "status != 200; ";
  if (!is_json_type(r)) m += "Content-Type not application/json; ";
  if (!j.valid()) m += "body not a JSON object; ";
  if (j.str("result") != "success") m += "result != success; ";
  if (!j.is_string("msg") || j.str("msg") != "") m += "msg != \"\"; ";
  return m.empty() ? m : m + show(r);
}

// {"result":"error","msg":msg,"code":code} with this status; 401s also need
// WWW-Authenticate: Basic realm="aloha" (api.md §2).
inline std::string error_mismatch(const HttpResult& r, int status, const std::string& code,
                                  const std::string& msg) {
  std::string m;
  JsonBody j(r.body);
  if (r.status != status) m += "status != " + std::to_string(status) + "; ";
  if (!is_json_type(r)) m += "Content-Type not application/json; ";
  if (!j.valid()) m += "body not a JSON object; ";
  if (j.str("result") != "error") m += "result != error; ";
  if (j.str("code") != code) m += "code != " + code + "; ";
  if (j.str("msg") != msg) m += "msg != \"" + msg + "\"; ";
  if (status == 401) {
    const std::string* w = r.header("www-authenticate");
    if (w == nullptr || *w != "Basic realm=\"aloha\"") m += "WWW-Authenticate missing/wrong; ";
  }
  return m.empty() ? m : m + show(r);
}

inline std::string bad_request(const HttpResult& r, const std::string& msg) {
  return error_mismatch(r, 400, "BAD_REQUEST", msg);
}

inline int64_t wall_s() { return static_cast<int64_t>(::time(nullptr)); }

}  // namespace aloha::test

// CHECK that a response matches; on failure the message lists every difference.
#define CHECK_OK(r)                                          \
  do {                                                       \
    std::string mm_ = ::aloha::test::success_mismatch(r);    \
    CHECK_MESSAGE(mm_.empty(), mm_);                         \
  } while (0)
#define CHECK_ERR(r, status, code, msg)                                   \
  do {                                                                    \
    std::string mm_ = ::aloha::test::error_mismatch(r, status, code, msg); \
    CHECK_MESSAGE(mm_.empty(), mm_);                                      \
  } while (0)
#define CHECK_BAD(r, msg)                                        \
  do {                                                           \
    std::string mm_ = ::aloha::test::bad_request(r, msg);        \
    CHECK_MESSAGE(mm_.empty(), mm_);                             \
  } while (0)
