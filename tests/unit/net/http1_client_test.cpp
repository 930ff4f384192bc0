// Http1ResponseParser and format_http1_request: the sans-I/O half of the HTTP/1.1 token-exchange
// fallback (no sockets).
#include <doctest/doctest.h>

#include <string>

#include "net/http1_client.h"

using aloha::net::Http1Request;
using aloha::net::Http1ResponseParser;
using aloha::net::format_http1_request;
using State = Http1ResponseParser::State;

namespace {
Http1Request small_request() {
  Http1Request r;
  r.host = "h";
  r.path.assign("/t");
  return r;
}
}  // namespace

TEST_SUITE("http1_client") {
  TEST_CASE("http1 parser: Content-Length response fed byte by byte") {
    std::string wire =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 41\r\n\r\n"
        R"({"access_token":"t1","expires_in":3600})" "\r\n"
        "garbage after the response";
    Http1ResponseParser p;
    State st = State::reading;
    size_t i = 0;
    for (; i < wire.size() && st == State::reading; ++i) st = p.feed(wire.data() + i, 1);
    REQUIRE(st == State::complete);
    CHECK(i == wire.size() - std::string("garbage after the response").size());
    CHECK(p.status() == 200);
    REQUIRE(p.header("content-type") != nullptr);
    CHECK(*p.header("content-type") == "application/json");
    CHECK(p.body() == "{\"access_token\":\"t1\",\"expires_in\":3600}\r\n");
    CHECK(p.feed("more") == State::complete);  // ignored once complete
  }

  TEST_CASE("http1 parser: chunked body is de-chunked and header names lower-cased") {
    Http1ResponseParser p;
    CHECK(p.feed("HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\nX-Thing:  v  \r\n\r\n") ==
          State::reading);
    CHECK(p.feed("5\r\nhello\r\n") == State::reading);
    CHECK(p.feed("6\r\n world\r\n0\r\n\r\n") == State::complete);
    CHECK(p.status() == 500);
    CHECK(p.body() == "hello world");
    REQUIRE(p.header("x-thing") != nullptr);
    CHECK(*p.header("x-thing") == "v");
  }

  TEST_CASE("http1 parser: a close-delimited body completes at EOF, a cut Content-Length body fails") {
    Http1ResponseParser a;
    CHECK(a.feed("HTTP/1.1 200 OK\r\n\r\n{\"a\":1}") == State::reading);
    CHECK(a.finish() == State::complete);
    CHECK(a.body() == "{\"a\":1}");

    Http1ResponseParser b;
    CHECK(b.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345") == State::reading);
    CHECK(b.finish() == State::failed);
    CHECK(b.error().find("closed before") != std::string::npos);
    CHECK_FALSE(b.too_large());

    Http1ResponseParser c;  // nothing at all
    CHECK(c.finish() == State::failed);
  }

  TEST_CASE("http1 parser: a body over the bound fails as too large") {
    Http1ResponseParser p(16);
    CHECK(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n") == State::reading);
    CHECK(p.feed("0123456789abcdef") == State::reading);  // exactly the bound is fine
    CHECK(p.feed("!") == State::failed);
    CHECK(p.too_large());

    Http1ResponseParser chunked(16);
    CHECK(chunked.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n0123456789abcdefg\r\n0\r\n\r\n") ==
          State::failed);
    CHECK(chunked.too_large());
  }

  TEST_CASE("http1 parser: an oversized head and too many headers fail") {
    Http1ResponseParser p(1024, 100);
    CHECK(p.feed("HTTP/1.1 200 OK\r\nX: " + std::string(200, 'a') + "\r\n\r\n") == State::failed);
    CHECK(p.too_large());

    Http1ResponseParser q;
    std::string wire = "HTTP/1.1 200 OK\r\n";
    for (size_t i = 0; i <= Http1ResponseParser::kMaxHeaders; ++i)
      wire.append("h").append(std::to_string(i)).append(": x\r\n");
    CHECK(q.feed(wire + "\r\n") == State::failed);
    CHECK(q.too_large());
  }

  TEST_CASE("http1 parser: interim 100 Continue is skipped, 101 and garbage fail") {
    Http1ResponseParser p;
    CHECK(p.feed("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n") == State::complete);
    CHECK(p.status() == 204);
    CHECK(p.header("x-interim") == nullptr);
    CHECK(p.body().empty());

    Http1ResponseParser u;
    CHECK(u.feed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n") == State::failed);

    Http1ResponseParser g;
    CHECK(g.feed("SSH-2.0-OpenSSH_9.2\r\n") == State::failed);
    CHECK(g.error().find("malformed response") != std::string::npos);
  }

  TEST_CASE("http1 request: form POST with Host, Content-Length and Connection: close") {
    Http1Request r;
    r.host = "oauth2.example.com";
    r.port = 443;
    r.path = "/token";
    r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"accept", "application/json"}};
    r.body = "grant_type=x&assertion=y";
    std::string err;
    std::string wire = format_http1_request(r, err);
    CHECK(err.empty());
    CHECK(wire ==
          "POST /token HTTP/1.1\r\nHost: oauth2.example.com\r\n"
          "Content-Type: application/x-www-form-urlencoded\r\naccept: application/json\r\n"
          "Content-Length: 24\r\nConnection: close\r\n\r\ngrant_type=x&assertion=y");

    r.host = "::1";
    r.port = 8443;
    wire = format_http1_request(r, err);
    CHECK(wire.find("\r\nHost: [::1]:8443\r\n") != std::string::npos);
    r.authority = "tokens.test:8443";
    wire = format_http1_request(r, err);
    CHECK(wire.find("\r\nHost: tokens.test:8443\r\n") != std::string::npos);
  }

  TEST_CASE("http1 request: CR/LF injection and framing headers are refused") {
    const Http1Request r = small_request();
    std::string err;
    REQUIRE_FALSE(format_http1_request(r, err).empty());

    Http1Request a = r;
    a.headers = {{"x", "v\r\nEvil: 1"}};
    CHECK(format_http1_request(a, err).empty());
    CHECK_FALSE(err.empty());

    Http1Request b = r;
    b.path = "/t HTTP/1.1\r\nX: y";
    CHECK(format_http1_request(b, err).empty());

    Http1Request c = r;
    c.headers = {{"Content-Length", "5"}};
    CHECK(format_http1_request(c, err).empty());
    CHECK(err.find("content-length") != std::string::npos);

    Http1Request d = r;
    d.headers = {{"bad name", "v"}};
    CHECK(format_http1_request(d, err).empty());

    Http1Request e = r;
    e.path = "token";  // not origin-form
    CHECK(format_http1_request(e, err).empty());

    Http1Request f = r;
    f.body.assign(aloha::net::kMaxRequestBody + 1, 'x');
    CHECK(format_http1_request(f, err).empty());
  }
}
