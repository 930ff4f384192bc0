#include "fcm.h"

#include <rapidjson/document.h>

#include <cinttypes>
#include <cstdio>

#include "core/crypto.h"
#include "http/form.h"
#include "net/pk.h"

namespace aloha::mock {

namespace {

// Prefix rules for FCM device tokens (FCM tokens are opaque strings, so readable prefixes).
struct PrefixRule {
  std::string_view prefix;
  FcmBehaviour behaviour;
};
constexpr PrefixRule kRules[] = {
    {"unreg", FcmBehaviour::unregistered},
    {"badtok", FcmBehaviour::bad_token},
    {"badpay", FcmBehaviour::bad_payload},
    {"sender", FcmBehaviour::sender_id_mismatch},
    {"quota", FcmBehaviour::quota_exceeded},
    {"int500", FcmBehaviour::internal},
    {"unav503", FcmBehaviour::unavailable},
    {"thirdp", FcmBehaviour::third_party_auth},
    {"flaky", FcmBehaviour::flaky},
};

constexpr std::string_view kFcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
constexpr std::string_view kBadRequestType = "type.googleapis.com/google.rpc.BadRequest";

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

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
  }
  return out;
}

// The google.rpc.Status error shape of FCM HTTP v1 (upstreams.md).
std::string fcm_error(int code, std::string_view status, std::string_view message,
                      std::string_view error_code, std::string_view violation_field = {}) {
  std::string b = "{\"error\":{\"code\":" + std::to_string(code) + ",\"message\":\"" +
                  json_escape(message) + "\",\"status\":\"" + std::string(status) + "\"";
  if (!error_code.empty() || !violation_field.empty()) {
    b += ",\"details\":[";
    bool first = true;
    if (!error_code.empty()) {
      b += "{\"@type\":\"" + std::string(kFcmErrorType) + "\",\"errorCode\":\"" +
           std::string(error_code) + "\"}";
      first = false;
    }
    if (!violation_field.empty()) {
      if (!first) b += ",";
      b += "{\"@type\":\"" + std::string(kBadRequestType) +
           "\",\"fieldViolations\":[{\"field\":\"" + std::string(violation_field) +
           "\",\"description\":\"Invalid value\"}]}";
    }
    b += "]";
  }
  b += "}}";
  return b;
}

bool string_member(const rapidjson::Value& obj, const char* key, std::string_view& out) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return false;
  out = std::string_view(it->value.GetString(), it->value.GetStringLength());
  return true;
}

}  // namespace

bool fcm_behaviour_for_token(std::string_view token, FcmBehaviour& out) {
  for (const auto& r : kRules) {
    if (token.substr(0, r.prefix.size()) == r.prefix) {
      out = r.behaviour;
      return true;
    }
  }
  return false;
}

std::string FcmState::issue() {
  int64_t now = clock_.mono_ms();
  if (tokens_.size() >= kMaxTokens) {
    // Bounded: forget expired tokens first, then arbitrary ones (their holders get a 401 and
    // refresh, which is what Google's revocation looks like too).
    for (auto it = tokens_.begin(); it != tokens_.end();)
      it = it->second <= now ? tokens_.erase(it) : std::next(it);
    while (tokens_.size() >= kMaxTokens) tokens_.erase(tokens_.begin());
  }
  std::string tok = "ya29.mock-" + std::to_string(++counter_) + "-" + crypto::random_alnum(24);
  tokens_[tok] = now + opts_.token_ttl_s * 1000;
  ++tokens_issued;
  return tok;
}

FcmState::TokenCheck FcmState::check(const std::string* authorization) const {
  if (authorization == nullptr) return TokenCheck::missing;
  std::string_view v = *authorization;
  if (v.size() < 7) return TokenCheck::missing;
  std::string scheme(v.substr(0, 7));
  for (char& c : scheme) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (scheme != "bearer ") return TokenCheck::missing;
  auto it = tokens_.find(std::string(v.substr(7)));
  if (it == tokens_.end()) return TokenCheck::unknown;
  return clock_.mono_ms() < it->second ? TokenCheck::ok : TokenCheck::expired;
}

bool FcmState::first_sight(std::string_view token) {
  if (seen_.count(std::string(token))) return false;
  if (seen_.size() >= kMaxSeen) seen_.clear();
  seen_.emplace(token);
  return true;
}

std::string OAuthTokenHandler::verify(std::string_view jwt) const {
  size_t d1 = jwt.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : jwt.find('.', d1 + 1);
  if (d2 == std::string_view::npos || jwt.find('.', d2 + 1) != std::string_view::npos)
    return "Invalid JWT: not three segments";
  std::string header, claims, sig;
  if (!b64url_decode(jwt.substr(0, d1), header) ||
      !b64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1), claims) ||
      !b64url_decode(jwt.substr(d2 + 1), sig))
    return "Invalid JWT: bad base64url";
  rapidjson::Document h, c;
  h.Parse(header.data(), header.size());
  std::string_view alg;
  if (h.HasParseError() || !h.IsObject() || !string_member(h, "alg", alg) || alg != "RS256")
    return "Invalid JWT: header must have alg RS256";
  c.Parse(claims.data(), claims.size());
  if (c.HasParseError() || !c.IsObject()) return "Invalid JWT: claims are not an object";
  std::string_view iss, scope, aud;
  if (!string_member(c, "iss", iss) || iss.empty()) return "Invalid JWT: missing iss";
  if (!string_member(c, "scope", scope) ||
      scope.find("https://www.googleapis.com/auth/firebase.messaging") == std::string_view::npos)
    return "Invalid JWT: scope must include firebase.messaging";
  if (!string_member(c, "aud", aud) || aud.size() < 6 || aud.substr(aud.size() - 6) != "/token")
    return "Invalid JWT: aud must be the token_uri";
  auto iat = c.FindMember("iat");
  auto exp = c.FindMember("exp");
  if (iat == c.MemberEnd() || !iat->value.IsInt64() || exp == c.MemberEnd() || !exp->value.IsInt64())
    return "Invalid JWT: iat and exp must be integers";
  int64_t now = state_.clock_.wall_ms() / 1000;
  // Google: exp at most one hour after iat; the assertion must be current (small skew allowed).
  if (exp->value.GetInt64() - iat->value.GetInt64() > 3600) return "Invalid JWT: exp too far after iat";
  if (exp->value.GetInt64() <= now) return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe";
  if (iat->value.GetInt64() > now + 300) return "Invalid JWT: iat in the future";
  if (!state_.opts_.public_key_pem.empty() &&
      !net::verify_rs256(state_.opts_.public_key_pem, jwt.substr(0, d2), sig))
    return "Invalid JWT Signature.";
  return {};
}

void OAuthTokenHandler::handle(const Request& req, Reply& reply) {
  reply.content_type = "application/json; charset=utf-8";
  if (req.method != "POST") {
    stats_.count_outcome("oauth_bad_method");
    reply.status = 405;
    reply.body = R"({"error":"invalid_request","error_description":"POST required"})";
    return;
  }
  if (state_.token_endpoint_down) {
    ++state_.token_requests_failed;
    stats_.count_outcome("oauth_down");
    reply.status = 503;
    reply.body = R"({"error":"temporarily_unavailable"})";
    return;
  }
  http::FormFields fields;
  std::string err;
  std::string_view grant, assertion;
  if (http::decode_urlencoded(req.body, fields, err)) {
    for (const auto& [k, v] : fields) {
      if (k == "grant_type") grant = v;
      if (k == "assertion") assertion = v;
    }
  }
  std::string problem;
  if (grant != "urn:ietf:params:oauth:grant-type:jwt-bearer") {
    problem = "unsupported_grant_type";
  } else {
    problem = verify(assertion);
  }
  if (!problem.empty()) {
    ++state_.token_requests_refused;
    stats_.count_outcome("oauth_invalid_grant");
    reply.status = 400;
    reply.body = "{\"error\":\"invalid_grant\",\"error_description\":\"" + json_escape(problem) + "\"}";
    return;
  }
  stats_.count_outcome("oauth_token_issued");
  reply.status = 200;
  reply.body = "{\"access_token\":\"" + state_.issue() + "\",\"expires_in\":" +
               std::to_string(state_.opts_.token_ttl_s) + ",\"token_type\":\"Bearer\"}";
}

void FcmSendHandler::error(Reply& reply, int status, const char* outcome, std::string body) {
  stats_.count_outcome(outcome);
  reply.status = status;
  reply.content_type = "application/json; charset=UTF-8";
  reply.body = std::move(body);
}

void FcmSendHandler::handle(const Request& req, Reply& reply) {
  if (req.method != "POST")
    return error(reply, 405, "fcm_bad_method", fcm_error(405, "INVALID_ARGUMENT", "POST only", ""));
  std::string_view path = req.path;
  std::string_view rest = path.substr(kPrefix.size());
  size_t slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos || rest.substr(slash) != "/messages:send")
    return error(reply, 404, "fcm_bad_path", fcm_error(404, "NOT_FOUND", "Not found", ""));

  switch (state_.check(req.header("authorization"))) {
    case FcmState::TokenCheck::ok: break;
    case FcmState::TokenCheck::missing:
    case FcmState::TokenCheck::unknown:
    case FcmState::TokenCheck::expired:
      // FCM answers a missing/expired bearer token with 401 UNAUTHENTICATED and no FcmError.
      ++state_.unauthenticated;
      return error(reply, 401, "fcm_unauthenticated",
                   fcm_error(401, "UNAUTHENTICATED",
                             "Request had invalid authentication credentials. Expected OAuth 2 "
                             "access token, login cookie or other valid authentication credential.",
                             ""));
  }

  rapidjson::Document doc;
  doc.Parse(req.body.data(), req.body.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("message") || !doc["message"].IsObject())
    return error(reply, 400, "fcm_bad_request",
                 fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", "INVALID_ARGUMENT"));
  const rapidjson::Value& msg = doc["message"];
  std::string_view token;
  if (!string_member(msg, "token", token) || token.empty())
    return error(reply, 400, "fcm_missing_token",
                 fcm_error(400, "INVALID_ARGUMENT", "Recipient of the message is not set.",
                           "INVALID_ARGUMENT", "message"));
  size_t data_bytes = 0;
  if (auto d = msg.FindMember("data"); d != msg.MemberEnd()) {
    if (!d->value.IsObject())
      return error(reply, 400, "fcm_bad_data",
                   fcm_error(400, "INVALID_ARGUMENT", "Invalid value at 'message.data'",
                             "INVALID_ARGUMENT", "message.data"));
    for (auto it = d->value.MemberBegin(); it != d->value.MemberEnd(); ++it) {
      if (!it->value.IsString())
        return error(reply, 400, "fcm_bad_data",
                     fcm_error(400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value'",
                               "INVALID_ARGUMENT", "message.data[0].value"));
      data_bytes += it->name.GetStringLength() + it->value.GetStringLength();
    }
  }
  if (data_bytes > kMaxData)
    return error(reply, 400, "fcm_too_big",
                 fcm_error(400, "INVALID_ARGUMENT", "Message is too big", "INVALID_ARGUMENT"));
  if (auto a = msg.FindMember("android"); a != msg.MemberEnd()) {
    std::string_view prio;
    if (!a->value.IsObject() ||
        (a->value.HasMember("priority") &&
         (!string_member(a->value, "priority", prio) ||
          (prio != "HIGH" && prio != "NORMAL" && prio != "high" && prio != "normal"))))
      return error(reply, 400, "fcm_bad_android",
                   fcm_error(400, "INVALID_ARGUMENT", "Invalid value at 'message.android.priority'",
                             "INVALID_ARGUMENT", "message.android.priority"));
  }

  FcmBehaviour b = FcmBehaviour::ok;
  bool scripted = fcm_behaviour_for_token(token, b);
  if (!scripted) {
    // The runtime script's default applies to FCM too where it has an FCM meaning.
    if (script_.default_behaviour == Behaviour::internal_error) b = FcmBehaviour::internal;
    if (script_.default_behaviour == Behaviour::unavailable) b = FcmBehaviour::unavailable;
  }
  reply.delay_ms = script_.delay_ms;
  switch (b) {
    case FcmBehaviour::flaky:
      if (state_.first_sight(token))
        return error(reply, 503, "fcm_flaky_unavailable",
                     fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"));
      [[fallthrough]];
    case FcmBehaviour::ok: {
      stats_.count_outcome("fcm_ok");
      reply.status = 200;
      // Real FCM grants many concurrent streams from the start; the mock's listener cannot tell an
      // FCM client from an APNs one before its first request, so it raises the limit after the
      // first success here too (without this, every FCM connection ran one push at a time).
      reply.token_auth_success = true;
      reply.content_type = "application/json; charset=UTF-8";
      std::string p(rest.substr(0, slash));
      reply.body = "{\"name\":\"projects/" + json_escape(p) + "/messages/0:" +
                   std::to_string(++message_counter_) + "\"}";
      return;
    }
    case FcmBehaviour::unregistered:
      return error(reply, 404, "fcm_unregistered",
                   fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"));
    case FcmBehaviour::bad_token:
      return error(reply, 400, "fcm_invalid_token",
                   fcm_error(400, "INVALID_ARGUMENT",
                             "The registration token is not a valid FCM registration token",
                             "INVALID_ARGUMENT", "message.token"));
    case FcmBehaviour::bad_payload:
      return error(reply, 400, "fcm_invalid_payload",
                   fcm_error(400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value'",
                             "INVALID_ARGUMENT", "message.data[0].value"));
    case FcmBehaviour::sender_id_mismatch:
      return error(reply, 403, "fcm_sender_id_mismatch",
                   fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"));
    case FcmBehaviour::quota_exceeded:
      // Google sends Retry-After with QUOTA_EXCEEDED; the pusher must wait at least 60 s anyway.
      reply.retry_after = "61";
      return error(reply, 429, "fcm_quota_exceeded",
                   fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED"));
    case FcmBehaviour::internal:
      return error(reply, 500, "fcm_internal",
                   fcm_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL"));
    case FcmBehaviour::unavailable:
      return error(reply, 503, "fcm_unavailable",
                   fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"));
    case FcmBehaviour::third_party_auth:
      return error(reply, 401, "fcm_third_party_auth_error",
                   fcm_error(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service",
                             "THIRD_PARTY_AUTH_ERROR"));
  }
}

std::string FcmControlHandler::state_json() const {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "{\"token_endpoint\":\"%s\",\"token_ttl_s\":%" PRId64 ",\"tokens_issued\":%" PRIu64
                ",\"token_requests_refused\":%" PRIu64 ",\"token_requests_failed\":%" PRIu64
                ",\"unauthenticated\":%" PRIu64 "}",
                state_.token_endpoint_down ? "down" : "up", state_.opts_.token_ttl_s,
                state_.tokens_issued, state_.token_requests_refused, state_.token_requests_failed,
                state_.unauthenticated);
  return buf;
}

void FcmControlHandler::handle(const Request& req, Reply& reply) {
  reply.content_type = "application/json";
  std::string_view path = req.path;
  if (size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path != kPrefix) {
    reply.status = 404;
    reply.body = reason_json("BadPath");
    return;
  }
  if (req.method == "POST") {
    rapidjson::Document doc;
    doc.Parse(req.body.data(), req.body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      reply.status = 400;
      reply.body = reason_json("body must be a JSON object");
      return;
    }
    // Validate everything before changing anything.
    bool down = state_.token_endpoint_down;
    int64_t ttl = state_.opts_.token_ttl_s;
    bool revoke = false;
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
      std::string_view k(it->name.GetString(), it->name.GetStringLength());
      const auto& v = it->value;
      if (k == "token_endpoint" && v.IsString() && (std::string_view(v.GetString()) == "up" ||
                                                    std::string_view(v.GetString()) == "down")) {
        down = std::string_view(v.GetString()) == "down";
      } else if (k == "token_ttl_s" && v.IsInt64() && v.GetInt64() > 0 && v.GetInt64() <= 86400) {
        ttl = v.GetInt64();
      } else if (k == "revoke_tokens" && v.IsBool()) {
        revoke = v.GetBool();
      } else {
        reply.status = 400;
        reply.body = reason_json("bad key or value: " + std::string(k));
        return;
      }
    }
    state_.token_endpoint_down = down;
    state_.opts_.token_ttl_s = ttl;
    if (revoke) state_.revoke_all();
  } else if (req.method != "GET") {
    reply.status = 405;
    reply.body = reason_json("MethodNotAllowed");
    return;
  }
  reply.status = 200;
  reply.body = state_json();
}

}  // namespace aloha::mock
