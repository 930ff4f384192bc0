// Schema migrations: version 2 (legacy devices clustered by server and identity) from a real v1
// database file built by the v1 SQL.
#include <doctest/doctest.h>

#include <sqlite3.h>

#include <climits>
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

// A version-1 database as a v1 binary left it: the v1 script, user_version 1, and rows of every
// shape (uuid- and id-keyed, an APNs token registered in upper case, realm set and unset).
void make_v1(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  raw_exec(db, "PRAGMA journal_mode=WAL");
  raw_exec(db, "BEGIN");
  raw_exec(db, std::string(migrations().at(0)));
  raw_exec(db, "PRAGMA user_version=1");
  raw_exec(db,
           "INSERT INTO servers (id, uuid, key_hash, hostname, contact_email, created_ms, last_updated_ms) VALUES "
           "(1, '11111111-1111-4111-8111-111111111111', 'h', 'a.example.org', 'a@example.org', 1, 1),"
           "(2, '22222222-2222-4222-8222-222222222222', 'h', 'b.example.org', 'b@example.org', 1, 1)");
  raw_exec(db,
           "INSERT INTO realms (id, server_id, uuid, created_ms, last_updated_ms) VALUES "
           "(7, 1, 'eeeeeeee-0000-4000-8000-00000000000e', 1, 1)");
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

TEST_CASE("schema: v1 devices migrate to the clustered v2 table with every column and both identities") {
  TempDir dir;
  const std::string path = dir.file("v1.db");
  make_v1(path);
  {
    Store s(path);
    CHECK(s.db().schema_version() == 2);
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
    CHECK(s.db().schema_version() == 2);
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

TEST_CASE("schema: v2 lookups descend the primary key once; dead tokens go through devices_by_token") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  const std::string lookup = plan_of(s, "SELECT kind FROM legacy_devices WHERE server_id = 1 AND identity = 42");
  CHECK_MESSAGE(lookup.find("USING PRIMARY KEY") != std::string::npos, lookup);
  const std::string dead =
      plan_of(s, "DELETE FROM legacy_devices WHERE kind = 1 AND token_norm = 'aa' AND registered_ms < 5");
  const bool by_token = dead.find("INDEX devices_by_token") != std::string::npos;
  CHECK_MESSAGE(by_token, dead);
}

}  // TEST_SUITE
