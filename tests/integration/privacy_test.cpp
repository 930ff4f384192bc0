// Privacy proof (issue 5): a canary string in every content field of push/notify and
// push/test_notification, driven through delivery, every failure outcome of the mock upstream
// (APNs and FCM), retries, sends still pending at a shutdown and at a kill -9, with log_level =
// debug. Afterwards the database file, its WAL/journal/shm files and every log line must hold
// zero copies of the canary, and full device tokens must never be logged.
#include <doctest/doctest.h>

#include <dirent.h>

#include <string>
#include <vector>

#include "notify_support.h"

using namespace aloha;
using namespace aloha::test;
using namespace aloha::test::notify;

namespace {

const std::string kCanary = "CANARY-7f3e9b21";

// Every content field of push/notify carries the canary, including keys of custom data.
std::string notify_body(int user_id) {
  const std::string c = kCanary;
  return "{\"user_id\":" + std::to_string(user_id) +
         ",\"gcm_payload\":{\"event\":\"message\",\"sender_full_name\":\"" + c + "\",\"content\":\"" + c +
         "\",\"topic\":\"" + c + "\",\"stream\":\"" + c + "\",\"nested\":{\"" + c + "\":[\"" + c +
         "\"]}},\"apns_payload\":{\"alert\":{\"title\":\"" + c + "\",\"subtitle\":\"" + c + "\",\"body\":\"" + c +
         "\"},\"sound\":\"" + c + "\",\"custom\":{\"zulip\":{\"sender_full_name\":\"" + c + "\",\"" + c +
         "\":\"" + c + "\"}}},\"gcm_options\":{\"priority\":\"high\"}}";
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(dir + "/" + n);
    }
    ::closedir(d);
  }
  return out;
}

}  // namespace

TEST_SUITE("integration/privacy") {

TEST_CASE("privacy: notification content never reaches the database, its WAL or the logs") {
  MockUpstream mock({"--slow-ms", "1500"});
  TempDir dir;
  std::string conf = "[server]\nlog_level = debug\n" + mock.apns_section() + mock.fcm_section(dir) +
                     "[push]\nnotify_deadline = 1s\nretry_max_age = 3s\n";
  BouncerProcess b(conf, &dir);
  auto s = register_server(b, "privacy.aloha-test.org");
  // One device per scripted outcome (upstreams.md table): delivered, dead, retry later, request
  // bug, transport failures, stalled.
  std::vector<std::string> apns_prefixes = {"a1", "410", "41e0", "400b", "400c", "4290", "5000", "5030",
                                            "dea1", "f001", "f002", "f003", "f004"};
  std::vector<std::string> tokens;
  for (const auto& p : apns_prefixes) {
    std::string t = p + std::string(64 - p.size(), 'c');
    tokens.push_back(t);
    reg_device(b, s, 1, t, {{"user_id", "1"}});
  }
  for (const char* p : {"okfcm", "unreg", "badtok", "badpay", "sender", "quota", "int500", "unav503", "flaky"}) {
    std::string t = std::string(p) + "-fcm-token-0123456789";
    tokens.push_back(t);
    reg_device(b, s, 2, t, {{"user_id", "1"}});
  }
  reg_device(b, s, 2, "okfcm-test-token-0123456789", {{"user_id", "2"}});
  tokens.push_back("okfcm-test-token-0123456789");

  CHECK(post_json(b, "push/notify", notify_body(1), s).status == 200);
  // A remove event and a test notification with the canary in the realm name and base payload.
  CHECK(post_json(b, "push/notify",
                  R"({"user_id":1,"gcm_payload":{"event":"remove","zulip_message_ids":"3,2,1","x":")" + kCanary +
                      R"("}})",
                  s)
            .status == 200);
  CHECK(post_json(b, "push/test_notification",
                  R"({"token":"okfcm-test-token-0123456789","token_kind":2,"user_id":2,"user_uuid":)"
                  R"("7b4e8f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b","base_payload":{"realm_name":")" +
                      kCanary + R"(","realm_url":")" + kCanary + R"("}})",
                  s)
            .status == 200);
  // A shutdown with sends still retrying or stalled.
  CHECK(post_json(b, "push/notify", notify_body(1), s).status == 200);
  b.stop();
  b.restart();
  // A kill -9 with sends in flight.
  CHECK(post_json(b, "push/notify", notify_body(1), s).status == 200);
  b.kill9();

  size_t scanned = 0;
  for (const auto& f : files_in(dir.path())) {
    if (f.find("service-account") != std::string::npos) continue;
    std::string bytes = read_file(f);
    scanned += bytes.size();
    CHECK_MESSAGE(bytes.find(kCanary) == std::string::npos, "canary found in ", f);
  }
  CHECK(scanned > 0);
  std::string logs = b.log_text();
  CHECK(logs.find(kCanary) == std::string::npos);
  CHECK(logs.find(" debug ") != std::string::npos);  // debug logging really was on
  for (const auto& t : tokens) {
    CAPTURE(t);
    CHECK(logs.find(t) == std::string::npos);
  }
}

}  // TEST_SUITE
