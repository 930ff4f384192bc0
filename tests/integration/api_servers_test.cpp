// api.md §1 and §3: POST server/register and server/deactivate against the real binary.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "api_checks.h"

using namespace aloha;
using namespace aloha::test;

namespace {

const std::string kRegister = remotes("server/register");
const std::string kDeactivate = remotes("server/deactivate");
const std::string kUnregAll = remotes("push/unregister/all");
const std::string kDeactivatedMsg =
    "The mobile push notification service registration for your server has been deactivated";

Fields reg_fields(const std::string& id, const std::string& key, const std::string& host,
                  const std::string& email = "admin@aloha-test.org") {
  return {{"aloha_org_id", id}, {"aloha_org_key", key}, {"hostname", host}, {"contact_email", email}};
}

// An authenticated no-op (api.md §3: unregister/all always succeeds) to probe credentials.
HttpResult probe(BouncerProcess& b, const std::string& id, const std::string& key) {
  return b.post_form(kUnregAll, {{"user_id", "1"}}, BasicAuth{id, key});
}

std::string key_mismatch_msg(const std::string& id) {
  return "Aloha server auth failure: key does not match role " + id;
}

}  // namespace

TEST_SUITE("integration/api/server_register") {
  TEST_CASE("server/register: creates, then updates (created true/false), SIGTERM exits 0") {
    BouncerProcess b;
    std::string id = random_uuid4(), key = random_key();
    auto r = b.post_form(kRegister, reg_fields(id, key, "chat.aloha-test.org"));
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(true));
    r = b.post_form(kRegister, reg_fields(id, key, "chat.aloha-test.org", "other@aloha-test.org"));
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(false));
    // Moving to a free hostname is an update too.
    r = b.post_form(kRegister, reg_fields(id, key, "chat2.aloha-test.org"));
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(false));
    CHECK_OK(probe(b, id, key));
    auto st = b.stop();
    CHECK_MESSAGE(st.ok(), st.describe());
    // The registration survives a restart on the same database.
    b.restart();
    CHECK_OK(probe(b, id, key));
  }

  TEST_CASE("server/register: missing parameters are reported in parameter order") {
    BouncerProcess b;
    std::string id = random_uuid4(), key = random_key();
    struct Case {
      Fields f;
      std::string name;
    } cases[] = {
        {{{"aloha_org_key", key}, {"hostname", "a.aloha-test.org"}, {"contact_email", "a@aloha-test.org"}}, "aloha_org_id"},
        {{{"aloha_org_id", id}, {"hostname", "a.aloha-test.org"}, {"contact_email", "a@aloha-test.org"}}, "aloha_org_key"},
        {{{"aloha_org_id", id}, {"aloha_org_key", key}, {"contact_email", "a@aloha-test.org"}}, "hostname"},
        {{{"aloha_org_id", id}, {"aloha_org_key", key}, {"hostname", "a.aloha-test.org"}}, "contact_email"},
        {{}, "aloha_org_id"},
        // Missing key beats an invalid hostname and a malformed id (parameters come first).
        {{{"aloha_org_id", id}, {"hostname", "bad host"}}, "aloha_org_key"},
        {{{"aloha_org_id", id}, {"aloha_org_key", key}, {"hostname", "bad/host"}}, "contact_email"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.name);
      auto r = b.post_form(kRegister, c.f);
      CHECK_ERR(r, 400, "REQUEST_VARIABLE_MISSING", "Missing '" + c.name + "' argument");
      CHECK(JsonBody(r.body).str("var_name") == c.name);
    }
    // Each parameter is checked fully (missing, type, length) before the next one.
    CHECK_BAD(b.post_form(kRegister, {{"aloha_org_id", "short"}, {"hostname", "bad host"}}),
              "aloha_org_id is not length 36");
  }

  TEST_CASE("server/register: lengths, blanks and whitespace stripping of id and keys") {
    BouncerProcess b;
    std::string id = random_uuid4(), key = random_key();
    CHECK_BAD(b.post_form(kRegister, reg_fields(id.substr(0, 35), key, "a.aloha-test.org")),
              "aloha_org_id is not length 36");
    CHECK_BAD(b.post_form(kRegister, reg_fields(id + "0", key, "a.aloha-test.org")),
              "aloha_org_id is not length 36");
    CHECK_BAD(b.post_form(kRegister, reg_fields(id, key.substr(0, 63), "a.aloha-test.org")),
              "aloha_org_key is not length 64");
    CHECK_BAD(b.post_form(kRegister, reg_fields(id, key + "x", "a.aloha-test.org")),
              "aloha_org_key is not length 64");
    CHECK_BAD(b.post_form(kRegister, reg_fields("   ", key, "a.aloha-test.org")),
              "aloha_org_id cannot be blank");
    CHECK_BAD(b.post_form(kRegister, reg_fields(id, " \t ", "a.aloha-test.org")),
              "aloha_org_key cannot be blank");
    auto f = reg_fields(id, key, "a.aloha-test.org");
    f.push_back({"new_org_key", "short"});
    CHECK_BAD(b.post_form(kRegister, f), "new_org_key is not length 64");
    // Length is checked on the stripped value: padded values are accepted and stored stripped.
    auto r = b.post_form(kRegister, reg_fields("  " + id + " ", " " + key + "\t", "a.aloha-test.org"));
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(true));
    CHECK_OK(probe(b, id, key));
    // Order: the id's length (parameter stage) before the key's length.
    CHECK_BAD(b.post_form(kRegister, reg_fields("x", "y", "a.aloha-test.org")), "aloha_org_id is not length 36");
  }

  TEST_CASE("server/register: Invalid UUID for non-canonical or non-v4 ids, checked after email") {
    BouncerProcess b;
    std::string key = random_key();
    std::string good = random_uuid4();
    std::string upper = good;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::string v1 = good;
    v1[14] = '1';
    std::string bad_variant = good;
    bad_variant[19] = 'c';
    std::string no_hyphens = "0123456789abcdef0123456789abcdef0000";  // 36 chars, no hyphens
    std::string braces = std::string("{").append(good, 1, 34).append("}");
    int n = 0;
    for (const auto& id : {upper, v1, bad_variant, no_hyphens, braces, std::string(36, 'z')}) {
      CAPTURE(id);
      CHECK_BAD(b.post_form(kRegister, reg_fields(id, key, std::string("u").append(std::to_string(n++)).append(".aloha-test.org"))),
                "Invalid UUID");
    }
    // (2) hostname and (3) email come before (4) UUID.
    CHECK_BAD(b.post_form(kRegister, reg_fields(upper, key, "bad_host")), "bad_host is not a valid hostname");
    CHECK_BAD(b.post_form(kRegister, reg_fields(upper, key, "ok.aloha-test.org", "nope")),
              "Enter a valid email address.");
    // (2) before (3).
    CHECK_BAD(b.post_form(kRegister, reg_fields(good, key, "bad_host", "nope")),
              "bad_host is not a valid hostname");
  }

  TEST_CASE("server/register: hostname validation (components, DNS names, IPv4, [IPv6], ports)") {
    BouncerProcess b;
    std::string key = random_key();
    for (const std::string h : {"zulip.example.org/path", "zulip.example.org?x=1", "zulip.example.org#f",
                                "zulip.example.org?", "zulip.example.org#", "https://zulip.example.org"}) {
      CAPTURE(h);
      CHECK_BAD(b.post_form(kRegister, reg_fields(random_uuid4(), key, h)),
                h + " contains invalid components (e.g., path, query, fragment).");
    }
    const std::vector<std::string> invalid = {
        "single", "-bad.aloha-test.org", "bad-.aloha-test.org", "a..b.org", "aloha-test.c",
        "aloha-test.123", "aloha-test.o-g", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3",
        "1.2.3.4.5", "[not-an-ipv6]", "[::1", "::1", "host.aloha-test.org:123456",
        "host.aloha-test.org:", "host.aloha-test.org:8a", "user@host.aloha-test.org",
        "b\xc3\xbc" "cher.aloha-test.org", std::string(64, 'a') + ".org", "under_score.org",
        "space host.org", ".aloha-test.org", "aloha-test.org..", "[::1]:",
        "xn--.org"};
    for (const auto& h : invalid) {
      CAPTURE(h);
      CHECK_BAD(b.post_form(kRegister, reg_fields(random_uuid4(), key, h)), h + " is not a valid hostname");
    }
    const std::vector<std::string> valid = {
        "localhost", "localhost:9991", "1.2.3.4", "0.0.0.0", "255.255.255.255", "10.0.0.1:443",
        "[::1]", "[::1]:8443", "[2001:db8::1]", "chat.aloha-test.org", "chat.aloha-test.org.",
        "CHAT.Aloha-Test.ORG", "xn--bcher-kva.aloha-test.org", "aloha-test.xn--p1ai",
        "a-b.c-d.aloha-test.org:65535", std::string(63, 'a') + ".org", "x.aloha-test.org:1"};
    for (const auto& h : valid) {
      CAPTURE(h);
      auto r = b.post_form(kRegister, reg_fields(random_uuid4(), key, h));
      CHECK_OK(r);
      CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(true));
    }
    // Over 128 characters: rejected at the parameter stage. (api.md gives no msg of its own for the
    // length; §1's "<var> is too long (limit: N characters)" is the one expected.)
    std::string longh = std::string(60, 'a') + "." + std::string(60, 'b') + "." + std::string(10, 'c') + ".org";
    REQUIRE(longh.size() > 128);
    CHECK_BAD(b.post_form(kRegister, reg_fields(random_uuid4(), key, longh)),
              "hostname is too long (limit: 128 characters)");
  }

  TEST_CASE("server/register: contact_email validation and blocked domains") {
    BouncerProcess b;
    std::string key = random_key();
    int n = 0;
    // (append, not "lit" + to_string(): GCC 12 warns falsely on that, bug 105329)
    auto host = [&] { return std::string("e").append(std::to_string(n++)).append(".aloha-test.org"); };
    for (const std::string e :
         {"plain", "@aloha-test.org", "a@", "a@@aloha-test.org", "a..b@aloha-test.org", ".a@aloha-test.org",
          "a.@aloha-test.org", "a b@aloha-test.org", "a@aloha-test", "a@-x.aloha-test.org",
          "a@aloha-test.org.", "a@[1.2.3.4]", "a\"b@aloha-test.org", "a@x_y.org", "a@aloha-test.c"}) {
      CAPTURE(e);
      CHECK_BAD(b.post_form(kRegister, reg_fields(random_uuid4(), key, host(), e)), "Enter a valid email address.");
    }
    std::string long_local = std::string(64, 'a');
    std::string long_email = long_local + "@" + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                             std::string(63, 'd') + "." + std::string(63, 'e') + ".org";
    REQUIRE(long_email.size() > 320);
    {
      auto r = b.post_form(kRegister, reg_fields(random_uuid4(), key, host(), long_email));
      JsonBody j(r.body);
      CHECK(r.status == 400);
      CHECK_MESSAGE((j.str("msg") == "Enter a valid email address." ||
                     j.str("msg") == "contact_email is too long (limit: 320 characters)"),
                    show(r));
    }
    for (const std::string e : {"admin@example.com", "Admin@EXAMPLE.COM"}) {
      CAPTURE(e);
      CHECK_BAD(b.post_form(kRegister, reg_fields(random_uuid4(), key, host(), e)), "Invalid email address.");
    }
    for (const std::string e : {"first.last+tag@sub.aloha-test.org", "o'neil{x}=y@aloha-test.org",
                                "a@sub.example.com", "x@xn--bcher-kva.aloha-test.org", "A@B.CO"}) {
      CAPTURE(e);
      CHECK_OK(b.post_form(kRegister, reg_fields(random_uuid4(), key, host(), e)));
    }
  }

  TEST_CASE("server/register: blocked_email_domains comes from the config") {
    BouncerProcess b("[registration]\nblocked_email_domains = blocked.test, other.test\n");
    std::string key = random_key();
    CHECK_BAD(b.post_form(kRegister, reg_fields(random_uuid4(), key, "b1.aloha-test.org", "x@blocked.test")),
              "Invalid email address.");
    CHECK_BAD(b.post_form(kRegister, reg_fields(random_uuid4(), key, "b2.aloha-test.org", "x@Other.Test")),
              "Invalid email address.");
    CHECK_OK(b.post_form(kRegister, reg_fields(random_uuid4(), key, "b3.aloha-test.org", "x@example.com")));
  }

  TEST_CASE("server/register: zulip_* aliases, CONFUSING_VAR, and ignored parameters") {
    BouncerProcess b;
    std::string id = random_uuid4(), key = random_key();
    auto r = b.post_form(kRegister, {{"zulip_org_id", id}, {"zulip_org_key", key},
                                     {"hostname", "alias.aloha-test.org"}, {"contact_email", "a@aloha-test.org"}});
    CHECK_OK(r);
    JsonBody j(r.body);
    CHECK(j.boolean("created") == std::optional<bool>(true));
    CHECK_MESSAGE(!j.has("ignored_parameters_unsupported"), show(r));  // aliases count as used
    CHECK_OK(probe(b, id, key));

    r = b.post_form(kRegister, {{"aloha_org_id", id}, {"zulip_org_id", id}, {"aloha_org_key", key},
                                {"hostname", "alias.aloha-test.org"}, {"contact_email", "a@aloha-test.org"}});
    CHECK_ERR(r, 400, "REQUEST_CONFUSING_VAR", "Can't decide between 'aloha_org_id' and 'zulip_org_id' arguments");
    CHECK(JsonBody(r.body).str("var_name1") == "aloha_org_id");
    CHECK(JsonBody(r.body).str("var_name2") == "zulip_org_id");
    r = b.post_form(kRegister, {{"aloha_org_id", id}, {"zulip_org_key", key}, {"aloha_org_key", key},
                                {"hostname", "alias.aloha-test.org"}, {"contact_email", "a@aloha-test.org"}});
    CHECK_ERR(r, 400, "REQUEST_CONFUSING_VAR", "Can't decide between 'aloha_org_key' and 'zulip_org_key' arguments");
    CHECK(JsonBody(r.body).str("var_name1") == "aloha_org_key");
    CHECK(JsonBody(r.body).str("var_name2") == "zulip_org_key");
    // Messages use the primary name even when the alias was sent.
    CHECK_BAD(b.post_form(kRegister, {{"zulip_org_id", "x"}, {"zulip_org_key", key}, {"hostname", "h.org"},
                                      {"contact_email", "a@aloha-test.org"}}),
              "aloha_org_id is not length 36");
    CHECK_BAD(b.post_form(kRegister, {{"zulip_org_id", id}, {"zulip_org_key", "x"}, {"hostname", "h.org"},
                                      {"contact_email", "a@aloha-test.org"}}),
              "aloha_org_key is not length 64");

    // Zulip servers send an unused server_uuid: listed, sorted with any other unknown name.
    auto f = reg_fields(id, key, "alias.aloha-test.org");
    f.push_back({"server_uuid", id});
    r = b.post_form(kRegister, f);
    CHECK_OK(r);
    CHECK(JsonBody(r.body).raw("ignored_parameters_unsupported") == "[\"server_uuid\"]");
    f.push_back({"a_extra", "1"});
    r = b.post_form(kRegister, f);
    CHECK_OK(r);
    CHECK(JsonBody(r.body).raw("ignored_parameters_unsupported") == "[\"a_extra\",\"server_uuid\"]");
    // Query-string parameters count as form parameters (api.md §1).
    r = b.request("POST", kRegister + "?" + form_encode(reg_fields(id, key, "alias.aloha-test.org")),
                  {{"Content-Type", "application/x-www-form-urlencoded"}}, "");
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(false));
  }

  TEST_CASE("server/register: key rotation with new_org_key; new_org_key ignored on create") {
    BouncerProcess b;
    std::string id = random_uuid4(), key = random_key(), key2 = random_key();
    auto f = reg_fields(id, key, "rot.aloha-test.org");
    f.push_back({"new_org_key", key2});
    auto r = b.post_form(kRegister, f);  // create: new_org_key ignored
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(true));
    CHECK_OK(probe(b, id, key));
    CHECK_ERR(probe(b, id, key2), 401, "UNAUTHORIZED", key_mismatch_msg(id));

    r = b.post_form(kRegister, f);  // update: rotates to key2
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(false));
    CHECK_ERR(probe(b, id, key), 401, "UNAUTHORIZED", key_mismatch_msg(id));
    CHECK_OK(probe(b, id, key2));
    // The old key no longer registers either.
    r = b.post_form(kRegister, reg_fields(id, key, "rot.aloha-test.org"));
    CHECK_ERR(r, 400, "INVALID_ZULIP_SERVER", key_mismatch_msg(id));
    r = b.post_form(kRegister, reg_fields(id, key2, "rot.aloha-test.org"));
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(false));
  }

  TEST_CASE("server/register: wrong key for a known id is 400 INVALID_ZULIP_SERVER with role") {
    BouncerProcess b;
    auto s = register_server(b, "wk.aloha-test.org");
    auto r = b.post_form(kRegister, reg_fields(s.uuid, random_key(), "wk.aloha-test.org"));
    CHECK_ERR(r, 400, "INVALID_ZULIP_SERVER", key_mismatch_msg(s.uuid));
    CHECK(JsonBody(r.body).str("role") == s.uuid);
  }

  TEST_CASE("server/register: a hostname held by another active server is refused") {
    BouncerProcess b;
    auto a = register_server(b, "taken.aloha-test.org");
    auto r = b.post_form(kRegister, reg_fields(random_uuid4(), random_key(), "taken.aloha-test.org"));
    CHECK_ERR(r, 400, "HOSTNAME_ALREADY_IN_USE_BOUNCER_ERROR", "A server with hostname taken.aloha-test.org already exists");
    CHECK(JsonBody(r.body).str("hostname") == "taken.aloha-test.org");
    // A known id moving onto a taken hostname (deliberate tightening).
    auto c = register_server(b, "c.aloha-test.org");
    r = b.post_form(kRegister, reg_fields(c.uuid, c.key, "taken.aloha-test.org"));
    CHECK_ERR(r, 400, "HOSTNAME_ALREADY_IN_USE_BOUNCER_ERROR", "A server with hostname taken.aloha-test.org already exists");
    CHECK(JsonBody(r.body).str("hostname") == "taken.aloha-test.org");
    // Moving to another hostname frees the old one.
    auto d = register_server(b, "moving.aloha-test.org");
    CHECK_OK(b.post_form(kRegister, reg_fields(d.uuid, d.key, "moved.aloha-test.org")));
    r = b.post_form(kRegister, reg_fields(random_uuid4(), random_key(), "moving.aloha-test.org"));
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(true));
    // Re-registering with its own hostname is fine.
    r = b.post_form(kRegister, reg_fields(a.uuid, a.key, "taken.aloha-test.org"));
    CHECK_OK(r);
    // Hostnames compare case-sensitively as given.
    r = b.post_form(kRegister, reg_fields(random_uuid4(), random_key(), "Taken.aloha-test.org"));
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(true));
  }

  TEST_CASE("server/deactivate: later auth fails, the hostname is freed, re-register is refused") {
    BouncerProcess b;
    auto s = register_server(b, "deact.aloha-test.org");
    auto r = b.post_form(kDeactivate, {}, s.auth());
    CHECK_OK(r);
    // §2 last row.
    CHECK_ERR(probe(b, s.uuid, s.key), 401, "UNAUTHORIZED", kDeactivatedMsg);
    CHECK_ERR(b.post_form(kDeactivate, {}, s.auth()), 401, "UNAUTHORIZED", kDeactivatedMsg);
    // A wrong key is still reported as a key mismatch (key before deactivated).
    CHECK_ERR(probe(b, s.uuid, random_key()), 401, "UNAUTHORIZED", key_mismatch_msg(s.uuid));

    // server/register on the deactivated id: right key → 401 REALM_DEACTIVATED.
    r = b.post_form(kRegister, reg_fields(s.uuid, s.key, "deact.aloha-test.org"));
    CHECK_ERR(r, 401, "REALM_DEACTIVATED", kDeactivatedMsg);
    // Wrong key → 400 INVALID_ZULIP_SERVER even though deactivated.
    r = b.post_form(kRegister, reg_fields(s.uuid, random_key(), "deact.aloha-test.org"));
    CHECK_ERR(r, 400, "INVALID_ZULIP_SERVER", key_mismatch_msg(s.uuid));
    CHECK(JsonBody(r.body).str("role") == s.uuid);

    // A deactivated registration holds no hostname.
    auto other = random_uuid4();
    r = b.post_form(kRegister, reg_fields(other, random_key(), "deact.aloha-test.org"));
    CHECK_OK(r);
    CHECK(JsonBody(r.body).boolean("created") == std::optional<bool>(true));
    // Order for a known id: deactivated before hostname-taken.
    r = b.post_form(kRegister, reg_fields(s.uuid, s.key, "deact.aloha-test.org"));
    CHECK_ERR(r, 401, "REALM_DEACTIVATED", kDeactivatedMsg);
    // Deactivation survives a restart.
    b.restart();
    CHECK_ERR(probe(b, s.uuid, s.key), 401, "UNAUTHORIZED", kDeactivatedMsg);
  }

  TEST_CASE("server/deactivate: needs Basic auth and ignores unknown form fields by listing them") {
    BouncerProcess b;
    auto s = register_server(b, "d2.aloha-test.org");
    CHECK_ERR(b.post_form(kDeactivate, {}), 401, "UNAUTHORIZED", "Missing authorization header for basic auth");
    CHECK_ERR(b.post_form(kDeactivate, {}, BasicAuth{s.uuid, random_key()}), 401, "UNAUTHORIZED",
              key_mismatch_msg(s.uuid));
    CHECK_OK(probe(b, s.uuid, s.key));  // the failed attempts deactivated nothing
  }
}
