#include "api/identity.h"

#include "api/validate.h"

namespace aloha::api {
namespace {

ApiError realm_mismatch() {
  return ApiError{403, "REMOTE_REALM_SERVER_MISMATCH_ERROR",
                  "Your organization is registered to a different Aloha server. Please contact "
                  "Aloha support for assistance in resolving this issue.",
                  {}, {}};
}

}  // namespace

Identity check_identity_values(const RawIdentity& raw) {
  RawIdentity copy = raw;
  return check_identity_values(std::move(copy));
}

Identity check_identity_values(RawIdentity&& raw) {
  Identity id;
  if (raw.user_id) {
    // Python's int has no bound, so the value parsed; the bouncer stores int64 (api.md).
    if (raw.user_id->too_large) throw ApiError::bad_request("user_id is too large");
    id.user_id = raw.user_id->value;
  }
  if (raw.user_uuid) {
    if (!validate::lower_uuid_in_place(*raw.user_uuid)) throw ApiError::bad_request("Invalid user_uuid");
    id.user_uuid = std::move(raw.user_uuid);
  }
  if (raw.realm_uuid) {
    if (!validate::lower_uuid_in_place(*raw.realm_uuid)) throw ApiError::bad_request("Invalid realm_uuid");
    id.realm_uuid = std::move(raw.realm_uuid);
  }
  return id;
}

void require_identity(const Identity& id) {
  if (!id.user_id && !id.user_uuid) throw ApiError::bad_request("Missing user_id or user_uuid");
}

std::optional<store::RealmRow> check_realm(Services& svc, const ExchangePtr& ex, const Identity& id) {
  if (!id.realm_uuid) return std::nullopt;
  std::optional<store::RealmRow> realm = svc.store.realms().find_by_uuid(*id.realm_uuid);
  if (!realm) return std::nullopt;  // api.md: an unknown realm is ignored
  if (realm->server_id != ex->server->id) throw realm_mismatch();
  return realm;
}

std::optional<int64_t> check_realm_id(Services& svc, const ExchangePtr& ex, const Identity& id) {
  if (!id.realm_uuid) return std::nullopt;
  std::optional<store::RealmOwner> realm = svc.store.realms().owner_of(*id.realm_uuid);
  if (!realm) return std::nullopt;  // api.md: an unknown realm is ignored
  if (realm->server_id != ex->server->id) throw realm_mismatch();
  return realm->id;
}

}  // namespace aloha::api
