#include "apns.h"
#include "core/encoding.h"

#include <rapidjson/document.h>

#include <cinttypes>
#include <cstdio>
#include <random>

#include "net/pk.h"

namespace aloha::mock {

namespace {

// Prefix rules (hex-compatible so scripted tokens stay valid hex). Keep in sync with the table
// in main.cpp and README.md. Order matters only for prefixes of one another (none today).
struct PrefixRule {
  std::string_view prefix;
  Behaviour behaviour;
};
constexpr PrefixRule kRules[] = {
    {"410", Behaviour::unregistered},     {"41e0", Behaviour::expired_token},
    {"400b", Behaviour::bad_device_token}, {"400c", Behaviour::not_for_topic},
    {"4290", Behaviour::too_many_requests}, {"5000", Behaviour::internal_error},
    {"5030", Behaviour::unavailable},      {"dea1", Behaviour::slow},
    {"f001", Behaviour::reset_stream},     {"f002", Behaviour::drop_connection},
    {"f003", Behaviour::hang},             {"f004", Behaviour::goaway},
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// base64url without padding (RFC 7515 §2); strict: no padding, no other characters.
bool b64url_decode(std::string_view in, std::string& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-') v = 62;
    else if (c == '_') v = 63;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return in.size() % 4 != 1;
}

bool nonempty_string(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0;
}

}  // namespace

JwtVerifier::JwtVerifier(std::string public_pem, const Clock& clock)
    : public_pem_(std::move(public_pem)), clock_(clock) {}

bool JwtVerifier::verify_uncached(std::string_view jwt, int64_t& iat) const {
  size_t d1 = jwt.find('.');
  if (d1 == std::string_view::npos) return false;
  size_t d2 = jwt.find('.', d1 + 1);
  if (d2 == std::string_view::npos || jwt.find('.', d2 + 1) != std::string_view::npos) return false;
  std::string header, claims, sig;
  if (!b64url_decode(jwt.substr(0, d1), header) ||
      !b64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1), claims) ||
      !b64url_decode(jwt.substr(d2 + 1), sig))
    return false;
  rapidjson::Document h, c;
  h.Parse(header.data(), header.size());
  if (h.HasParseError() || !h.IsObject()) return false;
  auto alg = h.FindMember("alg");
  if (alg == h.MemberEnd() || !alg->value.IsString() ||
      std::string_view(alg->value.GetString()) != "ES256" || !nonempty_string(h, "kid"))
    return false;
  c.Parse(claims.data(), claims.size());
  if (c.HasParseError() || !c.IsObject() || !nonempty_string(c, "iss")) return false;
  auto iat_it = c.FindMember("iat");
  if (iat_it == c.MemberEnd() || !iat_it->value.IsInt64()) return false;
  iat = iat_it->value.GetInt64();
  // JWS signing input is "<b64 header>.<b64 claims>" exactly as sent (RFC 7515 §5.2).
  return sig.size() == 64 && net::verify_es256(public_pem_, jwt.substr(0, d2), sig);
}

JwtVerdict JwtVerifier::check(const std::string* authorization) {
  if (authorization == nullptr) return JwtVerdict::missing;
  std::string_view v = *authorization;
  if (v.size() < 7 || !enc::ascii_iequals(v.substr(0, 7), "bearer ")) return JwtVerdict::invalid;
  std::string_view jwt = v.substr(7);
  if (jwt.empty()) return JwtVerdict::missing;
  const Entry* hit = nullptr;
  for (const auto& e : cache_)
    if (!e.jwt.empty() && e.jwt == jwt) hit = &e;
  if (hit == nullptr) {
    Entry& e = cache_[next_slot_];
    next_slot_ = (next_slot_ + 1) % std::size(cache_);
    e.jwt.assign(jwt);
    e.iat = 0;
    e.valid = verify_uncached(jwt, e.iat);
    hit = &e;
  }
  if (!hit->valid) return JwtVerdict::invalid;
  // Age is checked on every request (not cached): a JWT that was fine goes stale after an hour.
  if (clock_.wall_ms() / 1000 - hit->iat > kMaxAgeSeconds) return JwtVerdict::expired;
  return JwtVerdict::ok;
}

ApnsHandler::ApnsHandler(ApnsOptions opts, Stats& stats, const Script& script, const Clock& clock)
    : opts_(std::move(opts)), stats_(stats), script_(script), clock_(clock),
      jwt_(opts_.public_key_pem, clock) {
  std::random_device rd;
  id_seed_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

bool ApnsHandler::behaviour_for_token(std::string_view token, Behaviour& out) {
  for (const auto& r : kRules) {
    if (token.size() >= r.prefix.size() && enc::ascii_iequals(token.substr(0, r.prefix.size()), r.prefix)) {
      out = r.behaviour;
      return true;
    }
  }
  return false;
}

void ApnsHandler::set_apns_id(const Request& req, Reply& reply) {
  if (const std::string* id = req.header("apns-id"); id != nullptr && !id->empty()) {
    reply.apns_id = *id;
    return;
  }
  // A lowercase version-4-shaped UUID from a per-process random seed and a counter: unique per
  // run and cheap (no RNG call per request).
  uint64_t hi = id_seed_, lo = ++id_counter_ * 0x9e3779b97f4a7c15ull ^ id_seed_;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64,
                hi >> 32, (hi >> 16) & 0xffff, hi & 0xfff, (lo >> 48) & 0xfff,
                static_cast<uint64_t>(lo & 0xffffffffffffull));
  reply.apns_id.assign(buf);
}

void ApnsHandler::error(Reply& reply, int status, const char* reason) {
  stats_.count_outcome(reason);
  reply.status = status;
  reply.content_type = "application/json";
  reply.body = reason_json(reason);
}

void ApnsHandler::handle(const Request& req, Reply& reply) {
  set_apns_id(req, reply);
  if (req.method != "POST") return error(reply, 405, "MethodNotAllowed");

  // Authentication first, as a front end would: a bad credential fails whatever the token.
  const std::string* auth = req.header("authorization");
  bool token_auth = false;
  if (auth != nullptr && !opts_.public_key_pem.empty()) {
    switch (jwt_.check(auth)) {
      case JwtVerdict::ok: token_auth = true; break;
      case JwtVerdict::missing: return error(reply, 403, "MissingProviderToken");
      case JwtVerdict::invalid: return error(reply, 403, "InvalidProviderToken");
      case JwtVerdict::expired: return error(reply, 403, "ExpiredProviderToken");
    }
  } else if (opts_.cert_auth && req.client_cert_verified) {
    // Certificate auth: the TLS layer verified the client certificate against --client-ca.
  } else if (auth != nullptr && opts_.cert_auth) {
    return error(reply, 403, "InvalidProviderToken");  // no public key to check it with
  } else if (!opts_.public_key_pem.empty() || opts_.cert_auth) {
    return error(reply, 403, "MissingProviderToken");
  }  // else: no credentials configured (development mode) — accept

  const std::string* topic = req.header("apns-topic");
  if (topic == nullptr || topic->empty()) return error(reply, 400, "MissingTopic");
  if (req.body_bytes == 0) return error(reply, 400, "PayloadEmpty");
  const std::string* push_type = req.header("apns-push-type");
  size_t limit = push_type != nullptr && *push_type == "voip" ? kMaxVoipPayload : kMaxPayload;
  if (req.body_bytes > limit) return error(reply, 413, "PayloadTooLarge");

  std::string_view token = std::string_view(req.path).substr(kPrefix.size());
  if (size_t q = token.find('?'); q != std::string_view::npos) token = token.substr(0, q);
  bool hex = !token.empty();
  for (char c : token) hex = hex && hex_value(c) >= 0;
  if (!hex) return error(reply, 400, "BadDeviceToken");

  Behaviour b = script_.default_behaviour;
  behaviour_for_token(token, b);
  reply.delay_ms = script_.delay_ms;
  switch (b) {
    case Behaviour::ok:
    case Behaviour::slow:
      if (b == Behaviour::slow) reply.delay_ms += script_.slow_ms;
      stats_.count_outcome(b == Behaviour::slow ? "slow" : "ok");
      reply.status = 200;
      reply.token_auth_success = token_auth;
      return;
    case Behaviour::unregistered:
    case Behaviour::expired_token: {
      const char* reason = b == Behaviour::unregistered ? "Unregistered" : "ExpiredToken";
      stats_.count_outcome(reason);
      reply.status = 410;
      reply.content_type = "application/json";
      // APNs: the last time the token was known invalid, epoch milliseconds (upstreams.md).
      char buf[96];
      std::snprintf(buf, sizeof buf, "{\"reason\":\"%s\",\"timestamp\":%" PRId64 "}", reason,
                    clock_.wall_ms());
      reply.body.assign(buf);
      return;
    }
    case Behaviour::bad_device_token: return error(reply, 400, "BadDeviceToken");
    case Behaviour::not_for_topic: return error(reply, 400, "DeviceTokenNotForTopic");
    case Behaviour::too_many_requests: return error(reply, 429, "TooManyRequests");
    case Behaviour::internal_error: return error(reply, 500, "InternalServerError");
    case Behaviour::unavailable: return error(reply, 503, "ServiceUnavailable");
    case Behaviour::reset_stream:
      stats_.count_outcome("reset_stream");
      reply.action = Action::reset_stream;
      return;
    case Behaviour::drop_connection:
      stats_.count_outcome("drop_connection");
      reply.action = Action::drop_connection;
      return;
    case Behaviour::hang:
      stats_.count_outcome("hang");
      reply.action = Action::hang;
      return;
    case Behaviour::goaway:
      stats_.count_outcome("goaway");
      reply.action = Action::goaway;
      reply.goaway_debug = reason_json("Shutdown");  // APNs puts the reason JSON in GOAWAY
      return;
  }
}

}  // namespace aloha::mock
