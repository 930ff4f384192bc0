// api.md push/notify and push/test_notification against the real binary: every validation row
// with its exact message, totals, duplicate clean-up, deleted_devices, realm, policy and counters
// (no upstream configured: devices count, nothing is sent); then delivery, dead tokens and
// per-app isolation against tools/mock-upstream.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include <chrono>
#include <string>

#include "notify_support.h"

using namespace aloha;
using namespace aloha::test;
using namespace aloha::test::notify;

namespace {

const std::string kApnsA = "aa00" + std::string(60, 'b');
const std::string kUuid = "7b4e8f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";

std::string notify_body(const std::string& identity, const std::string& rest = "") {
  std::string b = "{" + identity;
  if (!rest.empty()) b += "," + rest;
  return b + "}";
}

// deleted_devices as compact JSON.
std::string deleted(const HttpResult& r) { return JsonBody(r.body).raw("deleted_devices"); }

}  // namespace

TEST_SUITE("integration/notify") {

TEST_CASE("push/notify: types in order, then identity, with exact messages") {
  BouncerProcess b;
  auto s = register_server(b, "n1.aloha-test.org");
  auto n = [&](const std::string& body) { return post_json(b, "push/notify", body, s); };
  CHECK_BAD(n("[1]"), "Malformed JSON");
  CHECK_BAD(n("{"), "Malformed JSON");
  CHECK_BAD(n(R"({"user_id":"5"})"), R"(request["user_id"] is not an integer)");
  CHECK_BAD(n(R"({"user_id":1.5})"), R"(request["user_id"] is not an integer)");
  CHECK_BAD(n(R"({"user_uuid":5})"), R"(request["user_uuid"] is not a string)");
  CHECK_BAD(n(R"({"user_id":1,"realm_uuid":[]})"), R"(request["realm_uuid"] is not a string)");
  CHECK_BAD(n(R"({"user_id":1,"gcm_payload":null})"), R"(request["gcm_payload"] is not a dict)");
  CHECK_BAD(n(R"({"user_id":1,"apns_payload":[]})"), R"(request["apns_payload"] is not a dict)");
  CHECK_BAD(n(R"({"user_id":1,"gcm_options":null})"), R"(request["gcm_options"] is not a dict)");
  CHECK_BAD(n(R"({"user_id":1,"android_devices":{}})"), R"(request["android_devices"] is not a list)");
  CHECK_BAD(n(R"({"user_id":1,"android_devices":["a",1]})"), R"(request["android_devices"][1] is not a string)");
  CHECK_BAD(n(R"({"user_id":1,"apple_devices":null})"), R"(request["apple_devices"] is not a list)");
  // Types first: a later type error wins over an identity value error.
  CHECK_BAD(n(R"({"user_uuid":"bad","apple_devices":[3]})"), R"(request["apple_devices"][0] is not a string)");
  CHECK_BAD(n(R"({"user_id":99999999999999999999})"), "user_id is too large");
  CHECK_BAD(n(R"({"user_id":1,"user_uuid":"nope"})"), "Invalid user_uuid");
  CHECK_BAD(n(R"({"user_id":1,"realm_uuid":"nope"})"), "Invalid realm_uuid");
  CHECK_BAD(n(R"({})"), "Missing user_id or user_uuid");
  CHECK_BAD(n(R"({"user_id":null,"user_uuid":null,"realm_uuid":null})"), "Missing user_id or user_uuid");
  // Unknown keys are ignored and not listed.
  auto ok = n(R"({"user_id":1,"whatever":[1,2]})");
  CHECK_OK(ok);
  CHECK_FALSE(JsonBody(ok.body).has("ignored_parameters_unsupported"));
}

TEST_CASE("push/notify: exact response body; totals, duplicate id-rows and deleted_devices") {
  BouncerProcess b;
  auto s = register_server(b, "n2.aloha-test.org");
  // An id-row and a uuid-row for one FCM token, and for one APNs token in another case.
  reg_device(b, s, 2, "fcm-1", {{"user_id", "5"}});
  reg_device(b, s, 2, "fcm-1", {{"user_uuid", kUuid}});
  reg_device(b, s, 2, "fcm-2", {{"user_id", "5"}});
  reg_device(b, s, 1, "AA00" + std::string(60, 'B'), {{"user_id", "5"}});
  reg_device(b, s, 1, kApnsA, {{"user_uuid", kUuid}});
  // Another user's device is not counted.
  reg_device(b, s, 2, "fcm-other", {{"user_id", "6"}});
  std::string body = notify_body(
      R"("user_id":5,"user_uuid":")" + kUuid + "\"",
      R"("gcm_payload":{"event":"message"},"apns_payload":{"alert":"x"},)"
      R"("android_devices":["fcm-2","zz-gone","fcm-1","b-gone","zz-gone","é-gone","B-gone"],)"
      R"("apple_devices":[")" + kApnsA + R"(","AA00)" + std::string(60, 'B') + R"(","ab","AB","ab","Ab"])");
  HttpResult r = post_json(b, "push/notify", body, s);
  CHECK(r.status == 200);
  CHECK(r.body ==
        R"({"result":"success","msg":"","total_android_devices":2,"total_apple_devices":1,)"
        R"("deleted_devices":{"android_devices":["B-gone","b-gone","zz-gone","é-gone"],)"
        R"("apple_devices":["AA00)" + std::string(60, 'B') + R"(","AB","Ab","ab"]},"realm":null})");
  // The id-rows were deleted: the uuid-rows are left.
  CHECK(sql_int(b.db_path(), "SELECT count(*) FROM devices WHERE user_id = 5 AND user_uuid IS NULL") == 1);
  CHECK(sql_int(b.db_path(), "SELECT count(*) FROM devices WHERE user_uuid = '" + kUuid + "'") == 2);
}

TEST_CASE("push/notify: realm known → realm object; policy deny → the configured refusals") {
  TempDir dir;
  BouncerProcess b("[push]\npolicy = deny\ndeny_reason = Plan expired\n", &dir);
  auto s = register_server(b, "n3.aloha-test.org");
  CHECK(b.stop().ok());
  const std::string realm = "0f0f0f0f-1111-4222-8333-444455556666";
  exec_sql(b.db_path(), "INSERT INTO realms (server_id, uuid, created_ms, last_updated_ms) SELECT id, '" + realm +
                            "', 0, 0 FROM servers WHERE uuid = '" + s.uuid + "';");
  b.restart();
  auto n = [&](const std::string& body) { return post_json(b, "push/notify", body, s); };
  CHECK_ERR(n(R"({"user_id":1})"), 400, "INVALID_ZULIP_SERVER", "Your plan doesn't allow sending push notifications.");
  // Identity and realm checks come first.
  CHECK_BAD(n(R"({})"), "Missing user_id or user_uuid");
  CHECK(b.stop().ok());
  exec_sql(b.db_path(), "UPDATE servers SET api_feature_level = 300 WHERE uuid = '" + s.uuid + "';");
  b.restart();
  CHECK_ERR(n(R"({"user_id":1})"), 400, "PUSH_NOTIFICATIONS_DISALLOWED",
            "Your plan doesn't allow sending push notifications. Reason provided by the server: Plan expired");
  // With policy allow, the realm object is returned for a known realm and null for an unknown one.
  CHECK(b.stop().ok());
  {
    std::string conf = read_file(b.config_path());
    size_t p = conf.find("policy = deny");
    REQUIRE(p != std::string::npos);
    conf.replace(p, 13, "policy = allow");
    write_file(b.config_path(), conf);
  }
  b.restart();
  HttpResult r = n(R"({"user_id":1,"realm_uuid":")" + realm + "\"}");
  CHECK(JsonBody(r.body).raw("realm") == R"({"can_push":true,"expected_end_timestamp":null})");
  r = n(R"({"user_id":1,"realm_uuid":"0d0d0d0d-1111-4222-8333-444455556666"})");
  CHECK(JsonBody(r.body).is_null("realm"));
}

TEST_CASE("push/notify: remove ids, gcm_options and custom are checked before anything is sent") {
  BouncerProcess b;
  auto s = register_server(b, "n4.aloha-test.org");
  auto n = [&](const std::string& rest) { return post_json(b, "push/notify", notify_body(R"("user_id":9)", rest), s); };
  // No devices: gcm_options is not checked, zulip_message_ids and custom are.
  CHECK_OK(n(R"("gcm_options":{"priority":"urgent"})"));
  CHECK_BAD(n(R"("gcm_payload":{"event":"remove","zulip_message_ids":"1, 2"})"), "Invalid zulip_message_ids");
  CHECK_BAD(n(R"("gcm_payload":{"event":"remove","zulip_message_ids":7})"), "Invalid zulip_message_ids");
  CHECK_BAD(n(R"("apns_payload":{"custom":{"zulip":{"event":"remove","zulip_message_ids":"1,+2"}}})"),
            "Invalid zulip_message_ids");
  CHECK_OK(n(R"("gcm_payload":{"event":"remove","zulip_message_ids":""})"));
  CHECK_OK(n(R"("gcm_payload":{"event":"message","zulip_message_ids":"x"})"));
  CHECK_BAD(n(R"("apns_payload":{"custom":null})"), R"(request["apns_payload"]["custom"] is not a dict)");
  CHECK_BAD(n(R"("apns_payload":{"custom":[1]})"), R"(request["apns_payload"]["custom"] is not a dict)");
  // With an FCM device, gcm_options is checked.
  reg_device(b, s, 2, "fcm-x", {{"user_id", "9"}});
  CHECK_BAD(n(R"("gcm_options":{"priority":"urgent"})"), "Invalid GCM option to bouncer: priority 'urgent'");
  CHECK_BAD(n(R"("gcm_options":{"priority":5})"), "Invalid GCM option to bouncer: priority 5");
  CHECK_BAD(n(R"("gcm_options":{"priority":"high","ttl":30,"x":"é"})"),
            R"(Invalid GCM options to bouncer: {"ttl":30,"x":"é"})");
  CHECK_OK(n(R"("gcm_options":{"priority":"normal"})"));
  CHECK_OK(n(R"("gcm_options":{"priority":null})"));
}

TEST_CASE("push/notify: counters count received pushes per server and realm") {
  TempDir dir;
  BouncerProcess b("", &dir);
  auto s = register_server(b, "n5.aloha-test.org");
  reg_device(b, s, 2, "fcm-c1", {{"user_id", "3"}});
  reg_device(b, s, 1, kApnsA, {{"user_id", "3"}});
  CHECK_OK(post_json(b, "push/notify", R"({"user_id":3})", s));
  CHECK_OK(post_json(b, "push/notify", R"({"user_id":3})", s));
  CHECK(b.stop().ok());  // counters are written behind; shutdown writes them
  CHECK(sql_int(b.db_path(), "SELECT sum(value) FROM push_counters WHERE realm_id IS NULL AND property = "
                             "'mobile_pushes_received::day'") == 4);
  CHECK(sql_int(b.db_path(), "SELECT coalesce(sum(value), 0) FROM push_counters WHERE property = "
                             "'mobile_pushes_forwarded::day'") == 0);  // nothing configured: nothing sent
}

TEST_CASE("push/test_notification: strict keys, device lookup, realm_name/realm_url, success") {
  BouncerProcess b;
  auto s = register_server(b, "t1.aloha-test.org");
  auto t = [&](const std::string& body) { return post_json(b, "push/test_notification", body, s); };
  const std::string ok_base = R"("base_payload":{"realm_name":"Team","realm_url":"https://t.example"})";
  auto body = [&](const std::string& token, int kind, const std::string& extra = "") {
    return "{\"token\":\"" + token + "\",\"token_kind\":" + std::to_string(kind) + R"(,"user_id":4,"user_uuid":")" +
           kUuid + "\"," + ok_base + extra + "}";
  };
  CHECK_BAD(t(R"({"token_kind":1,"user_id":4,"user_uuid":"x","base_payload":{}})"),
            R"(request["token"] field is missing: Field required)");
  CHECK_BAD(t(R"({"token":"a","token_kind":"1","user_id":4,"user_uuid":"x","base_payload":{}})"),
            R"(request["token_kind"] is not an integer)");
  CHECK_BAD(t(R"({"token":"a","token_kind":1,"user_id":4,"user_uuid":"x"})"),
            R"(request["base_payload"] field is missing: Field required)");
  CHECK_BAD(t(body("a", 1, R"(,"extra":1)")), R"(Argument "extra" at request["extra"] is unexpected)");
  CHECK_BAD(t(R"({"token":"a","token_kind":1,"user_id":4,"user_uuid":"nope","base_payload":{}})"),
            "Invalid user_uuid");
  CHECK_ERR(t(body("a", 1)), 400, "INVALID_REMOTE_PUSH_DEVICE_TOKEN", "Device not recognized by the push bouncer");
  reg_device(b, s, 1, kApnsA, {{"user_id", "4"}});
  reg_device(b, s, 2, "fcm-t", {{"user_uuid", kUuid}});
  CHECK_ERR(t(body(kApnsA, 3)), 400, "INVALID_REMOTE_PUSH_DEVICE_TOKEN", "Device not recognized by the push bouncer");
  CHECK_ERR(t(body("fcm-t", 1)), 400, "INVALID_REMOTE_PUSH_DEVICE_TOKEN", "Device not recognized by the push bouncer");
  // APNs tokens match case-insensitively; the OR rule finds the id-row.
  std::string upper = kApnsA;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK_OK(t(body(upper, 1)));
  CHECK_OK(t(body("fcm-t", 2)));
  auto no_name = "{\"token\":\"fcm-t\",\"token_kind\":2,\"user_id\":4,\"user_uuid\":\"" + kUuid +
                 R"(","base_payload":{"realm_url":"u"}})";
  CHECK_BAD(t(no_name), "Missing realm_name");
  auto no_url = "{\"token\":\"fcm-t\",\"token_kind\":2,\"user_id\":4,\"user_uuid\":\"" + kUuid +
                R"(","base_payload":{"realm_name":null}})";
  CHECK_BAD(t(no_url), "Missing realm_url");
  auto uri = "{\"token\":\"fcm-t\",\"token_kind\":2,\"user_id\":4,\"user_uuid\":\"" + kUuid +
             R"(","base_payload":{"realm_name":null,"realm_uri":null}})";
  HttpResult r = t(uri);
  CHECK_OK(r);
  CHECK(r.body == R"({"result":"success","msg":""})");
}

// ---- against the mock upstream (needs the APNs/FCM pushers wired into the app) ----

TEST_CASE("push/notify via the mock: delivered, dead tokens deleted and reported, 410 for every server") {
  MockUpstream mock;
  TempDir dir;
  BouncerProcess b(mock.apns_section() + mock.fcm_section(dir) + "[push]\nnotify_deadline = 5s\n", &dir);
  auto s = register_server(b, "m1.aloha-test.org");
  auto other = register_server(b, "m2.aloha-test.org");
  const std::string ok_token = "a1" + std::string(62, '0');
  const std::string dead = "4100" + std::string(60, '1');
  const std::string bad = "400b" + std::string(60, '2');
  reg_device(b, s, 1, ok_token, {{"user_id", "1"}});
  reg_device(b, s, 1, dead, {{"user_id", "1"}});
  reg_device(b, s, 1, bad, {{"user_id", "1"}});
  reg_device(b, other, 1, dead, {{"user_id", "77"}});
  reg_device(b, s, 2, "unreg-fcm-token", {{"user_id", "1"}});
  reg_device(b, s, 2, "ok-fcm-token", {{"user_id", "1"}});
  HttpResult r = post_json(b, "push/notify",
                           R"({"user_id":1,"gcm_payload":{"event":"message"},"apns_payload":{"alert":"a"},)"
                           R"("android_devices":["unreg-fcm-token","ok-fcm-token"],)"
                           R"("apple_devices":[")" + ok_token + "\",\"" + dead + "\",\"" + bad + "\"]}",
                           s);
  CHECK(r.status == 200);
  CHECK(JsonBody(r.body).int64("total_apple_devices") == 3);
  CHECK(JsonBody(r.body).int64("total_android_devices") == 2);
  CHECK(deleted(r) == R"({"android_devices":["unreg-fcm-token"],"apple_devices":[")" + bad + "\",\"" + dead + "\"]}");
  // Deleted for every server.
  CHECK(sql_int(b.db_path(), "SELECT count(*) FROM devices WHERE lower(token) = '" + dead + "'") == 0);
  CHECK(b.stop().ok());
  CHECK(sql_int(b.db_path(), "SELECT sum(value) FROM push_counters WHERE realm_id IS NULL AND property = "
                             "'mobile_pushes_forwarded::day'") == 2);
}

TEST_CASE("push/notify via the mock: an answer reporting a deleted dead token waits for its deferred commit") {
  // commit_delay lets a batch of writes nobody waits on (the dead-token deletion) stay open for up
  // to 3 s here; the notify's answer, which reports the deletion, must still only leave once it is
  // committed, i.e. visible to another connection the moment the answer arrives.
  MockUpstream mock;
  TempDir dir;
  BouncerProcess b(mock.apns_section() + "[server]\ncommit_delay = 3s\n[push]\nnotify_deadline = 5s\n", &dir);
  auto s = register_server(b, "d1.aloha-test.org");
  const std::string live = "a2" + std::string(62, '0');
  const std::string dead = "4100" + std::string(60, '3');
  reg_device(b, s, 1, live, {{"user_id", "1"}});
  reg_device(b, s, 1, dead, {{"user_id", "2"}});
  HttpResult ok = post_json(b, "push/notify", R"({"user_id":1,"apns_payload":{"alert":"a"}})", s);
  CHECK(ok.status == 200);
  HttpResult r = post_json(b, "push/notify",
                           R"({"user_id":2,"apns_payload":{"alert":"a"},"apple_devices":[")" + dead + "\"]}", s);
  CHECK(r.status == 200);
  CHECK(deleted(r) == R"({"android_devices":[],"apple_devices":[")" + dead + "\"]}");
  CHECK(sql_int(b.db_path(), "SELECT count(*) FROM devices WHERE lower(token) = '" + dead + "'") == 0);
  CHECK(sql_int(b.db_path(), "SELECT count(*) FROM devices WHERE lower(token) = '" + live + "'") == 1);
  CHECK(b.stop().ok());
}

TEST_CASE("push/notify via the mock: a stalled app does not hold up another app") {
  MockUpstream stalled({"--delay-ms", "60000"});
  MockUpstream healthy;
  TempDir dir;
  BouncerProcess b(stalled.apns_section("slow", "org.slow.app") + healthy.apns_section("fast", "org.fast.app") +
                       "[push]\nnotify_deadline = 1s\n",
                   &dir);
  auto s = register_server(b, "iso.aloha-test.org");
  const std::string t1 = "a1" + std::string(62, '3');
  const std::string t2 = "a1" + std::string(62, '4');
  reg_device(b, s, 1, t1, {{"user_id", "1"}}, "org.slow.app");
  reg_device(b, s, 1, t2, {{"user_id", "2"}}, "org.fast.app");
  // Fill the stalled app with work, then send to the healthy one.
  for (int i = 0; i < 3; ++i) CHECK(post_json(b, "push/notify", R"({"user_id":1})", s).status == 200);
  auto t0 = std::chrono::steady_clock::now();
  HttpResult r = post_json(b, "push/notify", R"({"user_id":2,"apns_payload":{"alert":"x"}})", s);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  CHECK(r.status == 200);
  CHECK(ms < 900);  // answered by the healthy app's outcome, not at the 1 s deadline
  CHECK(healthy.stats().find("\"200\":1") != std::string::npos);
}

TEST_CASE("push/notify via the mock: counters per server and per realm; realm object in the answer") {
  MockUpstream mock;
  TempDir dir;
  BouncerProcess b(mock.apns_section() + "[push]\nnotify_deadline = 5s\n", &dir);
  auto s = register_server(b, "realmcount.aloha-test.org");
  CHECK(b.stop().ok());
  const std::string realm = "1f1f1f1f-2222-4333-8444-555566667777";
  exec_sql(b.db_path(), "INSERT INTO realms (server_id, uuid, created_ms, last_updated_ms) SELECT id, '" + realm +
                            "', 0, 0 FROM servers WHERE uuid = '" + s.uuid + "'");
  b.restart();
  const std::string t1 = "a2" + std::string(62, '5');
  const std::string t2 = "a3" + std::string(62, '6');
  reg_device(b, s, 1, t1, {{"user_id", "3"}, {"realm_uuid", realm}});
  reg_device(b, s, 1, t2, {{"user_id", "3"}, {"realm_uuid", realm}});
  HttpResult r = post_json(b, "push/notify",
                           R"({"user_id":3,"realm_uuid":")" + realm + R"(","apns_payload":{"alert":"x"}})", s);
  CHECK(r.status == 200);
  CHECK(r.body.find(R"("realm":{"can_push":true,"expected_end_timestamp":null})") != std::string::npos);
  CHECK(b.stop().ok());
  const std::string db = b.db_path();
  auto count = [&](const char* where, const char* prop) {
    return sql_int(db, std::string("SELECT coalesce(sum(value), 0) FROM push_counters WHERE ") + where +
                           " AND property = '" + prop + "'");
  };
  CHECK(count("realm_id IS NULL", "mobile_pushes_received::day") == 2);
  CHECK(count("realm_id IS NULL", "mobile_pushes_forwarded::day") == 2);
  CHECK(count("realm_id IS NOT NULL", "mobile_pushes_received::day") == 2);
  CHECK(count("realm_id IS NOT NULL", "mobile_pushes_forwarded::day") == 2);
}

TEST_CASE("push/notify: realm_uuid of this server (any case), of another server (403), unknown (ignored)") {
  TempDir dir;
  BouncerProcess b("", &dir);
  auto s = register_server(b, "realmcheck.aloha-test.org");
  auto other = register_server(b, "realmother.aloha-test.org");
  CHECK(b.stop().ok());
  const std::string mine = "2e2e2e2e-3333-4444-8555-666677778888";
  const std::string theirs = "3f3f3f3f-4444-4555-8666-777788889999";
  auto insert_realm = [&](const std::string& uuid, const std::string& server_uuid) {
    exec_sql(b.db_path(), "INSERT INTO realms (server_id, uuid, created_ms, last_updated_ms) SELECT id, '" + uuid +
                              "', 0, 0 FROM servers WHERE uuid = '" + server_uuid + "'");
  };
  insert_realm(mine, s.uuid);
  insert_realm(theirs, other.uuid);
  b.restart();
  reg_device(b, s, 2, "fcm-realmcheck", {{"user_id", "5"}});
  auto notify = [&](const std::string& realm_uuid) {
    return post_json(b, "push/notify", R"({"user_id":5,"realm_uuid":")" + realm_uuid + R"("})", s);
  };
  std::string upper = mine;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  HttpResult r = notify(upper);
  CHECK(r.status == 200);
  CHECK(r.body.find(R"("realm":{"can_push":true,"expected_end_timestamp":null})") != std::string::npos);
  CHECK_ERR(notify(theirs), 403, "REMOTE_REALM_SERVER_MISMATCH_ERROR",
            "Your organization is registered to a different Aloha server. Please contact Aloha support for "
            "assistance in resolving this issue.");
  r = notify("4a4a4a4a-5555-4666-8777-88889999aaaa");
  CHECK(r.status == 200);
  CHECK(r.body.find(R"("realm":null)") != std::string::npos);
  CHECK(b.stop().ok());
  CHECK(sql_int(b.db_path(), "SELECT coalesce(sum(value), 0) FROM push_counters WHERE realm_id IS NOT NULL AND "
                             "property = 'mobile_pushes_received::day'") == 1);
}

TEST_CASE("push/notify via the mock: a device unregistered while the sends are out is reported deleted") {
  MockUpstream slow({"--delay-ms", "1500"});
  TempDir dir;
  BouncerProcess b(slow.apns_section() + "[push]\nnotify_deadline = 5s\n", &dir);
  auto s = register_server(b, "concurrent.aloha-test.org");
  const std::string apns = "a4" + std::string(62, '7');
  reg_device(b, s, 1, apns, {{"user_id", "9"}});
  reg_device(b, s, 2, "fcm-concurrent", {{"user_id", "9"}});  // no [fcm]: counted, not sent
  HttpResult r;
  std::thread t([&] {
    r = post_json(b, "push/notify",
                  R"({"user_id":9,"apns_payload":{"alert":"x"},"android_devices":["fcm-concurrent"],)"
                  R"("apple_devices":[")" + apns + "\"]}",
                  s);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // the APNs send is out (1.5 s)
  HttpResult u = b.post_form(remotes("push/unregister"),
                             {{"token", "fcm-concurrent"}, {"token_kind", "2"}, {"user_id", "9"}}, s.auth());
  CHECK(u.status == 200);
  t.join();
  CHECK(r.status == 200);
  CHECK(JsonBody(r.body).int64("total_android_devices") == 1);
  CHECK(deleted(r) == R"({"android_devices":["fcm-concurrent"],"apple_devices":[]})");
}


TEST_CASE("push/notify with user_id and user_uuid finds rows registered by user_id alone (OR rule)") {
  BouncerProcess b;
  auto s = register_server(b, "orrule.aloha-test.org");
  const std::string ids = R"("user_id":7,"user_uuid":")" + kUuid + "\"";
  auto notify = [&](const std::string& token) {
    return post_json(b, "push/notify", notify_body(ids, R"("android_devices":[")" + token + "\"]"), s);
  };
  // An old server's registration, known to the restarted bouncer only from its database.
  reg_device(b, s, 2, "fcm-old", {{"user_id", "7"}});
  b.restart();
  HttpResult r = notify("fcm-old");
  CHECK(r.status == 200);
  CHECK(JsonBody(r.body).int64("total_android_devices") == 1);
  CHECK(deleted(r) == R"({"android_devices":[],"apple_devices":[]})");
  // The upgraded server registers it again with both ids: the row migrates to the uuid.
  reg_device(b, s, 2, "fcm-old", {{"user_id", "7"}, {"user_uuid", kUuid}});
  r = notify("fcm-old");
  CHECK(JsonBody(r.body).int64("total_android_devices") == 1);
  CHECK(deleted(r) == R"({"android_devices":[],"apple_devices":[]})");
  // The server has no user_id-only row left; one registered now is found at once.
  reg_device(b, s, 2, "fcm-new", {{"user_id", "7"}});
  r = notify("fcm-new");
  CHECK(JsonBody(r.body).int64("total_android_devices") == 2);
  CHECK(deleted(r) == R"({"android_devices":[],"apple_devices":[]})");
  // Unregistered by user_id: gone for a notify with both ids too.
  CHECK(b.post_form(remotes("push/unregister"), {{"token", "fcm-new"}, {"token_kind", "2"}, {"user_id", "7"}},
                    s.auth())
            .status == 200);
  r = notify("fcm-new");
  CHECK(JsonBody(r.body).int64("total_android_devices") == 1);
  CHECK(deleted(r) == R"({"android_devices":["fcm-new"],"apple_devices":[]})");
}

}  // TEST_SUITE
