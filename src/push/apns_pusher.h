// ApnsPusher: the Pusher of one [apns] / [apns.NAME] section. Turns each PushMessage into
// `POST /3/device/<token>` on its own HTTP/2 pool (one pool per credential and environment,
// upstreams.md), maps every answer through map_apns / map_transport, and retries retry_later
// outcomes with jittered backoff (Retry-After and per-token 429 respected) until the push's deadline.
//
// Ownership: the pusher owns its pool, its TLS context and its provider-token source. Each accepted
// push's SendDone runs exactly once, on the loop thread, never inside send(). Retries waiting for
// their backoff sit in one min-heap driven by one timer (shared with the pool's deadlines). Close
// with close(done) and destroy the pusher only after `done` has run (connections still closing
// reference the TLS context).
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
#include "h2/pool.h"
#include "net/backoff.h"
#include "net/tls.h"
#include "push/pusher.h"

namespace aloha::push {

class ApnsTokenProvider;

struct ApnsPusherOptions {
  std::string name = "apns";          // "apns" or "apns.NAME": logs, counters
  size_t max_pending = 10'000;        // pushes accepted and not yet reported
  int64_t attempt_timeout_ms = 10'000;  // one HTTP/2 exchange (capped by the push's deadline)
  int max_attempts = 8;               // per push, retries included
  net::BackoffOptions retry_backoff{250, 30'000, net::Jitter::full};
  size_t max_token_backoffs = 4096;   // tokens remembered after a per-token 429
  int64_t token_backoff_ms = 5'000;   // minimum delay for a token after 429 TooManyRequests
  int64_t credential_pause_ms = 5'000;  // after a credential problem: report without sending
  int64_t warn_interval_ms = 300'000;   // LOG_ERROR about credentials at most this often
  h2::PoolOptions pool;               // max_queued is raised to max_pending
};

// What the pusher needs from its environment; create() wires the production versions, unit tests
// inject fakes (no sockets, FakeClock).
struct ApnsPusherDeps {
  // Creates one HTTP/2 connection reporting to `listener` (production: h2::Connection::create).
  h2::Pool::ConnFactory conn_factory;
  // Arms a one-shot wake-up `delay_ms` from now that calls ApnsPusher::on_timer(), replacing any
  // earlier one.
  std::function<void(int64_t delay_ms)> schedule;
  // Stops the timer for good; runs `closed` once its handle is closed (may run it at once).
  std::function<void(std::function<void()> closed)> close_timer;
  net::Backoff::RandomSource random;  // for the retry jitter; default: per-backoff xorshift
};

struct ApnsPusherStats {
  uint64_t accepted = 0, refused = 0;  // send() true / false
  uint64_t attempts = 0;               // requests handed to the pool
  uint64_t retries = 0;                // attempts after the first
  uint64_t delivered = 0, dead_token = 0, retry_later = 0, credential_problem = 0,
           request_bug = 0;            // reported outcomes
  uint64_t remints = 0;                // provider tokens re-minted after ExpiredProviderToken
};

class ApnsPusher final : public Pusher {
 public:
  // Production wiring on `loop`: TLS connections to host:port (h2::Connection), one uv timer.
  // `tls` and `tokens` (nullptr for certificate auth) are owned by the pusher.
  static std::unique_ptr<ApnsPusher> create(uv_loop_t* loop, ApnsPusherOptions options,
                                            h2::ConnectionOptions conn_options,
                                            std::unique_ptr<net::TlsContext> tls,
                                            std::unique_ptr<ApnsTokenProvider> tokens,
                                            const Clock& clock);

  // Tests and custom wiring. `tls` may be nullptr (its owner is then the caller).
  ApnsPusher(ApnsPusherOptions options, ApnsPusherDeps deps,
             std::unique_ptr<ApnsTokenProvider> tokens, const Clock& clock,
             std::unique_ptr<net::TlsContext> tls = nullptr);
  ~ApnsPusher() override;
  ApnsPusher(const ApnsPusher&) = delete;
  ApnsPusher& operator=(const ApnsPusher&) = delete;

  // Pusher
  bool send(PushMessage msg, int64_t deadline_mono_ms, SendDone done) override;
  bool has_capacity(size_t n) const override;
  const std::string& name() const override { return opt_.name; }
  size_t pending() const override { return jobs_.size(); }
  void close(std::function<void()> done) override;

  // The timer armed through ApnsPusherDeps::schedule fired: pool deadlines and reconnects, due
  // retries, deferred reports.
  void on_timer();

  const ApnsPusherStats& stats() const { return stats_; }
  void append_stats(std::string& out) const override;
  h2::PoolStats pool_stats() const { return pool_->stats(); }
  // Tokens currently held back after a per-token 429 (bounded by max_token_backoffs).
  size_t token_backoffs() const { return token_not_before_.size(); }

  // The largest body APNs accepts for this push type (upstreams.md: 4096, 5120 for voip).
  static size_t max_payload(const std::string& push_type);

 private:
  struct Job;
  // Forwards connection events to the pool and counts live connections, so close() can wait
  // until every connection (and its TLS session) is gone.
  struct ConnShim final : h2::ConnListener {
    ApnsPusher* owner = nullptr;
    void on_conn_ready(h2::Conn* c) override;
    void on_conn_capacity(h2::Conn* c) override;
    void on_conn_closed(h2::Conn* c, const std::string& error) override;
    void on_conn_idle(h2::Conn* c) override;
  };
  struct Due {
    int64_t at_ms;
    uint64_t seq;
    uint64_t job_id;
    bool operator>(const Due& o) const { return at_ms != o.at_ms ? at_ms > o.at_ms : seq > o.seq; }
  };

  // may_report_now: false inside send() (SendDone never runs there), so reports are deferred to
  // the next on_timer().
  void advance(Job& job, bool may_report_now);
  void attempt(Job& job, bool may_report_now);
  void on_response(uint64_t job_id, const h2::H2Response& resp);
  void handle_outcome(Job& job, Outcome outcome, bool may_report_now);
  void retry_at(Job& job, int64_t at_ms);
  void finish(Job& job, Outcome outcome, bool may_report_now);
  void report(uint64_t job_id);
  void note_credential_problem(const Outcome& o);
  int64_t token_not_before(const std::string& token) const;
  void hold_token(const std::string& token, int64_t until_ms);
  void rearm();
  void maybe_finish_close();
  h2::H2Request build_request(const Job& job) const;

  ApnsPusherOptions opt_;
  ApnsPusherDeps deps_;
  const Clock& clock_;
  std::unique_ptr<net::TlsContext> tls_;  // before pool_: connections reference it
  std::unique_ptr<ApnsTokenProvider> tokens_;
  ConnShim shim_;
  std::unique_ptr<h2::Pool> pool_;

  std::unordered_map<uint64_t, std::unique_ptr<Job>> jobs_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> heap_;  // ≤ one live entry per job
  std::unordered_map<std::string, int64_t> token_not_before_;  // per-token 429: token → mono ms
  uint64_t next_job_ = 1;
  uint64_t next_seq_ = 1;
  int64_t pool_wake_ms_ = -1;  // when the pool asked to be woken; -1 none
  int64_t armed_ms_ = -1;      // when the timer fires; -1 not armed
  int64_t paused_until_ms_ = -1;  // credentials known bad until then
  Outcome pause_outcome_;
  int64_t last_cred_log_ms_ = -1;
  size_t live_conns_ = 0;
  bool closing_ = false;
  bool timer_released_ = false;  // close_timer called
  bool timer_closed_ = false;    // ... and its callback ran
  std::function<void()> close_done_;
  ApnsPusherStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace aloha::push
