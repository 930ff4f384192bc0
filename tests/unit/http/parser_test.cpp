// Unit tests for the sans-I/O request parser: identical results whatever the read boundaries,
// every limit, malformed input.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "http/parser.h"
#include "http/response_writer.h"

using aloha::http::ParseError;
using aloha::http::ParseEvent;
using aloha::http::ParsePhase;
using aloha::http::ParserLimits;
using aloha::http::Request;
using aloha::http::RequestParser;

namespace {

// A readable transcript of everything the parser reported, so runs with different read
// boundaries can be compared as strings.
std::string describe(const Request& r, bool keep_alive) {
  std::string s = "REQ " + r.method + " target=" + r.target + " path=" + r.path + " query=" + r.query;
  for (const auto& h : r.headers) s += " [" + h.name + "=" + h.value + "]";
  s += " body(" + std::to_string(r.body.size()) + ")=" + r.body;
  s += keep_alive ? " keep-alive" : " close";
  return s + "\n";
}

struct Run {
  std::string transcript;
  std::vector<Request> requests;
  ParseError error;
  bool failed = false;
};

// Feeds `input` cut at the given offsets (ascending, each in (0, size)).
Run feed_split(const std::string& input, const std::vector<size_t>& cuts,
               ParserLimits limits = ParserLimits{}) {
  RequestParser parser(limits);
  Run run;
  size_t start = 0;
  for (size_t i = 0; i <= cuts.size() && !run.failed; ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : input.size();
    const char* p = input.data() + start;
    size_t left = end - start;
    for (;;) {
      size_t used = 0;
      const ParseEvent ev = parser.feed(p, left, used);
      REQUIRE(used <= left);
      p += used;
      left -= used;
      if (ev == ParseEvent::need_more) {
        REQUIRE(left == 0);
        break;
      }
      if (ev == ParseEvent::error) {
        run.failed = true;
        run.error = parser.error();
        run.transcript += "ERROR " + std::to_string(parser.error().status) + " " +
                          parser.error().code + " " + parser.error().msg + "\n";
        break;
      }
      if (ev == ParseEvent::expect_continue) {
        run.transcript += "CONTINUE\n";
        continue;
      }
      Request r = parser.take_request();
      run.transcript += describe(r, parser.keep_alive());
      run.requests.push_back(std::move(r));
    }
    start = end;
  }
  return run;
}

Run feed_whole(const std::string& input, ParserLimits limits = ParserLimits{}) {
  return feed_split(input, {}, limits);
}

// Every single cut point, every pair of cut points for short inputs, and byte by byte: all must
// give the same transcript as one whole read.
void check_split_invariance(const std::string& input, ParserLimits limits = ParserLimits{}) {
  const Run whole = feed_whole(input, limits);
  for (size_t cut = 1; cut < input.size(); ++cut) {
    const Run r = feed_split(input, {cut}, limits);
    INFO("cut at ", cut);
    CHECK(r.transcript == whole.transcript);
  }
  std::vector<size_t> all;
  for (size_t i = 1; i < input.size(); ++i) all.push_back(i);
  CHECK(feed_split(input, all, limits).transcript == whole.transcript);
  if (input.size() <= 200) {
    for (size_t a = 1; a < input.size(); ++a)
      for (size_t b = a + 1; b < input.size(); ++b) {
        const Run r = feed_split(input, {a, b}, limits);
        if (r.transcript != whole.transcript) {
          INFO("cuts at ", a, " and ", b);
          CHECK(r.transcript == whole.transcript);
          return;
        }
      }
  }
}

const std::string kGet =
    "GET /api/v1/remotes/server/register?a=1&b=%20x HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent:   AlohaServer/1.0  \r\n"
    "X-Empty:\r\n"
    "\r\n";
const std::string kPost =
    "POST /api/v1/remotes/push/notify HTTP/1.1\r\n"
    "Host: b\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "{\"user_id\":1}";
const std::string kChunked =
    "POST /chunked HTTP/1.1\r\n"
    "Host: c\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5\r\nhello\r\n"
    "7;ext=1\r\n, world\r\n"
    "0\r\n"
    "X-Trailer: t\r\n"
    "\r\n";
const std::string kHead = "HEAD /api/v1/health HTTP/1.1\r\nHost: h\r\n\r\n";
const std::string kExpect =
    "POST /upload HTTP/1.1\r\n"
    "Host: e\r\n"
    "Expect: 100-Continue\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "abcd";

}  // namespace

TEST_SUITE("http-parser") {
  TEST_CASE("parser: GET splits path and query, lower-cases names, trims values") {
    const Run r = feed_whole(kGet);
    REQUIRE_FALSE(r.failed);
    REQUIRE(r.requests.size() == 1);
    const Request& q = r.requests[0];
    CHECK(q.method == "GET");
    CHECK(q.target == "/api/v1/remotes/server/register?a=1&b=%20x");
    CHECK(q.path == "/api/v1/remotes/server/register");
    CHECK(q.query == "a=1&b=%20x");
    REQUIRE(q.headers.size() == 3);
    CHECK(q.headers[0].name == "host");
    CHECK(q.headers[0].value == "example.com");
    CHECK(q.headers[1].name == "user-agent");
    CHECK(q.headers[1].value == "AlohaServer/1.0");
    CHECK(q.headers[2].name == "x-empty");
    CHECK(q.headers[2].value == "");
    REQUIRE(q.header("user-agent") != nullptr);
    CHECK(q.body.empty());
  }

  TEST_CASE("parser: recycled requests reuse header buffers, carry nothing over, keep the bound") {
    const std::string long_value(200, 'v');  // past the small-string size, within the spare bound
    const std::string huge_value(aloha::http::kMaxSpareHeaderBytes + 100, 'h');
    std::string first = "POST /a HTTP/1.1\r\nAuthorization: Basic " + long_value +
                        "\r\nX-Huge: " + huge_value + "\r\nContent-Type: application/json\r\n";
    for (size_t i = 0; i < aloha::http::kMaxSpareHeaders + 4; ++i)
      first.append("X-Pad-").append(std::to_string(i)).append(": ").append(long_value).append("\r\n");
    first += "Content-Length: 2\r\n\r\n{}";
    const std::string second = "GET /b HTTP/1.1\r\nHost: x\r\nUser-Agent: short\r\n\r\n";

    RequestParser parser(ParserLimits{});
    auto parse_one = [&](const std::string& in) {
      size_t used = 0;
      REQUIRE(parser.feed(in.data(), in.size(), used) == ParseEvent::request);
      CHECK(used == in.size());
      return parser.take_request();
    };
    Request a = parse_one(first);
    REQUIRE(a.header("authorization") != nullptr);
    const char* auth_buf = a.header("authorization")->data();
    aloha::http::recycle_request(std::move(a));

    Request b = parse_one(second);
    // Exactly the second request's headers, none of the first's names or values.
    REQUIRE(b.headers.size() == 2);
    CHECK(b.headers[0].name == "host");
    CHECK(b.headers[0].value == "x");
    CHECK(b.headers[1].name == "user-agent");
    CHECK(b.headers[1].value == "short");
    CHECK(b.header("authorization") == nullptr);
    CHECK(b.body.empty());
    // The spares are bounded in number and size, and one of them is the first request's
    // authorization buffer, reused (no allocation for it next time).
    CHECK(b.spare_headers.size() + b.headers.size() <= aloha::http::kMaxSpareHeaders);
    bool reused = false;
    for (const auto& h : b.headers) reused = reused || h.value.data() == auth_buf || h.name.data() == auth_buf;
    for (const auto& h : b.spare_headers) {
      CHECK(h.name.empty());
      CHECK(h.value.empty());
      CHECK(h.value.capacity() <= aloha::http::kMaxSpareHeaderBytes);
      reused = reused || h.value.data() == auth_buf;
    }
    CHECK(reused);
    aloha::http::recycle_request(std::move(b));
  }

  TEST_CASE("parser: Content-Length body is delivered whole") {
    const Run r = feed_whole(kPost);
    REQUIRE(r.requests.size() == 1);
    CHECK(r.requests[0].method == "POST");
    CHECK(r.requests[0].body == "{\"user_id\":1}");
    CHECK(r.requests[0].query.empty());
  }

  TEST_CASE("parser: chunked body is de-chunked, extensions and trailers dropped") {
    const Run r = feed_whole(kChunked);
    REQUIRE(r.requests.size() == 1);
    CHECK(r.requests[0].body == "hello, world");
    CHECK(r.requests[0].header("x-trailer") == nullptr);
    CHECK(r.requests[0].header("transfer-encoding") != nullptr);
  }

  TEST_CASE("parser: pipelined requests come out one at a time, in order") {
    RequestParser p{ParserLimits{}};
    const std::string both = kPost + kGet;
    size_t used = 0;
    REQUIRE(p.feed(both.data(), both.size(), used) == ParseEvent::request);
    CHECK(used == kPost.size());
    CHECK(p.take_request().path == "/api/v1/remotes/push/notify");
    CHECK(p.phase() == ParsePhase::idle);
    size_t used2 = 0;
    REQUIRE(p.feed(both.data() + used, both.size() - used, used2) == ParseEvent::request);
    CHECK(used2 == kGet.size());
    CHECK(p.take_request().method == "GET");
    CHECK(p.messages_begun() == 2);
  }

  TEST_CASE("parser: headers ending exactly at a read boundary still complete a GET") {
    RequestParser p{ParserLimits{}};
    size_t used = 0;
    REQUIRE(p.feed(kHead.data(), kHead.size(), used) == ParseEvent::request);
    CHECK(used == kHead.size());
    CHECK(p.take_request().method == "HEAD");
    CHECK(p.keep_alive());
  }

  TEST_CASE("parser: Expect: 100-continue pauses after the headers, before the body") {
    RequestParser p{ParserLimits{}};
    const size_t head_len = kExpect.size() - 4;
    size_t used = 0;
    REQUIRE(p.feed(kExpect.data(), head_len, used) == ParseEvent::expect_continue);
    CHECK(used == head_len);
    CHECK(p.phase() == ParsePhase::body);
    REQUIRE(p.feed(kExpect.data() + head_len, 4, used) == ParseEvent::request);
    CHECK(p.take_request().body == "abcd");
  }

  TEST_CASE("parser: Expect without a body or in HTTP/1.0 gives no continue event") {
    const Run a = feed_whole("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
    CHECK(a.transcript.find("CONTINUE") == std::string::npos);
    CHECK(a.requests.size() == 1);
    const Run b = feed_whole("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx");
    CHECK(b.transcript.find("CONTINUE") == std::string::npos);
    CHECK(b.requests.size() == 1);
  }

  TEST_CASE("parser: every split point gives the same result") {
    SUBCASE("GET") { check_split_invariance(kGet); }
    SUBCASE("POST with Content-Length") { check_split_invariance(kPost); }
    SUBCASE("chunked") { check_split_invariance(kChunked); }
    SUBCASE("HEAD") { check_split_invariance(kHead); }
    SUBCASE("100-continue") { check_split_invariance(kExpect); }
    SUBCASE("pipelined pair") { check_split_invariance(kPost + kGet); }
    SUBCASE("pipelined five kinds") { check_split_invariance(kGet + kPost + kChunked + kHead + kExpect); }
    SUBCASE("error after a good request") { check_split_invariance(kPost + "BREW / HTTP/1.1\r\n\r\n"); }
  }

  TEST_CASE("parser: the split-invariance helper notices a difference") {
    // Guards the helper itself: different inputs must give different transcripts.
    CHECK(feed_whole(kGet).transcript != feed_whole(kHead).transcript);
    CHECK(feed_whole(kGet).transcript.find("REQ GET") == 0);
  }

  TEST_CASE("parser: HTTP/1.0 closes unless keep-alive is asked for; Connection: close honoured") {
    const Run a = feed_whole("GET / HTTP/1.0\r\n\r\n");
    REQUIRE(a.requests.size() == 1);
    CHECK(a.transcript.find(" close\n") != std::string::npos);
    const Run b = feed_whole("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(b.transcript.find(" keep-alive\n") != std::string::npos);
    const Run c = feed_whole("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(c.transcript.find(" close\n") != std::string::npos);
  }

  TEST_CASE("parser: bytes after a closing request are ignored") {
    RequestParser p{ParserLimits{}};
    const std::string in = "GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    size_t used = 0;
    REQUIRE(p.feed(in.data(), in.size(), used) == ParseEvent::request);
    CHECK_FALSE(p.keep_alive());
    CHECK(p.take_request().path == "/a");
    CHECK(p.phase() == ParsePhase::done);
    size_t used2 = 0;
    CHECK(p.feed(in.data() + used, in.size() - used, used2) == ParseEvent::need_more);
    CHECK(used2 == in.size() - used);
  }

  TEST_CASE("parser: phase tracks headers and body") {
    RequestParser p{ParserLimits{}};
    CHECK(p.phase() == ParsePhase::idle);
    size_t used = 0;
    const std::string start = "POST / HTTP/1.1\r\nHo";
    CHECK(p.feed(start.data(), start.size(), used) == ParseEvent::need_more);
    CHECK(p.phase() == ParsePhase::headers);
    const std::string rest = "st: x\r\nContent-Length: 3\r\n\r\nab";
    CHECK(p.feed(rest.data(), rest.size(), used) == ParseEvent::need_more);
    CHECK(p.phase() == ParsePhase::body);
    CHECK(p.feed("c", 1, used) == ParseEvent::request);
    CHECK(p.phase() == ParsePhase::idle);
  }

  TEST_CASE("parser: header byte limit counts the request line and header block") {
    // Request line + headers + final CRLF = exactly the limit: accepted; one byte more: 413.
    const std::string base = "GET / HTTP/1.1\r\nX-Pad: ";
    const size_t limit = 200;
    const std::string fill(limit - base.size() - 4, 'a');
    const std::string exact = base + fill + "\r\n\r\n";
    REQUIRE(exact.size() == limit);
    ParserLimits l;
    l.max_header_bytes = limit;
    CHECK(feed_whole(exact, l).requests.size() == 1);
    const Run over = feed_whole(base + fill + "a\r\n\r\n", l);
    REQUIRE(over.failed);
    CHECK(over.error.status == 413);
    CHECK(std::string(over.error.code) == "REQUEST_TOO_LARGE");
    CHECK(std::string(over.error.msg) == "Request headers too large");
    // Split byte by byte the limit still holds.
    check_split_invariance(base + fill + "a\r\n\r\n", l);
  }

  TEST_CASE("parser: endless headers fail as soon as the limit is passed") {
    ParserLimits l;
    l.max_header_bytes = 1024;
    RequestParser p{l};
    const std::string line = "X-A: " + std::string(90, 'b') + "\r\n";
    size_t used = 0;
    REQUIRE(p.feed("GET / HTTP/1.1\r\n", 16, used) == ParseEvent::need_more);
    ParseEvent ev = ParseEvent::need_more;
    int lines = 0;
    while (ev == ParseEvent::need_more && lines < 100) {
      ev = p.feed(line.data(), line.size(), used);
      ++lines;
    }
    CHECK(ev == ParseEvent::error);
    CHECK(lines <= 11);
    CHECK(p.error().status == 413);
  }

  TEST_CASE("parser: header count limit") {
    ParserLimits l;
    l.max_headers = 5;
    std::string ok = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 5; ++i) {
      ok += 'H';
      ok += std::to_string(i);
      ok += ": v\r\n";
    }
    CHECK(feed_whole(ok + "\r\n", l).requests.size() == 1);
    const Run over = feed_whole(ok + "H5: v\r\n\r\n", l);
    REQUIRE(over.failed);
    CHECK(over.error.status == 413);
    CHECK(std::string(over.error.msg) == "Too many request headers");
  }

  TEST_CASE("parser: Content-Length over the body limit fails at the headers") {
    ParserLimits l;
    l.max_body_bytes = 10;
    CHECK(feed_whole("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", l).requests.size() == 1);
    RequestParser p{l};
    const std::string head = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n";
    size_t used = 0;
    // No body byte is needed to refuse it, and no continue event comes first.
    REQUIRE(p.feed(head.data(), head.size(), used) == ParseEvent::error);
    CHECK(p.error().status == 413);
    CHECK(std::string(p.error().msg) == "Request body too large");
  }

  TEST_CASE("parser: chunked body over the limit fails") {
    ParserLimits l;
    l.max_body_bytes = 10;
    const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK(feed_whole(head + "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", l).requests.size() == 1);
    const std::string over = head + "5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n";
    const Run r = feed_whole(over, l);
    REQUIRE(r.failed);
    CHECK(r.error.status == 413);
    check_split_invariance(over, l);
  }

  TEST_CASE("parser: malformed input gives 400 and the parser stays failed") {
    const std::vector<std::string> bad = {
        "BREW / HTTP/1.1\r\n\r\n",                                               // unknown method
        "GET / HTTP/1.7x\r\n\r\n",                                               // bad version
        "GET / HTTQ/1.1\r\n\r\n",                                                // bad protocol
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",     // bad chunk size
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",                               // space in token
        "POST / HTTP/1.1\r\nContent-Length : 1\r\n\r\nx",                        // space before colon
        "GET / HTTP/1.1\r\nBad(Header): x\r\n\r\n",                              // separator in token
        "GET / HTTP/1.1\r\nBad\x01Header: x\r\n\r\n",                            // control char
        std::string("GET /a\0b HTTP/1.1\r\n\r\n", 22),                           // NUL in target
        std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 27),                    // NUL in value
        std::string("\0\0\0\0", 4),                                              // NULs only
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",   // two lengths
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",                         // negative length
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",                 // TE not chunked
        "GET / HTTP/1.1\nHost: x\n\n",                                           // bare LF
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                                      // h2 preface
    };
    for (const auto& in : bad) {
      INFO("input: ", in);
      const Run r = feed_whole(in);
      CHECK(r.failed);
      CHECK(r.requests.empty());
      CHECK(r.error.status == 400);
      CHECK(std::string(r.error.code) == "BAD_REQUEST");
      CHECK(std::string(r.error.msg) == "Malformed request");
    }
    RequestParser p{ParserLimits{}};
    size_t used = 0;
    REQUIRE(p.feed("BREW / HTTP/1.1\r\n\r\n", 19, used) == ParseEvent::error);
    CHECK(p.feed(kGet.data(), kGet.size(), used) == ParseEvent::error);
    CHECK(used == 0);
  }

  TEST_CASE("parser: random bytes never crash and always end in need_more or an error") {
    std::mt19937 rng(12345);
    const std::string alphabet = "GETPOST /HTP1.0\r\n:;-ContentLgh0123456789abcdefxz\t \x00\x7f\xff";
    for (int round = 0; round < 2000; ++round) {
      std::string in = (round % 2) ? kPost.substr(0, rng() % kPost.size()) : std::string();
      const size_t n = 1 + rng() % 120;
      for (size_t i = 0; i < n; ++i) in += alphabet[rng() % alphabet.size()];
      RequestParser p{ParserLimits{}};
      size_t off = 0;
      int steps = 0;
      while (off < in.size() && steps++ < 1000) {
        size_t used = 0;
        const ParseEvent ev = p.feed(in.data() + off, in.size() - off, used);
        REQUIRE(used <= in.size() - off);
        off += used;
        if (ev == ParseEvent::error) break;
        if (ev == ParseEvent::request) (void)p.take_request();
      }
      CHECK(steps < 1000);
    }
  }
}

TEST_SUITE("http-response") {
  using aloha::http::append_response;
  using aloha::http::ConnectionHeader;
  using aloha::http::make_error_response;
  using aloha::http::reason_phrase;
  using aloha::http::Response;

  TEST_CASE("response: status line, content type, extra headers, length, body") {
    Response r;
    r.body = "{\"result\":\"success\",\"msg\":\"\"}";
    r.add_header("X-RateLimit-Limit", "1000");
    std::string out = "prefix|";
    append_response(out, r, false, ConnectionHeader::none);
    CHECK(out == "prefix|HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-RateLimit-Limit: 1000\r\n"
                 "Content-Length: 29\r\n\r\n{\"result\":\"success\",\"msg\":\"\"}");
  }

  TEST_CASE("response: HEAD keeps the length but drops the body; close adds Connection") {
    Response r;
    r.body = "12345";
    std::string out;
    append_response(out, r, true, ConnectionHeader::close);
    CHECK(out == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
    out.clear();
    append_response(out, r, false, ConnectionHeader::keep_alive);
    CHECK(out.find("Connection: keep-alive\r\n") != std::string::npos);
  }

  TEST_CASE("response: 204 has neither Content-Type nor Content-Length; CRLF in headers dropped") {
    Response r;
    r.status = 204;
    r.add_header("Allow", "GET, HEAD");
    r.add_header("X-Evil", "a\r\nSet-Cookie: x");
    std::string out;
    append_response(out, r, false, ConnectionHeader::none);
    CHECK(out == "HTTP/1.1 204 No Content\r\nAllow: GET, HEAD\r\n\r\n");
  }

  TEST_CASE("response: error body has the api.md shape") {
    const Response r = make_error_response(413, "REQUEST_TOO_LARGE", "Request body too large");
    CHECK(r.status == 413);
    CHECK(r.body == "{\"result\":\"error\",\"msg\":\"Request body too large\",\"code\":\"REQUEST_TOO_LARGE\"}");
  }

  TEST_CASE("response: reason phrases of the common codes") {
    CHECK(std::string(reason_phrase(100)) == "Continue");
    CHECK(std::string(reason_phrase(200)) == "OK");
    CHECK(std::string(reason_phrase(204)) == "No Content");
    CHECK(std::string(reason_phrase(400)) == "Bad Request");
    CHECK(std::string(reason_phrase(401)) == "Unauthorized");
    CHECK(std::string(reason_phrase(403)) == "Forbidden");
    CHECK(std::string(reason_phrase(404)) == "Not Found");
    CHECK(std::string(reason_phrase(405)) == "Method Not Allowed");
    CHECK(std::string(reason_phrase(408)) == "Request Timeout");
    CHECK(std::string(reason_phrase(413)) == "Content Too Large");
    CHECK(std::string(reason_phrase(429)) == "Too Many Requests");
    CHECK(std::string(reason_phrase(431)) == "Request Header Fields Too Large");
    CHECK(std::string(reason_phrase(500)) == "Internal Server Error");
    CHECK(std::string(reason_phrase(502)) == "Bad Gateway");
    CHECK(std::string(reason_phrase(503)) == "Service Unavailable");
    CHECK(std::string(reason_phrase(504)) == "Gateway Timeout");
    CHECK(std::string(reason_phrase(299)) == "Success");
  }
}
