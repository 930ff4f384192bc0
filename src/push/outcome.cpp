#include "push/outcome.h"

#include <rapidjson/document.h>

namespace aloha::push {

const char* outcome_name(OutcomeKind k) {
  switch (k) {
    case OutcomeKind::delivered: return "delivered";
    case OutcomeKind::dead_token: return "dead_token";
    case OutcomeKind::retry_later: return "retry_later";
    case OutcomeKind::credential_problem: return "credential_problem";
    case OutcomeKind::request_bug: return "request_bug";
  }
  return "?";
}

int64_t parse_retry_after_ms(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty() || v.size() > 9) return -1;
  int64_t s = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return -1;
    s = s * 10 + (c - '0');
  }
  return s * 1000;
}

namespace {

// Upper bound on error bodies we parse; APNs and FCM error bodies are a few hundred bytes.
constexpr size_t kMaxErrorBody = 64 * 1024;

bool parse_object(std::string_view body, rapidjson::Document& doc) {
  if (body.empty() || body.size() > kMaxErrorBody) return false;
  doc.Parse(body.data(), body.size());
  return !doc.HasParseError() && doc.IsObject();
}

Outcome make(OutcomeKind k, int status, std::string reason) {
  Outcome o;
  o.kind = k;
  o.status = status;
  o.reason = std::move(reason);
  return o;
}

}  // namespace

Outcome map_apns(int status, std::string_view body, std::string_view retry_after) {
  if (status == 200) return make(OutcomeKind::delivered, 200, "");
  std::string reason;
  int64_t ts = -1;
  rapidjson::Document doc;
  if (parse_object(body, doc)) {
    auto it = doc.FindMember("reason");
    if (it != doc.MemberEnd() && it->value.IsString())
      reason.assign(it->value.GetString(), it->value.GetStringLength());
    auto t = doc.FindMember("timestamp");
    if (t != doc.MemberEnd() && t->value.IsInt64()) ts = t->value.GetInt64();
  }
  Outcome o;
  if (status == 410 && (reason == "Unregistered" || reason == "ExpiredToken")) {
    o = make(OutcomeKind::dead_token, status, reason);
    o.apns_timestamp_ms = ts;
  } else if (status == 400 && (reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic")) {
    o = make(OutcomeKind::dead_token, status, reason);
  } else if (status == 429 && reason == "TooManyProviderTokenUpdates") {
    o = make(OutcomeKind::credential_problem, status, reason);
  } else if (status == 429) {
    o = make(OutcomeKind::retry_later, status, reason);
    o.per_token_backoff = true;  // TooManyRequests: "too many requests to the same device token"
  } else if (status == 403) {
    // ExpiredProviderToken, InvalidProviderToken, MissingProviderToken, BadCertificate,
    // BadCertificateEnvironment, Forbidden, ...: never delete tokens for credential trouble.
    o = make(OutcomeKind::credential_problem, status, reason);
    o.remint_credentials = reason == "ExpiredProviderToken";
  } else if (status >= 500 || status == 0) {
    o = make(OutcomeKind::retry_later, status, reason);
  } else {
    // Other 4xx (BadTopic, PayloadTooLarge, MissingTopic, unknown 410 reasons, ...).
    o = make(OutcomeKind::request_bug, status, reason);
  }
  o.retry_after_ms = parse_retry_after_ms(retry_after);
  return o;
}

namespace {

struct FcmError {
  std::string error_code;  // details[].errorCode of google.firebase.fcm.v1.FcmError
  std::string status;      // error.status
  bool token_field_violation = false;
  bool any_field_violation = false;
  bool message_names_token = false;
};

bool contains_ci(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t j = 0;
    for (; j < needle.size(); ++j) {
      char a = hay[i + j], b = needle[j];
      if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
      if (a != b) break;
    }
    if (j == needle.size()) return true;
  }
  return false;
}

FcmError parse_fcm_error(std::string_view body) {
  FcmError e;
  rapidjson::Document doc;
  if (!parse_object(body, doc)) return e;
  auto err = doc.FindMember("error");
  if (err == doc.MemberEnd() || !err->value.IsObject()) return e;
  const auto& ev = err->value;
  if (auto s = ev.FindMember("status"); s != ev.MemberEnd() && s->value.IsString())
    e.status = s->value.GetString();
  if (auto m = ev.FindMember("message"); m != ev.MemberEnd() && m->value.IsString())
    e.message_names_token = contains_ci(m->value.GetString(), "registration token");
  auto details = ev.FindMember("details");
  if (details == ev.MemberEnd() || !details->value.IsArray()) return e;
  for (const auto& d : details->value.GetArray()) {
    if (!d.IsObject()) continue;
    auto type = d.FindMember("@type");
    std::string_view t = (type != d.MemberEnd() && type->value.IsString()) ? type->value.GetString() : "";
    if (t.find("FcmError") != std::string_view::npos) {
      auto code = d.FindMember("errorCode");
      if (code != d.MemberEnd() && code->value.IsString()) e.error_code = code->value.GetString();
    } else if (t.find("google.rpc.BadRequest") != std::string_view::npos) {
      auto fv = d.FindMember("fieldViolations");
      if (fv == d.MemberEnd() || !fv->value.IsArray()) continue;
      for (const auto& v : fv->value.GetArray()) {
        if (!v.IsObject()) continue;
        e.any_field_violation = true;
        auto field = v.FindMember("field");
        if (field != v.MemberEnd() && field->value.IsString() &&
            std::string_view(field->value.GetString()) == "message.token")
          e.token_field_violation = true;
      }
    }
  }
  return e;
}

}  // namespace

Outcome map_fcm(int status, std::string_view body, std::string_view retry_after) {
  if (status == 200) return make(OutcomeKind::delivered, 200, "");
  FcmError e = parse_fcm_error(body);
  const std::string& code = e.error_code;
  std::string reason = !code.empty() ? code : e.status;
  Outcome o;
  // upstreams.md: branch on errorCode first, then on the HTTP status.
  if (code == "UNREGISTERED" || code == "SENDER_ID_MISMATCH") {
    o = make(OutcomeKind::dead_token, status, reason);
  } else if (code == "INVALID_ARGUMENT") {
    bool about_token = e.token_field_violation || (!e.any_field_violation && e.message_names_token);
    o = make(about_token ? OutcomeKind::dead_token : OutcomeKind::request_bug, status, reason);
  } else if (code == "QUOTA_EXCEEDED") {
    o = make(OutcomeKind::retry_later, status, reason);
  } else if (code == "UNAVAILABLE" || code == "INTERNAL") {
    o = make(OutcomeKind::retry_later, status, reason);
  } else if (code == "THIRD_PARTY_AUTH_ERROR") {
    o = make(OutcomeKind::credential_problem, status, reason);
  } else if (status == 401) {
    o = make(OutcomeKind::credential_problem, status, reason);
    o.remint_credentials = true;  // refresh the OAuth token once and retry
  } else if (status == 404 && e.status == "NOT_FOUND" && code.empty()) {
    // A 404 without an FcmError is a wrong project or endpoint, not a dead token.
    o = make(OutcomeKind::credential_problem, status, reason);
  } else if (status == 429 || status >= 500 || status == 0) {
    o = make(OutcomeKind::retry_later, status, reason);
  } else if (status == 403) {
    o = make(OutcomeKind::credential_problem, status, reason);
  } else {
    o = make(OutcomeKind::request_bug, status, reason);
  }
  o.retry_after_ms = parse_retry_after_ms(retry_after);
  if (code == "QUOTA_EXCEEDED" && o.retry_after_ms < 60'000) o.retry_after_ms = 60'000;
  return o;
}

Outcome map_transport(TransportFailure f) {
  switch (f) {
    case TransportFailure::reset: return make(OutcomeKind::retry_later, 0, "stream reset");
    case TransportFailure::goaway_unprocessed: return make(OutcomeKind::retry_later, 0, "goaway unprocessed");
    case TransportFailure::connection_lost: return make(OutcomeKind::retry_later, 0, "connection lost");
    case TransportFailure::timeout: return make(OutcomeKind::retry_later, 0, "timeout");
  }
  return make(OutcomeKind::retry_later, 0, "transport");
}

Outcome map_h2_failure(h2::FailureKind k) {
  switch (k) {
    case h2::FailureKind::reset: return map_transport(TransportFailure::reset);
    case h2::FailureKind::goaway_unprocessed: return map_transport(TransportFailure::goaway_unprocessed);
    case h2::FailureKind::timeout: return map_transport(TransportFailure::timeout);
    case h2::FailureKind::connection_lost:
    case h2::FailureKind::none: break;
  }
  return map_transport(TransportFailure::connection_lost);
}

}  // namespace aloha::push
