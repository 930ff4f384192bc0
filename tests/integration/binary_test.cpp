// The binary's command line, start-up failures and the realm checks that need a realm row (realms
// normally arrive with server/analytics, a later issue: the test writes one into the database
// while the bouncer is stopped).
#include <doctest/doctest.h>

#include <sqlite3.h>
#include <csignal>
#include <fstream>

#include "support/fixture.h"
#include "support/process.h"

using namespace aloha::test;

namespace {

struct Run {
  ExitStatus status;
  std::string out, err;
};

Run run_binary(std::vector<std::string> args) {
  args.insert(args.begin(), bouncer_binary());
  ProcessOptions opts;
  opts.argv = std::move(args);
  Process p(std::move(opts));
  Run r;
  r.status = p.wait(10'000);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

void exec_sql(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(h);
  REQUIRE_MESSAGE(rc == SQLITE_OK, msg);
}

}  // namespace

TEST_SUITE("binary") {
  TEST_CASE("binary: --version, --help and unknown commands") {
    Run v = run_binary({"--version"});
    CHECK(v.status.ok());
    CHECK(v.out.find("aloha-bouncer ") == 0);
    Run h = run_binary({"--help"});
    CHECK(h.status.ok());
    CHECK(h.out.find("serve --config FILE") != std::string::npos);
    Run none = run_binary({});
    CHECK(none.status.code == 2);
    Run bad = run_binary({"frobnicate"});
    CHECK(bad.status.code == 2);
    CHECK(bad.err.find("unknown command 'frobnicate'") != std::string::npos);
    Run noconf = run_binary({"serve"});
    CHECK(noconf.status.code == 2);
    CHECK(noconf.err.find("--config FILE is required") != std::string::npos);
  }

  TEST_CASE("binary: check-config accepts the shipped config and reports file:line errors") {
    const char* root = std::getenv("ALOHA_SOURCE_ROOT");
    REQUIRE(root != nullptr);
    Run ok = run_binary({"check-config", "--config", std::string(root) + "/conf/aloha-bouncer.conf"});
    CHECK_MESSAGE(ok.status.ok(), ok.err);
    TempDir dir;
    std::string path = dir.file("bad.conf");
    write_file(path, "[server]\nlisten = 127.0.0.1:8080\nlistn = x\n");
    Run bad = run_binary({"check-config", "--config", path});
    CHECK(bad.status.code == 2);
    CHECK(bad.err.find(path + ":3:") != std::string::npos);
    write_file(path, "[limits]\nrequests_per_minute = many\n");
    Run bad2 = run_binary({"serve", "--config", path});
    CHECK(bad2.status.code == 2);
    CHECK(bad2.err.find(path + ":2:") != std::string::npos);
    Run missing = run_binary({"serve", "--config", dir.file("nope.conf")});
    CHECK(missing.status.code == 2);
    CHECK(missing.err.find("nope.conf") != std::string::npos);
  }

  TEST_CASE("binary: an unusable database or listen address stops start-up with exit 1") {
    TempDir dir;
    write_file(dir.file("blocker"), "a file, not a directory");
    std::string path = dir.file("c.conf");
    write_file(path, "[server]\nlisten = 127.0.0.1:0\ndatabase = " + dir.file("blocker") + "/db.sqlite3\n");
    Run db = run_binary({"serve", "--config", path});
    CHECK(db.status.code == 1);
    CHECK(db.err.find("cannot open database") != std::string::npos);

    BouncerProcess first;
    write_file(path, "[server]\nlisten = 127.0.0.1:" + std::to_string(first.port()) +
                         "\ndatabase = " + dir.file("db.sqlite3") + "\n");
    Run busy = run_binary({"serve", "--config", path});
    CHECK(busy.status.code == 1);
    CHECK(busy.err.find("cannot listen") != std::string::npos);
  }

  TEST_CASE("binary: SIGINT stops the bouncer cleanly with exit 0") {
    BouncerProcess b;
    ServerCreds s = register_server(b, "sigint.aloha-test.org");
    (void)s;
    ExitStatus st = b.stop();  // SIGTERM path
    CHECK(st.ok());
    b.restart();
    CHECK(b.get("/health").status == 200);
    CHECK(b.log_text().find("stopped") != std::string::npos);
  }

  TEST_CASE("realm: a realm of another server is refused with 403; this server's realm is accepted") {
    TempDir dir;
    BouncerProcess b("", &dir);
    ServerCreds a = register_server(b, "realm-a.aloha-test.org");
    ServerCreds other = register_server(b, "realm-b.aloha-test.org");
    CHECK(b.stop().ok());
    const std::string realm_a = "0f0f0f0f-1111-4222-8333-444455556666";
    const std::string realm_b = "0e0e0e0e-1111-4222-8333-444455556666";
    exec_sql(b.db_path(),
             "INSERT INTO realms (server_id, uuid, created_ms, last_updated_ms) SELECT id, '" + realm_a +
                 "', 0, 0 FROM servers WHERE uuid = '" + a.uuid + "';"
             "INSERT INTO realms (server_id, uuid, created_ms, last_updated_ms) SELECT id, '" + realm_b +
                 "', 0, 0 FROM servers WHERE uuid = '" + other.uuid + "';");
    b.restart();
    Fields reg = {{"user_id", "7"}, {"token", "c0ffee"}, {"token_kind", "1"}, {"ios_app_id", "org.aloha.app"}};
    Fields mine = reg;
    mine.push_back({"realm_uuid", realm_a});
    CHECK(b.post_form(remotes("push/register"), mine, a.auth()).status == 200);
    Fields theirs = reg;
    theirs.push_back({"realm_uuid", "0E0E0E0E-1111-4222-8333-444455556666"});  // any case
    for (const char* ep : {"push/register", "push/unregister", "push/unregister/all"}) {
      CAPTURE(ep);
      Fields f = theirs;
      if (std::string(ep) == "push/unregister/all") f = {{"user_id", "7"}, {"realm_uuid", realm_b}};
      if (std::string(ep) == "push/unregister") f = {{"token", "c0ffee"}, {"token_kind", "1"}, {"user_id", "7"}, {"realm_uuid", realm_b}};
      HttpResult r = b.post_form(remotes(ep), f, a.auth());
      CHECK(r.status == 403);
      JsonBody j(r.body);
      CHECK(j.str("code") == "REMOTE_REALM_SERVER_MISMATCH_ERROR");
      CHECK(j.str("msg") ==
            "Your organization is registered to a different Aloha server. Please contact Aloha support for "
            "assistance in resolving this issue.");
    }
    // An unknown realm is ignored.
    Fields unknown = reg;
    unknown.push_back({"realm_uuid", "0d0d0d0d-1111-4222-8333-444455556666"});
    CHECK(b.post_form(remotes("push/register"), unknown, a.auth()).status == 200);
  }
}
