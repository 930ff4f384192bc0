// HTTPS in the blocking client and `register-server --url https://…` (issue 3), end to end: a
// TLS front end (node's https module, tests/support/https_bouncer_proxy.js, test server
// certificate for `localhost`) forwards to the real bouncer started by BouncerProcess. The
// client must verify the chain against the given CA and the name `localhost`, which resolves to
// more than one address (the proxy listens on 127.0.0.1 only). All waits are bounded.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/http_client.h"
#include "cli/register_server.h"
#include "support/fixture.h"
#include "support/process.h"

using namespace aloha;

namespace {

std::string env_or(const char* name, const std::string& dflt) {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}
std::string source_root() { return env_or("ALOHA_SOURCE_ROOT", "."); }
std::string tls_dir() { return env_or("ALOHA_TEST_DATA", source_root() + "/tests/data") + "/tls"; }
std::string test_ca() { return tls_dir() + "/ca.crt"; }
std::string other_ca() { return tls_dir() + "/other-ca.crt"; }

// The node TLS front end; killed by the Process destructor.
struct TlsProxy {
  std::unique_ptr<test::Process> proc;
  uint16_t port = 0;

  explicit TlsProxy(uint16_t target_port) {
    test::ProcessOptions o;
    o.argv = {env_or("NODE", "/usr/bin/node"), source_root() + "/tests/support/https_bouncer_proxy.js",
              "--cert", tls_dir() + "/server.crt", "--key", tls_dir() + "/server.key",
              "--target-port", std::to_string(target_port)};
    proc = std::make_unique<test::Process>(o);
    const bool up = proc->wait_stderr(
        [](std::string_view e) {
          const size_t at = e.find("LISTENING ");
          return at != std::string_view::npos && e.find('\n', at) != std::string_view::npos;
        },
        10000);
    REQUIRE_MESSAGE(up, "TLS proxy did not start: ", proc->stderr_text());
    const std::string e = proc->stderr_text();
    port = static_cast<uint16_t>(std::atoi(e.c_str() + e.find("LISTENING ") + 10));
    REQUIRE(port > 0);
  }

  std::string url(const std::string& path) const {
    return "https://localhost:" + std::to_string(port) + path;
  }

  // Requests the proxy forwarded to the bouncer so far (asked over TLS with the test CA).
  int forwarded() const {
    cli::HttpOptions o;
    o.ca_file = test_ca();
    const cli::HttpResult r = cli::http_request("GET", url("/__proxy/stats"), {}, "", 10000, o);
    REQUIRE_MESSAGE(r.status == 200, "stats: ", r.error);
    const size_t at = r.body.find("\"forwarded\":");
    REQUIRE(at != std::string::npos);
    return std::atoi(r.body.c_str() + at + 12);
  }
};

struct CliRun {
  test::ExitStatus status;
  std::string out, err;
};

CliRun run_cli(const std::vector<std::string>& args,
               const std::vector<std::pair<std::string, std::string>>& env = {}) {
  test::ProcessOptions po;
  po.argv = {test::bouncer_binary(), "register-server"};
  po.argv.insert(po.argv.end(), args.begin(), args.end());
  po.env = env;
  if (po.env.empty()) po.env.push_back({"ALOHA_CA_FILE", ""});  // no CA from the caller's env
  test::Process p(po);
  CliRun r;
  r.status = p.wait(30000);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

std::vector<std::string> reg_args(const std::string& url, const std::string& secrets,
                                  const std::string& hostname) {
  return {"--url", url, "--hostname", hostname, "--email", "admin@aloha-test.org",
          "--secrets", secrets, "--agree-to-terms-of-service"};
}

}  // namespace

TEST_SUITE("cli-https") {

TEST_CASE("https url: parse_url takes https only when asked, default port 443") {
  cli::Url u;
  CHECK_FALSE(cli::parse_url("https://bouncer.example/x", u));
  REQUIRE(cli::parse_url("https://bouncer.example/x?y=1", u, true));
  CHECK(u.tls);
  CHECK(u.host == "bouncer.example");
  CHECK(u.port == 443);
  CHECK(u.target == "/x?y=1");
  REQUIRE(cli::parse_url("HTTPS://[::1]:8443", u, true));
  CHECK(u.tls);
  CHECK(u.host == "::1");
  CHECK(u.port == 8443);
  CHECK(u.target == "/");
  REQUIRE(cli::parse_url("http://h", u, true));
  CHECK_FALSE(u.tls);
  CHECK(u.port == 80);
  CHECK_FALSE(cli::parse_url("https://u@h/", u, true));
  CHECK_FALSE(cli::parse_url("ftp://h/", u, true));
}

TEST_CASE("register-server url: https is accepted like http, junk still refused") {
  std::string base;
  CHECK(cli::check_bouncer_url("https://b.example:8443/prefix/", base) == cli::UrlCheck::ok);
  CHECK(base == "https://b.example:8443/prefix");
  CHECK(cli::check_bouncer_url("HTTPS://b.example", base) == cli::UrlCheck::ok);
  CHECK(base == "HTTPS://b.example");
  CHECK(cli::check_bouncer_url("https://", base) == cli::UrlCheck::invalid);
  CHECK(cli::check_bouncer_url("https://u:p@b.example", base) == cli::UrlCheck::invalid);
  CHECK(cli::check_bouncer_url("https://b.example/?x", base) == cli::UrlCheck::invalid);
  CHECK(cli::check_bouncer_url("httpss://b.example", base) == cli::UrlCheck::invalid);
}

TEST_CASE("register-server args: --ca-file takes a value once and is in the usage text") {
  cli::RegisterOptions o;
  CHECK(cli::parse_register_args({"--url", "u", "--secrets", "s", "--deactivate", "--ca-file",
                                  "ca.pem"},
                                 o) == "");
  CHECK(cli::parse_register_args({"--url", "u", "--secrets", "s", "--deactivate", "--ca-file"}, o) ==
        "--ca-file needs a value");
  CHECK(cli::parse_register_args({"--url", "u", "--secrets", "s", "--deactivate", "--ca-file=a",
                                  "--ca-file=b"},
                                 o) == "--ca-file given twice");
  const std::string usage = cli::register_server_usage();
  CHECK(usage.find("--ca-file FILE") != std::string::npos);
  CHECK(usage.find("ALOHA_CA_FILE") != std::string::npos);
}

TEST_CASE("http_request over https: GET /health reaches the bouncer through the TLS front end") {
  test::BouncerProcess b;
  TlsProxy proxy(b.port());
  cli::HttpOptions o;
  o.ca_file = test_ca();
  const cli::HttpResult r = cli::http_request("GET", proxy.url("/health"), {}, "", 10000, o);
  INFO("error: ", r.error, " body: ", r.body);
  REQUIRE(r.error.empty());
  CHECK(r.status == 200);
  CHECK(r.body.find("\"status\":\"ok\"") != std::string::npos);
  REQUIRE(r.header("x-via-tls-proxy") != nullptr);
  CHECK(*r.header("x-via-tls-proxy") == "1");
  CHECK(proxy.forwarded() == 1);
}

TEST_CASE("http_request over https: a CA that did not sign the certificate fails verification") {
  test::BouncerProcess b;
  TlsProxy proxy(b.port());
  SUBCASE("the other test CA") {
    cli::HttpOptions o;
    o.ca_file = other_ca();
    const cli::HttpResult r = cli::http_request("GET", proxy.url("/health"), {}, "", 10000, o);
    CHECK(r.status == 0);
    CHECK(r.error.find("certificate verify failed") != std::string::npos);
    CHECK(r.error.find("TLS handshake with localhost failed") != std::string::npos);
  }
  SUBCASE("the system bundle (the default) does not hold the test CA") {
    const cli::HttpResult r = cli::http_request("GET", proxy.url("/health"), {}, "", 10000);
    CHECK(r.status == 0);
    CHECK(r.error.find("certificate verify failed") != std::string::npos);
  }
  SUBCASE("an unreadable CA file is named") {
    cli::HttpOptions o;
    o.ca_file = "/nonexistent/aloha-ca.pem";
    const cli::HttpResult r = cli::http_request("GET", proxy.url("/health"), {}, "", 10000, o);
    CHECK(r.status == 0);
    CHECK(r.error.find("/nonexistent/aloha-ca.pem") != std::string::npos);
  }
  CHECK(proxy.forwarded() == 0);
}

TEST_CASE("http_request over https: a plain HTTP port fails the handshake at once, no hang") {
  test::BouncerProcess b;
  cli::HttpOptions o;
  o.ca_file = test_ca();
  const auto t0 = std::chrono::steady_clock::now();
  const cli::HttpResult r = cli::http_request(
      "GET", "https://localhost:" + std::to_string(b.port()) + "/health", {}, "", 8000, o);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0).count();
  INFO("error: ", r.error);
  CHECK(r.status == 0);
  CHECK(r.error.find("TLS handshake with localhost failed") != std::string::npos);
  CHECK(ms < 6000);  // the bouncer answers the ClientHello with 400 and closes
}

TEST_CASE("HttpConnection over TLS: 5 MiB each way, then a second request on the same connection") {
  test::BouncerProcess b;
  TlsProxy proxy(b.port());
  cli::HttpConnection c;
  REQUIRE_MESSAGE(c.connect("localhost", proxy.port, 10000), c.error());
  CHECK_FALSE(c.is_tls());
  cli::HttpOptions o;
  o.ca_file = test_ca();
  REQUIRE_MESSAGE(c.start_tls("localhost", o, 10000), c.error());
  CHECK(c.is_tls());
  // Larger than TlsSession::kMaxPendingPlaintext (4 MiB): the writer must feed it in pieces.
  std::string big(5u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  const cli::HttpResult echo = c.request("POST", "/__proxy/echo", {}, big, 20000);
  INFO("error: ", echo.error);
  REQUIRE(echo.status == 200);
  CHECK(echo.body.size() == big.size());
  CHECK(echo.body == big);
  const cli::HttpResult health = c.request("GET", "/health", {}, "", 10000);
  INFO("error: ", health.error);
  CHECK(health.status == 200);
  CHECK(health.body.find("\"status\":\"ok\"") != std::string::npos);
  CHECK(c.is_open());
}

TEST_CASE("register-server binary over https: --ca-file with the test CA registers, "
          "ALOHA_CA_FILE works too, plain http still works") {
  test::BouncerProcess b;
  TlsProxy proxy(b.port());
  test::TempDir dir;
  const std::string secrets = dir.file("s.conf");

  CliRun first = run_cli([&] {
    auto a = reg_args(proxy.url(""), secrets, "tls.aloha-test.org");
    a.push_back("--ca-file");
    a.push_back(test_ca());
    return a;
  }());
  INFO("first stdout: ", first.out, "\nstderr: ", first.err);
  CHECK(first.status.exited);
  CHECK(first.status.code == 0);
  CHECK(first.out.find("Registered (created)") != std::string::npos);
  CHECK(proxy.forwarded() == 1);

  CliRun second = run_cli(reg_args(proxy.url("/"), secrets, "tls.aloha-test.org"),
                          {{"ALOHA_CA_FILE", test_ca()}});
  INFO("second stdout: ", second.out, "\nstderr: ", second.err);
  CHECK(second.status.exited);
  CHECK(second.status.code == 0);
  CHECK(second.out.find("Updated registration") != std::string::npos);
  CHECK(proxy.forwarded() == 2);

  // Plain http straight to the bouncer: the same registration, so an update.
  CliRun plain = run_cli(reg_args(b.url(""), secrets, "tls.aloha-test.org"));
  INFO("plain stdout: ", plain.out, "\nstderr: ", plain.err);
  CHECK(plain.status.exited);
  CHECK(plain.status.code == 0);
  CHECK(plain.out.find("Updated registration") != std::string::npos);
  CHECK(proxy.forwarded() == 2);

  // Deactivation over https too: exit 0 needs the bouncer's 200 to HTTP Basic with the stored
  // id and key (api.md §2, §3), so the credentials made it through the TLS front end intact.
  CliRun off = run_cli({"--url", proxy.url(""), "--secrets", secrets, "--deactivate", "--ca-file",
                        test_ca()});
  INFO("deactivate stdout: ", off.out, "\nstderr: ", off.err);
  CHECK(off.status.exited);
  CHECK(off.status.code == 0);
  CHECK(off.out.find("Deactivated the registration") != std::string::npos);
  CHECK(proxy.forwarded() == 3);
}

TEST_CASE("register-server binary over https: a wrong CA fails with a certificate error, exit 1, "
          "nothing reaches the bouncer") {
  test::BouncerProcess b;
  TlsProxy proxy(b.port());
  test::TempDir dir;
  const std::string secrets = dir.file("s.conf");

  CliRun bad = run_cli([&] {
    auto a = reg_args(proxy.url(""), secrets, "tls.aloha-test.org");
    a.push_back("--ca-file=" + other_ca());
    return a;
  }());
  INFO("stdout: ", bad.out, "\nstderr: ", bad.err);
  CHECK(bad.status.exited);
  CHECK(bad.status.code == 1);
  CHECK(bad.err.find("could not reach the bouncer at https://localhost:") != std::string::npos);
  CHECK(bad.err.find("certificate verify failed") != std::string::npos);
  CHECK(proxy.forwarded() == 0);

  // --ca-file wins over ALOHA_CA_FILE: the right CA in the environment does not rescue it.
  CliRun flag_wins = run_cli(
      [&] {
        auto a = reg_args(proxy.url(""), secrets, "tls.aloha-test.org");
        a.push_back("--ca-file=" + other_ca());
        return a;
      }(),
      {{"ALOHA_CA_FILE", test_ca()}});
  CHECK(flag_wins.status.code == 1);
  CHECK(flag_wins.err.find("certificate verify failed") != std::string::npos);
  CHECK(proxy.forwarded() == 0);

  // The id stored before sending was never registered: plain http now creates it.
  CliRun plain = run_cli(reg_args(b.url(""), secrets, "tls.aloha-test.org"));
  INFO("plain stdout: ", plain.out, "\nstderr: ", plain.err);
  CHECK(plain.status.code == 0);
  CHECK(plain.out.find("Registered (created)") != std::string::npos);
}

}  // TEST_SUITE
