// Server: listeners, the connection registry, the shared read buffer, the prepare handle that
// flushes replies sent outside read callbacks, and graceful shutdown.
//
// Handles the server owns (listeners, prepare, deadline timer) are heap-allocated and freed in
// their close callback; if the Server is destroyed first, the callback sees data == nullptr and
// only frees memory (architecture.md, two-phase close).
#include "http/server.h"

#include <algorithm>
#include <cstring>

#include "core/log.h"
#include "http/connection.h"

namespace aloha::http {

namespace {
constexpr size_t kReadBufferSize = 64 * 1024;
constexpr int kBacklog = 511;
// Connections over max_connections that are being sent a 503; beyond this they are closed
// without an answer (a flood must not cost unbounded memory).
constexpr size_t kMaxRejecting = 64;

void free_handle(uv_handle_t* h) noexcept {
  switch (h->type) {
    case UV_TCP: delete reinterpret_cast<uv_tcp_t*>(h); break;
    case UV_PREPARE: delete reinterpret_cast<uv_prepare_t*>(h); break;
    case UV_TIMER: delete reinterpret_cast<uv_timer_t*>(h); break;
    default: break;
  }
}

void on_dropped_closed(uv_handle_t* h) noexcept { free_handle(h); }
}  // namespace

Server::Server(uv_loop_t* loop, ServerLimits limits, Handler handler)
    : loop_(loop),
      limits_(limits),
      handler_(std::move(handler)),
      read_buf_(new char[kReadBufferSize]) {
  prepare_ = new uv_prepare_t;
  uv_prepare_init(loop_, prepare_);
  prepare_->data = this;
  uv_prepare_start(prepare_, on_prepare);
  // The prepare handle alone must not keep the loop running.
  uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
  own_handles_.push_back(reinterpret_cast<uv_handle_t*>(prepare_));
}

Server::~Server() {
  for (Connection* c : connections_) {
    c->detach_server();
    c->close();
  }
  connections_.clear();
  dirty_.clear();
  for (uv_handle_t* h : own_handles_) {
    h->data = nullptr;
    if (!uv_is_closing(h)) uv_close(h, on_own_handle_closed);
  }
  own_handles_.clear();
}

std::string Server::listen(const std::string& host, int port) {
  if (shutting_down_) return "the server is shutting down";
  if (port < 0 || port > 65535) return "invalid port " + std::to_string(port);
  sockaddr_storage addr;
  std::memset(&addr, 0, sizeof addr);
  int rc;
  if (host.find(':') != std::string::npos)
    rc = uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr));
  else
    rc = uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) return "invalid listen address '" + host + "': " + uv_strerror(rc);

  auto* t = new uv_tcp_t;
  uv_tcp_init(loop_, t);
  t->data = this;
  own_handles_.push_back(reinterpret_cast<uv_handle_t*>(t));
  rc = uv_tcp_bind(t, reinterpret_cast<const sockaddr*>(&addr), 0);
  // Bind errors such as EADDRINUSE may only show up in uv_listen.
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(t), kBacklog, on_connection);
  if (rc != 0) {
    close_own_handle(reinterpret_cast<uv_handle_t*>(t));
    return "cannot listen on " + host + " port " + std::to_string(port) + ": " + uv_strerror(rc);
  }
  listeners_.push_back(t);
  return "";
}

int Server::port() const {
  if (listeners_.empty()) return 0;
  sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(listeners_.front(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
}

void Server::stop_accepting() {
  for (uv_tcp_t* t : listeners_) close_own_handle(reinterpret_cast<uv_handle_t*>(t));
  listeners_.clear();
}

size_t Server::connection_count() const { return connections_.size(); }

void Server::on_connection(uv_stream_t* listener, int status) noexcept {
  auto* s = static_cast<Server*>(listener->data);
  if (s == nullptr) return;
  if (status < 0) {
    LOG_WARN("http: accept error: %s", uv_strerror(status));
    return;
  }
  try {
    s->accept_one(listener);
  } catch (...) {
    LOG_ERROR("http: out of memory accepting a connection");
  }
}

void Server::accept_one(uv_stream_t* listener) {
  const bool reject = active_ >= limits_.max_connections;
  if (shutting_down_ || (reject && rejecting_ >= kMaxRejecting)) {
    auto* t = new uv_tcp_t;
    uv_tcp_init(loop_, t);
    uv_accept(listener, reinterpret_cast<uv_stream_t*>(t));
    uv_close(reinterpret_cast<uv_handle_t*>(t), on_dropped_closed);
    return;
  }
  auto* c = new Connection(this, next_conn_id_++, reject);
  c->list_index_ = connections_.size();
  connections_.push_back(c);
  if (reject) ++rejecting_;
  else ++active_;
  c->start(listener);
}

void Server::connection_freed(Connection* c, bool rejecting) {
  const size_t i = c->list_index_;
  if (i < connections_.size() && connections_[i] == c) {
    Connection* last = connections_.back();
    connections_[i] = last;
    last->list_index_ = i;
    connections_.pop_back();
  }
  if (rejecting) --rejecting_;
  else --active_;
  maybe_finish_shutdown();  // may run done(), which may destroy *this: nothing after it
}

void Server::mark_dirty(Connection* c) {
  if (c->in_dirty_) return;
  c->in_dirty_ = true;
  dirty_.push_back(c);
}

void Server::forget_dirty(Connection* c) {
  auto it = std::find(dirty_.begin(), dirty_.end(), c);
  if (it != dirty_.end()) dirty_.erase(it);
  c->in_dirty_ = false;
}

void Server::on_prepare(uv_prepare_t* h) noexcept {
  auto* s = static_cast<Server*>(h->data);
  if (s == nullptr) return;
  // Connections are freed only in close callbacks, never during this loop phase, so the
  // pointers stay valid. Work done here may dirty other connections: repeat a few rounds so
  // nothing waits behind the coming poll.
  for (int round = 0; round < 8 && !s->dirty_.empty(); ++round) {
    s->dirty_work_.swap(s->dirty_);
    for (Connection* c : s->dirty_work_) {
      c->in_dirty_ = false;
      try {
        c->on_prepare();
      } catch (...) {
        c->close();
      }
    }
    s->dirty_work_.clear();
  }
}

void Server::shutdown(int64_t deadline_ms, std::function<void()> done) {
  if (shutting_down_) return;
  shutting_down_ = true;
  done_ = std::move(done);
  stop_accepting();
  // begin_drain() may start closing connections; they leave connections_ only in close
  // callbacks, so iterating here is safe.
  for (Connection* c : connections_) c->begin_drain();
  deadline_timer_ = new uv_timer_t;
  uv_timer_init(loop_, deadline_timer_);
  deadline_timer_->data = this;
  own_handles_.push_back(reinterpret_cast<uv_handle_t*>(deadline_timer_));
  uv_timer_start(deadline_timer_, on_shutdown_deadline, static_cast<uint64_t>(std::max<int64_t>(deadline_ms, 0)), 0);
  maybe_finish_shutdown();
}

void Server::on_shutdown_deadline(uv_timer_t* t) noexcept {
  auto* s = static_cast<Server*>(t->data);
  if (s == nullptr) return;
  if (!s->connections_.empty())
    LOG_WARN("http: shutdown deadline reached, closing %zu connection(s)", s->connections_.size());
  for (Connection* c : s->connections_) c->close();
}

void Server::close_own_handle(uv_handle_t* h) {
  if (!uv_is_closing(h)) uv_close(h, on_own_handle_closed);
}

void Server::on_own_handle_closed(uv_handle_t* h) noexcept {
  auto* s = static_cast<Server*>(h->data);
  if (s != nullptr) {
    auto it = std::find(s->own_handles_.begin(), s->own_handles_.end(), h);
    if (it != s->own_handles_.end()) s->own_handles_.erase(it);
  }
  free_handle(h);
  if (s != nullptr) s->maybe_finish_shutdown();  // may destroy *s
}

void Server::maybe_finish_shutdown() {
  if (!shutting_down_ || finished_ || !connections_.empty()) return;
  if (prepare_ != nullptr) {
    close_own_handle(reinterpret_cast<uv_handle_t*>(prepare_));
    prepare_ = nullptr;
  }
  if (deadline_timer_ != nullptr) {
    close_own_handle(reinterpret_cast<uv_handle_t*>(deadline_timer_));
    deadline_timer_ = nullptr;
  }
  if (!own_handles_.empty()) return;  // their close callbacks come back here
  finished_ = true;
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done();
}

}  // namespace aloha::http
