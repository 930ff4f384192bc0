// The FCM OAuth token exchange over HTTP/1.1 (issue 4): net::Http1Client and the production token
// Fetcher (FcmPusher::create) against an independent HTTP/1.1-only TLS server — node's `https`
// module on loopback with the test server certificate (tests/data/tls). The node script is inline
// below; it verifies nothing, answers the token endpoint as told by its mode, and logs one line per
// TLS connection and request on stderr.
#include <doctest/doctest.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "net/http1_client.h"
#include "net/tls.h"
#include "push/fcm_pusher.h"
#include "push/oauth.h"
#include "support/fixture.h"
#include "support/mock_upstream.h"
#include "support/process.h"
#include "support/uv_loop.h"

using namespace aloha;

namespace {

using test::env_or;
using test::source_root;
using test::tls_dir;

std::string read_all(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  REQUIRE_MESSAGE(f != nullptr, "cannot open ", path);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

// Modes: ok (200 + JSON with Content-Length), chunked (200, JSON in two chunks), 500, stall (reads
// the request, never answers), noalpn (ok, but a TLS server without ALPN), h2 (an HTTP/2-only
// server: http2.createSecureServer).
const char* kNodeServer = R"JS(
'use strict';
const fs = require('fs'), http = require('http'), https = require('https'), http2 = require('http2'),
      tls = require('tls');
const [cert, key, mode] = process.argv.slice(1);
const opts = { cert: fs.readFileSync(cert), key: fs.readFileSync(key) };
const token = JSON.stringify({ access_token: 't1', expires_in: 3600, token_type: 'Bearer' });
function handler(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString();
    const p = new URLSearchParams(body);
    const grant = p.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer';
    const assertion = (p.get('assertion') || '').split('.').length === 3;
    process.stderr.write(`REQ ${req.httpVersion} ${req.method} ${req.url} host=${req.headers.host} ` +
      `ct=${req.headers['content-type']} len=${req.headers['content-length']} ` +
      `conn=${req.headers.connection} grant=${grant} assertion=${assertion} bodylen=${body.length}\n`);
    if (mode === 'stall') return;
    if (mode === '500') {
      res.writeHead(500, { 'content-type': 'application/json' });
      return res.end('{"error":"internal"}');
    }
    if (mode === 'chunked') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(token.slice(0, 10));
      return setTimeout(() => res.end(token.slice(10)), 20);
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(token) });
    res.end(token);
  });
}
let server;
if (mode === 'h2') {
  server = http2.createSecureServer(Object.assign({ allowHTTP1: false }, opts));
  server.on('stream', (s) => { s.on('error', () => {}); s.respond({ ':status': 200 }); s.end(token); });
  server.on('session', (s) => s.on('error', () => {}));
} else if (mode === 'noalpn') {
  const inner = http.createServer(handler);
  server = tls.createServer(opts, (sock) => inner.emit('connection', sock));
} else {
  server = https.createServer(opts, handler);
}
server.on('secureConnection', (s) => process.stderr.write(`TLS alpn=${s.alpnProtocol}\n`));
server.on('tlsClientError', (e) => process.stderr.write(`TLSERR ${e.code}\n`));
server.listen(0, '127.0.0.1', () => process.stderr.write(`LISTENING ${server.address().port}\n`));
)JS";

struct NodeTokenServer {
  std::unique_ptr<test::Process> proc;
  uint16_t port = 0;

  explicit NodeTokenServer(const std::string& mode) {
    test::ProcessOptions o;
    o.argv = {env_or("NODE", "/usr/bin/node"), "-e", kNodeServer, tls_dir() + "/server.crt",
              tls_dir() + "/server.key", mode};
    port = test::start_node_listening(proc, o);
  }
  std::string log() const { return proc->stderr_text(); }
  int count(const std::string& what) const {
    std::string e = log();
    int n = 0;
    for (size_t p = 0; (p = e.find(what, p)) != std::string::npos; p += what.size()) ++n;
    return n;
  }
};

struct Loop {
  uv_loop_t loop{};
  Loop() {
    ::signal(SIGPIPE, SIG_IGN);  // as the daemon does (app.cpp)
    uv_loop_init(&loop);
  }
  ~Loop() {
    test::drain_loop(&loop);
    CHECK(uv_loop_close(&loop) == 0);  // no leaked handles
  }
  template <class Pred>
  bool run_until(Pred pred, int timeout_ms) {
    return test::run_loop_until(&loop, pred, timeout_ms, 10);
  }
};

std::unique_ptr<net::TlsContext> client_tls(const std::string& ca, std::vector<std::string> alpn = {"h2", "http/1.1"}) {
  net::TlsContext::ClientOptions o;
  o.ca_file = ca;
  o.alpn = std::move(alpn);
  std::string err;
  auto ctx = net::TlsContext::client(o, err);
  REQUIRE_MESSAGE(ctx != nullptr, err);
  return ctx;
}

net::Http1Request token_request(uint16_t port, int64_t timeout_ms = 5000) {
  net::Http1Request r;
  r.host = "localhost";
  r.port = port;
  r.path = "/token";
  r.headers.push_back({"content-type", "application/x-www-form-urlencoded"});
  r.body = push::token_request_body("aaa.bbb.ccc");
  r.timeout_ms = timeout_ms;
  return r;
}

// One Http1Client exchange to completion.
net::Http1Response exchange(Loop& l, const net::TlsContext* tls, net::Http1Request req, int wait_ms = 8000) {
  struct Seen {
    std::optional<net::Http1Response> response;
    int calls = 0;
  };
  auto seen = std::make_shared<Seen>();  // outlives a failed REQUIRE below
  net::Http1Client* c = net::Http1Client::start(&l.loop, tls, std::move(req), [seen](const net::Http1Response& r) {
    ++seen->calls;
    seen->response = r;
  });
  CHECK(seen->calls == 0);  // never inside start()
  bool done = l.run_until([&] { return seen->response.has_value(); }, wait_ms);
  if (!done) c->cancel();
  REQUIRE(done);
  l.run_until([] { return false; }, 20);  // let a (wrong) second call show up
  CHECK(seen->calls == 1);
  return *seen->response;
}

// FcmPusher::create with token_uri on the node server: the production token Fetcher.
struct PusherEnv {
  Loop& l;
  test::TempDir dir;
  std::unique_ptr<push::FcmPusher> pusher;

  PusherEnv(Loop& loop, uint16_t port, const std::string& ca_file) : l(loop) {
    std::string sa = read_all(tls_dir() + "/fcm-service-account.json");
    for (size_t p; (p = sa.find("localhost:PORT")) != std::string::npos;)
      sa.replace(p, 14, "localhost:" + std::to_string(port));
    std::string path = dir.file("sa.json");
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fwrite(sa.data(), 1, sa.size(), f);
    std::fclose(f);
    FcmConfig cfg;
    cfg.credentials_file = path;
    cfg.endpoint = "https://localhost:" + std::to_string(port);
    cfg.ca_file = ca_file;
    std::string err;
    pusher = push::FcmPusher::create(&l.loop, cfg, SystemClock::instance(), err);
    REQUIRE_MESSAGE(pusher != nullptr, err);
  }
  ~PusherEnv() {
    bool closed = false;
    pusher->close([&] { closed = true; });
    l.run_until([&] { return closed; }, 10000);
    CHECK(closed);
    pusher.reset();
  }
  // Asks the cache for a token and waits for the waiter's verdict.
  push::TokenState obtain(int wait_ms = 8000) {
    // Shared: a failed REQUIRE leaves the waiter queued until close() runs it.
    auto got = std::make_shared<std::optional<push::TokenState>>();
    push::TokenState s = pusher->token_cache()->when_ready([got](push::TokenState st) { *got = st; });
    if (s != push::TokenState::pending) return s;
    REQUIRE(l.run_until([&] { return got->has_value(); }, wait_ms));
    return **got;
  }
};

}  // namespace

TEST_SUITE("oauth-http1") {
  TEST_CASE("oauth over http/1.1: the token cache obtains the token from an HTTP/1.1-only server") {
    NodeTokenServer node("ok");
    Loop l;
    {
      PusherEnv env(l, node.port, tls_dir() + "/ca.crt");
      CHECK(env.pusher->token_cache()->authorization() == nullptr);
      CHECK(env.obtain() == push::TokenState::ready);
      const std::string* auth = env.pusher->token_cache()->authorization();
      REQUIRE(auth != nullptr);
      CHECK(*auth == "Bearer t1");
      CHECK(env.pusher->token_cache()->fetch_count() == 1);
      // The request the server saw: a form POST over HTTP/1.1 with our framing headers.
      std::string log = node.log();
      INFO(log);
      CHECK(node.count("TLS alpn=http/1.1") == 1);
      CHECK(node.count("REQ 1.1 POST /token ") == 1);
      CHECK(log.find("host=localhost:" + std::to_string(node.port) + " ") != std::string::npos);
      CHECK(log.find("ct=application/x-www-form-urlencoded ") != std::string::npos);
      CHECK(log.find("conn=close ") != std::string::npos);
      CHECK(log.find("grant=true assertion=true") != std::string::npos);
      // A second caller is served from the cache: no new request.
      CHECK(env.obtain() == push::TokenState::ready);
      CHECK(node.count("REQ ") == 1);
    }
  }

  TEST_CASE("oauth over http/1.1: a chunked answer and a server without ALPN work too") {
    Loop l;
    for (const char* mode : {"chunked", "noalpn"}) {
      CAPTURE(mode);
      NodeTokenServer node(mode);
      PusherEnv env(l, node.port, tls_dir() + "/ca.crt");
      CHECK(env.obtain() == push::TokenState::ready);
      const std::string* auth = env.pusher->token_cache()->authorization();
      REQUIRE(auth != nullptr);
      CHECK(*auth == "Bearer t1");
      CHECK(node.count("REQ 1.1 POST /token ") == 1);
    }
  }

  TEST_CASE("oauth over http/1.1: a 500 answer makes the token unavailable and the cache backs off") {
    NodeTokenServer node("500");
    Loop l;
    PusherEnv env(l, node.port, tls_dir() + "/ca.crt");
    CHECK(env.obtain() == push::TokenState::unavailable);
    CHECK(env.pusher->token_cache()->authorization() == nullptr);
    CHECK(node.count("REQ 1.1 POST /token ") == 1);
    // Backing off: the next caller fails fast without a new request.
    CHECK(env.obtain() == push::TokenState::unavailable);
    CHECK(node.count("REQ ") == 1);

    // The same 500 seen by the client itself: a complete response, not a transport failure.
    auto tls = client_tls(tls_dir() + "/ca.crt");
    net::Http1Response r = exchange(l, tls.get(), token_request(node.port));
    CHECK(r.failure == net::Http1Failure::none);
    CHECK(r.status == 500);
    CHECK(r.body == R"({"error":"internal"})");
    CHECK(r.alpn == "http/1.1");
  }

  TEST_CASE("oauth over http/1.1: a server certificate from another CA fails with a certificate error") {
    NodeTokenServer node("ok");
    Loop l;
    auto tls = client_tls(tls_dir() + "/other-ca.crt");
    net::Http1Response r = exchange(l, tls.get(), token_request(node.port));
    CHECK(r.failure == net::Http1Failure::certificate);
    CHECK(r.error.find("certificate verify failed") != std::string::npos);
    CHECK(r.status == 0);
    {
      PusherEnv env(l, node.port, tls_dir() + "/other-ca.crt");
      CHECK(env.obtain() == push::TokenState::unavailable);
      CHECK(env.pusher->token_cache()->authorization() == nullptr);
    }
    CHECK(node.count("REQ ") == 0);  // nothing was sent to an unverified server
  }

  TEST_CASE("oauth over http/1.1: a server that never answers fails at the deadline") {
    NodeTokenServer node("stall");
    Loop l;
    auto tls = client_tls(tls_dir() + "/ca.crt");
    auto t0 = std::chrono::steady_clock::now();
    net::Http1Response r = exchange(l, tls.get(), token_request(node.port, 400));
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    CHECK(r.failure == net::Http1Failure::timeout);
    CHECK(r.error.find("waiting for the response") != std::string::npos);
    CHECK(ms >= 390);
    CHECK(ms < 3000);
    CHECK(node.count("REQ 1.1 POST /token ") == 1);  // it did get the request
  }

  TEST_CASE("oauth over http/1.1: an h2 server is detected by ALPN and the fetch moves to HTTP/2") {
    NodeTokenServer node("h2");
    Loop l;
    auto tls = client_tls(tls_dir() + "/ca.crt");
    net::Http1Response r = exchange(l, tls.get(), token_request(node.port));
    CHECK(r.failure == net::Http1Failure::h2_selected);
    CHECK(r.alpn == "h2");
    CHECK(node.count("TLS alpn=h2") == 1);
    // The production fetcher: probe (ALPN h2) → HTTP/2 token pool → the token.
    PusherEnv env(l, node.port, tls_dir() + "/ca.crt");
    CHECK(env.obtain() == push::TokenState::ready);
    REQUIRE(env.pusher->token_cache()->authorization() != nullptr);
    CHECK(*env.pusher->token_cache()->authorization() == "Bearer t1");
    CHECK(node.count("TLS alpn=h2") == 3);  // our probe above, the fetcher's probe, the pool
  }

  TEST_CASE("http1 client: cancel() suppresses done and closes everything; bad requests fail later") {
    NodeTokenServer node("stall");
    Loop l;
    auto tls = client_tls(tls_dir() + "/ca.crt");
    int calls = 0;
    net::Http1Client* c = net::Http1Client::start(&l.loop, tls.get(), token_request(node.port),
                                                  [&](const net::Http1Response&) { ++calls; });
    l.run_until([] { return false; }, 50);
    c->cancel();
    c->cancel();  // idempotent
    l.run_until([] { return false; }, 50);
    CHECK(calls == 0);

    net::Http1Request bad = token_request(node.port);
    bad.headers.push_back({"x", "a\r\nInjected: 1"});
    net::Http1Response r = exchange(l, tls.get(), std::move(bad));
    CHECK(r.failure == net::Http1Failure::bad_request);

    net::Http1Request refused = token_request(1);  // nothing listens on port 1
    r = exchange(l, tls.get(), std::move(refused));
    CHECK(r.failure == net::Http1Failure::connect);
  }
}
