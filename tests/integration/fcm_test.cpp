// FcmPusher in-process on a real libuv loop against tools/mock-upstream (child process) over TLS
// with the test CA: OAuth token exchange (RS256 assertion verified by the mock), delivery, every
// scripted FCM failure, token refresh on expiry and on 401, token endpoint down → retry_later and
// recovery, and a bounded-burst throughput figure. The mock's /mock/fcm control endpoint and
// /mock/stats are reached over HTTP/2 with a second pool on the same loop.
#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "h2/pool.h"
#include "net/tls.h"
#include "push/fcm_pusher.h"
#include "support/fixture.h"
#include "support/mock_upstream.h"
#include "support/process.h"
#include "support/uv_loop.h"

using namespace aloha;
using namespace aloha::push;

namespace {

using test::tls_dir;
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

struct MockFcm : test::MockUpstreamProcess {
  explicit MockFcm(int token_ttl_s = 3600) {
    start({test::mock_upstream_binary(), "--listen", "127.0.0.1:0", "--cert", tls_dir() + "/server.crt",
           "--key", tls_dir() + "/server.key", "--fcm-public-key", tls_dir() + "/fcm-key.pub.pem",
           "--fcm-token-ttl", std::to_string(token_ttl_s)},
          test::MockReady::Listening);
  }
};

struct Env {
  MockFcm mock;
  test::TempDir dir;
  uv_loop_t loop{};
  std::unique_ptr<FcmPusher> pusher;
  std::unique_ptr<net::TlsContext> ctl_tls;
  std::unique_ptr<h2::Pool> ctl;
  std::vector<Outcome> outcomes;

  explicit Env(int token_ttl_s = 3600, FcmPusherOptions opt = {}) : mock(token_ttl_s) {
    uv_loop_init(&loop);
    // The service account with the mock's port in token_uri.
    std::string sa = read_all(tls_dir() + "/fcm-service-account.json");
    for (size_t p; (p = sa.find("localhost:PORT")) != std::string::npos;)
      sa.replace(p, 14, "localhost:" + std::to_string(mock.port));
    std::string path = dir.file("sa.json");
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fwrite(sa.data(), 1, sa.size(), f);
    std::fclose(f);
    FcmConfig cfg;
    cfg.credentials_file = path;
    cfg.endpoint = "https://localhost:" + std::to_string(mock.port);
    cfg.ca_file = tls_dir() + "/ca.crt";
    std::string err;
    pusher = FcmPusher::create(&loop, cfg, SystemClock::instance(), err, opt);
    REQUIRE_MESSAGE(pusher != nullptr, err);

    net::TlsContext::ClientOptions o;
    o.ca_file = tls_dir() + "/ca.crt";
    ctl_tls = net::TlsContext::client(o, err);
    REQUIRE_MESSAGE(ctl_tls != nullptr, err);
    h2::ConnectionOptions co;
    co.host = "localhost";
    co.port = mock.port;
    ctl = h2::Pool::create(&loop, ctl_tls.get(), co, h2::PoolOptions{});
  }
  ~Env() {
    bool closed = false;
    if (pusher) pusher->close([&] { closed = true; });
    ctl->close();
    run_until([&] { return closed; }, 10000);
    CHECK(closed);
    pusher.reset();
    ctl.reset();
    test::drain_loop(&loop);
    CHECK(uv_loop_close(&loop) == 0);  // no leaked handles
  }

  template <class Pred>
  bool run_until(Pred pred, int timeout_ms) {
    return test::run_loop_until(&loop, pred, timeout_ms, 10);
  }
  void wait_ms(int ms) {
    run_until([] { return false; }, ms);
  }

  // One request to the mock's control endpoints over HTTP/2; returns the body.
  std::string control(const std::string& method, const std::string& path, const std::string& body = "") {
    h2::H2Request r;
    r.method = method;
    r.path = path;
    r.body = body;
    if (!body.empty()) r.headers.push_back({"content-type", "application/json"});
    bool done = false;
    h2::H2Response resp;
    REQUIRE(ctl->submit(std::move(r), 5000, [&](const h2::H2Response& x) {
      resp = x;
      done = true;
    }) != 0);
    REQUIRE(run_until([&] { return done; }, 6000));
    REQUIRE_MESSAGE(resp.status == 200, resp.status, " ", resp.body);
    return resp.body;
  }
  int64_t json_int(const std::string& body, const char* a, const char* b = nullptr) {
    rapidjson::Document d;
    d.Parse(body.c_str());
    REQUIRE(d.IsObject());
    const rapidjson::Value* v = &d;
    if (!v->HasMember(a)) return 0;
    v = &(*v)[a];
    if (b != nullptr) {
      if (!v->IsObject() || !v->HasMember(b)) return 0;
      v = &(*v)[b];
    }
    return v->IsInt64() ? v->GetInt64() : 0;
  }
  int64_t mock_outcome(const char* key) { return json_int(control("GET", "/mock/stats"), "outcomes", key); }
  int64_t fcm_state(const char* key) { return json_int(control("GET", "/mock/fcm"), key); }

  bool send(const std::string& token, int64_t deadline_in_ms = 10000,
            const std::string& payload = R"({"event":"message","content":"hi"})") {
    PushMessage m;
    m.platform = Platform::fcm;
    m.token = token;
    m.payload = payload;
    return pusher->send(std::move(m), SystemClock::instance().mono_ms() + deadline_in_ms,
                        [this](const Outcome& o) { outcomes.push_back(o); });
  }
  bool wait_outcomes(size_t n, int timeout_ms = 15000) {
    return run_until([&] { return outcomes.size() >= n; }, timeout_ms);
  }
};

}  // namespace

TEST_SUITE("fcm-integration") {

TEST_CASE("fcm (integration): pushes are delivered over HTTP/2 with one OAuth token") {
  Env env;
  for (int i = 0; i < 20; ++i) REQUIRE(env.send("device-" + std::to_string(i)));
  REQUIRE(env.wait_outcomes(20));
  for (const auto& o : env.outcomes) CHECK(o.kind == OutcomeKind::delivered);
  CHECK(env.mock_outcome("fcm_ok") == 20);
  CHECK(env.mock_outcome("oauth_token_issued") == 1);  // twenty sends shared one token request
  CHECK(env.fcm_state("unauthenticated") == 0);
  CHECK(env.pusher->pending() == 0);
}

TEST_CASE("fcm (integration): each scripted FCM failure is reported as its outcome") {
  Env env;
  struct Case {
    std::string token;
    OutcomeKind kind;
  };
  std::vector<Case> cases = {
      {"unreg-1", OutcomeKind::dead_token},     {"badtok-1", OutcomeKind::dead_token},
      {"badpay-1", OutcomeKind::request_bug},   {"sender-1", OutcomeKind::dead_token},
      {"quota-1", OutcomeKind::retry_later},    {"int500-1", OutcomeKind::retry_later},
      {"unav503-1", OutcomeKind::retry_later},  {"thirdp-1", OutcomeKind::credential_problem},
      {"flaky-1", OutcomeKind::delivered},
  };
  std::vector<Outcome> got(cases.size());
  std::vector<bool> have(cases.size(), false);
  size_t n = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    PushMessage m;
    m.platform = Platform::fcm;
    m.token = cases[i].token;
    m.payload = R"({"event":"message"})";
    // 2.5 s: enough for the flaky token's retry, short enough to end the 5xx retries quickly.
    REQUIRE(env.pusher->send(std::move(m), SystemClock::instance().mono_ms() + 2500,
                             [&, i](const Outcome& o) {
                               got[i] = o;
                               have[i] = true;
                               ++n;
                             }));
  }
  REQUIRE(env.run_until([&] { return n == cases.size(); }, 15000));
  for (size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].token);
    CAPTURE(got[i].reason);
    CHECK(have[i]);
    CHECK(got[i].kind == cases[i].kind);
  }
  CHECK(got[4].reason == "QUOTA_EXCEEDED");
  CHECK(env.mock_outcome("fcm_quota_exceeded") == 1);  // ≥ 60 s wait > deadline: not resent
  CHECK(env.mock_outcome("fcm_int500") == 0);
  CHECK(env.mock_outcome("fcm_internal") >= 2);        // retried with backoff until the deadline
  CHECK(env.mock_outcome("fcm_unavailable") >= 2);
  CHECK(env.mock_outcome("fcm_third_party_auth_error") == 1);  // never retried
  CHECK(env.mock_outcome("fcm_flaky_unavailable") == 1);
  CHECK(env.pusher->stats().credential_problem == 1);
}

TEST_CASE("fcm (integration): an oversized payload is a request bug and is never sent") {
  Env env;
  REQUIRE(env.send("device-big", 5000, R"({"k":")" + std::string(5000, 'x') + "\"}"));
  REQUIRE(env.wait_outcomes(1));
  CHECK(env.outcomes[0].kind == OutcomeKind::request_bug);
  CHECK(env.json_int(env.control("GET", "/mock/stats"), "paths", "fcm") == 0);
}

TEST_CASE("fcm (integration): the token is refreshed before it expires and after a 401") {
  Env env(5);  // 5 s tokens: refreshed at 2.5 s
  REQUIRE(env.send("device-a"));
  REQUIRE(env.wait_outcomes(1));
  CHECK(env.outcomes[0].kind == OutcomeKind::delivered);
  CHECK(env.fcm_state("tokens_issued") == 1);
  env.wait_ms(3000);
  CHECK(env.fcm_state("tokens_issued") == 2);  // proactive refresh, no send waited for it
  REQUIRE(env.send("device-b"));
  REQUIRE(env.wait_outcomes(2));
  CHECK(env.outcomes[1].kind == OutcomeKind::delivered);
  CHECK(env.fcm_state("unauthenticated") == 0);

  // The mock forgets every token it issued: the next send gets 401, refreshes once, and succeeds.
  env.control("POST", "/mock/fcm", R"({"revoke_tokens":true})");
  REQUIRE(env.send("device-c"));
  REQUIRE(env.wait_outcomes(3));
  CHECK(env.outcomes[2].kind == OutcomeKind::delivered);
  CHECK(env.fcm_state("unauthenticated") == 1);
  CHECK(env.fcm_state("tokens_issued") == 3);
  CHECK(env.pusher->stats().token_retries == 1);
}

TEST_CASE("fcm (integration): token endpoint down → sends report retry_later, then recover") {
  Env env;
  REQUIRE(env.send("device-a"));
  REQUIRE(env.wait_outcomes(1));
  CHECK(env.outcomes[0].kind == OutcomeKind::delivered);
  env.control("POST", "/mock/fcm", R"({"token_endpoint":"down","revoke_tokens":true})");
  for (int i = 0; i < 5; ++i) REQUIRE(env.send("device-down-" + std::to_string(i), 2000));
  REQUIRE(env.wait_outcomes(6));
  for (size_t i = 1; i < 6; ++i) {
    CHECK(env.outcomes[i].kind == OutcomeKind::retry_later);
  }
  CHECK(env.fcm_state("token_requests_failed") >= 1);
  CHECK(env.mock.proc->running());

  env.control("POST", "/mock/fcm", R"({"token_endpoint":"up"})");
  // The cache retries with backoff (capped) on its own; a send with room in its deadline waits it out.
  REQUIRE(env.send("device-back", 20000));
  REQUIRE(env.wait_outcomes(7, 25000));
  CHECK(env.outcomes[6].kind == OutcomeKind::delivered);
  CHECK(env.fcm_state("tokens_issued") == 2);
}

TEST_CASE("fcm (integration): bounded burst throughput to the mock") {
  log_set_level(LogLevel::warn);
  FcmPusherOptions opt;
  opt.max_pending = 20000;
  Env env(3600, opt);
  // Warm up: token and connections.
  REQUIRE(env.send("warm"));
  REQUIRE(env.wait_outcomes(1));
  const int n = 20000;
  auto cpu = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  double cpu0 = cpu();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) REQUIRE(env.send("burst-" + std::to_string(i), 30000));
  CHECK_FALSE(env.pusher->has_capacity(1));  // the bound holds
  REQUIRE(env.wait_outcomes(1 + n, 60000));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu_secs = cpu() - cpu0;
  size_t delivered = 0;
  for (const auto& o : env.outcomes) delivered += o.kind == OutcomeKind::delivered;
  CHECK(delivered == static_cast<size_t>(n + 1));
  MESSAGE("FCM burst: ", n, " pushes in ", secs, " s = ", static_cast<long>(n / secs),
          " pushes/s; ", static_cast<long>(n / cpu_secs),
          " pushes per CPU-second of the pusher process (mock in a child process, same 2 cores)");
  log_set_level(LogLevel::info);
}

TEST_CASE("fcm (integration): a missing or malformed credentials file stops start-up with its name") {
  test::TempDir dir;
  std::string bad = dir.file("bad-sa.json");
  FILE* f = std::fopen(bad.c_str(), "wb");
  REQUIRE(f != nullptr);
  std::fputs(R"({"project_id":"p","client_email":"e@x"})", f);  // no private_key, no token_uri
  std::fclose(f);
  for (const std::string& file : {dir.file("missing.json"), bad}) {
    CAPTURE(file);
    std::string conf = test::merge_ini(test::BouncerProcess::base_config(dir.file("db.sqlite3")),
                                       "[fcm]\ncredentials_file = " + file + "\n");
    std::string path = dir.file("aloha.conf");
    FILE* c = std::fopen(path.c_str(), "wb");
    REQUIRE(c != nullptr);
    std::fputs(conf.c_str(), c);
    std::fclose(c);
    test::ProcessOptions o;
    o.argv = {test::bouncer_binary(), "serve", "--config", path};
    test::Process p(o);
    test::ExitStatus st = p.wait(10000);
    CHECK(st.exited);
    CHECK(st.code != 0);
    std::string err = p.stderr_text();
    CHECK(err.find(file) != std::string::npos);
    CHECK(err.find("[fcm]") != std::string::npos);
    CHECK(err.find("listening on") == std::string::npos);
  }
}

}  // TEST_SUITE
