#include "push/jwt.h"

#include <cstdio>

#include "core/encoding.h"
#include "core/log.h"

namespace aloha::push {

std::string sign_jwt(JwtAlg alg, std::string_view header_json, std::string_view claims_json,
                     net::PrivateKey& key) {
  std::string input = enc::base64url_encode(header_json);
  input += '.';
  input += enc::base64url_encode(claims_json);
  std::string sig;
  bool ok = alg == JwtAlg::es256 ? key.sign_es256(input, sig) : key.sign_rs256(input, sig);
  if (!ok) return {};
  input += '.';
  input += enc::base64url_encode(sig);
  return input;
}

namespace {
bool valid_id(std::string_view s) {
  if (s.size() != 10) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}
constexpr int64_t kMinRemintIntervalMs = 20 * 60 * 1000;
}  // namespace

std::unique_ptr<ApnsTokenProvider> ApnsTokenProvider::load(const std::string& key_file,
                                                           std::string key_id, std::string team_id,
                                                           const Clock& clock, std::string& err) {
  if (!valid_id(key_id)) {
    err = "key_id must be the 10-character key id of the .p8 key";
    return nullptr;
  }
  if (!valid_id(team_id)) {
    err = "team_id must be the 10-character Apple team id";
    return nullptr;
  }
  std::unique_ptr<net::PrivateKey> key = net::PrivateKey::from_file(key_file, err);
  if (!key) return nullptr;
  auto p = std::make_unique<ApnsTokenProvider>(std::move(key), std::move(key_id), std::move(team_id), clock);
  // Mint once now: a key that cannot sign ES256 (not P-256) stops start-up, not the first push.
  if (!p->mint()) {
    err = key_file + ": not an EC P-256 key (APNs token auth needs the .p8 key from Apple)";
    return nullptr;
  }
  return p;
}

ApnsTokenProvider::ApnsTokenProvider(std::unique_ptr<net::PrivateKey> key, std::string key_id,
                                     std::string team_id, const Clock& clock, int64_t refresh_ms)
    : key_(std::move(key)), key_id_(std::move(key_id)), team_id_(std::move(team_id)), clock_(clock),
      refresh_ms_(refresh_ms) {}

bool ApnsTokenProvider::mint() {
  char header[64], claims[96];
  snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", key_id_.c_str());
  snprintf(claims, sizeof claims, "{\"iss\":\"%s\",\"iat\":%lld}", team_id_.c_str(),
           static_cast<long long>(clock_.wall_ms() / 1000));
  std::string jwt = sign_jwt(JwtAlg::es256, header, claims, *key_);
  if (jwt.empty()) return false;
  authorization_ = "bearer " + jwt;
  shared_authorization_ = std::make_shared<const std::string>(authorization_);
  minted_mono_ms_ = clock_.mono_ms();
  ++mint_count_;
  LOG_INFO("apns: minted a provider token for team %s key %s", team_id_.c_str(), key_id_.c_str());
  return true;
}

const std::string& ApnsTokenProvider::authorization() {
  if (minted_mono_ms_ < 0 || clock_.mono_ms() - minted_mono_ms_ >= refresh_ms_) mint();
  return authorization_;
}

std::shared_ptr<const std::string> ApnsTokenProvider::shared_authorization() {
  authorization();  // mints or refreshes when due
  return shared_authorization_;
}

bool ApnsTokenProvider::expired_by_upstream() {
  if (minted_mono_ms_ >= 0 && clock_.mono_ms() - minted_mono_ms_ < kMinRemintIntervalMs) return false;
  return mint();
}

}  // namespace aloha::push
