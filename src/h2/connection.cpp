#include "h2/connection.h"

#include <utility>

#include "core/log.h"
#include "net/connector.h"
#include "net/tls.h"

namespace aloha::h2 {

const char* conn_state_name(ConnState s) {
  switch (s) {
    case ConnState::resolving: return "resolving";
    case ConnState::connecting: return "connecting";
    case ConnState::handshaking: return "handshaking";
    case ConnState::connected: return "connected";
    case ConnState::draining: return "draining";
    case ConnState::closed: return "closed";
  }
  return "?";
}

Connection* Connection::create(uv_loop_t* loop, const net::TlsContext* tls, ConnectionOptions options,
                               ConnListener* listener) {
  auto* c = new Connection(loop, tls, std::move(options), listener);
  // The connector is started after construction so that its (asynchronous) callback always
  // finds a complete object.
  c->connector_ = net::Connector::start(loop, c->opt_.host, c->opt_.port, c->opt_.connect_timeout_ms,
      [c](int status, uv_tcp_t* tcp, const std::string& error) { c->on_connected(status, tcp, error); });
  c->connector_->set_on_resolved([c](size_t) {
    if (c->state_ == ConnState::resolving) c->state_ = ConnState::connecting;
  });
  return c;
}

Connection::Connection(uv_loop_t* loop, const net::TlsContext* tls, ConnectionOptions options,
                       ConnListener* listener)
    : loop_(loop), tls_ctx_(tls), opt_(std::move(options)), listener_(listener) {
  if (opt_.authority.empty())
    opt_.authority = opt_.port == 443 ? opt_.host : opt_.host + ":" + std::to_string(opt_.port);
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  ++open_handles_;
  uv_prepare_init(loop_, &flush_);
  flush_.data = this;
  ++open_handles_;
  session_ = std::make_unique<Session>(opt_.session);
  arm_timer(opt_.connect_timeout_ms * 4 + opt_.handshake_timeout_ms);  // overall set-up bound
}

Connection::~Connection() = default;

size_t Connection::free_slots() const {
  return state_ == ConnState::connected ? session_->free_slots() : 0;
}

size_t Connection::pending() const { return session_ ? session_->pending() : 0; }

uint64_t Connection::submit(H2Request&& request, Completion done) {
  if (state_ != ConnState::connected) return 0;
  if (request.authority.empty()) request.authority = opt_.authority;
  uint64_t id = session_->submit(std::move(request), std::move(done));
  if (id) schedule_pump();
  return id;
}

bool Connection::cancel(uint64_t request_id) {
  if (!session_) return false;
  bool found = session_->cancel(request_id);
  if (found && state_ != ConnState::closed) schedule_pump();
  return found;
}

void Connection::drain() {
  if (state_ == ConnState::closed || state_ == ConnState::draining) return;
  if (state_ != ConnState::connected) {
    close_with("");
    return;
  }
  state_ = ConnState::draining;
  session_->shutdown();
  pump();
  if (session_->pending() == 0) close_with("");
}

void Connection::arm_timer(int64_t ms) {
  if (state_ == ConnState::closed) return;
  uv_timer_start(&timer_, &Connection::timer_cb, static_cast<uint64_t>(ms < 0 ? 0 : ms), 0);
}

void Connection::timer_cb(uv_timer_t* t) noexcept {
  static_cast<Connection*>(t->data)->on_timer();
}

void Connection::on_timer() {
  uint64_t now = uv_now(loop_);
  switch (state_) {
    case ConnState::resolving:
    case ConnState::connecting:
    case ConnState::handshaking:
      close_with(std::string("timed out while ") + conn_state_name(state_));
      return;
    case ConnState::connected:
    case ConnState::draining: {
      // PING on idle (upstreams.md): a connection whose PING is not acked in time is dead even
      // if TCP has not noticed (NAT timeouts, half-open sockets).
      if (session_->ping_outstanding()) {
        if (now - ping_sent_ms_ >= static_cast<uint64_t>(opt_.ping_timeout_ms)) {
          LOG_WARN("h2 %s: PING not acknowledged within %lld ms", opt_.authority.c_str(),
                   static_cast<long long>(opt_.ping_timeout_ms));
          session_->ping_expired();
          close_with("ping timeout");
          return;
        }
        arm_timer(opt_.ping_timeout_ms - static_cast<int64_t>(now - ping_sent_ms_));
        return;
      }
      uint64_t last_read = stream_ != nullptr && stream_->last_read_ms() > last_read_ms_
                               ? stream_->last_read_ms() : last_read_ms_;
      uint64_t idle = now - last_read;
      int64_t next;
      if (idle >= static_cast<uint64_t>(opt_.ping_idle_ms)) {
        session_->ping();
        ping_sent_ms_ = now;
        pump();
        if (state_ == ConnState::closed) return;
        next = opt_.ping_timeout_ms;
      } else {
        next = opt_.ping_idle_ms - static_cast<int64_t>(idle);
      }
      // Until the burst buffers are given back the timer also wakes for that (a few times per
      // idle_release_ms at most: no per-request cost).
      if (opt_.idle_release_ms > 0 && !idle_released_) {
        uint64_t quiet = now - (last_read > last_active_ms_ ? last_read : last_active_ms_);
        if (quiet >= static_cast<uint64_t>(opt_.idle_release_ms)) {
          release_idle_buffers();
        } else if (opt_.idle_release_ms - static_cast<int64_t>(quiet) < next) {
          next = opt_.idle_release_ms - static_cast<int64_t>(quiet);
        }
      }
      arm_timer(next);
      return;
    }
    case ConnState::closed:
      return;
  }
}

void Connection::mark_active() {
  last_active_ms_ = uv_now(loop_);
  if (!idle_released_) return;
  // Busy again after a release: make sure the timer wakes in time for the next one (it may be
  // armed up to ping_idle_ms ahead). on_timer() recomputes every deadline, so waking early is
  // harmless, and a ping timeout due sooner keeps its time.
  idle_released_ = false;
  if (opt_.idle_release_ms <= 0 || state_ == ConnState::closed) return;
  uint64_t due = uv_timer_get_due_in(&timer_);
  if (due == 0 || due > static_cast<uint64_t>(opt_.idle_release_ms)) arm_timer(opt_.idle_release_ms);
}

void Connection::release_idle_buffers() {
  idle_released_ = true;
  // An idle PING round also counts as activity; its release then finds nothing worth a trim.
  const bool worth_it = idle_capacity() >= kReleaseWorthIt;
  std::string().swap(h2_out_);
  if (stream_) stream_->release_idle_buffers();
  session_->release_idle_memory();
  if (!worth_it) return;
  ++idle_releases_;
  if (listener_) listener_->on_conn_idle(this);
}

size_t Connection::idle_capacity() const {
  return h2_out_.capacity() + (stream_ ? stream_->idle_capacity() : 0) + (session_ ? session_->idle_capacity() : 0);
}

void Connection::on_connected(int status, uv_tcp_t* tcp, const std::string& error) {
  connector_ = nullptr;  // frees itself
  if (state_ == ConnState::closed) {
    net::close_tcp(tcp);
    return;
  }
  if (status != 0) {
    close_with(error.empty() ? std::string(uv_strerror(status)) : error);
    return;
  }
  net::TlsStreamOptions so;
  so.max_write_buffer = opt_.max_write_buffer;
  stream_ = net::TlsStream::attach(loop_, tcp, tls_ctx_, this, so);
  ++open_handles_;
  last_read_ms_ = uv_now(loop_);
  if (tls_ctx_) {
    state_ = ConnState::handshaking;
    arm_timer(opt_.handshake_timeout_ms);
  }
  stream_->start(opt_.host);  // a failure closes us through on_stream_error
  if (!tls_ctx_ && state_ != ConnState::closed) on_handshake_done();
}

void Connection::on_handshake_done() {
  const net::TlsSession* tls = stream_->tls();
  if (tls && tls->alpn() != "h2") {
    // RFC 9113 §3.2: HTTP/2 over TLS is negotiated with ALPN "h2"; anything else is not HTTP/2.
    close_with("tls: server did not select ALPN h2 (got '" + tls->alpn() + "')");
    return;
  }
  state_ = ConnState::connected;
  LOG_DEBUG("h2 %s: connected%s%s", opt_.authority.c_str(), tls ? " " : "",
            tls ? tls->protocol_version().c_str() : "");
  arm_timer(opt_.idle_release_ms > 0 && opt_.idle_release_ms < opt_.ping_idle_ms ? opt_.idle_release_ms
                                                                                  : opt_.ping_idle_ms);
  pump();  // connection preface + SETTINGS
  // Ready is reported once the server's SETTINGS arrived (after_session_events): before that its
  // stream limit is unknown and the pool would see a saturated connection and open another.
}

void Connection::on_stream_ready() {
  if (state_ == ConnState::handshaking) on_handshake_done();
}

void Connection::on_stream_eof(bool close_notify) {
  close_with(close_notify ? "connection closed by peer (close_notify)" : "connection closed by peer");
}

void Connection::on_stream_error(net::StreamFailure, const std::string& message) {
  close_with(message);
}

void Connection::on_stream_closed() {
  stream_ = nullptr;
  --open_handles_;
  handle_closed();
}

void Connection::on_stream_data(const char* data, size_t len) {
  if (state_ != ConnState::connected && state_ != ConnState::draining) return;
  mark_active();
  // Completions run inside feed() (after nghttp2 returned); they may submit more requests here.
  bool ok = false;
  try {
    ok = session_->feed(reinterpret_cast<const uint8_t*>(data), len);
  } catch (...) {
    close_with("internal error");
    return;
  }
  if (state_ == ConnState::closed) return;
  pump();  // flush ACKs / WINDOW_UPDATE / GOAWAY even when the session failed
  if (!ok) {
    close_with("http/2 protocol error from server");
    return;
  }
  after_session_events();
}

void Connection::after_session_events() {
  if (state_ == ConnState::closed) return;
  if (session_->goaway_received() && state_ == ConnState::connected) {
    state_ = ConnState::draining;
    LOG_INFO("h2 %s: server sent GOAWAY; draining", opt_.authority.c_str());
  }
  if (session_->finished()) {
    close_with(session_->failed() ? "http/2 session failed" : "");
    return;
  }
  if (!ready_reported_ && state_ == ConnState::connected && session_->settings_received()) {
    ready_reported_ = true;
    if (listener_) listener_->on_conn_ready(this);
    return;  // the pool dispatches on ready
  }
  if (listener_) listener_->on_conn_capacity(this);
}

void Connection::schedule_pump() {
  if (flush_scheduled_ || state_ == ConnState::closed) return;
  flush_scheduled_ = true;
  uv_prepare_start(&flush_, [](uv_prepare_t* h) noexcept {
    auto* self = static_cast<Connection*>(h->data);
    uv_prepare_stop(h);
    self->flush_scheduled_ = false;
    self->pump();
  });
}

void Connection::pump() {
  // Moves h2 output → TLS → socket. Re-entrant calls (a completion submitting more) only set a
  // flag; the outer loop picks the work up.
  if (pumping_) {
    pump_again_ = true;
    return;
  }
  if (!stream_ || (state_ != ConnState::connected && state_ != ConnState::draining)) return;
  mark_active();
  pumping_ = true;
  do {
    pump_again_ = false;
    while (session_->want_write() && stream_->can_write() && state_ != ConnState::closed) {
      // The stream encrypts what it is given at once, so one small scratch buffer serves every
      // pass: a batch goes through in pieces of about kPumpPiece (plus one frame) instead of
      // one buffer of the whole batch. Buffers past glibc's mmap threshold (64 KB) cost an
      // mmap, page faults on every page and a munmap per batch (~9 % of the bouncer's CPU with
      // 5 devices per notify); the stream still hands the socket one write for the batch.
      std::string& out = h2_out_;
      out.clear();
      if (out.capacity() < kPumpReserve) out.reserve(kPumpReserve);
      if (session_->take_output(out, kPumpPiece) == 0) break;
      if (!stream_->write(out, /*more=*/true)) {  // a failure has closed us through on_stream_error
        pumping_ = false;
        return;
      }
    }
  } while (pump_again_ && state_ != ConnState::closed);
  pumping_ = false;
  if (stream_ && state_ != ConnState::closed) stream_->flush();
  // A piece is at most kPumpPiece plus one frame (≤ 16 KB + 9 by default); a larger frame size
  // could have grown the scratch: keep only the usual capacity.
  if (h2_out_.capacity() > kPumpReserve) std::string().swap(h2_out_);
}

void Connection::close_with(const std::string& error) {
  if (state_ == ConnState::closed) return;
  ConnState was = state_;
  state_ = ConnState::closed;
  error_ = error;
  if (!error.empty())
    LOG_WARN("h2 %s: closing (%s): %s", opt_.authority.c_str(), conn_state_name(was), error.c_str());
  if (connector_) {
    connector_->cancel();
    connector_ = nullptr;
  }
  // Sends what is already queued (e.g. GOAWAY) and a close_notify on a best-effort basis.
  if (stream_) stream_->close();
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) noexcept {
    auto* self = static_cast<Connection*>(h->data);
    --self->open_handles_;
    self->handle_closed();
  });
  uv_prepare_stop(&flush_);
  flush_scheduled_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&flush_), [](uv_handle_t* h) noexcept {
    auto* self = static_cast<Connection*>(h->data);
    --self->open_handles_;
    self->handle_closed();
  });
  // Every request still open learns its fate now (connection_lost; request_sent tells the pool
  // whether a replay is safe). The object itself stays alive until the handles are closed.
  session_->terminate(FailureKind::connection_lost);
}

void Connection::handle_closed() {
  if (open_handles_ > 0) return;
  ConnListener* l = listener_;
  listener_ = nullptr;
  std::string err = error_;
  if (l) l->on_conn_closed(this, err);
  delete this;
}

}  // namespace aloha::h2
