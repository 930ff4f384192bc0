// TLS over a libuv TCP stream. See tls_stream.h for the contract.
#include "net/tls_stream.h"

#include <utility>

#include "net/tls.h"

namespace aloha::net {

namespace {

// One read buffer for every stream on the thread: libuv never nests read callbacks and the bytes
// are consumed inside the callback (TlsSession::feed copies, cleartext is delivered in place), so
// a buffer per connection (64 KB each) would only hold memory.
constexpr size_t kReadBufferSize = 64u << 10;
thread_local char t_read_buf[kReadBufferSize];

// Ciphertext chunks: a batch is encrypted a bounded piece at a time into chunks of about
// kChunkReserve bytes (below glibc's 64 KB mmap threshold) and handed to the socket as one
// uv_write of up to kMaxChunks buffers.
constexpr size_t kChunkReserve = 48u << 10;
constexpr size_t kMaxChunks = 8;
constexpr size_t kMaxSpare = 4;

}  // namespace

struct TlsStream::WriteReq {
  uv_write_t req{};
  std::string chunks[kMaxChunks];
  size_t count = 0;
  size_t bytes = 0;
  TlsStream* self = nullptr;
};

TlsStream* TlsStream::attach(uv_loop_t* loop, uv_tcp_t* tcp, const TlsContext* tls,
                             StreamListener* listener, TlsStreamOptions options) {
  return new TlsStream(loop, tcp, tls, listener, options);
}

TlsStream::TlsStream(uv_loop_t* loop, uv_tcp_t* tcp, const TlsContext* tls, StreamListener* listener,
                     TlsStreamOptions options)
    : loop_(loop), tcp_(tcp), tls_ctx_(tls), listener_(listener), opt_(options) {
  tcp_->data = this;
  ++open_;
}

TlsStream::~TlsStream() { delete held_; }

void TlsStream::start(std::string_view hostname) {
  if (closed_) return;
  int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(tcp_), &TlsStream::alloc_cb, &TlsStream::read_cb);
  if (rc != 0) {
    fail(StreamFailure::start, std::string("read_start: ") + uv_strerror(rc));
    return;
  }
  if (tls_ctx_ == nullptr) return;
  tls_ = std::make_unique<TlsSession>(*tls_ctx_, hostname);
  if (tls_->handshake() == TlsStatus::error) {
    fail_tls();
    return;
  }
  flush_tls();
}

bool TlsStream::handshake_done() const { return tls_ctx_ == nullptr || (tls_ && tls_->handshake_done()); }

bool TlsStream::can_write() const {
  if (closed_ || failed_ || queued_bytes() >= opt_.max_write_buffer) return false;
  return !tls_ || tls_->write_capacity() >= 16384;
}

bool TlsStream::write(std::string_view plaintext, bool more) {
  if (closed_ || failed_) return false;
  if (!tls_) {
    std::string chunk = take_spare();
    chunk.assign(plaintext.data(), plaintext.size());
    if (!hold_chunk(std::move(chunk))) return false;
    return more || submit_held();
  }
  if (tls_->write(plaintext) == TlsStatus::error) {
    fail_tls();
    return false;
  }
  flush_tls(more);
  return !failed_;
}

void TlsStream::flush() {
  if (closed_ || failed_) return;
  submit_held();
}

void TlsStream::alloc_cb(uv_handle_t*, size_t, uv_buf_t* buf) noexcept {
  buf->base = t_read_buf;
  buf->len = kReadBufferSize;
}

void TlsStream::read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  auto* self = static_cast<TlsStream*>(s->data);
  try {
    self->on_read(nread, buf);
  } catch (...) {
    // Listeners catch their own exceptions; this is the last line before C code.
    try {
      self->fail(StreamFailure::read, "read: internal error");
    } catch (...) {
    }
  }
}

void TlsStream::on_read(ssize_t nread, const uv_buf_t* buf) {
  if (closed_ || failed_ || nread == 0) return;
  last_read_ms_ = uv_now(loop_);
  if (nread < 0) {
    if (nread == UV_EOF) {
      if (listener_) listener_->on_stream_eof(false);
    } else {
      fail(StreamFailure::read, std::string("read: ") + uv_strerror(static_cast<int>(nread)));
    }
    return;
  }
  if (!tls_) {
    if (listener_) listener_->on_stream_data(buf->base, static_cast<size_t>(nread));
    return;
  }
  bool was_done = tls_->handshake_done();
  if (!tls_->feed(buf->base, static_cast<size_t>(nread))) {
    fail_tls();
    return;
  }
  plain_.clear();
  TlsStatus st = tls_->read(plain_);
  flush_tls();  // handshake messages, alerts (also a fatal one before the error below)
  if (closed_ || failed_) return;
  if (st == TlsStatus::error) {
    fail_tls();
    return;
  }
  if (!was_done && tls_->handshake_done()) {
    if (listener_) listener_->on_stream_ready();
    if (closed_ || failed_) return;
  }
  if (!plain_.empty()) {
    // The listener may write (not read) on this stream; plain_ is not touched until the next read.
    if (listener_) listener_->on_stream_data(plain_.data(), plain_.size());
    if (closed_ || failed_) return;
  }
  // A burst (up to a whole read buffer of records) must not pin its peak in every connection.
  if (plain_.capacity() > kKeepScratch) std::string().swap(plain_);
  if (tls_->peer_closed() && listener_) listener_->on_stream_eof(true);
}

void TlsStream::flush_tls(bool hold) {
  if (!tls_ || closed_) return;
  while (tls_->pending_output() > 0) {
    // take_output() hands the session's buffer over and keeps the (empty, reserved) one passed
    // in for the next records, so chunks circulate instead of being grown from nothing.
    std::string out = take_spare();
    tls_->take_output(out);
    if (out.empty()) {
      give_spare(std::move(out));
      break;
    }
    if (!hold_chunk(std::move(out))) return;
  }
  if (!hold) submit_held();
}

std::string TlsStream::take_spare() {
  std::string s;
  if (!spare_.empty()) {
    s = std::move(spare_.back());
    spare_.pop_back();
  }
  if (s.capacity() < kChunkReserve) s.reserve(kChunkReserve);
  return s;
}

void TlsStream::give_spare(std::string&& s) {
  // Only chunks that kept the usual size: one a burst grew past the mmap threshold is freed.
  if (spare_.size() >= kMaxSpare || s.capacity() > kChunkReserve * 5 / 4) return;
  s.clear();
  spare_.push_back(std::move(s));
}

void TlsStream::release_idle_buffers() {
  std::vector<std::string>().swap(spare_);
  std::string().swap(plain_);
  if (tls_) tls_->release_buffers();
}

size_t TlsStream::idle_capacity() const {
  size_t n = plain_.capacity() + (tls_ ? tls_->output_capacity() : 0);
  for (const std::string& s : spare_) n += s.capacity();
  return n;
}

bool TlsStream::hold_chunk(std::string&& data) {
  if (closed_ || failed_) return false;
  if (held_ && held_->count == kMaxChunks && !submit_held()) return false;
  if (!held_) held_ = new WriteReq();
  held_bytes_ += data.size();
  held_->bytes += data.size();
  held_->chunks[held_->count++] = std::move(data);
  return true;
}

bool TlsStream::submit_held() {
  if (!held_) return true;
  WriteReq* w = held_;
  held_ = nullptr;
  held_bytes_ -= w->bytes;
  if (closed_ || failed_ || uv_is_closing(reinterpret_cast<uv_handle_t*>(tcp_))) {
    delete w;
    return false;
  }
  w->self = this;
  w->req.data = w;
  uv_buf_t bufs[kMaxChunks];
  for (size_t i = 0; i < w->count; ++i)
    bufs[i] = uv_buf_init(w->chunks[i].data(), static_cast<unsigned>(w->chunks[i].size()));
  queued_bytes_ += w->bytes;
  ++open_;  // a write request keeps the object alive until its callback
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(tcp_), bufs, static_cast<unsigned>(w->count),
                    &TlsStream::write_cb);
  if (rc != 0) {
    --open_;
    queued_bytes_ -= w->bytes;
    delete w;
    fail(StreamFailure::write, std::string("write: ") + uv_strerror(rc));
    return false;
  }
  return true;
}

void TlsStream::write_cb(uv_write_t* req, int status) noexcept {
  auto* w = static_cast<WriteReq*>(req->data);
  TlsStream* self = w->self;
  self->queued_bytes_ -= w->bytes;
  if (!self->closed_) {
    for (size_t i = 0; i < w->count; ++i) self->give_spare(std::move(w->chunks[i]));
  }
  delete w;
  --self->open_;
  if (!self->closed_ && !self->failed_) {
    try {
      if (status != 0) {
        self->fail(StreamFailure::write, std::string("write: ") + uv_strerror(status));
      } else if (self->listener_) {
        self->listener_->on_stream_written();
      }
    } catch (...) {
      try {
        self->fail(StreamFailure::write, "write: internal error");
      } catch (...) {
      }
    }
  }
  self->maybe_free();
}

void TlsStream::fail_tls() {
  const std::string& e = tls_->error();
  bool cert = e.rfind("certificate verify failed", 0) == 0;
  fail(cert ? StreamFailure::certificate : StreamFailure::tls, "tls: " + e);
}

void TlsStream::fail(StreamFailure kind, std::string message) {
  if (closed_ || failed_) return;
  failed_ = true;
  // Reads stop at once: nothing after a failure may reach the listener as data.
  uv_read_stop(reinterpret_cast<uv_stream_t*>(tcp_));
  if (listener_) listener_->on_stream_error(kind, message);
}

void TlsStream::close() {
  if (closed_) return;
  // Best effort: a close_notify (RFC 8446 §6.1) after whatever is already queued (e.g. a
  // GOAWAY), or the fatal alert of a failed session. libuv tries a write at once when its queue
  // is empty; pending writes are cancelled by uv_close.
  if (tls_) {
    tls_->close_notify();  // a no-op before the handshake is over, an error once failed
    if (!failed_) flush_tls();  // held ciphertext first, then the alert
  } else if (!failed_) {
    submit_held();
  }
  delete held_;  // only left when the stream failed: nothing more goes out
  held_ = nullptr;
  held_bytes_ = 0;
  closed_ = true;
  spare_.clear();
  spare_.shrink_to_fit();
  // Nothing reads TLS state after this; freeing the session now means it never outlives the
  // caller's TlsContext.
  tls_.reset();
  std::string().swap(plain_);
  uv_read_stop(reinterpret_cast<uv_stream_t*>(tcp_));
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) noexcept {
    auto* self = static_cast<TlsStream*>(h->data);
    delete reinterpret_cast<uv_tcp_t*>(h);
    self->tcp_ = nullptr;
    --self->open_;
    self->maybe_free();
  });
}

void TlsStream::maybe_free() {
  if (open_ > 0 || !closed_) return;
  StreamListener* l = listener_;
  listener_ = nullptr;
  if (l) l->on_stream_closed();
  delete this;
}

}  // namespace aloha::net
