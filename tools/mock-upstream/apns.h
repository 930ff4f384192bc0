// The mock APNs endpoint `POST /3/device/<token>`: checks what Apple checks (provider token or
// client certificate, apns-topic, payload size, token syntax) and then answers as scripted by the
// token's prefix or the runtime Script. JwtVerifier checks provider tokens (ES256 JWTs) with a
// small cache, because clients reuse one JWT for ~45 minutes and ECDSA verification is costly.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "exchange.h"
#include "stats.h"

namespace aloha::mock {

enum class JwtVerdict { ok, missing, invalid, expired };

class JwtVerifier {
 public:
  // public_pem: the provider's EC P-256 public key ("PUBLIC KEY" PEM). clock: wall time for iat.
  JwtVerifier(std::string public_pem, const Clock& clock);

  // authorization: the header value ("bearer <JWT>", scheme case-insensitive); nullptr = absent.
  // ok: header {"alg":"ES256","kid":<non-empty>}, claims {"iss":<non-empty>,"iat":<int>},
  // signature raw r||s valid. expired: otherwise valid but iat older than 3600 s (APNs rule).
  JwtVerdict check(const std::string* authorization);

  static constexpr int64_t kMaxAgeSeconds = 3600;

 private:
  // Structure + signature check, no expiry; iat out.
  bool verify_uncached(std::string_view jwt, int64_t& iat) const;

  struct Entry {
    std::string jwt;
    bool valid = false;
    int64_t iat = 0;
  };
  std::string public_pem_;
  const Clock& clock_;
  Entry cache_[8];  // round-robin; a handful of live JWTs at a time is the realistic case
  size_t next_slot_ = 0;
};

struct ApnsOptions {
  std::string public_key_pem;  // non-empty: token auth (JWT) accepted/required
  bool cert_auth = false;      // a verified client certificate authorises requests
};

class ApnsHandler final : public Handler {
 public:
  static constexpr std::string_view kPrefix = "/3/device/";
  static constexpr size_t kMaxPayload = 4096;
  static constexpr size_t kMaxVoipPayload = 5120;

  ApnsHandler(ApnsOptions opts, Stats& stats, const Script& script, const Clock& clock);
  void handle(const Request& req, Reply& reply) override;

  // The scripted behaviour of a (hex) token by prefix; false when no rule matches.
  static bool behaviour_for_token(std::string_view token, Behaviour& out);

 private:
  void error(Reply& reply, int status, const char* reason);
  void set_apns_id(const Request& req, Reply& reply);

  ApnsOptions opts_;
  Stats& stats_;
  const Script& script_;
  const Clock& clock_;
  JwtVerifier jwt_;
  uint64_t id_seed_;
  uint64_t id_counter_ = 0;
};

}  // namespace aloha::mock
