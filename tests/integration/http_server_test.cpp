// Integration tests for http::Server: a real libuv loop on 127.0.0.1:0 in a thread, raw blocking
// sockets (with receive timeouts, so a bug fails instead of hanging) from the test thread.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/server.h"

using aloha::http::Reply;
using aloha::http::Request;
using aloha::http::Response;
using aloha::http::Server;
using aloha::http::ServerLimits;

namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// One-shot heap timer that runs `fn` on the loop and frees itself.
void after_ms(uv_loop_t* loop, uint64_t ms, std::function<void()> fn) {
  struct T {
    uv_timer_t timer;
    std::function<void()> fn;
  };
  auto* t = new T{{}, std::move(fn)};
  uv_timer_init(loop, &t->timer);
  t->timer.data = t;
  uv_timer_start(&t->timer, [](uv_timer_t* h) {
    auto* self = static_cast<T*>(h->data);
    self->fn();
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* hh) { delete static_cast<T*>(hh->data); });
  }, ms, 0);
}

// The server under test on its own loop thread. Handler: echoes method, path and body length;
// /slow/<ms> answers after <ms> milliseconds; /throw throws.
class TestServer {
 public:
  explicit TestServer(ServerLimits limits, const std::string& host = "127.0.0.1") {
    std::promise<std::string> started;
    auto fut = started.get_future();
    thread_ = std::thread([this, limits, host, &started] { run(limits, host, started); });
    listen_error_ = fut.get();
  }
  ~TestServer() { stop(); }

  const std::string& listen_error() const { return listen_error_; }
  int port() const { return port_; }

  // Runs fn on the loop thread and waits for it.
  void on_loop(std::function<void()> fn) {
    std::promise<void> p;
    auto f = p.get_future();
    {
      std::lock_guard<std::mutex> lk(mu_);
      tasks_.push_back([&] { fn(); p.set_value(); });
    }
    uv_async_send(&async_);
    REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  }

  size_t connection_count() {
    size_t n = 0;
    on_loop([&] { n = server_->connection_count(); });
    return n;
  }

  // Starts a graceful shutdown; returns immediately.
  void shutdown(int64_t deadline_ms) {
    on_loop([&] {
      server_->shutdown(deadline_ms, [this] {
        done_at_ = Clock::now();
        done_calls_++;
        uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
      });
    });
  }

  // Waits for the loop thread to end (after shutdown). Returns uv_loop_close()'s result.
  int join() {
    if (thread_.joinable()) thread_.join();
    return loop_close_rc_;
  }

  void stop() {
    if (!thread_.joinable()) return;
    if (done_calls_ == 0) shutdown(0);
    join();
  }

  std::vector<std::string> answered() {
    std::lock_guard<std::mutex> lk(mu_);
    return answered_;
  }

  std::atomic<int> done_calls_{0};
  Clock::time_point done_at_;
  std::atomic<int> handled_{0};

 private:
  void run(ServerLimits limits, const std::string& host, std::promise<std::string>& started) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &async_, [](uv_async_t* a) {
      auto* self = static_cast<TestServer*>(a->data);
      std::vector<std::function<void()>> tasks;
      {
        std::lock_guard<std::mutex> lk(self->mu_);
        tasks.swap(self->tasks_);
      }
      for (auto& t : tasks) t();
    });
    async_.data = this;
    server_ = new Server(&loop_, limits, [this](Request&& req, Reply reply) { handle(std::move(req), reply); });
    std::string err = server_->listen(host, 0);
    port_ = server_->port();
    if (!err.empty()) {
      delete server_;
      server_ = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
      uv_run(&loop_, UV_RUN_DEFAULT);
      loop_close_rc_ = uv_loop_close(&loop_);
      done_calls_ = 1;
      started.set_value(err);
      return;
    }
    started.set_value("");
    uv_run(&loop_, UV_RUN_DEFAULT);
    delete server_;
    server_ = nullptr;
    uv_run(&loop_, UV_RUN_DEFAULT);
    loop_close_rc_ = uv_loop_close(&loop_);
  }

  void handle(Request&& req, Reply reply) {
    handled_++;
    if (req.path == "/throw") throw std::runtime_error("boom");
    Response r;
    r.body = "{\"method\":\"" + req.method + "\",\"path\":\"" + req.path + "\",\"len\":" +
             std::to_string(req.body.size()) + "}";
    r.add_header("X-Test", "1");
    r.log_server = "test-org";
    if (req.path.rfind("/slow/", 0) == 0) {
      const uint64_t ms = std::stoull(req.path.substr(6));
      const std::string path = req.path;
      after_ms(&loop_, ms, [this, reply, r = std::move(r), path]() mutable {
        {
          std::lock_guard<std::mutex> lk(mu_);
          answered_.push_back(path);
        }
        reply.send(std::move(r));
      });
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      answered_.push_back(req.path);
    }
    reply.send(std::move(r));
  }

  uv_loop_t loop_;
  uv_async_t async_;
  Server* server_ = nullptr;
  std::thread thread_;
  std::string listen_error_;
  int port_ = 0;
  int loop_close_rc_ = -1;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
  std::vector<std::string> answered_;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool ok = false;  // a complete response was read
};

class Client {
 public:
  explicit Client(int port, const char* host = "127.0.0.1") {
    const bool v6 = std::string(host).find(':') != std::string::npos;
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{3, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc;
    if (v6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_port = htons(static_cast<uint16_t>(port));
      inet_pton(AF_INET6, host, &a.sin6_addr);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port));
      inet_pton(AF_INET, host, &a.sin_addr);
      rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    REQUIRE(rc == 0);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  void close() {
    ::close(fd_);
    fd_ = -1;
  }

  void send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      REQUIRE(n > 0);
      off += static_cast<size_t>(n);
    }
  }

  // Reads one response (a 1xx counts as one). head: the request was HEAD (no body follows).
  HttpResponse read_response(bool head = false) {
    HttpResponse r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return r;
    const std::string head_block = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head_block.find("\r\n");
    const std::string status_line = head_block.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0 || status_line.size() < 12) return r;
    r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head_block.find("\r\n", start);
      const std::string line = head_block.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
    }
    size_t len = 0;
    if (r.headers.count("content-length")) len = std::stoul(r.headers["content-length"]);
    if (head || r.status < 200 || r.status == 204) len = 0;
    while (buf_.size() < len)
      if (!fill()) return r;
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    r.ok = true;
    return r;
  }

  // True when the server closes the connection (EOF or reset) before the receive timeout and
  // without sending further bytes.
  bool closed_by_server() {
    if (!buf_.empty()) return false;
    char c[256];
    const ssize_t n = ::recv(fd_, c, sizeof c, 0);
    if (n > 0) {
      buf_.append(c, static_cast<size_t>(n));
      return false;
    }
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }

  const std::string& pending() const { return buf_; }

 private:
  bool fill() {
    char c[4096];
    const ssize_t n = ::recv(fd_, c, sizeof c, 0);
    if (n <= 0) return false;
    buf_.append(c, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
};

ServerLimits test_limits() {
  ServerLimits l;
  l.header_timeout_ms = 2000;
  l.body_timeout_ms = 2000;
  l.idle_timeout_ms = 5000;
  return l;
}

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

std::string echo(const std::string& method, const std::string& path, size_t len) {
  return "{\"method\":\"" + method + "\",\"path\":\"" + path + "\",\"len\":" + std::to_string(len) + "}";
}

}  // namespace

TEST_SUITE("http-server") {
  TEST_CASE("http server: keep-alive serves several requests on one connection") {
    TestServer srv(test_limits());
    REQUIRE(srv.listen_error().empty());
    Client c(srv.port());
    for (int i = 0; i < 3; ++i) {
      c.send(get("/a" + std::to_string(i) + "?secret=1"));
      HttpResponse r = c.read_response();
      REQUIRE(r.ok);
      CHECK(r.status == 200);
      CHECK(r.body == echo("GET", "/a" + std::to_string(i), 0));
      CHECK(r.headers["content-type"] == "application/json");
      CHECK(r.headers["x-test"] == "1");
      CHECK(r.headers.count("connection") == 0);
    }
    CHECK(srv.connection_count() == 1);
    srv.shutdown(1000);
    CHECK(c.closed_by_server());
    CHECK(srv.join() == 0);
    CHECK(srv.done_calls_ == 1);
  }

  TEST_CASE("http server: pipelined responses keep request order when replies come out of order") {
    TestServer srv(test_limits());
    Client c(srv.port());
    c.send(get("/slow/150") + get("/fast") + "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    HttpResponse a = c.read_response();
    HttpResponse b = c.read_response();
    HttpResponse d = c.read_response();
    REQUIRE(a.ok);
    REQUIRE(b.ok);
    REQUIRE(d.ok);
    CHECK(a.body == echo("GET", "/slow/150", 0));
    CHECK(b.body == echo("GET", "/fast", 0));
    CHECK(d.body == echo("POST", "/p", 3));
    // The handler really answered the second request first.
    const auto order = srv.answered();
    REQUIRE(order.size() == 3);
    CHECK(order[0] == "/fast");
    CHECK(order[2] == "/slow/150");
  }

  TEST_CASE("http server: the response ring grows while wrapped and keeps order") {
    // A connection starts with a two-place ring: after one request its head is not at the start,
    // so the pipelined burst below grows it twice from a wrapped state, with replies out of order.
    TestServer srv(test_limits());
    Client c(srv.port());
    c.send(get("/first"));
    HttpResponse r0 = c.read_response();
    REQUIRE(r0.ok);
    CHECK(r0.body == echo("GET", "/first", 0));
    c.send(get("/slow/150") + get("/fast") + get("/slow/60") + get("/b") +
           "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    const char* paths[] = {"/slow/150", "/fast", "/slow/60", "/b"};
    for (const char* p : paths) {
      HttpResponse r = c.read_response();
      REQUIRE(r.ok);
      CHECK(r.body == echo("GET", p, 0));
    }
    HttpResponse last = c.read_response();
    REQUIRE(last.ok);
    CHECK(last.body == echo("POST", "/p", 3));
    const auto order = srv.answered();
    REQUIRE(order.size() == 6);
    CHECK(order.back() == "/slow/150");  // answered last, sent first of its burst
  }

  TEST_CASE("http server: 100 pipelined requests in one write are all answered in order") {
    TestServer srv(test_limits());
    Client c(srv.port());
    std::string all;
    for (int i = 0; i < 100; ++i) all += get("/n" + std::to_string(i));
    c.send(all);
    for (int i = 0; i < 100; ++i) {
      HttpResponse r = c.read_response();
      REQUIRE(r.ok);
      CHECK(r.body == echo("GET", "/n" + std::to_string(i), 0));
    }
    CHECK(srv.handled_ == 100);
  }

  TEST_CASE("http server: chunked request body is de-chunked") {
    TestServer srv(test_limits());
    Client c(srv.port());
    c.send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    c.send("6\r\nefghij\r\n0\r\n\r\n");
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.body == echo("POST", "/c", 10));
  }

  TEST_CASE("http server: Expect 100-continue gets 100 before the body, 413 when declared too big") {
    ServerLimits l = test_limits();
    l.max_body_bytes = 100;
    TestServer srv(l);
    Client c(srv.port());
    c.send("POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    HttpResponse cont = c.read_response();
    REQUIRE(cont.ok);
    CHECK(cont.status == 100);
    c.send("hello");
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 200);
    CHECK(r.body == echo("POST", "/e", 5));

    Client big(srv.port());
    big.send("POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n");
    HttpResponse r413 = big.read_response();
    REQUIRE(r413.ok);
    CHECK(r413.status == 413);
    CHECK(r413.body == "{\"result\":\"error\",\"msg\":\"Request body too large\",\"code\":\"REQUEST_TOO_LARGE\"}");
    CHECK(r413.headers["connection"] == "close");
    CHECK(big.closed_by_server());
  }

  TEST_CASE("http server: HEAD gets the GET's Content-Length and no body") {
    TestServer srv(test_limits());
    Client c(srv.port());
    c.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    HttpResponse h = c.read_response(/*head=*/true);
    REQUIRE(h.ok);
    CHECK(h.status == 200);
    CHECK(h.headers["content-length"] == std::to_string(echo("HEAD", "/h", 0).size()));
    // No stray body bytes: the next response on the connection parses cleanly.
    c.send(get("/after"));
    HttpResponse g = c.read_response();
    REQUIRE(g.ok);
    CHECK(g.body == echo("GET", "/after", 0));
  }

  TEST_CASE("http server: body over the limit is refused with 413 and the connection closes") {
    ServerLimits l = test_limits();
    l.max_body_bytes = 1000;
    TestServer srv(l);
    Client c(srv.port());
    c.send("POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + std::string(1024, 'x') + "\r\n");
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 413);
    CHECK(r.body.find("\"code\":\"REQUEST_TOO_LARGE\"") != std::string::npos);
    CHECK(c.closed_by_server());
    CHECK(srv.handled_ == 0);
  }

  TEST_CASE("http server: too many header bytes give 413") {
    ServerLimits l = test_limits();
    l.max_header_bytes = 512;
    TestServer srv(l);
    Client c(srv.port());
    c.send(get("/x", "X-Big: " + std::string(600, 'a') + "\r\n"));
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 413);
    CHECK(r.body == "{\"result\":\"error\",\"msg\":\"Request headers too large\",\"code\":\"REQUEST_TOO_LARGE\"}");
  }

  TEST_CASE("http server: malformed request gets 400 JSON and close, after earlier responses") {
    TestServer srv(test_limits());
    Client c(srv.port());
    c.send(get("/ok") + "BREW /pot HTTP/1.1\r\n\r\n");
    HttpResponse ok = c.read_response();
    REQUIRE(ok.ok);
    CHECK(ok.status == 200);
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 400);
    CHECK(r.body == "{\"result\":\"error\",\"msg\":\"Malformed request\",\"code\":\"BAD_REQUEST\"}");
    CHECK(r.headers["connection"] == "close");
    CHECK(c.closed_by_server());
  }

  TEST_CASE("http server: slow headers get 408 after header_timeout") {
    ServerLimits l = test_limits();
    l.header_timeout_ms = 200;
    TestServer srv(l);
    Client c(srv.port());
    const auto t0 = Clock::now();
    c.send("GET /slow-client HTTP/1.1\r\nHost: t\r\n");
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 408);
    CHECK(r.body.find("\"code\":\"REQUEST_TIMEOUT\"") != std::string::npos);
    CHECK(ms_since(t0) >= 150);
    CHECK(ms_since(t0) < 2000);
    CHECK(c.closed_by_server());
  }

  TEST_CASE("http server: slow body gets 408 after body_timeout") {
    ServerLimits l = test_limits();
    l.body_timeout_ms = 200;
    TestServer srv(l);
    Client c(srv.port());
    const auto t0 = Clock::now();
    c.send("POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 408);
    CHECK(ms_since(t0) >= 150);
    CHECK(c.closed_by_server());
  }

  TEST_CASE("http server: idle keep-alive connection closes after idle_timeout") {
    ServerLimits l = test_limits();
    l.idle_timeout_ms = 300;
    TestServer srv(l);
    Client c(srv.port());
    c.send(get("/i"));
    REQUIRE(c.read_response().ok);
    const auto t0 = Clock::now();
    CHECK(c.closed_by_server());
    CHECK(ms_since(t0) >= 250);
    CHECK(ms_since(t0) < 2500);
    // The close callback runs at the end of that loop iteration, just after the FIN.
    for (int i = 0; i < 50 && srv.connection_count() > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(srv.connection_count() == 0);
  }

  TEST_CASE("http server: connections over max_connections get 503 JSON and close") {
    ServerLimits l = test_limits();
    l.max_connections = 2;
    TestServer srv(l);
    Client a(srv.port());
    Client b(srv.port());
    a.send(get("/a"));
    b.send(get("/b"));
    REQUIRE(a.read_response().ok);
    REQUIRE(b.read_response().ok);
    Client c(srv.port());
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 503);
    CHECK(r.body.find("\"code\":\"SERVICE_UNAVAILABLE\"") != std::string::npos);
    CHECK(r.headers["connection"] == "close");
    CHECK(c.closed_by_server());
    // Once a slot frees up, new connections are served again.
    a.close();
    for (int i = 0; i < 50 && srv.connection_count() > 1; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    Client d(srv.port());
    d.send(get("/d"));
    HttpResponse rd = d.read_response();
    REQUIRE(rd.ok);
    CHECK(rd.status == 200);
  }

  TEST_CASE("http server: HTTP/1.0 and Connection: close end the connection after the response") {
    TestServer srv(test_limits());
    Client a(srv.port());
    a.send("GET /old HTTP/1.0\r\n\r\n");
    HttpResponse r = a.read_response();
    REQUIRE(r.ok);
    CHECK(r.headers["connection"] == "close");
    CHECK(a.closed_by_server());

    Client k(srv.port());
    k.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    HttpResponse rk = k.read_response();
    REQUIRE(rk.ok);
    CHECK(rk.headers["connection"] == "keep-alive");
    k.send("GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    REQUIRE(k.read_response().ok);

    Client b(srv.port());
    b.send(get("/bye", "Connection: close\r\n") + get("/ignored"));
    HttpResponse rb = b.read_response();
    REQUIRE(rb.ok);
    CHECK(rb.headers["connection"] == "close");
    CHECK(b.closed_by_server());
    const auto order = srv.answered();
    CHECK(std::find(order.begin(), order.end(), "/ignored") == order.end());
  }

  TEST_CASE("http server: a throwing handler gives 500 and the connection stays usable") {
    TestServer srv(test_limits());
    Client c(srv.port());
    c.send(get("/throw"));
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.status == 500);
    CHECK(r.body.find("\"result\":\"error\"") != std::string::npos);
    c.send(get("/next"));
    REQUIRE(c.read_response().ok);
  }

  TEST_CASE("http server: a reply after the client left is a no-op") {
    TestServer srv(test_limits());
    {
      Client c(srv.port());
      c.send(get("/slow/200"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(srv.answered().size() == 1);
    CHECK(srv.connection_count() == 0);
    Client d(srv.port());
    d.send(get("/alive"));
    REQUIRE(d.read_response().ok);
  }

  TEST_CASE("http server: graceful shutdown answers the request in flight, then calls done") {
    TestServer srv(test_limits());
    Client busy(srv.port());
    Client idle(srv.port());
    idle.send(get("/warm"));
    REQUIRE(idle.read_response().ok);
    busy.send(get("/slow/300"));
    for (int i = 0; i < 100 && srv.handled_ < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(srv.handled_ == 2);
    const auto t0 = Clock::now();
    srv.shutdown(5000);
    CHECK(idle.closed_by_server());  // idle connections close at once
    CHECK(ms_since(t0) < 250);
    CHECK(srv.done_calls_ == 0);
    HttpResponse r = busy.read_response();
    const auto answered_at = Clock::now();
    REQUIRE(r.ok);
    CHECK(r.status == 200);
    CHECK(r.headers["connection"] == "close");
    CHECK(busy.closed_by_server());
    CHECK(srv.join() == 0);  // uv_loop_close() == 0: no handle leaked
    CHECK(srv.done_calls_ == 1);
    CHECK(srv.done_at_ >= answered_at - std::chrono::milliseconds(50));
  }

  TEST_CASE("http server: shutdown deadline force-closes a request that never gets answered") {
    TestServer srv(test_limits());
    Client busy(srv.port());
    busy.send(get("/slow/1000"));
    for (int i = 0; i < 100 && srv.handled_ < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto t0 = Clock::now();
    srv.shutdown(200);
    CHECK(busy.closed_by_server());
    CHECK(ms_since(t0) >= 150);
    CHECK(ms_since(t0) < 2000);
    // The pending timer in the test handler still holds the loop for a while; then it ends clean.
    CHECK(srv.join() == 0);
    CHECK(srv.done_calls_ == 1);
  }

  TEST_CASE("http server: listens on IPv6 loopback") {
    TestServer srv(test_limits(), "::1");
    if (!srv.listen_error().empty()) {
      MESSAGE("IPv6 loopback unavailable: " << srv.listen_error());
      return;
    }
    Client c(srv.port(), "::1");
    c.send(get("/v6"));
    HttpResponse r = c.read_response();
    REQUIRE(r.ok);
    CHECK(r.body == echo("GET", "/v6", 0));
  }

  TEST_CASE("http server: listen reports a bad address") {
    TestServer srv(test_limits(), "300.1.1.1");
    CHECK_FALSE(srv.listen_error().empty());
  }
}
