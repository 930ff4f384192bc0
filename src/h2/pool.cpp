#include "h2/pool.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "core/log.h"

namespace aloha::h2 {

Pool::Pool(PoolOptions options, const Clock& clock, ConnFactory factory, Scheduler scheduler,
           HeaderProvider headers, net::Backoff::RandomSource random)
    : opt_(options),
      clock_(clock),
      factory_(std::move(factory)),
      scheduler_(std::move(scheduler)),
      headers_(std::move(headers)),
      backoff_(options.backoff, std::move(random)) {
  if (opt_.max_connections < 1) opt_.max_connections = 1;
}

Pool::~Pool() {
  *alive_ = false;
  // Completions still delivered by closing sessions are ignored. Conn::close() fails every open
  // request at once, so no completion can reach this pool after the destructor: the per-request
  // completion needs no liveness token of its own.
  destroying_ = true;
  for (auto& ci : conns_) {
    ci.conn->set_listener(nullptr);
    ci.conn->close();
  }
  conns_.clear();
  if (on_destroy_) on_destroy_();
}

namespace {
// One-shot uv timer for Pool::create; closed (and freed) when the pool goes away.
struct PoolTimer {
  uv_timer_t timer{};
  Pool* pool = nullptr;
};
}  // namespace

std::unique_ptr<Pool> Pool::create(uv_loop_t* loop, const net::TlsContext* tls,
                                   ConnectionOptions conn_options, PoolOptions options,
                                   HeaderProvider headers) {
  auto* pt = new PoolTimer();
  uv_timer_init(loop, &pt->timer);
  pt->timer.data = pt;
  auto factory = [loop, tls, conn_options](ConnListener* l) -> Conn* {
    return Connection::create(loop, tls, conn_options, l);
  };
  auto scheduler = [pt](int64_t delay_ms) {
    uv_timer_start(&pt->timer, [](uv_timer_t* t) noexcept {
      auto* p = static_cast<PoolTimer*>(t->data);
      if (p->pool) p->pool->on_timer();
    }, static_cast<uint64_t>(std::max<int64_t>(delay_ms, 0)), 0);
  };
  auto pool = std::make_unique<Pool>(options, SystemClock::instance(), factory, scheduler,
                                     std::move(headers));
  pt->pool = pool.get();
  pool->on_destroy_ = [pt] {
    pt->pool = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&pt->timer),
             [](uv_handle_t* h) noexcept { delete static_cast<PoolTimer*>(h->data); });
  };
  return pool;
}

uint64_t Pool::submit(H2Request request, int64_t timeout_ms, Completion done) {
  if (closed_ || !done || queue_.size() >= opt_.max_queued) return 0;
  Req* r = slots_.acquire();
  r->request = std::move(request);
  r->done = std::move(done);
  r->deadline_ms = clock_.mono_ms() + (timeout_ms > 0 ? timeout_ms : opt_.default_timeout_ms);
  heap_push(r);
  uint64_t id = r->id;
  queue_.push_back(id);
  dispatch();
  reschedule();
  return id;
}

Pool::Req* Pool::lookup(uint64_t id) const { return slots_.find(id); }

void Pool::release(Req* r) { slots_.release(r); }  // drops the request's buffers and the completion

void Pool::heap_swap(size_t a, size_t b) {
  std::swap(deadlines_[a], deadlines_[b]);
  deadlines_[a]->heap_pos = a;
  deadlines_[b]->heap_pos = b;
}

void Pool::heap_up(size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(i, parent)) break;
    heap_swap(i, parent);
    i = parent;
  }
}

void Pool::heap_down(size_t i) {
  size_t n = deadlines_.size();
  for (;;) {
    size_t l = 2 * i + 1, best = i;
    if (l < n && heap_less(l, best)) best = l;
    if (l + 1 < n && heap_less(l + 1, best)) best = l + 1;
    if (best == i) break;
    heap_swap(i, best);
    i = best;
  }
}

void Pool::heap_push(Req* r) {
  r->heap_pos = deadlines_.size();
  deadlines_.push_back(r);
  heap_up(r->heap_pos);
}

void Pool::heap_erase(Req* r) {
  size_t i = r->heap_pos;
  size_t last = deadlines_.size() - 1;
  if (i != last) {
    heap_swap(i, last);
    deadlines_.pop_back();
    heap_up(i);
    heap_down(deadlines_[i]->heap_pos);
  } else {
    deadlines_.pop_back();
  }
}

Pool::ConnInfo* Pool::find(Conn* c) {
  for (auto& ci : conns_)
    if (ci.conn == c) return &ci;
  return nullptr;
}

bool Pool::send(Req* r, Conn* c) {
  // Provider headers first (authorization), then the request's own, in a stable order so HPACK
  // keeps hitting its dynamic table (RFC 7541). They are appended and rotated to the front: with
  // the room pushers reserve, the header list is not reallocated.
  std::vector<H2Header>& h = r->request.headers;
  if (headers_) {
    size_t own = h.size();
    headers_(h);
    r->provider_headers = h.size() - own;
    std::rotate(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(own), h.end());
  }
  // The request is moved, not copied: the session hands it back on a failure (replay), and a
  // refusing connection leaves it untouched. [this, id] fits std::function's inline storage, so
  // the completion costs no allocation; ~Pool covers its lifetime (destroying_).
  uint64_t id = r->id;
  uint64_t cid = c->submit(std::move(r->request), [this, id](H2Response& resp) {
    if (!destroying_) on_response(id, resp);
  });
  if (!cid) {
    strip_provider_headers(r);  // added again, current, by the next send
    return false;
  }
  r->conn = c;
  r->conn_req_id = cid;
  return true;
}

void Pool::strip_provider_headers(Req* r) {
  std::vector<H2Header>& h = r->request.headers;
  size_t n = std::min(r->provider_headers, h.size());
  h.erase(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(n));
  r->provider_headers = 0;
}

void Pool::dispatch() {
  if (dispatching_ || closed_) return;
  dispatching_ = true;
  while (!queue_.empty()) {
    Req* r = lookup(queue_.front());
    if (!r) {
      queue_.pop_front();
      continue;
    }
    // A connection with a free stream slot; for a replay, one other than where it failed.
    Conn* best = nullptr;
    for (auto& ci : conns_) {
      if (!ci.ready || ci.conn->state() != ConnState::connected || ci.conn->free_slots() == 0) continue;
      if (ci.conn == r->failed_on && best) continue;
      if (!best || best == r->failed_on) best = ci.conn;
    }
    if (!best || !send(r, best)) break;
    queue_.pop_front();
  }
  dispatching_ = false;
  if (!queue_.empty()) maybe_open_connection();
}

void Pool::maybe_open_connection() {
  if (closed_) return;
  size_t usable = 0;
  for (auto& ci : conns_) {
    ConnState st = ci.conn->state();
    if (st == ConnState::closed || st == ConnState::draining) continue;
    // One connection set-up at a time: a second would only race the first.
    if (!ci.ready) return;
    ++usable;
  }
  if (usable >= opt_.max_connections) return;
  if (clock_.mono_ms() < next_connect_ms_) return;  // backing off; the timer comes back
  Conn* c = factory_(this);
  if (!c) return;
  conns_.push_back({c, false});
}

void Pool::on_conn_ready(Conn* c) {
  if (ConnInfo* ci = find(c)) ci->ready = true;
  backoff_.reset();
  dispatch();
}

void Pool::on_conn_capacity(Conn*) { dispatch(); }

void Pool::on_conn_idle(Conn*) {
  if (dispatching_ || slots_.live() != 0) return;
  slots_.release_if_idle();
  std::vector<Req*>().swap(deadlines_);
  std::deque<uint64_t>().swap(queue_);
}

size_t Pool::idle_capacity() const {
  return slots_.capacity() * sizeof(Req) + deadlines_.capacity() * sizeof(Req*);
}

void Pool::on_conn_closed(Conn* c, const std::string& error) {
  auto it = std::find_if(conns_.begin(), conns_.end(), [c](const ConnInfo& ci) { return ci.conn == c; });
  if (it == conns_.end()) return;
  bool was_ready = it->ready;
  conns_.erase(it);
  slots_.for_each([c](Req& r) {
    if (r.failed_on == c) r.failed_on = nullptr;  // the pointer may be reused by a new object
  });
  if (!error.empty()) {
    // Reconnect with jittered backoff (upstreams.md); the first retry after a working connection
    // dropped comes quickly, repeated set-up failures back off exponentially.
    if (!was_ready) ++connect_failures_;
    next_connect_ms_ = clock_.mono_ms() + backoff_.next_ms();
  }
  dispatch();
  reschedule();
}

void Pool::on_response(uint64_t id, H2Response& resp) {
  Req* r = lookup(id);
  if (!r) return;
  Conn* from = r->conn;
  r->conn = nullptr;
  r->conn_req_id = 0;
  // Replay only what the server provably did not process (RFC 9113 §8.7): GOAWAY above the last
  // stream id, REFUSED_STREAM, or a request whose HEADERS never left this process.
  bool unprocessed = resp.failure == FailureKind::goaway_unprocessed ||
                     (resp.failure == FailureKind::connection_lost && !resp.request_sent);
  if (unprocessed && resp.request && !closed_ && r->replays < opt_.max_replays &&
      clock_.mono_ms() < r->deadline_ms) {
    r->request = std::move(*resp.request);
    strip_provider_headers(r);  // the provider's current ones (e.g. a fresh JWT) go on the replay
    ++r->replays;
    ++replays_;
    r->failed_on = from;
    queue_.push_front(id);
    dispatch();
    reschedule();
    return;
  }
  complete(id, resp);
}

// The connection's response object is handed on as it is (only its id rewritten): no copy of
// its headers and body per request.
void Pool::complete(uint64_t id, H2Response& resp) {
  Req* r = lookup(id);
  if (!r) return;
  heap_erase(r);
  Completion done = std::move(r->done);
  release(r);
  resp.request_id = id;
  done(resp);  // may destroy the pool: callers check alive_
}

void Pool::on_timer() {
  scheduled_at_ms_ = -1;
  std::shared_ptr<bool> alive = alive_;
  int64_t now = clock_.mono_ms();
  while (!deadlines_.empty() && deadlines_.front()->deadline_ms <= now) {
    Req* r = deadlines_.front();
    uint64_t id = r->id;
    if (r->conn) {
      // The session resets the stream and completes it with FailureKind::timeout, which comes
      // back through on_response → complete.
      Conn* c = r->conn;
      uint64_t cid = r->conn_req_id;
      if (!c->cancel(cid)) {
        H2Response resp;
        resp.failure = FailureKind::timeout;
        complete(id, resp);
      }
    } else {
      auto q = std::find(queue_.begin(), queue_.end(), id);
      if (q != queue_.end()) queue_.erase(q);
      H2Response resp;
      resp.failure = FailureKind::timeout;
      complete(id, resp);
    }
    if (!*alive) return;
    // If the completion did not remove it (should not happen), do not spin.
    if (lookup(id)) {
      H2Response resp{id, 0, FailureKind::timeout};
      complete(id, resp);
      if (!*alive) return;
    }
  }
  dispatch();
  reschedule();
}

void Pool::reschedule() {
  if (closed_) return;
  int64_t now = clock_.mono_ms();
  int64_t at = -1;
  if (!deadlines_.empty()) at = deadlines_.front()->deadline_ms;
  if (!queue_.empty() && next_connect_ms_ > now && (at < 0 || next_connect_ms_ < at)) at = next_connect_ms_;
  if (at < 0 || at == scheduled_at_ms_) return;
  scheduled_at_ms_ = at;
  if (scheduler_) scheduler_(std::max<int64_t>(at - now, 0));
}

void Pool::close() {
  if (closed_) return;
  closed_ = true;
  std::shared_ptr<bool> alive = alive_;
  std::vector<Conn*> conns;
  for (auto& ci : conns_) conns.push_back(ci.conn);
  for (Conn* c : conns) {
    c->close();  // fails its requests (no replay: closed_)
    if (!*alive) return;
  }
  while (!queue_.empty()) {
    uint64_t id = queue_.front();
    queue_.pop_front();
    H2Response resp;
    resp.failure = FailureKind::connection_lost;
    complete(id, resp);
    if (!*alive) return;
  }
}

PoolStats Pool::stats() const {
  PoolStats s;
  s.queued = queue_.size();
  s.in_flight = slots_.live() - queue_.size();
  for (auto& ci : conns_) {
    if (ci.conn->state() != ConnState::closed) ++s.connections;
    if (ci.ready && ci.conn->state() == ConnState::connected) ++s.connected;
  }
  s.replays = replays_;
  s.connect_failures = connect_failures_;
  return s;
}

}  // namespace aloha::h2
