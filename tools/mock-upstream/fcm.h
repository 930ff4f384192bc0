// The mock FCM endpoints: Google's OAuth token endpoint `POST /token` (verifies the RS256
// service-account assertion, issues short-lived bearer tokens) and FCM HTTP v1
// `POST /v1/projects/<p>/messages:send` (checks the bearer token it issued, the message shape and
// data size, then answers as scripted by the device token's prefix), plus the control endpoint
// `GET|POST /mock/fcm` (token endpoint up/down, token lifetime, revoke issued tokens).
// FcmState is shared by the three handlers; all are owned by main() and run on the loop thread.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/clock.h"
#include "exchange.h"
#include "stats.h"

namespace aloha::mock {

struct FcmOptions {
  std::string public_key_pem;  // service-account public key; empty = assertions not verified
  int64_t token_ttl_s = 3600;  // expires_in of issued access tokens
};

// Scripted FCM answers by device-token prefix (see main.cpp's table).
enum class FcmBehaviour : uint8_t {
  ok,
  unregistered,          // 404 UNREGISTERED
  bad_token,             // 400 INVALID_ARGUMENT, BadRequest field violation on message.token
  bad_payload,           // 400 INVALID_ARGUMENT, field violation on message.data
  sender_id_mismatch,    // 403 SENDER_ID_MISMATCH
  quota_exceeded,        // 429 QUOTA_EXCEEDED
  internal,              // 500 INTERNAL
  unavailable,           // 503 UNAVAILABLE
  third_party_auth,      // 401 THIRD_PARTY_AUTH_ERROR
  flaky,                 // 503 UNAVAILABLE on a token's first request, 200 afterwards
};
bool fcm_behaviour_for_token(std::string_view token, FcmBehaviour& out);

class FcmState {
 public:
  FcmState(FcmOptions opts, const Clock& clock) : opts_(std::move(opts)), clock_(clock) {}

  // Issues a token valid for token_ttl_s.
  std::string issue();
  enum class TokenCheck { ok, missing, unknown, expired };
  TokenCheck check(const std::string* authorization) const;
  void revoke_all() { tokens_.clear(); }
  // True the first time a (flaky) token is seen.
  bool first_sight(std::string_view token);

  FcmOptions opts_;
  const Clock& clock_;
  bool token_endpoint_down = false;
  uint64_t tokens_issued = 0;
  uint64_t token_requests_refused = 0;  // assertion rejected (400)
  uint64_t token_requests_failed = 0;   // answered 503 while "down"
  uint64_t unauthenticated = 0;         // sends answered 401 UNAUTHENTICATED

  static constexpr size_t kMaxTokens = 4096;
  static constexpr size_t kMaxSeen = 65536;

 private:
  std::unordered_map<std::string, int64_t> tokens_;  // token → expiry (monotonic ms)
  std::unordered_set<std::string> seen_;             // flaky tokens already answered 503
  uint64_t counter_ = 0;
};

class OAuthTokenHandler final : public Handler {
 public:
  static constexpr std::string_view kPrefix = "/token";
  OAuthTokenHandler(FcmState& state, Stats& stats) : state_(state), stats_(stats) {}
  void handle(const Request& req, Reply& reply) override;

 private:
  // Empty when the assertion is acceptable, else the error_description.
  std::string verify(std::string_view assertion) const;
  FcmState& state_;
  Stats& stats_;
};

class FcmSendHandler final : public Handler {
 public:
  static constexpr std::string_view kPrefix = "/v1/projects/";
  static constexpr size_t kMaxData = 4096;
  FcmSendHandler(FcmState& state, Stats& stats, const Script& script)
      : state_(state), stats_(stats), script_(script) {}
  void handle(const Request& req, Reply& reply) override;

 private:
  void error(Reply& reply, int status, const char* outcome, std::string body);
  FcmState& state_;
  Stats& stats_;
  const Script& script_;
  uint64_t message_counter_ = 0;
};

// GET /mock/fcm → state and counters. POST /mock/fcm {"token_endpoint":"up"|"down",
// "token_ttl_s":N, "revoke_tokens":true} (every key optional) → the new state.
class FcmControlHandler final : public Handler {
 public:
  static constexpr std::string_view kPrefix = "/mock/fcm";
  explicit FcmControlHandler(FcmState& state) : state_(state) {}
  void handle(const Request& req, Reply& reply) override;
  std::string state_json() const;

 private:
  FcmState& state_;
};

}  // namespace aloha::mock
