// ApnsPusher in-process on a real libuv loop against tools/mock-upstream (TLS with the test CA,
// ES256 provider tokens from the .p8 test key, or a client certificate), and against an independent
// HTTP/2 peer (node's http2 module, tests/support/apns_node_server.js).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "net/tls.h"
#include "push/apns_pusher.h"
#include "push/jwt.h"
#include "push/push_setup.h"
#include "support/mock_upstream.h"
#include "support/process.h"
#include "support/uv_loop.h"

using namespace aloha;
using namespace aloha::push;

namespace {

using test::env_or;
using test::source_root;
using test::tls_dir;

std::string random_hex(size_t n) {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(digits[rng() % 16]);
  return s;
}
// A 64-digit token starting with prefix; "a…" matches no scripted rule.
std::string token(const std::string& prefix = "a") { return prefix + random_hex(64 - prefix.size()); }

struct MockUpstream : test::MockUpstreamProcess {
  std::vector<std::string> args;

  explicit MockUpstream(std::vector<std::string> extra = {}, bool token_auth = true, uint16_t fixed_port = 0) {
    args = {test::mock_upstream_binary(), "--listen", "127.0.0.1:" + std::to_string(fixed_port), "--cert",
            tls_dir() + "/server.crt", "--key", tls_dir() + "/server.key"};
    if (token_auth) {
      args.push_back("--apns-public-key");
      args.push_back(tls_dir() + "/apns-key.pub.pem");
    }
    args.insert(args.end(), extra.begin(), extra.end());
    start();
  }
  void start() { test::MockUpstreamProcess::start(args, test::MockReady::Listening); }
  // Kills it and starts it again on the same port.
  void restart_same_port() {
    proc->kill9();
    args[2] = "127.0.0.1:" + std::to_string(port);
    start();
  }
};

struct NodeApns {
  std::unique_ptr<test::Process> proc;
  uint16_t port = 0;
  NodeApns() {
    test::ProcessOptions o;
    o.argv = {env_or("NODE", "/usr/bin/node"), source_root() + "/tests/support/apns_node_server.js",
              "--cert", tls_dir() + "/server.crt", "--key", tls_dir() + "/server.key"};
    port = test::start_node_listening(proc, o);
  }
};

struct Loop {
  uv_loop_t loop{};
  Loop() {
    // As the daemon does (app.cpp): a peer that closes mid-write must give EPIPE, not kill us.
    ::signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
  }
  ~Loop() {
    test::drain_loop(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
  template <class Pred>
  bool run_until(Pred pred, int timeout_ms) {
    return test::run_loop_until(&loop, pred, timeout_ms, 20);
  }
  void run_for(int ms) {
    run_until([] { return false; }, ms);
  }
};

ApnsConfig apns_section(uint16_t port, bool token_auth = true) {
  ApnsConfig a;
  a.host = "localhost";  // the test certificate names localhost (mbedTLS 2.28 cannot match IPs)
  a.port = port;
  a.ca_file = tls_dir() + "/ca.crt";
  if (token_auth) {
    a.key_file = tls_dir() + "/apns-key.p8";
    a.key_id = "ABC123DEFG";
    a.team_id = "TEAM123456";
  } else {
    a.cert_file = tls_dir() + "/client.crt";
    a.cert_key_file = tls_dir() + "/client.key";
  }
  return a;
}

// A pusher built like push_setup does, with options the test chooses.
std::unique_ptr<ApnsPusher> make_pusher(Loop& l, uint16_t port, ApnsPusherOptions opt = {}) {
  ApnsConfig a = apns_section(port);
  net::TlsContext::ClientOptions to;
  to.ca_file = a.ca_file;
  std::string err;
  auto tls = net::TlsContext::client(to, err);
  REQUIRE_MESSAGE(tls, err);
  auto tokens = ApnsTokenProvider::load(a.key_file, a.key_id, a.team_id, SystemClock::instance(), err);
  REQUIRE_MESSAGE(tokens, err);
  h2::ConnectionOptions co = apns_connection_for(a);
  co.ping_idle_ms = 1000;
  co.ping_timeout_ms = 1000;
  return ApnsPusher::create(&l.loop, opt, co, std::move(tls), std::move(tokens), SystemClock::instance());
}

void close_pusher(Loop& l, Pusher& p) {
  bool closed = false;
  p.close([&] { closed = true; });
  CHECK(l.run_until([&] { return closed; }, 10000));
}

struct Result {
  bool called = false;
  Outcome outcome;
  int64_t at_ms = -1;
};

PushMessage msg(const std::string& tok, std::string payload = R"({"aps":{"alert":"hi"}})") {
  PushMessage m;
  m.token = tok;
  m.app_id = "org.example.app";
  m.payload = std::move(payload);
  return m;
}

bool send(Pusher& p, Result& r, PushMessage m, int64_t deadline_in_ms) {
  return p.send(std::move(m), SystemClock::instance().mono_ms() + deadline_in_ms, [&r](const Outcome& o) {
    r.called = true;
    r.outcome = o;
    r.at_ms = SystemClock::instance().mono_ms();
  });
}

}  // namespace

TEST_SUITE("apns-integration") {

TEST_CASE("apns: build_pushers wires token auth; a push is delivered through the mock") {
  MockUpstream mock;
  Loop l;
  Config cfg;
  cfg.apns.push_back(apns_section(mock.port));
  std::string err;
  auto reg = build_pushers(&l.loop, cfg, SystemClock::instance(), err);
  REQUIRE_MESSAGE(reg, err);
  Pusher* p = reg->apns_for("org.example.app");
  REQUIRE(p != nullptr);
  CHECK(p->name() == "apns");
  Result r;
  REQUIRE(send(*p, r, msg(token()), 5000));
  REQUIRE(l.run_until([&] { return r.called; }, 6000));
  CHECK(r.outcome.kind == OutcomeKind::delivered);
  bool closed = false;
  reg->close_all([&] { closed = true; });
  CHECK(l.run_until([&] { return closed; }, 5000));
}

TEST_CASE("apns: build_pushers wires certificate auth (client certificate, no JWT)") {
  MockUpstream mock({"--client-ca", tls_dir() + "/ca.crt"}, /*token_auth=*/false);
  Loop l;
  Config cfg;
  ApnsConfig a = apns_section(mock.port, false);
  a.name = "cert";
  a.topics = {"org.example.app"};
  cfg.apns.push_back(a);
  std::string err;
  auto reg = build_pushers(&l.loop, cfg, SystemClock::instance(), err);
  REQUIRE_MESSAGE(reg, err);
  Pusher* p = reg->apns_for("org.example.app");
  REQUIRE(p != nullptr);
  CHECK(p->name() == "apns.cert");
  CHECK(reg->apns_for("org.other") == nullptr);
  Result r;
  REQUIRE(send(*p, r, msg(token()), 5000));
  REQUIRE(l.run_until([&] { return r.called; }, 6000));
  CHECK(r.outcome.kind == OutcomeKind::delivered);
  bool closed = false;
  reg->close_all([&] { closed = true; });
  CHECK(l.run_until([&] { return closed; }, 5000));
}

TEST_CASE("apns: build_pushers stops start-up naming the section and the missing file") {
  Loop l;
  Config cfg;
  cfg.apns.push_back(apns_section(443));
  ApnsConfig bad = apns_section(443);
  bad.name = "broken";
  bad.topics = {"org.broken"};
  bad.key_file = "/nonexistent/AuthKey.p8";
  cfg.apns.push_back(bad);
  std::string err;
  auto reg = build_pushers(&l.loop, cfg, SystemClock::instance(), err);
  CHECK(reg == nullptr);
  CHECK(err.find("[apns.broken]") != std::string::npos);
  CHECK(err.find("/nonexistent/AuthKey.p8") != std::string::npos);
  ApnsConfig badcert = apns_section(443, false);
  badcert.cert_file = "/nonexistent/cert.pem";
  cfg.apns = {badcert};
  err.clear();
  CHECK(build_pushers(&l.loop, cfg, SystemClock::instance(), err) == nullptr);
  CHECK(err.find("[apns]") != std::string::npos);
  CHECK(err.find("/nonexistent/cert.pem") != std::string::npos);
}

TEST_CASE("apns: every scripted mock answer ends in its documented outcome") {
  MockUpstream mock({"--slow-ms", "300"});
  Loop l;
  auto p = make_pusher(l, mock.port);
  struct Row {
    const char* prefix;
    OutcomeKind kind;
    int status;
    const char* reason;
  };
  const Row rows[] = {
      {"a", OutcomeKind::delivered, 200, ""},
      {"410", OutcomeKind::dead_token, 410, "Unregistered"},
      {"41e0", OutcomeKind::dead_token, 410, "ExpiredToken"},
      {"400b", OutcomeKind::dead_token, 400, "BadDeviceToken"},
      {"400c", OutcomeKind::dead_token, 400, "DeviceTokenNotForTopic"},
      {"4290", OutcomeKind::retry_later, 429, "TooManyRequests"},
      {"5000", OutcomeKind::retry_later, 500, "InternalServerError"},
      {"5030", OutcomeKind::retry_later, 503, "ServiceUnavailable"},
      {"dea1", OutcomeKind::delivered, 200, ""},
      {"f001", OutcomeKind::retry_later, 0, nullptr},  // RST_STREAM
      {"f002", OutcomeKind::retry_later, 0, nullptr},  // connection dropped
      {"f003", OutcomeKind::retry_later, 0, nullptr},  // never answered
      {"f004", OutcomeKind::retry_later, 0, nullptr},  // GOAWAY, unprocessed
  };
  for (const Row& row : rows) {
    CAPTURE(row.prefix);
    Result r;
    int64_t start = SystemClock::instance().mono_ms();
    REQUIRE(send(*p, r, msg(token(row.prefix)), 1500));
    REQUIRE(l.run_until([&] { return r.called; }, 5000));
    CHECK(r.outcome.kind == row.kind);
    if (row.kind == OutcomeKind::retry_later && r.outcome.status == 0) {
      // Retried until the deadline: on a busy machine the last attempt may be the one the deadline
      // cuts short, which reports the timeout rather than the upstream's last answer.
      CHECK(r.outcome.reason == (row.status == 0 ? r.outcome.reason : std::string("timeout")));
    } else {
      CHECK(r.outcome.status == row.status);
      if (row.reason) CHECK(r.outcome.reason == row.reason);
    }
    if (row.status == 410) CHECK(r.outcome.apns_timestamp_ms > 1'700'000'000'000);
    CHECK(r.at_ms <= start + 1500 + 200);  // never later than the deadline (plus loop slack)
  }
  CHECK(p->stats().retries > 0);
  close_pusher(l, *p);
}

TEST_CASE("apns: a credential the upstream rejects is a credential problem, sent once") {
  // The mock verifies JWTs with a different (RSA) public key: our token is invalid.
  MockUpstream mock({"--apns-public-key", tls_dir() + "/fcm-key.pub.pem"}, /*token_auth=*/false);
  Loop l;
  auto p = make_pusher(l, mock.port);
  Result r, r2;
  REQUIRE(send(*p, r, msg(token()), 3000));
  REQUIRE(l.run_until([&] { return r.called; }, 5000));
  CHECK(r.outcome.kind == OutcomeKind::credential_problem);
  CHECK(r.outcome.status == 403);
  CHECK(r.outcome.reason == "InvalidProviderToken");
  CHECK(p->stats().attempts == 1);
  // During the pause the next push is answered without going out.
  REQUIRE(send(*p, r2, msg(token()), 3000));
  REQUIRE(l.run_until([&] { return r2.called; }, 5000));
  CHECK(r2.outcome.kind == OutcomeKind::credential_problem);
  CHECK(p->stats().attempts == 1);
  close_pusher(l, *p);
}

TEST_CASE("apns: GOAWAY in the middle of a burst of 500 loses nothing") {
  MockUpstream mock({"--goaway-after", "100"});
  Loop l;
  auto p = make_pusher(l, mock.port);
  std::vector<Result> rs(500);
  for (auto& r : rs) REQUIRE(send(*p, r, msg(token()), 20000));
  REQUIRE(l.run_until([&] {
    for (auto& r : rs)
      if (!r.called) return false;
    return true;
  }, 25000));
  int delivered = 0;
  std::map<std::string, int> other;
  for (auto& r : rs) {
    if (r.outcome.kind == OutcomeKind::delivered) ++delivered;
    else ++other[std::string(outcome_name(r.outcome.kind)) + " " + r.outcome.reason];
  }
  for (auto& [k, v] : other) MESSAGE(k, ": ", v);
  CHECK(delivered == 500);
  MESSAGE("pool replays: ", p->pool_stats().replays, ", pusher retries: ", p->stats().retries);
  close_pusher(l, *p);
}

TEST_CASE("apns: after the mock is killed and restarted, pushes go out again within 5 s") {
  MockUpstream mock;
  Loop l;
  auto p = make_pusher(l, mock.port);
  Result r1;
  REQUIRE(send(*p, r1, msg(token()), 5000));
  REQUIRE(l.run_until([&] { return r1.called; }, 6000));
  REQUIRE(r1.outcome.kind == OutcomeKind::delivered);
  mock.restart_same_port();
  auto t0 = std::chrono::steady_clock::now();
  Result r2;
  REQUIRE(send(*p, r2, msg(token()), 10000));
  REQUIRE(l.run_until([&] { return r2.called; }, 11000));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  CHECK(r2.outcome.kind == OutcomeKind::delivered);
  CHECK(ms < 5000);
  MESSAGE("delivered " , ms, " ms after the restart");
  close_pusher(l, *p);
}

TEST_CASE("apns: a silent upstream (TCP accepted, never a byte back) ends in retry_later at the deadline") {
  // A listening socket nobody accepts from: the kernel completes the TCP handshake, TLS never starts.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(fd, 16) == 0);
  socklen_t len = sizeof sa;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  uint16_t port = ntohs(sa.sin_port);
  {
    Loop l;
    auto p = make_pusher(l, port);
    Result r;
    int64_t start = SystemClock::instance().mono_ms();
    REQUIRE(send(*p, r, msg(token()), 1500));
    REQUIRE(l.run_until([&] { return r.called; }, 5000));
    CHECK(r.outcome.kind == OutcomeKind::retry_later);
    CHECK(r.at_ms >= start + 1400);
    CHECK(r.at_ms <= start + 1500 + 300);
    close_pusher(l, *p);
  }
  ::close(fd);
}

TEST_CASE("apns: a frozen upstream is detected by PING, the push retried, then reported retry_later at the deadline") {
  MockUpstream mock;
  Loop l;
  auto p = make_pusher(l, mock.port);  // PING after 1 s idle, 1 s to answer
  Result warm, r;
  REQUIRE(send(*p, warm, msg(token()), 5000));
  REQUIRE(l.run_until([&] { return warm.called; }, 6000));
  REQUIRE(warm.outcome.kind == OutcomeKind::delivered);
  ::kill(mock.proc->pid(), SIGSTOP);  // TCP stays open, nothing is read or answered
  int64_t start = SystemClock::instance().mono_ms();
  REQUIRE(send(*p, r, msg(token()), 4000));
  bool ended = l.run_until([&] { return r.called; }, 6000);
  ::kill(mock.proc->pid(), SIGCONT);
  REQUIRE(ended);
  CHECK(r.outcome.kind == OutcomeKind::retry_later);
  CHECK(r.at_ms <= start + 4000 + 300);
  // The first attempt ended before the deadline (the connection was dropped for the missing PING
  // ack), so the pusher tried again.
  CHECK(p->stats().attempts >= 3);
  close_pusher(l, *p);
}

TEST_CASE("apns: an independent HTTP/2 server (node) sees APNs-shaped requests and its answers map right") {
  NodeApns node;
  Loop l;
  auto p = make_pusher(l, node.port);
  Result ok, dead, gone, busy, big;
  REQUIRE(send(*p, ok, msg(token()), 5000));
  REQUIRE(send(*p, dead, msg(token("400b")), 5000));
  REQUIRE(send(*p, gone, msg(token("410")), 5000));
  // Deadline 1.9 s: room for exactly one retry 1 s after the 503 even on a loaded machine (a
  // second would be due at 2 s).
  REQUIRE(send(*p, busy, msg(token("5030")), 1900));
  REQUIRE(send(*p, big, msg(token(), std::string(4097, 'x')), 5000));
  REQUIRE(l.run_until([&] { return ok.called && dead.called && gone.called && busy.called && big.called; }, 6000));
  CHECK(ok.outcome.kind == OutcomeKind::delivered);
  CHECK(dead.outcome.kind == OutcomeKind::dead_token);
  CHECK(gone.outcome.kind == OutcomeKind::dead_token);
  CHECK(gone.outcome.apns_timestamp_ms > 0);
  // 503 with retry-after: 1 → retried after 1 s, then the 1.9 s deadline ends it.
  CHECK(busy.outcome.kind == OutcomeKind::retry_later);
  CHECK(busy.outcome.status == 503);
  CHECK(big.outcome.kind == OutcomeKind::request_bug);
  // The peer logs each request on its stderr, which may arrive after our outcome (the retry's
  // second 503 ends the push at once): wait for the fifth line, then count exactly.
  auto count_reqs = [](std::string_view text) {
    size_t n = 0;
    for (size_t pos = 0; (pos = text.find("REQ ", pos)) != std::string_view::npos; ++pos) ++n;
    return n;
  };
  node.proc->wait_stderr([&](std::string_view text) { return count_reqs(text) >= 5; }, 3000);
  std::string e = node.proc->stderr_text();
  CHECK(e.find("REQ /3/device/" + std::string("a")) != std::string::npos);
  CHECK(e.find(" authorization,apns-topic,apns-push-type,apns-priority,apns-id auth=yes") != std::string::npos);
  CHECK(e.find("auth=no") == std::string::npos);
  // The oversized body never reached the server; 503 was tried twice (Retry-After 1 s < deadline).
  CHECK(count_reqs(e) == 5);
  close_pusher(l, *p);
}

TEST_CASE("apns: throughput through one connection to the mock (MESSAGE: pushes/s, CPU per push)") {
  MockUpstream mock;
  Loop l;
  ApnsPusherOptions opt;
  opt.pool.max_connections = 1;
  auto p = make_pusher(l, mock.port, opt);
  // Warm up: the first success raises the stream limit (APNs allows 1 stream before it).
  Result warm;
  REQUIRE(send(*p, warm, msg(token()), 5000));
  REQUIRE(l.run_until([&] { return warm.called; }, 6000));
  REQUIRE(warm.outcome.kind == OutcomeKind::delivered);

  const int total = 20000;
  const int window = 2000;  // pushes outstanding at once
  int sent = 0, done = 0, delivered = 0;
  std::string tok = token();
  std::function<void()> refill;
  SendDone on_done = [&](const Outcome& o) {
    ++done;
    if (o.kind == OutcomeKind::delivered) ++delivered;
  };
  rusage ru0{}, ru1{};
  getrusage(RUSAGE_SELF, &ru0);
  auto t0 = std::chrono::steady_clock::now();
  auto top_up = [&] {
    while (sent < total && sent - done < window) {
      REQUIRE(p->send(msg(tok), SystemClock::instance().mono_ms() + 30000, on_done));
      ++sent;
    }
  };
  top_up();
  REQUIRE(l.run_until([&] {
    top_up();
    return done == total;
  }, 60000));
  auto t1 = std::chrono::steady_clock::now();
  getrusage(RUSAGE_SELF, &ru1);
  double secs = std::chrono::duration<double>(t1 - t0).count();
  auto cpu_us = [](const rusage& r) {
    return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 +
           static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
  };
  double cpu = cpu_us(ru1) - cpu_us(ru0);
  CHECK(delivered == total);
  MESSAGE(total, " pushes through one connection in ", secs, " s: ", static_cast<long>(total / secs),
          " pushes/s; client CPU ", cpu / total, " us per push (test process, TLS + HTTP/2 + pusher)");
  CHECK(p->pool_stats().connections == 1);
  close_pusher(l, *p);
}

}  // TEST_SUITE
