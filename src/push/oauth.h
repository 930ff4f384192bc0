// Google OAuth2 for FCM: the service-account JSON (loaded at start-up), the signed RS256 JWT
// assertion, and OAuthTokenCache, which exchanges assertions for access tokens at `token_uri`,
// caches the token, refreshes it ahead of expiry, one refresh at a time, with backoff on failure.
// The cache does no I/O itself: the owner injects a Fetcher (a POST over HTTP/2 or HTTP/1.1, as
// ALPN decides: fcm_pusher.cpp) and a Scheduler (a one-shot timer), so it is tested with a
// FakeClock. Waiter callbacks never run inside the call that registered them; they run from the
// fetch completion or from close().
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "net/backoff.h"
#include "net/pk.h"

namespace aloha::push {

// "https://host[:port][/path]" (or http:// for cleartext tests). host may be a bracketed IPv6.
struct UrlParts {
  bool tls = true;
  std::string host;
  uint16_t port = 443;
  std::string path;       // "" or "/..." (no trailing slash for an endpoint base)
  std::string authority;  // host, plus ":port" unless it is the scheme's default
};
bool parse_url(std::string_view url, UrlParts& out, std::string& err);

struct ServiceAccount {
  std::string project_id;
  std::string client_email;
  std::string private_key_pem;
  std::string token_uri;
  UrlParts token_url;  // token_uri parsed
};

// Parses a service-account JSON. false + err naming the missing/malformed field. The private key
// itself is checked by load_service_account (parsing it is the expensive part).
bool parse_service_account(std::string_view json, ServiceAccount& out, std::string& err);
// Reads the file (blocking: start-up only), parses it and loads the RSA key. nullptr key + err on
// any failure, with a message naming the file.
bool load_service_account(const std::string& path, ServiceAccount& out,
                          std::unique_ptr<net::PrivateKey>& key, std::string& err);

inline constexpr std::string_view kFcmScope = "https://www.googleapis.com/auth/firebase.messaging";
inline constexpr std::string_view kJwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer";

// The RS256 JWT assertion (RFC 7523): iss = client_email, scope = firebase.messaging, aud =
// token_uri, iat = now_s, exp = now_s + lifetime_s (capped at 3600). Empty when signing fails.
std::string make_assertion(const ServiceAccount& sa, net::PrivateKey& key, int64_t now_s,
                           int64_t lifetime_s = 3600);
// The form body of the token request.
std::string token_request_body(std::string_view assertion);
// {"access_token":"…","expires_in":N,…}. false when either is missing, empty or not positive.
bool parse_token_response(std::string_view body, std::string& access_token, int64_t& expires_in_s);

enum class TokenState {
  ready,        // a usable token is cached
  unavailable,  // the token endpoint failed (transport, 5xx, 429): retry later
  rejected,     // the token endpoint refused our credentials (4xx): a credential problem
  pending,      // when_ready() only: the waiter was queued and will run
};
const char* token_state_name(TokenState s);

struct OAuthOptions {
  int64_t refresh_margin_ms = 5 * 60 * 1000;  // refresh this long before expiry...
  double refresh_fraction = 0.5;              // ...but no earlier than this share of the lifetime
  int64_t fetch_timeout_ms = 15000;           // for the Fetcher
  size_t max_waiters = 10000;
  net::BackoffOptions backoff{1000, 60000, net::Jitter::full};
};

class OAuthTokenCache {
 public:
  // status 0 = transport failure (no answer). Runs on the loop thread, never inside fetch().
  using FetchDone = std::function<void(int status, std::string_view body)>;
  // POSTs form_body (application/x-www-form-urlencoded) to token_uri.
  using Fetcher = std::function<void(std::string form_body, int64_t timeout_ms, FetchDone done)>;
  // Arms the one-shot timer that calls on_timer() after delay_ms, replacing an earlier one.
  using Scheduler = std::function<void(int64_t delay_ms)>;
  using Waiter = std::function<void(TokenState)>;

  OAuthTokenCache(ServiceAccount sa, std::unique_ptr<net::PrivateKey> key, const Clock& clock,
                  Fetcher fetch, Scheduler schedule, OAuthOptions options = {},
                  net::Backoff::RandomSource random = {});
  ~OAuthTokenCache();
  OAuthTokenCache(const OAuthTokenCache&) = delete;
  OAuthTokenCache& operator=(const OAuthTokenCache&) = delete;

  // "Bearer <token>" while a usable token is cached, else nullptr.
  const std::string* authorization() const;
  // The same value as one shared immutable buffer (replaced on refresh, never modified), so each
  // request's header references it instead of copying it; nullptr when authorization() is.
  std::shared_ptr<const std::string> shared_authorization() const;
  // Bumped whenever the token changes; a send remembers it so a 401 invalidates only its token.
  uint64_t generation() const { return generation_; }

  // ready: a token is usable now (waiter not stored, never called). pending: the waiter is queued
  // and runs once the refresh that is started (or already running) ends. Returns unavailable
  // without queuing when the queue is full or the cache is backing off after a failed refresh
  // (the caller retries the send later), and rejected likewise after the endpoint refused us.
  TokenState when_ready(Waiter w);

  // A send with the token of `generation` got 401: drop that token (if still current) and refresh.
  void invalidate(uint64_t generation);

  // Timer: proactive refresh, or the next attempt after a failure.
  void on_timer();

  // Fails queued waiters with `unavailable` and stops refreshing. Idempotent.
  void close();

  bool refreshing() const { return refreshing_; }
  size_t waiters() const { return waiters_.size(); }
  uint64_t fetch_count() const { return fetches_; }
  int64_t expires_at_ms() const { return expires_at_ms_; }  // monotonic; -1 without a token
  int64_t refresh_at_ms() const { return refresh_at_ms_; }  // monotonic; -1 when none planned
  const ServiceAccount& account() const { return sa_; }

 private:
  void start_refresh();
  void on_fetched(int status, std::string_view body);
  void fail_waiters(TokenState s);
  bool usable() const;

  ServiceAccount sa_;
  std::unique_ptr<net::PrivateKey> key_;
  const Clock& clock_;
  Fetcher fetch_;
  Scheduler schedule_;
  OAuthOptions opt_;
  net::Backoff backoff_;
  std::string authorization_;
  std::shared_ptr<const std::string> shared_authorization_;  // same value as authorization_
  uint64_t generation_ = 0;
  int64_t expires_at_ms_ = -1;
  int64_t refresh_at_ms_ = -1;
  int64_t retry_at_ms_ = -1;  // backing off until then after a failed refresh
  TokenState last_failure_ = TokenState::unavailable;
  bool refreshing_ = false;
  bool closed_ = false;
  uint64_t fetches_ = 0;
  std::deque<Waiter> waiters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aloha::push
