// push/register, push/unregister, push/unregister/all (api.md §3): a server's device tokens,
// keyed by the user's identity (user_id and/or user_uuid, matched by the OR rule).
#include "api/identity.h"
#include "api/params.h"
#include "api/respond.h"
#include "api/router.h"
#include "api/validate.h"
#include "core/log.h"

namespace aloha::api {
namespace {

constexpr int kApns = 1;
constexpr int kFcm = 2;
constexpr size_t kMaxTokenChars = 4096;

// (2)–(4) of api.md: token kind, length, APNs hex. Returns the normalized token (APNs lower-case).
std::string check_token(int64_t kind, const std::string& token) {
  if (kind != kApns && kind != kFcm) throw ApiError::bad_request("Invalid token type");
  if (token.size() > kMaxTokenChars) throw ApiError::bad_request("Empty or invalid length token");
  if (kind == kApns) {
    if (!validate::is_even_hex(token)) throw ApiError::bad_request("Invalid APNS token");
    return validate::ascii_lower(token);
  }
  return token;
}

int64_t token_kind_value(const FormParams::JsonInt& k) { return k.too_large ? -1 : k.value; }

void add_unused(JsonFields& out, const FormParams& p) {
  std::vector<std::string> unused = p.unused();
  if (!unused.empty()) out.string_list("ignored_parameters_unsupported", unused);
}

void push_register(Services& svc, const ExchangePtr& ex) {
  FormParams p = FormParams::from_request(ex->req);
  RawIdentity raw;
  raw.user_id = p.json_int("user_id", false);
  raw.user_uuid = p.str("user_uuid", false);
  raw.realm_uuid = p.str("realm_uuid", false);
  std::string token = *p.stripped_str("token", true);
  FormParams::JsonInt kind = *p.json_int("token_kind", true);
  std::optional<std::string> app_id = p.str("ios_app_id", false);
  Identity id = check_identity_values(raw);
  if (app_id && !validate::is_ios_app_id(*app_id)) throw ApiError::bad_request("ios_app_id has invalid format");

  int64_t k = token_kind_value(kind);
  std::string norm = check_token(k, token);
  if (k == kApns && !app_id) throw ApiError::bad_request("Missing ios_app_id");
  require_identity(id);
  std::optional<store::RealmRow> realm = check_realm(svc, ex, id);
  std::optional<int64_t> realm_id;
  if (realm) realm_id = realm->id;

  int64_t now = svc.clock.wall_ms();
  try {
    svc.store.db().write([&] {
      store::DeviceRegistration reg;
      reg.server_id = ex->server->id;
      reg.kind = static_cast<int>(k);
      reg.token = token;
      reg.token_norm = norm;
      reg.ios_app_id = app_id;
      reg.user_id = id.user_id;
      reg.user_uuid = id.user_uuid;
      reg.realm_id = realm_id;
      reg.now_ms = now;
      svc.store.devices().register_device(reg);
    });
  } catch (const store::DeviceLimitError&) {
    // Thousands of tokens for one user (the store's per-user id range is full): retrying will
    // not help, so not the 503 of an unavailable store. Nothing was written.
    throw ApiError::bad_request("Too many devices registered for this user");
  }
  LOG_DEBUG("push/register %s kind=%d token=%s", ex->server->uuid.c_str(), static_cast<int>(k),
            redact_token(token).c_str());
  JsonFields out;
  add_unused(out, p);
  respond_after_commit(svc.store, ex, success(out));
}

void push_unregister(Services& svc, const ExchangePtr& ex) {
  FormParams p = FormParams::from_request(ex->req);
  std::string token = *p.stripped_str("token", true);
  FormParams::JsonInt kind = *p.json_int("token_kind", true);
  RawIdentity raw;
  raw.user_id = p.json_int("user_id", false);
  raw.user_uuid = p.str("user_uuid", false);
  raw.realm_uuid = p.str("realm_uuid", false);
  Identity id = check_identity_values(raw);
  int64_t k = token_kind_value(kind);
  std::string norm = check_token(k, token);
  require_identity(id);
  check_realm(svc, ex, id);

  int deleted = 0;
  svc.store.db().write([&] {
    deleted = svc.store.devices().unregister(ex->server->id, static_cast<int>(k), norm, id.user_id,
                                             id.user_uuid);
  });
  if (deleted == 0) throw ApiError::bad_request("Token does not exist");
  JsonFields out;
  add_unused(out, p);
  respond_after_commit(svc.store, ex, success(out));
}

void push_unregister_all(Services& svc, const ExchangePtr& ex) {
  FormParams p = FormParams::from_request(ex->req);
  RawIdentity raw;
  raw.user_id = p.json_int("user_id", false);
  raw.user_uuid = p.str("user_uuid", false);
  raw.realm_uuid = p.str("realm_uuid", false);
  Identity id = check_identity_values(raw);
  require_identity(id);
  check_realm(svc, ex, id);
  svc.store.db().write([&] {
    svc.store.devices().unregister_all(ex->server->id, id.user_id, id.user_uuid);
  });
  JsonFields out;
  add_unused(out, p);
  respond_after_commit(svc.store, ex, success(out));
}

}  // namespace

void register_device_routes(Router& r) {
  r.add("/api/v1/remotes/push/register", {"POST"}, true, push_register, Writes::yes);
  r.add("/api/v1/remotes/push/unregister", {"POST"}, true, push_unregister, Writes::yes);
  r.add("/api/v1/remotes/push/unregister/all", {"POST"}, true, push_unregister_all, Writes::yes);
}

}  // namespace aloha::api
