// The blocking HTTP client (src/cli/http_client.h) and the test-support process/fixture helpers,
// against tiny loopback servers run on a thread. No bouncer needed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "cli/http_client.h"
#include "support/fixture.h"
#include "support/http_client.h"
#include "support/process.h"

using namespace aloha;
using namespace aloha::test;

namespace {

// Accepts one connection on 127.0.0.1 (or ::1), reads the request head (and a body of the given
// Content-Length), hands the request text to `respond`, which writes the reply bytes.
class OneShotServer {
 public:
  OneShotServer(std::function<void(int fd, const std::string& request)> respond, bool v6 = false)
      : respond_(std::move(respond)) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (v6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }
    if (!ok_) return;
    ::listen(fd_, 4);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~OneShotServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  bool ok() const { return ok_; }
  uint16_t port() const { return port_; }
  std::string request() const { return request_; }

 private:
  void run() {
    pollfd p{fd_, POLLIN, 0};
    while (!stop_ && ::poll(&p, 1, 50) == 0) {
    }
    if (stop_) return;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    std::string req;
    char buf[4096];
    size_t need = std::string::npos;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 50) <= 0) continue;
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
      size_t end = req.find("\r\n\r\n");
      if (end != std::string::npos && need == std::string::npos) {
        size_t cl = req.find("Content-Length: ");
        size_t len = cl == std::string::npos ? 0 : std::stoul(req.substr(cl + 16));
        need = end + 4 + len;
      }
      if (need != std::string::npos && req.size() >= need) break;
    }
    request_ = req;
    respond_(c, req);
    ::close(c);
  }

  std::function<void(int, const std::string&)> respond_;
  int fd_ = -1;
  bool ok_ = false;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::string request_;
};

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

std::string port_url(uint16_t port, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

}  // namespace

TEST_SUITE("integration/http_client") {
  TEST_CASE("http client: parses URLs with ports, IPv6 literals and queries") {
    cli::Url u;
    REQUIRE(cli::parse_url("http://127.0.0.1:8080/a/b?x=1", u));
    CHECK(u.host == "127.0.0.1");
    CHECK(u.port == 8080);
    CHECK(u.target == "/a/b?x=1");
    REQUIRE(cli::parse_url("http://[::1]:9/", u));
    CHECK(u.host == "::1");
    CHECK(u.port == 9);
    REQUIRE(cli::parse_url("HTTP://example.org", u));
    CHECK(u.port == 80);
    CHECK(u.target == "/");
    REQUIRE(cli::parse_url("http://h?q", u));
    CHECK(u.target == "/?q");
    CHECK_FALSE(cli::parse_url("https://example.org/", u));
    CHECK_FALSE(cli::parse_url("http://user@h/", u));
    CHECK_FALSE(cli::parse_url("http://h:0/", u));
    CHECK_FALSE(cli::parse_url("http://h:65536/", u));
    CHECK_FALSE(cli::parse_url("http://h:/", u));
    CHECK_FALSE(cli::parse_url("http://[::1/", u));
  }

  TEST_CASE("http client: basic_auth encodes user:password in padded base64 (RFC 7617)") {
    CHECK(cli::basic_auth("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    CHECK(cli::basic_auth("a", "") == "Basic YTo=");
    CHECK(cli::basic_auth("ab", "c") == "Basic YWI6Yw==");
    CHECK(cli::basic_auth("abc", "de") == "Basic YWJjOmRl");
  }

  TEST_CASE("http client: form_encode escapes reserved bytes and spaces") {
    CHECK(form_encode({{"a", "1 2"}, {"b&c", "x=y/ü"}}) == "a=1+2&b%26c=x%3Dy%2F%C3%BC");
    CHECK(form_encode({}) == "");
  }

  TEST_CASE("http client: Content-Length response, request carries Host, length and Connection: close") {
    OneShotServer srv([](int fd, const std::string&) {
      write_all(fd, "HTTP/1.1 201 Created\r\nX-A:  v1 \r\nContent-Length: 5\r\n\r\nhello");
    });
    REQUIRE(srv.ok());
    auto r = cli::http_request("POST", port_url(srv.port(), "/p?q=1"), {{"X-Test", "yes"}}, "abc", 5000);
    CHECK(r.error == "");
    CHECK(r.status == 201);
    CHECK(r.body == "hello");
    REQUIRE(r.header("x-a") != nullptr);
    CHECK(*r.header("x-a") == "v1");
    std::string req = srv.request();
    CHECK(req.rfind("POST /p?q=1 HTTP/1.1\r\n", 0) == 0);
    CHECK(req.find("Host: 127.0.0.1:" + std::to_string(srv.port()) + "\r\n") != std::string::npos);
    CHECK(req.find("Content-Length: 3\r\n") != std::string::npos);
    CHECK(req.find("Connection: close\r\n") != std::string::npos);
    CHECK(req.find("X-Test: yes\r\n") != std::string::npos);
    CHECK(req.substr(req.size() - 3) == "abc");
  }

  TEST_CASE("http client: chunked response with extensions and trailers is de-chunked") {
    OneShotServer srv([](int fd, const std::string&) {
      write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      write_all(fd, "4;ext=1\r\nWiki\r\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      write_all(fd, "5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n");
    });
    REQUIRE(srv.ok());
    auto r = cli::http_request("GET", port_url(srv.port(), "/"), {}, "", 5000);
    CHECK(r.error == "");
    CHECK(r.status == 200);
    CHECK(r.body == "Wikipedia in\r\n\r\nchunks.");
  }

  TEST_CASE("http client: body without framing runs to close; 100 Continue is skipped") {
    OneShotServer srv([](int fd, const std::string&) {
      write_all(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nuntil-close");
    });
    REQUIRE(srv.ok());
    auto r = cli::http_request("GET", port_url(srv.port(), "/"), {}, "", 5000);
    CHECK(r.error == "");
    CHECK(r.status == 200);
    CHECK(r.body == "until-close");
  }

  TEST_CASE("http client: HEAD and 204 responses have no body even with Content-Length") {
    OneShotServer srv([](int fd, const std::string&) {
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n");
    });
    REQUIRE(srv.ok());
    auto r = cli::http_request("HEAD", port_url(srv.port(), "/"), {}, "", 5000);
    CHECK(r.error == "");
    CHECK(r.status == 200);
    CHECK(r.body == "");
  }

  TEST_CASE("http client: a stalled server times out with an error, not a hang") {
    OneShotServer srv([](int, const std::string&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
    });
    REQUIRE(srv.ok());
    auto t0 = std::chrono::steady_clock::now();
    auto r = cli::http_request("GET", port_url(srv.port(), "/"), {}, "", 300);
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(r.status == 0);
    CHECK(r.error.find("timed out") != std::string::npos);
    CHECK(took < std::chrono::milliseconds(750));
  }

  TEST_CASE("http client: truncated body and garbage status lines are errors") {
    {
      OneShotServer srv([](int fd, const std::string&) {
        write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
      });
      REQUIRE(srv.ok());
      auto r = cli::http_request("GET", port_url(srv.port(), "/"), {}, "", 5000);
      CHECK(r.status == 0);
      CHECK(r.error != "");
    }
    {
      OneShotServer srv([](int fd, const std::string&) { write_all(fd, "SSH-2.0-OpenSSH\r\n\r\n"); });
      REQUIRE(srv.ok());
      auto r = cli::http_request("GET", port_url(srv.port(), "/"), {}, "", 5000);
      CHECK(r.status == 0);
      CHECK(r.error == "malformed status line");
    }
  }

  TEST_CASE("http client: refused connection reports an error") {
    uint16_t port;
    {
      OneShotServer srv([](int, const std::string&) {});
      REQUIRE(srv.ok());
      port = srv.port();
    }  // closed: nothing listens there now
    auto r = cli::http_request("GET", port_url(port, "/"), {}, "", 2000);
    CHECK(r.status == 0);
    CHECK(r.error.find("connect") != std::string::npos);
  }

  TEST_CASE("http client: IPv6 literal URLs connect to ::1") {
    OneShotServer srv([](int fd, const std::string&) {
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6");
    }, true);
    if (!srv.ok()) {
      MESSAGE("no IPv6 loopback on this machine; skipped");
      return;
    }
    auto r = cli::http_request("GET", "http://[::1]:" + std::to_string(srv.port()) + "/", {}, "", 5000);
    CHECK(r.error == "");
    CHECK(r.body == "v6");
    CHECK(srv.request().find("Host: [::1]:" + std::to_string(srv.port())) != std::string::npos);
  }

  TEST_CASE("http client: pipelined responses on one connection are read one by one") {
    OneShotServer srv([](int fd, const std::string&) {
      write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 404 Not Found\r\n"
                    "Content-Length: 1\r\n\r\nB");
    });
    REQUIRE(srv.ok());
    HttpConnection c;
    REQUIRE(c.connect("127.0.0.1", srv.port(), 2000));
    REQUIRE(c.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 2000));
    auto a = c.read_response(2000);
    auto b = c.read_response(2000);
    CHECK(a.status == 200);
    CHECK(a.body == "A");
    CHECK(b.status == 404);
    CHECK(b.body == "B");
    CHECK(c.wait_closed(2000));
  }
}

TEST_SUITE("integration/support") {
  TEST_CASE("process: captures stdout and stderr, exit code and extra environment") {
    ProcessOptions o;
    o.argv = {"/bin/sh", "-c", "echo out-$ALOHA_X; echo err >&2; exit 3"};
    o.env = {{"ALOHA_X", "42"}};
    Process p(std::move(o));
    auto st = p.wait(5000);
    CHECK(st.exited);
    CHECK(st.code == 3);
    CHECK(p.stdout_text() == "out-42\n");
    CHECK(p.stderr_text() == "err\n");
    CHECK_FALSE(p.running());
  }

  TEST_CASE("process: a wrong program path throws at spawn") {
    ProcessOptions o;
    o.argv = {"/nonexistent/aloha-nothing"};
    CHECK_THROWS_AS(Process(std::move(o)), std::runtime_error);
  }

  TEST_CASE("process: wait times out on a sleeper; SIGTERM and kill9 end it") {
    ProcessOptions o;
    o.argv = {"/bin/sleep", "30"};
    Process p(std::move(o));
    auto st = p.wait(100);
    CHECK(st.timed_out);
    CHECK(p.running());
    p.signal(SIGTERM);
    st = p.wait(5000);
    CHECK(st.signaled);
    CHECK(st.signal == SIGTERM);

    ProcessOptions o2;
    o2.argv = {"/bin/sleep", "30"};
    Process q(std::move(o2));
    st = q.kill9();
    CHECK(st.signaled);
    CHECK(st.signal == SIGKILL);
  }

  TEST_CASE("process: a child flooding its pipes never blocks and wait_stderr sees the marker") {
    ProcessOptions o;
    o.argv = {"/bin/sh", "-c", "head -c 2000000 /dev/zero; echo ready >&2; sleep 30"};
    o.max_capture = 1000;
    Process p(std::move(o));
    CHECK(p.wait_stderr([](std::string_view s) { return s.find("ready") != std::string_view::npos; },
                        5000));
    CHECK(p.stdout_text().size() == 1000);
    p.kill9();
  }

  TEST_CASE("fixture: merge_ini replaces keys, appends new keys and sections") {
    std::string base = "# c\n[server]\nlisten = a\nlog_level = info\n\n[limits]\nx = 1\n";
    std::string m = merge_ini(base, "[limits]\nx = 2\ny=3\n[server]\nlog_level = debug\n[push]\npolicy = deny\n");
    CHECK(m == "# c\n[server]\nlisten = a\nlog_level = debug\n\n[limits]\nx = 2\ny = 3\n\n[push]\npolicy = deny\n");
  }

  TEST_CASE("fixture: random_uuid4 is canonical and TempDir is removed") {
    std::string u = random_uuid4();
    REQUIRE(u.size() == 36);
    CHECK(u[14] == '4');
    CHECK(std::string("89ab").find(u[19]) != std::string::npos);
    for (size_t i : {8u, 13u, 18u, 23u}) CHECK(u[i] == '-');
    CHECK(random_uuid4() != u);
    CHECK(random_key().size() == 64);
    std::string path;
    {
      TempDir d;
      path = d.path();
      FILE* f = std::fopen(d.file("x").c_str(), "w");
      REQUIRE(f != nullptr);
      std::fclose(f);
      CHECK(::access(path.c_str(), F_OK) == 0);
    }
    CHECK(::access(path.c_str(), F_OK) != 0);
  }
}
