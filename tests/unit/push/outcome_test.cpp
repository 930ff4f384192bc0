#include <doctest/doctest.h>

#include <string>

#include "push/outcome.h"

using aloha::push::map_apns;
using aloha::push::map_fcm;
using aloha::push::OutcomeKind;

namespace {
std::string apns_body(const char* reason) { return std::string("{\"reason\":\"") + reason + "\"}"; }
std::string fcm_body(int code, const char* status, const char* error_code, const char* extra_detail = "",
                     const char* message = "error") {
  std::string details = "[";
  if (error_code && *error_code)
    details += std::string("{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"") +
               error_code + "\"}";
  if (*extra_detail) {
    if (details.size() > 1) details += ',';
    details += extra_detail;
  }
  details += ']';
  return "{\"error\":{\"code\":" + std::to_string(code) + ",\"message\":\"" + message + "\",\"status\":\"" +
         status + "\",\"details\":" + details + "}}";
}
}  // namespace

TEST_SUITE("outcome") {
  TEST_CASE("apns: every row of the upstreams.md table maps to its outcome") {
    struct Row { int status; const char* reason; OutcomeKind kind; };
    const Row rows[] = {
        {410, "Unregistered", OutcomeKind::dead_token},
        {410, "ExpiredToken", OutcomeKind::dead_token},
        {400, "BadDeviceToken", OutcomeKind::dead_token},
        {400, "DeviceTokenNotForTopic", OutcomeKind::dead_token},
        {429, "TooManyRequests", OutcomeKind::retry_later},
        {500, "InternalServerError", OutcomeKind::retry_later},
        {503, "ServiceUnavailable", OutcomeKind::retry_later},
        {503, "Shutdown", OutcomeKind::retry_later},
        {403, "ExpiredProviderToken", OutcomeKind::credential_problem},
        {403, "InvalidProviderToken", OutcomeKind::credential_problem},
        {403, "MissingProviderToken", OutcomeKind::credential_problem},
        {403, "BadCertificate", OutcomeKind::credential_problem},
        {403, "BadCertificateEnvironment", OutcomeKind::credential_problem},
        {429, "TooManyProviderTokenUpdates", OutcomeKind::credential_problem},
        {400, "BadTopic", OutcomeKind::request_bug},
        {413, "PayloadTooLarge", OutcomeKind::request_bug},
        {400, "MissingTopic", OutcomeKind::request_bug},
        {400, "BadExpirationDate", OutcomeKind::request_bug},
        {405, "MethodNotAllowed", OutcomeKind::request_bug},
        {410, "SomethingNew", OutcomeKind::request_bug},
    };
    for (const Row& r : rows) {
      CAPTURE(r.status);
      CAPTURE(r.reason);
      auto o = map_apns(r.status, apns_body(r.reason));
      CHECK(o.kind == r.kind);
      CHECK(o.reason == r.reason);
      CHECK(o.status == r.status);
    }
    CHECK(map_apns(200, "").kind == OutcomeKind::delivered);
  }

  TEST_CASE("apns: 410 carries its timestamp; ExpiredProviderToken asks for a re-mint") {
    auto o = map_apns(410, "{\"reason\":\"Unregistered\",\"timestamp\":1767225600123}");
    CHECK(o.kind == OutcomeKind::dead_token);
    CHECK(o.apns_timestamp_ms == 1767225600123);
    CHECK(map_apns(410, apns_body("ExpiredToken")).apns_timestamp_ms == -1);
    CHECK(map_apns(403, apns_body("ExpiredProviderToken")).remint_credentials);
    CHECK_FALSE(map_apns(403, apns_body("InvalidProviderToken")).remint_credentials);
  }

  TEST_CASE("apns: 429 TooManyRequests backs off that token only, with Retry-After") {
    auto o = map_apns(429, apns_body("TooManyRequests"), "7");
    CHECK(o.per_token_backoff);
    CHECK(o.retry_after_ms == 7000);
    CHECK_FALSE(map_apns(503, apns_body("ServiceUnavailable")).per_token_backoff);
  }

  TEST_CASE("apns: garbage or empty error bodies never delete tokens") {
    CHECK(map_apns(400, "not json").kind == OutcomeKind::request_bug);
    CHECK(map_apns(410, "").kind == OutcomeKind::request_bug);
    CHECK(map_apns(500, "").kind == OutcomeKind::retry_later);
    CHECK(map_apns(403, "{\"reason\":5}").kind == OutcomeKind::credential_problem);
  }

  TEST_CASE("fcm: every row of the upstreams.md table maps to its outcome") {
    CHECK(map_fcm(200, "{\"name\":\"projects/p/messages/1\"}").kind == OutcomeKind::delivered);
    CHECK(map_fcm(404, fcm_body(404, "NOT_FOUND", "UNREGISTERED")).kind == OutcomeKind::dead_token);
    CHECK(map_fcm(403, fcm_body(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")).kind == OutcomeKind::dead_token);
    CHECK(map_fcm(429, fcm_body(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")).kind == OutcomeKind::retry_later);
    CHECK(map_fcm(500, fcm_body(500, "INTERNAL", "INTERNAL")).kind == OutcomeKind::retry_later);
    CHECK(map_fcm(503, fcm_body(503, "UNAVAILABLE", "UNAVAILABLE")).kind == OutcomeKind::retry_later);
    CHECK(map_fcm(401, fcm_body(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")).kind ==
          OutcomeKind::credential_problem);
    auto expired = map_fcm(401, "{\"error\":{\"code\":401,\"message\":\"Request had invalid authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}");
    CHECK(expired.kind == OutcomeKind::credential_problem);
    CHECK(expired.remint_credentials);
    CHECK_FALSE(map_fcm(401, fcm_body(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")).remint_credentials);
  }

  TEST_CASE("fcm: INVALID_ARGUMENT deletes only when the error is about the token") {
    const char* token_violation =
        "{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":\"message.token\",\"description\":\"Invalid registration token\"}]}";
    const char* payload_violation =
        "{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":\"message.data[0].value\",\"description\":\"Invalid value\"}]}";
    CHECK(map_fcm(400, fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", token_violation)).kind ==
          OutcomeKind::dead_token);
    CHECK(map_fcm(400, fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", payload_violation)).kind ==
          OutcomeKind::request_bug);
    CHECK(map_fcm(400, fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "",
                                "The registration token is not a valid FCM registration token"))
              .kind == OutcomeKind::dead_token);
    CHECK(map_fcm(400, fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "", "Message is too big")).kind ==
          OutcomeKind::request_bug);
    // A field violation that is not the token wins over a message mentioning tokens.
    CHECK(map_fcm(400, fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", payload_violation,
                                "registration token payload invalid"))
              .kind == OutcomeKind::request_bug);
  }

  TEST_CASE("fcm: QUOTA_EXCEEDED waits at least 60 s; Retry-After is honoured") {
    CHECK(map_fcm(429, fcm_body(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "5").retry_after_ms == 60'000);
    CHECK(map_fcm(429, fcm_body(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "120").retry_after_ms == 120'000);
    CHECK(map_fcm(503, fcm_body(503, "UNAVAILABLE", "UNAVAILABLE"), "3").retry_after_ms == 3000);
    CHECK(map_fcm(503, fcm_body(503, "UNAVAILABLE", "UNAVAILABLE")).retry_after_ms == -1);
  }

  TEST_CASE("fcm: errorCode is consulted before the HTTP status; unknown answers never delete") {
    // UNREGISTERED under an unusual status still means a dead token.
    CHECK(map_fcm(400, fcm_body(400, "NOT_FOUND", "UNREGISTERED")).kind == OutcomeKind::dead_token);
    CHECK(map_fcm(404, "{\"error\":{\"code\":404,\"message\":\"Requested entity was not found.\",\"status\":\"NOT_FOUND\"}}").kind ==
          OutcomeKind::credential_problem);
    CHECK(map_fcm(400, "garbage").kind == OutcomeKind::request_bug);
    CHECK(map_fcm(502, "").kind == OutcomeKind::retry_later);
  }

  TEST_CASE("retry-after: delta seconds only") {
    CHECK(aloha::push::parse_retry_after_ms("10") == 10'000);
    CHECK(aloha::push::parse_retry_after_ms(" 0 ") == 0);
    CHECK(aloha::push::parse_retry_after_ms("") == -1);
    CHECK(aloha::push::parse_retry_after_ms("1.5") == -1);
    CHECK(aloha::push::parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT") == -1);
    CHECK(aloha::push::parse_retry_after_ms("9999999999") == -1);
  }
}

TEST_CASE("outcome: an HTTP/2 request without a response is retry_later, with the failure named") {
  using aloha::h2::FailureKind;
  CHECK(aloha::push::map_h2_failure(FailureKind::reset).reason == "stream reset");
  CHECK(aloha::push::map_h2_failure(FailureKind::goaway_unprocessed).reason == "goaway unprocessed");
  CHECK(aloha::push::map_h2_failure(FailureKind::timeout).reason == "timeout");
  CHECK(aloha::push::map_h2_failure(FailureKind::connection_lost).reason == "connection lost");
  for (FailureKind k : {FailureKind::reset, FailureKind::goaway_unprocessed, FailureKind::timeout,
                        FailureKind::connection_lost})
    CHECK(aloha::push::map_h2_failure(k).kind == OutcomeKind::retry_later);
}
