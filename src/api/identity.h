// The identity and realm checks shared by push/register, push/unregister(/all), push/notify and
// push/test_notification (api.md §3): user_id / user_uuid / realm_uuid validation with the
// plain-named messages, "Missing user_id or user_uuid", and the realm ownership check (403 for a
// realm of another server). Pure functions over values the caller owns; errors throw ApiError.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "api/params.h"
#include "api/router.h"

namespace aloha::api {

// A validated identity: UUIDs lower-case.
struct Identity {
  std::optional<int64_t> user_id;
  std::optional<std::string> user_uuid;
  std::optional<std::string> realm_uuid;
};

// The parameters as read (before the range and UUID checks, which api.md orders after reading).
struct RawIdentity {
  std::optional<JsonInt> user_id;
  std::optional<std::string> user_uuid, realm_uuid;
};

// "user_id is too large", "Invalid user_uuid", "Invalid realm_uuid" (in that order).
Identity check_identity_values(const RawIdentity& raw);
// The same, taking the strings over (lower-cased in place: no copies).
Identity check_identity_values(RawIdentity&& raw);

// "Missing user_id or user_uuid" when neither is given.
void require_identity(const Identity& id);

// A realm of another server → 403 REMOTE_REALM_SERVER_MISMATCH_ERROR; a realm of this server →
// its row; unknown or no realm_uuid → nullopt. `ex->server` must be set (authenticated route).
std::optional<store::RealmRow> check_realm(Services& svc, const ExchangePtr& ex, const Identity& id);
// The same check reading only the realm's id (no row copy): its id, or nullopt.
std::optional<int64_t> check_realm_id(Services& svc, const ExchangePtr& ex, const Identity& id);

}  // namespace aloha::api
