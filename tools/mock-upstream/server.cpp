#include "server.h"

#include <algorithm>

#include "connection.h"

namespace aloha::mock {

Server::Server(uv_loop_t* loop, ServerOptions opts, const net::TlsContext* tls, Router& router,
               Stats& stats)
    : loop_(loop), opts_(opts), tls_(tls), router_(router), stats_(stats),
      read_buf_(new char[kReadBuf]) {
  check_ = new uv_check_t;
  uv_check_init(loop_, check_);
  check_->data = this;
  ++own_open_;
  // Flushing in the check phase (after poll) writes everything one loop iteration produced for a
  // connection in one go, like Redis' beforeSleep (architecture.md).
  uv_check_start(check_, on_check);
  // Timers run before poll; without this their output would wait for the next I/O event.
  prepare_ = new uv_prepare_t;
  uv_prepare_init(loop_, prepare_);
  prepare_->data = this;
  ++own_open_;
  uv_prepare_start(prepare_, on_prepare);
}

Server::~Server() {
  // shutdown() must have completed; handles still open here would dangle.
}

std::string Server::listen(const std::string& host, int port) {
  sockaddr_storage addr{};
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0)
    return "not an IP address: " + host;
  listener_ = new uv_tcp_t;
  uv_tcp_init(loop_, listener_);
  listener_->data = this;
  ++own_open_;
  int rv = uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rv == 0) rv = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 1024, on_connection);
  if (rv != 0) return std::string("listen on ") + host + ": " + uv_strerror(rv);
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return {};
}

void Server::on_connection(uv_stream_t* listener, int status) noexcept {
  auto* self = static_cast<Server*>(listener->data);
  if (status < 0 || self->shutting_down_) return;
  auto* c = new Connection(*self, self->next_id_++);
  if (!c->start(listener)) return;  // it frees itself in its close callbacks
  self->connections_.push_back(c);
  ++self->stats_.connections_accepted;
  ++self->stats_.connections_open;
  if (self->connections_.size() > self->opts_.max_connections) c->close();  // bound
}

void Server::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
  auto* c = static_cast<Connection*>(h->data);
  *buf = uv_buf_init(c->server_.read_buf_.get(), static_cast<unsigned>(kReadBuf));
}

void Server::mark_dirty(Connection* c) {
  if (c->in_dirty || c->closing()) return;
  c->in_dirty = true;
  dirty_.push_back(c);
}

void Server::on_check(uv_check_t* h) noexcept { static_cast<Server*>(h->data)->flush_dirty(); }

void Server::on_prepare(uv_prepare_t* h) noexcept {
  static_cast<Server*>(h->data)->flush_dirty();
}

void Server::flush_dirty() {
  // Connections are deleted only in close callbacks, which run in their own phase, so every
  // pointer in dirty_work_ stays valid during the loop even if flush() closes one.
  dirty_work_.swap(dirty_);
  for (Connection* c : dirty_work_) {
    c->in_dirty = false;
    c->flush();
  }
  dirty_work_.clear();
}

void Server::connection_freed(Connection* c) {
  auto it = std::find(connections_.begin(), connections_.end(), c);
  if (it != connections_.end()) {
    *it = connections_.back();
    connections_.pop_back();
    if (stats_.connections_open > 0) --stats_.connections_open;
  }
  if (c->in_dirty) dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), c), dirty_.end());
  maybe_done();
}

void Server::shutdown(std::function<void()> done) {
  if (shutting_down_) return;
  shutting_down_ = true;
  done_ = std::move(done);
  if (listener_ != nullptr) uv_close(reinterpret_cast<uv_handle_t*>(listener_), on_own_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(check_), on_own_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(prepare_), on_own_closed);
  std::vector<Connection*> all = connections_;
  for (Connection* c : all) c->close();
  maybe_done();
}

void Server::on_own_closed(uv_handle_t* h) noexcept {
  auto* self = static_cast<Server*>(h->data);
  if (h == reinterpret_cast<uv_handle_t*>(self->listener_)) {
    delete self->listener_;
    self->listener_ = nullptr;
  } else if (h == reinterpret_cast<uv_handle_t*>(self->check_)) {
    delete self->check_;
    self->check_ = nullptr;
  } else {
    delete self->prepare_;
    self->prepare_ = nullptr;
  }
  --self->own_open_;
  self->maybe_done();
}

void Server::maybe_done() {
  if (!shutting_down_ || own_open_ > 0 || !connections_.empty() || !done_) return;
  auto done = std::move(done_);
  done_ = nullptr;
  done();
}

}  // namespace aloha::mock
