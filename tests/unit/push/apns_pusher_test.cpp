// ApnsPusher driven through fake HTTP/2 connections (no sockets) and a FakeClock: request shape,
// the outcome table end to end, retries, per-token backoff, credentials, bounds and shutdown.
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "h2/connection.h"
#include "push/apns_pusher.h"
#include "push/jwt.h"

using namespace aloha;
using namespace aloha::push;
using aloha::h2::Conn;
using aloha::h2::ConnListener;
using aloha::h2::ConnState;
using aloha::h2::FailureKind;
using aloha::h2::H2Header;
using aloha::h2::H2Request;
using aloha::h2::H2Response;

namespace {

std::string data_dir() {
  const char* d = std::getenv("ALOHA_TEST_DATA");
  return d ? std::string(d) : std::string("tests/data");
}

class FakeConn final : public Conn {
 public:
  struct Sent {
    uint64_t id;
    H2Request req;
    h2::Completion done;
  };
  explicit FakeConn(ConnListener* l) : listener(l) {}

  ConnState state() const override { return st; }
  size_t free_slots() const override {
    if (st != ConnState::connected) return 0;
    return open.size() >= slots ? 0 : slots - open.size();
  }
  size_t pending() const override { return open.size(); }
  uint64_t submit(H2Request&& request, h2::Completion done) override {
    if (free_slots() == 0) return 0;
    open.push_back({next++, std::move(request), std::move(done)});
    all_requests.push_back(open.back().req);
    return open.back().id;
  }
  bool cancel(uint64_t id) override {
    for (size_t i = 0; i < open.size(); ++i) {
      if (open[i].id == id) {
        Sent s = std::move(open[i]);
        open.erase(open.begin() + static_cast<long>(i));
        H2Response r;
        r.failure = FailureKind::timeout;
        r.request_sent = true;
        s.done(r);
        return true;
      }
    }
    return false;
  }
  void close() override {
    if (st == ConnState::closed) return;
    st = ConnState::closed;
    close_called = true;
    auto all = std::move(open);
    open.clear();
    for (auto& s : all) {
      H2Response r;
      r.failure = FailureKind::connection_lost;
      r.request_sent = true;
      r.request = std::move(s.req);  // as h2::Session: failures hand the request back
      s.done(r);
    }
  }
  void drain() override { st = ConnState::draining; }
  void set_listener(ConnListener* l) override { listener = l; }

  void become_ready() {
    st = ConnState::connected;
    listener->on_conn_ready(this);
  }
  // Answers the oldest open request.
  void respond(int status, std::string body = {}, std::vector<H2Header> headers = {}) {
    REQUIRE(!open.empty());
    Sent s = std::move(open.front());
    open.erase(open.begin());
    H2Response r;
    r.status = status;
    r.request_sent = true;
    r.body = std::move(body);
    r.headers = std::move(headers);
    s.done(r);
    if (listener) listener->on_conn_capacity(this);
  }
  void fail_front(FailureKind kind) {
    REQUIRE(!open.empty());
    Sent s = std::move(open.front());
    open.erase(open.begin());
    H2Response r;
    r.failure = kind;
    r.request_sent = true;
    r.request = std::move(s.req);
    s.done(r);
    if (listener) listener->on_conn_capacity(this);
  }
  void closed_event() {
    st = ConnState::closed;
    if (listener) listener->on_conn_closed(this, "");
    listener = nullptr;
  }

  ConnListener* listener;
  ConnState st = ConnState::connecting;
  size_t slots = 100;
  std::vector<Sent> open;
  std::vector<H2Request> all_requests;
  uint64_t next = 1;
  bool close_called = false;
};

struct Result {
  bool called = false;
  int calls = 0;
  Outcome outcome;
  int64_t at_ms = -1;
};

struct Harness {
  FakeClock clock;
  std::vector<std::unique_ptr<FakeConn>> conns;
  int64_t wake_at = -1;
  int timer_closes = 0;
  ApnsTokenProvider* tokens = nullptr;
  std::unique_ptr<ApnsPusher> pusher;

  explicit Harness(ApnsPusherOptions opt = {}, bool token_auth = true) {
    std::unique_ptr<ApnsTokenProvider> tp;
    if (token_auth) {
      std::string err;
      tp = ApnsTokenProvider::load(data_dir() + "/tls/apns-key.p8", "ABC123DEFG", "TEAM123456",
                                   clock, err);
      REQUIRE_MESSAGE(tp, err);
      tokens = tp.get();
    }
    opt.retry_backoff = {200, 30000, net::Jitter::none};  // deterministic: 200, 400, 800, ...
    ApnsPusherDeps deps;
    deps.conn_factory = [this](ConnListener* l) -> Conn* {
      conns.push_back(std::make_unique<FakeConn>(l));
      return conns.back().get();
    };
    deps.schedule = [this](int64_t delay) { wake_at = clock.mono_ms() + delay; };
    deps.close_timer = [this](std::function<void()> closed) {
      ++timer_closes;
      wake_at = -1;
      if (closed) closed();
    };
    deps.random = [] { return 0.5; };
    pusher = std::make_unique<ApnsPusher>(opt, std::move(deps), std::move(tp), clock);
  }

  // Fires the timer while it is due.
  void run() {
    for (int i = 0; i < 1000 && wake_at >= 0 && wake_at <= clock.mono_ms(); ++i) {
      wake_at = -1;
      pusher->on_timer();
    }
  }
  // Moves time forward by ms, firing the timer at each due instant on the way.
  void advance(int64_t ms) {
    int64_t target = clock.mono_ms() + ms;
    while (wake_at >= 0 && wake_at <= target) {
      if (wake_at > clock.mono_ms()) clock.advance_ms(wake_at - clock.mono_ms());
      run();
    }
    if (target > clock.mono_ms()) clock.advance_ms(target - clock.mono_ms());
    run();
  }

  bool send(Result& r, PushMessage m, int64_t deadline_in_ms = 10000) {
    return pusher->send(std::move(m), clock.mono_ms() + deadline_in_ms, [&r, this](const Outcome& o) {
      r.called = true;
      ++r.calls;
      r.outcome = o;
      r.at_ms = clock.mono_ms();
    });
  }
  FakeConn& conn() {
    REQUIRE(!conns.empty());
    FakeConn& c = *conns.back();
    if (c.st == ConnState::connecting) c.become_ready();
    return c;
  }
};

PushMessage msg(std::string token = "0a1b2c3d4e5f60718293a4b5c6d7e8f9") {
  PushMessage m;
  m.token = std::move(token);
  m.app_id = "org.example.app";
  m.payload = R"({"aps":{"alert":"hi"}})";
  return m;
}

const std::string* find_header(const H2Request& r, const std::string& name) {
  for (const auto& h : r.headers)
    if (h.name == name) return h.shared_value ? h.shared_value.get() : &h.value;
  return nullptr;
}

bool is_lower_uuid4(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return s[14] == '4';
}

}  // namespace

TEST_SUITE("apns") {

TEST_CASE("apns: request is POST /3/device/<token> with authorization first and headers in a stable order") {
  Harness h;
  Result r;
  PushMessage m = msg("00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff");  // 76 chars
  m.push_type = "alert";
  m.priority = 5;
  m.expiration_s = 1767225700;
  m.collapse_id = "chat-42";
  REQUIRE(h.send(r, m));
  FakeConn& c = h.conn();
  REQUIRE(c.open.size() == 1);
  const H2Request& req = c.open[0].req;
  CHECK(req.method == "POST");
  CHECK(req.path == "/3/device/" + m.token);
  CHECK(req.body_data() == m.payload);
  std::vector<std::string> names;
  for (const auto& hd : req.headers) names.push_back(hd.name);
  CHECK(names == std::vector<std::string>{"authorization", "apns-topic", "apns-push-type", "apns-priority",
                                          "apns-expiration", "apns-collapse-id", "apns-id"});
  CHECK(req.headers[0].value_view() == h.tokens->authorization());
  CHECK(req.headers[0].value_view().rfind("bearer ", 0) == 0);
  // The JWT is shared by requests, not copied into each.
  CHECK(req.headers[0].shared_value.get() == h.tokens->shared_authorization().get());
  CHECK(*find_header(req, "apns-topic") == "org.example.app");
  CHECK(*find_header(req, "apns-push-type") == "alert");
  CHECK(*find_header(req, "apns-priority") == "5");
  CHECK(*find_header(req, "apns-expiration") == "1767225700");
  CHECK(*find_header(req, "apns-collapse-id") == "chat-42");
  CHECK(is_lower_uuid4(*find_header(req, "apns-id")));
  CHECK_FALSE(r.called);
}

TEST_CASE("apns: optional headers are omitted when unset; expiration 0 is sent; apns-id is fresh per push") {
  Harness h;
  Result r1, r2;
  PushMessage m = msg();
  m.push_type.clear();
  m.priority = 0;
  m.collapse_id.clear();
  m.expiration_s = -1;
  REQUIRE(h.send(r1, m));
  PushMessage m2 = msg();
  m2.expiration_s = 0;
  REQUIRE(h.send(r2, m2));
  FakeConn& c = h.conn();
  REQUIRE(c.open.size() == 2);
  const H2Request& a = c.open[0].req;
  CHECK(find_header(a, "apns-push-type") == nullptr);
  CHECK(find_header(a, "apns-priority") == nullptr);
  CHECK(find_header(a, "apns-expiration") == nullptr);
  CHECK(find_header(a, "apns-collapse-id") == nullptr);
  REQUIRE(find_header(c.open[1].req, "apns-expiration") != nullptr);
  CHECK(*find_header(c.open[1].req, "apns-expiration") == "0");
  CHECK(*find_header(a, "apns-id") != *find_header(c.open[1].req, "apns-id"));
}

TEST_CASE("apns: certificate auth sends no authorization header") {
  Harness h({}, /*token_auth=*/false);
  Result r;
  REQUIRE(h.send(r, msg()));
  FakeConn& c = h.conn();
  REQUIRE(c.open.size() == 1);
  CHECK(find_header(c.open[0].req, "authorization") == nullptr);
  CHECK(c.open[0].req.headers.front().name == "apns-topic");
}

TEST_CASE("apns: a body over 4096 bytes is a request_bug reported after send() returns, nothing sent") {
  Harness h;
  Result r, voip;
  PushMessage m = msg();
  m.payload.assign(4097, 'x');
  REQUIRE(h.send(r, m));
  CHECK_FALSE(r.called);  // never inside send()
  h.run();
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::request_bug);
  CHECK(r.outcome.reason == "PayloadTooLarge");
  CHECK(h.conns.empty());
  CHECK(h.pusher->stats().attempts == 0);
  // voip allows 5120 bytes.
  PushMessage v = msg();
  v.push_type = "voip";
  v.payload.assign(5000, 'x');
  REQUIRE(h.send(voip, v));
  CHECK(h.conn().open.size() == 1);
  PushMessage v2 = v;
  v2.payload.assign(5121, 'x');
  Result big;
  REQUIRE(h.send(big, v2));
  h.run();
  CHECK(big.outcome.kind == OutcomeKind::request_bug);
  CHECK(h.conn().all_requests.size() == 1);
}

TEST_CASE("apns: a token that is not path-safe is refused without sending") {
  Harness h;
  Result r;
  REQUIRE(h.send(r, msg("abc/../x")));
  h.run();
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::request_bug);
  CHECK(h.conns.empty());
}

TEST_CASE("apns: 200 is delivered, reported once") {
  Harness h;
  Result r;
  REQUIRE(h.send(r, msg()));
  h.conn().respond(200, "", {{"apns-id", "x"}});
  REQUIRE(r.called);
  CHECK(r.calls == 1);
  CHECK(r.outcome.kind == OutcomeKind::delivered);
  CHECK(h.pusher->pending() == 0);
  CHECK(h.pusher->stats().delivered == 1);
  h.advance(60000);
  CHECK(r.calls == 1);
}

TEST_CASE("apns: 410 Unregistered with a timestamp is a dead token carrying the timestamp") {
  Harness h;
  Result r;
  REQUIRE(h.send(r, msg()));
  h.conn().respond(410, R"({"reason":"Unregistered","timestamp":1767225000123})");
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::dead_token);
  CHECK(r.outcome.status == 410);
  CHECK(r.outcome.apns_timestamp_ms == 1767225000123);
  CHECK(h.pusher->stats().attempts == 1);
}

TEST_CASE("apns: 400 BadDeviceToken is a dead token, not retried") {
  Harness h;
  Result r;
  REQUIRE(h.send(r, msg()));
  h.conn().respond(400, R"({"reason":"BadDeviceToken"})");
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::dead_token);
  CHECK(r.outcome.reason == "BadDeviceToken");
  h.advance(30000);
  CHECK(h.conn().all_requests.size() == 1);
}

TEST_CASE("apns: 400 BadTopic is a request bug, not retried") {
  Harness h;
  Result r;
  REQUIRE(h.send(r, msg()));
  h.conn().respond(400, R"({"reason":"BadTopic"})");
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::request_bug);
  h.advance(30000);
  CHECK(h.conn().all_requests.size() == 1);
}

TEST_CASE("apns: 500 then 200 is retried after the backoff and delivered") {
  Harness h;
  Result r;
  REQUIRE(h.send(r, msg()));
  FakeConn& c = h.conn();
  c.respond(500, R"({"reason":"InternalServerError"})");
  CHECK_FALSE(r.called);
  CHECK(c.open.empty());
  h.advance(199);  // backoff 200 ms (Jitter::none)
  CHECK(c.open.empty());
  h.advance(1);
  REQUIRE(c.open.size() == 1);
  // Same notification: same apns-id on the retry.
  CHECK(*find_header(c.all_requests[0], "apns-id") == *find_header(c.all_requests[1], "apns-id"));
  c.respond(200);
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::delivered);
  CHECK(h.pusher->stats().retries == 1);
}

TEST_CASE("apns: a shared payload is sent for each device and each retry without a copy") {
  Harness h;
  Result r1, r2, big;
  auto shared = std::make_shared<const std::string>(R"({"aps":{"alert":"shared"}})");
  PushMessage a = msg("0a0a0a0a");
  a.payload = "not sent";  // shared_payload wins
  a.shared_payload = shared;
  PushMessage b = msg("0b0b0b0b");
  b.shared_payload = shared;
  REQUIRE(h.send(r1, std::move(a)));
  REQUIRE(h.send(r2, std::move(b)));
  FakeConn& c = h.conn();
  REQUIRE(c.open.size() == 2);
  CHECK(c.open[0].req.shared_body.get() == shared.get());
  CHECK(c.open[1].req.shared_body.get() == shared.get());
  CHECK(c.open[0].req.body.empty());
  c.respond(500, R"({"reason":"InternalServerError"})");
  h.advance(200);
  REQUIRE(c.all_requests.size() == 3);
  CHECK(c.all_requests[2].shared_body.get() == shared.get());  // the retry: same buffer
  c.respond(200);
  c.respond(200);
  REQUIRE(r1.called);
  REQUIRE(r2.called);
  c.all_requests.clear();          // the fake's copies
  CHECK(shared.use_count() == 1);  // reported pushes release it
  // The size limit applies to the shared payload too.
  PushMessage m = msg();
  m.shared_payload = std::make_shared<const std::string>(4097, 'x');
  REQUIRE(h.send(big, m));
  h.run();
  REQUIRE(big.called);
  CHECK(big.outcome.reason == "PayloadTooLarge");
}

TEST_CASE("apns: 503 until the deadline ends in retry_later no later than the deadline") {
  Harness h;
  Result r;
  int64_t start = h.clock.mono_ms();
  REQUIRE(h.send(r, msg(), 3000));
  FakeConn& c = h.conn();
  int answered = 0;
  for (int i = 0; i < 50 && !r.called; ++i) {
    if (!c.open.empty()) {
      c.respond(503, R"({"reason":"ServiceUnavailable"})");
      ++answered;
    } else {
      h.advance(50);
    }
  }
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::retry_later);
  CHECK(r.outcome.status == 503);
  CHECK(answered >= 3);  // 200, 400, 800 ms backoffs fit in 3 s; 1600 more does not
  CHECK(r.at_ms <= start + 3000);
  CHECK(h.pusher->pending() == 0);
  // The push dropped at its deadline is counted (the app logs these lines periodically).
  std::string stats;
  h.pusher->append_stats(stats);
  CHECK(stats.find("delivered=0 dead_token=0 gave_up=1 ") != std::string::npos);
  CHECK(stats.find("retries=" + std::to_string(answered - 1)) != std::string::npos);
}

TEST_CASE("apns: Retry-After on 503 delays the retry that long") {
  Harness h;
  Result r;
  REQUIRE(h.send(r, msg(), 20000));
  FakeConn& c = h.conn();
  c.respond(503, R"({"reason":"ServiceUnavailable"})", {{"retry-after", "3"}});
  h.advance(2999);
  CHECK(c.open.empty());
  h.advance(1);
  REQUIRE(c.open.size() == 1);
  c.respond(200);
  CHECK(r.outcome.kind == OutcomeKind::delivered);
}

TEST_CASE("apns: a reset stream is retried (transport failures are retry_later)") {
  Harness h;
  Result r;
  REQUIRE(h.send(r, msg()));
  FakeConn& c = h.conn();
  c.fail_front(FailureKind::reset);
  CHECK_FALSE(r.called);
  h.advance(200);
  REQUIRE(c.open.size() == 1);
  c.respond(200);
  CHECK(r.outcome.kind == OutcomeKind::delivered);
}

TEST_CASE("apns: a silent upstream times out at the deadline and reports retry_later") {
  ApnsPusherOptions o;
  o.attempt_timeout_ms = 10000;
  Harness h(o);
  Result r;
  REQUIRE(h.send(r, msg(), 2000));
  FakeConn& c = h.conn();
  REQUIRE(c.open.size() == 1);
  h.advance(1999);
  CHECK_FALSE(r.called);
  h.advance(1);
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::retry_later);
  CHECK(r.outcome.reason.find("timeout") != std::string::npos);
}

TEST_CASE("apns: 429 TooManyRequests delays only that token's pushes") {
  Harness h;
  Result a1, a2, b;
  const std::string ta = "aaaa0000aaaa0000", tb = "bbbb0000bbbb0000";
  REQUIRE(h.send(a1, msg(ta), 20000));
  FakeConn& c = h.conn();
  c.respond(429, R"({"reason":"TooManyRequests"})");
  CHECK_FALSE(a1.called);
  CHECK(h.pusher->token_backoffs() == 1);
  REQUIRE(h.send(a2, msg(ta), 20000));
  REQUIRE(h.send(b, msg(tb), 20000));
  REQUIRE(c.open.size() == 1);  // only B went out
  CHECK(c.open[0].req.path == "/3/device/" + tb);
  c.respond(200);
  CHECK(b.outcome.kind == OutcomeKind::delivered);
  h.advance(4999);  // token_backoff_ms default 5000
  CHECK(c.open.empty());
  h.advance(1);
  REQUIRE(c.open.size() == 2);
  CHECK(c.open[0].req.path == "/3/device/" + ta);
  CHECK(c.open[1].req.path == "/3/device/" + ta);
  c.respond(200);
  c.respond(200);
  CHECK(a1.outcome.kind == OutcomeKind::delivered);
  CHECK(a2.outcome.kind == OutcomeKind::delivered);
}

TEST_CASE("apns: a push for a held-back token whose hold outlasts its deadline reports retry_later") {
  Harness h;
  Result a1, a2;
  REQUIRE(h.send(a1, msg("aaaa"), 20000));
  h.conn().respond(429, R"({"reason":"TooManyRequests"})", {{"retry-after", "60"}});
  REQUIRE(h.send(a2, msg("aaaa"), 1000));
  CHECK_FALSE(a2.called);
  h.run();
  REQUIRE(a2.called);
  CHECK(a2.outcome.kind == OutcomeKind::retry_later);
  CHECK(a2.outcome.status == 429);
  CHECK(h.conn().all_requests.size() == 1);
}

TEST_CASE("apns: the per-token hold map is bounded") {
  ApnsPusherOptions o;
  o.max_token_backoffs = 3;
  Harness h(o);
  std::vector<Result> rs(5);
  for (int i = 0; i < 5; ++i) REQUIRE(h.send(rs[static_cast<size_t>(i)], msg("abc" + std::to_string(i)), 1000));
  FakeConn& c = h.conn();
  while (!c.open.empty()) c.respond(429, R"({"reason":"TooManyRequests"})");
  CHECK(h.pusher->token_backoffs() == 3);
}

TEST_CASE("apns: ExpiredProviderToken re-mints once and retries once with the new token") {
  Harness h;
  Result warm, r;
  REQUIRE(h.send(warm, msg()));
  FakeConn& c = h.conn();
  c.respond(200);
  CHECK(h.tokens->mint_count() == 1);
  h.clock.advance_ms(25 * 60 * 1000);  // past the 20 min re-mint guard, before the 45 min refresh
  REQUIRE(h.send(r, msg()));
  REQUIRE(c.open.size() == 1);
  std::string old_auth(c.open[0].req.headers[0].value_view());
  c.respond(403, R"({"reason":"ExpiredProviderToken"})");
  CHECK_FALSE(r.called);
  CHECK(h.tokens->mint_count() == 2);
  h.run();
  REQUIRE(c.open.size() == 1);  // retried at once
  CHECK(c.open[0].req.headers[0].name == "authorization");
  CHECK(c.open[0].req.headers[0].value_view() != old_auth);
  // A second ExpiredProviderToken is not retried again.
  c.respond(403, R"({"reason":"ExpiredProviderToken"})");
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::credential_problem);
  CHECK(h.tokens->mint_count() == 2);
  CHECK(c.all_requests.size() == 3);
  CHECK(h.pusher->stats().remints == 1);
}

TEST_CASE("apns: InvalidProviderToken is a credential problem, not retried, and pauses the app briefly") {
  ApnsPusherOptions o;
  o.credential_pause_ms = 5000;
  Harness h(o);
  Result r, during, after;
  REQUIRE(h.send(r, msg()));
  FakeConn& c = h.conn();
  c.respond(403, R"({"reason":"InvalidProviderToken"})");
  REQUIRE(r.called);
  CHECK(r.outcome.kind == OutcomeKind::credential_problem);
  CHECK(r.outcome.reason == "InvalidProviderToken");
  CHECK(h.tokens->mint_count() == 1);
  h.advance(4000);  // within the pause
  REQUIRE(h.send(during, msg()));
  h.run();
  REQUIRE(during.called);
  CHECK(during.outcome.kind == OutcomeKind::credential_problem);
  CHECK(c.all_requests.size() == 1);  // not sent
  h.advance(1000);
  REQUIRE(h.send(after, msg()));
  CHECK(c.open.size() == 1);  // pause over: tried again
  c.respond(200);
  CHECK(after.outcome.kind == OutcomeKind::delivered);
}

TEST_CASE("apns: the pending cap refuses send() and has_capacity() says so") {
  ApnsPusherOptions o;
  o.max_pending = 3;
  Harness h(o);
  Result rs[4];
  CHECK(h.pusher->has_capacity(3));
  CHECK_FALSE(h.pusher->has_capacity(4));
  for (int i = 0; i < 3; ++i) CHECK(h.send(rs[i], msg()));
  CHECK_FALSE(h.pusher->has_capacity(1));
  CHECK_FALSE(h.send(rs[3], msg()));
  CHECK(h.pusher->pending() == 3);
  CHECK(h.pusher->stats().refused == 1);
  h.conn().respond(200);
  CHECK(h.pusher->has_capacity(1));
  CHECK(h.send(rs[3], msg()));
  h.run();
  CHECK_FALSE(rs[3].called);
}

TEST_CASE("apns: close() reports in-flight and waiting pushes as retry_later and finishes after connections close") {
  Harness h;
  Result waiting, inflight, bug;
  REQUIRE(h.send(waiting, msg("aaaa")));
  REQUIRE(h.send(inflight, msg("bbbb")));
  FakeConn& c = h.conn();
  c.fail_front(FailureKind::reset);  // "aaaa" now waits for its retry; "bbbb" stays in flight
  REQUIRE(c.open.size() == 1);
  PushMessage m = msg();
  m.payload.assign(5000, 'x');
  REQUIRE(h.send(bug, m));  // deferred request_bug keeps its outcome
  bool done = false;
  h.pusher->close([&] { done = true; });
  REQUIRE(inflight.called);
  REQUIRE(waiting.called);
  REQUIRE(bug.called);
  CHECK(inflight.outcome.kind == OutcomeKind::retry_later);
  CHECK(waiting.outcome.kind == OutcomeKind::retry_later);
  CHECK(bug.outcome.kind == OutcomeKind::request_bug);
  CHECK(c.close_called);
  CHECK(h.timer_closes == 1);
  CHECK_FALSE(done);  // the connection has not finished closing
  c.closed_event();
  CHECK(done);
  Result late;
  CHECK_FALSE(h.send(late, msg()));
  CHECK_FALSE(h.pusher->has_capacity(1));
}

TEST_CASE("apns: close() with nothing open finishes at once") {
  Harness h;
  bool done = false;
  h.pusher->close([&] { done = true; });
  CHECK(done);
}

}  // TEST_SUITE
