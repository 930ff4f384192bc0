// tools/mock-upstream as a child process, driven by an independent HTTP/2 client (nghttp2's
// `nghttp` CLI) over TLS with the test CA, plus its plain HTTP/1.1 control port for statistics.
// JWTs are minted here with the project's ES256 signer (net::PrivateKey) and the .p8 test key.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/encoding.h"
#include "net/pk.h"
#include "support/http_client.h"
#include "support/mock_upstream.h"
#include "support/process.h"

using namespace aloha;

namespace {

using test::env_or;
using test::source_root;
using test::tls_dir;

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}
int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_hex(size_t n) {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(digits[rng() % 16]);
  return s;
}

// A token that matches no scripted prefix: starts with "a", which no rule uses.
std::string plain_token() {
  std::string t = random_hex(64);
  t[0] = 'a';
  return t;
}

// A 64-digit token starting with prefix.
std::string with_prefix(const std::string& prefix) {
  std::string t = prefix;
  t += random_hex(64 - prefix.size());
  return t;
}

enum class JwtFlaw { none, bad_signature, wrong_alg };

std::string mint_jwt(int64_t iat, JwtFlaw flaw = JwtFlaw::none) {
  std::string err;
  auto key = net::PrivateKey::from_file(tls_dir() + "/apns-key.p8", err);
  REQUIRE_MESSAGE(key != nullptr, err);
  std::string header = flaw == JwtFlaw::wrong_alg ? R"({"alg":"HS256","kid":"ABC123DEFG"})"
                                                  : R"({"alg":"ES256","kid":"ABC123DEFG"})";
  std::string input = enc::base64url_encode(header) + "." +
                      enc::base64url_encode(R"({"iss":"TEAM123456","iat":)" +
                                            std::to_string(iat) + "}");
  std::string sig;
  REQUIRE(key->sign_es256(input, sig));
  REQUIRE(sig.size() == 64);
  if (flaw == JwtFlaw::bad_signature) sig[10] = static_cast<char>(sig[10] ^ 0x01);
  return input + "." + enc::base64url_encode(sig);
}

struct Mock : test::MockUpstreamProcess {
  explicit Mock(const std::vector<std::string>& extra = {}, bool token_auth = true) {
    std::vector<std::string> argv = {test::mock_upstream_binary(), "--listen", "127.0.0.1:0", "--cert",
                                     tls_dir() + "/server.crt", "--key", tls_dir() + "/server.key",
                                     "--http1-control-port", "0"};
    if (token_auth) {
      argv.push_back("--apns-public-key");
      argv.push_back(tls_dir() + "/apns-key.pub.pem");
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    start(argv, test::MockReady::Control);
  }

  test::JsonBody control(const std::string& method, const std::string& path,
                         const std::string& body = "") {
    auto r = cli::http_request(method, "http://127.0.0.1:" + std::to_string(control_port) + path,
                               {}, body, 5000);
    REQUIRE_MESSAGE(r.error.empty(), r.error);
    REQUIRE_MESSAGE(r.status == 200, r.status, " ", r.body);
    return test::JsonBody(r.body);
  }
  test::JsonBody stats() { return control("GET", "/mock/stats"); }
  bool stats_unavailable() const {
    auto r = cli::http_request("GET", "http://127.0.0.1:" + std::to_string(control_port) +
                                          "/mock/stats", {}, "", 2000);
    return r.status == 0;
  }
};

int64_t member(const test::JsonBody& j, const char* obj, const char* key) {
  auto it = j.doc().FindMember(obj);
  if (it == j.doc().MemberEnd() || !it->value.IsObject()) return -1;
  auto m = it->value.FindMember(key);
  return m != it->value.MemberEnd() && m->value.IsInt64() ? m->value.GetInt64() : 0;
}

// One run of `nghttp -v` and what it saw.
struct H2Run {
  test::ExitStatus exit;
  std::string out;
  std::vector<int> statuses;  // in the order the responses arrived
  int64_t elapsed_ms = 0;

  bool has(const std::string& s) const { return out.find(s) != std::string::npos; }
  // Value of the first received header `name` ("recv (stream_id=N) name: value"), "" if none.
  std::string header(const std::string& name) const {
    std::string key = ") " + name + ": ";
    size_t p = out.find(key);
    if (p == std::string::npos) return {};
    size_t b = p + key.size();
    return out.substr(b, out.find('\n', b) - b);
  }
};

struct H2Request {
  std::string path;
  std::vector<std::string> headers;  // "name: value"
  std::string body;                  // non-empty → POST with this body
  std::vector<std::string> extra;    // more nghttp options
  int multiply = 1;
  int timeout_ms = 10000;
};

H2Run nghttp(const Mock& m, const H2Request& rq) {
  static int seq = 0;
  std::string body_file;
  test::ProcessOptions o;
  o.argv = {env_or("NGHTTP", "/usr/bin/nghttp"), "-v", "--no-dep"};
  for (const auto& h : rq.headers) {
    o.argv.push_back("-H");
    o.argv.push_back(h);
  }
  if (!rq.body.empty()) {
    body_file = "/tmp/aloha-mock-test-" + std::to_string(::getpid()) + "-" + std::to_string(++seq);
    FILE* f = std::fopen(body_file.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fwrite(rq.body.data(), 1, rq.body.size(), f);
    std::fclose(f);
    o.argv.push_back("-d");
    o.argv.push_back(body_file);
  }
  if (rq.multiply > 1) o.argv.push_back("-m" + std::to_string(rq.multiply));
  o.argv.insert(o.argv.end(), rq.extra.begin(), rq.extra.end());
  o.argv.push_back("https://localhost:" + std::to_string(m.port) + rq.path);
  auto t0 = std::chrono::steady_clock::now();
  test::Process p(o);
  H2Run r;
  r.exit = p.wait(rq.timeout_ms);
  if (r.exit.timed_out) r.exit = p.kill9();
  r.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0).count();
  r.out = p.stdout_text() + p.stderr_text();
  if (!body_file.empty()) ::unlink(body_file.c_str());
  const std::string key = ":status: ";
  for (size_t pos = r.out.find(key); pos != std::string::npos; pos = r.out.find(key, pos + 1))
    r.statuses.push_back(std::atoi(r.out.c_str() + pos + key.size()));
  return r;
}

const std::string kPayload = R"({"aps":{"alert":"hi"}})";

H2Request apns_request(const std::string& token, const std::string& jwt) {
  H2Request rq;
  rq.path = "/3/device/" + token;
  rq.headers = {"apns-topic: org.zulip.Zulip", "apns-push-type: alert"};
  if (!jwt.empty()) rq.headers.push_back("authorization: bearer " + jwt);
  rq.body = kPayload;
  return rq;
}

}  // namespace

TEST_SUITE("mock-upstream") {
  TEST_CASE("mock-upstream: a valid provider token gets 200 with an apns-id, and the stream limit rises from 1 to 1000") {
    Mock m;
    H2Run r = nghttp(m, apns_request(plain_token(), mint_jwt(now_s())));
    INFO(r.out);
    REQUIRE(r.statuses.size() == 1);
    CHECK(r.statuses[0] == 200);
    std::string id = r.header("apns-id");
    CHECK(id.size() == 36);
    CHECK(id[14] == '4');
    // SETTINGS_MAX_CONCURRENT_STREAMS: 1 in the first SETTINGS, 1000 after the success.
    size_t one = r.out.find("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):1]");
    size_t thousand = r.out.find("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):1000]");
    REQUIRE(one != std::string::npos);
    REQUIRE(thousand != std::string::npos);
    CHECK(one < thousand);

    // The request's apns-id is echoed.
    H2Request rq = apns_request(plain_token(), mint_jwt(now_s()));
    rq.headers.push_back("apns-id: 0e1d2c3b-4a59-4687-9a8b-7c6d5e4f3a2b");
    H2Run echo = nghttp(m, rq);
    REQUIRE(echo.statuses.size() == 1);
    CHECK(echo.statuses[0] == 200);
    CHECK(echo.header("apns-id") == "0e1d2c3b-4a59-4687-9a8b-7c6d5e4f3a2b");
    CHECK(member(m.stats(), "outcomes", "ok") == 2);
  }

  TEST_CASE("mock-upstream: provider token problems answer 403 with the APNs reason") {
    Mock m;
    struct Case {
      std::string jwt;
      const char* reason;
    } cases[] = {
        {mint_jwt(now_s(), JwtFlaw::bad_signature), "InvalidProviderToken"},
        {mint_jwt(now_s(), JwtFlaw::wrong_alg), "InvalidProviderToken"},
        {"not.a-jwt", "InvalidProviderToken"},
        {"", "MissingProviderToken"},
        {mint_jwt(now_s() - 3700), "ExpiredProviderToken"},
    };
    for (const auto& c : cases) {
      H2Run r = nghttp(m, apns_request(plain_token(), c.jwt));
      INFO(c.reason, " ", r.out);
      REQUIRE(r.statuses.size() == 1);
      CHECK(r.statuses[0] == 403);
      CHECK(r.has(std::string(R"({"reason":")") + c.reason + "\"}"));
      // No success: the stream limit stays at 1.
      CHECK_FALSE(r.has("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):1000]"));
    }
    auto s = m.stats();
    CHECK(member(s, "outcomes", "InvalidProviderToken") == 3);
    CHECK(member(s, "outcomes", "MissingProviderToken") == 1);
    CHECK(member(s, "outcomes", "ExpiredProviderToken") == 1);
    CHECK(member(s, "statuses", "403") == 5);
  }

  TEST_CASE("mock-upstream: request checks: MissingTopic, PayloadTooLarge, BadDeviceToken, BadPath") {
    Mock m;
    std::string jwt = mint_jwt(now_s());
    H2Request no_topic = apns_request(plain_token(), jwt);
    no_topic.headers.erase(no_topic.headers.begin());
    H2Request big = apns_request(plain_token(), jwt);
    big.body = R"({"aps":{"alert":")" + std::string(4100, 'x') + "\"}}";
    H2Request voip_ok = apns_request(plain_token(), jwt);  // VoIP allows 5120 bytes
    voip_ok.headers[1] = "apns-push-type: voip";
    voip_ok.body = R"({"aps":{"alert":")" + std::string(4500, 'x') + "\"}}";
    H2Request not_hex = apns_request(with_prefix("xyz"), jwt);
    H2Request bad_path = apns_request(plain_token(), jwt);
    bad_path.path = "/4/device/" + plain_token();
    struct Case {
      H2Request* rq;
      int status;
      const char* reason;
    } cases[] = {{&no_topic, 400, "MissingTopic"},
                 {&big, 413, "PayloadTooLarge"},
                 {&voip_ok, 200, nullptr},
                 {&not_hex, 400, "BadDeviceToken"},
                 {&bad_path, 404, "BadPath"}};
    for (const auto& c : cases) {
      H2Run r = nghttp(m, *c.rq);
      INFO(c.status, " ", r.out);
      REQUIRE(r.statuses.size() == 1);
      CHECK(r.statuses[0] == c.status);
      if (c.reason) CHECK(r.has(std::string(R"({"reason":")") + c.reason + "\"}"));
    }
  }

  TEST_CASE("mock-upstream: scripted token prefixes answer with their status and reason") {
    Mock m;
    std::string jwt = mint_jwt(now_s());
    struct Case {
      const char* prefix;
      int status;
      const char* reason;
    } cases[] = {
        {"410", 410, "Unregistered"},          {"41e0", 410, "ExpiredToken"},
        {"400b", 400, "BadDeviceToken"},       {"400c", 400, "DeviceTokenNotForTopic"},
        {"4290", 429, "TooManyRequests"},      {"5000", 500, "InternalServerError"},
        {"5030", 503, "ServiceUnavailable"},   {"DEA1", 200, nullptr},
    };
    for (const auto& c : cases) {
      std::string prefix = c.prefix;
      int64_t before = now_ms();
      H2Run r = nghttp(m, apns_request(with_prefix(prefix), jwt));
      int64_t after = now_ms();
      INFO(c.prefix, " ", r.out);
      REQUIRE(r.statuses.size() == 1);
      CHECK(r.statuses[0] == c.status);
      CHECK(r.header("apns-id").size() == 36);
      if (c.reason == nullptr) continue;
      std::string want = std::string(R"({"reason":")") + c.reason + "\"";
      size_t at = r.out.find(want);
      REQUIRE(at != std::string::npos);
      if (c.status == 410) {
        // {"reason":"Unregistered","timestamp":<ms>} with a timestamp of now
        size_t ts = r.out.find("\"timestamp\":", at);
        REQUIRE(ts != std::string::npos);
        int64_t v = std::atoll(r.out.c_str() + ts + 12);
        CHECK(v >= before);
        CHECK(v <= after);
      }
    }
    auto s = m.stats();
    CHECK(member(s, "outcomes", "Unregistered") == 1);
    CHECK(member(s, "outcomes", "TooManyRequests") == 1);
    CHECK(member(s, "outcomes", "slow") == 1);
    CHECK(member(s, "statuses", "410") == 2);
    CHECK(member(s, "statuses", "400") == 2);
  }

  TEST_CASE("mock-upstream: faults: slow answer, RST_STREAM, dropped connection, no answer, GOAWAY") {
    Mock m({"--slow-ms", "400"});
    std::string jwt = mint_jwt(now_s());

    H2Run slow = nghttp(m, apns_request(with_prefix("dea1"), jwt));
    REQUIRE(slow.statuses.size() == 1);
    CHECK(slow.statuses[0] == 200);
    CHECK(slow.elapsed_ms >= 400);

    H2Run rst = nghttp(m, apns_request(with_prefix("f001"), jwt));
    INFO(rst.out);
    CHECK(rst.statuses.empty());
    CHECK(rst.has("recv RST_STREAM frame"));
    CHECK(rst.has("error_code=INTERNAL_ERROR"));

    H2Run drop = nghttp(m, apns_request(with_prefix("f002"), jwt));
    INFO(drop.out);
    CHECK(drop.statuses.empty());
    CHECK_FALSE(drop.has("recv RST_STREAM"));
    CHECK_FALSE(drop.has("recv GOAWAY"));
    CHECK(drop.has("processed=0"));  // nghttp reports the lost request

    H2Request hang = apns_request(with_prefix("f003"), jwt);
    hang.extra = {"--timeout=1"};
    H2Run hung = nghttp(m, hang);
    INFO(hung.out);
    CHECK(hung.statuses.empty());
    CHECK(hung.elapsed_ms >= 900);

    H2Run ga = nghttp(m, apns_request(with_prefix("f004"), jwt));
    INFO(ga.out);
    CHECK(ga.statuses.empty());
    // nghttp's first request is stream 1 with --no-dep: last-stream-id 0 = nothing processed.
    CHECK(ga.has("recv GOAWAY frame"));
    CHECK(ga.has("last_stream_id=0, error_code=NO_ERROR"));
    CHECK(ga.has("{\"reason\":\"Shutdown\"}"));

    auto s = m.stats();
    for (const char* k : {"reset_stream", "drop_connection", "hang", "goaway", "slow"})
      CHECK_MESSAGE(member(s, "outcomes", k) == 1, k);
    CHECK(s.int64("connections_accepted").value_or(0) == 5);
  }

  TEST_CASE("mock-upstream: --goaway-after 2 processes two streams and leaves the third unprocessed") {
    Mock m({"--goaway-after", "2"}, /*token_auth=*/false);  // no auth: 1000 streams from the start
    H2Request rq = apns_request(plain_token(), "");
    rq.multiply = 3;
    H2Run r = nghttp(m, rq);
    INFO(r.out);
    CHECK(r.statuses == std::vector<int>{200, 200});
    CHECK(r.has("recv GOAWAY frame"));
    CHECK(r.has("last_stream_id=3, error_code=NO_ERROR"));  // streams 1 and 3 processed, 5 not
    CHECK(r.has("Some requests were not processed"));
    auto s = m.stats();
    CHECK(member(s, "outcomes", "ok") == 2);
    CHECK(member(s, "statuses", "200") == 2);
  }

  TEST_CASE("mock-upstream: stats count per outcome, status and path; reset zeroes; script sets a default and a delay") {
    Mock m({}, /*token_auth=*/false);
    H2Request five_hang = apns_request(with_prefix("f003"), "");
    five_hang.multiply = 5;
    five_hang.extra = {"--timeout=1"};
    nghttp(m, five_hang);
    H2Run ok = nghttp(m, apns_request(plain_token(), ""));
    CHECK(ok.statuses == std::vector<int>{200});

    auto s = m.stats();
    CHECK(s.int64("max_concurrent_streams_seen").value_or(0) == 5);
    CHECK(s.int64("requests_total").value_or(0) == 6);
    CHECK(s.int64("connections_accepted").value_or(0) == 2);
    CHECK(member(s, "outcomes", "hang") == 5);
    CHECK(member(s, "paths", "apns") == 6);

    // The control endpoint is also served over HTTP/2 on the main port (and counted as a path).
    H2Request get_stats;
    get_stats.path = "/mock/stats";
    H2Run h2stats = nghttp(m, get_stats);
    CHECK(h2stats.statuses == std::vector<int>{200});
    CHECK(h2stats.has("\"requests_total\":7"));

    m.control("POST", "/mock/reset");
    s = m.stats();
    CHECK(s.int64("requests_total").value_or(-1) == 0);
    CHECK(s.int64("max_concurrent_streams_seen").value_or(-1) == 0);
    CHECK(member(s, "outcomes", "hang") == 0);
    CHECK(member(s, "paths", "apns") == 0);

    auto script = m.control("POST", "/mock/script", R"({"default":"503"})");
    CHECK(script.str("default") == "unavailable");
    H2Run unavailable = nghttp(m, apns_request(plain_token(), ""));
    CHECK(unavailable.statuses == std::vector<int>{503});
    CHECK(unavailable.has(R"({"reason":"ServiceUnavailable"})"));
    H2Run still_scripted = nghttp(m, apns_request(with_prefix("410"), ""));
    CHECK(still_scripted.statuses == std::vector<int>{410});  // prefixes win over the default

    m.control("POST", "/mock/script", R"({"default":"ok","delay_ms":300})");
    H2Run delayed = nghttp(m, apns_request(plain_token(), ""));
    CHECK(delayed.statuses == std::vector<int>{200});
    CHECK(delayed.elapsed_ms >= 300);

    auto bad = cli::http_request("POST",
                                 "http://127.0.0.1:" + std::to_string(m.control_port) +
                                     "/mock/script",
                                 {}, R"({"default":"teapot"})", 5000);
    CHECK(bad.status == 400);
    s = m.stats();
    CHECK(member(s, "statuses", "503") == 1);
    CHECK(member(s, "statuses", "410") == 1);
    CHECK(member(s, "outcomes", "ok") == 1);
  }

  TEST_CASE("mock-upstream: with --client-ca a client certificate authorises requests without a JWT") {
    Mock m({"--client-ca", tls_dir() + "/ca.crt"}, /*token_auth=*/false);
    H2Request rq = apns_request(plain_token(), "");
    rq.extra = {"--cert=" + tls_dir() + "/client.crt", "--key=" + tls_dir() + "/client.key"};
    H2Run with_cert = nghttp(m, rq);
    INFO(with_cert.out);
    CHECK(with_cert.statuses == std::vector<int>{200});
    // Certificate auth starts at the full stream limit (the 1-stream phase is for token auth).
    CHECK(with_cert.has("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):1000]"));

    H2Run without = nghttp(m, apns_request(plain_token(), ""));
    CHECK(without.statuses.empty());  // handshake refused: the request never arrives
    CHECK(m.stats().int64("requests_total").value_or(-1) == 1);
  }

  TEST_CASE("mock-upstream: SIGTERM stops it with exit status 0, even with a stream left open") {
    Mock m;
    H2Run r = nghttp(m, apns_request(plain_token(), mint_jwt(now_s())));
    CHECK(r.statuses == std::vector<int>{200});
    // A client whose stream never gets an answer is still connected when the signal arrives.
    std::string body_file = "/tmp/aloha-mock-test-" + std::to_string(::getpid()) + "-sigterm";
    FILE* f = std::fopen(body_file.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fputs(kPayload.c_str(), f);
    std::fclose(f);
    test::ProcessOptions o;
    o.argv = {env_or("NGHTTP", "/usr/bin/nghttp"), "--no-dep", "--timeout=10", "-d", body_file,
              "-H", "apns-topic: t", "-H", "authorization: bearer " + mint_jwt(now_s()),
              "https://localhost:" + std::to_string(m.port) + "/3/device/" + with_prefix("f003")};
    test::Process client(o);
    bool open = false;
    for (int i = 0; i < 100 && !open; ++i) {
      open = m.stats().int64("open_streams").value_or(0) == 1;
      if (!open) ::usleep(50'000);
    }
    REQUIRE(open);
    m.proc->signal(SIGTERM);
    test::ExitStatus st = m.proc->wait(5000);
    INFO(m.proc->stderr_text());
    CHECK(st.ok());
    CHECK(m.stats_unavailable());
    client.wait(5000);
    ::unlink(body_file.c_str());
  }
}
