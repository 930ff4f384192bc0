#include "push/apns_pusher.h"

#include <algorithm>
#include <utility>

#include "core/crypto.h"
#include "core/log.h"
#include "h2/connection.h"
#include "net/tls.h"
#include "push/jwt.h"

namespace aloha::push {

struct ApnsPusher::Job {
  Job(uint64_t i, PushMessage m, int64_t deadline, SendDone d, const net::BackoffOptions& bo,
      const net::Backoff::RandomSource& random)
      : id(i), msg(std::move(m)), deadline_ms(deadline), done(std::move(d)), backoff(bo, random) {}

  uint64_t id;
  PushMessage msg;
  int64_t deadline_ms;
  SendDone done;
  net::Backoff backoff;
  std::string apns_id;       // one per push, kept across retries (correlates Apple's answers)
  std::shared_ptr<const std::string> body;  // the payload, shared by every attempt (no copy each)
  int attempts = 0;
  bool in_flight = false;
  bool reminted = false;     // ExpiredProviderToken handled once
  int mint_count_at_send = 0;
  bool report_pending = false;
  uint64_t due_seq = 0;      // seq of this job's live heap entry; 0 = none
  Outcome outcome;           // the last answer, reported at the end
};

namespace {

// Tokens go into the :path, so only characters that cannot change its meaning are accepted. APNs
// tokens are hex; their length is not fixed (Apple: "do not hard-code the size"), so only a
// generous upper bound applies.
bool token_is_path_safe(const std::string& t) {
  if (t.empty() || t.size() > 512) return false;
  for (char c : t) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!ok) return false;
  }
  return true;
}


Outcome simple_outcome(OutcomeKind kind, int status, const char* reason) {
  Outcome o;
  o.kind = kind;
  o.status = status;
  o.reason = reason;
  return o;
}

// The production timer: one uv_timer_t per pusher, freed in its close callback.
struct PusherTimer {
  uv_timer_t timer{};
  ApnsPusher* pusher = nullptr;
  std::function<void()> closed;
};

}  // namespace

size_t ApnsPusher::max_payload(const std::string& push_type) {
  return push_type == "voip" ? 5120 : 4096;  // upstreams.md, Apple "Sending notification requests"
}

// ---- construction ----------------------------------------------------------------------------

void ApnsPusher::ConnShim::on_conn_ready(h2::Conn* c) { owner->pool_->on_conn_ready(c); }
void ApnsPusher::ConnShim::on_conn_capacity(h2::Conn* c) { owner->pool_->on_conn_capacity(c); }
void ApnsPusher::ConnShim::on_conn_idle(h2::Conn* c) { owner->pool_->on_conn_idle(c); }
void ApnsPusher::ConnShim::on_conn_closed(h2::Conn* c, const std::string& error) {
  ApnsPusher* p = owner;
  p->pool_->on_conn_closed(c, error);
  if (p->live_conns_ > 0) --p->live_conns_;
  p->maybe_finish_close();
}

ApnsPusher::ApnsPusher(ApnsPusherOptions options, ApnsPusherDeps deps,
                       std::unique_ptr<ApnsTokenProvider> tokens, const Clock& clock,
                       std::unique_ptr<net::TlsContext> tls)
    : opt_(std::move(options)),
      deps_(std::move(deps)),
      clock_(clock),
      tls_(std::move(tls)),
      tokens_(std::move(tokens)) {
  if (opt_.max_pending < 1) opt_.max_pending = 1;
  if (opt_.max_attempts < 1) opt_.max_attempts = 1;
  shim_.owner = this;
  h2::PoolOptions po = opt_.pool;
  // Every accepted push may sit in the pool's queue at once; the pusher's own bound is the limit.
  po.max_queued = std::max(po.max_queued, opt_.max_pending);
  po.default_timeout_ms = opt_.attempt_timeout_ms;
  auto factory = [this](h2::ConnListener*) -> h2::Conn* {
    h2::Conn* c = deps_.conn_factory ? deps_.conn_factory(&shim_) : nullptr;
    if (c) ++live_conns_;
    return c;
  };
  auto scheduler = [this](int64_t delay_ms) {
    pool_wake_ms_ = clock_.mono_ms() + std::max<int64_t>(delay_ms, 0);
    rearm();
  };
  h2::Pool::HeaderProvider headers;
  if (tokens_) {
    // Called each time a request is handed to a connection, so a re-minted JWT is used at once
    // without reconnecting (upstreams.md: one JWT shared, refreshed every 40-50 min).
    // The header shares the provider's buffer: no copy of the ~200-byte JWT per request.
    headers = [this](std::vector<h2::H2Header>& h) {
      std::shared_ptr<const std::string> auth = tokens_->shared_authorization();
      if (auth && !auth->empty()) h.push_back({"authorization", std::string(), std::move(auth)});
    };
  }
  pool_ = std::make_unique<h2::Pool>(po, clock_, factory, scheduler, std::move(headers),
                                     deps_.random);
}

ApnsPusher::~ApnsPusher() {
  *alive_ = false;
  // Detaches the connections (no more listener calls) and closes them.
  pool_.reset();
  if (live_conns_ > 0 && tls_) {
    // Destroyed without waiting for close(): connections still closing hold sessions on this
    // context. Leaking it is the safe choice on this (shutdown-only) path.
    (void)tls_.release();
  }
  if (!timer_released_ && deps_.close_timer) deps_.close_timer(nullptr);
}

std::unique_ptr<ApnsPusher> ApnsPusher::create(uv_loop_t* loop, ApnsPusherOptions options,
                                               h2::ConnectionOptions conn_options,
                                               std::unique_ptr<net::TlsContext> tls,
                                               std::unique_ptr<ApnsTokenProvider> tokens,
                                               const Clock& clock) {
  auto* pt = new PusherTimer();
  uv_timer_init(loop, &pt->timer);
  pt->timer.data = pt;
  const net::TlsContext* tls_raw = tls.get();
  // on_response reads only retry-after: apns-id and the rest are not stored per response.
  conn_options.session.keep_response_headers = {"retry-after"};
  ApnsPusherDeps deps;
  deps.conn_factory = [loop, tls_raw, conn_options](h2::ConnListener* l) -> h2::Conn* {
    return h2::Connection::create(loop, tls_raw, conn_options, l);
  };
  deps.schedule = [pt](int64_t delay_ms) {
    uv_timer_start(
        &pt->timer,
        [](uv_timer_t* t) noexcept {
          auto* self = static_cast<PusherTimer*>(t->data);
          if (self->pusher) self->pusher->on_timer();
        },
        static_cast<uint64_t>(std::max<int64_t>(delay_ms, 0)), 0);
  };
  deps.close_timer = [pt](std::function<void()> closed) {
    pt->pusher = nullptr;
    pt->closed = std::move(closed);
    uv_timer_stop(&pt->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&pt->timer), [](uv_handle_t* h) noexcept {
      auto* self = static_cast<PusherTimer*>(h->data);
      std::function<void()> cb = std::move(self->closed);
      delete self;
      if (cb) cb();
    });
  };
  auto p = std::make_unique<ApnsPusher>(std::move(options), std::move(deps), std::move(tokens),
                                        clock, std::move(tls));
  pt->pusher = p.get();
  return p;
}

// ---- sending ---------------------------------------------------------------------------------

bool ApnsPusher::has_capacity(size_t n) const {
  return !closing_ && jobs_.size() + n <= opt_.max_pending;
}

bool ApnsPusher::send(PushMessage msg, int64_t deadline_mono_ms, SendDone done) {
  if (closing_ || !done || jobs_.size() >= opt_.max_pending) {
    ++stats_.refused;
    return false;
  }
  ++stats_.accepted;
  uint64_t id = next_job_++;
  auto owned = std::make_unique<Job>(id, std::move(msg), deadline_mono_ms, std::move(done),
                                     opt_.retry_backoff, deps_.random);
  Job& job = *owned;
  jobs_.emplace(id, std::move(owned));
  job.apns_id = crypto::random_uuid4();
  if (job.msg.shared_payload) job.body = std::move(job.msg.shared_payload);
  else job.body = std::make_shared<const std::string>(std::move(job.msg.payload));

  // Checks APNs would fail with a 4xx anyway; refusing here saves a round trip and never
  // deletes anything (request_bug). Reports are deferred: SendDone never runs inside send().
  if (!token_is_path_safe(job.msg.token)) {
    finish(job, simple_outcome(OutcomeKind::request_bug, 0, "InvalidTokenSyntax"), false);
  } else if (job.body->size() > max_payload(job.msg.push_type)) {
    finish(job, simple_outcome(OutcomeKind::request_bug, 0, "PayloadTooLarge"), false);
  } else {
    advance(job, false);
  }
  rearm();
  return true;
}

void ApnsPusher::advance(Job& job, bool may_report_now) {
  int64_t now = clock_.mono_ms();
  if (now >= job.deadline_ms) {
    Outcome o = job.attempts > 0 ? job.outcome : simple_outcome(OutcomeKind::retry_later, 0, "Deadline");
    return finish(job, std::move(o), may_report_now);
  }
  if (now < paused_until_ms_) {
    // Credentials are known to be bad: answer without hammering APNs (upstreams.md: pause that app).
    return finish(job, pause_outcome_, may_report_now);
  }
  int64_t nb = token_not_before(job.msg.token);
  if (nb > now) {
    if (nb >= job.deadline_ms) {
      Outcome o = job.attempts > 0 ? job.outcome
                                   : simple_outcome(OutcomeKind::retry_later, 429, "TooManyRequests");
      o.per_token_backoff = true;
      return finish(job, std::move(o), may_report_now);
    }
    return retry_at(job, nb);
  }
  attempt(job, may_report_now);
}

h2::H2Request ApnsPusher::build_request(const Job& job) const {
  const PushMessage& m = job.msg;
  h2::H2Request r;
  r.method = "POST";
  r.path = "/3/device/" + m.token;
  // Always the same order (HPACK indexes repeated name/value pairs, RFC 7541); authorization is
  // prepended by the pool's header provider, in the room reserved here (6 + 1: the list is
  // allocated once per attempt).
  r.headers.reserve(7);
  if (!m.app_id.empty()) r.headers.push_back({"apns-topic", m.app_id});
  if (!m.push_type.empty()) r.headers.push_back({"apns-push-type", m.push_type});
  if (m.priority != 0) r.headers.push_back({"apns-priority", std::to_string(m.priority)});
  if (m.expiration_s >= 0) r.headers.push_back({"apns-expiration", std::to_string(m.expiration_s)});
  if (!m.collapse_id.empty()) r.headers.push_back({"apns-collapse-id", m.collapse_id});
  r.headers.push_back({"apns-id", job.apns_id, {}, /*no_index=*/true});
  r.shared_body = job.body;
  return r;
}

void ApnsPusher::attempt(Job& job, bool may_report_now) {
  int64_t now = clock_.mono_ms();
  ++job.attempts;
  ++stats_.attempts;
  if (job.attempts > 1) ++stats_.retries;
  job.mint_count_at_send = tokens_ ? tokens_->mint_count() : 0;
  int64_t timeout = std::min(opt_.attempt_timeout_ms, job.deadline_ms - now);
  uint64_t id = job.id;
  // No liveness token needed: the pool never runs a completion once it is being destroyed
  // (pool.h), and this pusher owns the pool, so `this` outlives every call. Two words fit in
  // std::function's inline storage: no allocation per attempt.
  uint64_t rid = pool_->submit(build_request(job), std::max<int64_t>(timeout, 1),
                               [this, id](const h2::H2Response& resp) { on_response(id, resp); });
  if (rid == 0) {
    // The pool is closed or its queue is full (cannot happen while max_queued ≥ max_pending).
    handle_outcome(job, simple_outcome(OutcomeKind::retry_later, 0, "PoolFull"), may_report_now);
    return;
  }
  job.in_flight = true;
}

void ApnsPusher::on_response(uint64_t job_id, const h2::H2Response& resp) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Job& job = *it->second;
  job.in_flight = false;
  if (closing_) {
    finish(job, simple_outcome(OutcomeKind::retry_later, 0, "ShuttingDown"), true);
    return;
  }
  Outcome o;
  if (resp.failure == h2::FailureKind::none) {
    const std::string* ra = resp.header("retry-after");
    o = map_apns(resp.status, resp.body, ra ? std::string_view(*ra) : std::string_view());
  } else {
    o = map_h2_failure(resp.failure);
  }
  handle_outcome(job, std::move(o), true);
  rearm();
}

void ApnsPusher::handle_outcome(Job& job, Outcome o, bool may_report_now) {
  int64_t now = clock_.mono_ms();
  switch (o.kind) {
    case OutcomeKind::delivered:
      return finish(job, std::move(o), may_report_now);
    case OutcomeKind::dead_token:
    case OutcomeKind::request_bug:
      LOG_DEBUG("%s: %s for %s (status %d, %s, apns-id %s)", opt_.name.c_str(),
                outcome_name(o.kind), redact_token(job.msg.token).c_str(), o.status,
                o.reason.c_str(), job.apns_id.c_str());
      return finish(job, std::move(o), may_report_now);
    case OutcomeKind::credential_problem:
      if (o.remint_credentials && tokens_ && !job.reminted) {
        // 403 ExpiredProviderToken: mint a new JWT once and retry once (upstreams.md). The
        // provider refuses to re-mint within 20 min (TooManyProviderTokenUpdates); a token that
        // another push already renewed since this one was sent counts as fresh too.
        job.reminted = true;
        bool reminted = tokens_->expired_by_upstream();
        if (reminted) ++stats_.remints;
        if (reminted || tokens_->mint_count() != job.mint_count_at_send) {
          job.outcome = o;
          attempt(job, may_report_now);
          return;
        }
      }
      note_credential_problem(o);
      return finish(job, std::move(o), may_report_now);
    case OutcomeKind::retry_later: {
      int64_t delay = o.retry_after_ms >= 0 ? o.retry_after_ms : job.backoff.next_ms();
      if (o.per_token_backoff) {
        // 429 TooManyRequests: Apple throttles this device token; hold back only its pushes.
        delay = std::max(delay, opt_.token_backoff_ms);
        hold_token(job.msg.token, now + delay);
      }
      int64_t at = std::max(now + delay, token_not_before(job.msg.token));
      job.outcome = o;
      if (job.attempts >= opt_.max_attempts || at >= job.deadline_ms) {
        LOG_DEBUG("%s: giving up on %s after %d attempts (status %d, %s)", opt_.name.c_str(),
                  redact_token(job.msg.token).c_str(), job.attempts, o.status, o.reason.c_str());
        return finish(job, std::move(o), may_report_now);
      }
      return retry_at(job, at);
    }
  }
}

void ApnsPusher::retry_at(Job& job, int64_t at_ms) {
  job.due_seq = next_seq_++;
  heap_.push(Due{at_ms, job.due_seq, job.id});
}

void ApnsPusher::finish(Job& job, Outcome o, bool may_report_now) {
  job.outcome = std::move(o);
  job.outcome.remint_credentials = false;
  if (may_report_now) {
    report(job.id);
  } else {
    job.report_pending = true;
    retry_at(job, clock_.mono_ms());  // delivered by the next on_timer()
  }
}

void ApnsPusher::report(uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  std::unique_ptr<Job> job = std::move(it->second);
  jobs_.erase(it);
  switch (job->outcome.kind) {
    case OutcomeKind::delivered: ++stats_.delivered; break;
    case OutcomeKind::dead_token: ++stats_.dead_token; break;
    case OutcomeKind::retry_later: ++stats_.retry_later; break;
    case OutcomeKind::credential_problem: ++stats_.credential_problem; break;
    case OutcomeKind::request_bug: ++stats_.request_bug; break;
  }
  job->done(job->outcome);
}

void ApnsPusher::note_credential_problem(const Outcome& o) {
  int64_t now = clock_.mono_ms();
  paused_until_ms_ = now + opt_.credential_pause_ms;
  pause_outcome_ = o;
  pause_outcome_.remint_credentials = false;
  if (last_cred_log_ms_ < 0 || now - last_cred_log_ms_ >= opt_.warn_interval_ms) {
    last_cred_log_ms_ = now;
    LOG_ERROR("%s: APNs rejects our credentials (%d %s): pushes of this app fail and no token "
              "is deleted until the configuration is fixed; sending paused for %lld ms",
              opt_.name.c_str(), o.status, o.reason.c_str(),
              static_cast<long long>(opt_.credential_pause_ms));
  }
}

// ---- per-token backoff -----------------------------------------------------------------------

int64_t ApnsPusher::token_not_before(const std::string& token) const {
  if (token_not_before_.empty()) return -1;
  auto it = token_not_before_.find(token);
  return it == token_not_before_.end() ? -1 : it->second;
}

void ApnsPusher::hold_token(const std::string& token, int64_t until_ms) {
  auto it = token_not_before_.find(token);
  if (it != token_not_before_.end()) {
    it->second = std::max(it->second, until_ms);
    return;
  }
  if (token_not_before_.size() >= opt_.max_token_backoffs) {
    // Bounded: drop expired entries; if all are live, drop the one that ends first.
    int64_t now = clock_.mono_ms();
    for (auto i = token_not_before_.begin(); i != token_not_before_.end();) {
      if (i->second <= now) i = token_not_before_.erase(i);
      else ++i;
    }
    if (token_not_before_.size() >= opt_.max_token_backoffs) {
      auto first = std::min_element(token_not_before_.begin(), token_not_before_.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
      if (first != token_not_before_.end()) token_not_before_.erase(first);
    }
  }
  if (opt_.max_token_backoffs > 0) token_not_before_.emplace(token, until_ms);
}

// ---- timer -----------------------------------------------------------------------------------

void ApnsPusher::rearm() {
  if (closing_ || timer_released_ || !deps_.schedule) return;
  int64_t at = pool_wake_ms_;
  if (!heap_.empty() && (at < 0 || heap_.top().at_ms < at)) at = heap_.top().at_ms;
  if (at < 0 || at == armed_ms_) return;
  armed_ms_ = at;
  deps_.schedule(std::max<int64_t>(at - clock_.mono_ms(), 0));
}

void ApnsPusher::on_timer() {
  if (closing_) return;
  armed_ms_ = -1;
  std::shared_ptr<bool> alive = alive_;
  int64_t now = clock_.mono_ms();
  if (pool_wake_ms_ >= 0 && now >= pool_wake_ms_) {
    pool_wake_ms_ = -1;
    pool_->on_timer();  // deadlines and reconnects; completions may report pushes
    if (!*alive || closing_) return;
  }
  // Expired token holds go; the map stays small between bursts of 429s.
  if (!token_not_before_.empty() && heap_.empty()) {
    for (auto i = token_not_before_.begin(); i != token_not_before_.end();) {
      if (i->second <= now) i = token_not_before_.erase(i);
      else ++i;
    }
  }
  while (!heap_.empty() && heap_.top().at_ms <= now) {
    Due d = heap_.top();
    heap_.pop();
    auto it = jobs_.find(d.job_id);
    if (it == jobs_.end() || it->second->due_seq != d.seq) continue;  // stale entry
    Job& job = *it->second;
    job.due_seq = 0;
    if (job.report_pending) report(job.id);
    else advance(job, true);
    if (!*alive || closing_) return;
  }
  rearm();
}

// ---- shutdown --------------------------------------------------------------------------------

void ApnsPusher::close(std::function<void()> done) {
  if (closing_) {
    // Second call: run both callbacks when the first close completes.
    auto first = std::move(close_done_);
    close_done_ = [first, done] {
      if (first) first();
      if (done) done();
    };
    maybe_finish_close();
    return;
  }
  closing_ = true;
  close_done_ = std::move(done);
  std::shared_ptr<bool> alive = alive_;
  // Pushes waiting for a retry or a deferred report: retry_later now (pusher.h). A deferred
  // report keeps its outcome; content is dropped with the job, never persisted.
  std::vector<uint64_t> waiting;
  for (auto& [id, job] : jobs_)
    if (!job->in_flight) waiting.push_back(id);
  std::sort(waiting.begin(), waiting.end());  // oldest first
  for (uint64_t id : waiting) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    if (!it->second->report_pending)
      it->second->outcome = simple_outcome(OutcomeKind::retry_later, 0, "ShuttingDown");
    report(id);
    if (!*alive) return;
  }
  heap_ = {};
  token_not_before_.clear();
  // In-flight requests fail with connection_lost → on_response reports them retry_later.
  pool_->close();
  if (!*alive) return;
  std::vector<uint64_t> rest;
  for (auto& [id, job] : jobs_) rest.push_back(id);
  for (uint64_t id : rest) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    it->second->outcome = simple_outcome(OutcomeKind::retry_later, 0, "ShuttingDown");
    report(id);
    if (!*alive) return;
  }
  timer_released_ = true;
  if (deps_.close_timer) {
    deps_.close_timer([this, alive] {
      if (!*alive) return;
      timer_closed_ = true;
      maybe_finish_close();
    });
  } else {
    timer_closed_ = true;
    maybe_finish_close();
  }
}

void ApnsPusher::maybe_finish_close() {
  if (!closing_ || !timer_closed_ || live_conns_ > 0 || !close_done_) return;
  std::function<void()> done = std::move(close_done_);
  close_done_ = nullptr;
  done();
}

void ApnsPusher::append_stats(std::string& out) const {
  append_outcome_stats(out, name(), stats_.delivered, stats_.dead_token, stats_.retry_later,
                       stats_.credential_problem, stats_.request_bug, stats_.retries);
}

}  // namespace aloha::push
