#include "connection.h"

#include <cstdio>
#include <cstring>

#include "core/log.h"
#include "server.h"

namespace aloha::mock {

namespace {
constexpr size_t kFlushBytes = 1 << 20;     // per socket write; more waits for the next flush
constexpr size_t kMaxPooledStreams = 1024;  // free Stream objects kept for reuse
constexpr int32_t kStreamWindow = 1 << 20;  // per-stream receive window (RFC 9113 §6.9.2)
constexpr int32_t kConnWindow = 1 << 24;    // connection receive window

nghttp2_nv make_nv(const char* name, size_t name_len, const std::string& value) {
  // Names are literals (no copy); values are copied by nghttp2 (default flags on the value).
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name_len,
                    value.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME};
}
#define NV(lit, value) make_nv(lit, sizeof(lit) - 1, value)
}  // namespace

Connection::Connection(Server& server, uint64_t id) : server_(server), id_(id) {
  write_req_.data = this;
}

Connection::~Connection() {
  if (h2_ != nullptr) nghttp2_session_del(h2_);  // frees nghttp2's streams without callbacks
  for (Stream* s : live_) {
    server_.stats_.stream_closed();
    delete s;
  }
}

bool Connection::start(uv_stream_t* listener) {
  uv_loop_t* loop = listener->loop;
  uv_tcp_init(loop, &tcp_);
  tcp_.data = this;
  ++open_handles_;
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  ++open_handles_;
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0) {
    close();
    return false;
  }
  // Many small frames go out per loop iteration already coalesced; Nagle would only add latency.
  uv_tcp_nodelay(&tcp_, 1);
  if (server_.tls_ != nullptr) tls_ = std::make_unique<net::TlsSession>(*server_.tls_);

  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  int rv = nghttp2_session_server_new(&h2_, cbs, this);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    h2_ = nullptr;
    close();
    return false;
  }
  // Like APNs: one stream until the first token-auth success (upstreams.md), then max_streams.
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, server_.opts_.initial_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16 * 1024},
  };
  nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  nghttp2_session_set_local_window_size(h2_, NGHTTP2_FLAG_NONE, 0, kConnWindow);
  streams_raised_ = server_.opts_.initial_streams >= server_.opts_.max_streams;

  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), Server::on_alloc, on_read);
  server_.mark_dirty(this);  // server preface (SETTINGS); with TLS it waits for the handshake
  return true;
}

void Connection::close() {
  if (closing_) return;
  closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
}

void Connection::on_closed(uv_handle_t* h) noexcept {
  auto* self = static_cast<Connection*>(h->data);
  if (--self->open_handles_ > 0) return;
  self->server_.connection_freed(self);
  delete self;
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<Connection*>(s->data);
  if (self->closing_) return;
  if (nread < 0) {  // EOF or error: the client is gone, nothing left to answer
    self->close();
    return;
  }
  if (nread > 0) self->handle_input(buf->base, static_cast<size_t>(nread));
}

void Connection::handle_input(const char* data, size_t len) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(data);
  size_t n = len;
  if (tls_) {
    plain_in_.clear();
    if (!tls_->feed(data, len) || tls_->read(plain_in_) == net::TlsStatus::error) {
      LOG_DEBUG("mock: connection %llu: TLS failed: %s", static_cast<unsigned long long>(id_),
                tls_->error().c_str());
      close();
      return;
    }
    if (!tls_checked_ && tls_->handshake_done()) {
      tls_checked_ = true;
      // RFC 9113 §3.2: h2 over TLS is negotiated with ALPN; a client that negotiated something
      // else is not speaking HTTP/2. No ALPN at all is tolerated (prior-knowledge clients).
      if (!tls_->alpn().empty() && tls_->alpn() != "h2") {
        close();
        return;
      }
      cert_verified_ = tls_->peer_certificate_verified();
    }
    p = reinterpret_cast<const uint8_t*>(plain_in_.data());
    n = plain_in_.size();
  }
  if (n > 0) {
    ssize_t rv = nghttp2_session_mem_recv(h2_, p, n);
    if (rv < 0) {
      LOG_DEBUG("mock: connection %llu: h2 error: %s", static_cast<unsigned long long>(id_),
                nghttp2_strerror(static_cast<int>(rv)));
      close();
      return;
    }
  }
  // nghttp2 has returned: now it is safe to submit responses (architecture.md).
  process_completed();
  if (closing_) return;
  if (drop_requested_ || (tls_ && tls_->peer_closed())) {
    close();
    return;
  }
  server_.mark_dirty(this);
}

Connection::Stream* Connection::stream(int32_t id) {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(h2_, id));
}

Connection::Stream* Connection::acquire_stream() {
  Stream* s;
  if (!free_streams_.empty()) {
    s = free_streams_.back().release();
    free_streams_.pop_back();
  } else {
    s = new Stream();
  }
  s->slot = live_.size();
  live_.push_back(s);
  return s;
}

void Connection::release_stream(Stream* s) {
  // O(1) removal from live_: move the last one into this slot.
  live_[s->slot] = live_.back();
  live_[s->slot]->slot = s->slot;
  live_.pop_back();
  s->req.clear();
  s->reply.clear();
  s->body_off = 0;
  // Pooled objects keep their capacity, but not a large request body's (bounds pool memory).
  if (s->req.body.capacity() > 8 * 1024) std::string().swap(s->req.body);
  if (free_streams_.size() < kMaxPooledStreams)
    free_streams_.emplace_back(s);
  else
    delete s;
}

int Connection::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* ud) noexcept {
  auto* self = static_cast<Connection*>(ud);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Stream* s = self->acquire_stream();
  s->id = frame->hd.stream_id;
  nghttp2_session_set_stream_user_data(self->h2_, s->id, s);
  ++self->open_streams_;
  self->server_.stats_.stream_opened(self->open_streams_);
  ++self->started_streams_;
  const uint32_t after = self->server_.opts_.goaway_after;
  if (after > 0 && self->started_streams_ == after && self->goaway_last_id_ < 0) {
    // --goaway-after N: streams up to this one are processed, later ones are not (RFC 9113
    // §6.8). Submitted after mem_recv returns.
    self->goaway_last_id_ = s->id;
    self->goaway_pending_ = true;
    self->goaway_debug_.clear();
  }
  return 0;
}

int Connection::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                          size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                          void* ud) noexcept {
  auto* self = static_cast<Connection*>(ud);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Stream* s = self->stream(frame->hd.stream_id);
  if (s == nullptr) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":method")
    s->req.method.assign(v);
  else if (n == ":path")
    s->req.path.assign(v);
  else if (n.empty() || n[0] != ':')  // other pseudo-headers (:scheme, :authority) unused
    s->req.add_header(n, v);
  return 0;
}

int Connection::on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                              size_t len, void* ud) noexcept {
  auto* self = static_cast<Connection*>(ud);
  if (Stream* s = self->stream(stream_id)) s->req.add_body(data, len);
  return 0;
}

int Connection::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) noexcept {
  auto* self = static_cast<Connection*>(ud);
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
      self->stream(frame->hd.stream_id) != nullptr)
    self->completed_.push_back(frame->hd.stream_id);  // bounded by the open streams
  return 0;
}

int Connection::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t, void* ud) noexcept {
  auto* self = static_cast<Connection*>(ud);
  Stream* s = self->stream(stream_id);
  if (s == nullptr) return 0;
  nghttp2_session_set_stream_user_data(self->h2_, stream_id, nullptr);
  self->release_stream(s);
  --self->open_streams_;
  self->server_.stats_.stream_closed();
  return 0;
}

ssize_t Connection::read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                              uint32_t* data_flags, nghttp2_data_source* source, void*) noexcept {
  auto* s = static_cast<Stream*>(source->ptr);
  size_t left = s->reply.body.size() - s->body_off;
  size_t n = left < length ? left : length;
  std::memcpy(buf, s->reply.body.data() + s->body_off, n);
  s->body_off += n;
  if (s->body_off == s->reply.body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

void Connection::process_completed() {
  if (goaway_pending_) {
    // First, so the client learns about the GOAWAY before the answers and resets that follow.
    goaway_pending_ = false;
    submit_goaway(goaway_last_id_, goaway_debug_);
  }
  for (int32_t id : completed_) {
    Stream* s = stream(id);
    if (s == nullptr) continue;
    if (goaway_last_id_ >= 0 && id > goaway_last_id_) {
      // Above last-stream-id: not processed. nghttp2 closes it with REFUSED_STREAM once the GOAWAY
      // is sent; say so explicitly in case it already was.
      nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      server_.stats_.count_outcome("refused_after_goaway");
      continue;
    }
    dispatch(s);
    if (drop_requested_) break;
  }
  completed_.clear();
}

void Connection::dispatch(Stream* s) {
  s->req.client_cert_verified = cert_verified_;
  s->reply.clear();
  const Router& router = server_.router_;
  size_t route = router.find(s->req.path);
  server_.stats_.count_route(route);
  if (route == Router::npos) {
    server_.stats_.count_outcome("BadPath");
    s->reply.status = 404;
    s->reply.content_type = "application/json";
    s->reply.body = reason_json("BadPath");
  } else {
    router.handler(route)->handle(s->req, s->reply);
  }
  if (s->reply.action == Action::respond && s->reply.delay_ms > 0) {
    // +1: loop time is whole milliseconds, truncated, so this keeps the delay a lower bound.
    pending_.push({uv_now(tcp_.loop) + static_cast<uint64_t>(s->reply.delay_ms) + 1, s->id});
    arm_timer();
    return;
  }
  execute(s);
}

void Connection::execute(Stream* s) {
  Reply& r = s->reply;
  switch (r.action) {
    case Action::respond: {
      char status[8];
      std::snprintf(status, sizeof status, "%d", r.status);
      const std::string status_str(status);
      const std::string length = std::to_string(r.body.size());
      nghttp2_nv nva[5];
      size_t n = 0;
      nva[n++] = NV(":status", status_str);
      if (!r.apns_id.empty()) nva[n++] = NV("apns-id", r.apns_id);
      if (!r.content_type.empty()) nva[n++] = NV("content-type", r.content_type);
      if (!r.retry_after.empty()) nva[n++] = NV("retry-after", r.retry_after);
      if (!r.body.empty()) nva[n++] = NV("content-length", length);
      nghttp2_data_provider prd{};
      prd.source.ptr = s;
      prd.read_callback = read_body;
      int rv = nghttp2_submit_response(h2_, s->id, nva, n, r.body.empty() ? nullptr : &prd);
      if (rv == 0) server_.stats_.count_status(r.status);
      if (r.token_auth_success && !streams_raised_) {
        // APNs raises the limit after the first successful token-auth request (upstreams.md).
        streams_raised_ = true;
        const nghttp2_settings_entry iv{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                        server_.opts_.max_streams};
        nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, &iv, 1);
      }
      return;
    }
    case Action::reset_stream:
      nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
      return;
    case Action::drop_connection:
      drop_requested_ = true;  // the caller closes once it is out of the loop over requests
      return;
    case Action::hang:
      return;  // open until the client resets it or the connection ends
    case Action::goaway: {
      // This stream and every later one are unprocessed: last-stream-id is the previous client
      // stream (client streams are odd, RFC 9113 §5.1.1).
      int32_t last = s->id >= 3 ? s->id - 2 : 0;
      if (goaway_last_id_ < 0 || last < goaway_last_id_) goaway_last_id_ = last;
      submit_goaway(goaway_last_id_, r.goaway_debug);
      return;
    }
  }
}

void Connection::submit_goaway(int32_t last_id, const std::string& debug) {
  nghttp2_submit_goaway(h2_, NGHTTP2_FLAG_NONE, last_id, NGHTTP2_NO_ERROR,
                        reinterpret_cast<const uint8_t*>(debug.data()), debug.size());
  if (goaway_at_ == 0) {
    goaway_at_ = uv_now(tcp_.loop);
    arm_timer();
  }
}

void Connection::arm_timer() {
  if (closing_) return;
  uint64_t due = UINT64_MAX;
  if (!pending_.empty()) due = pending_.top().due;
  if (goaway_at_ != 0) {
    uint64_t deadline = goaway_at_ + static_cast<uint64_t>(server_.opts_.goaway_close_ms);
    if (deadline < due) due = deadline;
  }
  if (due == UINT64_MAX) return;
  uint64_t now = uv_now(tcp_.loop);
  uv_timer_start(&timer_, on_timer, due > now ? due - now : 0, 0);
}

void Connection::on_timer(uv_timer_t* t) noexcept {
  static_cast<Connection*>(t->data)->fire_due();
}

void Connection::fire_due() {
  if (closing_) return;
  uint64_t now = uv_now(tcp_.loop);
  while (!pending_.empty() && pending_.top().due <= now) {
    int32_t id = pending_.top().stream_id;
    pending_.pop();
    Stream* s = stream(id);  // null if the client reset it meanwhile
    if (s == nullptr || (goaway_last_id_ >= 0 && id > goaway_last_id_)) continue;
    execute(s);
  }
  if (goaway_at_ != 0 && now >= goaway_at_ + static_cast<uint64_t>(server_.opts_.goaway_close_ms)) {
    close();  // streams still open long after GOAWAY (e.g. hanging ones): give up on them
    return;
  }
  arm_timer();
  server_.mark_dirty(this);
}

void Connection::flush() {
  if (closing_ || write_in_flight_ || h2_ == nullptr) return;
  // Bounded pull from nghttp2: the rest stays in its queue until this write completes, and with
  // TLS nothing is pulled while a megabyte of plaintext still waits to be encrypted.
  while (plain_out_.size() < kFlushBytes && (!tls_ || tls_->pending_plaintext() < kFlushBytes)) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(h2_, &data);
    if (n < 0) {
      close();
      return;
    }
    if (n == 0) break;
    plain_out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  if (tls_) {
    if (!plain_out_.empty()) {
      // One write per flush: TLS records are filled instead of one record per frame.
      if (tls_->write(plain_out_) == net::TlsStatus::error) {
        close();
        return;
      }
      plain_out_.clear();
    }
    while (tls_->pending_output() > 0 && out_.size() < kFlushBytes) tls_->take_output(out_);
  } else if (!plain_out_.empty()) {
    if (out_.empty())
      out_.swap(plain_out_);
    else
      out_.append(plain_out_);
    plain_out_.clear();
  }
  if (out_.empty()) {
    // RFC 9113 §6.8: after GOAWAY, once no stream is left, the connection is done.
    if (nghttp2_session_want_read(h2_) == 0 && nghttp2_session_want_write(h2_) == 0) close();
    return;
  }
  writing_.swap(out_);
  out_.clear();
  uv_buf_t b = uv_buf_init(writing_.data(), static_cast<unsigned>(writing_.size()));
  if (uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1, on_write) != 0) {
    close();
    return;
  }
  write_in_flight_ = true;
}

void Connection::on_write(uv_write_t* req, int status) noexcept {
  auto* self = static_cast<Connection*>(req->data);
  self->write_in_flight_ = false;
  self->writing_.clear();
  if (self->closing_) return;
  if (status < 0) {
    self->close();
    return;
  }
  self->server_.mark_dirty(self);  // more output may have queued while this write was out
}

}  // namespace aloha::mock
