// Database: open, pragmas, migrations and group commit.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "store/store.h"
#include "temp_dir.h"

using namespace aloha::store;
using aloha::store::test::Peek;
using aloha::store::test::TempDir;

namespace {

int64_t add_server(Store& s, const std::string& uuid, const std::string& host, int64_t now = 1000) {
  return s.servers().insert(uuid, "hash-" + uuid, host, "admin@" + host, now);
}

std::string pragma(Database& db, const char* sql) {
  Stmt s(db.handle(), sql);
  auto u = s.use();
  return s.step() ? s.col_text(0) : "";
}

}  // namespace

TEST_SUITE("store") {

TEST_CASE("db: open creates missing parent directories with mode 0700 and migrates to the latest version") {
  TempDir dir;
  std::string path = dir.file("a/b/c/bouncer.db");
  {
    auto db = Database::open(path);
    CHECK(db->schema_version() == Database::latest_schema_version());
    CHECK(Database::latest_schema_version() >= 1);
    CHECK(pragma(*db, "PRAGMA journal_mode") == "wal");
    // NORMAL: COMMIT does not fsync; durability comes from the store's own WAL fdatasync.
    CHECK(pragma(*db, "PRAGMA synchronous") == "1");
    CHECK(pragma(*db, "PRAGMA foreign_keys") == "1");
    for (const char* t : {"servers", "server_audit", "realms", "legacy_devices", "e2ee_devices", "realm_counts",
                          "installation_counts", "realm_audit_log", "push_counters"}) {
      Stmt s(db->handle(), std::string("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='") + t + "'");
      auto u = s.use();
      REQUIRE(s.step());
      CHECK_MESSAGE(s.col_int(0) == 1, t);
    }
  }
  for (const char* d : {"a", "a/b", "a/b/c"}) {
    struct stat st {};
    REQUIRE(::stat(dir.file(d).c_str(), &st) == 0);
    CHECK_MESSAGE((st.st_mode & 0777) == 0700, d);
  }
}

TEST_CASE("db: re-opening is idempotent and keeps committed data") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  int64_t id = 0;
  {
    Store s(path);
    id = add_server(s, "11111111-1111-4111-8111-111111111111", "chat.example.org");
    s.shutdown();
  }
  {
    Store s(path);
    CHECK(s.db().schema_version() == Database::latest_schema_version());
    auto row = s.servers().find_by_uuid("11111111-1111-4111-8111-111111111111");
    REQUIRE(row);
    CHECK(row->id == id);
    CHECK(row->hostname == "chat.example.org");
    CHECK(s.integrity_ok());
  }
}

TEST_CASE("db: a schema version newer than the program is refused with a clear StoreError") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  {
    auto db = Database::open(path);
    db->exec("PRAGMA user_version=" + std::to_string(Database::latest_schema_version() + 5));
  }
  try {
    Database::open(path);
    FAIL("open succeeded");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("newer") != std::string::npos);
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
}

TEST_CASE("db: a parent that is a file gives a StoreError naming the path") {
  TempDir dir;
  { std::ofstream(dir.file("plain")) << "x"; }
  std::string path = dir.file("plain/sub/bouncer.db");
  try {
    Database::open(path);
    FAIL("open succeeded");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("plain/sub") != std::string::npos);
  }
}

TEST_CASE("db: a file that is not a database gives a StoreError") {
  TempDir dir;
  std::string path = dir.file("garbage.db");
  { std::ofstream(path) << std::string(8192, 'z'); }
  CHECK_THROWS_AS(Database::open(path), StoreError);
}

TEST_CASE("group commit: writes are invisible to others until flush, then all visible at once") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  Store s(path);
  Peek peek(path);
  CHECK_FALSE(s.db().batch_open());
  add_server(s, "11111111-1111-4111-8111-111111111111", "a.example.org");
  CHECK(s.db().batch_open());
  add_server(s, "22222222-2222-4222-8222-222222222222", "b.example.org");
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 0);
  s.db().flush();
  CHECK_FALSE(s.db().batch_open());
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 2);
  CHECK(s.db().stats().commits == 1);
}

TEST_CASE("group commit: a throwing write is rolled back, other writes of the batch are kept") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  Store s(path);
  add_server(s, "11111111-1111-4111-8111-111111111111", "a.example.org");
  struct Boom {};
  CHECK_THROWS_AS(s.db().write([&] {
    add_server(s, "22222222-2222-4222-8222-222222222222", "b.example.org");
    throw Boom{};
  }), Boom);
  // A constraint failure inside write() is a StoreError and only undoes that write.
  CHECK_THROWS_AS(add_server(s, "11111111-1111-4111-8111-111111111111", "c.example.org"), StoreError);
  add_server(s, "33333333-3333-4333-8333-333333333333", "d.example.org");
  bool ok = false;
  s.db().after_commit([&](bool r) { ok = r; });
  s.db().flush();
  CHECK(ok);
  Peek peek(path);
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 2);
  CHECK(peek.scalar("SELECT count(*) FROM servers WHERE hostname = 'b.example.org'") == 0);
  CHECK(peek.scalar("SELECT count(*) FROM servers WHERE hostname = 'd.example.org'") == 1);
  CHECK(s.db().stats().rolled_back_writes >= 2);
}

TEST_CASE("group commit: a nested write that throws undoes only itself") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  s.db().write([&] {
    add_server(s, "11111111-1111-4111-8111-111111111111", "a.example.org");
    try {
      s.db().write([&] {
        add_server(s, "22222222-2222-4222-8222-222222222222", "b.example.org");
        throw std::runtime_error("inner");
      });
    } catch (const std::runtime_error&) {
    }
  });
  s.db().flush();
  CHECK(s.servers().find_by_uuid("11111111-1111-4111-8111-111111111111"));
  CHECK_FALSE(s.servers().find_by_uuid("22222222-2222-4222-8222-222222222222"));
}

TEST_CASE("group commit: after_commit callbacks run only at flush, in order, with ok=true") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  std::vector<std::string> seen;
  add_server(s, "11111111-1111-4111-8111-111111111111", "a.example.org");
  s.db().after_commit([&](bool ok) { seen.push_back(std::string("a") + (ok ? "+" : "-")); });
  add_server(s, "22222222-2222-4222-8222-222222222222", "b.example.org");
  s.db().after_commit([&](bool ok) { seen.push_back(std::string("b") + (ok ? "+" : "-")); });
  s.db().after_commit([&](bool ok) { seen.push_back(std::string("c") + (ok ? "+" : "-")); });
  CHECK(seen.empty());
  CHECK(s.db().queued_callbacks() == 3);
  s.db().flush();
  CHECK(seen == std::vector<std::string>{"a+", "b+", "c+"});
  CHECK(s.db().queued_callbacks() == 0);
  s.db().flush();  // nothing queued: nothing runs twice
  CHECK(seen.size() == 3);
}

TEST_CASE("group commit: a callback queued while no batch is open still runs at the next flush") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int calls = 0;
  bool result = false;
  s.db().after_commit([&](bool ok) { ++calls; result = ok; });
  CHECK_FALSE(s.db().batch_open());
  s.db().flush();
  CHECK(calls == 1);
  CHECK(result);
  CHECK(s.db().stats().commits == 0);
}

TEST_CASE("group commit: a failed commit reports ok=false to every callback and keeps nothing") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  Store s(path);
  // A deferred foreign key is checked at COMMIT only: the way to make a commit fail on demand.
  s.db().exec("CREATE TABLE probe (server_id INTEGER REFERENCES servers(id) DEFERRABLE INITIALLY DEFERRED)");
  std::vector<int> results;
  add_server(s, "11111111-1111-4111-8111-111111111111", "a.example.org");
  s.db().after_commit([&](bool ok) { results.push_back(ok ? 1 : 0); });
  s.db().write([&] { s.db().exec("INSERT INTO probe VALUES (4242)"); });
  s.db().after_commit([&](bool ok) { results.push_back(ok ? 1 : 0); });
  s.db().flush();
  CHECK(results == std::vector<int>{0, 0});
  CHECK(s.db().stats().failed_commits == 1);
  CHECK_FALSE(s.db().batch_open());
  Peek peek(path);
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 0);
  CHECK(peek.scalar("SELECT count(*) FROM probe") == 0);
  // The next batch starts clean and commits.
  add_server(s, "22222222-2222-4222-8222-222222222222", "b.example.org");
  bool ok = false;
  s.db().after_commit([&](bool r) { ok = r; });
  s.db().flush();
  CHECK(ok);
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 1);
}

TEST_CASE("group commit: a batch past max_batch_writes commits early; callbacks still wait for flush") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  StoreOptions opts;
  opts.db.max_batch_writes = 3;
  Store s(path, opts);
  Peek peek(path);
  std::vector<int> order;
  for (int i = 0; i < 7; ++i) {
    char uuid[40], host[40];
    std::snprintf(uuid, sizeof uuid, "%08d-1111-4111-8111-111111111111", i);
    std::snprintf(host, sizeof host, "h%d.example.org", i);
    add_server(s, uuid, host);
    s.db().after_commit([&order, i](bool ok) { order.push_back(ok ? i : -1); });
  }
  CHECK(s.db().stats().commits == 2);  // after writes 3 and 6
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 6);
  CHECK(order.empty());
  s.db().flush();
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5, 6});
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 7);
}

TEST_CASE("group commit: writes made by callbacks are committed within the same flush") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  Store s(path);
  Peek peek(path);
  bool second = false;
  s.db().after_commit([&](bool) {
    add_server(s, "11111111-1111-4111-8111-111111111111", "a.example.org");
    s.db().after_commit([&](bool ok) { second = ok; });
  });
  s.db().flush();
  CHECK(second);
  CHECK_FALSE(s.db().batch_open());
  CHECK(peek.scalar("SELECT count(*) FROM servers") == 1);
}

TEST_CASE("group commit: a callback that throws does not stop the others") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int ran = 0;
  s.db().after_commit([&](bool) { throw std::runtime_error("bad callback"); });
  s.db().after_commit([&](bool) { ++ran; });
  s.db().flush();
  CHECK(ran == 1);
}

TEST_CASE("store: health answers true on a working database; integrity_check is ok") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  CHECK(s.health());
  CHECK(s.integrity_ok());
}

TEST_CASE("store: maintenance commits the open batch and checkpoints the WAL (inline without a loop)") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  Store s(path);
  int64_t id = add_server(s, "11111111-1111-4111-8111-111111111111", "a.example.org");
  bool ok = false;
  s.db().after_commit([&](bool r) { ok = r; });
  s.maintenance();
  CHECK_FALSE(s.db().batch_open());
  CHECK_FALSE(ok);  // callbacks wait for flush
  Peek peek(path);
  CHECK(peek.scalar("SELECT count(*) FROM servers WHERE id = " + std::to_string(id)) == 1);
  CheckpointResult r = s.db().checkpoint_passive();
  CHECK(r.ok);
  CHECK(r.wal_frames > 0);
  CHECK(r.checkpointed_frames == r.wal_frames);
  s.db().flush();
  CHECK(ok);
}

TEST_CASE("db: the page cache of the loop connection has the configured size (KiB)") {
  TempDir dir;
  DatabaseOptions opts;
  opts.cache_kb = 256;
  auto db = Database::open(dir.file("bouncer.db"), opts);
  CHECK(pragma(*db, "PRAGMA cache_size") == "-256");
  auto d2 = Database::open(dir.file("other.db"));
  std::string want = "-";
  want += std::to_string(DatabaseOptions{}.cache_kb);
  CHECK(pragma(*d2, "PRAGMA cache_size") == want);
}

TEST_CASE("store: release_memory empties the page cache; the next reads miss, then hit again") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  for (int i = 0; i < 50; ++i) {
    std::string n = std::to_string(10 + i);
    std::string uuid = "11111111-1111-4111-8111-1111111111";
    uuid += n;
    std::string host = "h";
    host += n;
    host += ".example.org";
    add_server(s, uuid, host);
  }
  s.db().flush();
  CHECK(pragma(s.db(), "SELECT count(*) FROM servers") == "50");
  CacheStats before = s.db().cache_stats();
  CHECK(before.used_bytes > 0);
  CHECK(s.db().release_memory() > 0);
  CacheStats after = s.db().cache_stats();
  CHECK(after.used_bytes < before.used_bytes);
  // The data is all still there: re-read from the file (cache misses), then from the cache.
  CHECK(pragma(s.db(), "SELECT count(*) FROM servers") == "50");
  CacheStats reread = s.db().cache_stats();
  CHECK(reread.misses > after.misses);
  CHECK(pragma(s.db(), "SELECT count(*) FROM servers") == "50");
  CHECK(s.db().cache_stats().hits > reread.hits);
  CHECK(s.db().cache_stats().misses == reread.misses);
  // Maintenance releases too, and the checkpoint connection keeps working afterwards.
  add_server(s, "22222222-2222-4222-8222-222222222222", "z.example.org");
  s.maintenance();
  CHECK(s.db().cache_stats().used_bytes < before.used_bytes);
  CHECK(s.db().checkpoint_passive().ok);
  CHECK(s.integrity_ok());
}

TEST_CASE("db: SQLite's allocations for a write and a dead-token deletion stay below the 64 KB mmap threshold") {
  // configure_sqlite() must run before SQLite initialises: Database's constructor calls it, and
  // the first one of this process ran before any test opened SQLite another way.
  REQUIRE(configure_sqlite());
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t server = add_server(s, "33333333-3333-4333-8333-333333333333", "m.example.org");
  s.db().flush();
  for (int i = 0; i < 200; ++i) {
    DeviceRegistration r;
    r.server_id = server;
    r.kind = kKindApns;
    r.token = "410" + std::to_string(100000 + i);
    r.user_id = i;
    r.now_ms = 1000;
    s.db().write([&] { s.devices().register_device(r); });
  }
  s.db().flush();
  s.db().release_memory();  // an emptied page cache allocated its bulk block again on reuse
  int cur = 0, largest = 0;
  sqlite3_status(SQLITE_STATUS_MALLOC_SIZE, &cur, &largest, 1);
  // Without configure_sqlite(): an ~86 KB page-cache block for the DELETE's ephemeral table and for
  // the emptied cache, and a 64 KB statement-journal chunk for the SAVEPOINT. glibc serves each
  // with an mmap (the app fixes its threshold at 64 KB): page faults and an munmap per deletion.
  CHECK(s.devices().delete_dead(kKindApns, "410100007", INT64_MAX) == 1);
  CHECK(s.devices().for_identity(server, 150, std::nullopt).size() == 1);
  s.db().flush();
  sqlite3_status(SQLITE_STATUS_MALLOC_SIZE, &cur, &largest, 0);
  CHECK(largest > 4096);  // the statistics work: a page was allocated
  CHECK(largest < 64 * 1024);
}

}  // TEST_SUITE
