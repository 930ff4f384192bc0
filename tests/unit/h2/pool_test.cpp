// h2::Pool driven through fake connections (no sockets) and a FakeClock.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "h2/pool.h"

using namespace aloha;
using namespace aloha::h2;

namespace {

class FakeConn final : public Conn {
 public:
  struct Sent {
    uint64_t id;
    H2Request req;
    Completion done;
    bool request_sent = true;
  };
  explicit FakeConn(ConnListener* l) : listener(l) {}

  ConnState state() const override { return st; }
  size_t free_slots() const override {
    if (st != ConnState::connected) return 0;
    return open.size() >= slots ? 0 : slots - open.size();
  }
  size_t pending() const override { return open.size(); }
  uint64_t submit(H2Request&& request, Completion done) override {
    if (free_slots() == 0 || refuse) return 0;
    open.push_back({next++, std::move(request), std::move(done)});
    ++total_submitted;
    return open.back().id;
  }
  bool cancel(uint64_t id) override {
    for (size_t i = 0; i < open.size(); ++i) {
      if (open[i].id == id) {
        Sent s = std::move(open[i]);
        open.erase(open.begin() + static_cast<long>(i));
        ++cancels;
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
    fail_all(FailureKind::connection_lost);
  }
  void drain() override { st = ConnState::draining; }
  void set_listener(ConnListener* l) override { listener = l; }

  // Test controls.
  void become_ready() {
    st = ConnState::connected;
    listener->on_conn_ready(this);
  }
  void respond(size_t index, int status) {
    Sent s = std::move(open.at(index));
    open.erase(open.begin() + static_cast<long>(index));
    H2Response r;
    r.status = status;
    r.request_sent = true;
    s.done(r);
    if (listener) listener->on_conn_capacity(this);
  }
  void fail_all(FailureKind kind) {
    auto all = std::move(open);
    open.clear();
    for (auto& s : all) {
      H2Response r;
      r.failure = kind;
      r.request_sent = s.request_sent;
      r.request = std::move(s.req);  // as h2::Session: failures hand the request back
      s.done(r);
    }
  }
  // The final close event (a real Connection deletes itself afterwards).
  void closed_event(const std::string& error) {
    st = ConnState::closed;
    if (listener) listener->on_conn_closed(this, error);
    listener = nullptr;
  }

  ConnListener* listener;
  ConnState st = ConnState::connecting;
  size_t slots = 1;
  bool refuse = false;  // submit() says no although slots are free (as a session may)
  std::vector<Sent> open;
  uint64_t next = 1;
  int total_submitted = 0;
  int cancels = 0;
};

struct Harness {
  FakeClock clock;
  std::vector<std::unique_ptr<FakeConn>> conns;
  std::vector<int64_t> wakeups;
  std::string token = "jwt-1";
  PoolOptions opt;
  std::unique_ptr<Pool> pool;

  explicit Harness(PoolOptions o = {}) : opt(o) {
    opt.backoff = {1000, 60000, net::Jitter::full};
    pool = std::make_unique<Pool>(
        opt, clock,
        [this](ConnListener* l) {
          conns.push_back(std::make_unique<FakeConn>(l));
          return conns.back().get();
        },
        [this](int64_t delay) { wakeups.push_back(delay); },
        [this](std::vector<H2Header>& h) { h.push_back({"authorization", "bearer " + token}); },
        [] { return 0.5; });
  }
  uint64_t submit(std::vector<H2Response>& out, int64_t timeout_ms = 10000, std::string path = "/p") {
    H2Request r;
    r.path = std::move(path);
    r.authority = "push.example.test";
    r.headers = {{"apns-topic", "org.example"}};
    r.body = "{\"n\":1}";
    return pool->submit(std::move(r), timeout_ms, [&out](const H2Response& resp) { out.push_back(resp); });
  }
};

}  // namespace

TEST_SUITE("h2") {

TEST_CASE("slot table: ids find their slot until released; a reused slot gets a new id, the old one finds nothing") {
  struct Item {
    uint64_t id = 0;
    bool in_use = false;
    int payload = 0;
  };
  aloha::h2::SlotTable<Item> t;
  Item* a = t.acquire();
  Item* b = t.acquire();
  a->payload = 7;
  const uint64_t ida = a->id, idb = b->id;
  CHECK(ida != idb);
  CHECK(t.live() == 2);
  CHECK(t.find(ida) == a);
  CHECK(t.find(idb) == b);
  t.release(a);
  CHECK(t.live() == 1);
  CHECK(t.find(ida) == nullptr);
  CHECK(a->payload == 0);  // reset to Item{}
  Item* c = t.acquire();      // reuses a's slot
  CHECK(c == a);
  CHECK(c->id != ida);
  CHECK(static_cast<uint32_t>(c->id) == static_cast<uint32_t>(ida));
  CHECK(t.find(ida) == nullptr);  // a stale id does not reach the new occupant
  CHECK(t.find(c->id) == c);
  CHECK(t.find(uint64_t{1} << 32 | 99) == nullptr);  // beyond the table
  int in_use = 0;
  t.for_each([&](Item& i) { in_use += i.in_use ? 1 : 0; });
  CHECK(in_use == 2);
}


TEST_CASE("pool: queues until the first connection is ready, then sends with provider headers first") {
  Harness h;
  std::vector<H2Response> out;
  CHECK(h.submit(out) > 0);
  REQUIRE(h.conns.size() == 1);
  CHECK(h.pool->stats().queued == 1);
  h.conns[0]->slots = 10;
  h.conns[0]->become_ready();
  REQUIRE(h.conns[0]->open.size() == 1);
  const auto& hdrs = h.conns[0]->open[0].req.headers;
  REQUIRE(hdrs.size() == 2);
  CHECK(hdrs[0].name == "authorization");
  CHECK(hdrs[0].value == "bearer jwt-1");
  CHECK(hdrs[1].name == "apns-topic");
  // A new token is used by the next request on the same connection.
  h.token = "jwt-2";
  h.submit(out);
  REQUIRE(h.conns[0]->open.size() == 2);
  CHECK(h.conns[0]->open[1].req.headers[0].value == "bearer jwt-2");
  CHECK(h.conns.size() == 1);
  h.conns[0]->respond(0, 200);
  REQUIRE(out.size() == 1);
  CHECK(out[0].status == 200);
}

TEST_CASE("pool: a quiet connection lets the pool give back its request slots, only with none in use") {
  Harness h;
  std::vector<H2Response> out;
  h.submit(out);
  REQUIRE(h.conns.size() == 1);
  h.conns[0]->slots = 100;
  h.conns[0]->become_ready();
  for (int i = 0; i < 49; ++i) h.submit(out);
  REQUIRE(h.conns[0]->open.size() == 50);
  for (size_t i = 0; i < 49; ++i) h.conns[0]->respond(0, 200);
  REQUIRE(out.size() == 49);
  size_t busy = h.pool->idle_capacity();
  CHECK(busy >= 50 * sizeof(void*));
  h.pool->on_conn_idle(h.conns[0].get());  // one request still in flight: nothing is freed
  CHECK(h.pool->idle_capacity() == busy);
  h.conns[0]->respond(0, 200);
  REQUIRE(out.size() == 50);
  h.pool->on_conn_idle(h.conns[0].get());
  CHECK(h.pool->idle_capacity() == 0);
  // Requests flow as before.
  CHECK(h.submit(out) > 0);
  REQUIRE(h.conns[0]->open.size() == 1);
  h.conns[0]->respond(0, 204);
  REQUIRE(out.size() == 51);
  CHECK(out[50].status == 204);
  CHECK(h.pool->stats().in_flight == 0);
}

TEST_CASE("pool: opens another connection when streams saturate, up to max_connections") {
  PoolOptions o;
  o.max_connections = 2;
  Harness h(o);
  std::vector<H2Response> out;
  h.submit(out);
  h.conns[0]->become_ready();  // 1 slot
  CHECK(h.conns[0]->open.size() == 1);
  h.submit(out);
  REQUIRE(h.conns.size() == 2);  // saturated → a second connection
  h.submit(out);
  CHECK(h.conns.size() == 2);    // one set-up at a time
  h.conns[1]->become_ready();
  CHECK(h.conns[1]->open.size() == 1);
  h.submit(out);
  CHECK(h.conns.size() == 2);    // at the maximum: queue
  CHECK(h.pool->stats().queued == 2);
  h.conns[0]->respond(0, 200);   // a slot frees: the oldest queued request takes it
  CHECK(h.conns[0]->open.size() == 1);
  CHECK(h.pool->stats().queued == 1);
  CHECK(out.size() == 1);
}

TEST_CASE("pool: the queue bound refuses without a callback") {
  PoolOptions o;
  o.max_queued = 3;
  Harness h(o);
  std::vector<H2Response> out;
  for (int i = 0; i < 3; ++i) CHECK(h.submit(out) > 0);
  CHECK(h.submit(out) == 0);
  CHECK(out.empty());
}

TEST_CASE("pool: GOAWAY-unprocessed requests are replayed once on another connection") {
  Harness h;
  std::vector<H2Response> out;
  h.submit(out);
  h.conns[0]->become_ready();
  REQUIRE(h.conns[0]->open.size() == 1);
  // Server GOAWAY: the connection stops accepting and gives the request back unprocessed.
  h.conns[0]->st = ConnState::draining;
  h.token = "jwt-2";
  h.conns[0]->fail_all(FailureKind::goaway_unprocessed);
  CHECK(out.empty());
  REQUIRE(h.conns.size() == 2);          // a fresh connection for the replay
  h.conns[1]->become_ready();
  REQUIRE(h.conns[1]->open.size() == 1);
  CHECK(h.pool->stats().replays == 1);
  // The replay is the request the connection handed back, with the provider's headers of now
  // (not those of the first attempt) in front, once.
  const H2Request& again = h.conns[1]->open[0].req;
  CHECK(again.path == "/p");
  CHECK(again.body == "{\"n\":1}");
  REQUIRE(again.headers.size() == 2);
  CHECK(again.headers[0].name == "authorization");
  CHECK(again.headers[0].value == "bearer jwt-2");
  CHECK(again.headers[1].name == "apns-topic");
  // Unprocessed again: no second replay; the caller sees the failure.
  h.conns[1]->fail_all(FailureKind::goaway_unprocessed);
  REQUIRE(out.size() == 1);
  CHECK(out[0].failure == FailureKind::goaway_unprocessed);
  CHECK(out[0].status == 0);
}

TEST_CASE("pool: a connection refusing a request leaves it whole for the next attempt") {
  Harness h;
  std::vector<H2Response> out;
  h.submit(out);
  h.conns[0]->slots = 10;
  h.conns[0]->refuse = true;
  h.conns[0]->become_ready();
  CHECK(h.conns[0]->open.empty());
  CHECK(h.pool->stats().queued == 1);
  h.conns[0]->refuse = false;
  h.conns[0]->listener->on_conn_capacity(h.conns[0].get());
  REQUIRE(h.conns[0]->open.size() == 1);
  const H2Request& r = h.conns[0]->open[0].req;
  CHECK(r.path == "/p");
  CHECK(r.body == "{\"n\":1}");
  REQUIRE(r.headers.size() == 2);  // the provider's header once, not once per attempt
  CHECK(r.headers[0].name == "authorization");
  CHECK(r.headers[1].name == "apns-topic");
  h.conns[0]->respond(0, 200);
  REQUIRE(out.size() == 1);
  CHECK(out[0].status == 200);
}

TEST_CASE("pool: connection lost replays only requests that were never sent") {
  Harness h;
  std::vector<H2Response> out;
  h.submit(out, 10000, "/sent");
  h.submit(out, 10000, "/unsent");
  h.conns[0]->slots = 2;
  h.conns[0]->become_ready();
  REQUIRE(h.conns[0]->open.size() == 2);
  h.conns[0]->open[1].request_sent = false;
  h.conns[0]->close();
  REQUIRE(out.size() == 1);  // the sent one: maybe processed, never replayed
  CHECK(out[0].failure == FailureKind::connection_lost);
  // The unsent one is replayed on a fresh connection, opened at once (the old one was working).
  REQUIRE(h.conns.size() == 2);
  h.conns[0]->closed_event("connection closed by peer");
  CHECK(h.pool->stats().connect_failures == 0);
  h.conns[1]->become_ready();
  REQUIRE(h.conns[1]->open.size() == 1);
  CHECK(h.conns[1]->open[0].req.path == "/unsent");
  h.conns[1]->respond(0, 200);
  REQUIRE(out.size() == 2);
  CHECK(out[1].status == 200);
}

TEST_CASE("pool: per-request deadlines time out queued and in-flight requests") {
  Harness h;
  std::vector<H2Response> out;
  h.submit(out, 1000, "/inflight");
  h.submit(out, 2000, "/queued");
  h.conns[0]->become_ready();  // one slot: /inflight goes, /queued waits
  REQUIRE(h.conns[0]->open.size() == 1);
  REQUIRE_FALSE(h.wakeups.empty());
  CHECK(h.wakeups.front() == 1000);
  h.clock.advance_ms(999);
  h.pool->on_timer();
  CHECK(out.empty());
  h.clock.advance_ms(1);
  h.pool->on_timer();
  REQUIRE(out.size() == 1);
  CHECK(out[0].failure == FailureKind::timeout);
  CHECK(h.conns[0]->cancels == 1);
  // The freed slot went to /queued; its own deadline still applies.
  h.conns[0]->listener->on_conn_capacity(h.conns[0].get());
  REQUIRE(h.conns[0]->open.size() == 1);
  h.clock.advance_ms(1000);
  h.pool->on_timer();
  REQUIRE(out.size() == 2);
  CHECK(out[1].failure == FailureKind::timeout);
}

TEST_CASE("pool: deadlines out of submission order fire earliest first; reused slots keep their own") {
  PoolOptions o;
  Harness h(o);
  std::vector<H2Response> out;
  uint64_t late = h.submit(out, 5000, "/late");
  uint64_t early = h.submit(out, 1000, "/early");
  uint64_t mid = h.submit(out, 3000, "/mid");
  REQUIRE_FALSE(h.wakeups.empty());
  CHECK(h.wakeups.back() == 1000);  // the heap's top is the earliest, not the first submitted
  h.clock.advance_ms(1000);
  h.pool->on_timer();
  REQUIRE(out.size() == 1);
  CHECK(out[0].request_id == early);
  CHECK(h.wakeups.back() == 2000);  // next: /mid at 3000
  // A new request reuses the freed slot under a new id; the old id stays dead.
  uint64_t again = h.submit(out, 500, "/again");
  CHECK(again != early);
  CHECK((again & 0xffffffffu) == (early & 0xffffffffu));
  h.clock.advance_ms(500);
  h.pool->on_timer();
  REQUIRE(out.size() == 2);
  CHECK(out[1].request_id == again);
  h.clock.advance_ms(1500);
  h.pool->on_timer();
  REQUIRE(out.size() == 3);
  CHECK(out[2].request_id == mid);
  h.clock.advance_ms(2000);
  h.pool->on_timer();
  REQUIRE(out.size() == 4);
  CHECK(out[3].request_id == late);
  CHECK(h.pool->stats().queued == 0);
  CHECK(h.pool->stats().in_flight == 0);
}

TEST_CASE("pool: repeated connect failures back off exponentially with jitter") {
  Harness h;
  std::vector<H2Response> out;
  h.submit(out, 600000);
  std::vector<int64_t> delays;
  for (int i = 0; i < 4; ++i) {
    REQUIRE(h.conns.size() == static_cast<size_t>(i + 1));
    h.conns[i]->closed_event("connection refused");
    int64_t d = h.wakeups.back();
    delays.push_back(d);
    h.clock.advance_ms(d - 1);
    h.pool->on_timer();
    CHECK(h.conns.size() == static_cast<size_t>(i + 1));  // not yet
    h.clock.advance_ms(1);
    h.pool->on_timer();
  }
  CHECK(delays == std::vector<int64_t>{500, 1000, 2000, 4000});
  CHECK(h.pool->stats().connect_failures == 4);
  // Success resets the backoff.
  h.conns[4]->become_ready();
  CHECK(h.conns[4]->open.size() == 1);
}

TEST_CASE("pool: close fails everything; a destroyed pool calls no completions") {
  Harness h;
  std::vector<H2Response> out;
  h.submit(out);
  h.submit(out);
  h.conns[0]->become_ready();
  h.pool->close();
  CHECK(out.size() == 2);
  for (auto& r : out) CHECK(r.failure == FailureKind::connection_lost);
  CHECK(h.submit(out) == 0);

  Harness h2;
  std::vector<H2Response> out2;
  h2.submit(out2);
  h2.conns[0]->become_ready();
  FakeConn* c = h2.conns[0].get();
  h2.pool.reset();
  CHECK(c->st == ConnState::closed);
  CHECK(c->listener == nullptr);
  CHECK(out2.empty());
}

}  // TEST_SUITE
