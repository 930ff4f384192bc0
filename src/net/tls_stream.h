// TlsStream: one connected uv_tcp_t with TLS on top (or cleartext, for tests): drives the
// handshake, turns socket reads into plaintext events, encrypts writes into a bounded queue of
// uv_write requests, and closes (best-effort close_notify) in two phases. The one TLS-over-libuv
// transport under h2::Connection and net::Http1Client; the protocol above it stays theirs.
//
// Lifetime (architecture.md): heap-allocated by attach(); close() is idempotent, drops the TLS
// session at once (so it never outlives the caller's TlsContext), closes the socket, and once
// libuv has finished with the handle and every write request the stream calls
// StreamListener::on_stream_closed() and deletes itself. Listener callbacks never run inside
// attach(), write() or close() (start() may report a failure before it returns); after close()
// only on_stream_closed() runs.
#pragma once
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace aloha::net {

class TlsContext;
class TlsSession;

enum class StreamFailure {
  start,        // uv_read_start failed
  read,         // the socket read failed (not EOF)
  write,        // uv_write failed
  tls,          // TLS record or handshake failure, or a TLS buffer bound
  certificate,  // the peer's certificate failed verification (chain or host name)
};

// Events from a stream to its owner; all on the loop thread.
class StreamListener {
 public:
  virtual ~StreamListener() = default;
  // TLS handshake done (alpn() is valid). Not called for a cleartext stream, which is ready at
  // once. Plaintext that arrived in the same read follows in on_stream_data().
  virtual void on_stream_ready() = 0;
  // Decrypted bytes; only valid during the call.
  virtual void on_stream_data(const char* data, size_t len) = 0;
  // The peer ended the stream: TCP EOF, or a TLS close_notify (after the data before it).
  virtual void on_stream_eof(bool close_notify) = 0;
  // The stream failed; `message` is "read: …", "write: …" or "tls: …". Close it.
  virtual void on_stream_error(StreamFailure kind, const std::string& message) = 0;
  // A write request completed: queued_bytes() went down.
  virtual void on_stream_written() {}
  // Last event: the stream is deleted right after this returns.
  virtual void on_stream_closed() = 0;
};

struct TlsStreamOptions {
  // Ciphertext in uv_write requests not yet completed, above which can_write() says no.
  size_t max_write_buffer = 4u << 20;
};

class TlsStream {
 public:
  // Takes over a connected tcp (allocated with new, as Connector hands it out; it is closed and
  // deleted by the stream). tls == nullptr: cleartext. tls must stay alive until close().
  static TlsStream* attach(uv_loop_t* loop, uv_tcp_t* tcp, const TlsContext* tls,
                           StreamListener* listener, TlsStreamOptions options = {});
  // Starts reading and, with TLS, the client handshake (SNI and the certificate name:
  // `hostname`). A failure is reported through on_stream_error() before this returns.
  void start(std::string_view hostname);

  // Queues plaintext: encrypted (or, cleartext, copied) and handed to uv_write. false once the
  // stream failed or is closed (an error event follows for a failure). Check can_write() first
  // to respect the bound; write() itself only fails on the TLS plaintext hard limit.
  // more = true holds the ciphertext back until a later write() without it, flush(), or any other
  // output of the stream: a caller producing a batch in pieces (bounded scratch buffers) still
  // hands the socket one write request for the whole batch.
  bool write(std::string_view plaintext, bool more = false);
  // Hands ciphertext held back by write(..., true) to the socket.
  void flush();
  // Room for at least a full TLS record of plaintext, and the socket queue below its bound.
  bool can_write() const;
  // Ciphertext handed to the socket and not yet written, plus ciphertext held back (more = true).
  size_t queued_bytes() const { return queued_bytes_ + held_bytes_; }
  // uv_now() of the last socket read (any bytes, also a partial TLS record); 0 before one.
  uint64_t last_read_ms() const { return last_read_ms_; }

  bool handshake_done() const;
  bool is_tls() const { return tls_ctx_ != nullptr; }
  // The TLS session while open (nullptr for cleartext or after close()).
  const TlsSession* tls() const { return tls_.get(); }

  // Best-effort close_notify and pending ciphertext, then closes the socket. Idempotent.
  // on_stream_closed() follows from the loop; set_listener(nullptr) first to get no events.
  void close();
  void set_listener(StreamListener* listener) { listener_ = listener; }

  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Capacity kept by the per-stream plaintext scratch across reads; above it, the buffer is
  // given back after the read (a burst does not pin its peak).
  static constexpr size_t kKeepScratch = 16u << 10;
  size_t scratch_capacity() const { return plain_.capacity(); }

  // Gives back the capacity kept for the next burst: the spare ciphertext chunks (up to
  // 4 × ~48 KB), the TLS session's drained queues and the read scratch. Ciphertext still queued
  // or held is untouched. The owner calls it once the connection has been quiet for a while;
  // the next batch allocates its chunks afresh.
  void release_idle_buffers();
  // Capacity kept between writes: spare chunks plus the TLS output buffer (diagnostics, tests).
  size_t idle_capacity() const;

 private:
  struct WriteReq;
  TlsStream(uv_loop_t* loop, uv_tcp_t* tcp, const TlsContext* tls, StreamListener* listener,
            TlsStreamOptions options);
  ~TlsStream();

  void on_read(ssize_t nread, const uv_buf_t* buf);
  // Moves the TLS session's ciphertext into the held write request; submits it unless `hold`.
  void flush_tls(bool hold = false);
  // Appends bytes to the held write request (a fresh chunk: no copy when `data` is moved in).
  bool hold_chunk(std::string&& data);
  bool submit_held();
  std::string take_spare();
  void give_spare(std::string&& s);
  void fail(StreamFailure kind, std::string message);
  void fail_tls();
  void maybe_free();

  static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf) noexcept;
  static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void write_cb(uv_write_t* req, int status) noexcept;

  uv_loop_t* loop_;
  uv_tcp_t* tcp_;
  const TlsContext* tls_ctx_;
  StreamListener* listener_;
  TlsStreamOptions opt_;
  std::unique_ptr<TlsSession> tls_;
  int open_ = 0;              // tcp + write requests; the last one to finish frees us
  bool closed_ = false;
  bool failed_ = false;
  size_t queued_bytes_ = 0;
  uint64_t last_read_ms_ = 0;
  std::string plain_;         // scratch: decrypted bytes of one read
  WriteReq* held_ = nullptr;  // ciphertext chunks not yet handed to uv_write (write(..., true))
  size_t held_bytes_ = 0;
  // Emptied ciphertext chunks of completed writes, reused as the TLS session's output buffer:
  // they stay below glibc's mmap threshold, so a batch of pushes costs no mmap/munmap and no
  // page faults (large one-off buffers did). Bounded by kMaxSpare.
  std::vector<std::string> spare_;
};

}  // namespace aloha::net
