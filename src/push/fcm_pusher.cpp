#include "push/fcm_pusher.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/log.h"
#include "h2/pool.h"
#include "net/http1_client.h"
#include "net/tls.h"

namespace aloha::push {

namespace {

// A heap-allocated one-shot uv timer whose close callback frees it (architecture.md: handles in a
// small wrapper, memory freed in the close callback).
struct UvTimer {
  uv_timer_t handle{};
  std::function<void()> fire;
  std::function<void()> closed;
  bool closing = false;  // fire is kept (it may be running) but never called again

  static UvTimer* create(uv_loop_t* loop) {
    auto* t = new UvTimer();
    uv_timer_init(loop, &t->handle);
    t->handle.data = t;
    return t;
  }
  void arm(int64_t delay_ms) {
    if (closing) return;
    uv_timer_start(&handle, [](uv_timer_t* h) noexcept {
      auto* self = static_cast<UvTimer*>(h->data);
      if (!self->closing && self->fire) self->fire();
    }, static_cast<uint64_t>(std::max<int64_t>(delay_ms, 0)), 0);
  }
  // Frees the timer once libuv is done with it; `after` (optional) runs then.
  void close(std::function<void()> after = {}) {
    if (closing) return;
    closing = true;
    closed = std::move(after);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle), [](uv_handle_t* h) noexcept {
      auto* self = static_cast<UvTimer*>(h->data);
      std::function<void()> after = std::move(self->closed);
      delete self;
      if (after) after();
    });
  }
};

void append_json_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out.append("\\u00");
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

Outcome simple(OutcomeKind k, std::string reason) {
  Outcome o;
  o.kind = k;
  o.reason = std::move(reason);
  return o;
}


}  // namespace

struct FcmPusher::Io {
  uv_loop_t* loop = nullptr;
  std::unique_ptr<net::TlsContext> tls;
  std::unique_ptr<h2::Pool> send_pool;
  std::unique_ptr<h2::Pool> token_pool;
  UvTimer* push_timer = nullptr;
  UvTimer* token_timer = nullptr;
  int64_t close_started_ms = 0;
  // Token exchange over HTTP/1.1 (issue 4): a context offering ALPN {h2, http/1.1} (https
  // token_uri only), whether the token host picked h2 last time, and the one-shot requests in
  // flight (the cache fetches one at a time; cancelled on close so none calls into a dead Io).
  std::unique_ptr<net::TlsContext> token_tls;
  bool token_over_h2 = false;
  std::vector<net::Http1Client*> token_http1;

  void cancel_token_http1() {
    std::vector<net::Http1Client*> all;
    all.swap(token_http1);
    for (net::Http1Client* c : all) c->cancel();
  }

  ~Io() {
    cancel_token_http1();
    send_pool.reset();
    token_pool.reset();
    if (push_timer != nullptr) push_timer->close();
    if (token_timer != nullptr) token_timer->close();
  }
};

std::string FcmPusher::build_body(const PushMessage& msg) {
  std::string b;
  std::string_view payload = msg.payload_data();
  b.reserve(payload.size() + msg.token.size() + 96);
  b.append(R"({"message":{"token":)");
  append_json_string(b, msg.token);
  b.append(R"(,"data":)");
  b.append(payload.empty() ? std::string_view("{}") : payload);
  // api.md push/notify step 4: FCM's enum spelling (HIGH / NORMAL); ttl as "<seconds>s".
  b.append(R"(,"android":{"priority":")");
  b.append(msg.fcm_high_priority ? "HIGH" : "NORMAL");
  b.push_back('"');
  if (msg.fcm_ttl_s >= 0) {
    b.append(R"(,"ttl":")");
    b.append(std::to_string(msg.fcm_ttl_s));
    b.append("s\"");
  }
  b.append("}}}");
  return b;
}

FcmPusher::FcmPusher(std::string project_id, const UrlParts& endpoint, const Clock& clock,
                     Submit submit, Scheduler schedule, FcmPusherOptions options,
                     net::Backoff::RandomSource random)
    : project_id_(std::move(project_id)), endpoint_(endpoint), clock_(clock),
      submit_(std::move(submit)), schedule_(std::move(schedule)), opt_(options),
      random_(std::move(random)) {
  std::string base = endpoint_.path;
  while (!base.empty() && base.back() == '/') base.pop_back();
  path_ = base + "/v1/projects/" + project_id_ + "/messages:send";
  rng_state_ = static_cast<uint64_t>(
                   std::chrono::steady_clock::now().time_since_epoch().count()) ^
               reinterpret_cast<uintptr_t>(this) ^ 0x9e3779b97f4a7c15ull;
}

FcmPusher::~FcmPusher() {
  *alive_ = false;
  // Destroying the token cache first: its fetch completions check their own alive flag.
  tokens_.reset();
  io_.reset();
}

bool FcmPusher::has_capacity(size_t n) const {
  return !closing_ && pushes_.size() + n <= opt_.max_pending;
}

bool FcmPusher::send(PushMessage msg, int64_t deadline_mono_ms, SendDone done) {
  if (closing_ || !done || pushes_.size() >= opt_.max_pending) return false;
  auto owned = std::make_unique<Push>();
  Push* p = owned.get();
  p->id = next_id_++;
  p->token = std::move(msg.token);
  p->deadline_ms = deadline_mono_ms;
  p->done = std::move(done);
  p->last = map_transport(TransportFailure::timeout);
  pushes_.emplace(p->id, std::move(owned));
  // FCM refuses data payloads above 4096 bytes (upstreams.md); we measure the JSON object, a
  // slight over-estimate of Google's key+value count, and fail the send without sending it.
  std::string_view payload = msg.payload_data();
  size_t first = payload.find_first_not_of(" \t\r\n");
  if (payload.size() > opt_.max_data_bytes) {
    Outcome o = simple(OutcomeKind::request_bug, "payload too large");
    o.status = 413;
    report(p, o);
    return true;
  }
  if (!payload.empty() && (first == std::string_view::npos || payload[first] != '{')) {
    report(p, simple(OutcomeKind::request_bug, "data is not a JSON object"));
    return true;
  }
  msg.token = p->token;
  p->body = std::make_shared<const std::string>(build_body(msg));
  attempt(p);
  return true;
}

void FcmPusher::attempt(Push* p) {
  if (clock_.mono_ms() >= p->deadline_ms) {
    report(p, p->last);
    return;
  }
  if (!tokens_) {
    report(p, simple(OutcomeKind::credential_problem, "no OAuth token source"));
    return;
  }
  if (tokens_->authorization() != nullptr) {
    // The common case, decided before building the waiter (whose captures do not fit
    // std::function's inline storage): no allocation per push.
    submit(p);
    return;
  }
  std::shared_ptr<bool> alive = alive_;
  uint64_t id = p->id;
  TokenState s = tokens_->when_ready([this, alive, id](TokenState st) {
    if (*alive) on_token(id, st);
  });
  switch (s) {
    case TokenState::ready: submit(p); return;
    case TokenState::pending: p->state = State::waiting_token; return;
    case TokenState::unavailable:
    case TokenState::rejected: on_token(id, s); return;
  }
}

void FcmPusher::on_token(uint64_t id, TokenState s) {
  auto it = pushes_.find(id);
  if (it == pushes_.end()) return;
  Push* p = it->second.get();
  if (p->state == State::reporting || p->state == State::backing_off) return;
  if (s == TokenState::ready) {
    attempt(p);
  } else if (s == TokenState::rejected) {
    handle(p, simple(OutcomeKind::credential_problem, "OAuth token refused"));
  } else {
    handle(p, simple(OutcomeKind::retry_later, "OAuth token unavailable"));
  }
}

void FcmPusher::submit(Push* p) {
  std::shared_ptr<const std::string> auth = tokens_->shared_authorization();
  if (auth == nullptr) {  // when_ready said ready; defensive
    handle(p, simple(OutcomeKind::retry_later, "OAuth token unavailable"));
    return;
  }
  int64_t now = clock_.mono_ms();
  h2::H2Request req;
  req.method = "POST";
  req.path = path_;
  req.authority = endpoint_.authority;
  // Stable header order so HPACK keeps indexing them (RFC 7541); the bearer token changes only
  // on refresh.
  req.headers.reserve(2);
  // Both values are shared buffers, not copies per request.
  static const std::shared_ptr<const std::string> kContentType =
      std::make_shared<const std::string>("application/json; charset=UTF-8");
  req.headers.push_back({"authorization", std::string(), std::move(auth)});
  req.headers.push_back({"content-type", std::string(), kContentType});
  req.shared_body = p->body;  // shared with retries: no copy per attempt
  p->token_generation = tokens_->generation();
  p->state = State::in_flight;
  int64_t timeout = std::min(opt_.request_timeout_ms, std::max<int64_t>(p->deadline_ms - now, 1));
  // [this, id] fits std::function's inline storage (no allocation per push). No liveness token:
  // the pool belongs to io_, which this pusher owns, and a pool never runs a completion once it
  // is being destroyed (pool.h).
  uint64_t id = p->id;
  uint64_t rid = submit_(std::move(req), timeout, [this, id](const h2::H2Response& r) {
    on_response(id, 0, r);
  });
  if (rid == 0) {
    handle(p, simple(OutcomeKind::retry_later, "upstream queue full"));
    return;
  }
  ++stats_.requests;
}

void FcmPusher::on_response(uint64_t id, uint64_t, const h2::H2Response& resp) {
  auto it = pushes_.find(id);
  if (it == pushes_.end()) return;
  Push* p = it->second.get();
  if (p->state != State::in_flight) return;
  if (resp.failure != h2::FailureKind::none) {
    handle(p, map_h2_failure(resp.failure));
    return;
  }
  const std::string* ra = resp.header("retry-after");
  handle(p, map_fcm(resp.status, resp.body, ra != nullptr ? std::string_view(*ra) : std::string_view()));
}

void FcmPusher::handle(Push* p, Outcome o) {
  switch (o.kind) {
    case OutcomeKind::delivered:
    case OutcomeKind::request_bug:
      report(p, std::move(o));
      return;
    case OutcomeKind::dead_token:
      LOG_INFO("fcm: dead token %s (%d %s)", redact_token(p->token).c_str(), o.status,
               o.reason.c_str());
      report(p, std::move(o));
      return;
    case OutcomeKind::credential_problem:
      if (o.remint_credentials && !p->refreshed_once && tokens_) {
        // upstreams.md: a 401 without an FCM error code → refresh the token once and retry.
        p->refreshed_once = true;
        p->last = o;
        ++stats_.token_retries;
        tokens_->invalidate(p->token_generation);
        p->state = State::waiting_token;
        attempt(p);
        return;
      }
      log_credential_problem(o);
      report(p, std::move(o));
      return;
    case OutcomeKind::retry_later: {
      ++p->attempts;
      int64_t now = clock_.mono_ms();
      int64_t delay = std::max(retry_delay_ms(p->attempts), o.retry_after_ms);
      if (now + delay >= p->deadline_ms) {
        report(p, std::move(o));  // the last outcome is what the caller sees (pusher.h)
        return;
      }
      p->last = std::move(o);
      p->state = State::backing_off;
      p->due_ms = now + delay;
      heap_.emplace(p->due_ms, p->id);
      ++stats_.retries;
      arm();
      return;
    }
  }
}

int64_t FcmPusher::retry_delay_ms(int attempts) {
  // AWS "full jitter": uniform in [0, min(cap, base·2^(n-1))], with a floor of a tenth of the
  // base so a failing upstream is not hammered in a tight loop.
  int shift = std::min(attempts - 1, 20);
  int64_t ceiling = std::min(opt_.retry_cap_ms, opt_.retry_base_ms << std::max(shift, 0));
  double r;
  if (random_) {
    r = random_();
  } else {
    rng_state_ ^= rng_state_ << 13;
    rng_state_ ^= rng_state_ >> 7;
    rng_state_ ^= rng_state_ << 17;
    r = static_cast<double>(rng_state_ >> 11) / static_cast<double>(1ull << 53);
  }
  auto d = static_cast<int64_t>(r * static_cast<double>(ceiling));
  return std::max(d, opt_.retry_base_ms / 10);
}

void FcmPusher::log_credential_problem(const Outcome& o) {
  // Loud but bounded: every FCM push fails the same way until the credentials are fixed.
  int64_t now = clock_.mono_ms();
  if (last_credential_log_ms_ >= 0 && now - last_credential_log_ms_ < opt_.credential_log_interval_ms) {
    ++credential_suppressed_;
    return;
  }
  LOG_ERROR("fcm: credential problem (HTTP %d %s): FCM pushes fail until the service account "
            "is fixed; tokens are kept (%llu similar failures not logged)",
            o.status, o.reason.c_str(), static_cast<unsigned long long>(credential_suppressed_));
  last_credential_log_ms_ = now;
  credential_suppressed_ = 0;
}

void FcmPusher::report(Push* p, Outcome o) {
  p->last = std::move(o);
  p->state = State::reporting;
  reports_.push_back(p->id);
  arm();  // posted: SendDone never runs inside send() or an upstream callback chain
}

void FcmPusher::arm() {
  if (!schedule_ || closing_) return;
  int64_t now = clock_.mono_ms();
  int64_t next = -1;
  if (!reports_.empty()) {
    next = now;
  } else {
    // Drop stale entries (pushes that were resent or reported since) from the top.
    while (!heap_.empty()) {
      auto [due, id] = heap_.top();
      auto it = pushes_.find(id);
      if (it != pushes_.end() && it->second->state == State::backing_off && it->second->due_ms == due)
        break;
      heap_.pop();
    }
    if (!heap_.empty()) next = heap_.top().first;
  }
  if (next < 0) return;
  if (armed_for_ms_ >= 0 && armed_for_ms_ <= next) return;  // an earlier wake-up re-arms
  armed_for_ms_ = next;
  schedule_(std::max<int64_t>(next - now, 0));
}

void FcmPusher::on_timer() {
  armed_for_ms_ = -1;
  if (closing_) return;
  std::shared_ptr<bool> alive = alive_;
  int64_t now = clock_.mono_ms();
  while (!heap_.empty() && heap_.top().first <= now) {
    auto [due, id] = heap_.top();
    heap_.pop();
    auto it = pushes_.find(id);
    if (it == pushes_.end()) continue;
    Push* p = it->second.get();
    if (p->state != State::backing_off || p->due_ms != due) continue;
    p->state = State::waiting_token;
    attempt(p);
  }
  deliver_reports();
  if (!*alive) return;
  arm();
}

void FcmPusher::deliver_reports() {
  std::vector<uint64_t> ids;
  ids.swap(reports_);
  std::shared_ptr<bool> alive = alive_;
  for (uint64_t id : ids) {
    auto it = pushes_.find(id);
    if (it == pushes_.end()) continue;
    std::unique_ptr<Push> p = std::move(it->second);
    pushes_.erase(it);
    switch (p->last.kind) {
      case OutcomeKind::delivered: ++stats_.delivered; break;
      case OutcomeKind::dead_token: ++stats_.dead_token; break;
      case OutcomeKind::retry_later: ++stats_.retry_later; break;
      case OutcomeKind::credential_problem: ++stats_.credential_problem; break;
      case OutcomeKind::request_bug: ++stats_.request_bug; break;
    }
    p->done(p->last);
    if (!*alive) return;  // a callback destroyed the pusher
  }
}

void FcmPusher::close(std::function<void()> done) {
  if (closing_) return;
  closing_ = true;
  // pusher.h: pending pushes are reported retry_later (content dropped, never persisted).
  std::unordered_map<uint64_t, std::unique_ptr<Push>> all;
  all.swap(pushes_);
  reports_.clear();
  heap_ = {};
  std::vector<Push*> order;
  for (auto& [id, p] : all) order.push_back(p.get());
  std::sort(order.begin(), order.end(), [](Push* a, Push* b) { return a->id < b->id; });
  std::shared_ptr<bool> alive = alive_;
  for (Push* p : order) {
    Outcome o = p->state == State::reporting ? p->last : simple(OutcomeKind::retry_later, "shutting down");
    ++stats_.retry_later;
    p->done(o);
    if (!*alive) return;
  }
  if (tokens_) tokens_->close();
  if (!io_) {
    if (done) done();
    return;
  }
  // Production: close the pools (their requests fail into completions we now ignore), wait for
  // their connections to finish closing, destroy the pools (closing their timers), then close our
  // timers one loop iteration later so every handle is gone when `done` runs.
  Io* io = io_.get();
  io->send_pool->close();
  io->token_pool->close();
  io->cancel_token_http1();
  io->close_started_ms = clock_.mono_ms();
  auto cb = std::make_shared<std::function<void()>>(std::move(done));
  io->push_timer->fire = [this, io, cb] {
    auto s1 = io->send_pool ? io->send_pool->stats().connections : 0;
    auto s2 = io->token_pool ? io->token_pool->stats().connections : 0;
    if ((s1 > 0 || s2 > 0) && clock_.mono_ms() - io->close_started_ms < 5000) {
      io->push_timer->arm(10);
      return;
    }
    if (io->send_pool || io->token_pool) {
      io->send_pool.reset();
      io->token_pool.reset();
      io->push_timer->arm(1);  // let the pools' timer close callbacks run first
      return;
    }
    auto remaining = std::make_shared<int>(2);
    auto after = [remaining, cb] {
      if (--*remaining == 0 && *cb) (*cb)();
    };
    UvTimer* t1 = io->push_timer;
    UvTimer* t2 = io->token_timer;
    io->push_timer = io->token_timer = nullptr;
    t2->close(after);
    t1->close(after);  // frees the lambda we are running in only after it returns
  };
  io->push_timer->arm(0);
}

namespace {

// The token POST over the HTTP/2 token pool (the path used before issue 4's fallback). A transport
// failure clears token_over_h2 so the next fetch lets ALPN choose again.
void fetch_token_h2(FcmPusher::Io* iop, const UrlParts& url, std::string body, int64_t timeout_ms,
                    std::shared_ptr<OAuthTokenCache::FetchDone> shared_done) {
  h2::H2Request req;
  req.method = "POST";
  req.path = url.path;
  req.authority = url.authority;
  req.headers.push_back({"content-type", "application/x-www-form-urlencoded"});
  req.headers.push_back({"accept", "application/json"});
  req.body = std::move(body);
  uint64_t id = iop->token_pool
                    ? iop->token_pool->submit(std::move(req), timeout_ms,
                                              [iop, shared_done](const h2::H2Response& r) {
                                                bool ok = r.failure == h2::FailureKind::none;
                                                if (!ok) iop->token_over_h2 = false;
                                                (*shared_done)(ok ? r.status : 0, r.body);
                                              })
                    : 0;
  if (id == 0) {
    // Refused (closed or full): report the failure from a fresh loop iteration, never inside
    // fetch() (oauth.h contract).
    UvTimer* t = UvTimer::create(iop->loop);
    t->fire = [t, shared_done] {
      auto d = shared_done;
      t->close();
      (*d)(0, {});
    };
    t->arm(0);
  }
}

}  // namespace

std::unique_ptr<FcmPusher> FcmPusher::create(uv_loop_t* loop, const FcmConfig& cfg,
                                             const Clock& clock, std::string& err,
                                             FcmPusherOptions options) {
  ServiceAccount sa;
  std::unique_ptr<net::PrivateKey> key;
  if (!load_service_account(cfg.credentials_file, sa, key, err)) {
    err = "[fcm] credentials_file: " + err;
    return nullptr;
  }
  UrlParts ep;
  std::string uerr;
  if (!parse_url(cfg.endpoint, ep, uerr)) {
    err = "[fcm] endpoint: " + uerr;
    return nullptr;
  }
  auto io = std::make_unique<Io>();
  io->loop = loop;
  if (ep.tls || sa.token_url.tls) {
    net::TlsContext::ClientOptions to;
    to.ca_file = cfg.ca_file;
    to.alpn = {"h2"};
    std::string terr;
    io->tls = net::TlsContext::client(to, terr);
    if (!io->tls) {
      err = "[fcm] ca_file: " + terr;
      return nullptr;
    }
  }
  if (sa.token_url.tls) {
    // upstreams.md / issue 4: the token exchange runs "over h2 or HTTP/1.1 by ALPN".
    net::TlsContext::ClientOptions to;
    to.ca_file = cfg.ca_file;
    to.alpn = {"h2", "http/1.1"};
    std::string terr;
    io->token_tls = net::TlsContext::client(to, terr);
    if (!io->token_tls) {
      err = "[fcm] ca_file: " + terr;
      return nullptr;
    }
  }
  h2::ConnectionOptions co;
  co.host = ep.host;
  co.port = ep.port;
  co.authority = ep.authority;
  co.session.keep_response_headers = {"retry-after"};  // the only one on_response reads
  h2::PoolOptions po;
  po.max_connections = options.max_connections;
  po.max_queued = options.max_pending;
  po.default_timeout_ms = options.request_timeout_ms;
  io->send_pool = h2::Pool::create(loop, ep.tls ? io->tls.get() : nullptr, co, po);

  // A separate small pool for the token host (upstreams.md): token requests are rare and must
  // not queue behind thousands of sends.
  h2::ConnectionOptions tco;
  tco.host = sa.token_url.host;
  tco.port = sa.token_url.port;
  tco.authority = sa.token_url.authority;
  h2::PoolOptions tpo;
  tpo.max_connections = 1;
  tpo.max_queued = 16;
  io->token_pool = h2::Pool::create(loop, sa.token_url.tls ? io->tls.get() : nullptr, tco, tpo);
  io->push_timer = UvTimer::create(loop);
  io->token_timer = UvTimer::create(loop);

  Io* iop = io.get();
  auto submit = [iop](h2::H2Request req, int64_t timeout_ms, h2::Completion done) -> uint64_t {
    return iop->send_pool ? iop->send_pool->submit(std::move(req), timeout_ms, std::move(done)) : 0;
  };
  auto schedule = [iop](int64_t delay_ms) {
    if (iop->push_timer != nullptr) iop->push_timer->arm(delay_ms);
  };
  auto pusher = std::make_unique<FcmPusher>(sa.project_id, ep, clock, submit,
                                            schedule, options);
  FcmPusher* raw = pusher.get();
  iop->push_timer->fire = [raw] { raw->on_timer(); };

  auto fetch = [iop, token_url = sa.token_url](std::string body, int64_t timeout_ms,
                                               OAuthTokenCache::FetchDone done) {
    auto shared_done = std::make_shared<OAuthTokenCache::FetchDone>(std::move(done));
    // Transport per attempt (issue 4): a host known to pick h2 (and a cleartext token_uri, which
    // tests use with HTTP/2 prior knowledge) goes through the HTTP/2 token pool; otherwise a
    // one-shot HTTP/1.1 request offers ALPN {h2, http/1.1}. If the server picks h2 there, that
    // request sends nothing and the fetch moves to the pool, which is used from then on until
    // it fails at the transport level (then the next fetch asks the server again).
    if (!iop->token_tls || iop->token_over_h2) {
      fetch_token_h2(iop, token_url, std::move(body), timeout_ms, shared_done);
      return;
    }
    net::Http1Request req;
    req.host = token_url.host;
    req.port = token_url.port;
    req.authority = token_url.authority;
    req.method = "POST";
    req.path = token_url.path;
    req.headers.push_back({"content-type", "application/x-www-form-urlencoded"});
    req.headers.push_back({"accept", "application/json"});
    req.body = body;
    req.timeout_ms = timeout_ms;
    uint64_t started = uv_now(iop->loop);
    auto self = std::make_shared<net::Http1Client*>(nullptr);  // set below; done runs later
    auto on_done = [iop, token_url, body = std::move(body), timeout_ms, started, shared_done,
                    self](const net::Http1Response& r) mutable {
      // Drop our entry: the client frees itself after this callback.
      auto& v = iop->token_http1;
      v.erase(std::remove(v.begin(), v.end(), *self), v.end());
      if (r.failure == net::Http1Failure::h2_selected) {
        LOG_DEBUG("fcm: token host %s selected h2; using HTTP/2", token_url.authority.c_str());
        iop->token_over_h2 = true;
        int64_t left = timeout_ms - static_cast<int64_t>(uv_now(iop->loop) - started);
        fetch_token_h2(iop, token_url, std::move(body), std::max<int64_t>(left, 1), shared_done);
        return;
      }
      if (r.failure != net::Http1Failure::none) {
        LOG_WARN("fcm: token request to %s over HTTP/1.1 failed (%s): %s",
                 token_url.authority.c_str(), net::http1_failure_name(r.failure), r.error.c_str());
        (*shared_done)(0, {});
        return;
      }
      (*shared_done)(r.status, r.body);
    };
    *self = net::Http1Client::start(iop->loop, iop->token_tls.get(), std::move(req), std::move(on_done));
    iop->token_http1.push_back(*self);
  };
  auto token_schedule = [iop](int64_t delay_ms) {
    if (iop->token_timer != nullptr) iop->token_timer->arm(delay_ms);
  };
  auto cache = std::make_unique<OAuthTokenCache>(std::move(sa), std::move(key), clock,
                                                 fetch, token_schedule);
  OAuthTokenCache* cache_raw = cache.get();
  iop->token_timer->fire = [cache_raw] { cache_raw->on_timer(); };
  pusher->set_token_cache(std::move(cache));
  pusher->io_ = std::move(io);
  LOG_INFO("fcm: project %s via %s%s", pusher->project_id_.c_str(), ep.authority.c_str(),
           pusher->path_.c_str());
  return pusher;
}

void FcmPusher::append_stats(std::string& out) const {
  append_outcome_stats(out, name(), stats_.delivered, stats_.dead_token, stats_.retry_later,
                       stats_.credential_problem, stats_.request_bug, stats_.retries);
}

}  // namespace aloha::push
