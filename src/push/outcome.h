// Send outcomes: the one vocabulary for what became of a push (upstreams.md table). Maps APNs and
// FCM answers (status, reason / errorCode, body) and transport failures to an Outcome with the
// details the pushers act on (410 timestamp, Retry-After, re-mint / refresh once).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "h2/session.h"

namespace aloha::push {

enum class OutcomeKind {
  delivered,
  dead_token,          // delete the token everywhere (subject to the safety rules)
  retry_later,         // back off and retry within the deadline
  credential_problem,  // never delete; log loudly; pause the app
  request_bug,         // fail this send; never delete
};

const char* outcome_name(OutcomeKind k);

struct Outcome {
  OutcomeKind kind = OutcomeKind::retry_later;
  int status = 0;               // HTTP status, 0 for transport failures
  std::string reason;           // APNs reason or FCM errorCode/status (no payload content)
  int64_t apns_timestamp_ms = -1;  // 410 timestamp (epoch ms) when present
  int64_t retry_after_ms = -1;  // from Retry-After / policy minimum, -1 when none
  bool per_token_backoff = false;   // APNs 429 TooManyRequests: back off this token only
  bool remint_credentials = false;  // APNs ExpiredProviderToken / FCM 401: new token once, retry
};

enum class TransportFailure { reset, goaway_unprocessed, connection_lost, timeout };

// APNs: status, the JSON body ({"reason","timestamp"}) and the retry-after header value if any.
Outcome map_apns(int status, std::string_view body, std::string_view retry_after = {});
// FCM HTTP v1: status, the JSON error body, and the Retry-After header value if any.
Outcome map_fcm(int status, std::string_view body, std::string_view retry_after = {});
Outcome map_transport(TransportFailure f);
// An HTTP/2 request that got no response (h2::FailureKind) as a send outcome: always retry_later.
Outcome map_h2_failure(h2::FailureKind k);

// Retry-After: delta-seconds (or an HTTP date, which we treat as unknown); -1 when absent/invalid.
int64_t parse_retry_after_ms(std::string_view v);

}  // namespace aloha::push
