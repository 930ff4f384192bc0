// Fanout (push/notify's sending half) with fake pushers, a real store in a temporary directory and
// a libuv loop for the answer timer; no sockets. Outcomes are delivered by the test, as a pusher
// would deliver them later from the loop.
#include <doctest/doctest.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "push/notify_service.h"
#include "store/store.h"
#include "unit/store/temp_dir.h"

using namespace aloha;

namespace {

class FakePusher final : public push::Pusher {
 public:
  FakePusher(std::string name, size_t cap) : name_(std::move(name)), cap_(cap) {}
  bool send(push::PushMessage msg, int64_t deadline, push::SendDone done) override {
    if (sent.size() - finished_ >= cap_) return false;
    deadlines.push_back(deadline);
    sent.push_back(std::move(msg));
    dones.push_back(std::move(done));
    return true;
  }
  bool has_capacity(size_t n) const override { return sent.size() - finished_ + n <= cap_; }
  const std::string& name() const override { return name_; }
  size_t pending() const override { return sent.size() - finished_; }
  void close(std::function<void()> done) override { done(); }

  void finish(size_t i, push::OutcomeKind k, int64_t ts = -1) {
    push::Outcome o;
    o.kind = k;
    o.status = k == push::OutcomeKind::dead_token ? 410 : 200;
    o.apns_timestamp_ms = ts;
    ++finished_;
    dones.at(i)(o);
  }

  std::vector<push::PushMessage> sent;
  std::vector<push::SendDone> dones;
  std::vector<int64_t> deadlines;

 private:
  std::string name_;
  size_t cap_;
  size_t finished_ = 0;
};

struct Fixture {
  store::test::TempDir dir;
  store::Store st{dir.file("b.db")};
  FakeClock clock;
  Config::Push cfg;
  uv_loop_t loop{};
  int64_t server_a = st.servers().insert("11111111-1111-4111-8111-111111111111", "k", "a.example.org", "a@x.org", 1);
  int64_t server_b = st.servers().insert("22222222-2222-4222-8222-222222222222", "k", "b.example.org", "b@x.org", 1);

  Fixture() { uv_loop_init(&loop); }
  ~Fixture() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);  // no handle leaked
  }

  void reg(int64_t server, int kind, const std::string& token, int64_t uid, int64_t now_ms) {
    store::DeviceRegistration r;
    r.server_id = server;
    r.kind = kind;
    r.token = token;
    if (kind == store::kKindApns) r.ios_app_id = "com.example.app";
    r.user_id = uid;
    r.now_ms = now_ms;
    st.db().write([&] { st.devices().register_device(r); });
  }
  size_t rows(int64_t server, int64_t uid) { return st.devices().for_identity(server, uid, std::nullopt).size(); }

  push::PushMessage msg(push::Platform p, const std::string& token) {
    push::PushMessage m;
    m.platform = p;
    m.token = token;
    m.payload = "{}";
    return m;
  }
};

}  // namespace

std::string tok(int i) {
  std::string t = "ee0";
  t.append(std::to_string(i));
  return t;
}

TEST_SUITE("push fanout") {

TEST_CASE("fanout: answers once every send has an outcome, counting forwarded pushes") {
  Fixture f;
  push::NotifyService ns(f.clock, f.cfg);
  FakePusher apns("apns", 10), fcm("fcm", 10);
  std::optional<push::FanoutTally> answered;
  push::FanoutOptions o;
  o.server_id = f.server_a;
  o.send_deadline_mono_ms = f.clock.mono_ms() + 5000;
  {
    auto fan = push::Fanout::create(&f.loop, f.st, ns, o, [&](const push::FanoutTally& t) { answered = t; });
    fan->send(apns, f.msg(push::Platform::apns, "aa"));
    fan->send(fcm, f.msg(push::Platform::fcm, "ff"));
    fan->finish();
  }
  CHECK(apns.deadlines.at(0) == f.clock.mono_ms() + 5000);
  CHECK_FALSE(answered);
  apns.finish(0, push::OutcomeKind::delivered);
  CHECK_FALSE(answered);
  fcm.finish(0, push::OutcomeKind::retry_later);
  REQUIRE(answered);
  CHECK(answered->sent == 2);
  CHECK(answered->delivered == 1);
  CHECK(answered->failed == 1);
  CHECK(answered->pending == 0);
  int64_t day = push::day_end_s(f.clock.wall_ms());
  CHECK(f.st.counters().get(f.server_a, std::nullopt, push::kPushesForwarded, day).value_or(0) == 1);
}

TEST_CASE("fanout: keeps itself alive exactly until the last outcome, then frees itself") {
  Fixture f;
  push::NotifyService ns(f.clock, f.cfg);
  FakePusher apns("apns", 10);
  bool answered = false;
  std::weak_ptr<push::Fanout> weak;
  {
    auto fan = push::Fanout::create(&f.loop, f.st, ns, {}, [&](const push::FanoutTally&) { answered = true; });
    weak = fan;
    fan->send(apns, f.msg(push::Platform::apns, "aa"));
    fan->send(apns, f.msg(push::Platform::apns, "bb"));
    fan->finish();
  }
  CHECK_FALSE(weak.expired());  // outcomes still to come; the caller's reference is gone
  apns.finish(0, push::OutcomeKind::delivered);
  CHECK_FALSE(weak.expired());
  CHECK_FALSE(answered);
  apns.finish(1, push::OutcomeKind::delivered);
  CHECK(answered);
  CHECK(weak.expired());  // the pusher still holds both SendDones: they hold no reference
}

TEST_CASE("fanout: with nothing sent the answer comes at once") {
  Fixture f;
  push::NotifyService ns(f.clock, f.cfg);
  bool answered = false;
  auto fan = push::Fanout::create(&f.loop, f.st, ns, {}, [&](const push::FanoutTally&) { answered = true; });
  fan->finish();
  CHECK(answered);
}

TEST_CASE("fanout: the deadline answers with sends still pending; late outcomes still act") {
  Fixture f;
  f.cfg.notify_deadline_ms = 20;
  push::NotifyService ns(f.clock, f.cfg);
  FakePusher apns("apns", 10);
  f.reg(f.server_a, store::kKindApns, "ab01", 7, 1000);
  std::optional<push::FanoutTally> answered;
  push::FanoutOptions o;
  o.answer_after_ms = 20;
  o.server_id = f.server_a;
  {
    auto fan = push::Fanout::create(&f.loop, f.st, ns, o, [&](const push::FanoutTally& t) { answered = t; });
    fan->send(apns, f.msg(push::Platform::apns, "ab01"));
    fan->finish();
  }
  uv_run(&f.loop, UV_RUN_DEFAULT);  // only the answer timer is active
  REQUIRE(answered);
  CHECK(answered->pending == 1);
  // The retry finally fails with a dead token after the answer: the row still goes.
  apns.finish(0, push::OutcomeKind::dead_token);
  CHECK(f.rows(f.server_a, 7) == 0);
}

TEST_CASE("fanout: a dead token is deleted for every server, unless registered after the 410") {
  Fixture f;
  push::NotifyService ns(f.clock, f.cfg);
  FakePusher apns("apns", 10);
  f.reg(f.server_a, store::kKindApns, "ab01", 1, 1000);
  f.reg(f.server_b, store::kKindApns, "AB01", 2, 1000);
  f.reg(f.server_a, store::kKindApns, "cd02", 1, 5000);
  std::optional<push::FanoutTally> answered;
  auto fan = push::Fanout::create(&f.loop, f.st, ns, {}, [&](const push::FanoutTally& t) { answered = t; });
  fan->send(apns, f.msg(push::Platform::apns, "ab01"));
  fan->send(apns, f.msg(push::Platform::apns, "cd02"));
  fan->finish();
  apns.finish(0, push::OutcomeKind::dead_token);        // no timestamp: deleted everywhere
  apns.finish(1, push::OutcomeKind::dead_token, 4000);  // registered at 5000, after the 410: kept
  REQUIRE(answered);
  CHECK(answered->dead_deleted == 1);
  CHECK(answered->dead_kept == 1);
  CHECK(f.rows(f.server_b, 2) == 0);
  auto left = f.st.devices().for_identity(f.server_a, 1, std::nullopt);
  REQUIRE(left.size() == 1);
  CHECK(left[0].token == "cd02");
}

TEST_CASE("fanout: rows read before a dead token's deletion are brought up to date without a re-read") {
  Fixture f;
  push::NotifyService ns(f.clock, f.cfg);
  FakePusher apns("apns", 10);
  f.reg(f.server_a, store::kKindApns, "ab01", 1, 1000);
  f.reg(f.server_a, store::kKindApns, "cd02", 1, 1000);
  f.reg(f.server_a, store::kKindApns, "ef03", 7, 1000);  // another user
  // As push/notify does: the user's rows and the generation they were read at.
  auto rows = f.st.devices().for_identity(f.server_a, 1, std::nullopt);
  REQUIRE(rows.size() == 2);
  const uint64_t g = f.st.devices().generation();
  bool answered = false;
  auto fan = push::Fanout::create(&f.loop, f.st, ns, {}, [&](const push::FanoutTally&) { answered = true; });
  fan->send(apns, f.msg(push::Platform::apns, "ab01"));
  fan->finish();
  // Another request's dead token of another user, then this request's own.
  auto other = push::Fanout::create(&f.loop, f.st, ns, {}, [](const push::FanoutTally&) {});
  other->send(apns, f.msg(push::Platform::apns, "ef03"));
  other->finish();
  apns.finish(1, push::OutcomeKind::dead_token);
  CHECK(f.st.devices().update_rows(g, f.server_a, 1, std::nullopt, rows) == store::RowsUpdate::unchanged);
  apns.finish(0, push::OutcomeKind::dead_token);
  REQUIRE(answered);
  CHECK(f.st.devices().update_rows(g, f.server_a, 1, std::nullopt, rows) == store::RowsUpdate::applied);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].token == "cd02");
  CHECK(f.rows(f.server_a, 1) == 1);
}

TEST_CASE("fanout: the mass-deletion guard keeps tokens of the app that trips it") {
  Fixture f;
  f.cfg.dead_token_guard_min = 3;
  f.cfg.dead_token_guard_share = 0.5;
  push::NotifyService ns(f.clock, f.cfg);
  FakePusher apns("apns.broken", 10), fcm("fcm", 10);
  for (int i = 0; i < 4; ++i) f.reg(f.server_a, store::kKindApns, tok(i), 1, 1000);
  f.reg(f.server_a, store::kKindFcm, "fcm-token", 1, 1000);
  std::optional<push::FanoutTally> answered;
  auto fan = push::Fanout::create(&f.loop, f.st, ns, {}, [&](const push::FanoutTally& t) { answered = t; });
  for (int i = 0; i < 4; ++i) fan->send(apns, f.msg(push::Platform::apns, tok(i)));
  fan->send(fcm, f.msg(push::Platform::fcm, "fcm-token"));
  fan->finish();
  for (size_t i = 0; i < 4; ++i) apns.finish(i, push::OutcomeKind::dead_token);
  fcm.finish(0, push::OutcomeKind::dead_token);  // another app: its own window
  REQUIRE(answered);
  CHECK(answered->dead_deleted == 3);  // the 3rd dead answer of 3 trips the guard
  CHECK(answered->dead_kept == 2);
  auto left = f.st.devices().for_identity(f.server_a, 1, std::nullopt);
  REQUIRE(left.size() == 2);
  CHECK(left[0].token == "ee02");
  CHECK(left[1].token == "ee03");
  CHECK(ns.guard().counts("apns.broken").refused == 2);
}

TEST_CASE("fanout: a refused send is counted, never silently lost") {
  Fixture f;
  push::NotifyService ns(f.clock, f.cfg);
  FakePusher apns("apns", 1);
  std::optional<push::FanoutTally> answered;
  push::FanoutOptions o;
  o.server_id = f.server_a;
  auto fan = push::Fanout::create(&f.loop, f.st, ns, o, [&](const push::FanoutTally& t) { answered = t; });
  fan->send(apns, f.msg(push::Platform::apns, "aa"));
  fan->send(apns, f.msg(push::Platform::apns, "bb"));
  fan->finish();
  apns.finish(0, push::OutcomeKind::delivered);
  REQUIRE(answered);
  CHECK(answered->sent == 1);
  CHECK(answered->refused == 1);
}

}  // TEST_SUITE

namespace {

// Syncs complete at once; background jobs (checkpoints, a pause's TRUNCATE) wait for run_jobs().
class HeldJobSyncer final : public store::Syncer {
 public:
  void sync(int, Done done) override { done(true); }
  void run(std::function<void()> work, std::function<void()> after) override {
    jobs.emplace_back(std::move(work), std::move(after));
  }
  void run_jobs() {
    while (!jobs.empty()) {
      auto job = std::move(jobs.front());
      jobs.erase(jobs.begin());
      job.first();
      job.second();
    }
  }
  std::vector<std::pair<std::function<void()>, std::function<void()>>> jobs;
};

}  // namespace

TEST_SUITE("push fanout") {
TEST_CASE("fanout: a dead token answered during a store write pause is deleted when the pause ends") {
  store::test::TempDir dir;
  store::StoreOptions opts;
  opts.db.checkpoint_pages = 1'000'000;  // no PASSIVE pass: only the pause's TRUNCATE
  opts.db.truncate_pages = 50;
  store::Store st(dir.file("b.db"), opts);
  HeldJobSyncer syncer;
  st.db().set_syncer(&syncer);
  FakeClock clock;
  Config::Push cfg;
  uv_loop_t loop{};
  uv_loop_init(&loop);
  const int64_t server = st.servers().insert("11111111-1111-4111-8111-111111111111", "k", "a.example.org", "a@x.org", 1);
  auto reg = [&](int kind, const std::string& token, int64_t uid) {
    store::DeviceRegistration r;
    r.server_id = server;
    r.kind = kind;
    r.token = token;
    if (kind == store::kKindApns) r.ios_app_id = "com.example.app";
    r.user_id = uid;
    r.now_ms = 1000;
    st.db().write([&] { st.devices().register_device(r); });
  };
  reg(store::kKindApns, "ab01", 1);
  // Other users' registrations until the WAL passes truncate_pages and flush() starts a pause.
  int n = 0;
  while (!st.db().write_paused()) {
    REQUIRE(n < 2000);
    for (int i = 0; i < 20; ++i, ++n) reg(store::kKindFcm, "filler-" + std::to_string(n), 1000 + n);
    st.db().flush();
  }
  REQUIRE(syncer.jobs.size() == 1);  // the TRUNCATE waits on the worker

  push::NotifyService ns(clock, cfg);
  FakePusher apns("apns", 10);
  std::optional<push::FanoutTally> answered;
  auto fan = push::Fanout::create(&loop, st, ns, {}, [&](const push::FanoutTally& t) { answered = t; });
  push::PushMessage m;
  m.platform = push::Platform::apns;
  m.token = "ab01";
  m.payload = "{}";
  fan->send(apns, std::move(m));
  fan->finish();
  apns.finish(0, push::OutcomeKind::dead_token);  // during the pause: no write() (it would throw)
  REQUIRE(answered);
  CHECK(answered->dead_deleted == 1);
  CHECK(st.db().parked_count() == 1);
  CHECK(st.devices().for_identity(server, 1, std::nullopt).size() == 1);  // not yet
  syncer.run_jobs();  // TRUNCATE done: the pause ends and the parked deletion runs
  CHECK_FALSE(st.db().write_paused());
  CHECK(st.db().parked_count() == 0);
  CHECK(st.devices().for_identity(server, 1, std::nullopt).empty());
  st.db().flush();
  CHECK(st.devices().for_identity(server, 1, std::nullopt).empty());  // committed
  fan.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  st.db().set_syncer(nullptr);
}
}  // TEST_SUITE
