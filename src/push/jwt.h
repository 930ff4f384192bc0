// JSON Web Tokens for the upstream credentials: ES256 provider tokens for APNs token auth and RS256
// assertions for Google's OAuth token exchange (FCM). A JWT is minted rarely and cached; never per
// request (APNs refuses more than one new token per 20 minutes).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "net/pk.h"

namespace aloha::push {

enum class JwtAlg { es256, rs256 };

// base64url(header) "." base64url(claims) "." base64url(signature). header_json and claims_json are
// complete JSON objects. Empty string when signing fails (wrong key type).
std::string sign_jwt(JwtAlg alg, std::string_view header_json, std::string_view claims_json,
                     net::PrivateKey& key);

// The APNs provider token of one (team, key): {"alg":"ES256","kid":key_id} / {"iss":team,"iat":now}.
// Re-minted when older than refresh_ms (default 45 min: APNs rejects tokens older than 60 min and
// refreshes more often than every 20 min), and once on ExpiredProviderToken.
class ApnsTokenProvider {
 public:
  // Loads the .p8 key (blocking file read: start-up only). nullptr + err when the file is missing
  // or not an EC P-256 key, or the ids are malformed (key id and team id are 10 characters).
  static std::unique_ptr<ApnsTokenProvider> load(const std::string& key_file, std::string key_id,
                                                 std::string team_id, const Clock& clock,
                                                 std::string& err);
  ApnsTokenProvider(std::unique_ptr<net::PrivateKey> key, std::string key_id, std::string team_id,
                    const Clock& clock, int64_t refresh_ms = 45 * 60 * 1000);

  // "bearer <jwt>": the cached token, minted first if absent or older than refresh_ms.
  const std::string& authorization();
  // The same value as one shared immutable buffer (replaced, never modified, on re-mint), so each
  // request's header references it instead of copying it. nullptr until a token was minted.
  std::shared_ptr<const std::string> shared_authorization();
  // Called on 403 ExpiredProviderToken: mints a new token unless one was minted in the last
  // 20 minutes (APNs answers TooManyProviderTokenUpdates to faster refreshes). True if re-minted.
  bool expired_by_upstream();

  int64_t minted_at_ms() const { return minted_mono_ms_; }
  int mint_count() const { return mint_count_; }
  const std::string& team_id() const { return team_id_; }
  const std::string& key_id() const { return key_id_; }

 private:
  bool mint();

  std::unique_ptr<net::PrivateKey> key_;
  std::string key_id_, team_id_;
  const Clock& clock_;
  int64_t refresh_ms_;
  std::string authorization_;
  std::shared_ptr<const std::string> shared_authorization_;
  int64_t minted_mono_ms_ = -1;
  int mint_count_ = 0;
};

}  // namespace aloha::push
