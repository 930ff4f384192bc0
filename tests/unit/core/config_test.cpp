#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/config.h"

using aloha::Config;
using aloha::ConfigError;
using aloha::parse_config;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_config(text, "t.conf");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string shipped_conf_path() {
  if (const char* d = std::getenv("ALOHA_TEST_DATA")) return std::string(d) + "/../../conf/aloha-bouncer.conf";
  if (const char* r = std::getenv("ALOHA_SOURCE_ROOT")) return std::string(r) + "/conf/aloha-bouncer.conf";
  return "../conf/aloha-bouncer.conf";
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const char* kTokenApns = "key_file = k.p8\nkey_id = ABCDE12345\nteam_id = TEAM123456\n";

}  // namespace

TEST_SUITE("config") {

TEST_CASE("config: empty text gives every default") {
  Config c = parse_config("", "t.conf");
  CHECK(c.server.listen_host == "127.0.0.1");
  CHECK(c.server.listen_port == 8080);
  CHECK(c.server.database == "var/aloha-bouncer.sqlite3");
  CHECK(c.server.log_level == aloha::LogLevel::info);
  CHECK_FALSE(c.server.log_tokens);
  CHECK(c.server.shutdown_timeout_ms == 10'000);
  CHECK(c.limits.requests_per_minute == 1000);
  CHECK(c.limits.max_body_bytes == 8u * 1024 * 1024);
  CHECK(c.limits.max_header_bytes == 16u * 1024);
  CHECK(c.limits.max_headers == 100);
  CHECK(c.limits.header_timeout_ms == 10'000);
  CHECK(c.limits.body_timeout_ms == 30'000);
  CHECK(c.limits.idle_timeout_ms == 60'000);
  CHECK(c.limits.max_connections == 1024);
  CHECK(c.registration.blocked_email_domains == std::vector<std::string>{"example.com"});
  CHECK(c.push.policy == "allow");
  CHECK(c.push.deny_reason == "Missing data");
  CHECK(c.push.dead_token_guard_share == 0.5);
  CHECK(c.apns.empty());
  CHECK_FALSE(c.fcm.enabled());
  CHECK(c.fcm.endpoint == "https://fcm.googleapis.com");
}

TEST_CASE("config: the shipped conf/aloha-bouncer.conf parses to the defaults") {
  std::string path = shipped_conf_path();
  CAPTURE(path);
  Config c = aloha::load_config(path);
  Config d = parse_config("", "defaults");
  CHECK(c.server.listen_host == "127.0.0.1");
  CHECK(c.server.listen_port == 8080);
  CHECK(c.server.database == "var/aloha-bouncer.sqlite3");
  CHECK(c.apns.empty());
  CHECK_FALSE(c.fcm.enabled());
  CHECK(c.limits.max_body_bytes == d.limits.max_body_bytes);
}

TEST_CASE("config: every key documented in the shipped file, uncommented, parses to its default") {
  std::string text = read_file(shipped_conf_path());
  REQUIRE_FALSE(text.empty());
  // Uncomment "# [section]" and "# key = value" lines (the documented examples and defaults).
  std::string out, line;
  std::istringstream in(text);
  int uncommented = 0;
  while (std::getline(in, line)) {
    if (line.rfind("# [", 0) == 0 && line.back() == ']') {
      line = line.substr(2);
    } else if (line.rfind("# ", 0) == 0) {
      size_t k = 2;
      while (k < line.size() && ((line[k] >= 'a' && line[k] <= 'z') || line[k] == '_')) ++k;
      if (k > 2 && line.compare(k, 2, " =") == 0) {
        line = line.substr(2);
        ++uncommented;
      }
    }
    out += line + "\n";
  }
  CHECK(uncommented >= 40);
  Config c = parse_config(out, "uncommented.conf");
  Config d = parse_config("", "defaults");
  CHECK(c.server.log_level == d.server.log_level);
  CHECK(c.server.log_tokens == d.server.log_tokens);
  CHECK(c.server.shutdown_timeout_ms == d.server.shutdown_timeout_ms);
  CHECK(c.limits.requests_per_minute == d.limits.requests_per_minute);
  CHECK(c.limits.max_body_bytes == d.limits.max_body_bytes);
  CHECK(c.limits.max_header_bytes == d.limits.max_header_bytes);
  CHECK(c.limits.max_headers == d.limits.max_headers);
  CHECK(c.limits.header_timeout_ms == d.limits.header_timeout_ms);
  CHECK(c.limits.body_timeout_ms == d.limits.body_timeout_ms);
  CHECK(c.limits.idle_timeout_ms == d.limits.idle_timeout_ms);
  CHECK(c.limits.max_connections == d.limits.max_connections);
  CHECK(c.registration.blocked_email_domains == d.registration.blocked_email_domains);
  CHECK(c.transfer.ca_file == d.transfer.ca_file);
  CHECK(c.transfer.allow_private_addresses == d.transfer.allow_private_addresses);
  CHECK(c.analytics.extra_stats == d.analytics.extra_stats);
  CHECK(c.e2ee.private_keys == d.e2ee.private_keys);
  CHECK(c.push.policy == d.push.policy);
  CHECK(c.push.deny_reason == d.push.deny_reason);
  CHECK(c.push.notify_deadline_ms == d.push.notify_deadline_ms);
  CHECK(c.push.dead_token_guard_window_s == d.push.dead_token_guard_window_s);
  CHECK(c.push.dead_token_guard_min == d.push.dead_token_guard_min);
  CHECK(c.push.dead_token_guard_share == d.push.dead_token_guard_share);
  CHECK(c.push.retry_queue_max == d.push.retry_queue_max);
  CHECK(c.push.retry_max_age_ms == d.push.retry_max_age_ms);
  CHECK(c.push.warn_interval_ms == d.push.warn_interval_ms);
  REQUIRE(c.apns.size() == 2);
  CHECK(c.apns[0].name == "");
  CHECK(c.apns[0].token_auth());
  CHECK(c.apns[0].topics.empty());
  CHECK(c.apns[0].environment == "production");
  CHECK(c.apns[0].host == "api.push.apple.com");
  CHECK(c.apns[0].port == 443);
  CHECK(c.apns[1].name == "enterprise");
  CHECK_FALSE(c.apns[1].token_auth());
  CHECK(c.apns[1].host == "api.sandbox.push.apple.com");
  CHECK(c.apns[1].topics == std::vector<std::string>{"com.example.enterprise.app",
                                                     "com.example.enterprise.app.voip"});
  CHECK(c.fcm.enabled());
  CHECK(c.fcm.endpoint == "https://fcm.googleapis.com");
  CHECK(c.fcm.ca_file.empty());
}

TEST_CASE("config: values of every kind are parsed") {
  Config c = parse_config(R"(
; a comment
# another
[server]
  listen   =   [::1]:0
database = /tmp/x.db   # trailing comment
log_level = debug
log_tokens = yes
shutdown_timeout = 500ms

[limits]
requests_per_minute = 5
max_body_bytes = 64k
max_header_bytes = 1M
max_headers = 20
header_timeout = 2m
body_timeout = 7
idle_timeout = 1h
max_connections = 3

[registration]
blocked_email_domains = Example.COM ,  test.org

[transfer]
ca_file = tests/data/tls/ca.pem
allow_private_addresses = on

[analytics]
extra_stats = a::day,b:c:hour

[e2ee]
private_keys = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[push]
policy = deny
deny_reason = Plan#3 expired
notify_deadline = 250ms
dead_token_guard_window = 2m
dead_token_guard_min = 10
dead_token_guard_share = 1
retry_queue_max = 0
retry_max_age = 0
warn_interval = 30s
)",
                          "t.conf");
  CHECK(c.server.listen_host == "::1");
  CHECK(c.server.listen_port == 0);
  CHECK(c.server.database == "/tmp/x.db");
  CHECK(c.server.log_level == aloha::LogLevel::debug);
  CHECK(c.server.log_tokens);
  CHECK(c.server.shutdown_timeout_ms == 500);
  CHECK(c.limits.requests_per_minute == 5);
  CHECK(c.limits.max_body_bytes == 65536);
  CHECK(c.limits.max_header_bytes == 1048576);
  CHECK(c.limits.max_headers == 20);
  CHECK(c.limits.header_timeout_ms == 120'000);
  CHECK(c.limits.body_timeout_ms == 7'000);
  CHECK(c.limits.idle_timeout_ms == 3'600'000);
  CHECK(c.limits.max_connections == 3);
  CHECK(c.registration.blocked_email_domains == std::vector<std::string>{"example.com", "test.org"});
  CHECK(c.transfer.ca_file == "tests/data/tls/ca.pem");
  CHECK(c.transfer.allow_private_addresses);
  CHECK(c.analytics.extra_stats == std::vector<std::string>{"a::day", "b:c:hour"});
  CHECK(c.e2ee.private_keys.size() == 1);
  CHECK(c.push.policy == "deny");
  CHECK(c.push.deny_reason == "Plan#3 expired");  // '#' without whitespace before it is kept
  CHECK(c.push.notify_deadline_ms == 250);
  CHECK(c.push.dead_token_guard_window_s == 120);
  CHECK(c.push.dead_token_guard_min == 10);
  CHECK(c.push.dead_token_guard_share == 1.0);
  CHECK(c.push.retry_queue_max == 0);
  CHECK(c.push.retry_max_age_ms == 0);
  CHECK(c.push.warn_interval_ms == 30'000);
}

TEST_CASE("config: an empty list value clears the default list") {
  Config c = parse_config("[registration]\nblocked_email_domains =\n", "t.conf");
  CHECK(c.registration.blocked_email_domains.empty());
}

TEST_CASE("config: listen accepts IPv4, names and bracketed IPv6") {
  CHECK(parse_config("[server]\nlisten = 0.0.0.0:65535\n", "t").server.listen_port == 65535);
  CHECK(parse_config("[server]\nlisten = localhost:1\n", "t").server.listen_host == "localhost");
  CHECK(parse_config("[server]\nlisten = [::]:80\n", "t").server.listen_host == "::");
  const char* bad[] = {"127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "::1:80", "[::1]80",
                       "[::1]:", "[]:80", "127.0.0.1:8o", "127.0.0.1:-1", "127.0.0.1:+80"};
  for (const char* b : bad) {
    CAPTURE(b);
    CHECK(error_of(std::string("[server]\nlisten = ") + b + "\n") ==
          "t.conf:2: [server] listen must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080");
  }
}

TEST_CASE("config: errors name file, line and what is wrong") {
  CHECK(error_of("\n[server]\n\nlistn = 1\n") == "t.conf:4: unknown key 'listn' in [server]");
  CHECK(error_of("[limits]\nrequests_per_minute = 0\n") ==
        "t.conf:2: [limits] requests_per_minute must be an integer from 1 to 100000000");
  CHECK(error_of("[limits]\nrequests_per_minute = 100000001\n") ==
        "t.conf:2: [limits] requests_per_minute must be an integer from 1 to 100000000");
  CHECK(error_of("[limits]\nrequests_per_minute = 10x\n") ==
        "t.conf:2: [limits] requests_per_minute must be an integer from 1 to 100000000");
  CHECK(error_of("[limits]\nrequests_per_minute =\n") ==
        "t.conf:2: [limits] requests_per_minute must be an integer from 1 to 100000000");
  CHECK(error_of("[bogus]\n") == "t.conf:1: unknown section [bogus]");
  CHECK(error_of("[server]\nlisten = a:1\nlisten = b:2\n") ==
        "t.conf:3: duplicate key 'listen' in [server]");
  CHECK(error_of("[server]\n[limits]\n[server]\n") == "t.conf:3: duplicate section [server]");
  CHECK(error_of("listen = 1\n") == "t.conf:1: key 'listen' outside of a section");
  CHECK(error_of("[server\n") == "t.conf:1: malformed section header (expected '[name]')");
  CHECK(error_of("[server]\njust words\n") == "t.conf:2: expected 'key = value' or '[section]'");
  CHECK(error_of("[server]\n= x\n") == "t.conf:2: missing key before '='");
  CHECK(error_of("[server]\nlog_tokens = maybe\n") ==
        "t.conf:2: [server] log_tokens must be true or false (also yes/no, on/off)");
  CHECK(error_of("[server]\nlog_level = verbose\n") ==
        "t.conf:2: [server] log_level must be one of error, warn, info, debug");
  CHECK(error_of("[server]\ndatabase =\n") == "t.conf:2: [server] database must not be empty");
  CHECK(error_of("[push]\npolicy = maybe\n") == "t.conf:2: [push] policy must be allow or deny");
  CHECK(error_of("[push]\ndead_token_guard_share = 0\n") ==
        "t.conf:2: [push] dead_token_guard_share must be a number greater than 0 and at most 1");
  CHECK(error_of("[push]\ndead_token_guard_share = 1.01\n") ==
        "t.conf:2: [push] dead_token_guard_share must be a number greater than 0 and at most 1");
  CHECK(error_of("[push]\ndead_token_guard_window = 1500ms\n") ==
        "t.conf:2: [push] dead_token_guard_window must be a whole number of seconds");
  CHECK(error_of("[registration]\nblocked_email_domains = a.com,,b.com\n") ==
        "t.conf:2: [registration] blocked_email_domains must be a comma-separated list without empty items");
  CHECK(error_of("[e2ee]\nprivate_keys = c2VjcmV0\n") ==
        "t.conf:2: [e2ee] private_keys item 1 is not standard base64 of a 32-byte X25519 private key");
}

TEST_CASE("config: durations and sizes accept their units and check ranges") {
  CHECK(parse_config("[limits]\nheader_timeout = 1ms\n", "t").limits.header_timeout_ms == 1);
  CHECK(parse_config("[limits]\nheader_timeout = 10s\n", "t").limits.header_timeout_ms == 10'000);
  CHECK(parse_config("[limits]\nmax_body_bytes = 1048576\n", "t").limits.max_body_bytes == 1048576);
  CHECK(parse_config("[limits]\nmax_body_bytes = 1G\n", "t").limits.max_body_bytes == 1073741824);
  CHECK(error_of("[limits]\nheader_timeout = 0\n") ==
        "t.conf:2: [limits] header_timeout must be a duration from 1ms to 86400s (e.g. 10, 10s, 500ms, 2m)");
  const char* bad_durations[] = {"1.5s", "-1", "10 s", "s", "10d", "99999999999999999999"};
  for (const char* b : bad_durations) {
    CAPTURE(b);
    CHECK(error_of(std::string("[limits]\nbody_timeout = ") + b + "\n").rfind("t.conf:2: [limits] body_timeout must be a duration", 0) == 0);
  }
  CHECK(error_of("[limits]\nmax_body_bytes = 2G\n") ==
        "t.conf:2: [limits] max_body_bytes must be a size from 1 to 1G (bytes, or with suffix k, M, G)");
  CHECK(parse_config("", "t").server.database_cache_bytes == 512 * 1024);
  CHECK(parse_config("", "t").server.commit_delay_ms == 2);
  CHECK(parse_config("[server]\ncommit_delay = 0\n", "t").server.commit_delay_ms == 0);
  CHECK(parse_config("[server]\ncommit_delay = 750ms\n", "t").server.commit_delay_ms == 750);
  CHECK(error_of("[server]\ncommit_delay = 11s\n").rfind("t.conf:2: [server] commit_delay must be a duration", 0) == 0);
  CHECK(parse_config("[server]\ndatabase_cache = 64k\n", "t").server.database_cache_bytes == 64 * 1024);
  CHECK(parse_config("[server]\ndatabase_cache = 32M\n", "t").server.database_cache_bytes == 32 * 1024 * 1024);
  CHECK(error_of("[server]\ndatabase_cache = 63k\n").rfind("t.conf:2: [server] database_cache must be a size from 64k", 0) == 0);
  CHECK(error_of("[server]\ndatabase_cache = 2G\n").rfind("t.conf:2: [server] database_cache must be a size", 0) == 0);
  const char* bad_sizes[] = {"0", "1.5M", "1MB", "-1", "k", "1 k"};
  for (const char* b : bad_sizes) {
    CAPTURE(b);
    CHECK(error_of(std::string("[limits]\nmax_body_bytes = ") + b + "\n").rfind("t.conf:2: [limits] max_body_bytes must be a size", 0) == 0);
  }
}

TEST_CASE("config: apns sections with token or certificate auth") {
  Config c = parse_config(std::string("[apns.a]\ntopics = com.x.a, com.x.b\n") + kTokenApns +
                              "\n[apns.b]\nenvironment = sandbox\nhost = localhost\nport = 8443\n"
                              "ca_file = ca.pem\ncert_file = c.pem\n",
                          "t.conf");
  REQUIRE(c.apns.size() == 2);
  CHECK(c.apns[0].name == "a");
  CHECK(c.apns[0].line == 1);
  CHECK(c.apns[0].token_auth());
  CHECK(c.apns[0].key_id == "ABCDE12345");
  CHECK(c.apns[0].host == "api.push.apple.com");
  CHECK(c.apns[0].topics == std::vector<std::string>{"com.x.a", "com.x.b"});
  CHECK(c.apns[1].name == "b");
  CHECK(c.apns[1].line == 7);
  CHECK_FALSE(c.apns[1].token_auth());
  CHECK(c.apns[1].host == "localhost");
  CHECK(c.apns[1].port == 8443);
  CHECK(c.apns[1].ca_file == "ca.pem");
  CHECK(c.apns[1].environment == "sandbox");
  // The sandbox environment changes the default host.
  Config s = parse_config(std::string("[apns]\nenvironment = sandbox\n") + kTokenApns, "t");
  CHECK(s.apns[0].host == "api.sandbox.push.apple.com");
  CHECK(s.apns[0].label() == "[apns]");
}

TEST_CASE("config: apns validation errors point at the section") {
  CHECK(error_of("[apns]\ntopics = a.b\n") ==
        "t.conf:1: [apns] needs token auth (key_file, key_id, team_id) or certificate auth (cert_file)");
  CHECK(error_of(std::string("\n[apns.x]\ncert_file = c.pem\n") + kTokenApns) ==
        "t.conf:2: [apns.x] sets both token auth (key_file, key_id, team_id) and certificate auth (cert_file)");
  CHECK(error_of("[apns]\nkey_file = k.p8\nkey_id = K\n") ==
        "t.conf:1: [apns] token auth needs all of key_file, key_id and team_id");
  CHECK(error_of("[apns]\ncert_key_file = k.pem\n") == "t.conf:1: [apns] cert_key_file needs cert_file");
  CHECK(error_of(std::string("[apns.a]\n") + kTokenApns + "[apns.b]\ncert_file = c\n") ==
        "t.conf:5: [apns.b] and [apns.a] both have no topics; only one section may serve the unlisted apps");
  CHECK(error_of(std::string("[apns.a]\ntopics = x.y, z\n") + kTokenApns +
                 "[apns.b]\ntopics = z\ncert_file = c\n") ==
        "t.conf:6: topic 'z' is listed in both [apns.a] and [apns.b]");
  CHECK(error_of("[apns]\ntopics = a.b, a.b\ncert_file = c\n") ==
        "t.conf:2: [apns] topics: 'a.b' is listed twice");
  CHECK(error_of("[apns]\ntopics = a/b\ncert_file = c\n") ==
        "t.conf:2: [apns] topics: 'a/b' is not a bundle id (letters, digits, '.', '-')");
  CHECK(error_of("[apns]\nenvironment = dev\n") == "t.conf:2: [apns] environment must be production or sandbox");
  CHECK(error_of("[apns]\nport = 0\n") == "t.conf:2: [apns] port must be an integer from 1 to 65535");
  CHECK(error_of("[apns.]\n") ==
        "t.conf:1: invalid section name [apns.] (use [apns.NAME], NAME of letters, digits, '_', '-')");
  CHECK(error_of(std::string("[apns.a]\n") + kTokenApns + "[apns.a]\n") == "t.conf:5: duplicate section [apns.a]");
  CHECK(error_of("[apns]\nfoo = 1\n") == "t.conf:2: unknown key 'foo' in [apns]");
  // A plain [apns] with topics and one [apns.NAME] catch-all may coexist.
  Config c = parse_config(std::string("[apns]\ntopics = a.b\n") + kTokenApns + "[apns.rest]\ncert_file = c\n", "t");
  CHECK(c.apns.size() == 2);
}

TEST_CASE("config: fcm section") {
  Config c = parse_config("[fcm]\ncredentials_file = sa.json\nendpoint = https://localhost:9443/\n", "t");
  CHECK(c.fcm.enabled());
  CHECK(c.fcm.credentials_file == "sa.json");
  CHECK(c.fcm.endpoint == "https://localhost:9443");
  CHECK(error_of("\n[fcm]\nca_file = x\n") ==
        "t.conf:2: [fcm] needs credentials_file (remove the section to disable FCM)");
  CHECK(error_of("[fcm]\ncredentials_file = a\nendpoint = fcm.googleapis.com\n") ==
        "t.conf:3: [fcm] endpoint must be a URL starting with https:// (or http://)");
}

TEST_CASE("config: CRLF line endings and a byte-order mark are accepted") {
  Config c = parse_config("\xEF\xBB\xBF[server]\r\nlisten = 10.0.0.1:99\r\n", "t");
  CHECK(c.server.listen_host == "10.0.0.1");
  CHECK(c.server.listen_port == 99);
}

TEST_CASE("config: load_config reports a missing file with strerror") {
  CHECK_THROWS_WITH_AS(aloha::load_config("/nonexistent/aloha.conf"),
                       "/nonexistent/aloha.conf: cannot open: No such file or directory", ConfigError);
}

TEST_CASE("config: load_config reads a file and prefixes errors with its path") {
  char path[] = "/tmp/aloha-config-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  FILE* f = fdopen(fd, "w");
  REQUIRE(f != nullptr);
  fputs("[limits]\nrequests_per_minute = 7\n[server]\nport = 1\n", f);
  fclose(f);
  try {
    aloha::load_config(path);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == std::string(path) + ":4: unknown key 'port' in [server]");
  }
  remove(path);
}

}  // TEST_SUITE
