// api.md §1 and §3: push/register, push/unregister and push/unregister/all against the real binary:
// every validation rule in its order, idempotence, id→uuid migration, APNs case-insensitivity,
// the OR identity rule and isolation between servers.
#include <doctest/doctest.h>

#include <string>

#include "api_checks.h"
#include "notify_support.h"  // exec_sql

using namespace aloha;
using namespace aloha::test;

namespace {

const std::string kReg = remotes("push/register");
const std::string kUnreg = remotes("push/unregister");
const std::string kUnregAll = remotes("push/unregister/all");
const std::string kApnsToken = "c0ffee00deadbeef" + std::string(48, 'a');  // 64 hex digits
const std::string kAppId = "org.aloha.ios";

}  // namespace

TEST_SUITE("integration/api/push_register") {
  TEST_CASE("push/register: a user's full id range is a 400, not a retry-later; refreshes still work") {
    BouncerProcess b;
    auto s = register_server(b, "full.aloha-test.org");
    CHECK_OK(b.post_form(kReg, Fields{{"user_id", "77"}, {"token", "seed-first"}, {"token_kind", "2"}}, s.auth()));
    b.stop();
    // Schema v3 places user 77's rows at ids server_id << 40 | 77 << 12 | 0..4095: fill the rest
    // of that range directly (4095 registrations over HTTP would each wait for an fsync).
    notify::exec_sql(b.db_path(),
             "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 4095) "
             "INSERT INTO legacy_devices (id, server_id, identity, kind, token_norm, registered_ms) "
             "SELECT (d.server_id << 40) + (77 << 12) + v, d.server_id, 77, 2, 'seed-' || v, 1 "
             "FROM n, (SELECT server_id FROM legacy_devices WHERE token_norm = 'seed-first') d");
    b.restart();
    CHECK_BAD(b.post_form(kReg, Fields{{"user_id", "77"}, {"token", "one-more"}, {"token_kind", "2"}}, s.auth()),
              "Too many devices registered for this user");
    CHECK_OK(b.post_form(kReg, Fields{{"user_id", "77"}, {"token", "seed-17"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, Fields{{"user_id", "78"}, {"token", "one-more"}, {"token_kind", "2"}}, s.auth()));
    // After an unregister the user has room again.
    CHECK_OK(b.post_form(kUnreg, Fields{{"user_id", "77"}, {"token", "seed-17"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, Fields{{"user_id", "77"}, {"token", "one-more"}, {"token_kind", "2"}}, s.auth()));
  }

  TEST_CASE("push/register: parameter types, ranges and formats, in parameter order") {
    BouncerProcess b;
    auto s = register_server(b, "pr.aloha-test.org");
    auto reg = [&](const Fields& f) { return b.post_form(kReg, f, s.auth()); };

    // Json[int] user_id.
    CHECK_BAD(reg({{"user_id", "abc"}, {"token", "t"}, {"token_kind", "2"}}), "user_id is not valid JSON");
    CHECK_BAD(reg({{"user_id", "\"5\""}, {"token", "t"}, {"token_kind", "2"}}), "user_id is not an integer");
    CHECK_BAD(reg({{"user_id", "1.5"}, {"token", "t"}, {"token_kind", "2"}}), "user_id is not an integer");
    CHECK_BAD(reg({{"user_id", "true"}, {"token", "t"}, {"token_kind", "2"}}), "user_id is not an integer");
    CHECK_BAD(reg({{"user_id", "9223372036854775808"}, {"token", "t"}, {"token_kind", "2"}}), "user_id is too large");
    CHECK_BAD(reg({{"user_id", "-9223372036854775809"}, {"token", "t"}, {"token_kind", "2"}}), "user_id is too large");
    CHECK_OK(reg({{"user_id", "9223372036854775807"}, {"token", "big"}, {"token_kind", "2"}}));
    CHECK_OK(reg({{"user_id", "-9223372036854775808"}, {"token", "small"}, {"token_kind", "2"}}));
    // UUIDs.
    CHECK_BAD(reg({{"user_uuid", "nope"}, {"token", "t"}, {"token_kind", "2"}}), "Invalid user_uuid");
    CHECK_BAD(reg({{"user_uuid", random_uuid4().substr(1)}, {"token", "t"}, {"token_kind", "2"}}), "Invalid user_uuid");
    CHECK_BAD(reg({{"user_id", "1"}, {"realm_uuid", "nope"}, {"token", "t"}, {"token_kind", "2"}}), "Invalid realm_uuid");
    // user_id range before user_uuid, user_uuid before realm_uuid, all before token_kind (2).
    // (Whether they also precede a *missing* later parameter is left open: api.md's "(missing,
    // type, the user_id range, the UUIDs, ...)" reads either way.)
    CHECK_BAD(reg({{"user_id", "99999999999999999999"}, {"user_uuid", "x"}, {"realm_uuid", "y"}, {"token", "t"},
                   {"token_kind", "9"}}),
              "user_id is too large");
    CHECK_BAD(reg({{"user_uuid", "x"}, {"realm_uuid", "y"}, {"token", "t"}, {"token_kind", "9"}}), "Invalid user_uuid");
    CHECK_BAD(reg({{"user_id", "1"}, {"realm_uuid", "y"}, {"token", "t"}, {"token_kind", "9"}}), "Invalid realm_uuid");
    // Required token, token_kind.
    {
      auto r = reg({{"user_id", "1"}, {"token_kind", "2"}});
      CHECK_ERR(r, 400, "REQUEST_VARIABLE_MISSING", "Missing 'token' argument");
      CHECK(JsonBody(r.body).str("var_name") == "token");
      r = reg({{"user_id", "1"}, {"token", "t"}});
      CHECK_ERR(r, 400, "REQUEST_VARIABLE_MISSING", "Missing 'token_kind' argument");
      CHECK(JsonBody(r.body).str("var_name") == "token_kind");
    }
    CHECK_BAD(reg({{"user_id", "1"}, {"token", "  "}, {"token_kind", "2"}}), "token cannot be blank");
    CHECK_BAD(reg({{"user_id", "1"}, {"token", ""}, {"token_kind", "2"}}), "token cannot be blank");
    CHECK_BAD(reg({{"user_id", "1"}, {"token", "t"}, {"token_kind", "fcm"}}), "token_kind is not valid JSON");
    CHECK_BAD(reg({{"user_id", "1"}, {"token", "t"}, {"token_kind", "\"2\""}}), "token_kind is not an integer");
    // ios_app_id format applies to FCM too, and is a parameter-stage check (before token_kind).
    CHECK_BAD(reg({{"user_id", "1"}, {"token", "t"}, {"token_kind", "2"}, {"ios_app_id", "bad app"}}),
              "ios_app_id has invalid format");
    CHECK_BAD(reg({{"user_id", "1"}, {"token", "t"}, {"token_kind", "9"}, {"ios_app_id", "org/x"}}),
              "ios_app_id has invalid format");
    CHECK_BAD(reg({{"user_id", "1"}, {"token", kApnsToken}, {"token_kind", "1"}, {"ios_app_id", ""}}),
              "ios_app_id has invalid format");
  }

  TEST_CASE("push/register: rules after the parameters in order: kind, length, APNs hex, ios_app_id, identity") {
    BouncerProcess b;
    auto s = register_server(b, "pr2.aloha-test.org");
    auto reg = [&](const Fields& f) { return b.post_form(kReg, f, s.auth()); };
    std::string too_long(4097, 'a');
    // (2) token_kind.
    for (const char* k : {"0", "3", "-1", "100"}) {
      CAPTURE(k);
      CHECK_BAD(reg({{"token", too_long}, {"token_kind", k}}), "Invalid token type");
    }
    // (3) length: 4096 is fine, 4097 is not.
    CHECK_BAD(reg({{"token", too_long}, {"token_kind", "2"}}), "Empty or invalid length token");
    CHECK_BAD(reg({{"token", too_long}, {"token_kind", "1"}}), "Empty or invalid length token");
    CHECK_OK(reg({{"user_id", "1"}, {"token", std::string(4096, 'f')}, {"token_kind", "2"}}));
    // (4) APNs hex: non-hex, odd length.
    CHECK_BAD(reg({{"token", "xyz1"}, {"token_kind", "1"}}), "Invalid APNS token");
    CHECK_BAD(reg({{"token", "abc"}, {"token_kind", "1"}}), "Invalid APNS token");
    CHECK_BAD(reg({{"token", "ab cd"}, {"token_kind", "1"}, {"ios_app_id", kAppId}, {"user_id", "1"}}),
              "Invalid APNS token");
    // FCM tokens need not be hex.
    CHECK_OK(reg({{"user_id", "1"}, {"token", "fcm:token-_xyz"}, {"token_kind", "2"}}));
    // (5) Missing ios_app_id for APNs.
    CHECK_BAD(reg({{"token", kApnsToken}, {"token_kind", "1"}}), "Missing ios_app_id");
    // (6) identity.
    CHECK_BAD(reg({{"token", kApnsToken}, {"token_kind", "1"}, {"ios_app_id", kAppId}}),
              "Missing user_id or user_uuid");
    CHECK_BAD(reg({{"token", "fcm1"}, {"token_kind", "2"}, {"realm_uuid", random_uuid4()}}),
              "Missing user_id or user_uuid");
    // Success with APNs, user_uuid only, and an unknown realm (ignored).
    CHECK_OK(reg({{"user_uuid", random_uuid4()}, {"token", kApnsToken}, {"token_kind", "1"}, {"ios_app_id", kAppId},
                  {"realm_uuid", random_uuid4()}}));
    // Mixed-case hex is a valid APNs token.
    CHECK_OK(reg({{"user_id", "2"}, {"token", "ABCDEF0123456789abcdef"}, {"token_kind", "1"}, {"ios_app_id", kAppId}}));
    // Unused parameters are listed (Zulip servers send server_uuid).
    auto r = reg({{"user_id", "3"}, {"token", "fcm3"}, {"token_kind", "2"}, {"server_uuid", s.uuid}});
    CHECK_OK(r);
    CHECK(JsonBody(r.body).raw("ignored_parameters_unsupported") == "[\"server_uuid\"]");
    // A realm of another server (403 REMOTE_REALM_SERVER_MISMATCH_ERROR) needs realms, which only
    // server/analytics creates: not testable until that endpoint exists.
  }

  TEST_CASE("push/register: idempotent; an existing row is not duplicated; unregister removes it once") {
    BouncerProcess b;
    auto s = register_server(b, "idem.aloha-test.org");
    Fields f{{"user_id", "10"}, {"token", "fcm-idem"}, {"token_kind", "2"}};
    CHECK_OK(b.post_form(kReg, f, s.auth()));
    CHECK_OK(b.post_form(kReg, f, s.auth()));
    CHECK_OK(b.post_form(kReg, f, s.auth()));
    CHECK_OK(b.post_form(kUnreg, f, s.auth()));
    CHECK_BAD(b.post_form(kUnreg, f, s.auth()), "Token does not exist");
    // Survives a restart: registered rows are durable.
    CHECK_OK(b.post_form(kReg, f, s.auth()));
    b.restart();
    CHECK_OK(b.post_form(kUnreg, f, s.auth()));
  }

  TEST_CASE("push/register: user_id + user_uuid replaces the id-keyed row by a uuid-keyed one") {
    BouncerProcess b;
    auto s = register_server(b, "mig.aloha-test.org");
    std::string uuid = random_uuid4();
    CHECK_OK(b.post_form(kReg, {{"user_id", "42"}, {"token", "fcm-mig"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_id", "42"}, {"user_uuid", uuid}, {"token", "fcm-mig"}, {"token_kind", "2"}},
                         s.auth()));
    // The id-keyed row is gone (Zulip deletes it and keys the new row by uuid only)...
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "42"}, {"token", "fcm-mig"}, {"token_kind", "2"}}, s.auth()),
              "Token does not exist");
    // ...and the uuid-keyed row is there.
    CHECK_OK(b.post_form(kUnreg, {{"user_uuid", uuid}, {"token", "fcm-mig"}, {"token_kind", "2"}}, s.auth()));
    CHECK_BAD(b.post_form(kUnreg, {{"user_uuid", uuid}, {"token", "fcm-mig"}, {"token_kind", "2"}}, s.auth()),
              "Token does not exist");
  }

  TEST_CASE("push/register: user_uuid is compared in lowercase") {
    BouncerProcess b;
    auto s = register_server(b, "uuidcase.aloha-test.org");
    std::string uuid = random_uuid4();
    std::string upper = uuid;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    CHECK_OK(b.post_form(kReg, {{"user_uuid", upper}, {"token", "fcm-u"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kUnreg, {{"user_uuid", uuid}, {"token", "fcm-u"}, {"token_kind", "2"}}, s.auth()));
  }
}

TEST_SUITE("integration/api/push_unregister") {
  TEST_CASE("push/unregister: validation order and ios_app_id listed as ignored") {
    BouncerProcess b;
    auto s = register_server(b, "pu.aloha-test.org");
    auto unreg = [&](const Fields& f) { return b.post_form(kUnreg, f, s.auth()); };
    auto r = unreg({{"token_kind", "2"}, {"user_id", "1"}});
    CHECK_ERR(r, 400, "REQUEST_VARIABLE_MISSING", "Missing 'token' argument");
    r = unreg({{"token", "t"}, {"user_id", "1"}});
    CHECK_ERR(r, 400, "REQUEST_VARIABLE_MISSING", "Missing 'token_kind' argument");
    // Parameters (incl. user_id range and UUIDs) before the token rules.
    CHECK_BAD(unreg({{"token", "t"}, {"token_kind", "9"}, {"user_id", "99999999999999999999"}}), "user_id is too large");
    CHECK_BAD(unreg({{"token", "t"}, {"token_kind", "9"}, {"user_uuid", "x"}}), "Invalid user_uuid");
    CHECK_BAD(unreg({{"token", "t"}, {"token_kind", "9"}, {"user_id", "1"}, {"realm_uuid", "x"}}), "Invalid realm_uuid");
    CHECK_BAD(unreg({{"token", "t"}, {"token_kind", "x"}}), "token_kind is not valid JSON");
    CHECK_BAD(unreg({{"token", "t"}, {"token_kind", "9"}}), "Invalid token type");
    CHECK_BAD(unreg({{"token", std::string(4097, 'a')}, {"token_kind", "1"}}), "Empty or invalid length token");
    CHECK_BAD(unreg({{"token", "zz"}, {"token_kind", "1"}}), "Invalid APNS token");
    CHECK_BAD(unreg({{"token", "aa"}, {"token_kind", "1"}}), "Missing user_id or user_uuid");
    CHECK_BAD(unreg({{"token", "aa"}, {"token_kind", "1"}, {"user_id", "1"}}), "Token does not exist");
    // ios_app_id is not a parameter of unregister: it is ignored and listed.
    CHECK_OK(b.post_form(kReg, {{"user_id", "1"}, {"token", "aa"}, {"token_kind", "1"}, {"ios_app_id", kAppId}}, s.auth()));
    r = unreg({{"token", "aa"}, {"token_kind", "1"}, {"user_id", "1"}, {"ios_app_id", "not valid!"}});
    CHECK_OK(r);
    CHECK(JsonBody(r.body).raw("ignored_parameters_unsupported") == "[\"ios_app_id\"]");
  }

  TEST_CASE("push/unregister: APNs tokens match case-insensitively, FCM tokens exactly, per kind") {
    BouncerProcess b;
    auto s = register_server(b, "case.aloha-test.org");
    std::string upper = "ABCDEF0123456789";
    CHECK_OK(b.post_form(kReg, {{"user_id", "5"}, {"token", upper}, {"token_kind", "1"}, {"ios_app_id", kAppId}}, s.auth()));
    // Same token in another case is the same APNs token (idempotent).
    CHECK_OK(b.post_form(kReg, {{"user_id", "5"}, {"token", "abcdef0123456789"}, {"token_kind", "1"}, {"ios_app_id", kAppId}}, s.auth()));
    // Wrong kind: no such FCM token.
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "5"}, {"token", upper}, {"token_kind", "2"}}, s.auth()), "Token does not exist");
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "5"}, {"token", "AbCdEf0123456789"}, {"token_kind", "1"}}, s.auth()));
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "5"}, {"token", upper}, {"token_kind", "1"}}, s.auth()), "Token does not exist");

    CHECK_OK(b.post_form(kReg, {{"user_id", "5"}, {"token", "FcmToken"}, {"token_kind", "2"}}, s.auth()));
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "5"}, {"token", "fcmtoken"}, {"token_kind", "2"}}, s.auth()), "Token does not exist");
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "5"}, {"token", "FcmToken"}, {"token_kind", "2"}}, s.auth()));
  }

  TEST_CASE("push/unregister: OR identity rule, other users and other servers untouched") {
    BouncerProcess b;
    auto s = register_server(b, "or.aloha-test.org");
    auto t = register_server(b, "or2.aloha-test.org");
    std::string uuid = random_uuid4();
    CHECK_OK(b.post_form(kReg, {{"user_id", "7"}, {"token", "tok-a"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_uuid", uuid}, {"token", "tok-a"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_id", "8"}, {"token", "tok-a"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_id", "7"}, {"token", "tok-a"}, {"token_kind", "2"}}, t.auth()));
    // Another user's identity finds nothing of user 7.
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "9"}, {"token", "tok-a"}, {"token_kind", "2"}}, s.auth()), "Token does not exist");
    // user_uuid = U OR user_id = 7 removes both rows of this server.
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "7"}, {"user_uuid", uuid}, {"token", "tok-a"}, {"token_kind", "2"}}, s.auth()));
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "7"}, {"token", "tok-a"}, {"token_kind", "2"}}, s.auth()), "Token does not exist");
    CHECK_BAD(b.post_form(kUnreg, {{"user_uuid", uuid}, {"token", "tok-a"}, {"token_kind", "2"}}, s.auth()), "Token does not exist");
    // User 8 and the other server keep theirs.
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "8"}, {"token", "tok-a"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "7"}, {"token", "tok-a"}, {"token_kind", "2"}}, t.auth()));
  }

  TEST_CASE("push/unregister/all: removes every token of the identity and always succeeds") {
    BouncerProcess b;
    auto s = register_server(b, "all.aloha-test.org");
    auto t = register_server(b, "all2.aloha-test.org");
    std::string uuid = random_uuid4();
    CHECK_BAD(b.post_form(kUnregAll, {}, s.auth()), "Missing user_id or user_uuid");
    CHECK_BAD(b.post_form(kUnregAll, {{"realm_uuid", random_uuid4()}}, s.auth()), "Missing user_id or user_uuid");
    CHECK_BAD(b.post_form(kUnregAll, {{"user_uuid", "x"}}, s.auth()), "Invalid user_uuid");
    CHECK_BAD(b.post_form(kUnregAll, {{"user_id", "x"}}, s.auth()), "user_id is not valid JSON");
    CHECK_BAD(b.post_form(kUnregAll, {{"user_id", "1"}, {"realm_uuid", "x"}}, s.auth()), "Invalid realm_uuid");
    CHECK_OK(b.post_form(kUnregAll, {{"user_id", "12345"}}, s.auth()));  // nothing to delete: still 200

    CHECK_OK(b.post_form(kReg, {{"user_id", "3"}, {"token", "f1"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_id", "3"}, {"token", "aabb"}, {"token_kind", "1"}, {"ios_app_id", kAppId}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_uuid", uuid}, {"token", "f2"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_id", "4"}, {"token", "f1"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_id", "3"}, {"token", "f1"}, {"token_kind", "2"}}, t.auth()));
    auto r = b.post_form(kUnregAll, {{"user_id", "3"}, {"user_uuid", uuid}, {"token", "ignored"}}, s.auth());
    CHECK_OK(r);
    CHECK(JsonBody(r.body).raw("ignored_parameters_unsupported") == "[\"token\"]");
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "3"}, {"token", "f1"}, {"token_kind", "2"}}, s.auth()), "Token does not exist");
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "3"}, {"token", "AABB"}, {"token_kind", "1"}}, s.auth()), "Token does not exist");
    CHECK_BAD(b.post_form(kUnreg, {{"user_uuid", uuid}, {"token", "f2"}, {"token_kind", "2"}}, s.auth()), "Token does not exist");
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "4"}, {"token", "f1"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "3"}, {"token", "f1"}, {"token_kind", "2"}}, t.auth()));
  }
}

TEST_SUITE("integration/api/privacy") {
  TEST_CASE("privacy: logs never hold org keys or full device tokens (even at debug level)") {
    BouncerProcess b("[server]\nlog_level = debug\n");
    auto s = register_server(b, "priv.aloha-test.org");
    const std::string apns = "feedfacecafebeef0123456789abcdef" + std::string(32, 'e');
    const std::string fcm = "fcm-secret-token-" + random_key(40);
    CHECK_OK(b.post_form(kReg, {{"user_id", "1"}, {"token", apns}, {"token_kind", "1"}, {"ios_app_id", kAppId}}, s.auth()));
    CHECK_OK(b.post_form(kReg, {{"user_id", "1"}, {"token", fcm}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "1"}, {"token", fcm}, {"token_kind", "2"}}, s.auth()));
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "1"}, {"token", fcm}, {"token_kind", "2"}}, s.auth()),
              "Token does not exist");
    // A failed auth with the real key of another id must not echo the key either.
    b.post_form(kUnregAll, {{"user_id", "1"}}, BasicAuth{random_uuid4(), s.key});
    auto st = b.stop();
    CHECK_MESSAGE(st.ok(), st.describe());
    std::string log = b.log_text();
    CHECK(log.find("listening on 127.0.0.1:") != std::string::npos);
    CHECK_MESSAGE(log.find(s.key) == std::string::npos, "org key found in the log");
    CHECK_MESSAGE(log.find(apns) == std::string::npos, "APNs token found in the log");
    CHECK_MESSAGE(log.find(fcm) == std::string::npos, "FCM token found in the log");
    CHECK_MESSAGE(log.find(cli::basic_auth(s.uuid, s.key).substr(6)) == std::string::npos,
                  "Authorization credentials found in the log");
  }
}

TEST_SUITE("integration/api/encodings") {
  TEST_CASE("form endpoints also take multipart/form-data and query-string parameters (api.md §1)") {
    BouncerProcess b;
    auto s = register_server(b, "enc.aloha-test.org");
    std::string auth = cli::basic_auth(s.uuid, s.key);
    const std::string boundary = "----alohaBoundary7MA4YWxk";
    std::string body;
    for (const auto& [k, v] : Fields{{"user_id", "77"}, {"token", "multi part token"}, {"token_kind", "2"}})
      body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + k + "\"\r\n\r\n" + v + "\r\n";
    body += "--" + boundary + "--\r\n";
    auto r = b.request("POST", kReg,
                       {{"Content-Type", "multipart/form-data; boundary=" + boundary}, {"Authorization", auth}}, body);
    CHECK_OK(r);
    // Query-string parameters, empty body.
    r = b.request("POST", kUnreg + "?" + form_encode({{"user_id", "77"}, {"token", "multi part token"}, {"token_kind", "2"}}),
                  {{"Authorization", auth}}, "");
    CHECK_OK(r);
    CHECK_BAD(b.post_form(kUnreg, {{"user_id", "77"}, {"token", "multi part token"}, {"token_kind", "2"}}, s.auth()),
              "Token does not exist");
  }

  TEST_CASE("push/register: the token is whitespace-stripped; Json[int] rejects 1.0") {
    BouncerProcess b;
    auto s = register_server(b, "strip.aloha-test.org");
    CHECK_OK(b.post_form(kReg, {{"user_id", "1"}, {"token", "  spaced-token\t"}, {"token_kind", "2"}}, s.auth()));
    CHECK_OK(b.post_form(kUnreg, {{"user_id", "1"}, {"token", "spaced-token"}, {"token_kind", "2"}}, s.auth()));
    CHECK_BAD(b.post_form(kReg, {{"user_id", "1"}, {"token", "t"}, {"token_kind", "2.0"}}, s.auth()),
              "token_kind is not an integer");
    CHECK_BAD(b.post_form(kReg, {{"user_id", "1"}, {"token", "t"}, {"token_kind", "null"}}, s.auth()),
              "token_kind is not an integer");
  }
}
