// Schema migrations: version 2 (legacy devices clustered by server and identity) from a real v1
// database file built by the v1 SQL; version 3 (legacy devices in a rowid table whose ids group an
// identity's rows) from a real v2 file built by the v1 and v2 SQL.
#include <doctest/doctest.h>

#include <sqlite3.h>

#include <climits>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include "store/schema.h"
#include "store/store.h"
#include "temp_dir.h"

using namespace aloha::store;
using aloha::store::test::Peek;
using aloha::store::test::TempDir;

namespace {

constexpr const char* kUser = "cccccccc-0000-4000-8000-00000000000c";

void raw_exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

// An old database as that version's binary left it, inside an open transaction: the first
// `version` migration scripts, user_version, two servers and a realm (id 7, server 1). The caller
// adds its devices, commits and closes.
sqlite3* open_old_version(const std::string& path, int version) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  raw_exec(db, "PRAGMA journal_mode=WAL");
  raw_exec(db, "BEGIN");
  for (int i = 0; i < version; ++i) raw_exec(db, std::string(migrations().at(static_cast<size_t>(i))));
  raw_exec(db, "PRAGMA user_version=" + std::to_string(version));
  raw_exec(db,
           "INSERT INTO servers (id, uuid, key_hash, hostname, contact_email, created_ms, last_updated_ms) VALUES "
           "(1, '11111111-1111-4111-8111-111111111111', 'h', 'a.example.org', 'a@example.org', 1, 1),"
           "(2, '22222222-2222-4222-8222-222222222222', 'h', 'b.example.org', 'b@example.org', 1, 1)");
  raw_exec(db,
           "INSERT INTO realms (id, server_id, uuid, created_ms, last_updated_ms) VALUES "
           "(7, 1, 'eeeeeeee-0000-4000-8000-00000000000e', 1, 1)");
  return db;
}

// A version-1 database as a v1 binary left it: the v1 script, user_version 1, and rows of every
// shape (uuid- and id-keyed, an APNs token registered in upper case, realm set and unset).
void make_v1(const std::string& path) {
  sqlite3* db = open_old_version(path, 1);
  raw_exec(db, std::string("INSERT INTO devices (id, server_id, kind, token, token_norm, ios_app_id, user_id, ") +
                   "user_uuid, realm_id, registered_ms) VALUES "
                   "(1, 1, 1, 'AABB01', 'aabb01', 'com.example.app', NULL, '" + kUser + "', 7, 1000),"
                   "(2, 1, 2, 'fcm-1', 'fcm-1', NULL, 42, NULL, NULL, 2000),"
                   "(3, 1, 1, 'aabb01', 'aabb01', 'com.example.app', 42, NULL, 7, 3000),"
                   "(4, 2, 2, 'fcm-1', 'fcm-1', NULL, 42, NULL, NULL, 4000),"
                   "(5, 1, 2, 'fcm-2', 'fcm-2', NULL, NULL, '" + kUser + "', NULL, 5000)");
  raw_exec(db, "COMMIT");
  REQUIRE(sqlite3_close(db) == SQLITE_OK);
}

// A version-2 database as a v2 binary left it: the v1 and v2 scripts, user_version 2, and rows of
// every shape straight in v2's legacy_devices: uuid- and id-keyed, several tokens per user, an APNs
// token registered in upper case, user_ids that share v3's bucket (5 and 5 + 2^28) or are
// negative, uuids that differ only in their last digit, realm set and unset.
void make_v2(const std::string& path) {
  sqlite3* db = open_old_version(path, 2);
  raw_exec(db,
           "INSERT INTO legacy_devices (server_id, identity, kind, token_norm, token, ios_app_id, realm_id, "
           "registered_ms) VALUES "
           "(1, 'cccccccc-0000-4000-8000-000000000001', 1, 'aabb01', 'AABB01', 'com.example.app', 7, 1000),"
           "(1, 'cccccccc-0000-4000-8000-000000000001', 2, 'fcm-2', NULL, NULL, NULL, 1100),"
           "(1, 'cccccccc-0000-4000-8000-000000000002', 2, 'fcm-3', NULL, NULL, NULL, 1200),"
           "(1, 5, 2, 'fcm-5a', NULL, NULL, NULL, 2000),"
           "(1, 5, 2, 'fcm-5b', NULL, NULL, NULL, 2100),"
           "(1, 268435461, 2, 'fcm-big', NULL, NULL, NULL, 2200),"
           "(1, -3, 1, 'aabb03', NULL, 'com.example.app', NULL, 2300),"
           "(2, 5, 2, 'fcm-5a', NULL, NULL, NULL, 3000)");
  raw_exec(db, "COMMIT");
  REQUIRE(sqlite3_close(db) == SQLITE_OK);
}

std::vector<std::string> keys_of(const std::vector<DeviceRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows)
    out.push_back(std::to_string(r.server_id) + "/" + std::to_string(r.kind) + ":" + r.token + "@" +
                  (r.user_uuid ? *r.user_uuid : std::to_string(*r.user_id)) + " t" + std::to_string(r.registered_ms));
  return out;
}

// The query plan of sql, one line per step ("SEARCH legacy_devices USING PRIMARY KEY (...)").
std::string plan_of(Store& s, const std::string& sql) {
  Stmt st(s.db().handle(), "EXPLAIN QUERY PLAN " + sql);
  auto u = st.use();
  std::string out;
  while (st.step()) out += st.col_text(3) + "\n";
  return out;
}

}  // namespace

TEST_SUITE("store") {

TEST_CASE("schema: v1 devices migrate (through v2) to the v3 table with every column and both identities") {
  TempDir dir;
  const std::string path = dir.file("v1.db");
  make_v1(path);
  {
    Store s(path);
    CHECK(s.db().schema_version() == 3);
    auto rows = s.devices().for_identity(1, 42, std::string_view(kUser));
    CHECK(keys_of(rows) == std::vector<std::string>{"1/1:AABB01@" + std::string(kUser) + " t1000",
                                                   "1/2:fcm-2@" + std::string(kUser) + " t5000",
                                                   "1/1:aabb01@42 t3000", "1/2:fcm-1@42 t2000"});
    REQUIRE(rows.size() == 4);
    CHECK(rows[0].ios_app_id == "com.example.app");
    CHECK(rows[0].realm_id == 7);
    CHECK_FALSE(rows[1].ios_app_id);
    CHECK_FALSE(rows[1].realm_id);
    CHECK(s.devices().for_identity(2, 42, std::nullopt).size() == 1);
    // The registered spelling is stored only where it differs from token_norm.
    Peek peek(path);
    CHECK(peek.scalar("SELECT count(*) FROM legacy_devices") == 5);
    CHECK(peek.scalar("SELECT count(*) FROM legacy_devices WHERE token IS NOT NULL") == 1);
    CHECK(peek.scalar("SELECT count(*) FROM legacy_devices WHERE typeof(identity) = 'text'") == 2);
    // v1's objects are gone; the view keeps v1's columns for SQL written against them.
    CHECK(peek.scalar("SELECT count(*) FROM sqlite_master WHERE name IN ('devices_by_uuid', 'devices_by_user_id')") == 0);
    CHECK(peek.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = 'devices'") == 1);
    CHECK(peek.scalar("SELECT count(*) FROM devices WHERE user_id = 42 AND user_uuid IS NULL") == 3);
    CHECK(peek.scalar(std::string("SELECT count(*) FROM devices WHERE user_uuid = '") + kUser + "'") == 2);
    CHECK(peek.scalar("SELECT count(*) FROM devices WHERE token = 'AABB01' AND token_norm = 'aabb01'") == 1);
    CHECK(peek.scalar("SELECT count(*) FROM pragma_foreign_key_check") == 0);
  }
  {
    // Re-opening runs no migration again; the migrated rows behave as new ones.
    Store s(path);
    CHECK(s.db().schema_version() == 3);
    CHECK(s.devices().delete_dead(kKindApns, "AABB01", INT64_MAX) == 2);
    DeviceRegistration r;
    r.server_id = 1;
    r.kind = kKindFcm;
    r.token = "fcm-1";
    r.user_id = 42;
    r.now_ms = 9000;
    CHECK(s.devices().register_device(r).outcome == RegisterOutcome::refreshed);
    CHECK(s.devices().find_for_test(1, kKindFcm, "fcm-1", 42, std::nullopt)->registered_ms == 9000);
    // The foreign keys keep v1's semantics: a realm's deletion unsets realm_id, a server's
    // deletion takes its devices.
    r.token = "fcm-3";
    r.realm_id = 7;
    s.devices().register_device(r);
    s.db().write([&] { s.db().exec("DELETE FROM realms WHERE id = 7"); });
    CHECK_FALSE(s.devices().find_for_test(1, kKindFcm, "fcm-3", 42, std::nullopt)->realm_id);
    s.db().write([&] { s.db().exec("DELETE FROM servers WHERE id = 1"); });
    s.db().flush();
    CHECK(Peek(path).scalar("SELECT count(*) FROM legacy_devices") == 1);
    CHECK(Peek(path).scalar("SELECT count(*) FROM legacy_devices WHERE server_id = 2") == 1);
  }
}

TEST_CASE("schema: v2 devices migrate to v3 ids that legacy_device_id_range finds, every row and column kept") {
  TempDir dir;
  const std::string path = dir.file("v2.db");
  make_v2(path);
  const std::string u1 = "cccccccc-0000-4000-8000-000000000001";
  const std::string u2 = "cccccccc-0000-4000-8000-000000000002";
  {
    Store s(path);
    CHECK(s.db().schema_version() == 3);
    // Found through the C++ ranges: the migration's SQL buckets agree with legacy_device_id_range.
    CHECK(keys_of(s.devices().for_identity(1, std::nullopt, std::string_view(u1))) ==
          std::vector<std::string>{"1/1:AABB01@" + u1 + " t1000", "1/2:fcm-2@" + u1 + " t1100"});
    CHECK(keys_of(s.devices().for_identity(1, std::nullopt, std::string_view(u2))) ==
          std::vector<std::string>{"1/2:fcm-3@" + u2 + " t1200"});
    CHECK(keys_of(s.devices().for_identity(1, 5, std::nullopt)) ==
          std::vector<std::string>{"1/2:fcm-5a@5 t2000", "1/2:fcm-5b@5 t2100"});
    CHECK(keys_of(s.devices().for_identity(1, 268435461, std::nullopt)) ==
          std::vector<std::string>{"1/2:fcm-big@268435461 t2200"});
    CHECK(keys_of(s.devices().for_identity(1, -3, std::nullopt)) == std::vector<std::string>{"1/1:aabb03@-3 t2300"});
    CHECK(keys_of(s.devices().for_identity(2, 5, std::nullopt)) == std::vector<std::string>{"2/2:fcm-5a@5 t3000"});
    auto uuid_rows = s.devices().for_identity(1, std::nullopt, std::string_view(u1));
    REQUIRE(uuid_rows.size() == 2);
    CHECK(uuid_rows[0].ios_app_id == "com.example.app");
    CHECK(uuid_rows[0].realm_id == 7);
    CHECK_FALSE(uuid_rows[1].realm_id);

    Peek peek(path);
    CHECK(peek.scalar("SELECT count(*) FROM legacy_devices") == 8);
    CHECK(peek.scalar("SELECT count(*) FROM legacy_devices WHERE id >> 40 <> server_id") == 0);
    // Every row sits in its identity's range, as the C++ computes it.
    for (const auto& [server, uid, uuid] : std::vector<std::tuple<int64_t, std::optional<int64_t>, std::string>>{
             {1, std::nullopt, u1}, {1, std::nullopt, u2}, {1, 5, ""}, {1, 268435461, ""}, {1, -3, ""}, {2, 5, ""}}) {
      auto r = legacy_device_id_range(server, uid, uuid);
      REQUIRE(r);
      const std::string ident = uid ? std::to_string(*uid) : "'" + uuid + "'";
      CHECK(peek.scalar("SELECT count(*) FROM legacy_devices WHERE server_id = " + std::to_string(server) +
                        " AND identity = " + ident + " AND id NOT BETWEEN " + std::to_string(r->lo) + " AND " +
                        std::to_string(r->hi)) == 0);
    }
    // 5 and 5 + 2^28 share a bucket: one range, distinct seqs.
    CHECK(peek.scalar("SELECT count(DISTINCT id >> 12) FROM legacy_devices WHERE server_id = 1 AND identity IN (5, 268435461)") == 1);
    CHECK(peek.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'legacy_devices_v3'") == 0);
    CHECK(peek.scalar("SELECT count(*) FROM devices WHERE token = 'AABB01' AND token_norm = 'aabb01'") == 1);
    CHECK(peek.scalar("SELECT count(*) FROM devices WHERE user_id = 5") == 3);
    CHECK(peek.scalar("SELECT count(*) FROM pragma_foreign_key_check") == 0);
  }
  {
    // The migrated rows behave as new ones: refreshed in place, appended after, deleted as dead.
    Store s(path);
    CHECK(s.db().schema_version() == 3);
    DeviceRegistration r;
    r.server_id = 1;
    r.kind = kKindFcm;
    r.token = "fcm-5b";
    r.user_id = 5;
    r.now_ms = 9000;
    CHECK(s.devices().register_device(r).outcome == RegisterOutcome::refreshed);
    r.token = "fcm-5c";
    CHECK(s.devices().register_device(r).outcome == RegisterOutcome::created);
    CHECK(keys_of(s.devices().for_identity(1, 5, std::nullopt)) ==
          std::vector<std::string>{"1/2:fcm-5a@5 t2000", "1/2:fcm-5b@5 t9000", "1/2:fcm-5c@5 t9000"});
    CHECK(s.devices().delete_dead(kKindApns, "AABB01", INT64_MAX) == 1);
    CHECK(s.devices().for_identity(1, std::nullopt, std::string_view(u1)).size() == 1);
    s.db().write([&] { s.db().exec("DELETE FROM servers WHERE id = 1"); });
    s.db().flush();
    CHECK(Peek(path).scalar("SELECT count(*) FROM legacy_devices") == 1);
  }
}

TEST_CASE("schema: v3 lookups descend the rowid B-tree by the identity's id range; dead tokens go through devices_by_token") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  const std::string lookup =
      plan_of(s, "SELECT kind FROM legacy_devices WHERE id BETWEEN ?7 AND ?8 AND server_id = ?1 AND identity = ?2");
  CHECK_MESSAGE(lookup.find("USING INTEGER PRIMARY KEY") != std::string::npos, lookup);
  const std::string dead =
      plan_of(s, "DELETE FROM legacy_devices WHERE kind = 1 AND token_norm = 'aa' AND registered_ms < 5");
  const bool by_token = dead.find("INDEX devices_by_token") != std::string::npos;
  CHECK_MESSAGE(by_token, dead);
}

}  // TEST_SUITE
