// FcmPusher: the [fcm] app. Sends each push as `POST /v1/projects/<id>/messages:send` (FCM HTTP v1,
// upstreams.md) over a multiplexed HTTP/2 pool with an OAuth2 bearer token from OAuthTokenCache,
// maps every answer through map_fcm, and retries retry_later outcomes with jittered exponential
// backoff (at least Retry-After; QUOTA_EXCEEDED ≥ 60 s) until the push's deadline, from one
// timer-driven min-heap. A 401 without an FCM error code refreshes the token once and retries.
//
// Ownership: the pusher owns each accepted push until its SendDone has run (exactly once, on the
// loop thread, never inside send()). create() wires production I/O (TLS context, one pool to the
// FCM endpoint; for the token host a one-shot HTTP/1.1 request when ALPN picks http/1.1, else a
// small HTTP/2 pool; two uv timers); the plain constructor takes injected
// transport and timer functions so the engine runs under a FakeClock in unit tests.
#pragma once
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/config.h"
#include "h2/session.h"
#include "net/backoff.h"
#include "push/oauth.h"
#include "push/pusher.h"

namespace aloha::push {

struct FcmPusherOptions {
  size_t max_pending = 10000;              // accepted and not yet reported
  size_t max_data_bytes = 4096;            // FCM's data payload limit (upstreams.md)
  int64_t request_timeout_ms = 30000;      // one HTTP/2 request
  int64_t retry_base_ms = 1000;            // jittered exponential backoff of retry_later...
  int64_t retry_cap_ms = 60000;            // ...capped here
  int64_t credential_log_interval_ms = 60000;  // credential problems: one loud line per interval
  size_t max_connections = 2;              // production pool to the FCM endpoint
};

struct FcmStats {
  uint64_t requests = 0;  // HTTP/2 requests handed to the transport
  uint64_t delivered = 0, dead_token = 0, retry_later = 0, credential_problem = 0, request_bug = 0;
  uint64_t retries = 0;         // attempts scheduled after a retry_later answer
  uint64_t token_retries = 0;   // resends after a 401 and a token refresh
};

class FcmPusher final : public Pusher {
 public:
  // Submits one request; returns a request id, or 0 when refused (queue full, closed), in which
  // case the completion never runs. The completion runs later, never inside the call.
  using Submit = std::function<uint64_t(h2::H2Request request, int64_t timeout_ms,
                                        h2::Completion done)>;
  // Arms the pusher's one-shot timer (calls on_timer() after delay_ms), replacing an earlier one.
  using Scheduler = std::function<void(int64_t delay_ms)>;

  // Production: loads cfg.credentials_file (blocking: call before the loop runs), the CA file,
  // and creates the pools and timers on `loop`. nullptr + err (a message naming the file or
  // setting) when anything is missing or malformed.
  // clock must outlive the pusher.
  static std::unique_ptr<FcmPusher> create(uv_loop_t* loop, const FcmConfig& cfg,
                                           const Clock& clock, std::string& err,
                                           FcmPusherOptions options = {});

  // Engine with injected I/O. endpoint: the FCM base URL (its path, if any, prefixes /v1/...).
  // set_token_cache() must be called before the first send.
  FcmPusher(std::string project_id, const UrlParts& endpoint, const Clock& clock, Submit submit,
            Scheduler schedule, FcmPusherOptions options = {},
            net::Backoff::RandomSource random = {});
  ~FcmPusher() override;
  FcmPusher(const FcmPusher&) = delete;
  FcmPusher& operator=(const FcmPusher&) = delete;

  void set_token_cache(std::unique_ptr<OAuthTokenCache> tokens) { tokens_ = std::move(tokens); }
  OAuthTokenCache* token_cache() { return tokens_.get(); }

  // Pusher
  bool send(PushMessage msg, int64_t deadline_mono_ms, SendDone done) override;
  bool has_capacity(size_t n) const override;
  const std::string& name() const override { return name_; }
  size_t pending() const override { return pushes_.size(); }
  void close(std::function<void()> done) override;

  // The timer: due retries and posted reports.
  void on_timer();

  const FcmStats& stats() const { return stats_; }
  void append_stats(std::string& out) const override;
  // The request body for a push (exposed for tests): {"message":{"token","data","android"}}.
  static std::string build_body(const PushMessage& msg);
  const std::string& send_path() const { return path_; }

  struct Io;  // production I/O (defined in fcm_pusher.cpp)

 private:
  enum class State { waiting_token, in_flight, backing_off, reporting };
  struct Push {
    uint64_t id = 0;
    std::string token;  // for logs (redacted) only
    std::shared_ptr<const std::string> body;   // the complete request body, built once
    int64_t deadline_ms = 0;
    SendDone done;
    State state = State::waiting_token;
    int attempts = 0;              // retry_later answers so far
    bool refreshed_once = false;   // a 401 already triggered a token refresh
    uint64_t token_generation = 0;
    int64_t due_ms = 0;            // backing_off: when to try again
    Outcome last;                  // the outcome to report
  };
  using HeapEntry = std::pair<int64_t, uint64_t>;  // (due_ms, push id)

  void attempt(Push* p);
  void submit(Push* p);
  void on_token(uint64_t id, TokenState s);
  void on_response(uint64_t id, uint64_t generation, const h2::H2Response& resp);
  void handle(Push* p, Outcome o);
  void report(Push* p, Outcome o);
  void deliver_reports();
  void arm();
  int64_t retry_delay_ms(int attempts);
  void log_credential_problem(const Outcome& o);

  std::string name_ = "fcm";
  std::string project_id_;
  UrlParts endpoint_;
  std::string path_;
  const Clock& clock_;
  Submit submit_;
  Scheduler schedule_;
  FcmPusherOptions opt_;
  net::Backoff::RandomSource random_;
  uint64_t rng_state_ = 0;
  std::unique_ptr<OAuthTokenCache> tokens_;
  std::unordered_map<uint64_t, std::unique_ptr<Push>> pushes_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<HeapEntry>> heap_;
  std::vector<uint64_t> reports_;  // ids in State::reporting, in order
  uint64_t next_id_ = 1;
  int64_t armed_for_ms_ = -1;      // due time the timer is armed for (-1: not armed)
  int64_t last_credential_log_ms_ = -1;
  uint64_t credential_suppressed_ = 0;
  bool closing_ = false;
  FcmStats stats_;
  std::unique_ptr<Io> io_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aloha::push
