// api.md §1 "Methods": 405 with Allow and allowed_methods (before authentication), OPTIONS → 204,
// HEAD on GET routes, unknown paths → 404 JSON; GET /health.
#include <doctest/doctest.h>

#include <string>

#include "api_checks.h"

using namespace aloha;
using namespace aloha::test;

namespace {

std::string method_mismatch(const HttpResult& r, const std::string& allow, const std::string& allowed_json) {
  std::string m;
  JsonBody j(r.body);
  if (r.status != 405) m += "status != 405; ";
  const std::string* a = r.header("allow");
  if (a == nullptr || *a != allow) m += "Allow != " + allow + "; ";
  if (!j.valid()) m += "body not a JSON object; ";
  if (j.str("result") != "error") m += "result != error; ";
  if (j.str("msg") != "Method Not Allowed") m += "msg != Method Not Allowed; ";
  if (j.raw("allowed_methods") != allowed_json) m += "allowed_methods != " + allowed_json + "; ";
  if (j.has("code")) m += "has a code; ";
  return m.empty() ? m : m + show(r);
}

#define CHECK_405(r, allow, json)                                 \
  do {                                                            \
    std::string mm_ = method_mismatch(r, allow, json);            \
    CHECK_MESSAGE(mm_.empty(), mm_);                              \
  } while (0)

}  // namespace

TEST_SUITE("integration/api/methods") {
  TEST_CASE("methods: a wrong method on a POST route is 405 with Allow: POST, before auth") {
    BouncerProcess b;
    for (const std::string rel : {"server/register", "server/deactivate", "push/register",
                                  "push/unregister", "push/unregister/all"}) {
      CAPTURE(rel);
      CHECK_405(b.request("GET", remotes(rel)), "POST", "[\"POST\"]");
      CHECK_405(b.request("PUT", remotes(rel), {}, "x=1"), "POST", "[\"POST\"]");
      CHECK_405(b.request("DELETE", remotes(rel)), "POST", "[\"POST\"]");
      // HEAD belongs to GET routes only.
      auto h = b.request("HEAD", remotes(rel));
      CHECK_MESSAGE(h.status == 405, show(h));
      CHECK(h.header("allow") != nullptr);
      CHECK(h.body == "");
      // Even with bad credentials: the method is checked first.
      CHECK_405(b.request("GET", remotes(rel), {{"Authorization", "Bearer nope"}}), "POST", "[\"POST\"]");
    }
  }

  TEST_CASE("methods: OPTIONS answers 204 with the route's Allow list") {
    BouncerProcess b;
    auto r = b.request("OPTIONS", remotes("push/register"));
    CHECK(r.status == 204);
    CHECK(r.body == "");
    REQUIRE(r.header("allow") != nullptr);
    CHECK(*r.header("allow") == "POST");
    r = b.request("OPTIONS", "/health");
    CHECK(r.status == 204);
    REQUIRE(r.header("allow") != nullptr);
    CHECK(*r.header("allow") == "GET, HEAD");
  }

  TEST_CASE("health: GET answers 200 JSON, HEAD the same without a body, POST is 405 GET, HEAD") {
    BouncerProcess b;
    auto g = b.request("GET", "/health");
    CHECK_MESSAGE(g.status == 200, show(g));
    CHECK(is_json_type(g));
    CHECK(JsonBody(g.body).valid());
    auto h = b.request("HEAD", "/health");
    CHECK(h.status == 200);
    CHECK(h.body == "");
    // RFC 9110 §9.3.2: HEAD carries the same header fields as GET (Content-Length included).
    if (g.header("content-length") != nullptr && h.header("content-length") != nullptr)
      CHECK(*h.header("content-length") == *g.header("content-length"));
    CHECK_405(b.request("POST", "/health", {}, ""), "GET, HEAD", "[\"GET\",\"HEAD\"]");
    // The connection is still usable after a HEAD response on keep-alive (no stray body bytes).
    HttpConnection c;
    REQUIRE(c.connect("127.0.0.1", b.port(), 2000));
    auto h2 = c.request("HEAD", "/health", {}, "", 5000);
    CHECK(h2.status == 200);
    auto g2 = c.request("GET", "/health", {}, "", 5000);
    CHECK(g2.status == 200);
    CHECK(g2.body == g.body);
  }

  TEST_CASE("unknown paths are 404 with a JSON error body") {
    BouncerProcess b;
    auto s = register_server(b, "nf.aloha-test.org");
    for (const std::string p : {"/", "/nope", "/api/v1/remotes/", "/api/v1/remotes/push/nothing",
                                "/api/v1/remotes/push/register/extra", "/API/V1/REMOTES/PUSH/REGISTER"}) {
      CAPTURE(p);
      auto r = b.request("POST", p, {}, "");
      JsonBody j(r.body);
      CHECK_MESSAGE(r.status == 404, show(r));
      CHECK(is_json_type(r));
      CHECK(j.str("result") == "error");
      CHECK(!j.str("msg").empty());
      r = b.get(p, s.auth());
      CHECK_MESSAGE(r.status == 404, show(r));
    }
  }
}
