// Database: the deferred commit of flush(true) (batches nobody waits on stay open for a few ms so
// that several loop iterations share one commit) and after_visible().
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "temp_dir.h"

using namespace aloha::store;
using aloha::store::test::Peek;
using aloha::store::test::TempDir;

namespace {

int64_t add_server(Store& s, int i) {
  char uuid[40], host[40];
  std::snprintf(uuid, sizeof uuid, "%08d-1111-4111-8111-111111111111", i);
  std::snprintf(host, sizeof host, "h%d.example.org", i);
  return s.servers().insert(uuid, std::string("hash-") + uuid, host, std::string("admin@") + host, 1000);
}

// A deferral window no test run reaches: only the tests about age look at the clock.
StoreOptions long_window() {
  StoreOptions o;
  o.db.defer_commit_ms = 600'000;
  return o;
}

int64_t own_count(Store& s) {
  Stmt st(s.db().handle(), "SELECT count(*) FROM servers");
  auto u = st.use();
  return st.step() ? st.col_int(0) : -1;
}

// A store in a fresh directory and a second, read-only connection that sees only committed data.
struct Fixture {
  explicit Fixture(const StoreOptions& o = long_window()) : path(dir.file("bouncer.db")), s(path, o), peek(path) {}
  TempDir dir;
  std::string path;
  Store s;
  Peek peek;
};

StoreOptions with_delay(int ms) {
  StoreOptions o;
  o.db.defer_commit_ms = ms;
  return o;
}

}  // namespace

TEST_SUITE("store") {

TEST_CASE("deferred commit: flush(true) keeps a batch nobody waits on open; its own reads see it; flush() commits") {
  Fixture f;
  Store& s = f.s;
  Peek& peek = f.peek;
  CHECK(s.db().deferred_commit_due_ms() == -1);
  add_server(s, 1);
  s.db().flush(true);
  CHECK(s.db().batch_open());
  CHECK(s.db().stats().commits == 0);
  CHECK(s.db().stats().deferred_commits == 1);
  const int64_t due = s.db().deferred_commit_due_ms();
  CHECK(due > 0);
  CHECK(due <= 600'000);
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 0);  // not committed: other connections do not see it
  CHECK(own_count(s) == 1);                                 // the loop connection does

  // The next iteration's writes join the same batch; still one deferral, no commit.
  add_server(s, 2);
  s.db().flush(true);
  CHECK(s.db().stats().deferred_commits == 1);
  CHECK(s.db().stats().commits == 0);

  s.db().flush();  // the commit timer
  CHECK_FALSE(s.db().batch_open());
  CHECK(s.db().deferred_commit_due_ms() == -1);
  CHECK(s.db().stats().commits == 1);
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 2);
}

TEST_CASE("deferred commit: after_visible runs once the deferred batch is committed, and at once with no batch") {
  Fixture f;
  Store& s = f.s;
  Peek& peek = f.peek;
  std::vector<int64_t> seen;  // what another connection sees when each callback runs
  s.db().after_visible([&](bool ok) {
    CHECK(ok);
    seen.push_back(peek.scalar("SELECT count(*) FROM servers"));
  });
  CHECK(seen == std::vector<int64_t>{0});  // nothing open: ran at once

  add_server(s, 1);
  s.db().after_visible([&](bool ok) {
    CHECK(ok);
    seen.push_back(peek.scalar("SELECT count(*) FROM servers"));
  });
  s.db().flush(true);
  s.db().flush(true);
  CHECK(seen.size() == 1);  // still waiting: the batch is deferred
  CHECK(s.db().queued_callbacks() == 1);
  s.db().flush();
  CHECK(seen == std::vector<int64_t>{0, 1});  // ran after the commit, which it can see
  CHECK(s.db().queued_callbacks() == 0);
}

TEST_CASE("deferred commit: a batch with an after_commit callback is committed at once") {
  Fixture f;
  Store& s = f.s;
  Peek& peek = f.peek;
  add_server(s, 1);
  s.db().flush(true);
  REQUIRE(s.db().batch_open());
  // A registration joins the deferred batch: it waits for a sync, so the batch commits now.
  add_server(s, 2);
  bool done = false;
  s.db().after_commit([&](bool ok) { done = ok; });
  s.db().flush(true);
  CHECK_FALSE(s.db().batch_open());
  CHECK(s.db().stats().commits == 1);
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 2);
  CHECK(done);  // the inline syncer synced it within the flush
}

TEST_CASE("deferred commit: the batch commits once it holds max_deferred_writes writes") {
  StoreOptions o = long_window();
  o.db.max_deferred_writes = 3;
  Fixture f(o);
  Store& s = f.s;
  Peek& peek = f.peek;
  for (int i = 0; i < 2; ++i) {
    add_server(s, i);
    s.db().flush(true);
  }
  CHECK(s.db().batch_open());
  add_server(s, 2);
  s.db().flush(true);
  CHECK_FALSE(s.db().batch_open());
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 3);
}

TEST_CASE("deferred commit: a batch older than defer_commit_ms is committed by the next flush(true)") {
  Fixture f(with_delay(20));
  Store& s = f.s;
  Peek& peek = f.peek;
  const auto start = std::chrono::steady_clock::now();
  add_server(s, 1);
  s.db().flush(true);
  if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(15)) {  // not a slow run
    CHECK(s.db().batch_open());
    CHECK(s.db().deferred_commit_due_ms() <= 20);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(25));
  CHECK(s.db().deferred_commit_due_ms() == 0);
  s.db().flush(true);
  CHECK_FALSE(s.db().batch_open());
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 1);
}

TEST_CASE("deferred commit: defer_commit_ms = 0 and flush() without allow_defer commit every time") {
  Fixture off(with_delay(0));
  Store& s = off.s;
  add_server(s, 1);
  s.db().flush(true);
  CHECK_FALSE(s.db().batch_open());
  CHECK(s.db().stats().deferred_commits == 0);

  Fixture on;
  Store& s2 = on.s;
  add_server(s2, 1);
  s2.db().flush();
  CHECK_FALSE(s2.db().batch_open());
  CHECK(s2.db().stats().deferred_commits == 0);
}

TEST_CASE("deferred commit: a lost batch tells after_visible ok=false") {
  Fixture f;
  Store& s = f.s;
  // A deferred foreign key is checked at COMMIT only: the way to make a commit fail on demand.
  s.db().exec("CREATE TABLE probe (server_id INTEGER REFERENCES servers(id) DEFERRABLE INITIALLY DEFERRED)");
  s.db().write([&] { s.db().exec("INSERT INTO probe VALUES (4242)"); });
  std::vector<int> results;
  s.db().after_visible([&](bool ok) { results.push_back(ok ? 1 : 0); });
  s.db().flush(true);
  CHECK(results.empty());
  s.db().flush();
  CHECK(results == std::vector<int>{0});
  CHECK(s.db().stats().failed_commits == 1);
}

TEST_CASE("deferred commit: shutdown commits a deferred batch and runs its after_visible callbacks") {
  Fixture f;
  Store& s = f.s;
  Peek& peek = f.peek;
  add_server(s, 1);
  bool ran = false;
  s.db().after_visible([&](bool ok) { ran = ok; });
  s.db().flush(true);
  REQUIRE(s.db().batch_open());
  s.shutdown();
  CHECK(ran);
  CHECK_FALSE(s.db().batch_open());
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 1);
}

}  // TEST_SUITE
