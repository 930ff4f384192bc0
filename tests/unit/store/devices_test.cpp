// Devices repository: push/register semantics, the OR rule, unregister, dead tokens.
#include <doctest/doctest.h>

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
constexpr const char* kOther = "dddddddd-0000-4000-8000-00000000000d";

struct Fixture {
  TempDir dir;
  Store s{dir.file("bouncer.db")};
  int64_t a = s.servers().insert("11111111-1111-4111-8111-111111111111", "k", "a.example.org", "a@example.org", 1);
  int64_t b = s.servers().insert("22222222-2222-4222-8222-222222222222", "k", "b.example.org", "b@example.org", 1);

  RegisterResult reg(int64_t server, int kind, const std::string& token, std::optional<int64_t> uid,
                     std::optional<std::string> uuid, int64_t now, std::optional<std::string> app = "com.example.app",
                     std::optional<int64_t> realm = std::nullopt) {
    DeviceRegistration r;
    r.server_id = server;
    r.kind = kind;
    r.token = token;
    r.ios_app_id = std::move(app);
    r.user_id = uid;
    r.user_uuid = std::move(uuid);
    r.realm_id = realm;
    r.now_ms = now;
    return s.devices().register_device(r);
  }
  // The row of exactly one identity (find_for_test with one of them).
  std::optional<DeviceRow> find(int64_t server, int kind, const std::string& token, std::optional<int64_t> uid,
                                std::optional<std::string_view> uuid = std::nullopt) {
    return s.devices().find_for_test(server, kind, token, uuid ? std::nullopt : uid, uuid);
  }
  int64_t count(const std::string& where = "1") {
    s.db().flush();
    Peek peek(s.db().path());
    return peek.scalar("SELECT count(*) FROM devices WHERE " + where);
  }
};

}  // namespace

TEST_SUITE("store") {

TEST_CASE("devices: register creates a row once; repeating it only refreshes registered_ms") {
  Fixture f;
  RealmRow realm;
  realm.server_id = f.a;
  realm.uuid = "eeeeeeee-0000-4000-8000-00000000000e";
  int64_t realm_id = *f.s.realms().upsert(realm, 1);
  auto r1 = f.reg(f.a, kKindFcm, "fcm-token-1", 10, std::nullopt, 1000, std::nullopt, realm_id);
  CHECK(r1.outcome == RegisterOutcome::created);
  auto r2 = f.reg(f.a, kKindFcm, "fcm-token-1", 10, std::nullopt, 2000, "other.app", std::nullopt);
  CHECK(r2.outcome == RegisterOutcome::refreshed);
  auto row = f.find(f.a, kKindFcm, "fcm-token-1", 10);
  REQUIRE(row);
  CHECK(row->registered_ms == 2000);
  CHECK_FALSE(row->ios_app_id);         // left as it was (Zulip's behaviour)
  CHECK(row->realm_id == realm_id);     // left as it was
  CHECK(row->user_id == 10);
  CHECK_FALSE(row->user_uuid);
  CHECK(row->token == "fcm-token-1");
  // An older clock never moves the registration time back (the 410 rule depends on it).
  f.reg(f.a, kKindFcm, "fcm-token-1", 10, std::nullopt, 1500);
  CHECK(f.find(f.a, kKindFcm, "fcm-token-1", 10)->registered_ms == 2000);
  CHECK(f.count() == 1);
}

TEST_CASE("devices: APNs tokens match case-insensitively, FCM tokens case-sensitively") {
  Fixture f;
  CHECK(f.reg(f.a, kKindApns, "ABCDEF0123", std::nullopt, kUser, 1000).outcome == RegisterOutcome::created);
  auto a2 = f.reg(f.a, kKindApns, "abcdef0123", std::nullopt, kUser, 2000);
  CHECK(a2.outcome == RegisterOutcome::refreshed);
  CHECK(f.count() == 1);
  CHECK(f.find(f.a, kKindApns, "abcdef0123", std::nullopt, kUser)->token == "ABCDEF0123");  // registered spelling kept
  CHECK(f.count("token = 'ABCDEF0123' AND token_norm = 'abcdef0123'") == 1);
  CHECK(f.reg(f.a, kKindFcm, "Token-X", std::nullopt, kUser, 1000).outcome == RegisterOutcome::created);
  auto f2 = f.reg(f.a, kKindFcm, "token-x", std::nullopt, kUser, 1000);
  CHECK(f2.outcome == RegisterOutcome::created);
  CHECK(f.count("kind = 2") == 2);
  // Same token, different kind: different rows.
  CHECK(f.reg(f.a, kKindFcm, "abcdef0123", std::nullopt, kUser, 1000).outcome == RegisterOutcome::created);
  CHECK(f.s.devices().find_for_test(f.a, kKindApns, "AbCdEf0123", std::nullopt, std::string_view(kUser)));
  CHECK_FALSE(f.s.devices().find_for_test(f.a, kKindFcm, "TOKEN-X", std::nullopt, std::string_view(kUser)));
  CHECK(f.s.devices().unregister(f.a, kKindApns, "abcDEF0123", std::nullopt, std::string_view(kUser)) == 1);
  CHECK(f.count("kind = 1") == 0);
}

TEST_CASE("devices: user_uuid is stored and matched in lowercase") {
  Fixture f;
  f.reg(f.a, kKindFcm, "t1", std::nullopt, std::string("CCCCCCCC-0000-4000-8000-00000000000C"), 1);
  CHECK(f.find(f.a, kKindFcm, "t1", std::nullopt, kUser)->user_uuid == kUser);
  CHECK(f.count(std::string("user_uuid = '") + kUser + "'") == 1);
  CHECK(f.reg(f.a, kKindFcm, "t1", std::nullopt, std::string(kUser), 2).outcome == RegisterOutcome::refreshed);
  CHECK(f.s.devices().for_identity(f.a, std::nullopt, std::string_view("cccccccc-0000-4000-8000-00000000000C")).size() == 1);
}

TEST_CASE("devices: for_identity applies the OR rule within one server") {
  Fixture f;
  f.reg(f.a, kKindFcm, "t-uuid", std::nullopt, kUser, 1);
  f.reg(f.a, kKindApns, "aa01", 42, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "t-other-user", 43, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "t-other-uuid", std::nullopt, kOther, 1);
  f.reg(f.b, kKindFcm, "t-other-server", 42, std::nullopt, 1);
  f.reg(f.b, kKindFcm, "t-other-server-uuid", std::nullopt, kUser, 1);

  auto both = f.s.devices().for_identity(f.a, 42, std::string_view(kUser));
  REQUIRE(both.size() == 2);
  CHECK(both[0].token == "t-uuid");  // the uuid-keyed rows first
  CHECK(both[0].user_uuid == kUser);
  CHECK_FALSE(both[0].user_id);
  CHECK(both[1].token == "aa01");
  CHECK(both[1].user_id == 42);
  CHECK_FALSE(both[1].user_uuid);
  CHECK(both[1].server_id == f.a);
  CHECK(both[1].kind == kKindApns);
  CHECK(both[1].ios_app_id == "com.example.app");

  auto only_id = f.s.devices().for_identity(f.a, 42, std::nullopt);
  REQUIRE(only_id.size() == 1);
  CHECK(only_id[0].token == "aa01");
  auto only_uuid = f.s.devices().for_identity(f.a, std::nullopt, std::string_view(kUser));
  REQUIRE(only_uuid.size() == 1);
  CHECK(only_uuid[0].token == "t-uuid");
  CHECK(f.s.devices().for_identity(f.a, std::nullopt, std::nullopt).empty());
  CHECK(f.s.devices().for_identity(f.a, 44, std::string_view(kOther)).size() == 1);
}

TEST_CASE("devices: with user_id and user_uuid, the id-keyed row of the token migrates to a uuid-keyed one") {
  Fixture f;
  f.reg(f.a, kKindApns, "AA02", 42, std::nullopt, 1000);
  f.reg(f.a, kKindApns, "bb03", 42, std::nullopt, 1000);  // another token: untouched
  auto mig = f.reg(f.a, kKindApns, "aa02", 42, kUser, 2000);
  CHECK(mig.outcome == RegisterOutcome::migrated);
  CHECK_FALSE(f.find(f.a, kKindApns, "aa02", 42));
  auto row = f.find(f.a, kKindApns, "aa02", std::nullopt, kUser);
  REQUIRE(row);
  CHECK(row->user_uuid == kUser);
  CHECK_FALSE(row->user_id);
  CHECK(row->registered_ms == 2000);
  CHECK(row->token == "aa02");  // the new registration's spelling
  CHECK(f.find(f.a, kKindApns, "bb03", 42));
  // Repeating it is a plain refresh now.
  auto again = f.reg(f.a, kKindApns, "aa02", 42, kUser, 3000);
  CHECK(again.outcome == RegisterOutcome::refreshed);
  CHECK(f.count() == 2);
  // An id-keyed row of another user_id is not touched.
  f.reg(f.a, kKindApns, "cc04", 77, std::nullopt, 1000);
  CHECK(f.reg(f.a, kKindApns, "cc04", 42, kUser, 1000).outcome == RegisterOutcome::created);
  CHECK(f.find(f.a, kKindApns, "cc04", 77));
}

TEST_CASE("devices: identities that share an id range (schema v3 bucket) keep their own rows") {
  Fixture f;
  // user_id 5 and 5 + 2^28 share a bucket, so their rows share one id range of server a.
  const int64_t twin = 5 + (int64_t{1} << 28);
  REQUIRE(legacy_device_id_range(f.a, 5, {})->lo == legacy_device_id_range(f.a, twin, {})->lo);
  f.reg(f.a, kKindFcm, "t5", 5, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "t-twin", twin, std::nullopt, 2);
  f.reg(f.a, kKindFcm, "shared", 5, std::nullopt, 3);
  f.reg(f.a, kKindFcm, "shared", twin, std::nullopt, 4);
  CHECK(f.reg(f.a, kKindFcm, "shared", twin, std::nullopt, 5).outcome == RegisterOutcome::refreshed);
  f.reg(f.b, kKindFcm, "t5", 5, std::nullopt, 6);  // same range bits, other server
  auto five = f.s.devices().for_identity(f.a, 5, std::nullopt);
  REQUIRE(five.size() == 2);
  CHECK(five[0].token == "t5");
  CHECK(five[1].token == "shared");
  CHECK(five[1].registered_ms == 3);
  auto other = f.s.devices().for_identity(f.a, twin, std::nullopt);
  REQUIRE(other.size() == 2);
  CHECK(other[0].token == "t-twin");
  CHECK(other[1].registered_ms == 5);
  CHECK(f.s.devices().unregister(f.a, kKindFcm, "shared", 5, std::nullopt) == 1);
  CHECK(f.find(f.a, kKindFcm, "shared", twin));
  CHECK(f.s.devices().delete_row(*f.find(f.a, kKindFcm, "t-twin", twin)));
  CHECK(f.find(f.a, kKindFcm, "t5", 5));
  CHECK(f.s.devices().unregister_all(f.a, 5, std::nullopt) == 1);
  CHECK(f.s.devices().for_identity(f.a, twin, std::nullopt).size() == 1);
  CHECK(f.s.devices().for_identity(f.b, 5, std::nullopt).size() == 1);
  CHECK(f.count() == 2);
}

TEST_CASE("devices: an identity's id range holds 4096 rows; a freed id is taken again, a full range refuses") {
  Fixture f;
  for (int64_t i = 0; i < kLegacyDeviceSeqs; ++i) {
    std::string token = "t";
    token += std::to_string(i);
    f.reg(f.a, kKindFcm, token, 7, std::nullopt, 1);
  }
  CHECK_THROWS_AS(f.reg(f.a, kKindFcm, "one-too-many", 7, std::nullopt, 1), DeviceLimitError);
  // Re-registering an existing token still works (a refresh, no new id).
  CHECK(f.reg(f.a, kKindFcm, "t4095", 7, std::nullopt, 2).outcome == RegisterOutcome::refreshed);
  // A deleted row's id (here the first) is reused although the range's last id is taken.
  CHECK(f.s.devices().unregister(f.a, kKindFcm, "t0", 7, std::nullopt) == 1);
  CHECK(f.reg(f.a, kKindFcm, "again", 7, std::nullopt, 3).outcome == RegisterOutcome::created);
  CHECK(f.find(f.a, kKindFcm, "again", 7));
  CHECK(f.count("user_id = 7") == kLegacyDeviceSeqs);
  // Other identities are not affected.
  CHECK(f.reg(f.a, kKindFcm, "t0", 8, std::nullopt, 1).outcome == RegisterOutcome::created);
}

TEST_CASE("devices: register without any identity is refused") {
  Fixture f;
  CHECK_THROWS_AS(f.reg(f.a, kKindFcm, "t", std::nullopt, std::nullopt, 1), StoreError);
  CHECK(f.count() == 0);
}

TEST_CASE("devices: unregister deletes the OR-rule rows of that kind and token and counts them") {
  Fixture f;
  f.reg(f.a, kKindFcm, "tok", std::nullopt, kUser, 1);
  f.reg(f.a, kKindFcm, "tok", 42, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "tok", 43, std::nullopt, 1);   // other user
  f.reg(f.b, kKindFcm, "tok", 42, std::nullopt, 1);   // other server
  f.reg(f.a, kKindApns, "tok", 42, std::nullopt, 1);  // other kind
  CHECK(f.s.devices().unregister(f.a, kKindFcm, "nope", 42, std::string_view(kUser)) == 0);
  CHECK(f.s.devices().unregister(f.a, kKindFcm, "tok", 42, std::string_view(kUser)) == 2);
  CHECK(f.s.devices().unregister(f.a, kKindFcm, "tok", 42, std::string_view(kUser)) == 0);
  CHECK(f.count() == 3);
  CHECK(f.s.devices().unregister(f.a, kKindFcm, "tok", 43, std::nullopt) == 1);
  CHECK(f.count("server_id = " + std::to_string(f.b)) == 1);
}

TEST_CASE("devices: unregister_all deletes every token of the identity and counts them") {
  Fixture f;
  f.reg(f.a, kKindFcm, "t1", std::nullopt, kUser, 1);
  f.reg(f.a, kKindApns, "a1", std::nullopt, kUser, 1);
  f.reg(f.a, kKindFcm, "t2", 42, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "t3", 43, std::nullopt, 1);
  f.reg(f.b, kKindFcm, "t4", 42, std::nullopt, 1);
  CHECK(f.s.devices().unregister_all(f.a, 42, std::string_view(kUser)) == 3);
  CHECK(f.s.devices().unregister_all(f.a, 42, std::string_view(kUser)) == 0);
  CHECK(f.count() == 2);
}

TEST_CASE("devices: delete_dead removes the token for every server, only rows registered before the instant") {
  Fixture f;
  f.reg(f.a, kKindApns, "DEAD01", 1, std::nullopt, 1000);
  f.reg(f.b, kKindApns, "dead01", std::nullopt, kUser, 1500);
  f.reg(f.a, kKindApns, "dead01", 2, std::nullopt, 5000);   // re-registered after the 410
  f.reg(f.a, kKindApns, "dead02", 1, std::nullopt, 1000);
  f.reg(f.a, kKindFcm, "dead01", 1, std::nullopt, 1000);       // other kind
  // The 410 timestamp is 5000: a row registered exactly then is kept (strictly before is deleted).
  CHECK(f.s.devices().delete_dead(kKindApns, "Dead01", 5000) == 2);
  CHECK_FALSE(f.find(f.a, kKindApns, "dead01", 1));
  CHECK_FALSE(f.find(f.b, kKindApns, "dead01", std::nullopt, kUser));
  CHECK(f.find(f.a, kKindApns, "dead01", 2));
  CHECK(f.find(f.a, kKindApns, "dead02", 1));
  CHECK(f.find(f.a, kKindFcm, "dead01", 1));
  // A refresh moves a row out of reach of an older timestamp.
  f.reg(f.a, kKindApns, "dead02", 1, std::nullopt, 9000);
  CHECK(f.s.devices().delete_dead(kKindApns, "dead02", 8000) == 0);
  // INT64_MAX: always.
  CHECK(f.s.devices().delete_dead(kKindApns, "dead01", INT64_MAX) == 1);
  CHECK(f.s.devices().delete_dead(kKindFcm, "DEAD01", INT64_MAX) == 0);  // FCM is case-sensitive
  CHECK(f.s.devices().delete_dead(kKindFcm, "dead01", INT64_MAX) == 1);
}

TEST_CASE("devices: find_for_test uses the OR rule, prefers the uuid-keyed row, and delete_row works") {
  Fixture f;
  f.reg(f.a, kKindFcm, "tok", 42, std::nullopt, 1);
  CHECK_FALSE(f.s.devices().find_for_test(f.a, kKindFcm, "tok", 41, std::nullopt));
  CHECK_FALSE(f.s.devices().find_for_test(f.b, kKindFcm, "tok", 42, std::nullopt));
  CHECK_FALSE(f.s.devices().find_for_test(f.a, kKindApns, "tok", 42, std::nullopt));
  auto got = f.s.devices().find_for_test(f.a, kKindFcm, "tok", 42, std::string_view(kUser));
  REQUIRE(got);
  CHECK(got->user_id == 42);
  CHECK_FALSE(got->user_uuid);
  DeviceRegistration r;  // a uuid-only row for the same token (no migration: no user_id given)
  r.server_id = f.a;
  r.kind = kKindFcm;
  r.token = "tok";
  r.user_uuid = kUser;
  r.now_ms = 2;
  f.s.devices().register_device(r);
  got = f.s.devices().find_for_test(f.a, kKindFcm, "tok", 42, std::string_view(kUser));
  REQUIRE(got);
  CHECK(got->user_uuid == kUser);
  CHECK_FALSE(got->user_id);
  CHECK(f.s.devices().delete_row(*got));
  CHECK_FALSE(f.s.devices().delete_row(*got));
  CHECK(f.s.devices().find_for_test(f.a, kKindFcm, "tok", 42, std::string_view(kUser))->user_id == 42);
  CHECK(f.count() == 1);
}

TEST_CASE("devices: deleting a server's realm keeps its devices with realm unset") {
  Fixture f;
  RealmRow realm;
  realm.server_id = f.a;
  realm.uuid = "eeeeeeee-0000-4000-8000-00000000000e";
  int64_t realm_id = *f.s.realms().upsert(realm, 1);
  f.reg(f.a, kKindFcm, "tok", 42, std::nullopt, 1, std::nullopt, realm_id);
  CHECK(f.find(f.a, kKindFcm, "tok", 42)->realm_id == realm_id);
  f.s.db().write([&] { f.s.db().exec("DELETE FROM realms WHERE id = " + std::to_string(realm_id)); });
  auto row = f.find(f.a, kKindFcm, "tok", 42);
  REQUIRE(row);
  CHECK_FALSE(row->realm_id);
  // A realm id that does not exist is refused (foreign key), and only that write is undone.
  CHECK_THROWS_AS(f.reg(f.a, kKindFcm, "tok2", 42, std::nullopt, 1, std::nullopt, realm_id + 100), StoreError);
  CHECK(f.count() == 1);
}

// Keys of rows (kind:token@identity), for comparing rows kept in memory with a fresh read.
std::vector<std::string> keys_of(const std::vector<DeviceRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows)
    out.push_back(std::to_string(r.server_id) + "/" + std::to_string(r.kind) + ":" + r.token + "@" +
                  (r.user_uuid ? *r.user_uuid : std::to_string(*r.user_id)));
  return out;
}

TEST_CASE("devices: update_rows skips other users' changes and reads again after a change to this user") {
  Fixture f;
  f.reg(f.a, kKindApns, "aa01", 1, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "ff02", std::nullopt, kUser, 1);
  auto rows = f.s.devices().for_identity(f.a, 1, std::string_view(kUser));
  REQUIRE(rows.size() == 2);
  const uint64_t g = f.s.devices().generation();
  CHECK(f.s.devices().update_rows(g, f.a, 1, std::string_view(kUser), rows) == RowsUpdate::unchanged);

  // Other users of this server, and this user's ids on another server: not this identity.
  f.reg(f.a, kKindApns, "aa01", 2, std::nullopt, 2);
  f.reg(f.a, kKindFcm, "ff09", std::nullopt, kOther, 2);
  f.reg(f.b, kKindFcm, "ff03", 1, kUser, 2);
  f.s.devices().unregister(f.a, kKindApns, "aa01", 2, std::nullopt);
  f.s.devices().unregister_all(f.b, 1, std::string_view(kUser));
  // Deletions of tokens this user does not have.
  f.s.devices().delete_dead(kKindApns, "bb07", INT64_MAX);
  CHECK(f.s.devices().update_rows(g, f.a, 1, std::string_view(kUser), rows) == RowsUpdate::unchanged);
  CHECK(rows.size() == 2);

  SUBCASE("a registration by user_id") {
    f.reg(f.a, kKindFcm, "ff04", 1, std::nullopt, 3);
    CHECK(f.s.devices().update_rows(g, f.a, 1, std::string_view(kUser), rows) == RowsUpdate::reread);
    CHECK(rows.size() == 3);
  }
  SUBCASE("a registration by user_uuid, spelt in upper case") {
    std::string upper = kUser;
    for (char& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    f.reg(f.a, kKindFcm, "ff04", std::nullopt, upper, 3);
    CHECK(f.s.devices().update_rows(g, f.a, std::nullopt, std::string_view(kUser), rows) == RowsUpdate::reread);
    CHECK(rows.size() == 2);  // read by uuid alone: ff02 and ff04
  }
  SUBCASE("a refresh of one of its tokens (registered_ms moves: the 410 rule needs the new one)") {
    f.reg(f.a, kKindApns, "AA01", 1, std::nullopt, 9);
    CHECK(f.s.devices().update_rows(g, f.a, 1, std::string_view(kUser), rows) == RowsUpdate::reread);
    REQUIRE(rows.size() == 2);
    CHECK(rows[1].token == "aa01");  // uuid-keyed rows come first
    CHECK(rows[1].registered_ms == 9);
  }
  SUBCASE("an unregistration, even one that deleted nothing") {
    CHECK(f.s.devices().unregister(f.a, kKindApns, "zz99", std::nullopt, kUser) == 0);
    CHECK(f.s.devices().update_rows(g, f.a, 1, std::string_view(kUser), rows) == RowsUpdate::reread);
    CHECK(rows.size() == 2);
  }
}

TEST_CASE("devices: update_rows applies dead-token and by-key deletions as the store applied them") {
  Fixture f;
  f.reg(f.a, kKindApns, "DEAD01", 1, std::nullopt, 1000);
  f.reg(f.a, kKindApns, "dead02", 1, std::nullopt, 9000);
  f.reg(f.a, kKindFcm, "dead01", 1, std::nullopt, 1000);  // same text, other kind
  f.reg(f.a, kKindFcm, "ff03", 1, std::nullopt, 1000);
  f.reg(f.a, kKindFcm, "FF05", std::nullopt, kUser, 1000);
  f.reg(f.a, kKindFcm, "FF05", 2, std::nullopt, 1000);    // same token, other identities
  f.reg(f.b, kKindFcm, "FF05", 1, std::nullopt, 1000);
  auto rows = f.s.devices().for_identity(f.a, 1, std::nullopt);
  REQUIRE(rows.size() == 4);
  const uint64_t g = f.s.devices().generation();

  CHECK(f.s.devices().delete_dead(kKindApns, "dead02", 8000) == 0);  // re-registered after the 410
  CHECK(f.s.devices().update_rows(g, f.a, 1, std::nullopt, rows) == RowsUpdate::unchanged);
  CHECK(rows.size() == 4);

  CHECK(f.s.devices().delete_dead(kKindApns, "dead01", 5000) == 1);  // APNs: any case
  CHECK(f.s.devices().delete_row(*f.find(f.a, kKindFcm, "ff03", 1)));
  // By-key deletions of rows of other identities (the same token) leave these rows alone.
  CHECK(f.s.devices().delete_row(*f.find(f.a, kKindFcm, "FF05", std::nullopt, kUser)));
  CHECK(f.s.devices().delete_row(*f.find(f.a, kKindFcm, "FF05", 2)));
  CHECK(f.s.devices().delete_row(*f.find(f.b, kKindFcm, "FF05", 1)));
  CHECK(f.s.devices().update_rows(g, f.a, 1, std::nullopt, rows) == RowsUpdate::applied);
  const std::string a = std::to_string(f.a);
  CHECK(keys_of(rows) == std::vector<std::string>{a + "/1:dead02@1", a + "/2:dead01@1"});
  CHECK(keys_of(rows) == keys_of(f.s.devices().for_identity(f.a, 1, std::nullopt)));

  // Applying again from the same generation changes nothing more.
  CHECK(f.s.devices().update_rows(g, f.a, 1, std::nullopt, rows) == RowsUpdate::unchanged);
}

TEST_CASE("devices: update_rows reads again once the change log no longer covers the generation") {
  Fixture f;
  f.reg(f.a, kKindApns, "aa01", 1, std::nullopt, 1);
  // Fill the log once round, so that eviction of used slots is what is tested.
  for (size_t i = 0; i < kDeviceChangeLogSize; ++i) f.s.devices().delete_dead(kKindFcm, "gone", INT64_MAX);
  auto rows = f.s.devices().for_identity(f.a, 1, std::nullopt);
  const uint64_t g = f.s.devices().generation();
  // Deletions of other tokens: skipped while the log still holds every change since g.
  for (size_t i = 0; i < kDeviceChangeLogSize; ++i) f.s.devices().delete_dead(kKindFcm, "gone", INT64_MAX);
  CHECK(f.s.devices().update_rows(g, f.a, 1, std::nullopt, rows) == RowsUpdate::unchanged);
  // One more: the change right after g is forgotten, so nothing is known about it.
  f.s.devices().delete_dead(kKindFcm, "gone", INT64_MAX);
  CHECK(f.s.devices().update_rows(g, f.a, 1, std::nullopt, rows) == RowsUpdate::reread);
  CHECK(rows.size() == 1);
  // A reader of the current generation is served from the log again.
  const uint64_t g2 = f.s.devices().generation();
  f.s.devices().delete_dead(kKindApns, "aa01", INT64_MAX);
  CHECK(f.s.devices().update_rows(g2, f.a, 1, std::nullopt, rows) == RowsUpdate::applied);
  CHECK(rows.empty());
}


TEST_CASE("devices: the id-keyed row bound is counted at open, per server, from the table") {
  TempDir dir;
  const std::string path = dir.file("bouncer.db");
  int64_t a = 0, b = 0, c = 0;
  {
    Store s(path);
    a = s.servers().insert("11111111-1111-4111-8111-111111111111", "k", "a.example.org", "a@example.org", 1);
    b = s.servers().insert("22222222-2222-4222-8222-222222222222", "k", "b.example.org", "b@example.org", 1);
    c = s.servers().insert("33333333-3333-4333-8333-333333333333", "k", "c.example.org", "c@example.org", 1);
    auto reg = [&](int64_t server, const std::string& token, std::optional<int64_t> uid, std::optional<std::string> uuid) {
      DeviceRegistration r;
      r.server_id = server;
      r.kind = kKindFcm;
      r.token = token;
      r.user_id = uid;
      r.user_uuid = std::move(uuid);
      r.now_ms = 1;
      s.devices().register_device(r);
    };
    reg(a, "f1", 1, std::nullopt);
    reg(a, "f2", 1, std::nullopt);
    reg(a, "f3", 2, std::nullopt);
    reg(a, "f4", 3, kUser);  // uuid-keyed
    reg(b, "f1", 7, kOther);
    // A row written by SQL, as a migration writes them (never through register_device).
    const int64_t lo = legacy_device_id_range(c, 9, {})->lo;
    s.db().exec("INSERT INTO legacy_devices (id, server_id, identity, kind, token_norm, registered_ms) VALUES (" +
                std::to_string(lo) + ", " + std::to_string(c) + ", 9, 2, 'f9', 1)");
    s.db().flush();
  }
  Store s(path);
  CHECK(s.devices().id_rows_bound(a) == 3);
  CHECK(s.devices().may_have_id_rows(a));
  CHECK(s.devices().id_rows_bound(b) == 0);
  CHECK_FALSE(s.devices().may_have_id_rows(b));
  CHECK(s.devices().id_rows_bound(c) == 1);
  // The OR rule still reads the id range of a server that has such rows.
  CHECK(s.devices().for_identity(c, 9, kOther).size() == 1);
  CHECK(s.devices().for_identity(a, 1, kUser).size() == 3);  // f4 by uuid, f1 and f2 by user_id
}

TEST_CASE("devices: with both ids, rows keyed by user_id alone are found while the server has any") {
  Fixture f;
  // An old server registered by user_id; the upgraded one notifies with both ids.
  f.reg(f.a, kKindApns, "aa01", 5, std::nullopt, 1);
  CHECK(f.s.devices().for_identity(f.a, 5, kUser).size() == 1);  // same batch, not committed yet
  f.s.db().flush();
  CHECK(f.s.devices().for_identity(f.a, 5, kUser).size() == 1);
  CHECK(f.s.devices().find_for_test(f.a, kKindApns, "aa01", 5, kUser).has_value());
  // Server b has no id-keyed row: its user_id range is skipped, its uuid rows still found.
  f.reg(f.b, kKindApns, "bb01", 5, kUser, 1);
  f.s.db().flush();
  CHECK_FALSE(f.s.devices().may_have_id_rows(f.b));
  CHECK(f.s.devices().for_identity(f.b, 5, kUser).size() == 1);
  // Registering the token with both ids migrates the row; once committed the bound is 0.
  CHECK(f.reg(f.a, kKindApns, "aa01", 5, kUser, 2).outcome == RegisterOutcome::migrated);
  CHECK(f.s.devices().id_rows_bound(f.a) == 1);  // the batch is still open
  f.s.db().flush();
  CHECK(f.s.devices().id_rows_bound(f.a) == 0);
  const auto rows = f.s.devices().for_identity(f.a, 5, kUser);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].user_uuid == std::optional<std::string>(kUser));
  // A new id-keyed row counts at once.
  f.reg(f.a, kKindFcm, "ff01", 6, std::nullopt, 3);
  CHECK(f.s.devices().for_identity(f.a, 6, kOther).size() == 1);
}

TEST_CASE("devices: the id-keyed row bound drops with committed deletions of every kind") {
  Fixture f;
  for (const char* t : {"f0", "f1", "f2", "f3"}) f.reg(f.a, kKindFcm, t, 1, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "g0", 2, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "g1", 3, std::nullopt, 1);
  f.reg(f.a, kKindFcm, "u0", 4, kUser, 1);
  f.s.db().flush();
  CHECK(f.s.devices().id_rows_bound(f.a) == 6);
  CHECK(f.s.devices().unregister(f.a, kKindFcm, "f0", 1, kUser) == 1);
  CHECK(f.s.devices().unregister_all(f.a, 2, std::nullopt) == 1);
  CHECK(f.s.devices().delete_row(*f.find(f.a, kKindFcm, "g1", 3)));
  CHECK(f.s.devices().delete_row(*f.find(f.a, kKindFcm, "u0", 4, kUser)));  // uuid-keyed: no change
  CHECK(f.s.devices().id_rows_bound(f.a) == 6);  // not committed yet
  f.s.db().flush();
  CHECK(f.s.devices().id_rows_bound(f.a) == 3);
  CHECK(f.s.devices().unregister_all(f.a, 1, kUser) == 3);
  f.s.db().flush();
  CHECK(f.s.devices().id_rows_bound(f.a) == 0);
  CHECK(f.count("server_id = " + std::to_string(f.a)) == 0);
}

TEST_CASE("devices: a rolled-back deletion leaves the id-keyed row bound high and the row found") {
  Fixture f;
  f.reg(f.a, kKindFcm, "f1", 1, std::nullopt, 1);
  f.s.db().flush();
  // The request's write fails after the deletion: its savepoint undoes it.
  CHECK_THROWS_AS(f.s.db().write([&] {
    CHECK(f.s.devices().unregister(f.a, kKindFcm, "f1", 1, kUser) == 1);
    throw StoreError("later failure");
  }),
                  StoreError);
  f.s.db().flush();
  CHECK(f.s.devices().id_rows_bound(f.a) == 1);
  CHECK(f.s.devices().for_identity(f.a, 1, kUser).size() == 1);
  // A whole batch lost: a deletion committed in a savepoint, then the batch rolled back.
  f.s.db().write([&] { CHECK(f.s.devices().delete_row(*f.find(f.a, kKindFcm, "f1", 1))); });
  f.s.db().exec("ROLLBACK");  // as SQLite does on some errors: the transaction is gone
  const uint64_t lost = f.s.db().stats().failed_commits;
  f.s.db().flush();  // the commit fails: the batch is lost
  CHECK(f.s.db().stats().failed_commits == lost + 1);
  CHECK(f.s.devices().for_identity(f.a, 1, kUser).size() == 1);
  CHECK(f.s.devices().id_rows_bound(f.a) == 1);
}

}  // TEST_SUITE
