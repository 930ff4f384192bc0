#include <doctest/doctest.h>

#include <string>

#include "../response_parser.h"

using aloha::loadgen::ResponseParser;
using R = ResponseParser::Result;

namespace {
const std::string kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n"
    "{\"result\":\"success\",\"m\":1}\n";
}

TEST_SUITE("loadgen response parser") {
  TEST_CASE("response parser: one whole response in one feed") {
    ResponseParser p;
    size_t used = 0;
    REQUIRE(p.feed(kOk.data(), kOk.size(), used) == R::complete);
    CHECK(used == kOk.size());
    CHECK(p.status() == 200);
    CHECK(p.keep_alive());
    CHECK(p.content_length() == 27);
    CHECK(p.body() == "{\"result\":\"success\",\"m\":1}\n");
  }

  TEST_CASE("response parser: byte-by-byte feeding gives the same answer") {
    ResponseParser p;
    std::string two = kOk + "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\nConnection: close\r\n\r\n{}";
    int completes = 0;
    int statuses[2] = {0, 0};
    for (size_t k = 0; k < two.size(); ++k) {
      size_t used = 0;
      R r = p.feed(two.data() + k, 1, used);
      REQUIRE(r != R::error);
      CHECK(used == 1);
      if (r == R::complete) statuses[completes++] = p.status();
    }
    CHECK(completes == 2);
    CHECK(statuses[0] == 200);
    CHECK(statuses[1] == 429);
    CHECK_FALSE(p.keep_alive());
    CHECK(p.body() == "{}");
  }

  TEST_CASE("response parser: pipelined answers in one buffer come out one at a time") {
    std::string buf = kOk + kOk + kOk.substr(0, 20);
    ResponseParser p;
    size_t off = 0, used = 0;
    REQUIRE(p.feed(buf.data(), buf.size(), used) == R::complete);
    off += used;
    CHECK(off == kOk.size());
    REQUIRE(p.feed(buf.data() + off, buf.size() - off, used) == R::complete);
    off += used;
    CHECK(p.feed(buf.data() + off, buf.size() - off, used) == R::incomplete);
    CHECK(used == 20);
  }

  TEST_CASE("response parser: 204 has no body and HTTP/1.0 is not kept alive") {
    ResponseParser p;
    std::string r = "HTTP/1.1 204 No Content\r\nAllow: POST\r\n\r\nHTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    size_t used = 0;
    REQUIRE(p.feed(r.data(), r.size(), used) == R::complete);
    CHECK(p.status() == 204);
    size_t off = used;
    REQUIRE(p.feed(r.data() + off, r.size() - off, used) == R::complete);
    CHECK(p.status() == 200);
    CHECK_FALSE(p.keep_alive());
  }

  TEST_CASE("response parser: a large body is skipped, only its start is kept") {
    std::string body(100000, 'x');
    std::string r = "HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n" + body;
    ResponseParser p;
    size_t used = 0;
    REQUIRE(p.feed(r.data(), r.size(), used) == R::complete);
    CHECK(used == r.size());
    CHECK(p.body().size() == ResponseParser::kKeepBody);
  }

  TEST_CASE("response parser: malformed or unsupported framing is an error") {
    auto err = [](const std::string& r) {
      ResponseParser p;
      size_t used = 0;
      return p.feed(r.data(), r.size(), used) == R::error;
    };
    CHECK(err("HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    CHECK(err("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"));
    CHECK(err("HTTP/1.1 200 OK\r\n\r\n"));  // no length
    CHECK(err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
    CHECK(err("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"));
    CHECK(err("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"));
    CHECK(err("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"));
    CHECK(err("HTTP/1.1 200 OK\r\nX: " + std::string(ResponseParser::kMaxHead, 'a')));
    CHECK_FALSE(err("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"));
  }
}
