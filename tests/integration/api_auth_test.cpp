// api.md §2: HTTP Basic authentication (every row of the table, in order) and the per-server rate
// limit with its headers, against the real binary.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>

#include "api_checks.h"

using namespace aloha;
using namespace aloha::test;

namespace {

const std::string kUnregAll = remotes("push/unregister/all");
const std::string kPushRegister = remotes("push/register");

HttpResult with_authorization(BouncerProcess& b, const std::string& value) {
  return b.request("POST", kUnregAll,
                   {{"Content-Type", "application/x-www-form-urlencoded"}, {"Authorization", value}},
                   "user_id=1");
}

std::string b64(const std::string& s) {
  // Standard padded base64 of arbitrary bytes (basic_auth() always inserts the ':').
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    unsigned v = (unsigned(uint8_t(s[i])) << 16) | (unsigned(uint8_t(s[i + 1])) << 8) | uint8_t(s[i + 2]);
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (s.size() - i == 1) {
    unsigned v = unsigned(uint8_t(s[i])) << 16;
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], '=', '='};
  } else if (s.size() - i == 2) {
    unsigned v = (unsigned(uint8_t(s[i])) << 16) | (unsigned(uint8_t(s[i + 1])) << 8);
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

const std::string kInvalidHeader = "Invalid authorization header for basic auth";

std::string header_or(const HttpResult& r, const char* name) {
  const std::string* v = r.header(name);
  return v == nullptr ? "<absent>" : *v;
}

long long header_int(const HttpResult& r, const char* name) {
  const std::string* v = r.header(name);
  if (v == nullptr || v->empty()) return -1;
  for (char c : *v)
    if (c < '0' || c > '9') return -2;
  return std::stoll(*v);
}

}  // namespace

TEST_SUITE("integration/api/auth") {
  TEST_CASE("auth: every row of the Basic-auth table with its status, code, msg and WWW-Authenticate") {
    BouncerProcess b;
    auto s = register_server(b, "auth.aloha-test.org");
    std::string good = b64(s.uuid + ":" + s.key);
    CHECK_OK(with_authorization(b, "Basic " + good));

    // Row 1: no Authorization header.
    CHECK_ERR(b.post_form(kUnregAll, {{"user_id", "1"}}), 401, "UNAUTHORIZED",
              "Missing authorization header for basic auth");
    // Row 2: not exactly two whitespace-separated parts.
    CHECK_ERR(with_authorization(b, "Basic"), 401, "UNAUTHORIZED", kInvalidHeader);
    CHECK_ERR(with_authorization(b, good), 401, "UNAUTHORIZED", kInvalidHeader);
    CHECK_ERR(with_authorization(b, "Basic " + good + " extra"), 401, "UNAUTHORIZED", kInvalidHeader);
    // Row 3: another scheme (checked before the credentials are decoded).
    CHECK_ERR(with_authorization(b, "Bearer " + good), 400, "BAD_REQUEST",
              "This endpoint requires HTTP basic authentication.");
    CHECK_ERR(with_authorization(b, "Digest !!!"), 400, "BAD_REQUEST",
              "This endpoint requires HTTP basic authentication.");
    // The scheme is case-insensitive.
    CHECK_OK(with_authorization(b, "bAsIc " + good));
    CHECK_OK(with_authorization(b, "BASIC " + good));
    // Row 4: bad base64, not UTF-8, not exactly one ':'.
    CHECK_ERR(with_authorization(b, "Basic !!!!"), 401, "UNAUTHORIZED", kInvalidHeader);
    std::string unpadded = good;
    while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
    if (unpadded != good)
      CHECK_ERR(with_authorization(b, "Basic " + unpadded), 401, "UNAUTHORIZED", kInvalidHeader);
    CHECK_ERR(with_authorization(b, "Basic " + b64("YWJj")), 401, "UNAUTHORIZED", kInvalidHeader);  // no ':'
    CHECK_ERR(with_authorization(b, "Basic " + b64(s.uuid)), 401, "UNAUTHORIZED", kInvalidHeader);
    CHECK_ERR(with_authorization(b, "Basic " + b64(s.uuid + ":" + s.key + ":x")), 401, "UNAUTHORIZED",
              kInvalidHeader);
    CHECK_ERR(with_authorization(b, "Basic " + b64("\xff\xfe:\xfd")), 401, "UNAUTHORIZED", kInvalidHeader);
    CHECK_ERR(with_authorization(b, "Basic " + b64(s.uuid + ":\xc3(")), 401, "UNAUTHORIZED", kInvalidHeader);
    // Row 5: a user (an '@' in the username), not a server.
    CHECK_ERR(with_authorization(b, "Basic " + b64("someone@aloha-test.org:" + s.key)), 400, "BAD_REQUEST",
              "Must validate with valid Aloha server API key");
    // Row 6: unknown id, a non-UUID, and a different spelling of a registered id.
    for (const std::string& id : {random_uuid4(), std::string("not-a-uuid"), [&] {
           std::string u = s.uuid;
           for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
           return u;
         }()}) {
      CAPTURE(id);
      CHECK_ERR(b.post_form(kUnregAll, {{"user_id", "1"}}, BasicAuth{id, s.key}), 401, "UNAUTHORIZED",
                "Aloha server auth failure: " + id +
                    " is not registered -- did you run `manage.py register_server`?");
    }
    // Row 7: key mismatch (also a key of another server, and the right key with a different length).
    auto other = register_server(b, "auth2.aloha-test.org");
    const std::string mismatch = "Aloha server auth failure: key does not match role " + s.uuid;
    CHECK_ERR(b.post_form(kUnregAll, {{"user_id", "1"}}, BasicAuth{s.uuid, other.key}), 401, "UNAUTHORIZED", mismatch);
    CHECK_ERR(b.post_form(kUnregAll, {{"user_id", "1"}}, BasicAuth{s.uuid, s.key.substr(1)}), 401, "UNAUTHORIZED", mismatch);
    CHECK_ERR(b.post_form(kUnregAll, {{"user_id", "1"}}, BasicAuth{s.uuid, ""}), 401, "UNAUTHORIZED", mismatch);
    // Row 8 (deactivated) is covered with server/deactivate in api_servers_test.cpp.
  }

  TEST_CASE("auth: the three server/register routes need no authentication") {
    BouncerProcess b;
    // A wrong Authorization header does not matter on server/register.
    auto r = b.request("POST", remotes("server/register"),
                       {{"Content-Type", "application/x-www-form-urlencoded"}, {"Authorization", "Bearer x"}},
                       form_encode({{"aloha_org_id", random_uuid4()}, {"aloha_org_key", random_key()},
                                    {"hostname", "noauth.aloha-test.org"}, {"contact_email", "a@aloha-test.org"}}));
    CHECK_OK(r);
  }
}

TEST_SUITE("integration/api/rate_limit") {
  TEST_CASE("rate limit: 5 per minute, X-RateLimit-* on every authed response, 429 with retry-after") {
    BouncerProcess b("[limits]\nrequests_per_minute = 5\n");
    auto s = register_server(b, "rl.aloha-test.org");
    auto s2 = register_server(b, "rl2.aloha-test.org");
    // Failed authentications do not count.
    for (int i = 0; i < 7; ++i)
      CHECK_ERR(b.post_form(kUnregAll, {{"user_id", "1"}}, BasicAuth{s.uuid, random_key()}), 401,
                "UNAUTHORIZED", "Aloha server auth failure: key does not match role " + s.uuid);
    int64_t first_at = wall_s();
    for (int i = 1; i <= 5; ++i) {
      CAPTURE(i);
      HttpResult r;
      int64_t t0 = wall_s();
      if (i == 3) {
        // A request that passes auth and then fails validation counts and carries the headers.
        r = b.post_form(kPushRegister, {{"user_id", "1"}, {"token", "abc"}, {"token_kind", "7"}}, s.auth());
        CHECK_BAD(r, "Invalid token type");
      } else {
        r = b.post_form(kUnregAll, {{"user_id", "1"}}, s.auth());
        CHECK_OK(r);
      }
      int64_t t1 = wall_s();
      CHECK(header_or(r, "x-ratelimit-limit") == "5");
      CHECK(header_int(r, "x-ratelimit-remaining") == 5 - i);
      long long reset = header_int(r, "x-ratelimit-reset");
      CHECK_MESSAGE((reset >= t0 + 60 && reset <= t1 + 60), "X-RateLimit-Reset=" << header_or(r, "x-ratelimit-reset"));
    }
    // The 6th is refused.
    int64_t t0 = wall_s();
    auto r = b.post_form(kUnregAll, {{"user_id", "1"}}, s.auth());
    int64_t t1 = wall_s();
    CHECK_ERR(r, 429, "RATE_LIMIT_HIT", "API usage exceeded rate limit");
    JsonBody j(r.body);
    REQUIRE_MESSAGE(j.number("retry-after").has_value(), show(r));
    double ra = *j.number("retry-after");
    CHECK_MESSAGE(j.is_float("retry-after"), "retry-after is not written as a float: " << j.raw("retry-after"));
    CHECK(ra > 0.0);
    CHECK(ra <= 60.0);
    CHECK(ra >= 60.0 - static_cast<double>(t1 - first_at) - 1.0);
    long long retry_hdr = header_int(r, "retry-after");
    CHECK_MESSAGE(retry_hdr >= 1, "Retry-After=" << header_or(r, "retry-after"));
    // ceil of the same value; one more allowed when the body's float was printed rounded down.
    long long want = static_cast<long long>(std::max(1.0, std::ceil(ra)));
    CHECK_MESSAGE((retry_hdr == want || retry_hdr == want + 1),
                  "Retry-After=" << retry_hdr << " retry-after=" << j.raw("retry-after"));
    CHECK(header_or(r, "x-ratelimit-limit") == "5");
    CHECK(header_or(r, "x-ratelimit-remaining") == "0");
    long long reset = header_int(r, "x-ratelimit-reset");
    CHECK_MESSAGE((reset >= t0 + static_cast<long long>(ra) - 1 && reset <= t1 + static_cast<long long>(ra) + 1),
                  "X-RateLimit-Reset=" << header_or(r, "x-ratelimit-reset") << " retry-after=" << ra);
    // A refused request that would also fail validation is still a 429 (limit before the endpoint).
    r = b.post_form(kPushRegister, {{"token_kind", "7"}}, s.auth());
    CHECK_ERR(r, 429, "RATE_LIMIT_HIT", "API usage exceeded rate limit");

    // Refused requests do not count: after a pause, retry-after keeps shrinking instead of
    // restarting at ~60 s.
    std::this_thread::sleep_for(std::chrono::milliseconds(1600));
    r = b.post_form(kUnregAll, {{"user_id", "1"}}, s.auth());
    CHECK_ERR(r, 429, "RATE_LIMIT_HIT", "API usage exceeded rate limit");
    double ra2 = JsonBody(r.body).number("retry-after").value_or(-1);
    CHECK_MESSAGE(ra2 <= ra - 1.0, "retry-after did not shrink: " << ra << " then " << ra2);
    CHECK(ra2 > 0.0);

    // Failed auth while limited is still the auth error, not 429.
    CHECK_ERR(b.post_form(kUnregAll, {{"user_id", "1"}}, BasicAuth{s.uuid, random_key()}), 401, "UNAUTHORIZED",
              "Aloha server auth failure: key does not match role " + s.uuid);
    // The limit is per server.
    r = b.post_form(kUnregAll, {{"user_id", "1"}}, s2.auth());
    CHECK_OK(r);
    CHECK(header_or(r, "x-ratelimit-remaining") == "4");
    // server/register is not rate limited per server.
    for (int i = 0; i < 7; ++i)
      CHECK_OK(b.post_form(remotes("server/register"), {{"aloha_org_id", s.uuid}, {"aloha_org_key", s.key},
                                                        {"hostname", "rl.aloha-test.org"},
                                                        {"contact_email", "a@aloha-test.org"}}));
  }
}
