// Pipelined durable group commit: COMMIT without fsync, callbacks only after an fdatasync of the
// WAL done by a Syncer (here a manual one the test completes by hand, and the real libuv one),
// one sync in flight at a time covering every batch committed before it, background checkpoints.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/store.h"
#include "temp_dir.h"

using namespace aloha::store;
using aloha::store::test::Peek;
using aloha::store::test::TempDir;

namespace {

// Records sync requests; the test completes them in order with complete(ok). Background jobs
// (checkpoints) run inline unless hold_jobs is set, then they wait for run_jobs().
class ManualSyncer final : public Syncer {
 public:
  std::deque<std::pair<int, Done>> syncs;
  std::deque<std::pair<std::function<void()>, std::function<void()>>> jobs;
  bool hold_jobs = false;
  int total_syncs = 0;

  void sync(int fd, Done done) override {
    ++total_syncs;
    syncs.emplace_back(fd, std::move(done));
  }
  void run(std::function<void()> work, std::function<void()> after) override {
    if (!hold_jobs) {
      work();
      after();
      return;
    }
    jobs.emplace_back(std::move(work), std::move(after));
  }
  void complete(bool ok) {
    REQUIRE_FALSE(syncs.empty());
    auto done = std::move(syncs.front().second);
    syncs.pop_front();
    done(ok);
  }
  void run_jobs() {
    while (!jobs.empty()) {
      auto job = std::move(jobs.front());
      jobs.pop_front();
      job.first();
      job.second();
    }
  }
};

constexpr const char* kServer = "11111111-1111-4111-8111-111111111111";

struct Fixture {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  Store s;
  ManualSyncer syncer;
  int64_t server;
  int next = 0;
  std::vector<std::string> seen;
  uint64_t base_syncs = 0, base_checkpoints = 0;  // done by the fixture's own set-up

  explicit Fixture(const StoreOptions& opts = {}) : s(path, opts) {
    server = s.servers().insert(kServer, "k", "a.example.org", "a@example.org", 1);
    s.db().sync_unwaited();  // nobody waits for the set-up batch: ask for its sync
    s.db().flush();  // inline syncer: committed and synced
    base_syncs = s.db().stats().syncs;
    base_checkpoints = s.db().stats().checkpoints;
    s.db().set_syncer(&syncer);
  }
  ~Fixture() { s.db().set_syncer(nullptr); }

  // One registration (a write) and its reply callback, recording "<name>+" or "<name>-".
  void reg(const std::string& name) {
    DeviceRegistration r;
    r.server_id = server;
    r.kind = kKindFcm;
    r.token = "fcm-token-" + std::to_string(next);
    r.user_id = next;
    r.now_ms = 1000 + next;
    ++next;
    s.db().write([&] { s.devices().register_device(r); });
    reply(name);
  }
  void reply(const std::string& name) {
    s.db().after_commit([this, name](bool ok) { seen.push_back(name + (ok ? "+" : "-")); });
  }
  int64_t rows() { return Peek(path).scalar("SELECT count(*) FROM devices"); }
  // Batches of registrations, each committed and synced, until flush() starts a write pause.
  void write_until_paused() {
    int batches = 0;
    while (!s.db().write_paused()) {
      REQUIRE(batches++ < 100);
      for (int i = 0; i < 20; ++i) reg("x");
      s.db().flush();
      while (!syncer.syncs.empty()) syncer.complete(true);
    }
  }
};

using Seen = std::vector<std::string>;

}  // namespace

TEST_SUITE("store") {

TEST_CASE("pipelined commit: the batch is committed at flush but its callbacks wait for the WAL sync") {
  Fixture f;
  f.reg("a");
  f.reg("b");
  f.s.db().flush();
  CHECK(f.rows() == 2);  // committed (visible to another connection) ...
  CHECK(f.seen.empty());  // ... but not acknowledged
  REQUIRE(f.syncer.syncs.size() == 1);
  CHECK(f.s.db().sync_in_flight());
  // The fd synced is one on the WAL file's inode.
  struct stat by_fd {}, by_path {};
  REQUIRE(::fstat(f.syncer.syncs.front().first, &by_fd) == 0);
  REQUIRE(::stat(f.s.db().wal_path().c_str(), &by_path) == 0);
  CHECK(by_fd.st_ino == by_path.st_ino);
  f.s.db().flush();  // nothing new: no second sync, nothing runs
  CHECK(f.syncer.syncs.size() == 1);
  CHECK(f.seen.empty());
  f.syncer.complete(true);
  CHECK(f.seen == Seen{"a+", "b+"});
  CHECK_FALSE(f.s.db().sync_in_flight());
  CHECK(f.s.db().stats().syncs - f.base_syncs == 1);
  CHECK(f.s.db().queued_callbacks() == 0);
}

TEST_CASE("pipelined commit: batches committed during a sync share the next one, started when it completes") {
  Fixture f;
  f.reg("a");
  f.s.db().flush();
  REQUIRE(f.syncer.syncs.size() == 1);
  f.reg("b");
  f.s.db().flush();
  f.reg("c");
  f.reg("d");
  f.s.db().flush();
  CHECK(f.rows() == 4);
  CHECK(f.syncer.syncs.size() == 1);  // one sync in flight at a time
  CHECK(f.s.db().unsynced_batches() == 3);
  f.syncer.complete(true);
  CHECK(f.seen == Seen{"a+"});  // b, c, d committed after the first sync started
  REQUIRE(f.syncer.syncs.size() == 1);  // the next one started at once, without a flush
  CHECK(f.syncer.total_syncs == 2);
  f.syncer.complete(true);
  CHECK(f.seen == Seen{"a+", "b+", "c+", "d+"});
  CHECK(f.syncer.syncs.empty());
  CHECK(f.s.db().stats().syncs - f.base_syncs == 2);
  CHECK(f.s.db().stats().synced_batches == 1 + 3);  // the fixture's own batch, then a; b; c+d
}

TEST_CASE("pipelined commit: a batch nobody waits for gets no sync of its own; a waiting batch's covers it") {
  Fixture f;
  // A write without an after_commit callback (push/notify's dead-token delete, counters).
  f.s.db().write([&] { f.s.db().exec("UPDATE servers SET contact_email = 'b@example.org'"); });
  f.s.db().flush();
  CHECK(f.syncer.total_syncs == 0);  // committed, but no fdatasync for it alone
  CHECK(f.s.db().unsynced_batches() == 1);
  f.reg("a");  // a waiting batch: its sync covers the earlier one too
  f.s.db().flush();
  REQUIRE(f.syncer.syncs.size() == 1);
  CHECK(f.s.db().unsynced_batches() == 2);
  f.syncer.complete(true);
  CHECK(f.seen == Seen{"a+"});
  CHECK(f.s.db().unsynced_batches() == 0);
  CHECK(f.s.db().stats().synced_batches == 1 + 2);
  // sync_unwaited() (maintenance, shutdown) syncs waiter-less batches at the next flush.
  f.s.db().write([&] { f.s.db().exec("UPDATE servers SET contact_email = 'c@example.org'"); });
  f.s.db().flush();
  CHECK(f.syncer.syncs.empty());
  f.s.db().sync_unwaited();
  f.s.db().flush();
  REQUIRE(f.syncer.syncs.size() == 1);
  f.syncer.complete(true);
  CHECK(f.s.db().unsynced_batches() == 0);
  CHECK(f.syncer.total_syncs == 2);
}

TEST_CASE("pipelined commit: a failed sync reports ok=false to exactly the batches it covered") {
  Fixture f;
  f.reg("a");
  f.reg("b");
  f.s.db().flush();
  f.reg("c");
  f.s.db().flush();
  CHECK(f.s.health());
  f.syncer.complete(false);
  CHECK(f.seen == Seen{"a-", "b-"});
  CHECK(f.s.db().suspect());
  CHECK_FALSE(f.s.health());  // a failed fsync makes the database suspect until restart
  // Later commits still try, and succeed when their sync does.
  f.reg("d");
  f.s.db().flush();
  f.syncer.complete(true);  // covers c
  CHECK(f.seen == Seen{"a-", "b-", "c+"});
  f.syncer.complete(true);  // covers d
  CHECK(f.seen == Seen{"a-", "b-", "c+", "d+"});
  CHECK(f.s.db().stats().failed_syncs == 1);
  CHECK(f.s.db().stats().syncs - f.base_syncs == 2);
}

TEST_CASE("pipelined commit: a read-only callback needs no sync and runs at the next flush") {
  Fixture f;
  f.reg("w");
  f.s.db().flush();
  f.reply("r");  // no write since the last commit
  f.s.db().flush();
  CHECK(f.seen == Seen{"r+"});
  CHECK(f.syncer.syncs.size() == 1);
  f.syncer.complete(true);
  CHECK(f.seen == Seen{"r+", "w+"});
}

TEST_CASE("pipelined commit: a batch that fails to commit is answered at flush without waiting for a sync") {
  Fixture f;
  f.s.db().exec("CREATE TABLE probe (server_id INTEGER REFERENCES servers(id) DEFERRABLE INITIALLY DEFERRED)");
  f.reg("a");
  f.s.db().flush();  // a: committed, sync in flight
  f.reg("b");
  f.s.db().write([&] { f.s.db().exec("INSERT INTO probe VALUES (4242)"); });  // COMMIT will fail
  f.reply("c");
  f.s.db().flush();
  CHECK(f.seen == Seen{"b-", "c-"});
  CHECK(f.s.db().unsynced_batches() == 1);  // only a
  f.syncer.complete(true);
  CHECK(f.seen == Seen{"b-", "c-", "a+"});
  CHECK(f.syncer.syncs.empty());
}

TEST_CASE("pipelined commit: writes made by a callback run from a sync completion are committed and synced in turn") {
  Fixture f;
  f.reg("a");
  f.s.db().after_commit([&](bool) { f.reg("b"); });
  f.s.db().flush();
  f.syncer.complete(true);
  CHECK(f.seen == Seen{"a+"});
  CHECK(f.rows() == 2);  // b was committed by the flush the completion ran
  REQUIRE(f.syncer.syncs.size() == 1);
  f.syncer.complete(true);
  CHECK(f.seen == Seen{"a+", "b+"});
}

TEST_CASE("pipelined commit: shutdown syncs inline and completes every batch; the stale completion is ignored") {
  Fixture f;
  f.reg("a");
  f.s.db().flush();  // a: sync in flight on the manual syncer
  f.reg("b");
  f.s.db().flush();  // b: committed, waiting
  f.reg("c");        // c: batch still open
  f.reply("r");
  CHECK(f.seen.empty());
  f.s.shutdown();
  CHECK(f.seen == Seen{"a+", "b+", "c+", "r+"});
  CHECK(f.s.db().queued_callbacks() == 0);
  CHECK(f.s.db().unsynced_batches() == 0);
  CHECK(f.s.db().stats().syncs >= 1);
  f.syncer.complete(true);  // the superseded sync finally completes: nothing runs twice
  CHECK(f.seen.size() == 4);
  CHECK(f.syncer.syncs.empty());
}

TEST_CASE("pipelined commit: changing the syncer while a sync is in flight re-syncs its batches on the new one") {
  Fixture f;
  f.reg("a");
  f.s.db().flush();
  ManualSyncer other;
  f.s.db().set_syncer(&other);
  f.reg("b");
  f.s.db().flush();
  REQUIRE(other.syncs.size() >= 1);
  while (!other.syncs.empty()) other.complete(true);
  CHECK(f.seen == Seen{"a+", "b+"});
  f.syncer.complete(false);  // stale: ignored
  CHECK(f.seen == Seen{"a+", "b+"});
  CHECK_FALSE(f.s.db().suspect());
  f.s.db().set_syncer(&f.syncer);
}

TEST_CASE("checkpoints: the loop connection never auto-checkpoints; WAL growth starts a background checkpoint") {
  StoreOptions opts;
  opts.db.checkpoint_pages = 20;
  Fixture f(opts);
  f.syncer.hold_jobs = true;
  {
    Stmt p(f.s.db().handle(), "PRAGMA wal_autocheckpoint");
    auto u = p.use();
    REQUIRE(p.step());
    CHECK(p.col_int(0) == 0);
    Stmt q(f.s.db().handle(), "PRAGMA synchronous");
    auto v = q.use();
    REQUIRE(q.step());
    CHECK(q.col_int(0) == 1);  // NORMAL: COMMIT does not fsync
  }
  int batches = 0;
  while (f.syncer.jobs.empty() && batches < 200) {
    for (int i = 0; i < 20; ++i) f.reg("x");
    f.s.db().flush();
    while (!f.syncer.syncs.empty()) f.syncer.complete(true);
    ++batches;
  }
  REQUIRE(f.syncer.jobs.size() == 1);
  CHECK(f.s.db().checkpoint_in_flight());
  for (int i = 0; i < 20; ++i) f.reg("y");
  f.s.db().flush();
  CHECK(f.syncer.jobs.size() == 1);  // one checkpoint at a time
  f.syncer.run_jobs();
  CHECK_FALSE(f.s.db().checkpoint_in_flight());
  CHECK(f.s.db().stats().checkpoints - f.base_checkpoints == 1);
  // Everything committed before the checkpoint ran is in the database file now.
  CheckpointResult r = f.s.db().checkpoint_passive();
  CHECK(r.ok);
  CHECK(r.checkpointed_frames == r.wal_frames);
}

TEST_CASE("write pause: past truncate_pages flush() pauses writes for a TRUNCATE on the worker; parked work runs after it, in order") {
  StoreOptions opts;
  opts.db.checkpoint_pages = 1'000'000;  // no PASSIVE pass here: only the pause's TRUNCATE
  opts.db.truncate_pages = 50;
  opts.db.max_parked = 3;
  Fixture f(opts);
  f.syncer.hold_jobs = true;  // the worker's job waits for run_jobs()
  CHECK_FALSE(f.s.db().park([] {}));  // no pause: nothing is kept
  f.write_until_paused();
  // The pause began after the batch was committed; its TRUNCATE waits on the worker.
  REQUIRE(f.syncer.jobs.size() == 1);
  CHECK(f.s.db().checkpoint_in_flight());
  CHECK_FALSE(f.s.db().batch_open());
  CHECK(f.s.db().stats().write_pauses == 1);
  struct stat st {};
  REQUIRE(::stat(f.s.db().wal_path().c_str(), &st) == 0);
  const off_t before = st.st_size;
  CHECK(before > 50 * 4096);
  // No write transaction is begun during the pause ...
  const int64_t rows_before = f.rows();
  CHECK_THROWS_AS(f.reg("refused"), WritePausedError);
  CHECK_FALSE(f.s.db().batch_open());
  // ... and reads hold no transaction across iterations (it would keep the TRUNCATE waiting).
  f.s.db().begin_read();
  CHECK(sqlite3_get_autocommit(f.s.db().handle()) != 0);
  CHECK(f.s.servers().find_by_uuid(kServer).has_value());
  // Writers park; past max_parked they are refused (the router answers 503).
  std::vector<int> order;
  const char* const names[] = {"p0", "p1", "p2"};
  for (int i = 0; i < 3; ++i)
    CHECK(f.s.db().park([&f, &order, &names, i] {
      order.push_back(i);
      f.reg(names[i]);
    }));
  CHECK_FALSE(f.s.db().park([&order] { order.push_back(99); }));
  CHECK(f.s.db().stats().park_refused == 1);
  f.s.db().flush();  // an iteration during the pause: nothing to commit, no second pause
  CHECK(order.empty());
  CHECK(f.syncer.jobs.size() == 1);
  CHECK(f.s.db().stats().write_pauses == 1);
  f.syncer.run_jobs();  // TRUNCATE done: the pause ends and the parked work runs, in order
  CHECK_FALSE(f.s.db().write_paused());
  CHECK_FALSE(f.s.db().checkpoint_in_flight());
  CHECK(order == std::vector<int>{0, 1, 2});
  CHECK(f.s.db().stats().truncations == 1);
  REQUIRE(::stat(f.s.db().wal_path().c_str(), &st) == 0);
  CHECK(st.st_size == 0);
  MESSAGE("WAL bytes before the pause's TRUNCATE: ", before, ", after: ", st.st_size);
  CHECK(f.rows() == rows_before);  // the parked writes are in the open batch, not committed yet
  f.s.db().flush();
  while (!f.syncer.syncs.empty()) f.syncer.complete(true);
  CHECK(f.rows() == rows_before + 3);
  REQUIRE(f.seen.size() >= 3);
  CHECK(Seen(f.seen.end() - 3, f.seen.end()) == Seen{"p0+", "p1+", "p2+"});
  CHECK(f.s.db().stats().busy_waits == 0);
}

TEST_CASE("write pause: write-behinds (last request, counters) wait in memory during a pause and are written after it") {
  StoreOptions opts;
  opts.db.checkpoint_pages = 1'000'000;
  opts.db.truncate_pages = 50;
  opts.touch_interval_ms = 0;
  Fixture f(opts);
  f.syncer.hold_jobs = true;
  f.write_until_paused();
  f.s.servers().touch_last_request(f.server, 777'000);  // must not throw nor write
  f.s.counters().add(f.server, std::nullopt, "pushes", 86'400, 5);
  f.s.maintenance();  // writes pending data: skipped during the pause
  CHECK_FALSE(f.s.db().batch_open());
  CHECK(f.s.servers().pending_touches() == 1);
  CHECK(f.s.counters().get(f.server, std::nullopt, "pushes", 86'400) == 5);  // pending in memory
  f.syncer.run_jobs();
  CHECK_FALSE(f.s.db().write_paused());
  f.syncer.hold_jobs = false;  // maintenance's PASSIVE checkpoint runs inline
  f.s.maintenance();
  f.s.db().flush();
  while (!f.syncer.syncs.empty()) f.syncer.complete(true);
  CHECK(f.s.servers().pending_touches() == 0);
  CHECK(Peek(f.path).scalar("SELECT value FROM push_counters WHERE property = 'pushes'") == 5);
}

TEST_CASE("busy handler: a write lock held by another connection fails the write at once; the loop never sleeps") {
  Fixture f;
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open_v2(f.path.c_str(), &other, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(f.reg("locked"), StoreError);
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(f.s.db().stats().busy_waits == 1);  // asked once, gave up at once
  MESSAGE("failed after ", std::chrono::duration_cast<std::chrono::microseconds>(waited).count(), " us");
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  f.reg("free");
  f.s.db().flush();
  while (!f.syncer.syncs.empty()) f.syncer.complete(true);
  CHECK(f.seen.back() == "free+");
}

namespace {

// Registrations issued across many loop iterations (an idle handle: no sleeping in poll) while the
// prepare handle flushes, as the app does. Work issued during a write pause is parked, like the
// router does. Returns the WAL file's largest size seen after a flush.
struct PauseLoad {
  Store& s;
  int64_t server;
  int total;
  int issued = 0, acked = 0, failed = 0;
  std::vector<int> ran;  // order in which registrations actually wrote
  off_t max_wal = 0;
  size_t max_parked = 0;
  uv_idle_t idle{};
  uv_prepare_t prepare{};

  void issue() {
    // Like clients waiting for answers: no more than 64 requests parked at a time.
    for (int k = 0; k < 10 && issued < total && s.db().parked_count() < 64; ++k) {
      int n = issued++;
      auto work = [this, n] {
        ran.push_back(n);
        DeviceRegistration r;
        r.server_id = server;
        r.kind = kKindFcm;
        r.token = "pause-token-" + std::to_string(n);
        r.user_id = n;
        r.now_ms = 1000;
        try {  // no exception may cross libuv's C callbacks
          s.db().write([&] { s.devices().register_device(r); });
          s.db().after_commit([this](bool ok) { ++(ok ? acked : failed); });
        } catch (const std::exception&) {
          ++failed;
        }
      };
      if (!s.db().write_paused())
        work();
      else if (!s.db().park(work))
        ++failed;
    }
    max_parked = std::max(max_parked, s.db().parked_count());
  }

  void run(uv_loop_t* loop) {
    idle.data = prepare.data = this;
    uv_idle_init(loop, &idle);
    uv_prepare_init(loop, &prepare);
    uv_idle_start(&idle, [](uv_idle_t* h) {
      auto* self = static_cast<PauseLoad*>(h->data);
      self->issue();
      if (self->issued == self->total && self->acked + self->failed == self->total) {
        uv_idle_stop(&self->idle);
        uv_prepare_stop(&self->prepare);
      }
    });
    uv_prepare_start(&prepare, [](uv_prepare_t* h) {
      auto* self = static_cast<PauseLoad*>(h->data);
      self->s.db().flush();
      struct stat st {};
      if (::stat(self->s.db().wal_path().c_str(), &st) == 0) self->max_wal = std::max(self->max_wal, st.st_size);
    });
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close(reinterpret_cast<uv_handle_t*>(&idle), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare), nullptr);
    uv_run(loop, UV_RUN_DEFAULT);
  }
};

struct PauseRun {
  off_t max_wal = 0;
  DatabaseStats stats;
  size_t max_parked = 0;
  bool in_order = false;
  int acked = 0;
  int64_t rows = 0;
};

PauseRun run_pause_load(int truncate_pages, int total) {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  PauseRun out;
  {
    StoreOptions opts;
    opts.db.checkpoint_pages = 16;
    opts.db.truncate_pages = truncate_pages;
    Store s(path, opts);
    int64_t server = s.servers().insert(kServer, "k", "a.example.org", "a@example.org", 1);
    s.db().flush();
    s.attach_loop(&loop);
    PauseLoad load{s, server, total};
    load.run(&loop);
    s.detach_loop();
    out.max_wal = load.max_wal;
    out.stats = s.db().stats();
    out.max_parked = load.max_parked;
    out.acked = load.acked;
    out.in_order = static_cast<int>(load.ran.size()) == total;
    for (int i = 0; out.in_order && i < total; ++i) out.in_order = load.ran[static_cast<size_t>(i)] == i;
    s.shutdown();
  }
  CHECK(uv_loop_close(&loop) == 0);
  out.rows = Peek(path).scalar("SELECT count(*) FROM devices");
  return out;
}

}  // namespace

TEST_CASE("write pause: continuous writes across many loop iterations keep the WAL bounded and never wait for a lock") {
  const int kTotal = 20000;
  // Reference: the same load with a limit it never reaches (PASSIVE only, the WAL keeps growing).
  PauseRun unbounded = run_pause_load(1'000'000, kTotal);
  PauseRun bounded = run_pause_load(40, kTotal);
  MESSAGE("largest WAL: ", unbounded.max_wal, " bytes without pauses, ", bounded.max_wal, " bytes with ",
          bounded.stats.write_pauses, " pauses (", bounded.stats.truncations, " truncations, ", bounded.stats.parked,
          " parked, at most ", bounded.max_parked, " at once); pauses took ", bounded.stats.pause_us_total / 1000,
          " ms in all, longest ", bounded.stats.pause_us_max, " us");
  CHECK(unbounded.stats.truncations == 0);
  CHECK(bounded.stats.write_pauses >= 3);
  CHECK(bounded.stats.truncations >= 1);
  CHECK(bounded.max_wal * 3 < unbounded.max_wal);
  // No write ever asked the busy handler: the loop never contended for the TRUNCATE's lock.
  CHECK(bounded.stats.busy_waits == 0);
  CHECK(bounded.stats.park_refused == 0);
  // Parked work ran after its pause, in issue order, and every registration is acknowledged and stored.
  CHECK(bounded.in_order);
  CHECK(bounded.acked == kTotal);
  CHECK(bounded.rows == kTotal);
  CHECK(unbounded.rows == kTotal);
}

TEST_CASE("uv syncer: writes are synced on the thread pool, callbacks run on the loop thread; the loop closes cleanly") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Store s(path);
    int64_t server = s.servers().insert(kServer, "k", "a.example.org", "a@example.org", 1);
    s.db().flush();
    s.attach_loop(&loop);
    auto loop_thread = std::this_thread::get_id();
    int ok_count = 0, wrong_thread = 0;
    for (int i = 0; i < 10; ++i) {
      DeviceRegistration r;
      r.server_id = server;
      r.kind = kKindFcm;
      r.token = "tok-" + std::to_string(i);
      r.user_id = i;
      r.now_ms = 1000;
      s.db().write([&] { s.devices().register_device(r); });
      s.db().after_commit([&](bool ok) {
        ok_count += ok ? 1 : 0;
        if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
      });
      if (i % 3 == 2) s.db().flush();
    }
    s.db().flush();
    CHECK(ok_count == 0);  // nothing is acknowledged before the loop ran the sync's completion
    CHECK(s.db().sync_in_flight());
    uv_run(&loop, UV_RUN_DEFAULT);  // returns once no sync is in flight any more
    CHECK(ok_count == 10);
    CHECK(wrong_thread == 0);
    CHECK_FALSE(s.db().sync_in_flight());
    CHECK(s.db().unsynced_batches() == 0);
    CHECK(s.db().stats().syncs >= 1);
    CHECK(s.db().stats().syncs <= 4);
    // A checkpoint from maintenance also runs on the pool.
    s.maintenance();
    CHECK(s.db().checkpoint_in_flight());
    s.detach_loop();  // drains the checkpoint
    CHECK_FALSE(s.db().checkpoint_in_flight());
    CHECK(s.db().stats().checkpoints == 1);
    s.shutdown();
  }
  CHECK(uv_loop_close(&loop) == 0);
  CHECK(Peek(path).scalar("SELECT count(*) FROM devices") == 10);
}

TEST_CASE("uv syncer: 100 batches of 400 registrations back to back pipeline behind the fsyncs") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  const int kBatches = 100, kPerBatch = 400;
  struct State {
    Store* s;
    int64_t server;
    int batches = 0, acked = 0, failed = 0, lag_max_us = 0, slow = 0;
    int64_t flush_max_us = 0;
  };
  uint64_t syncs = 0, commits = 0;
  double secs = 0;
  {
    Store s(path);
    State st{&s, s.servers().insert(kServer, "k", "a.example.org", "a@example.org", 1)};
    s.db().flush();
    s.attach_loop(&loop);
    uv_idle_t idle;
    uv_idle_init(&loop, &idle);
    idle.data = &st;
    auto t0 = std::chrono::steady_clock::now();
    // One loop iteration = one batch of requests, then the flush the app's uv_prepare does.
    uv_idle_start(&idle, [](uv_idle_t* h) {
      auto* st = static_cast<State*>(h->data);
      auto b0 = std::chrono::steady_clock::now();
      for (int k = 0; k < kPerBatch; ++k) {
        int i = st->batches * kPerBatch + k;
        DeviceRegistration r;
        r.server_id = st->server;
        r.kind = kKindApns;
        r.token = "ABCDEF" + std::to_string(1'000'000 + i);
        r.ios_app_id = "com.example.app";
        r.user_uuid = "cccccccc-0000-4000-8000-" + std::to_string(100'000'000'000LL + i % 5000);
        r.now_ms = 1000 + i;
        st->s->db().write([&] { st->s->devices().register_device(r); });
        st->s->db().after_commit([st](bool ok) { (ok ? st->acked : st->failed) += 1; });
      }
      auto f0 = std::chrono::steady_clock::now();
      st->s->db().flush();
      auto f1 = std::chrono::steady_clock::now();
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(f1 - b0).count();
      auto fus = std::chrono::duration_cast<std::chrono::microseconds>(f1 - f0).count();
      if (us > st->lag_max_us) st->lag_max_us = static_cast<int>(us);
      if (fus > st->flush_max_us) st->flush_max_us = fus;
      if (us > 5000) ++st->slow;
      if (++st->batches == kBatches) uv_idle_stop(h);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uv_close(reinterpret_cast<uv_handle_t*>(&idle), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    s.detach_loop();
    syncs = s.db().stats().syncs;
    commits = s.db().stats().commits;
    CHECK(st.acked == kBatches * kPerBatch);
    CHECK(st.failed == 0);
    CHECK(syncs >= 1);
    CHECK(syncs <= commits);
    MESSAGE("uv syncer: ", kBatches * kPerBatch, " registrations in ", secs, " s = ",
            static_cast<int64_t>(kBatches * kPerBatch / secs), " registrations/s; ", commits,
            " commits, ", syncs, " WAL fdatasyncs (", static_cast<double>(commits) / static_cast<double>(syncs),
            " batches per fsync); loop iterations (400 writes + flush): longest ", st.lag_max_us,
            " us, over 5 ms: ", st.slow, "; longest flush: ", st.flush_max_us, " us; checkpoints ",
            s.db().stats().checkpoints, ", WAL truncations ", s.db().stats().truncations);
    s.shutdown();
  }
  CHECK(uv_loop_close(&loop) == 0);
  CHECK(Peek(path).scalar("SELECT count(*) FROM devices") == kBatches * kPerBatch);
}

TEST_CASE("uv syncer: 64 closed-loop clients (next request only after the reply) all get acknowledged") {
  // The shape of the throughput target: 64 connections, each sending its next registration only
  // once the previous one was answered. Each loop iteration serves the clients whose reply came.
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  constexpr int kClients = 64, kTotal = 20'000;
  struct State {
    Store* s;
    int64_t server;
    int issued = 0, acked = 0, failed = 0;
    std::vector<int> ready;  // clients whose reply arrived
    uv_idle_t idle;
  };
  double secs = 0;
  {
    Store s(path);
    State st{&s, s.servers().insert(kServer, "k", "a.example.org", "a@example.org", 1), 0, 0, 0, {}, {}};
    s.db().flush();
    s.attach_loop(&loop);
    for (int c = 0; c < kClients; ++c) st.ready.push_back(c);
    uv_idle_init(&loop, &st.idle);
    st.idle.data = &st;
    auto t0 = std::chrono::steady_clock::now();
    uv_idle_start(&st.idle, [](uv_idle_t* h) {
      auto* st = static_cast<State*>(h->data);
      std::vector<int> now;
      now.swap(st->ready);
      for (int c : now) {
        if (st->issued == kTotal) break;
        int i = st->issued++;
        auto work = [st, c, i] {
          DeviceRegistration r;
          r.server_id = st->server;
          r.kind = kKindFcm;
          r.token = "fcm-" + std::to_string(i);
          r.user_id = c;
          r.now_ms = 1000 + i;
          st->s->db().write([&] { st->s->devices().register_device(r); });
          st->s->db().after_commit([st, c](bool ok) {
            (ok ? st->acked : st->failed) += 1;
            st->ready.push_back(c);
          });
        };
        // As the router does: during a write pause (the WAL grew past truncate_pages) the
        // request waits, parked, until the TRUNCATE is done.
        if (!st->s->db().write_paused()) {
          work();
        } else if (!st->s->db().park(work)) {
          ++st->failed;
          st->ready.push_back(c);
        }
      }
      st->s->db().flush();
      if (st->acked + st->failed == kTotal) uv_idle_stop(h);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uv_close(reinterpret_cast<uv_handle_t*>(&st.idle), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    s.detach_loop();
    CHECK(st.acked == kTotal);
    CHECK(st.failed == 0);
    const auto& stats = s.db().stats();
    MESSAGE("64 closed-loop clients, uv syncer: ", static_cast<int64_t>(kTotal / secs), " registrations/s; ",
            stats.commits, " commits, ", stats.syncs, " fdatasyncs (",
            static_cast<double>(kTotal) / static_cast<double>(stats.syncs), " registrations per fsync); ",
            stats.write_pauses, " write pauses, ", stats.parked, " parked");
    CHECK(stats.busy_waits == 0);
    s.shutdown();
  }
  CHECK(uv_loop_close(&loop) == 0);
  CHECK(Peek(path).scalar("SELECT count(*) FROM devices") == kTotal);
}

}  // TEST_SUITE
