// FcmPusher's engine with injected transport and timers under a FakeClock (no sockets): request
// shape, payload limit, outcome handling through map_fcm, the 401 → refresh → retry rule, the
// retry heap (backoff, Retry-After, QUOTA_EXCEEDED ≥ 60 s, deadlines), token-endpoint failure,
// capacity and close().
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/clock.h"
#include "push/fcm_pusher.h"
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

std::string fcm_err(int code, const char* status, const char* error_code, const char* field = nullptr,
                    const char* message = "err") {
  std::string b = "{\"error\":{\"code\":" + std::to_string(code) + ",\"message\":\"" + message +
                  "\",\"status\":\"" + status + "\",\"details\":[";
  bool first = true;
  if (error_code) {
    b += std::string("{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"") +
         error_code + "\"}";
    first = false;
  }
  if (field) {
    if (!first) b += ",";
    b += std::string("{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":\"") +
         field + "\"}]}";
  }
  return b + "]}}";
}

struct Harness {
  FakeClock clock;
  struct Sent {
    h2::H2Request req;
    int64_t timeout_ms;
    h2::Completion done;
  };
  std::vector<Sent> sent;
  std::vector<int64_t> pusher_timer;
  std::vector<OAuthTokenCache::FetchDone> fetches;
  std::vector<int64_t> token_timer;
  std::vector<Outcome> outcomes;
  std::unique_ptr<FcmPusher> pusher;

  explicit Harness(FcmPusherOptions opt = {}) {
    UrlParts ep;
    std::string err;
    REQUIRE(parse_url("https://fcm.googleapis.com", ep, err));
    pusher = std::make_unique<FcmPusher>(
        "aloha-test-project", ep, clock,
        [this](h2::H2Request r, int64_t t, h2::Completion d) -> uint64_t {
          sent.push_back({std::move(r), t, std::move(d)});
          return sent.size();
        },
        [this](int64_t d) { pusher_timer.push_back(d); }, opt, [] { return 0.5; });
    ServiceAccount sa;
    std::unique_ptr<net::PrivateKey> key;
    REQUIRE_MESSAGE(load_service_account(sa_copy_path(), sa, key, err), err);
    pusher->set_token_cache(std::make_unique<OAuthTokenCache>(
        sa, std::move(key), clock,
        [this](std::string, int64_t, OAuthTokenCache::FetchDone d) { fetches.push_back(std::move(d)); },
        [this](int64_t d) { token_timer.push_back(d); }, OAuthOptions{}, [] { return 0.5; }));
  }

  bool send(const std::string& token, int64_t deadline_in_ms = 60'000,
            const std::string& payload = R"({"event":"message","n":"1"})", bool high = true,
            int64_t ttl = -1) {
    PushMessage m;
    m.platform = Platform::fcm;
    m.token = token;
    m.payload = payload;
    m.fcm_high_priority = high;
    m.fcm_ttl_s = ttl;
    return pusher->send(std::move(m), clock.mono_ms() + deadline_in_ms,
                        [this](const Outcome& o) { outcomes.push_back(o); });
  }
  void give_token(const std::string& tok, int64_t expires_in = 3600) {
    REQUIRE(!fetches.empty());
    auto d = std::move(fetches.back());
    fetches.pop_back();
    d(200, R"({"access_token":")" + tok + R"(","expires_in":)" + std::to_string(expires_in) + "}");
  }
  void respond(size_t i, int status, const std::string& body = "{}",
               std::vector<h2::H2Header> headers = {}) {
    REQUIRE(i < sent.size());
    h2::H2Response r;
    r.request_id = i + 1;
    r.status = status;
    r.body = body;
    r.headers = std::move(headers);
    r.request_sent = true;
    auto d = std::move(sent[i].done);
    d(r);
  }
  void fail(size_t i, h2::FailureKind k) {
    h2::H2Response r;
    r.failure = k;
    auto d = std::move(sent[i].done);
    d(r);
  }
  const std::string* header(size_t i, const std::string& name) {
    for (const auto& h : sent[i].req.headers)
      if (h.name == name) return h.shared_value ? h.shared_value.get() : &h.value;
    return nullptr;
  }
  void tick() { pusher->on_timer(); }
};

}  // namespace

TEST_SUITE("fcm") {

TEST_CASE("fcm: a push waits for the OAuth token, then POSTs the v1 message with the bearer token") {
  Harness h;
  REQUIRE(h.send("tokA"));
  CHECK(h.sent.empty());          // no token yet
  REQUIRE(h.fetches.size() == 1);  // one token request
  h.give_token("ya29.one");
  REQUIRE(h.sent.size() == 1);
  const auto& req = h.sent[0].req;
  CHECK(req.method == "POST");
  CHECK(req.path == "/v1/projects/aloha-test-project/messages:send");
  CHECK(req.authority == "fcm.googleapis.com");
  REQUIRE(h.header(0, "authorization") != nullptr);
  CHECK(*h.header(0, "authorization") == "Bearer ya29.one");
  CHECK(req.headers[0].shared_value != nullptr);  // the cached token's buffer, not a copy
  CHECK(req.headers[0].value.empty());
  REQUIRE(h.header(0, "content-type") != nullptr);
  CHECK(h.header(0, "content-type")->rfind("application/json", 0) == 0);
  rapidjson::Document d;
  std::string body(req.body_data());
  d.Parse(body.c_str());
  REQUIRE(d.IsObject());
  const auto& m = d["message"];
  CHECK(std::string(m["token"].GetString()) == "tokA");
  CHECK(std::string(m["data"]["event"].GetString()) == "message");
  CHECK(std::string(m["android"]["priority"].GetString()) == "HIGH");
  CHECK_FALSE(m["android"].HasMember("ttl"));

  h.respond(0, 200, R"({"name":"projects/aloha-test-project/messages/1"})");
  CHECK(h.outcomes.empty());  // reported from the timer, not inside the completion chain
  h.tick();
  REQUIRE(h.outcomes.size() == 1);
  CHECK(h.outcomes[0].kind == OutcomeKind::delivered);
  CHECK(h.pusher->pending() == 0);

  // Later sends reuse the cached token without another token request.
  REQUIRE(h.send("tokB", 60'000, R"({"event":"remove"})", false, 120));
  REQUIRE(h.sent.size() == 2);
  CHECK(h.fetches.empty());
  std::string body1(h.sent[1].req.body_data());
  d.Parse(body1.c_str());
  CHECK(std::string(d["message"]["android"]["priority"].GetString()) == "NORMAL");
  CHECK(std::string(d["message"]["android"]["ttl"].GetString()) == "120s");
}

TEST_CASE("fcm: the request body escapes the token and embeds the data object") {
  PushMessage m;
  m.token = "a\"b\\c";
  m.payload = R"({"k":"v"})";
  std::string b = FcmPusher::build_body(m);
  rapidjson::Document d;
  d.Parse(b.c_str());
  REQUIRE(d.IsObject());
  CHECK(std::string(d["message"]["token"].GetString()) == "a\"b\\c");
  CHECK(std::string(d["message"]["data"]["k"].GetString()) == "v");
  m.payload.clear();
  d.Parse(FcmPusher::build_body(m).c_str());
  REQUIRE(d.IsObject());
  CHECK(d["message"]["data"].IsObject());
}

TEST_CASE("fcm: data above 4096 bytes is a request bug and nothing is sent") {
  Harness h;
  std::string big = R"({"k":")" + std::string(4100, 'x') + "\"}";
  REQUIRE(h.send("tokA", 60'000, big));
  CHECK(h.outcomes.empty());  // never inside send()
  REQUIRE(!h.pusher_timer.empty());
  CHECK(h.pusher_timer.back() == 0);
  h.tick();
  REQUIRE(h.outcomes.size() == 1);
  CHECK(h.outcomes[0].kind == OutcomeKind::request_bug);
  CHECK(h.sent.empty());
  CHECK(h.fetches.empty());
  // Exactly at the limit it goes out.
  std::string edge = R"({"k":")" + std::string(4096 - 8, 'x') + "\"}";
  REQUIRE(edge.size() == 4096);
  REQUIRE(h.send("tokB", 60'000, edge));
  h.give_token("t");
  CHECK(h.sent.size() == 1);
}

TEST_CASE("fcm: each FCM error answer maps to its outcome without a retry") {
  struct Case {
    int status;
    std::string body;
    OutcomeKind kind;
  };
  std::vector<Case> cases = {
      {404, fcm_err(404, "NOT_FOUND", "UNREGISTERED"), OutcomeKind::dead_token},
      {400, fcm_err(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "message.token"), OutcomeKind::dead_token},
      {400, fcm_err(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "message.data[0].value"), OutcomeKind::request_bug},
      {403, fcm_err(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), OutcomeKind::dead_token},
      {401, fcm_err(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), OutcomeKind::credential_problem},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    Harness h;
    REQUIRE(h.send("tok"));
    h.give_token("t");
    REQUIRE(h.sent.size() == 1);
    h.respond(0, c.status, c.body);
    h.tick();
    REQUIRE(h.outcomes.size() == 1);
    CHECK(h.outcomes[0].kind == c.kind);
    CHECK(h.outcomes[0].status == c.status);
    CHECK(h.sent.size() == 1);    // never resent
    CHECK(h.fetches.empty());     // no token refresh either
  }
}

TEST_CASE("fcm: a 401 without an FCM error code refreshes the token once and retries") {
  Harness h;
  REQUIRE(h.send("tok"));
  h.give_token("old");
  REQUIRE(h.sent.size() == 1);
  h.respond(0, 401, R"({"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}})");
  REQUIRE(h.fetches.size() == 1);  // a refresh started
  CHECK(h.sent.size() == 1);       // the resend waits for it
  h.give_token("new");
  REQUIRE(h.sent.size() == 2);
  CHECK(*h.header(1, "authorization") == "Bearer new");
  h.respond(1, 200);
  h.tick();
  REQUIRE(h.outcomes.size() == 1);
  CHECK(h.outcomes[0].kind == OutcomeKind::delivered);
  CHECK(h.pusher->stats().token_retries == 1);

  // Only once: a second 401 for the same push is a credential problem.
  REQUIRE(h.send("tok2"));
  REQUIRE(h.sent.size() == 3);
  h.respond(2, 401, R"({"error":{"code":401,"status":"UNAUTHENTICATED"}})");
  h.give_token("newer");
  REQUIRE(h.sent.size() == 4);
  h.respond(3, 401, R"({"error":{"code":401,"status":"UNAUTHENTICATED"}})");
  h.tick();
  REQUIRE(h.outcomes.size() == 2);
  CHECK(h.outcomes[1].kind == OutcomeKind::credential_problem);
  CHECK(h.sent.size() == 4);
}

TEST_CASE("fcm: 503 and lost connections are retried from the timer heap until success") {
  Harness h;
  REQUIRE(h.send("tok"));
  h.give_token("t");
  h.respond(0, 503, fcm_err(503, "UNAVAILABLE", "UNAVAILABLE"));
  CHECK(h.outcomes.empty());
  REQUIRE(!h.pusher_timer.empty());
  int64_t d1 = h.pusher_timer.back();
  CHECK(d1 == 500);  // full jitter with random 0.5 of base 1000
  h.clock.advance_ms(d1 - 1);
  h.tick();
  CHECK(h.sent.size() == 1);  // not yet due
  h.clock.advance_ms(1);
  h.tick();
  REQUIRE(h.sent.size() == 2);
  h.fail(1, h2::FailureKind::connection_lost);
  int64_t d2 = h.pusher_timer.back();
  CHECK(d2 == 1000);  // exponential: the ceiling doubled
  h.clock.advance_ms(d2);
  h.tick();
  REQUIRE(h.sent.size() == 3);
  h.respond(2, 200);
  h.tick();
  REQUIRE(h.outcomes.size() == 1);
  CHECK(h.outcomes[0].kind == OutcomeKind::delivered);
  CHECK(h.pusher->stats().retries == 2);
}

TEST_CASE("fcm: Retry-After is honoured and QUOTA_EXCEEDED waits at least 60 s") {
  Harness h;
  REQUIRE(h.send("tok", 300'000));
  h.give_token("t");
  h.respond(0, 503, fcm_err(503, "UNAVAILABLE", "UNAVAILABLE"), {{"retry-after", "7"}});
  CHECK(h.pusher_timer.back() == 7000);
  h.clock.advance_ms(7000);
  h.tick();
  REQUIRE(h.sent.size() == 2);
  h.respond(1, 429, fcm_err(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"));
  CHECK(h.pusher_timer.back() == 60'000);
  h.clock.advance_ms(59'999);
  h.tick();
  CHECK(h.sent.size() == 2);
  h.clock.advance_ms(1);
  h.tick();
  CHECK(h.sent.size() == 3);
}

TEST_CASE("fcm: a retry that would pass the deadline reports retry_later at once") {
  Harness h;
  REQUIRE(h.send("tok", 10'000));
  h.give_token("t");
  h.respond(0, 429, fcm_err(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"));
  h.tick();
  REQUIRE(h.outcomes.size() == 1);
  CHECK(h.outcomes[0].kind == OutcomeKind::retry_later);
  CHECK(h.outcomes[0].reason == "QUOTA_EXCEEDED");
  CHECK(h.outcomes[0].retry_after_ms >= 60'000);
  CHECK(h.sent.size() == 1);
}

TEST_CASE("fcm: token endpoint down makes sends report retry_later, and they recover when it returns") {
  Harness h;
  REQUIRE(h.send("tok", 3'000));
  REQUIRE(h.fetches.size() == 1);
  auto f = std::move(h.fetches.back());
  h.fetches.pop_back();
  f(503, "{}");
  CHECK(h.outcomes.empty());  // backing off inside its deadline
  // Drive both timers until the deadline passes.
  for (int i = 0; i < 100 && h.outcomes.empty(); ++i) {
    h.clock.advance_ms(100);
    h.tick();
    h.pusher->token_cache()->on_timer();
    while (!h.fetches.empty()) {  // the endpoint is still down
      auto g = std::move(h.fetches.back());
      h.fetches.pop_back();
      g(0, "");
    }
  }
  REQUIRE(h.outcomes.size() == 1);
  CHECK(h.outcomes[0].kind == OutcomeKind::retry_later);
  CHECK(h.sent.empty());
  // The endpoint comes back: the cache's next backoff attempt gets a token, sends flow again.
  for (int i = 0; i < 1000 && h.fetches.empty(); ++i) {
    h.clock.advance_ms(100);
    h.pusher->token_cache()->on_timer();
  }
  REQUIRE(h.fetches.size() == 1);
  h.give_token("back");
  REQUIRE(h.send("tok2"));
  REQUIRE(h.sent.size() == 1);
  CHECK(*h.header(0, "authorization") == "Bearer back");
}

TEST_CASE("fcm: a refused assertion is a credential problem, never a dead token") {
  Harness h;
  REQUIRE(h.send("tok"));
  auto f = std::move(h.fetches.back());
  h.fetches.pop_back();
  f(400, R"({"error":"invalid_grant"})");
  h.tick();
  REQUIRE(h.outcomes.size() == 1);
  CHECK(h.outcomes[0].kind == OutcomeKind::credential_problem);
}

TEST_CASE("fcm: pending pushes are bounded and close() reports them retry_later") {
  FcmPusherOptions o;
  o.max_pending = 2;
  Harness h(o);
  CHECK(h.pusher->has_capacity(2));
  REQUIRE(h.send("a"));
  REQUIRE(h.send("b"));
  CHECK_FALSE(h.pusher->has_capacity(1));
  CHECK_FALSE(h.send("c"));
  CHECK(h.pusher->pending() == 2);
  bool closed = false;
  h.pusher->close([&] { closed = true; });
  CHECK(closed);
  REQUIRE(h.outcomes.size() == 2);
  CHECK(h.outcomes[0].kind == OutcomeKind::retry_later);
  CHECK(h.outcomes[1].kind == OutcomeKind::retry_later);
  CHECK_FALSE(h.send("d"));
  CHECK_FALSE(h.pusher->has_capacity(1));
  // A late token answer after close does not resurrect anything.
  if (!h.fetches.empty()) h.give_token("late");
  CHECK(h.sent.empty());
  CHECK(h.outcomes.size() == 2);
}

}  // TEST_SUITE
