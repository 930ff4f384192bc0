// OAuth2 for FCM: service-account parsing, the RS256 assertion (verified with mbedTLS through
// net::verify_rs256 and the test public key), and OAuthTokenCache driven by a FakeClock, a
// recording fetcher and a recording scheduler (no sockets).
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/encoding.h"
#include "net/pk.h"
#include "push/oauth.h"

using namespace aloha;
using namespace aloha::push;

namespace {

std::string data_dir() {
  const char* d = std::getenv("ALOHA_TEST_DATA");
  return d ? std::string(d) : std::string("tests/data");
}

// The checked-in service account has a "PORT" placeholder in token_uri: tests use a copy with a
// real port written in.
std::string sa_copy_path() {
  static std::string path;
  if (!path.empty()) return path;
  std::string text;
  FILE* in = std::fopen((data_dir() + "/tls/fcm-service-account.json").c_str(), "rb");
  REQUIRE(in != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) text.append(buf, n);
  std::fclose(in);
  for (size_t p; (p = text.find("localhost:PORT")) != std::string::npos;) text.replace(p, 14, "localhost:8443");
  path = "/tmp/aloha-unit-sa-" + std::to_string(::getpid()) + ".json";
  FILE* out = std::fopen(path.c_str(), "wb");
  REQUIRE(out != nullptr);
  std::fwrite(text.data(), 1, text.size(), out);
  std::fclose(out);
  return path;
}

std::string read_all(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  REQUIRE_MESSAGE(f != nullptr, path);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

bool b64url_decode(std::string_view in, std::string& out) {
  std::string s(in);
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  return enc::base64_decode(s, out);
}

std::string sa_path() { return sa_copy_path(); }

struct Loaded {
  ServiceAccount sa;
  std::unique_ptr<net::PrivateKey> key;
};

Loaded load() {
  Loaded l;
  std::string err;
  REQUIRE_MESSAGE(load_service_account(sa_path(), l.sa, l.key, err), err);
  return l;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The token cache with recorded I/O.
struct Harness {
  FakeClock clock;
  struct Fetch {
    std::string body;
    int64_t timeout_ms;
    OAuthTokenCache::FetchDone done;
  };
  std::vector<Fetch> fetches;
  std::vector<int64_t> schedules;
  std::unique_ptr<OAuthTokenCache> cache;

  explicit Harness(OAuthOptions opt = {}) {
    Loaded l = load();
    cache = std::make_unique<OAuthTokenCache>(
        l.sa, std::move(l.key), clock,
        [this](std::string body, int64_t timeout, OAuthTokenCache::FetchDone done) {
          fetches.push_back({std::move(body), timeout, std::move(done)});
        },
        [this](int64_t d) { schedules.push_back(d); }, opt, [] { return 0.5; });
  }
  // Answers the newest fetch.
  void answer(int status, const std::string& body) {
    REQUIRE(!fetches.empty());
    auto done = std::move(fetches.back().done);
    REQUIRE(done);
    done(status, body);
  }
  static std::string token_json(const std::string& tok, int64_t expires_in) {
    return R"({"access_token":")" + tok + R"(","expires_in":)" + std::to_string(expires_in) +
           R"(,"token_type":"Bearer"})";
  }
};

}  // namespace

TEST_SUITE("oauth") {

TEST_CASE("oauth: parses the service-account JSON and its token_uri") {
  Loaded l = load();
  CHECK(l.sa.project_id == "aloha-test-project");
  CHECK(l.sa.client_email == "aloha-test@aloha-test-project.iam.gserviceaccount.com");
  CHECK(l.sa.token_uri == "https://localhost:8443/token");
  CHECK(l.sa.token_url.authority == "localhost:8443");
  CHECK(l.sa.token_url.path == "/token");
  CHECK(l.key->is_rsa());
}

TEST_CASE("oauth: a service-account file with a missing field or a bad key is refused by name") {
  std::string err;
  ServiceAccount sa;
  CHECK_FALSE(parse_service_account("not json", sa, err));
  CHECK(err.find("JSON") != std::string::npos);
  CHECK_FALSE(parse_service_account(R"({"project_id":"p","client_email":"e","private_key":"k"})", sa, err));
  CHECK(err.find("token_uri") != std::string::npos);
  CHECK_FALSE(parse_service_account(
      R"({"project_id":"p/x","client_email":"e","private_key":"k","token_uri":"https://h/token"})", sa, err));
  CHECK(err.find("project_id") != std::string::npos);
  CHECK_FALSE(parse_service_account(
      R"({"project_id":"p","client_email":"e","private_key":"k","token_uri":"ftp://h/token"})", sa, err));
  CHECK(err.find("token_uri") != std::string::npos);

  std::unique_ptr<net::PrivateKey> key;
  CHECK_FALSE(load_service_account("/nonexistent/sa.json", sa, key, err));
  CHECK(err.find("/nonexistent/sa.json") != std::string::npos);
  CHECK(key == nullptr);
  // A well-formed file whose private_key is an EC key: refused (RS256 needs RSA).
  std::string path = "/tmp/aloha-oauth-test-" + std::to_string(::getpid()) + ".json";
  std::string ec = read_all(data_dir() + "/tls/apns-key.p8");
  rapidjson::Document d;
  d.SetObject();
  auto& a = d.GetAllocator();
  d.AddMember("project_id", "p", a);
  d.AddMember("client_email", "e@x", a);
  d.AddMember("private_key", rapidjson::Value(ec.c_str(), a), a);
  d.AddMember("token_uri", "https://localhost/token", a);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  d.Accept(w);
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  std::fputs(sb.GetString(), f);
  std::fclose(f);
  CHECK_FALSE(load_service_account(path, sa, key, err));
  CHECK(err.find("RSA") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("oauth: URLs give host, port, path and :authority") {
  UrlParts u;
  std::string err;
  REQUIRE(parse_url("https://oauth2.googleapis.com/token", u, err));
  CHECK(u.tls);
  CHECK(u.host == "oauth2.googleapis.com");
  CHECK(u.port == 443);
  CHECK(u.path == "/token");
  CHECK(u.authority == "oauth2.googleapis.com");
  REQUIRE(parse_url("https://localhost:8443", u, err));
  CHECK(u.port == 8443);
  CHECK(u.path.empty());
  CHECK(u.authority == "localhost:8443");
  REQUIRE(parse_url("http://[::1]:9000/base", u, err));
  CHECK_FALSE(u.tls);
  CHECK(u.host == "::1");
  CHECK(u.authority == "[::1]:9000");
  CHECK(u.path == "/base");
  CHECK_FALSE(parse_url("https://:443/", u, err));
  CHECK_FALSE(parse_url("https://h:99999/", u, err));
  CHECK_FALSE(parse_url("h:1/", u, err));
}

TEST_CASE("oauth: the assertion is an RS256 JWT that verifies with the service account's public key") {
  Loaded l = load();
  std::string jwt = make_assertion(l.sa, *l.key, 1'767'225'600);
  size_t d1 = jwt.find('.'), d2 = jwt.rfind('.');
  REQUIRE(d1 != std::string::npos);
  REQUIRE(d2 > d1);
  std::string header, claims, sig;
  REQUIRE(b64url_decode(jwt.substr(0, d1), header));
  REQUIRE(b64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1), claims));
  REQUIRE(b64url_decode(jwt.substr(d2 + 1), sig));
  rapidjson::Document h, c;
  h.Parse(header.c_str());
  REQUIRE(h.IsObject());
  CHECK(std::string(h["alg"].GetString()) == "RS256");
  c.Parse(claims.c_str());
  REQUIRE(c.IsObject());
  CHECK(std::string(c["iss"].GetString()) == l.sa.client_email);
  CHECK(std::string(c["scope"].GetString()) == "https://www.googleapis.com/auth/firebase.messaging");
  CHECK(std::string(c["aud"].GetString()) == l.sa.token_uri);
  CHECK(c["iat"].GetInt64() == 1'767'225'600);
  CHECK(c["exp"].GetInt64() == 1'767'225'600 + 3600);
  CHECK(sig.size() == 256);  // 2048-bit modulus

  std::string pub = read_all(data_dir() + "/tls/fcm-key.pub.pem");
  CHECK(net::verify_rs256(pub, jwt.substr(0, d2), sig));
  // A changed claim or signature no longer verifies (the check can fail).
  std::string bad = sig;
  bad[5] = static_cast<char>(bad[5] ^ 1);
  CHECK_FALSE(net::verify_rs256(pub, jwt.substr(0, d2), bad));
  std::string other = enc::base64url_encode(R"({"iss":"x"})");
  CHECK_FALSE(net::verify_rs256(pub, jwt.substr(0, d1 + 1) + other, sig));
  // exp never exceeds iat + 3600, whatever the caller asks.
  std::string longer = make_assertion(l.sa, *l.key, 100, 99999);
  size_t e1 = longer.find('.'), e2 = longer.rfind('.');
  REQUIRE(b64url_decode(longer.substr(e1 + 1, e2 - e1 - 1), claims));
  c.Parse(claims.c_str());
  CHECK(c["exp"].GetInt64() - c["iat"].GetInt64() == 3600);
}

TEST_CASE("oauth: token request is the jwt-bearer form, token responses are parsed strictly") {
  std::string body = token_request_body("aaa.bbb.ccc");
  CHECK(url_decode(body) == "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=aaa.bbb.ccc");
  std::string tok;
  int64_t exp = 0;
  CHECK(parse_token_response(R"({"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"})", tok, exp));
  CHECK(tok == "ya29.x");
  CHECK(exp == 3599);
  CHECK_FALSE(parse_token_response(R"({"access_token":"","expires_in":3599})", tok, exp));
  CHECK_FALSE(parse_token_response(R"({"access_token":"a b","expires_in":3599})", tok, exp));
  CHECK_FALSE(parse_token_response(R"({"access_token":"a","expires_in":0})", tok, exp));
  CHECK_FALSE(parse_token_response(R"({"expires_in":10})", tok, exp));
  CHECK_FALSE(parse_token_response("<html>", tok, exp));
}

TEST_CASE("oauth: sends share one refresh and all wait for it") {
  Harness h;
  std::vector<TokenState> got;
  CHECK(h.cache->authorization() == nullptr);
  CHECK(h.cache->when_ready([&](TokenState s) { got.push_back(s); }) == TokenState::pending);
  CHECK(h.cache->when_ready([&](TokenState s) { got.push_back(s); }) == TokenState::pending);
  CHECK(h.cache->when_ready([&](TokenState s) { got.push_back(s); }) == TokenState::pending);
  CHECK(h.fetches.size() == 1);  // one refresh at a time
  CHECK(got.empty());            // never called inside when_ready
  // The fetch carries a fresh assertion.
  CHECK(h.fetches[0].body.find("assertion=") != std::string::npos);
  h.answer(200, Harness::token_json("tok1", 3600));
  CHECK(got == std::vector<TokenState>{TokenState::ready, TokenState::ready, TokenState::ready});
  REQUIRE(h.cache->authorization() != nullptr);
  CHECK(*h.cache->authorization() == "Bearer tok1");
  CHECK(h.cache->when_ready([&](TokenState) { FAIL("not queued"); }) == TokenState::ready);
  CHECK(h.fetches.size() == 1);
}

TEST_CASE("oauth: refreshes a few minutes before expiry and keeps the old token meanwhile") {
  Harness h;
  h.cache->when_ready([](TokenState) {});
  h.answer(200, Harness::token_json("tok1", 3600));
  REQUIRE(!h.schedules.empty());
  CHECK(h.schedules.back() == (3600 - 300) * 1000);  // 5 minutes before expiry
  uint64_t gen1 = h.cache->generation();

  h.clock.advance_ms((3600 - 301) * 1000);
  h.cache->on_timer();  // early wake-up: re-arms, does not fetch
  CHECK(h.fetches.size() == 1);
  h.clock.advance_ms(1000);
  h.cache->on_timer();
  CHECK(h.fetches.size() == 2);
  CHECK(h.cache->refreshing());
  // The old token is still served while the refresh runs: no send waits.
  REQUIRE(h.cache->authorization() != nullptr);
  CHECK(*h.cache->authorization() == "Bearer tok1");
  CHECK(h.cache->when_ready([](TokenState) { FAIL("not queued"); }) == TokenState::ready);
  h.answer(200, Harness::token_json("tok2", 3600));
  CHECK(*h.cache->authorization() == "Bearer tok2");
  CHECK(h.cache->generation() == gen1 + 1);
}

TEST_CASE("oauth: a short-lived token is refreshed at half its lifetime and unused near expiry") {
  Harness h;
  h.cache->when_ready([](TokenState) {});
  h.answer(200, Harness::token_json("short", 5));
  CHECK(h.schedules.back() == 2500);
  // Usable until shortly before expiry (a tenth of the lifetime as safety margin).
  h.clock.advance_ms(4400);
  CHECK(h.cache->authorization() != nullptr);
  h.clock.advance_ms(200);
  CHECK(h.cache->authorization() == nullptr);
  int called = 0;
  CHECK(h.cache->when_ready([&](TokenState s) { called += s == TokenState::ready; }) == TokenState::pending);
  CHECK(h.fetches.size() == 2);
  h.answer(200, Harness::token_json("short2", 5));
  CHECK(called == 1);
}

TEST_CASE("oauth: token endpoint down fails waiters as unavailable, backs off, and recovers") {
  Harness h;
  std::vector<TokenState> got;
  h.cache->when_ready([&](TokenState s) { got.push_back(s); });
  h.cache->when_ready([&](TokenState s) { got.push_back(s); });
  h.answer(503, R"({"error":"temporarily_unavailable"})");
  CHECK(got == std::vector<TokenState>{TokenState::unavailable, TokenState::unavailable});
  CHECK(h.cache->authorization() == nullptr);
  REQUIRE(!h.schedules.empty());
  int64_t delay = h.schedules.back();
  CHECK(delay >= 200);
  CHECK(delay <= 1000);
  // While backing off, sends fail fast instead of queuing behind a dead endpoint.
  CHECK(h.cache->when_ready([](TokenState) { FAIL("not queued"); }) == TokenState::unavailable);
  CHECK(h.fetches.size() == 1);
  // A transport failure (status 0) is "unavailable" too, and the delay grows.
  h.clock.advance_ms(delay);
  h.cache->on_timer();
  REQUIRE(h.fetches.size() == 2);
  h.answer(0, "");
  int64_t delay2 = h.schedules.back();
  CHECK(delay2 > delay);
  // Recovery: the next attempt succeeds without any send asking for it.
  h.clock.advance_ms(delay2);
  h.cache->on_timer();
  REQUIRE(h.fetches.size() == 3);
  h.answer(200, Harness::token_json("back", 3600));
  REQUIRE(h.cache->authorization() != nullptr);
  CHECK(*h.cache->authorization() == "Bearer back");
  CHECK(h.cache->when_ready([](TokenState) {}) == TokenState::ready);
}

TEST_CASE("oauth: a 4xx from the token endpoint is a credential rejection, not a retry") {
  Harness h;
  TokenState got = TokenState::ready;
  h.cache->when_ready([&](TokenState s) { got = s; });
  h.answer(400, R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})");
  CHECK(got == TokenState::rejected);
  CHECK(h.cache->when_ready([](TokenState) {}) == TokenState::rejected);
  // A 200 without a usable token is not success either.
  h.clock.advance_ms(h.schedules.back());
  h.cache->on_timer();
  REQUIRE(h.fetches.size() == 2);
  h.answer(200, R"({"nope":1})");
  CHECK(h.cache->authorization() == nullptr);
}

TEST_CASE("oauth: a 401 invalidates only the token it was sent with, and refreshes once") {
  Harness h;
  h.cache->when_ready([](TokenState) {});
  h.answer(200, Harness::token_json("tok1", 3600));
  uint64_t g1 = h.cache->generation();
  std::shared_ptr<const std::string> shared1 = h.cache->shared_authorization();
  REQUIRE(shared1 != nullptr);
  CHECK(*shared1 == "Bearer tok1");
  h.cache->invalidate(g1);
  CHECK(h.cache->authorization() == nullptr);
  CHECK(h.cache->shared_authorization() == nullptr);
  CHECK(h.fetches.size() == 2);
  h.cache->invalidate(g1);  // a second 401 for the same token: same refresh
  CHECK(h.fetches.size() == 2);
  std::vector<TokenState> got;
  CHECK(h.cache->when_ready([&](TokenState s) { got.push_back(s); }) == TokenState::pending);
  h.answer(200, Harness::token_json("tok2", 3600));
  CHECK(got == std::vector<TokenState>{TokenState::ready});
  h.cache->invalidate(g1);  // stale generation: the new token stays
  REQUIRE(h.cache->authorization() != nullptr);
  CHECK(*h.cache->authorization() == "Bearer tok2");
  REQUIRE(h.cache->shared_authorization() != nullptr);
  CHECK(*h.cache->shared_authorization() == "Bearer tok2");
  CHECK(*shared1 == "Bearer tok1");  // a request still holding the old buffer sees it unchanged
  CHECK(h.fetches.size() == 2);
}

TEST_CASE("oauth: the waiting queue is bounded and close() releases it") {
  OAuthOptions o;
  o.max_waiters = 2;
  Harness h(o);
  std::vector<TokenState> got;
  CHECK(h.cache->when_ready([&](TokenState s) { got.push_back(s); }) == TokenState::pending);
  CHECK(h.cache->when_ready([&](TokenState s) { got.push_back(s); }) == TokenState::pending);
  CHECK(h.cache->when_ready([&](TokenState s) { got.push_back(s); }) == TokenState::unavailable);
  CHECK(h.cache->waiters() == 2);
  h.cache->close();
  CHECK(got == std::vector<TokenState>{TokenState::unavailable, TokenState::unavailable});
  // A late answer after close is ignored.
  h.answer(200, Harness::token_json("late", 3600));
  CHECK(h.cache->authorization() == nullptr);
}

}  // TEST_SUITE
