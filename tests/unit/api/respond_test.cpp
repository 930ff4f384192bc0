// Response building on the hot path: JsonFields text, the X-RateLimit-* and Content-Type handling
// of the response writer, append_deleted_devices (linear and hashed paths must agree), and the
// allocation-free forms of key verification and base64 decoding, the word-wise loops of
// valid_utf8 and ct_equal, and request recycling.
#include "api/respond.h"

#include <doctest/doctest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "api/params.h"
#include "core/crypto.h"
#include "core/encoding.h"
#include "http/form.h"
#include "http/parser.h"
#include "http/response_writer.h"

using aloha::api::JsonBody;
using aloha::api::JsonFields;
using aloha::store::DeviceRow;

namespace {

DeviceRow row(int kind, std::string token) {
  DeviceRow r;
  r.kind = kind;
  r.token = std::move(token);
  return r;
}

std::string deleted(const std::vector<DeviceRow>& rows, const std::string& android_json,
                    const std::string& apple_json, size_t linear_max) {
  JsonBody b = JsonBody::parse("{\"a\":" + android_json + ",\"b\":" + apple_json + "}");
  std::string out = "x";
  aloha::api::append_deleted_devices(out, rows, *b.get("a", aloha::api::JType::list, aloha::api::Presence::required),
                                     *b.get("b", aloha::api::JType::list, aloha::api::Presence::required),
                                     linear_max);
  REQUIRE(out.substr(0, 1) == "x");  // appended, nothing before it touched
  return out.substr(1);
}

// The same through RequestTokens copied from the document, with the document gone before the
// answer is built (as push/notify does): the lists must not point into it.
std::string deleted_copied(const std::vector<DeviceRow>& rows, const std::string& android_json,
                           const std::string& apple_json, size_t linear_max) {
  std::optional<aloha::api::RequestTokens> tokens;
  {
    JsonBody b = JsonBody::parse("{\"a\":" + android_json + ",\"b\":" + apple_json + "}");
    tokens.emplace(*b.get("a", aloha::api::JType::list, aloha::api::Presence::required),
                   *b.get("b", aloha::api::JType::list, aloha::api::Presence::required));
    // Overwrite the freed document's slot with another parse, so stale views would show.
    JsonBody other = JsonBody::parse("{\"a\":[\"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"]}");
  }
  JsonBody scribble = JsonBody::parse("{\"zz\":[\"YYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY\"]}");
  std::string out = "x";
  aloha::api::append_deleted_devices(out, rows, *tokens, linear_max);
  REQUIRE(out.substr(0, 1) == "x");
  return out.substr(1);
}

constexpr size_t kForceHashed = 0;
constexpr size_t kForceLinear = 1'000'000;

}  // namespace

TEST_SUITE("respond") {

TEST_CASE("respond: JsonFields appends quoted keys and values in order; success wraps them") {
  JsonFields f;
  f.integer("n", -42).str("s", "a\"b\\c\n").boolean("t", true).raw("r", "[1]");
  f.raw_into("k") += "{}";
  CHECK(f.text() == R"(,"n":-42,"s":"a\"b\\c\n","t":true,"r":[1],"k":{})");
  CHECK(f.object() == R"({"n":-42,"s":"a\"b\\c\n","t":true,"r":[1],"k":{}})");
  CHECK(aloha::api::success(f).body == R"({"result":"success","msg":"","n":-42,"s":"a\"b\\c\n","t":true,"r":[1],"k":{}})");
  CHECK(aloha::api::success().body == R"({"result":"success","msg":""})");
  const std::string copied = aloha::api::success(f).body;
  CHECK(aloha::api::success(std::move(f)).body == copied);  // the buffer-reusing overload
  CHECK(aloha::api::success(JsonFields{}).body == R"({"result":"success","msg":""})");
  CHECK(aloha::api::success(JsonFields{}.integer("a", 1)).body == R"({"result":"success","msg":"","a":1})");
  JsonFields big;
  big.integer("min", INT64_MIN).integer("max", INT64_MAX);
  CHECK(big.text() == ",\"min\":-9223372036854775808,\"max\":9223372036854775807");
}

TEST_CASE("respond: the writer puts X-RateLimit-* after the extra headers and omits an empty Content-Type") {
  aloha::http::Response r;
  r.status = 429;
  r.add_header("Retry-After", "3");
  r.rate_limit = aloha::http::RateLimitHeaders{1000, 0, 1700000000123};
  r.body = "{}";
  std::string out;
  aloha::http::append_response(out, r, false, aloha::http::ConnectionHeader::none);
  CHECK(out ==
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 3\r\n"
        "X-RateLimit-Limit: 1000\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset: 1700000000123\r\n"
        "Content-Length: 2\r\n\r\n{}");

  aloha::http::Response plain;
  plain.content_type = nullptr;
  plain.body = "x";
  out.clear();
  aloha::http::append_response(out, plain, false, aloha::http::ConnectionHeader::none);
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
  plain.content_type = "";
  out.clear();
  aloha::http::append_response(out, plain, false, aloha::http::ConnectionHeader::none);
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
  plain.content_type = "text/plain\r\nX-Evil: 1";
  out.clear();
  aloha::http::append_response(out, plain, false, aloha::http::ConnectionHeader::none);
  CHECK(out.find("X-Evil") == std::string::npos);
}

TEST_CASE("respond: deleted devices lists unknown tokens sorted, APNs case-insensitively, on both paths") {
  const std::vector<DeviceRow> rows = {row(aloha::store::kKindFcm, "fcm-kept"),
                                       row(aloha::store::kKindApns, "ABCD"),
                                       row(aloha::store::kKindApns, "00ff")};
  const std::string android = R"(["zz-gone","fcm-kept","\u00e9-gone","B-gone","b-gone","zz-gone","FCM-KEPT"])";
  const std::string apple = R"(["abcd","ABcd","ABcd","00FF","beef","dead","DEAD","fcm-kept"])";
  const std::string want =
      R"({"android_devices":["B-gone","FCM-KEPT","b-gone","zz-gone","é-gone"],)"
      R"("apple_devices":["ABcd","DEAD","beef","dead","fcm-kept"]})";
  CHECK(deleted(rows, android, apple, kForceLinear) == want);
  CHECK(deleted(rows, android, apple, kForceHashed) == want);
  CHECK(deleted_copied(rows, android, apple, kForceLinear) == want);
  CHECK(deleted_copied(rows, android, apple, kForceHashed) == want);
  CHECK(deleted_copied(rows, "[]", "[]", kForceLinear) == R"({"android_devices":[],"apple_devices":[]})");
  CHECK(deleted(rows, "[]", "[]", kForceLinear) == R"({"android_devices":[],"apple_devices":[]})");
  CHECK(deleted({}, "[]", "[]", kForceHashed) == R"({"android_devices":[],"apple_devices":[]})");
}

TEST_CASE("respond: deleted devices, linear and hashed paths agree on random inputs") {
  std::mt19937 rng(12345);
  const char* alphabet = "aAbB";
  auto token = [&] {
    std::string t;
    const size_t n = 1 + rng() % 3;
    for (size_t i = 0; i < n; ++i) t += alphabet[rng() % 4];
    return t;
  };
  auto list = [&](size_t n) {
    std::string s = "[";
    for (size_t i = 0; i < n; ++i) {
      s += i ? ",\"" : "\"";  // appended piecewise: GCC 12's LTO flags `a + b + c` (false -Wstringop-overflow)
      s += token();
      s += '"';
    }
    return s + "]";
  };
  size_t nonempty = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<DeviceRow> rows;
    const size_t nrows = rng() % 6;
    for (size_t i = 0; i < nrows; ++i)
      rows.push_back(row(rng() % 2 ? aloha::store::kKindApns : aloha::store::kKindFcm, token()));
    const std::string android = list(rng() % 6);
    const std::string apple = list(rng() % 8);
    const std::string lin = deleted(rows, android, apple, kForceLinear);
    const std::string hashed = deleted(rows, android, apple, kForceHashed);
    CHECK_MESSAGE(lin == hashed, android, apple);
    CHECK_MESSAGE(deleted_copied(rows, android, apple, kForceLinear) == lin, android, apple);
    CHECK_MESSAGE(deleted_copied(rows, android, apple, kForceHashed) == lin, android, apple);
    if (lin != R"({"android_devices":[],"apple_devices":[]})") ++nonempty;
  }
  CHECK(nonempty > 100);  // the inputs do exercise listing
}

TEST_CASE("respond: verify_key accepts the right key of any length and refuses others") {
  for (size_t len : {0u, 1u, 64u, 128u, 129u, 300u}) {
    std::string key(len, 'k');
    for (size_t i = 0; i < len; ++i) key[i] = static_cast<char>('a' + i % 26);
    const std::string stored = aloha::crypto::hash_key(key);
    CHECK(aloha::crypto::verify_key(stored, key));
    CHECK_FALSE(aloha::crypto::verify_key(stored, key + "x"));
    if (len > 0) {
      std::string other = key;
      other[len - 1] = other[len - 1] == 'z' ? 'y' : 'z';
      CHECK_FALSE(aloha::crypto::verify_key(stored, other));
    }
    // The salt and digest decode either case of hex, as before.
    std::string upper = stored;
    for (size_t i = 5; i < upper.size(); ++i)
      if (upper[i] >= 'a' && upper[i] <= 'f') upper[i] = static_cast<char>(upper[i] - 32);
    CHECK(aloha::crypto::verify_key(upper, key));
    std::string bad = stored;
    bad[6] = 'g';
    CHECK_FALSE(aloha::crypto::verify_key(bad, key));
  }
}

TEST_CASE("respond: base64 decoding into a buffer matches the string form and respects the capacity") {
  for (const char* in : {"", "QQ==", "QUI=", "QUJD", "YWJjOmRlZg==", "QR==", "Q===", "QUJ", "QU=D"}) {
    std::string s;
    const bool ok_s = aloha::enc::base64_decode(in, s);
    char buf[16];
    size_t len = 99;
    const bool ok_b = aloha::enc::base64_decode(in, buf, sizeof buf, len);
    CHECK_MESSAGE(ok_s == ok_b, in);
    if (ok_s) CHECK(std::string(buf, len) == s);
  }
  char small[2];
  size_t len = 0;
  CHECK_FALSE(aloha::enc::base64_decode("QUJD", small, sizeof small, len));
  unsigned char raw[2];
  CHECK(aloha::enc::hex_decode("0aFf", raw, 2));
  CHECK((raw[0] == 0x0a && raw[1] == 0xff));
  CHECK_FALSE(aloha::enc::hex_decode("0aF", raw, 2));
  CHECK_FALSE(aloha::enc::hex_decode("0aFg", raw, 2));
}

}  // TEST_SUITE

TEST_SUITE("respond") {

TEST_CASE("respond: KeyCheckCache accepts a repeated key without hashing, refuses wrong keys, follows rotation") {
  aloha::crypto::KeyCheckCache cache;
  const std::string k1(64, 'a'), k2(64, 'b');
  const std::string h1 = aloha::crypto::hash_key(k1);
  const std::string h2 = aloha::crypto::hash_key(k2);
  CHECK_FALSE(cache.verify(7, h1, k2));
  CHECK(cache.hits() == 0);
  CHECK(cache.verify(7, h1, k1));
  CHECK(cache.hits() == 0);  // first success: a full check
  CHECK(cache.verify(7, h1, k1));
  CHECK(cache.hits() == 1);  // remembered
  CHECK_FALSE(cache.verify(7, h1, k2));
  std::string near = k1;
  near.back() = 'b';
  CHECK_FALSE(cache.verify(7, h1, near));
  CHECK_FALSE(cache.verify(7, h1, k1.substr(1)));
  // Rotation: the stored hash changes; the old key no longer passes, the new one does.
  CHECK_FALSE(cache.verify(7, h2, k1));
  CHECK(cache.verify(7, h2, k2));
  CHECK_FALSE(cache.verify(7, h2, k1));
  // Another server in the same slot does not share the entry.
  const int64_t other = 7 + static_cast<int64_t>(aloha::crypto::KeyCheckCache::kSlots);
  CHECK_FALSE(cache.verify(other, h1, k2));
  CHECK(cache.verify(other, h1, k1));
  CHECK_FALSE(cache.verify(7, h1, k2));
  CHECK(cache.hits() == 1);
  // A malformed stored value never passes, even for a key that was accepted before.
  CHECK_FALSE(cache.verify(other, "s256$zz", k1));
}

}  // TEST_SUITE

TEST_SUITE("respond") {

TEST_CASE("respond: valid_utf8 and ct_equal give the same answers at every offset of their word loops") {
  struct Sample {
    const char* bytes;
    bool valid;
  };
  const Sample samples[] = {{"\xC3\xA9", true},       {"\xE2\x82\xAC", true},   {"\xF0\x9F\x98\x80", true},
                            {"\xC0\xAF", false},      {"\xE2\x82", false},      {"\xED\xA0\x80", false},
                            {"\x80", false},          {"\xF4\x90\x80\x80", false}, {"\xFF", false}};
  for (size_t before = 0; before < 20; ++before)
    for (size_t after = 0; after < 10; ++after)
      for (const Sample& s : samples) {
        const std::string text = std::string(before, 'a') + s.bytes + std::string(after, 'b');
        CHECK_MESSAGE(aloha::http::valid_utf8(text) == s.valid, before, " ", after);
      }
  CHECK(aloha::http::valid_utf8(std::string(100, 'x')));
  for (size_t len = 0; len < 40; ++len) {
    std::string a(len, 'k');
    for (size_t i = 0; i < len; ++i) a[i] = static_cast<char>('!' + (i * 7) % 90);
    CHECK(aloha::crypto::ct_equal(a, std::string(a)));
    for (size_t i = 0; i < len; ++i) {
      std::string b = a;
      b[i] = static_cast<char>(b[i] ^ 0x80);
      CHECK_FALSE(aloha::crypto::ct_equal(a, b));
    }
    CHECK_FALSE(aloha::crypto::ct_equal(a, a + "x"));
  }
}

}  // TEST_SUITE

TEST_SUITE("respond") {

// Empties this thread's request pool (whatever earlier tests left), then returns a request with
// every field set: a 1000-byte body and one header.
static aloha::http::Request filled_request_after_draining_pool() {
  std::vector<aloha::http::Request> drained;
  for (size_t i = 0; i < aloha::http::kMaxRecycledRequests + 1; ++i) drained.push_back(aloha::http::fresh_request());
  drained.clear();
  aloha::http::Request r;
  r.method = "POST";
  r.target = "/api/v1/remotes/push/notify?x=1";
  r.path = "/api/v1/remotes/push/notify";
  r.query = "x=1";
  r.headers.push_back({"authorization", "Basic c2VjcmV0OnNlY3JldA=="});
  r.body.assign(1000, 'b');
  r.remote = "127.0.0.1:1";
  return r;
}

TEST_CASE("respond: recycled requests come back empty with their capacity, within the pool bound") {
  using aloha::http::Request;
  Request r = filled_request_after_draining_pool();
  const size_t body_cap = r.body.capacity();
  aloha::http::recycle_request(std::move(r));
  Request again = aloha::http::fresh_request();
  CHECK(again.method.empty());
  CHECK(again.target.empty());
  CHECK(again.path.empty());
  CHECK(again.query.empty());
  CHECK(again.headers.empty());
  CHECK(again.body.empty());
  CHECK(again.remote.empty());
  CHECK(again.body.capacity() == body_cap);
  CHECK(again.headers.capacity() >= 1);
  CHECK(aloha::http::fresh_request().body.capacity() < body_cap);  // pool empty: a new one

  Request big;
  big.body.assign(aloha::http::kMaxRecycledBody + 1, 'x');
  aloha::http::recycle_request(std::move(big));
  CHECK(aloha::http::fresh_request().body.capacity() <= aloha::http::kMaxRecycledBody);  // not kept

  for (size_t i = 0; i < aloha::http::kMaxRecycledRequests + 10; ++i) {
    Request x;
    x.body.assign(100, 'y');
    aloha::http::recycle_request(std::move(x));
  }
  size_t kept = 0;
  while (aloha::http::fresh_request().body.capacity() >= 100) ++kept;
  CHECK(kept == aloha::http::kMaxRecycledRequests);
}

TEST_CASE("respond: a request parsed into recycled buffers carries nothing of the previous one") {
  aloha::http::RequestParser parser(aloha::http::ParserLimits{});
  const std::string first =
      "POST /a/long/path/for/the/first/request?q=secret HTTP/1.1\r\nHost: h\r\nX-One: 1\r\n"
      "Content-Length: 5\r\n\r\nhello";
  const std::string second = "GET /b HTTP/1.1\r\nHost: h2\r\n\r\n";
  size_t used = 0;
  REQUIRE(parser.feed(first.data(), first.size(), used) == aloha::http::ParseEvent::request);
  aloha::http::Request a = parser.take_request();
  CHECK(a.query == "q=secret");
  CHECK(a.body == "hello");
  aloha::http::recycle_request(std::move(a));
  REQUIRE(parser.feed(second.data(), second.size(), used) == aloha::http::ParseEvent::request);
  aloha::http::Request b = parser.take_request();
  CHECK(b.method == "GET");
  CHECK(b.target == "/b");
  CHECK(b.path == "/b");
  CHECK(b.query.empty());
  CHECK(b.body.empty());
  REQUIRE(b.headers.size() == 1);
  CHECK(b.headers[0].name == "host");
  CHECK(b.headers[0].value == "h2");
  CHECK(b.header("x-one") == nullptr);
}

TEST_CASE("respond: RequestTokens keeps both lists in order, empty tokens included, and allocates nothing for none") {
  JsonBody b = JsonBody::parse(R"({"a":["x","","long-android-token-0123456789abcdef"],"b":["APNS",""]})");
  const aloha::api::RequestTokens t(*b.get("a", aloha::api::JType::list, aloha::api::Presence::required),
                                    *b.get("b", aloha::api::JType::list, aloha::api::Presence::required));
  REQUIRE(t.android().size() == 3);
  CHECK(t.android()[0] == "x");
  CHECK(t.android()[1].empty());
  CHECK(t.android()[2] == "long-android-token-0123456789abcdef");
  REQUIRE(t.apple().size() == 2);
  CHECK(t.apple()[0] == "APNS");
  CHECK(t.apple()[1].empty());
  const aloha::api::RequestTokens none;
  CHECK(none.android().size() == 0);
  CHECK(none.apple().size() == 0);
}

TEST_CASE("respond: release_content hands a request's buffers back and keeps what logs need") {
  using aloha::http::Request;
  Request r = filled_request_after_draining_pool();
  const char* body_buf = r.body.data();
  aloha::http::release_content(r);
  CHECK(r.method == "POST");
  CHECK(r.path == "/api/v1/remotes/push/notify");
  CHECK(r.remote == "127.0.0.1:1");
  CHECK(r.target.empty());
  CHECK(r.query.empty());
  CHECK(r.headers.empty());
  CHECK(r.header("authorization") == nullptr);
  CHECK(r.body.empty());
  // The buffers went to the free list: the next request gets them, emptied.
  Request next = aloha::http::fresh_request();
  CHECK(next.body.data() == body_buf);
  CHECK(next.body.empty());
  CHECK(next.headers.empty());
  CHECK(next.target.empty());
  // The shell left behind has nothing worth keeping: recycling it does not fill the free list
  // with requests that would make the next parse allocate again.
  aloha::http::recycle_request(std::move(r));
  CHECK(aloha::http::fresh_request().path.capacity() < 27);
  aloha::http::recycle_request(std::move(next));
}

}  // TEST_SUITE
