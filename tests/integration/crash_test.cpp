// Durability: registrations answered 200 survive kill -9 of the bouncer mid-burst (api.md §1:
// success means stored), and the database passes PRAGMA integrity_check afterwards.
#include <sqlite3.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api_checks.h"

using namespace aloha;
using namespace aloha::test;

namespace {

std::string integrity_check(const std::string& path) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    out = std::string("open failed: ") + (db ? sqlite3_errmsg(db) : "?");
    sqlite3_close(db);
    return out;
  }
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) != SQLITE_OK) {
    out = std::string("prepare failed: ") + sqlite3_errmsg(db);
  } else {
    while (sqlite3_step(st) == SQLITE_ROW) {
      if (!out.empty()) out += "\n";
      out += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_SUITE("integration/crash") {
  TEST_CASE("crash: every registration answered 200 before kill -9 is there after restart") {
    // No rate limit in the way: the burst and the check together exceed the default 1000/min.
    BouncerProcess b("[limits]\nrequests_per_minute = 1000000\n");
    auto s = register_server(b, "crash.aloha-test.org");
    constexpr int kThreads = 4;
    constexpr int kPerThread = 5000;  // far more than fit before the kill
    std::mutex mu;
    std::vector<std::string> acked;
    std::atomic<int> failures_before_kill{0};
    std::atomic<bool> killed{false};
    uint16_t port = b.port();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        // Keep-alive connections for a realistic burst; reconnect if the server closes one.
        HttpConnection c;
        std::string auth = cli::basic_auth(s.uuid, s.key);
        for (int i = 0; i < kPerThread && !killed.load(); ++i) {
          if (!c.is_open() && !c.connect("127.0.0.1", port, 2000)) break;
          std::string token = "crash-" + std::to_string(t) + "-" + std::to_string(i);
          auto r = c.request("POST", remotes("push/register"),
                             {{"Content-Type", "application/x-www-form-urlencoded"}, {"Authorization", auth}},
                             form_encode({{"user_id", std::to_string(t + 1)}, {"token", token}, {"token_kind", "2"}}),
                             5000);
          if (r.status == 200) {
            std::lock_guard<std::mutex> lock(mu);
            acked.push_back(token);
          } else if (!killed.load()) {
            ++failures_before_kill;
          }
          if (r.status == 0) c.close();
        }
      });
    }
    // Let the burst run, then kill mid-flight.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (acked.size() >= 400) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    killed = true;
    auto st = b.kill9();
    CHECK(st.signaled);
    for (auto& th : threads) th.join();
    std::vector<std::string> done;
    {
      std::lock_guard<std::mutex> lock(mu);
      done = acked;
    }
    MESSAGE("registrations acknowledged before kill -9: " << done.size());
    CHECK(failures_before_kill.load() == 0);
    REQUIRE(done.size() > 0);

    b.restart();
    // Unregister each acknowledged token: 200 proves it was stored (and was stored once).
    size_t checked = 0, missing = 0;
    std::string first_missing;
    HttpConnection c;
    REQUIRE(c.connect("127.0.0.1", b.port(), 2000));
    std::string auth = cli::basic_auth(s.uuid, s.key);
    for (const auto& token : done) {
      int user = token[6] - '0' + 1;
      auto r = c.request("POST", remotes("push/unregister"),
                         {{"Content-Type", "application/x-www-form-urlencoded"}, {"Authorization", auth}},
                         form_encode({{"user_id", std::to_string(user)}, {"token", token}, {"token_kind", "2"}}),
                         5000);
      ++checked;
      if (r.status != 200) {
        ++missing;
        if (first_missing.empty()) first_missing = token + ": " + show(r);
        if (r.status == 0) REQUIRE(c.connect("127.0.0.1", b.port(), 2000));
      }
    }
    CHECK_MESSAGE(missing == 0, missing << " of " << checked << " acknowledged registrations lost; first: "
                                        << first_missing);
    auto stopped = b.stop();
    CHECK_MESSAGE(stopped.ok(), stopped.describe());
    CHECK(integrity_check(b.db_path()) == "ok");
  }
}
