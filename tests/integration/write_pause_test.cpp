// Store write pauses end to end, in process: the real router, endpoints and HTTP server on a
// libuv loop thread, a store whose WAL limit is tiny (so the TRUNCATE checkpoint's write pause
// comes often) and whose worker jobs are slowed down (so each pause lasts long enough for requests
// to arrive during it), and blocking HTTP clients on other threads. Registrations that arrive
// during a pause are parked by the router and must all be answered 200 and be in the database.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/rate_limiter.h"
#include "api/router.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/encoding.h"
#include "core/log.h"
#include "http/server.h"
#include "push/notify_service.h"
#include "push/pusher.h"
#include "store/store.h"
#include "support/fixture.h"

using namespace aloha;
using namespace aloha::test;

namespace {

// Forwards to the libuv thread pool, but every background job (checkpoint) first sleeps on the
// worker: the write pause around a TRUNCATE then lasts at least that long.
class SlowJobSyncer final : public store::Syncer {
 public:
  SlowJobSyncer(store::Syncer& inner, int delay_ms) : inner_(inner), delay_ms_(delay_ms) {}
  void sync(int fd, Done done) override { inner_.sync(fd, std::move(done)); }
  void run(std::function<void()> work, std::function<void()> after) override {
    int ms = delay_ms_;
    inner_.run([ms, work = std::move(work)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      work();
    }, std::move(after));
  }

 private:
  store::Syncer& inner_;
  int delay_ms_;
};

struct Result {
  store::DatabaseStats stats;
  size_t parked_at_end = 0;
};

// The bouncer's request path on a loop thread: store, router, HTTP server, the commit handle.
class InProcessBouncer {
 public:
  explicit InProcessBouncer(const std::string& db_path) {
    std::promise<int> started;
    auto fut = started.get_future();
    thread_ = std::thread([this, db_path, &started] { run(db_path, started); });
    port_ = fut.get();
  }
  ~InProcessBouncer() { stop(); }
  int port() const { return port_; }

  // Stops the loop (closes the server and handles) and returns the store's figures.
  Result stop() {
    if (thread_.joinable()) {
      uv_async_send(&stop_async_);
      thread_.join();
    }
    return result_;
  }

 private:
  void run(const std::string& db_path, std::promise<int>& started) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    store::StoreOptions opts;
    opts.db.checkpoint_pages = 4;
    opts.db.truncate_pages = 8;  // a pause every few batches
    auto store = std::make_unique<store::Store>(db_path, opts);
    store::UvSyncer pool(&loop);
    SlowJobSyncer slow(pool, 30);
    store->db().set_syncer(&slow);
    Config config;
    api::RateLimiter limiter(1'000'000, SystemClock::instance());
    push::PusherRegistry pushers;  // empty: notify counts devices and sends nothing
    push::NotifyService notify(SystemClock::instance(), config.push);
    auto router = std::make_unique<api::Router>(
        api::Services{config, *store, limiter, SystemClock::instance(), &loop, &pushers, &notify});
    api::register_all_routes(*router);
    api::Router* r = router.get();
    auto server = std::make_unique<http::Server>(&loop, http::ServerLimits{}, [r](http::Request&& req, http::Reply reply) {
      r->handle(std::move(req), std::move(reply));
    });
    // Started after the server's prepare handle, as in app.cpp: the batch commits first.
    uv_prepare_t commit;
    uv_prepare_init(&loop, &commit);
    commit.data = store.get();
    uv_prepare_start(&commit, [](uv_prepare_t* h) { static_cast<store::Store*>(h->data)->db().flush(); });
    uv_async_init(&loop, &stop_async_, [](uv_async_t* h) { uv_stop(h->loop); });
    std::string err = server->listen("127.0.0.1", 0);
    started.set_value(err.empty() ? server->port() : -1);
    uv_run(&loop, UV_RUN_DEFAULT);  // until stop()
    // As app.cpp: close the server, then let its close callbacks and any job in flight finish.
    server.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&commit), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_async_), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    pool.drain();
    store->db().set_syncer(nullptr);
    result_.stats = store->db().stats();
    result_.parked_at_end = store->db().parked_count();
    store->shutdown();
    router.reset();
    store.reset();
    uv_loop_close(&loop);
  }

  std::thread thread_;
  uv_async_t stop_async_{};
  int port_ = 0;
  Result result_;
};

HttpResult post(HttpConnection& c, const std::string& path, const Fields& fields, const std::string& auth) {
  std::vector<http::Header> h{{"content-type", "application/x-www-form-urlencoded"}};
  if (!auth.empty()) h.push_back({"authorization", "Basic " + enc::base64_encode(auth)});
  return c.request("POST", path, h, form_encode(fields), 10'000);
}

HttpResult post_json(HttpConnection& c, const std::string& path, const std::string& body, const std::string& auth) {
  std::vector<http::Header> h{{"content-type", "application/json"},
                              {"authorization", "Basic " + enc::base64_encode(auth)}};
  return c.request("POST", path, h, body, 10'000);
}

int64_t sql_count(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return -1;
  sqlite3_stmt* s = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

// Access logging off for a test's duration (hundreds of requests), restored after.
struct QuietLog {
  LogLevel level = log_level();
  QuietLog() { log_set_level(LogLevel::warn); }
  ~QuietLog() { log_set_level(level); }
  QuietLog(const QuietLog&) = delete;
  QuietLog& operator=(const QuietLog&) = delete;
};

}  // namespace

TEST_SUITE("integration/store/write_pause") {
  TEST_CASE("registrations across forced write pauses are parked, all answered 200 and all stored") {
    QuietLog quiet;  // 600 access-log lines would bury the test's output
    TempDir dir;
    const std::string db_path = dir.file("bouncer.sqlite3");
    InProcessBouncer b(db_path);
    REQUIRE(b.port() > 0);
    const uint16_t port = static_cast<uint16_t>(b.port());
    const std::string uuid = random_uuid4(), key = random_key();
    {
      HttpConnection c;
      REQUIRE(c.connect("127.0.0.1", port, 5000));
      HttpResult r = post(c, remotes("server/register"),
                          {{"aloha_org_id", uuid}, {"aloha_org_key", key}, {"hostname", "pause.aloha-test.org"},
                           {"contact_email", "admin@aloha-test.org"}}, "");
      REQUIRE(r.status == 200);
    }
    constexpr int kClients = 4, kEach = 150;
    std::atomic<int> ok{0};
    std::vector<std::string> failures[kClients];
    std::vector<std::thread> clients;
    for (int t = 0; t < kClients; ++t) {
      clients.emplace_back([&, t] {
        HttpConnection c;
        if (!c.connect("127.0.0.1", port, 5000)) {
          failures[t].push_back("connect: " + c.error());
          return;
        }
        for (int i = 0; i < kEach; ++i) {
          int n = t * kEach + i;
          HttpResult r = post(c, remotes("push/register"),
                              {{"user_id", std::to_string(n)}, {"token", "pause-" + std::to_string(n)},
                               {"token_kind", "2"}}, uuid + ":" + key);
          if (r.status == 200)
            ++ok;
          else if (failures[t].size() < 3)
            failures[t].push_back(std::to_string(r.status) + " " + r.error + " " + r.body);
        }
      });
    }
    for (auto& c : clients) c.join();
    Result res = b.stop();
    for (int t = 0; t < kClients; ++t)
      for (const auto& f : failures[t]) MESSAGE("client ", t, ": ", f);
    MESSAGE(res.stats.write_pauses, " write pauses, ", res.stats.truncations, " truncations, ", res.stats.parked,
            " requests parked, ", res.stats.park_refused, " refused, ", res.stats.busy_waits,
            " busy-handler calls; longest pause ", res.stats.pause_us_max, " us");
    CHECK(ok.load() == kClients * kEach);
    CHECK(res.stats.write_pauses >= 2);
    CHECK(res.stats.truncations >= 1);
    CHECK(res.stats.parked >= 1);  // some registrations did arrive during a pause
    CHECK(res.stats.park_refused == 0);
    CHECK(res.stats.busy_waits == 0);
    CHECK(res.parked_at_end == 0);
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM devices", -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    CHECK(sqlite3_column_int64(s, 0) == kClients * kEach);
    sqlite3_finalize(s);
    sqlite3_close(db);
  }

  TEST_CASE("push/notify's duplicate id-row deletion during write pauses: answered 200, rows deleted after") {
    QuietLog quiet;
    TempDir dir;
    const std::string db_path = dir.file("bouncer.sqlite3");
    InProcessBouncer b(db_path);
    REQUIRE(b.port() > 0);
    const uint16_t port = static_cast<uint16_t>(b.port());
    const std::string uuid = random_uuid4(), key = random_key(), auth = uuid + ":" + key;
    {
      HttpConnection c;
      REQUIRE(c.connect("127.0.0.1", port, 5000));
      REQUIRE(post(c, remotes("server/register"),
                   {{"aloha_org_id", uuid}, {"aloha_org_key", key}, {"hostname", "pause2.aloha-test.org"},
                    {"contact_email", "admin@aloha-test.org"}}, "").status == 200);
    }
    // Registrations from another client keep the WAL growing, so write pauses come every few batches.
    std::atomic<bool> done{false};
    std::thread load([&] {
      HttpConnection c;
      if (!c.connect("127.0.0.1", port, 5000)) return;
      for (int n = 0; !done.load(); ++n)
        post(c, remotes("push/register"),
             {{"user_id", std::to_string(n)}, {"token", "load-" + std::to_string(n)}, {"token_kind", "2"}}, auth);
    });
    // Each user has a uuid-row and an id-row for one token; the notify naming both deletes the
    // id-row in its step 2 — during a pause that deletion is parked, and the notify still answers.
    constexpr int kUsers = 120;
    int notified = 0;
    std::vector<std::string> failures;
    {
      HttpConnection c;
      REQUIRE(c.connect("127.0.0.1", port, 5000));
      for (int u = 0; u < kUsers; ++u) {
        const std::string user_uuid = random_uuid4(), uid = std::to_string(100'000 + u), tok = "dup-" + std::to_string(u);
        HttpResult r1 = post(c, remotes("push/register"), {{"user_uuid", user_uuid}, {"token", tok}, {"token_kind", "2"}}, auth);
        HttpResult r2 = post(c, remotes("push/register"), {{"user_id", uid}, {"token", tok}, {"token_kind", "2"}}, auth);
        HttpResult n = post_json(c, remotes("push/notify"), R"({"user_id":)" + uid + R"(,"user_uuid":")" + user_uuid + "\"}", auth);
        if (r1.status == 200 && r2.status == 200 && n.status == 200 &&
            n.body.find("\"total_android_devices\":1,") != std::string::npos)
          ++notified;
        else if (failures.size() < 3)
          failures.push_back(std::to_string(r1.status) + "/" + std::to_string(r2.status) + "/" + std::to_string(n.status) + " " + n.body);
      }
    }
    done = true;
    load.join();
    Result res = b.stop();
    for (const auto& f : failures) MESSAGE(f);
    MESSAGE(res.stats.write_pauses, " write pauses, ", res.stats.parked, " items parked");
    CHECK(notified == kUsers);
    CHECK(res.stats.write_pauses >= 2);
    CHECK(res.stats.park_refused == 0);
    CHECK(res.parked_at_end == 0);
    // Every id-row is gone (deleted at once or after its pause); every uuid-row stays.
    CHECK(sql_count(db_path, "SELECT count(*) FROM devices WHERE token LIKE 'dup-%' AND user_id IS NOT NULL") == 0);
    CHECK(sql_count(db_path, "SELECT count(*) FROM devices WHERE token LIKE 'dup-%' AND user_uuid IS NOT NULL") == kUsers);
  }
}
