// Helpers for the push/notify, push/test_notification and privacy integration tests: JSON posts
// with Basic auth, device registration, direct SQL on the bouncer's database, and the mock
// upstream (tools/mock-upstream: APNs and FCM on one TLS port) with bouncer config sections that
// point at it. Everything blocking and bounded.
#pragma once
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "api_checks.h"
#include "support/fixture.h"
#include "support/http_client.h"
#include "support/mock_upstream.h"
#include "support/process.h"

namespace aloha::test::notify {

inline HttpResult post_json(BouncerProcess& b, const std::string& rel, const std::string& body,
                            const ServerCreds& s, int timeout_ms = 20000) {
  return b.request("POST", remotes(rel),
                   {{"Authorization", cli::basic_auth(s.uuid, s.key)}, {"Content-Type", "application/json"}},
                   body, timeout_ms);
}

// push/register; REQUIREs 200.
inline void reg_device(BouncerProcess& b, const ServerCreds& s, int kind, const std::string& token,
                       const Fields& identity, const std::string& app_id = "org.aloha.ios") {
  Fields f = identity;
  f.push_back({"token", token});
  f.push_back({"token_kind", std::to_string(kind)});
  if (kind == 1) f.push_back({"ios_app_id", app_id});
  HttpResult r = b.post_form(remotes("push/register"), f, s.auth());
  REQUIRE_MESSAGE(r.status == 200, show(r));
}

inline void exec_sql(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  sqlite3_busy_timeout(h, 2000);
  char* err = nullptr;
  int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(h);
  REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

inline int64_t sql_int(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(h, 2000);
  sqlite3_stmt* st = nullptr;
  int64_t v = -1;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

// The mock upstream (APNs + FCM + OAuth token endpoint on one TLS port, plain control port).
struct MockUpstream : MockUpstreamProcess {
  explicit MockUpstream(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {mock_upstream_binary(), "--listen", "127.0.0.1:0", "--cert",
                                     tls_dir() + "/server.crt", "--key", tls_dir() + "/server.key",
                                     "--http1-control-port", "0", "--apns-public-key",
                                     tls_dir() + "/apns-key.pub.pem"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    // This fixture never REQUIREd non-zero ports; keep it that way.
    start(argv, MockReady::Control, /*require_ports=*/false);
  }
  std::string stats() {
    auto r = cli::http_request("GET", "http://127.0.0.1:" + std::to_string(control_port) + "/mock/stats", {}, "", 5000);
    return r.body;
  }

  // An [apns] / [apns.NAME] section pointing at this mock (token auth with the test key).
  std::string apns_section(const std::string& name = "", const std::string& topics = "") const {
    std::string s = name.empty() ? "[apns]\n" : "[apns." + name + "]\n";
    if (!topics.empty()) s += "topics = " + topics + "\n";
    s += "environment = sandbox\nhost = localhost\nport = " + std::to_string(port) + "\nca_file = " + tls_dir() +
         "/ca.crt\nkey_file = " + tls_dir() + "/apns-key.p8\nkey_id = ABC123DEFG\nteam_id = TEAM123456\n";
    return s;
  }
  // An [fcm] section; writes the service-account file (token_uri at this mock) into dir.
  std::string fcm_section(const TempDir& dir) const {
    std::string sa = read_file(tls_dir() + "/fcm-service-account.json");
    for (size_t p; (p = sa.find("PORT")) != std::string::npos;) sa.replace(p, 4, std::to_string(port));
    write_file(dir.file("service-account.json"), sa);
    return "[fcm]\ncredentials_file = " + dir.file("service-account.json") + "\nendpoint = https://localhost:" +
           std::to_string(port) + "\nca_file = " + tls_dir() + "/ca.crt\n";
  }
};

}  // namespace aloha::test::notify
