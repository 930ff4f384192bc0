// h2::Connection / h2::Pool on a real libuv loop against an independent HTTP/2 server (node's
// http2 module, tests/support/h2_echo_server.js) over TLS with the test CA (ALPN h2, hostname
// localhost, which resolves to more than one address).
#include <doctest/doctest.h>
#include <uv.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "h2/pool.h"
#include "net/tls.h"
#include "support/mock_upstream.h"
#include "support/process.h"
#include "support/uv_loop.h"

using namespace aloha;
using namespace aloha::h2;

namespace {

using test::env_or;
using test::source_root;
using test::tls_dir;

struct NodeServer {
  std::unique_ptr<test::Process> proc;
  uint16_t port = 0;

  explicit NodeServer(int max_streams, bool plain = false) {
    test::ProcessOptions o;
    o.argv = {"node", source_root() + "/tests/support/h2_echo_server.js", "--cert",
              tls_dir() + "/server.crt", "--key", tls_dir() + "/server.key", "--max-streams",
              std::to_string(max_streams)};
    if (plain) o.argv.push_back("--plain");
    o.argv[0] = env_or("NODE", "/usr/bin/node");
    port = test::start_node_listening(proc, o);
  }
};

struct Loop {
  uv_loop_t loop{};
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    // Let every handle finish closing; the fixture fails a test that leaks handles.
    test::drain_loop(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
  // Runs the loop until pred() or timeout_ms.
  template <class Pred>
  bool run_until(Pred pred, int timeout_ms) {
    return test::run_loop_until(&loop, pred, timeout_ms, 20);
  }
};

std::unique_ptr<net::TlsContext> client_tls() {
  net::TlsContext::ClientOptions o;
  o.ca_file = tls_dir() + "/ca.crt";
  o.alpn = {"h2"};
  std::string err;
  auto ctx = net::TlsContext::client(o, err);
  REQUIRE_MESSAGE(ctx != nullptr, err);
  return ctx;
}

H2Request req(const std::string& path, std::string body = "") {
  H2Request r;
  r.method = "POST";
  r.path = path;
  r.body = std::move(body);
  r.headers = {{"apns-topic", "org.example.app"}};
  return r;
}

}  // namespace

TEST_SUITE("h2-client") {

TEST_CASE("h2 pool: 200 requests over TLS with a server stream limit of 5 all succeed") {
  NodeServer server(5);
  auto tls = client_tls();
  std::vector<H2Response> out;
  {
    Loop l;
    ConnectionOptions co;
    co.host = "localhost";
    co.port = server.port;
    PoolOptions po;
    po.max_connections = 2;
    int n = 0;
    auto pool = Pool::create(&l.loop, tls.get(), co, po, [&n](std::vector<H2Header>& h) {
      h.push_back({"authorization", "bearer token-" + std::to_string(++n / 100)});
    });
    for (int i = 0; i < 200; ++i) {
      H2Request r = req("/echo", "{\"n\":" + std::to_string(i) + "}");
      r.authority = "localhost";
      REQUIRE(pool->submit(std::move(r), 10000, [&out](const H2Response& resp) { out.push_back(resp); }) > 0);
    }
    CHECK(l.run_until([&] { return out.size() == 200; }, 20000));
    size_t ok = 0;
    for (auto& r : out) {
      if (r.status == 200 && r.body.rfind("{\"n\":", 0) == 0 && r.header("x-auth") &&
          r.header("x-auth")->rfind("bearer token-", 0) == 0)
        ++ok;
    }
    CHECK(ok == 200);
    PoolStats st = pool->stats();
    CHECK(st.connected >= 1);
    CHECK(st.connect_failures == 0);
    pool.reset();
  }
}

TEST_CASE("h2 pool: error statuses carry body and retry-after; a hung request times out") {
  NodeServer server(100);
  auto tls = client_tls();
  std::vector<H2Response> out;
  {
    Loop l;
    ConnectionOptions co;
    co.host = "localhost";
    co.port = server.port;
    auto pool = Pool::create(&l.loop, tls.get(), co, PoolOptions{});
    auto cb = [&out](const H2Response& r) { out.push_back(r); };
    pool->submit(req("/status/410"), 5000, cb);
    pool->submit(req("/status/429"), 5000, cb);
    pool->submit(req("/hang"), 400, cb);
    CHECK(l.run_until([&] { return out.size() == 3; }, 10000));
    REQUIRE(out.size() == 3);
    bool seen410 = false, seen429 = false, seen_timeout = false;
    for (auto& r : out) {
      if (r.status == 410 && r.body == "{\"reason\":\"R410\"}") seen410 = true;
      if (r.status == 429 && r.header("retry-after") && *r.header("retry-after") == "7") seen429 = true;
      if (r.failure == FailureKind::timeout && r.status == 0) seen_timeout = true;
    }
    CHECK(seen410);
    CHECK(seen429);
    CHECK(seen_timeout);
    pool.reset();
  }
}

TEST_CASE("h2 pool: after a server GOAWAY later requests go out on a new connection") {
  NodeServer server(100);
  auto tls = client_tls();
  std::vector<H2Response> out;
  {
    Loop l;
    ConnectionOptions co;
    co.host = "localhost";
    co.port = server.port;
    auto pool = Pool::create(&l.loop, tls.get(), co, PoolOptions{});
    auto cb = [&out](const H2Response& r) { out.push_back(r); };
    pool->submit(req("/goaway"), 5000, cb);
    CHECK(l.run_until([&] { return out.size() == 1; }, 10000));
    REQUIRE(out.size() == 1);
    CHECK(out[0].status == 200);
    // Give the GOAWAY time to arrive, then keep sending.
    l.run_until([] { return false; }, 300);
    for (int i = 0; i < 10; ++i) pool->submit(req("/echo", "x"), 5000, cb);
    CHECK(l.run_until([&] { return out.size() == 11; }, 10000));
    size_t ok = 0;
    for (auto& r : out) ok += r.status == 200 ? 1 : 0;
    CHECK(ok == 11);
    H2Response stats;
    pool->submit(req("/stats"), 5000, [&](const H2Response& r) { stats = r; });
    CHECK(l.run_until([&] { return stats.status != 0; }, 5000));
    CHECK_MESSAGE(stats.body.find("\"sessions\":2") != std::string::npos, stats.body);
    pool.reset();
  }
}

TEST_CASE("h2 connection: idle PINGs are acknowledged and keep the connection in use") {
  NodeServer server(100);
  auto tls = client_tls();
  std::vector<H2Response> out;
  {
    Loop l;
    ConnectionOptions co;
    co.host = "localhost";
    co.port = server.port;
    co.ping_idle_ms = 50;
    co.ping_timeout_ms = 200;  // an unacknowledged PING would drop the connection in the wait below
    auto pool = Pool::create(&l.loop, tls.get(), co, PoolOptions{});
    auto cb = [&out](const H2Response& r) { out.push_back(r); };
    pool->submit(req("/echo", "a"), 5000, cb);
    CHECK(l.run_until([&] { return out.size() == 1; }, 5000));
    l.run_until([] { return false; }, 600);  // about ten idle PING rounds
    CHECK(pool->stats().connected == 1);
    pool->submit(req("/stats"), 5000, cb);
    CHECK(l.run_until([&] { return out.size() == 2; }, 5000));
    REQUIRE(out.size() == 2);
    CHECK_MESSAGE(out[1].body.find("\"sessions\":1") != std::string::npos, out[1].body);
    pool.reset();
  }
}

namespace {
// Records a Connection's events (the pool's role) for tests that drive one directly.
struct ConnEvents : ConnListener {
  bool ready = false;
  bool closed = false;
  void on_conn_ready(Conn*) override { ready = true; }
  void on_conn_capacity(Conn*) override {}
  void on_conn_closed(Conn*, const std::string&) override { closed = true; }
};
}  // namespace

TEST_CASE("h2 connection: after idle_release_ms without traffic the burst buffers are given back") {
  NodeServer server(100);
  auto tls = client_tls();
  for (int64_t release_ms : {int64_t{100}, int64_t{0}}) {
    CAPTURE(release_ms);
    Loop l;
    ConnectionOptions co;
    co.host = "localhost";
    co.port = server.port;
    co.idle_release_ms = release_ms;
    ConnEvents ev;
    Connection* c = Connection::create(&l.loop, tls.get(), co, &ev);
    REQUIRE(l.run_until([&] { return ev.ready; }, 5000));
    size_t done = 0;
    auto burst = [&] {
      // 64 requests with 4 KB bodies in one iteration: ~260 KB of output through the TLS chunks.
      for (int i = 0; i < 64; ++i)
        REQUIRE(c->submit(req("/echo", std::string(4096, 'x')), [&](H2Response& r) {
          CHECK(r.status == 200);
          ++done;
        }) > 0);
    };
    burst();
    REQUIRE(l.run_until([&] { return done == 64; }, 5000));
    size_t busy = c->idle_capacity();
    CHECK(busy > 100 * 1024);  // spare ciphertext chunks, pump scratch, block cache, slots
    if (release_ms > 0) {
      CHECK(l.run_until([&] { return c->idle_capacity() < 4096; }, 5000));
      // Still usable, and gives back again after the next burst.
      burst();
      REQUIRE(l.run_until([&] { return done == 128; }, 5000));
      CHECK(c->idle_capacity() > 100 * 1024);
      CHECK(l.run_until([&] { return c->idle_capacity() < 4096; }, 5000));
    } else {
      l.run_until([] { return false; }, 300);
      CHECK(c->idle_capacity() >= busy);  // 0: kept for the connection's lifetime
    }
    CHECK(c->state() == ConnState::connected);
    c->close();
    CHECK(l.run_until([&] { return ev.closed; }, 5000));
  }
}

TEST_CASE("h2 pool: nothing listening → connect fails with backoff and requests time out") {
  auto tls = client_tls();
  std::vector<H2Response> out;
  {
    Loop l;
    // Find a free port by binding and closing.
    uv_tcp_t probe;
    uv_tcp_init(&l.loop, &probe);
    sockaddr_in a{};
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&probe, reinterpret_cast<const sockaddr*>(&a), 0);
    sockaddr_storage ss{};
    int len = sizeof ss;
    uv_tcp_getsockname(&probe, reinterpret_cast<sockaddr*>(&ss), &len);
    uint16_t port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    uv_close(reinterpret_cast<uv_handle_t*>(&probe), nullptr);
    uv_run(&l.loop, UV_RUN_NOWAIT);

    ConnectionOptions co;
    co.host = "localhost";
    co.port = port;
    PoolOptions po;
    po.backoff = {50, 200, net::Jitter::full};
    auto pool = Pool::create(&l.loop, tls.get(), co, po);
    pool->submit(req("/echo"), 800, [&out](const H2Response& r) { out.push_back(r); });
    CHECK(l.run_until([&] { return out.size() == 1; }, 5000));
    REQUIRE(out.size() == 1);
    CHECK(out[0].failure == FailureKind::timeout);
    CHECK(pool->stats().connect_failures >= 2);
    pool.reset();
  }
}

TEST_CASE("h2 connection: a server certificate for another name fails the TLS handshake") {
  NodeServer server(100);
  // Trust a different CA: verification must fail and the request must not be sent.
  net::TlsContext::ClientOptions o;
  o.ca_file = tls_dir() + "/other-ca.crt";
  std::string err;
  auto tls = net::TlsContext::client(o, err);
  REQUIRE_MESSAGE(tls != nullptr, err);
  std::vector<H2Response> out;
  {
    Loop l;
    ConnectionOptions co;
    co.host = "localhost";
    co.port = server.port;
    auto pool = Pool::create(&l.loop, tls.get(), co, PoolOptions{});
    pool->submit(req("/echo"), 600, [&out](const H2Response& r) { out.push_back(r); });
    CHECK(l.run_until([&] { return out.size() == 1; }, 5000));
    REQUIRE(out.size() == 1);
    CHECK(out[0].status == 0);
    CHECK(pool->stats().connect_failures >= 1);
    pool.reset();
  }
}

}  // TEST_SUITE
