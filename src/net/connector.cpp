#include "net/connector.h"

#include "core/log.h"

namespace aloha::net {

void close_tcp(uv_tcp_t* tcp) {
  if (!tcp) return;
  uv_close(reinterpret_cast<uv_handle_t*>(tcp),
           [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_tcp_t*>(h); });
}

// One uv_tcp_connect: the tcp handle and the connect request live until both the connect
// callback and (on failure) the close callback have run.
struct Connector::Attempt {
  Connector* owner = nullptr;
  uv_tcp_t* tcp = nullptr;
  uv_connect_t req{};
  std::string peer;
  bool connect_cb_done = false;
  bool tcp_handed_out = false;
  bool tcp_closed = false;   // close callback ran (or tcp handed out)
  bool abandoned = false;    // timed out / cancelled: ignore the connect result
};

Connector::Connector(uv_loop_t* loop, int64_t timeout_ms, Done done)
    : loop_(loop), timeout_ms_(timeout_ms), done_(std::move(done)) {}

Connector* Connector::start(uv_loop_t* loop, const std::string& host, uint16_t port,
                            int64_t attempt_timeout_ms, Done done) {
  auto* c = new Connector(loop, attempt_timeout_ms, std::move(done));
  c->host_ = host;
  uv_timer_init(loop, &c->timer_);
  c->timer_.data = c;
  c->resolver_ = Resolver::start(loop, host, port,
      [c](int status, const std::vector<sockaddr_storage>& addrs) { c->on_resolved(status, addrs); });
  return c;
}

void Connector::on_resolved(int status, const std::vector<sockaddr_storage>& addrs) {
  resolver_ = nullptr;  // it frees itself after this callback
  if (finished_) return;
  if (status != 0) {
    errors_ = "resolve " + host_ + ": " + uv_strerror(status);
    finish(status, nullptr);
    return;
  }
  addrs_ = addrs;
  if (on_resolved_hook_) {
    try {
      on_resolved_hook_(addrs_.size());
    } catch (...) {
    }
    if (finished_) return;  // the hook cancelled us
  }
  try_next();
}

void Connector::try_next() {
  while (!finished_ && next_ < addrs_.size()) {
    const sockaddr* addr = reinterpret_cast<const sockaddr*>(&addrs_[next_++]);
    auto* a = new Attempt();
    a->owner = this;
    a->peer = format_address(addr);
    a->tcp = new uv_tcp_t;
    uv_tcp_init(loop_, a->tcp);
    a->tcp->data = a;
    a->req.data = a;
    ++live_attempts_;
    int rc = uv_tcp_connect(&a->req, a->tcp, addr, &Connector::on_connect);
    if (rc != 0) {
      // No callback will come for the request; only the close.
      a->connect_cb_done = true;
      attempt_failed(a, rc);
      continue;
    }
    current_ = a;
    uv_timer_start(&timer_, &Connector::on_timeout, static_cast<uint64_t>(timeout_ms_), 0);
    return;
  }
  if (!finished_) finish(last_status_, nullptr);
}

void Connector::attempt_failed(Attempt* a, int status) {
  // Record why, close the socket, move on. `a` is freed once libuv is done with both parts.
  last_status_ = status;
  if (!errors_.empty()) errors_ += "; ";
  errors_ += a->peer + ": " + uv_strerror(status);
  LOG_DEBUG("connect %s: %s", a->peer.c_str(), uv_strerror(status));
  a->abandoned = true;
  if (current_ == a) current_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(a->tcp), [](uv_handle_t* h) noexcept {
    auto* at = static_cast<Attempt*>(h->data);
    delete reinterpret_cast<uv_tcp_t*>(h);
    at->tcp = nullptr;
    at->tcp_closed = true;
    if (at->connect_cb_done) {
      Connector* owner = at->owner;
      delete at;
      --owner->live_attempts_;
      owner->maybe_free();
    }
  });
}

void Connector::on_connect(uv_connect_t* req, int status) noexcept {
  auto* a = static_cast<Attempt*>(req->data);
  Connector* self = a->owner;
  a->connect_cb_done = true;
  if (a->abandoned) {
    // Timed out or cancelled earlier; its close is already under way (or done).
    if (a->tcp_closed) {
      delete a;
      --self->live_attempts_;
      self->maybe_free();
    }
    return;
  }
  uv_timer_stop(&self->timer_);
  if (status == 0 && !self->finished_) {
    uv_tcp_t* tcp = a->tcp;
    tcp->data = nullptr;
    uv_tcp_nodelay(tcp, 1);
    self->current_ = nullptr;
    delete a;
    --self->live_attempts_;
    self->finish(0, tcp);
    return;
  }
  self->attempt_failed(a, status == 0 ? UV_ECANCELED : status);
  self->try_next();
}

void Connector::on_timeout(uv_timer_t* t) noexcept {
  auto* self = static_cast<Connector*>(t->data);
  if (Attempt* a = self->current_) {
    self->attempt_failed(a, UV_ETIMEDOUT);
    self->try_next();
  }
}

void Connector::finish(int status, uv_tcp_t* tcp) {
  if (finished_) {
    close_tcp(tcp);
    return;
  }
  finished_ = true;
  Done done = std::move(done_);
  std::string errors = errors_;
  if (status != 0) LOG_DEBUG("connect %s failed: %s", host_.c_str(), errors.c_str());
  maybe_free();  // closes the timer; the object stays alive until its close callback
  try {
    done(status, tcp, errors);
  } catch (...) {
    LOG_ERROR("connector: callback threw");
  }
}

void Connector::cancel() {
  if (finished_) return;
  finished_ = true;
  done_ = nullptr;
  if (resolver_) {
    resolver_->cancel();
    resolver_ = nullptr;
  }
  if (current_) attempt_failed(current_, UV_ECANCELED);
  maybe_free();
}

void Connector::maybe_free() {
  if (!finished_) return;
  if (!timer_closed_) {
    timer_closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) noexcept {
      auto* self = static_cast<Connector*>(h->data);
      self->timer_.data = nullptr;  // marks the timer as closed
      self->maybe_free();
    });
    return;
  }
  if (timer_.data == nullptr && live_attempts_ == 0) delete this;
}

}  // namespace aloha::net
