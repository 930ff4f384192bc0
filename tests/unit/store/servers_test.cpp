// Servers, Audit, Realms and Counters repositories.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "store/store.h"
#include "temp_dir.h"

using namespace aloha::store;
using aloha::store::test::Peek;
using aloha::store::test::TempDir;

namespace {
constexpr const char* kU1 = "11111111-1111-4111-8111-111111111111";
constexpr const char* kU2 = "22222222-2222-4222-8222-222222222222";
}  // namespace

TEST_SUITE("store") {

TEST_CASE("servers: insert then find by uuid and by active hostname returns every field") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t id = s.servers().insert(kU1, "khash", "chat.example.org", "ops@example.org", 5000);
  auto row = s.servers().find_by_uuid(kU1);
  REQUIRE(row);
  CHECK(row->id == id);
  CHECK(row->uuid == kU1);
  CHECK(row->key_hash == "khash");
  CHECK(row->hostname == "chat.example.org");
  CHECK(row->contact_email == "ops@example.org");
  CHECK(row->created_ms == 5000);
  CHECK(row->last_updated_ms == 5000);
  CHECK(row->last_request_ms == 0);
  CHECK_FALSE(row->deactivated);
  CHECK_FALSE(row->version);
  CHECK_FALSE(row->merge_base);
  CHECK_FALSE(row->api_feature_level);
  auto by_host = s.servers().find_active_by_hostname("chat.example.org");
  REQUIRE(by_host);
  CHECK(by_host->id == id);
  CHECK(s.servers().find_by_id(id)->uuid == kU1);
}

TEST_CASE("servers: uuid and hostname lookups are exact and case-sensitive") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  s.servers().insert(kU1, "k", "chat.example.org", "ops@example.org", 1);
  CHECK_FALSE(s.servers().find_by_uuid("11111111-1111-4111-8111-11111111111A"));
  CHECK_FALSE(s.servers().find_by_uuid("11111111-1111-4111-8111-11111111111"));
  CHECK_FALSE(s.servers().find_active_by_hostname("Chat.example.org"));
  CHECK_FALSE(s.servers().find_active_by_hostname("chat.example.org."));
}

TEST_CASE("servers: a deactivated registration holds no hostname; two active holders are refused") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t a = s.servers().insert(kU1, "k", "chat.example.org", "ops@example.org", 1);
  try {
    s.servers().insert(kU2, "k", "chat.example.org", "ops@example.org", 2);
    FAIL("second active holder accepted");
  } catch (const StoreError& e) {
    CHECK(e.is_constraint());
  }
  s.servers().deactivate(a, 3);
  auto row = s.servers().find_by_uuid(kU1);
  REQUIRE(row);
  CHECK(row->deactivated);
  CHECK(row->last_updated_ms == 3);
  CHECK_FALSE(s.servers().find_active_by_hostname("chat.example.org"));
  int64_t b = s.servers().insert(kU2, "k", "chat.example.org", "ops@example.org", 4);
  CHECK(s.servers().find_active_by_hostname("chat.example.org")->id == b);
}

TEST_CASE("servers: update_registration sets hostname and email, and the key only when given") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t id = s.servers().insert(kU1, "old-key", "a.example.org", "a@example.org", 1);
  s.servers().update_registration(id, "b.example.org", "b@example.org", std::nullopt, 10);
  auto row = s.servers().find_by_id(id);
  CHECK(row->hostname == "b.example.org");
  CHECK(row->contact_email == "b@example.org");
  CHECK(row->key_hash == "old-key");
  CHECK(row->last_updated_ms == 10);
  CHECK(row->created_ms == 1);
  s.servers().update_registration(id, "b.example.org", "b@example.org", std::string_view("new-key"), 20);
  CHECK(s.servers().find_by_id(id)->key_hash == "new-key");
  s.servers().set_key_hash(id, "newer-key", 30);
  row = s.servers().find_by_id(id);
  CHECK(row->key_hash == "newer-key");
  CHECK(row->last_updated_ms == 30);
  CHECK_THROWS_AS(s.servers().update_registration(id + 100, "x.example.org", "x@example.org", std::nullopt, 1),
                  StoreError);
  CHECK_THROWS_AS(s.servers().deactivate(id + 100, 1), StoreError);
}

TEST_CASE("servers: set_version_info stores all three, an absent one as null") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t id = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  s.servers().set_version_info(id, std::string_view("9.1"), std::string_view("abc"), int64_t{310}, 2);
  auto row = s.servers().find_by_id(id);
  CHECK(row->version == "9.1");
  CHECK(row->merge_base == "abc");
  CHECK(row->api_feature_level == 310);
  s.servers().set_version_info(id, std::string_view("9.2"), std::nullopt, std::nullopt, 3);
  row = s.servers().find_by_id(id);
  CHECK(row->version == "9.2");
  CHECK_FALSE(row->merge_base);
  CHECK_FALSE(row->api_feature_level);
}

TEST_CASE("servers: touch_last_request writes behind, at most once per interval") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  StoreOptions opts;
  opts.touch_interval_ms = 60'000;
  Store s(path, opts);
  int64_t id = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  s.db().flush();
  Peek peek(path);
  auto stored = [&] { return peek.scalar("SELECT last_request_ms FROM servers WHERE id = " + std::to_string(id)); };

  s.servers().touch_last_request(id, 100'000);  // first touch after start: written at once
  s.db().flush();
  CHECK(stored() == 100'000);
  uint64_t writes = s.db().stats().writes;
  for (int i = 1; i <= 50; ++i) s.servers().touch_last_request(id, 100'000 + i * 1000);
  CHECK(s.db().stats().writes == writes);  // no write per request
  CHECK_FALSE(s.db().batch_open());
  s.db().flush();
  CHECK(stored() == 100'000);
  CHECK(s.servers().find_by_uuid(kU1)->last_request_ms == 150'000);  // memory overlays the row
  CHECK(s.servers().pending_touches() == 1);

  s.servers().touch_last_request(id, 160'000);  // a full interval after the last write
  s.db().flush();
  CHECK(stored() == 160'000);
  CHECK(s.servers().pending_touches() == 0);

  s.servers().touch_last_request(id, 170'000);
  CHECK(s.servers().pending_touches() == 1);
  s.servers().write_pending_touches();
  s.db().flush();
  CHECK(stored() == 170'000);
  // Time going backwards never lowers the stored value.
  s.servers().touch_last_request(id, 10);
  s.servers().write_pending_touches();
  s.db().flush();
  CHECK(stored() == 170'000);
}

TEST_CASE("servers: the store writes pending touches when it closes") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  int64_t id = 0;
  {
    Store s(path);
    id = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
    s.servers().touch_last_request(id, 100'000);
    s.servers().touch_last_request(id, 120'000);
    s.shutdown();
  }
  Store s(path);
  CHECK(s.servers().find_by_id(id)->last_request_ms == 120'000);
}

TEST_CASE("servers: find_for_auth serves repeated lookups from its cache; unknown ids are not cached") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t id = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  s.db().flush();
  auto a = s.servers().find_for_auth(kU1);
  REQUIRE(a);
  CHECK(a->id == id);
  CHECK(a->key_hash == "k");
  CHECK(s.servers().find_for_auth(kU1) == a);  // the same shared row: no second lookup
  CHECK(s.servers().find_for_auth(kU2) == nullptr);
  CHECK(s.servers().auth_cache_size() == 1);
  // A server registered after a miss is found at once.
  s.servers().insert(kU2, "k2", "b.example.org", "b@example.org", 2);
  s.db().flush();
  auto b = s.servers().find_for_auth(kU2);
  REQUIRE(b);
  CHECK(b->key_hash == "k2");
}

TEST_CASE("servers: a rotated key and a deactivation are seen by find_for_auth at once") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t id = s.servers().insert(kU1, "old-key", "a.example.org", "a@example.org", 1);
  s.db().flush();
  auto before = s.servers().find_for_auth(kU1);
  REQUIRE(before);
  CHECK(before->key_hash == "old-key");
  // Seen inside the batch that wrote it (as a plain lookup would), and after its commit.
  s.servers().set_key_hash(id, "new-key", 2);
  CHECK(s.servers().find_for_auth(kU1)->key_hash == "new-key");
  s.db().flush();
  CHECK(s.servers().find_for_auth(kU1)->key_hash == "new-key");
  CHECK(before->key_hash == "old-key");  // a holder's row is a snapshot, never changed under it
  s.servers().update_registration(id, "a.example.org", "a@example.org", std::string_view("newer-key"), 3);
  s.db().flush();
  CHECK(s.servers().find_for_auth(kU1)->key_hash == "newer-key");
  s.servers().update_registration(id, "c.example.org", "c@example.org", std::nullopt, 4);
  s.db().flush();
  CHECK(s.servers().find_for_auth(kU1)->hostname == "c.example.org");
  s.servers().set_version_info(id, std::string_view("9.1"), std::nullopt, int64_t{310}, 5);
  s.db().flush();
  CHECK(s.servers().find_for_auth(kU1)->api_feature_level == 310);
  CHECK_FALSE(s.servers().find_for_auth(kU1)->deactivated);
  s.servers().deactivate(id, 6);
  CHECK(s.servers().find_for_auth(kU1)->deactivated);
  s.db().flush();
  CHECK(s.servers().find_for_auth(kU1)->deactivated);
}

TEST_CASE("servers: a rolled-back server write leaves no stale row in the auth cache") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  Store s(path);
  int64_t id = s.servers().insert(kU1, "old-key", "a.example.org", "a@example.org", 1);
  s.db().flush();
  REQUIRE(s.servers().find_for_auth(kU1)->key_hash == "old-key");

  SUBCASE("the request's savepoint rolls back") {
    // The lookup inside the write sees the uncommitted key; it must not be kept.
    CHECK_THROWS_AS(s.db().write([&] {
      s.servers().set_key_hash(id, "rolled-back-key", 2);
      CHECK(s.servers().find_for_auth(kU1)->key_hash == "rolled-back-key");
      throw StoreError("request failed");
    }), StoreError);
    CHECK(s.servers().find_for_auth(kU1)->key_hash == "old-key");
    s.db().flush();
    CHECK(s.servers().find_for_auth(kU1)->key_hash == "old-key");
  }

  SUBCASE("the whole batch fails to commit") {
    // A deferred foreign key is checked at COMMIT only: the batch, key change included, is lost.
    s.db().exec("CREATE TABLE probe (server_id INTEGER REFERENCES servers(id) DEFERRABLE INITIALLY DEFERRED)");
    s.db().flush();
    s.servers().set_key_hash(id, "lost-key", 2);
    s.servers().deactivate(id, 2);
    s.db().write([&] { s.db().exec("INSERT INTO probe VALUES (4242)"); });
    auto inside = s.servers().find_for_auth(kU1);  // read inside the doomed batch
    CHECK(inside->key_hash == "lost-key");
    CHECK(inside->deactivated);
    s.db().flush();
    REQUIRE(s.db().stats().failed_commits == 1);
    auto after = s.servers().find_for_auth(kU1);
    CHECK(after->key_hash == "old-key");
    CHECK_FALSE(after->deactivated);
    Peek peek(path);
    CHECK(peek.scalar("SELECT deactivated FROM servers WHERE id = " + std::to_string(id)) == 0);
  }
}

TEST_CASE("servers: the auth cache stays within its bound") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  const size_t n = Servers::kAuthCacheMax + 10;
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) {
    char u[40], host[40];
    std::snprintf(u, sizeof u, "%08zx-1111-4111-8111-111111111111", i);
    std::snprintf(host, sizeof host, "h%zu.example.org", i);
    ids.emplace_back(u);
    s.servers().insert(ids.back(), "k", host, "a@example.org", 1);
  }
  s.db().flush();
  for (const auto& u : ids) {
    auto row = s.servers().find_for_auth(u);
    REQUIRE(row);
    CHECK(row->uuid == u);
    CHECK(s.servers().auth_cache_size() <= Servers::kAuthCacheMax);
  }
  CHECK(s.servers().auth_cache_size() >= 1);
}

TEST_CASE("audit: rows are added and listed newest first, bounded by the limit") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t a = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  int64_t b = s.servers().insert(kU2, "k", "b.example.org", "b@example.org", 1);
  s.audit().add(a, "server_created", 10, R"({"hostname":"a.example.org"})");
  s.audit().add(b, "server_created", 11, "");
  s.audit().add(a, "server_key_rotated", 12, "{}");
  s.audit().add(a, "server_deactivated", 13, "{}");
  auto rows = s.audit().recent(a, 2);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].event == "server_deactivated");
  CHECK(rows[1].event == "server_key_rotated");
  rows = s.audit().recent(a, 10);
  REQUIRE(rows.size() == 3);
  CHECK(rows[2].extra_json == R"({"hostname":"a.example.org"})");
  CHECK(rows[2].created_ms == 10);
  auto rb = s.audit().recent(b, 10);
  REQUIRE(rb.size() == 1);
  CHECK(rb[0].extra_json == "{}");
  CHECK_THROWS_AS(s.audit().add(9999, "x", 1, "{}"), StoreError);  // foreign key
}

TEST_CASE("realms: upsert creates and updates; a realm of another server is refused untouched") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t a = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  int64_t b = s.servers().insert(kU2, "k", "b.example.org", "b@example.org", 1);
  RealmRow r;
  r.server_id = a;
  r.uuid = "AAAAAAAA-0000-4000-8000-000000000001";
  r.remote_id = 7;
  r.host = "zulip.a.example.org";
  r.url = "https://zulip.a.example.org";
  r.name = "Team A";
  r.org_type = 10;
  r.date_created_ms = 1234;
  r.authentication_methods_json = R"({"Email":true})";
  auto id = s.realms().upsert(r, 100);
  REQUIRE(id);
  auto got = s.realms().find_by_uuid("aaaaaaaa-0000-4000-8000-000000000001");
  REQUIRE(got);
  CHECK(got->id == *id);
  CHECK(got->uuid == "aaaaaaaa-0000-4000-8000-000000000001");  // stored lowercase
  CHECK(got->server_id == a);
  CHECK(got->remote_id == 7);
  CHECK(got->name == "Team A");
  CHECK(got->url == "https://zulip.a.example.org");
  CHECK(got->org_type == 10);
  CHECK(got->date_created_ms == 1234);
  CHECK(got->authentication_methods_json == R"({"Email":true})");
  CHECK(got->created_ms == 100);
  CHECK(s.realms().find_by_uuid("AAAAAAAA-0000-4000-8000-000000000001"));  // any case finds it

  s.realms().set_locally_deleted(*id, true, 150);
  CHECK(s.realms().find_by_uuid(r.uuid)->locally_deleted);
  r.name = "Team A renamed";
  r.deactivated = true;
  auto id2 = s.realms().upsert(r, 200);
  REQUIRE(id2);
  CHECK(*id2 == *id);
  got = s.realms().find_by_uuid(r.uuid);
  CHECK(got->name == "Team A renamed");
  CHECK(got->deactivated);
  CHECK_FALSE(got->locally_deleted);
  CHECK(got->created_ms == 100);
  CHECK(got->last_updated_ms == 200);

  RealmRow other = r;
  other.server_id = b;
  other.name = "hijack";
  CHECK_FALSE(s.realms().upsert(other, 300));
  got = s.realms().find_by_uuid(r.uuid);
  CHECK(got->server_id == a);
  CHECK(got->name == "Team A renamed");
  CHECK(s.realms().for_server(a, 10).size() == 1);
  CHECK(s.realms().for_server(b, 10).empty());
}

TEST_CASE("realms: owner_of gives find_by_uuid's id and server, any case; unknown: nullopt") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t a = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  RealmRow r;
  r.server_id = a;
  r.uuid = "aaaaaaaa-0000-4000-8000-00000000000b";
  int64_t realm = *s.realms().upsert(r, 1);
  s.db().flush();
  auto o = s.realms().owner_of("AAAAAAAA-0000-4000-8000-00000000000B");
  REQUIRE(o);
  CHECK(o->id == realm);
  CHECK(o->server_id == a);
  CHECK(o->id == s.realms().find_by_uuid(r.uuid)->id);
  CHECK_FALSE(s.realms().owner_of("aaaaaaaa-0000-4000-8000-00000000000c"));
  CHECK_FALSE(s.realms().owner_of(std::string(100, 'A')));  // longer than the stack buffer
}

TEST_CASE("realms: owner_of's cache answers repeats, sees a realm created after a miss, never keeps a rolled-back one") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  Store s(path);
  int64_t a = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  s.db().flush();
  const std::string uuid = "aaaaaaaa-0000-4000-8000-0000000000c1";
  // A miss is cached too: the row appearing behind the cache's back (not through Realms) is not seen.
  CHECK_FALSE(s.realms().owner_of(uuid));
  CHECK(s.realms().owner_cache_size() == 1);
  s.db().exec("INSERT INTO realms (server_id, uuid, created_ms, last_updated_ms) VALUES (" + std::to_string(a) + ", '" + uuid + "', 1, 1)");
  CHECK_FALSE(s.realms().owner_of(uuid));
  s.db().exec("DELETE FROM realms");

  // A realm written through Realms empties the cache; while its batch is open lookups read through.
  RealmRow r;
  r.server_id = a;
  r.uuid = uuid;
  int64_t realm = *s.realms().upsert(r, 1);
  CHECK(s.realms().owner_cache_size() == 0);
  auto o = s.realms().owner_of(uuid);
  REQUIRE(o);
  CHECK(o->id == realm);
  CHECK(s.realms().owner_cache_size() == 0);  // not cached while the batch may roll back
  s.db().flush();
  CHECK(s.realms().owner_of(uuid)->id == realm);
  CHECK(s.realms().owner_cache_size() == 1);

  // A realm created in a batch that is then lost is not kept by the cache.
  s.db().exec("CREATE TABLE probe (server_id INTEGER REFERENCES servers(id) DEFERRABLE INITIALLY DEFERRED)");
  const std::string other = "aaaaaaaa-0000-4000-8000-0000000000c2";
  CHECK_FALSE(s.realms().owner_of(other));
  RealmRow r2;
  r2.server_id = a;
  r2.uuid = other;
  REQUIRE(s.realms().upsert(r2, 1));
  CHECK(s.realms().owner_of(other));                               // seen inside the open batch
  s.db().write([&] { s.db().exec("INSERT INTO probe VALUES (4242)"); });  // the commit will fail
  s.db().flush();
  CHECK(s.db().stats().failed_commits == 1);
  CHECK_FALSE(s.realms().owner_of(other));
  CHECK(s.realms().owner_of(uuid)->id == realm);
}

TEST_CASE("counters: add accumulates per server, realm (or none), property and day") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t a = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  RealmRow r;
  r.server_id = a;
  r.uuid = "aaaaaaaa-0000-4000-8000-000000000001";
  int64_t realm = *s.realms().upsert(r, 1);
  s.db().flush();
  const int64_t day = 1'767'312'000;
  s.counters().add(a, std::nullopt, "mobile_pushes_received::day", day, 3);
  s.counters().add(a, std::nullopt, "mobile_pushes_received::day", day, 4);
  s.counters().add(a, realm, "mobile_pushes_received::day", day, 5);
  s.counters().add(a, realm, "mobile_pushes_received::day", day, 1);
  s.counters().add(a, std::nullopt, "mobile_pushes_forwarded::day", day, 2);
  s.counters().add(a, std::nullopt, "mobile_pushes_received::day", day + 86400, 1);
  CHECK_FALSE(s.db().batch_open());  // written behind: no transaction per notify
  CHECK(s.counters().pending() == 4);
  CHECK(s.counters().get(a, std::nullopt, "mobile_pushes_received::day", day) == 7);  // pending counts
  Peek peek(s.db().path());
  CHECK(peek.scalar("SELECT count(*) FROM push_counters") == 0);
  s.maintenance();
  CHECK(s.counters().pending() == 0);
  CHECK(peek.scalar("SELECT count(*) FROM push_counters") == 4);
  CHECK(s.counters().get(a, std::nullopt, "mobile_pushes_received::day", day) == 7);
  CHECK(s.counters().get(a, realm, "mobile_pushes_received::day", day) == 6);
  CHECK(s.counters().get(a, std::nullopt, "mobile_pushes_forwarded::day", day) == 2);
  CHECK(s.counters().get(a, std::nullopt, "mobile_pushes_received::day", day + 86400) == 1);
  CHECK_FALSE(s.counters().get(a, realm, "mobile_pushes_forwarded::day", day));
  // Later adds are added to the stored rows (upsert-add), stored + pending before the write.
  s.counters().add(a, realm, "mobile_pushes_received::day", day, 10);
  CHECK(s.counters().get(a, realm, "mobile_pushes_received::day", day) == 16);
  s.counters().write_pending();
  s.db().flush();
  CHECK(peek.scalar("SELECT value FROM push_counters WHERE realm_id = " + std::to_string(realm)) == 16);
  CHECK(peek.scalar("SELECT count(*) FROM push_counters") == 4);
}

TEST_CASE("counters: a new key keeps its own copy of the property; adds to a pending key are found by value") {
  TempDir dir;
  Store s(dir.file("bouncer.db"));
  int64_t a = s.servers().insert(kU1, "k", "a.example.org", "a@example.org", 1);
  s.db().flush();
  const int64_t day = 1'767'312'000;
  // add() looks keys up through a view of the caller's text: the stored key must not keep that view.
  std::string prop = "mobile_pushes_received::day";
  s.counters().add(a, std::nullopt, prop, day, 2);
  prop.assign("mobile_pushes_forwarded::day");
  s.counters().add(a, std::nullopt, prop, day, 3);
  prop.assign("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  CHECK(s.counters().pending() == 2);
  CHECK(s.counters().get(a, std::nullopt, "mobile_pushes_received::day", day) == 2);
  CHECK(s.counters().get(a, std::nullopt, "mobile_pushes_forwarded::day", day) == 3);
  // Same key from another buffer, and keys differing only in realm or day: found or kept apart.
  std::string again = "mobile_pushes_received::day";
  s.counters().add(a, std::nullopt, again, day, 4);
  s.counters().add(a, std::nullopt, again, day + 86400, 1);
  CHECK(s.counters().pending() == 3);
  CHECK(s.counters().get(a, std::nullopt, "mobile_pushes_received::day", day) == 6);
  CHECK(s.counters().get(a, std::nullopt, "mobile_pushes_received::day", day + 86400) == 1);
  s.counters().write_pending();
  s.db().flush();
  Peek peek(s.db().path());
  CHECK(peek.scalar("SELECT value FROM push_counters WHERE property = 'mobile_pushes_received::day' AND "
                    "end_time_s = " + std::to_string(day)) == 6);
  CHECK(peek.scalar("SELECT count(*) FROM push_counters") == 3);
}

TEST_CASE("counters: reaching max_pending keys writes them at once; closing the store writes the rest") {
  TempDir dir;
  std::string path = dir.file("bouncer.db");
  {
    Database db(path, {});
    Servers servers(db);
    int64_t a = servers.insert(kU1, "k", "a.example.org", "a@example.org", 1);
    db.flush();
    Counters c(db, 3);
    c.add(a, std::nullopt, "p", 1, 1);
    c.add(a, std::nullopt, "p", 2, 1);
    CHECK_FALSE(db.batch_open());
    c.add(a, std::nullopt, "p", 3, 1);  // third key: bound reached
    CHECK(db.batch_open());
    CHECK(c.pending() == 0);
    db.flush();
  }
  {
    Store s(path);
    int64_t a = s.servers().find_by_uuid(kU1)->id;
    s.counters().add(a, std::nullopt, "p", 1, 5);
  }  // ~Store writes and commits pending counts
  Peek peek(path);
  CHECK(peek.scalar("SELECT count(*) FROM push_counters") == 3);
  CHECK(peek.scalar("SELECT value FROM push_counters WHERE end_time_s = 1") == 6);
}

}  // TEST_SUITE
