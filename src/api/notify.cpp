// push/notify and push/test_notification (api.md §3): validate everything first (a 4xx has sent
// nothing), then send to all of the user's devices at once over APNs and FCM and answer when every
// send has an outcome or at [push] notify_deadline. Payloads are notification content: they go
// only into the PushMessages handed to the pushers; nothing here logs, stores or echoes them.
#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/identity.h"
#include "api/params.h"
#include "api/respond.h"
#include "api/router.h"
#include "core/encoding.h"
#include "core/log.h"
#include "push/notify_service.h"
#include "push/payload.h"
#include "push/pusher.h"
#include "store/devices.h"

namespace aloha::api {
namespace {

using rapidjson::Value;

constexpr int64_t kApnsExpirationS = 86'400;  // api.md step 4: apns-expiration = now + 86400
constexpr const char* kQueueFullRetryAfter = "5";

// The long-lived sending state (dead-token guard, warnings). Services has no slot for it yet, so
// it is kept here, one per configuration object, and holds no reference to the store or loop.
push::NotifyService& service_for(Services& svc) { return *svc.notify; }

push::BigInts big_ints_of(const JsonDoc& doc) {
  return push::BigInts{&doc, [](const void* ctx, const Value& v) {
                         return static_cast<const JsonDoc*>(ctx)->big_int_text(v);
                       }};
}

std::optional<std::string_view> uuid_view(const Identity& id) {
  if (id.user_uuid) return std::string_view(*id.user_uuid);
  return std::nullopt;
}

// api.md push/notify step 1: the push policy.
void check_policy(Services& svc, const ExchangePtr& ex) {
  if (svc.config.push.policy != "deny") return;
  if (!ex->server->api_feature_level) {
    // Servers that never reported api_feature_level are old ones that email their admins on it.
    throw ApiError{400, "INVALID_ZULIP_SERVER", "Your plan doesn't allow sending push notifications.", {}, {}};
  }
  throw ApiError{400, "PUSH_NOTIFICATIONS_DISALLOWED",
                 "Your plan doesn't allow sending push notifications. Reason provided by the server: " +
                     svc.config.push.deny_reason,
                 {}, {}};
}

ApiError queue_full(const std::string& app) {
  // architecture.md: a full bound gets a clear answer, never silent loss; 5xx = retry later.
  return ApiError{503, "SERVICE_UNAVAILABLE",
                  "The push bouncer's queue for " + app + " is full; retry later", {},
                  {{"Retry-After", kQueueFullRetryAfter}}};
}

void warn_no_credentials(push::NotifyService& ns, push::Platform p, const std::string& app_id) {
  std::string key = p == push::Platform::fcm ? std::string("fcm") : "apns:" + app_id;
  if (ns.warnings().should_log(key)) {
    if (p == push::Platform::fcm)
      LOG_WARN("push: no FCM credentials configured; Android devices are counted but not sent to");
    else
      LOG_WARN("push: no [apns] section serves ios_app_id %s; its devices are counted but not sent to",
               app_id.c_str());
  }
}

push::Pusher* pusher_for(Services& svc, int kind, const std::optional<std::string>& ios_app_id) {
  if (svc.pushers == nullptr) return nullptr;
  if (kind == store::kKindFcm) return svc.pushers->fcm();
  return svc.pushers->apns_for(ios_app_id ? std::string_view(*ios_app_id) : std::string_view());
}

// What step 2 decided for each row of the user's devices (one entry per row, one allocation).
struct RowPlan {
  bool gone = false;              // an id-row shadowed by a uuid-row for the same token: deleted
  bool send = false;              // the row kept for its (kind, token): one send
  push::Pusher* pusher = nullptr;  // for send rows; nullptr: no credentials for it
};

// normalize_token(kind, a) == normalize_token(kind, b) without building either string (APNs
// tokens compare case-insensitively, api.md push/register).
bool same_token(int kind, std::string_view a, std::string_view b) {
  return kind == store::kKindApns ? enc::ascii_iequals(a, b) : a == b;
}

// Requires every pusher to accept its share now, so a request is refused before anything is sent.
// Counted per distinct pusher by scanning (rows are bounded by kMaxDevicesPerIdentity; usually
// there are one or two pushers), so no map is built per request.
void check_capacity(std::span<const RowPlan> plan) {
  for (size_t i = 0; i < plan.size(); ++i) {
    push::Pusher* p = plan[i].send ? plan[i].pusher : nullptr;
    if (p == nullptr) continue;
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = plan[j].send && plan[j].pusher == p;
    if (seen) continue;
    size_t n = 0;
    for (size_t j = i; j < plan.size(); ++j) n += (plan[j].send && plan[j].pusher == p) ? 1 : 0;
    if (!p->has_capacity(n)) throw queue_full(p->name());
  }
}

void push_notify(Services& svc, const ExchangePtr& ex) {
  JsonBody body = JsonBody::parse(ex->req);
  // The answer waits for the upstreams; until then the request holds no copy of its headers and
  // body (the document has its own), and the document ends with this function.
  http::release_content(ex->req);
  const JsonBody& jb = body;
  // Types, in the order api.md lists them.
  RawIdentity raw;
  raw.user_id = jb.get_int("user_id", Presence::optional, Null::absent);
  raw.user_uuid = jb.get_str("user_uuid", Presence::optional, Null::absent);
  raw.realm_uuid = jb.get_str("realm_uuid", Presence::optional, Null::absent);
  const Value* gcm_payload = jb.get("gcm_payload", JType::dict, Presence::optional);
  const Value* apns_payload = jb.get("apns_payload", JType::dict, Presence::optional);
  const Value* gcm_options = jb.get("gcm_options", JType::dict, Presence::optional);
  const Value* android = jb.get("android_devices", JType::list, Presence::optional);
  if (android) expect_items(jb.doc(), *android, R"(request["android_devices"])", JType::string);
  const Value* apple = jb.get("apple_devices", JType::list, Presence::optional);
  if (apple) expect_items(jb.doc(), *apple, R"(request["apple_devices"])", JType::string);
  // Absent objects and lists are empty ones (no allocation: RapidJSON empty values own nothing).
  static const Value kEmptyObject(rapidjson::kObjectType);
  static const Value kEmptyArray(rapidjson::kArrayType);
  if (!gcm_payload) gcm_payload = &kEmptyObject;
  if (!apns_payload) apns_payload = &kEmptyObject;
  if (!android) android = &kEmptyArray;
  if (!apple) apple = &kEmptyArray;

  // Step 1.
  Identity id = check_identity_values(std::move(raw));
  require_identity(id);
  const std::optional<int64_t> realm_id = check_realm_id(svc, ex, id);
  check_policy(svc, ex);

  // Step 2: the user's devices (OR rule); an id-row and a uuid-row for one token: the id-row goes.
  const int64_t server_id = ex->server->id;
  std::vector<store::DeviceRow> rows = svc.store.devices().for_identity(server_id, id.user_id, uuid_view(id));
  // The plan lives on the stack for the usual few devices (no allocation per request).
  std::array<RowPlan, 8> plan_inline{};
  std::vector<RowPlan> plan_heap;
  if (rows.size() > plan_inline.size()) plan_heap.resize(rows.size());
  std::span<RowPlan> plan = rows.size() > plan_inline.size() ? std::span<RowPlan>(plan_heap)
                                                              : std::span<RowPlan>(plan_inline.data(), rows.size());
  std::vector<size_t> delete_at;  // indexes into rows
  auto same = [&](size_t a, size_t b) {
    return rows[a].kind == rows[b].kind && same_token(rows[a].kind, rows[a].token, rows[b].token);
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    bool first = true;
    bool group_has_uuid = false;
    for (size_t j = 0; j < rows.size(); ++j) {
      if (!same(i, j)) continue;
      if (j < i) first = false;
      if (rows[j].user_uuid) group_has_uuid = true;
    }
    if (!first) continue;
    // Process the group once, at its first row.
    bool kept = false;
    for (size_t j = i; j < rows.size(); ++j) {
      if (!same(i, j)) continue;
      if (group_has_uuid && !rows[j].user_uuid) {
        plan[j].gone = true;
        delete_at.push_back(j);
      } else if (!kept) {
        plan[j].send = true;  // one row per distinct (kind, token)
        kept = true;
      }
    }
  }
  if (!delete_at.empty()) {
    store::Database& db = svc.store.db();
    if (!db.write_paused()) {
      db.write([&] {
        for (size_t j : delete_at) svc.store.devices().delete_row(rows[j]);
      });
    } else {
      // The store is truncating its WAL (a write pause, a few ms): the duplicate id-rows are
      // deleted when it ends. The notify goes on with them already left out; if the pause queue
      // is full they stay until the next notify for this user finds them again.
      std::vector<store::DeviceRow> dup;
      for (size_t j : delete_at) dup.push_back(rows[j]);
      store::Store* st = &svc.store;
      (void)db.park([st, dup = std::move(dup)] {
        try {
          st->db().write([&] {
            for (const auto& r : dup) st->devices().delete_row(r);
          });
        } catch (const std::exception& e) {
          LOG_WARN("notify: could not delete a duplicate device row: %s", e.what());
        }
      });
    }
  }
  int64_t n_android = 0, n_apple = 0;
  bool any_fcm = false, any_apns = false;
  for (size_t i = 0; i < rows.size(); ++i) {
    const bool fcm = rows[i].kind == store::kKindFcm, apns = rows[i].kind == store::kKindApns;
    if (!plan[i].gone) {
      n_android += fcm ? 1 : 0;
      n_apple += apns ? 1 : 0;
    }
    if (plan[i].send) {
      any_fcm |= fcm;
      any_apns |= apns;
    }
  }

  // Step 3: `remove` events keep the 200 largest message ids. The DOM is ours to rewrite.
  auto& alloc = body.doc().document().GetAllocator();
  if (push::rewrite_remove_ids(const_cast<Value&>(*gcm_payload), alloc) == push::RemoveIds::invalid)
    throw ApiError::bad_request("Invalid zulip_message_ids");
  const Value* custom = find_member(*apns_payload, "custom");
  if (custom && custom->IsObject()) {
    const Value* zulip = find_member(*custom, "zulip");
    if (zulip && zulip->IsObject() &&
        push::rewrite_remove_ids(const_cast<Value&>(*zulip), alloc) == push::RemoveIds::invalid)
      throw ApiError::bad_request("Invalid zulip_message_ids");
  }

  // Step 4: FCM priority and gcm_options (only with an FCM device), then `custom`.
  push::BigInts big = big_ints_of(jb.doc());
  bool fcm_high = true;
  if (any_fcm) {
    std::string err;
    if (!push::fcm_priority(gcm_options, *gcm_payload, big, fcm_high, err)) throw ApiError::bad_request(err);
  }
  if (custom && !custom->IsObject())
    throw ApiError::bad_request(R"(request["apns_payload"]["custom"] is not a dict)");

  // Everything is valid: find the pushers and refuse the whole request if one is full.
  push::NotifyService& ns = service_for(svc);
  for (size_t i = 0; i < rows.size(); ++i)
    if (plan[i].send) plan[i].pusher = pusher_for(svc, rows[i].kind, rows[i].ios_app_id);
  check_capacity(plan);

  // Built once per request and platform, shared by every device of the user (and by the pushers'
  // retries): no copy per push.
  std::shared_ptr<const std::string> apns_body =
      any_apns ? std::make_shared<const std::string>(push::build_apns_body(*apns_payload, big)) : nullptr;
  std::shared_ptr<const std::string> fcm_data =
      any_fcm ? std::make_shared<const std::string>(push::build_fcm_data(*gcm_payload, big)) : nullptr;

  int64_t now_wall = svc.clock.wall_ms();
  int64_t day = push::day_end_s(now_wall);
  svc.store.counters().add(server_id, std::nullopt, push::kPushesReceived, day, n_android + n_apple);
  if (realm_id) svc.store.counters().add(server_id, realm_id, push::kPushesReceived, day, n_android + n_apple);

  push::FanoutOptions fo;
  fo.answer_after_ms = svc.config.push.notify_deadline_ms;
  // Retry-later sends may go on after the answer, up to retry_max_age (never less than the answer
  // deadline, so a send is never cut before the request is answered).
  fo.send_deadline_mono_ms = svc.clock.mono_ms() + std::max(svc.config.push.retry_max_age_ms,
                                                            svc.config.push.notify_deadline_ms);
  fo.server_id = server_id;
  fo.realm_id = realm_id;
  fo.count_forwarded = true;
  Services* svcp = &svc;
  bool has_realm = realm_id.has_value();
  // Step 6 needs the user's rows as they are after the sends. Those are step 2's rows minus its
  // deleted duplicates, brought up to date from the store's change log: only a change to this
  // user's registrations reads them again; dead-token deletions (this request's own or others')
  // are applied to them in place, and other users' changes are skipped.
  std::vector<store::DeviceRow> kept;
  kept.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    if (!plan[i].gone) kept.push_back(rows[i]);
  const uint64_t generation = svc.store.devices().generation();
  auto fanout = push::Fanout::create(
      svc.loop, svc.store, ns, fo,
      [svcp, ex, tokens = RequestTokens(*android, *apple), ident = std::move(id), has_realm, n_android, n_apple, generation,
       kept = std::move(kept), deleted_dups = !delete_at.empty()](const push::FanoutTally& tally) mutable {
        Services& s = *svcp;
        try {
          s.store.devices().update_rows(generation, ex->server->id, ident.user_id, uuid_view(ident), kept);
        } catch (const std::exception& e) {
          LOG_ERROR("push/notify: reading devices failed: %s", e.what());
          ex->respond(retry_later("The push bouncer's database is unavailable; retry later"));
          return;
        }
        JsonFields f;
        f.integer("total_android_devices", n_android);
        f.integer("total_apple_devices", n_apple);
        std::string& listed = f.raw_into("deleted_devices");
        const size_t list_start = listed.size();
        append_deleted_devices(listed, kept, tokens);
        constexpr std::string_view kNoneListed = R"({"android_devices":[],"apple_devices":[]})";
        const bool lists_deleted = listed.size() - list_start != kNoneListed.size();
        f.raw("realm", has_realm ? R"({"can_push":true,"expected_end_timestamp":null})" : "null");
        // Answered without waiting for the batch's WAL sync: nothing this answer acknowledges must
        // survive a crash. Its only writes are deletions (dead tokens, shadowed id-rows); if one is
        // lost, the next push to the token gets 410 again (or step 2 finds the duplicate again)
        // and deletes it again, and the server having dropped a device we listed in
        // deleted_devices is harmless: that token is dead. Counters are written behind anyway.
        // Registrations and unregistrations still answer only once durable (api/devices.cpp).
        // Whoever reads the database after this answer still sees the deletions it reports: an
        // answer that reports or follows deletions waits until they are committed (the commit
        // handle may keep such a batch open for a few ms so that several iterations' deletions
        // share one commit; store/db.h). Every other answer goes at once.
        http::Response resp = success(std::move(f));
        const bool deletes = deleted_dups || tally.dead_deleted > 0 || lists_deleted;
        if (!deletes) {
          ex->respond(std::move(resp));
          return;
        }
        s.store.db().after_visible([ex, resp = std::move(resp)](bool ok) mutable {
          // ok=false: the batch was lost (logged); the deletions are redone by the next 410.
          (void)ok;
          ex->respond(std::move(resp));
        });
      });

  for (size_t i = 0; i < rows.size(); ++i) {
    if (!plan[i].send) continue;
    store::DeviceRow& r = rows[i];
    push::Platform platform = r.kind == store::kKindFcm ? push::Platform::fcm : push::Platform::apns;
    if (plan[i].pusher == nullptr) {
      warn_no_credentials(ns, platform, r.ios_app_id.value_or(""));
      continue;
    }
    push::PushMessage m;
    m.platform = platform;
    m.token = std::move(r.token);  // the registered spelling; `rows` is not read after this loop
    if (platform == push::Platform::apns) {
      m.app_id = std::move(r.ios_app_id).value_or("");
      m.shared_payload = apns_body;
      m.expiration_s = now_wall / 1000 + kApnsExpirationS;
    } else {
      m.shared_payload = fcm_data;
      m.push_type.clear();
      m.priority = 0;
      m.fcm_high_priority = fcm_high;
    }
    fanout->send(*plan[i].pusher, std::move(m));
  }
  fanout->finish();
}

void push_test_notification(Services& svc, const ExchangePtr& ex) {
  auto body = std::make_shared<JsonBody>(JsonBody::parse(ex->req));
  const JsonBody& jb = *body;
  std::string token = *jb.get_str("token", Presence::required);
  JsonInt kind = *jb.get_int("token_kind", Presence::required);
  RawIdentity raw;
  raw.user_id = jb.get_int("user_id", Presence::required);
  raw.user_uuid = jb.get_str("user_uuid", Presence::required);
  const Value* base = jb.get("base_payload", JType::dict, Presence::required);
  raw.realm_uuid = jb.get_str("realm_uuid", Presence::optional, Null::absent);
  jb.reject_unknown({"token", "token_kind", "user_id", "user_uuid", "base_payload", "realm_uuid"});
  Identity id = check_identity_values(raw);
  require_identity(id);
  check_realm(svc, ex, id);

  std::optional<store::DeviceRow> row;
  if (!kind.too_large && (kind.value == store::kKindApns || kind.value == store::kKindFcm))
    row = svc.store.devices().find_for_test(ex->server->id, static_cast<int>(kind.value), token, id.user_id,
                                            uuid_view(id));
  if (!row)
    throw ApiError{400, "INVALID_REMOTE_PUSH_DEVICE_TOKEN", "Device not recognized by the push bouncer", {}, {}};

  const Value* realm_name = find_member(*base, "realm_name");
  if (!realm_name) throw ApiError::bad_request("Missing realm_name");
  const Value* realm_url = find_member(*base, "realm_url");
  if (!realm_url) realm_url = find_member(*base, "realm_uri");
  if (!realm_url) throw ApiError::bad_request("Missing realm_url");

  push::BigInts big = big_ints_of(jb.doc());
  push::Platform platform = row->kind == store::kKindFcm ? push::Platform::fcm : push::Platform::apns;
  push::Pusher* pusher = pusher_for(svc, row->kind, row->ios_app_id);
  push::NotifyService& ns = service_for(svc);
  if (pusher == nullptr) {
    warn_no_credentials(ns, platform, row->ios_app_id.value_or(""));
    respond_after_commit(svc.store, ex, success());
    return;
  }
  if (!pusher->has_capacity(1)) throw queue_full(pusher->name());

  int64_t now_wall = svc.clock.wall_ms();
  push::PushMessage m;
  m.platform = platform;
  m.token = row->token;  // the registered spelling
  if (platform == push::Platform::apns) {
    // P = base_payload + "event": "test".
    push::JsonObjectText p = push::object_text(*base, big);
    p.set("event", "\"test\"");
    m.app_id = row->ios_app_id.value_or("");
    m.payload = push::build_test_apns_body(p.text(), push::py_str(*realm_name, big), push::py_str(*realm_url, big));
    m.expiration_s = now_wall / 1000 + kApnsExpirationS;
  } else {
    m.payload = push::build_fcm_data(*base, big, {{"event", "test"}, {"time", std::to_string(now_wall / 1000)}});
    m.push_type.clear();
    m.priority = 0;
    m.fcm_high_priority = true;
  }

  push::FanoutOptions fo;
  fo.answer_after_ms = svc.config.push.notify_deadline_ms;
  fo.send_deadline_mono_ms = svc.clock.mono_ms() + std::max(svc.config.push.retry_max_age_ms,
                                                            svc.config.push.notify_deadline_ms);
  fo.server_id = ex->server->id;
  fo.count_forwarded = false;  // api.md: no counters
  Services* svcp = &svc;
  auto fanout = push::Fanout::create(svc.loop, svc.store, ns, fo, [svcp, ex](const push::FanoutTally&) {
    // api.md: 200 plain success whatever the delivery outcome.
    respond_after_commit(svcp->store, ex, success());
  });
  fanout->send(*pusher, std::move(m));
  fanout->finish();
}

}  // namespace

void register_notify_routes(Router& r) {
  r.add("/api/v1/remotes/push/notify", {"POST"}, true, push_notify);
  r.add("/api/v1/remotes/push/test_notification", {"POST"}, true, push_test_notification);
}

}  // namespace aloha::api
