// Connection: HTTP/1.1 keep-alive and pipelining (RFC 9112 §9.3) over one uv_tcp_t.
//
// Flow: a read is parsed request by request; each request takes a slot in a fixed ring and goes to
// the handler with a Reply naming that slot. Replies may arrive in any order; responses leave in
// slot order (RFC 9112 §9.3.2). Everything produced while handling one read is written with one
// uv_try_write (falling back to one uv_write), other replies are flushed by the server's prepare
// handle right before the loop polls again, so pipelined responses are coalesced.
//
// Bounds: at most kMaxPipelined unanswered requests and kOutputHighWater bytes of output; beyond
// either, reading stops (uv_read_stop) and at most one read's unparsed bytes wait in stash_.
//
// A response that ends the connection (error, Connection: close, HTTP/1.0, shutdown) is followed
// by a FIN (uv_shutdown) and a short "lingering close": input is read and dropped until the client
// closes or kLingerMs pass, so unread request bytes do not make the kernel send a RST that could
// destroy the response before the client reads it (RFC 9112 §9.6).
#include "http/connection.h"

#include <algorithm>
#include <cstring>
#include <exception>

#include "core/log.h"

namespace aloha::http {

namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
constexpr const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

Connection::Connection(Server* server, uint64_t id, bool rejecting)
    : server_(server),
      id_(id),
      rejecting_(rejecting),
      anchor_(std::make_shared<detail::ConnAnchor>()),
      parser_(ParserLimits{server->limits_.max_header_bytes, server->limits_.max_headers,
                           server->limits_.max_body_bytes}),
      slots_(rejecting ? 1 : kInitialSlots),
      max_slots_(rejecting ? 1 : kMaxPipelined + 1) {
  anchor_->conn = this;
}

Connection::~Connection() {
  if (server_ != nullptr) {
    if (in_dirty_) server_->forget_dirty(this);
    server_->connection_freed(this, rejecting_);
  }
}

void Connection::start(uv_stream_t* listener) {
  uv_loop_t* loop = server_->loop_;
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
  ++handles_open_;
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  ++handles_open_;
  const int rc = uv_accept(listener, reinterpret_cast<uv_stream_t*>(&tcp_));
  if (rc != 0) {
    LOG_WARN("http: accept failed: %s", uv_strerror(rc));
    close();
    return;
  }
  uv_tcp_nodelay(&tcp_, 1);  // small responses must not wait for delayed ACKs

  sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    char ip[64] = {0};
    if (ss.ss_family == AF_INET6) {
      const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&ss);
      uv_ip6_name(a6, ip, sizeof ip);
      remote_ = std::string("[") + ip + "]:" + std::to_string(ntohs(a6->sin6_port));
    } else {
      const auto* a4 = reinterpret_cast<const sockaddr_in*>(&ss);
      uv_ip4_name(a4, ip, sizeof ip);
      remote_ = std::string(ip) + ":" + std::to_string(ntohs(a4->sin_port));
    }
  }

  if (rejecting_) {
    // Over max_connections: answer at once, without reading a request (architecture.md: a
    // bound that is hit gives a clear answer, here 503).
    LOG_WARN("http: connection limit reached, refusing %s", remote_.c_str());
    queue_error(503, "SERVICE_UNAVAILABLE", "Too many connections, try again later");
    flush();
    return;
  }
  if (uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read) != 0) {
    close();
    return;
  }
  reading_ = true;
  set_deadline(TimerKind::fresh, server_->limits_.header_timeout_ms);
}

void Connection::close() {
  if (state_ == State::closing) return;
  state_ = State::closing;
  anchor_->conn = nullptr;  // later Reply::send() calls become no-ops
  if (handles_open_ == 0) {
    delete this;
    return;
  }
  auto* tcp = reinterpret_cast<uv_handle_t*>(&tcp_);
  auto* timer = reinterpret_cast<uv_handle_t*>(&timer_);
  if (!uv_is_closing(tcp)) uv_close(tcp, on_close);
  if (!uv_is_closing(timer)) uv_close(timer, on_close);
}

void Connection::on_close(uv_handle_t* h) noexcept {
  auto* c = static_cast<Connection*>(h->data);
  if (--c->handles_open_ == 0) delete c;
}

void Connection::begin_drain() {
  if (state_ != State::open) return;
  draining_ = true;
  const ParsePhase ph = parser_.phase();
  const bool between_requests = ph == ParsePhase::idle || ph == ParsePhase::done;
  if (count_ == 0 && between_requests) {
    if (!write_in_flight_ && out_.empty()) {
      close();
      return;
    }
    no_more_requests_ = true;
    close_after_write_ = true;
  }
  // Otherwise the last in-flight response carries Connection: close (move_ready_to_output), and a
  // request still arriving is marked close_after when it completes (dispatch).
}

// ---- reading -------------------------------------------------------------------------------

void Connection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
  auto* c = static_cast<Connection*>(h->data);
  if (c->server_ == nullptr) {
    *buf = uv_buf_init(nullptr, 0);  // libuv reports UV_ENOBUFS; we are closing anyway
    return;
  }
  *buf = uv_buf_init(c->server_->read_buf_.get(), kReadBufferSize);
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* c = static_cast<Connection*>(s->data);
  try {
    c->handle_read(nread, buf);
  } catch (...) {
    LOG_ERROR("http: unexpected exception on connection %llu", static_cast<unsigned long long>(c->id_));
    c->close();
  }
}

void Connection::handle_read(ssize_t nread, const uv_buf_t* buf) {
  if (state_ == State::closing || nread == 0) return;
  if (nread < 0) {
    if (nread != UV_EOF || state_ == State::lingering) {
      close();
      return;
    }
    // Half-closed by the client: complete requests still get answers (RFC 9112 §9.6 lets a
    // client close its sending side), a partial one can never complete.
    eof_ = true;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
    no_more_requests_ = true;
    if (count_ == 0 && !write_in_flight_ && out_.empty()) close();
    return;
  }
  if (state_ == State::lingering) return;  // lingering close: drop input
  if (server_ == nullptr) return;
  const size_t n = static_cast<size_t>(nread);
  const size_t used = process(buf->base, n);
  if (state_ == State::closing) return;
  if (used < n && !no_more_requests_) {
    // A bound was hit: keep the rest and stop reading until responses drain.
    stash_.assign(buf->base + used, n - used);
    read_paused_ = true;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
  }
  flush();
  update_timer();
}

bool Connection::can_process() const {
  return count_ < kMaxPipelined && buffered_output() < kOutputHighWater;
}

size_t Connection::process(const char* data, size_t len) {
  processing_ = true;
  size_t off = 0;
  while (off < len && state_ == State::open && !no_more_requests_ && can_process()) {
    size_t used = 0;
    const ParseEvent ev = parser_.feed(data + off, len - off, used);
    off += used;
    if (ev == ParseEvent::need_more) break;
    if (ev == ParseEvent::expect_continue) {
      // RFC 9110 §10.1.1: the client waits for 100 before sending the body, unless the body is
      // already here. It must follow every earlier response, so it may have to wait.
      if (off == len) {
        if (count_ == 0) out_.append(kContinue, sizeof kContinue - 1);
        else continue_owed_ = true;
      }
      continue;
    }
    if (ev == ParseEvent::error) {
      const ParseError& e = parser_.error();
      LOG_DEBUG("http: %s: request refused (%d, %s)", remote_.c_str(), e.status, e.detail);
      queue_error(e.status, e.code, e.msg);
      break;
    }
    dispatch(parser_.take_request());
  }
  processing_ = false;
  return off;
}

// The ring holds max_slots_ responses at most, but a client that does not pipeline only ever uses
// one or two: allocating all of them per connection cost ~7 KB each (256 connections: 1.8 MB).
void Connection::grow_slots() {
  const size_t n = std::min(slots_.size() * 2, max_slots_);
  std::vector<Slot> grown(n);
  for (size_t i = 0; i < count_; ++i) grown[i] = std::move(slots_[(head_ + i) % slots_.size()]);
  slots_.swap(grown);
  head_ = 0;
}

Connection::Slot& Connection::push_slot() {
  if (count_ == slots_.size()) grow_slots();  // callers check count_ < max_slots_
  Slot& s = slots_[(head_ + count_) % slots_.size()];
  ++count_;
  s.seq = next_seq_++;
  s.ready = false;
  s.close_after = false;
  s.head = false;
  s.http10_keep_alive = false;
  // Only the access log reads it: no clock read per request when it is off.
  s.start_ns = log_enabled(LogLevel::info) ? uv_hrtime() : 0;
  s.method.clear();
  s.path.clear();
  return s;
}

void Connection::dispatch(Request&& req) {
  Slot& s = push_slot();
  const bool keep = parser_.keep_alive() && !draining_;
  s.close_after = !keep;
  s.head = req.method == "HEAD";
  s.http10_keep_alive = keep && parser_.http_minor() == 0;
  if (log_enabled(LogLevel::info)) {
    s.method = req.method;
    s.path = req.path;
  }
  const uint64_t seq = s.seq;
  if (!keep) no_more_requests_ = true;
  continue_owed_ = false;  // its body has arrived: no 100 needed any more
  req.remote = remote_;
  try {
    server_->handler_(std::move(req), Reply(anchor_, seq));
  } catch (...) {
    // The handler's bug fails only this request (architecture.md); no detail in the log since
    // exception texts may quote request content.
    LOG_ERROR("http: handler threw an exception");
    on_reply(seq, make_error_response(500, "INTERNAL_SERVER_ERROR", "Internal server error"));
  }
}

void Connection::queue_error(int status, const char* code, const char* msg) {
  if (count_ >= max_slots_) {
    close();
    return;
  }
  Slot& s = push_slot();
  s.ready = true;
  s.close_after = true;
  s.resp = make_error_response(status, code, msg);
  no_more_requests_ = true;
  continue_owed_ = false;
  if (reading_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    reading_ = false;
  }
}

// ---- replies and writing -------------------------------------------------------------------

void Connection::on_reply(uint64_t seq, Response&& r) {
  if (state_ == State::closing) return;
  const uint64_t first = count_ > 0 ? slots_[head_].seq : next_seq_;
  if (seq < first || seq >= first + count_) {
    LOG_WARN("http: reply sent twice or for an unknown request");
    return;
  }
  Slot& s = slots_[(head_ + (seq - first)) % slots_.size()];
  if (s.ready) {
    LOG_WARN("http: reply sent twice");
    return;
  }
  s.resp = std::move(r);
  s.ready = true;
  // Inside process() the read callback flushes once at its end; otherwise the server's prepare
  // handle flushes before the loop next blocks, coalescing replies of one loop iteration.
  if (!processing_ && server_ != nullptr) server_->mark_dirty(this);
}

void Connection::move_ready_to_output() {
  while (count_ > 0 && slots_[head_].ready) {
    Slot& s = slots_[head_];
    const ParsePhase ph = parser_.phase();
    const bool last_while_draining =
        draining_ && count_ == 1 && (ph == ParsePhase::idle || ph == ParsePhase::done);
    const bool close_conn = s.close_after || last_while_draining || (eof_ && count_ == 1);
    const ConnectionHeader ch = close_conn ? ConnectionHeader::close
                                : s.http10_keep_alive ? ConnectionHeader::keep_alive
                                                      : ConnectionHeader::none;
    append_response(out_, s.resp, s.head, ch);
    log_access(s);
    // Move-assigning an empty Response would keep the body's heap buffer in the slot (libstdc++
    // reuses a string's capacity when the source is short): moving it out frees it.
    { Response sent(std::move(s.resp)); }
    s.resp = Response{};
    head_ = (head_ + 1) % slots_.size();
    --count_;
    if (close_conn) {
      close_after_write_ = true;
      no_more_requests_ = true;
      count_ = 0;  // nothing can follow a closing response
      break;
    }
  }
  if (count_ == 0 && continue_owed_ && !close_after_write_ && parser_.phase() == ParsePhase::body) {
    out_.append(kContinue, sizeof kContinue - 1);
    continue_owed_ = false;
  }
}

void Connection::log_access(const Slot& s) const {
  if (!log_enabled(LogLevel::info)) return;
  const double ms = static_cast<double>(uv_hrtime() - s.start_ns) / 1e6;
  // Path only: the query string and body may hold tokens or content (api.md, log.h).
  LOG_INFO("access %s \"%s %s\" %d %.2fms server=%s", remote_.c_str(),
           s.method.empty() ? "-" : s.method.c_str(), s.path.empty() ? "-" : s.path.c_str(),
           s.resp.status, ms, s.resp.log_server.empty() ? "-" : s.resp.log_server.c_str());
}

void Connection::flush() {
  if (state_ == State::closing) return;
  move_ready_to_output();
  if (write_in_flight_) return;
  if (out_.empty()) {
    after_output_drained();
    return;
  }
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  int n = uv_try_write(stream, &b, 1);
  if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
  if (n < 0) {
    LOG_DEBUG("http: %s: write failed: %s", remote_.c_str(), uv_strerror(n));
    close();
    return;
  }
  if (static_cast<size_t>(n) == out_.size()) {
    out_.clear();
    release_output_buffers();
    after_output_drained();
    return;
  }
  // The socket is full: hand the rest to uv_write; new output collects in out_ meanwhile.
  write_buf_.swap(out_);
  out_.clear();
  write_off_ = static_cast<size_t>(n);
  b = uv_buf_init(write_buf_.data() + write_off_, static_cast<unsigned>(write_buf_.size() - write_off_));
  if (uv_write(&write_req_, stream, &b, 1, on_write) != 0) {
    close();
    return;
  }
  write_in_flight_ = true;
}

void Connection::on_write(uv_write_t* req, int status) noexcept {
  auto* c = static_cast<Connection*>(req->handle->data);
  c->write_in_flight_ = false;
  c->write_buf_.clear();
  c->write_off_ = 0;
  c->release_output_buffers();
  if (c->state_ == State::closing) return;
  if (status < 0) {
    c->close();
    return;
  }
  c->flush();
  c->update_timer();
}

// A burst of pipelined responses may have grown the output buffers up to kOutputHighWater; an
// idle keep-alive connection must not keep that much. Usual responses fit in what is kept, so the
// steady state allocates nothing here.
void Connection::release_output_buffers() {
  if (out_.empty() && out_.capacity() > kKeepOutputCapacity) std::string().swap(out_);
  if (!write_in_flight_ && write_buf_.capacity() > kKeepOutputCapacity) std::string().swap(write_buf_);
}

void Connection::after_output_drained() {
  if (close_after_write_) {
    start_linger();
    return;
  }
  if (eof_ && count_ == 0) {
    close();
    return;
  }
  if (draining_ && count_ == 0) {
    const ParsePhase ph = parser_.phase();
    if (ph == ParsePhase::idle || ph == ParsePhase::done) {
      close();
      return;
    }
  }
  if (read_paused_ && can_process() && server_ != nullptr) server_->mark_dirty(this);
}

void Connection::on_prepare() {
  if (state_ == State::closing) return;
  if (read_paused_ && state_ == State::open && can_process()) resume_reading();
  flush();
  update_timer();
}

void Connection::resume_reading() {
  if (!stash_.empty() && !no_more_requests_) {
    const size_t used = process(stash_.data(), stash_.size());
    if (state_ == State::closing) return;
    stash_.erase(0, used);
    if (!stash_.empty() && !no_more_requests_) return;  // a bound again: stay paused
  }
  std::string().swap(stash_);  // up to one read (64 KB): not kept while the connection idles
  read_paused_ = false;
  if (!reading_ && !eof_ && state_ == State::open && !no_more_requests_) {
    if (uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read) != 0) {
      close();
      return;
    }
    reading_ = true;
  }
}

void Connection::start_linger() {
  if (state_ != State::open) return;
  if (eof_) {
    close();
    return;
  }
  state_ = State::lingering;
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (uv_shutdown(&shutdown_req_, stream, on_shutdown) != 0) {
    close();
    return;
  }
  if (!reading_) {
    if (uv_read_start(stream, on_alloc, on_read) != 0) {
      close();
      return;
    }
    reading_ = true;
  }
  set_deadline(TimerKind::linger, kLingerMs);
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) noexcept {
  auto* c = static_cast<Connection*>(req->handle->data);
  if (status < 0 && c->state_ != State::closing) c->close();
}

// ---- deadlines -----------------------------------------------------------------------------
// One uv_timer_t per connection, driven lazily: moving a deadline later does not touch the timer
// heap; the timer fires at the old time and re-arms for the rest (cheap on the hot path, where
// every request moves the deadline).

void Connection::update_timer() {
  if (state_ != State::open || server_ == nullptr) return;
  const ServerLimits& l = server_->limits_;
  const uint64_t msg = parser_.messages_begun();
  auto want = [&](TimerKind k, int64_t ms) {
    if (timer_kind_ != k || timer_msg_ != msg) set_deadline(k, ms);
  };
  if (write_in_flight_) {
    want(TimerKind::output, l.idle_timeout_ms);  // the client is not reading our responses
    return;
  }
  if (no_more_requests_ || close_after_write_) {
    timer_kind_ = TimerKind::none;  // waiting for the handler; the flush then lingers or closes
    return;
  }
  switch (parser_.phase()) {
    case ParsePhase::headers:
      want(TimerKind::headers, l.header_timeout_ms);
      return;
    case ParsePhase::body:
      want(TimerKind::body, l.body_timeout_ms);
      return;
    case ParsePhase::idle:
    case ParsePhase::done:
      if (count_ > 0) {
        timer_kind_ = TimerKind::none;  // a request is with the handler
      } else if (msg == 0 && timer_kind_ == TimerKind::fresh) {
        // still waiting for the first byte of the first request
      } else {
        want(TimerKind::idle, l.idle_timeout_ms);
      }
      return;
  }
}

void Connection::set_deadline(TimerKind kind, int64_t ms) {
  if (ms < 0) ms = 0;
  timer_kind_ = kind;
  timer_msg_ = parser_.messages_begun();
  const uint64_t now = uv_now(tcp_.loop);
  deadline_ = now + static_cast<uint64_t>(ms);
  if (!timer_armed_ || timer_due_ > deadline_) {
    uv_timer_start(&timer_, on_timer, static_cast<uint64_t>(ms), 0);
    timer_armed_ = true;
    timer_due_ = deadline_;
  }
}

void Connection::on_timer(uv_timer_t* t) noexcept {
  auto* c = static_cast<Connection*>(t->data);
  c->timer_armed_ = false;
  if (c->state_ == State::closing || c->timer_kind_ == TimerKind::none) return;
  const uint64_t now = uv_now(t->loop);
  if (now < c->deadline_) {
    uv_timer_start(&c->timer_, on_timer, c->deadline_ - now, 0);
    c->timer_armed_ = true;
    c->timer_due_ = c->deadline_;
    return;
  }
  try {
    c->on_timeout();
  } catch (...) {
    c->close();
  }
}

void Connection::on_timeout() {
  const TimerKind kind = timer_kind_;
  timer_kind_ = TimerKind::none;
  switch (kind) {
    case TimerKind::headers:
    case TimerKind::body:
      // A slow client (RFC 9110 §15.5.9): tell it, then close.
      LOG_DEBUG("http: %s: request timed out in %s", remote_.c_str(),
                kind == TimerKind::headers ? "headers" : "body");
      queue_error(408, "REQUEST_TIMEOUT", "Request timed out");
      flush();
      update_timer();
      return;
    case TimerKind::fresh:
    case TimerKind::idle:
    case TimerKind::output:
    case TimerKind::linger:
      close();  // idle keep-alive (RFC 9112 §9.5), stuck reader, or lingering finished
      return;
    case TimerKind::none:
      return;
  }
}

// ---- Reply ---------------------------------------------------------------------------------

void Reply::send(Response&& r) const {
  if (anchor_ == nullptr || anchor_->conn == nullptr) return;
  anchor_->conn->on_reply(seq_, std::move(r));
}

bool Reply::connection_alive() const {
  return anchor_ != nullptr && anchor_->conn != nullptr && !anchor_->conn->closing();
}

}  // namespace aloha::http
