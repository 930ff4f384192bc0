#include "h2/session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/log.h"

namespace aloha::h2 {

const char* failure_name(FailureKind kind) {
  switch (kind) {
    case FailureKind::none: return "none";
    case FailureKind::reset: return "reset";
    case FailureKind::goaway_unprocessed: return "goaway_unprocessed";
    case FailureKind::connection_lost: return "connection_lost";
    case FailureKind::timeout: return "timeout";
  }
  return "?";
}

const std::string* H2Response::header(std::string_view name) const {
  for (const auto& h : headers)
    if (h.name == name) return &h.value;
  return nullptr;
}

struct Session::Stream {
  uint64_t id = 0;
  int32_t stream_id = -1;  // -1 while queued
  H2Request req;
  Completion done;
  H2Response resp;
  size_t body_off = 0;     // next request-body byte to send
  bool end_stream_recv = false;
  bool in_use = false;     // holds an unfinished request (slots are reused)
};

// Recycles nghttp2's small allocations. nghttp2 allocates and frees several blocks per request
// (stream state, outbound frame items, copied header lists, received header buffers); on the push
// hot path those malloc/free pairs were a visible share of the bouncer's CPU (issue 6). Blocks of
// up to kMaxBlock bytes are rounded up to a power of two and kept on per-size free lists when
// freed; the cache is bounded by kMaxCachedBytes, larger blocks go straight to malloc. One cache
// per session, used only on the loop thread; it outlives the nghttp2 session (freed after
// nghttp2_session_del).
class Session::BlockCache {
 public:
  BlockCache() = default;
  ~BlockCache() { purge(); }
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  void* allocate(size_t n) {
    int c = class_of(n);
    if (c >= 0 && free_[c]) {
      FreeBlock* b = free_[c];
      free_[c] = b->next;
      cached_bytes_ -= class_size(c);
      return b;
    }
    size_t cap = c >= 0 ? class_size(c) : n;
    auto* h = static_cast<Header*>(std::malloc(kHeader + cap));
    if (!h) return nullptr;
    h->capacity = cap;
    return reinterpret_cast<char*>(h) + kHeader;
  }

  void release(void* p) {
    if (!p) return;
    Header* h = header_of(p);
    int c = class_of(h->capacity);
    if (c >= 0 && class_size(c) == h->capacity && cached_bytes_ + h->capacity <= kMaxCachedBytes) {
      auto* b = static_cast<FreeBlock*>(p);
      b->next = free_[c];
      free_[c] = b;
      cached_bytes_ += h->capacity;
      return;
    }
    std::free(h);
  }

  void* reallocate(void* p, size_t n) {
    if (!p) return allocate(n);
    size_t cap = header_of(p)->capacity;
    if (n <= cap) return p;
    void* q = allocate(n);
    if (!q) return nullptr;  // C semantics: p stays valid
    std::memcpy(q, p, cap);
    release(p);
    return q;
  }

  // Frees every cached block (an idle session gives its burst capacity back).
  void purge() {
    for (FreeBlock*& head : free_) {
      while (head) {
        FreeBlock* next = head->next;
        std::free(reinterpret_cast<char*>(head) - kHeader);
        head = next;
      }
    }
    cached_bytes_ = 0;
  }
  size_t cached_bytes() const { return cached_bytes_; }

  static void* mem_malloc(size_t n, void* self) { return static_cast<BlockCache*>(self)->allocate(n); }
  static void mem_free(void* p, void* self) { static_cast<BlockCache*>(self)->release(p); }
  static void* mem_calloc(size_t count, size_t n, void* self) {
    if (n != 0 && count > SIZE_MAX / n) return nullptr;
    void* p = static_cast<BlockCache*>(self)->allocate(count * n);
    if (p) std::memset(p, 0, count * n);
    return p;
  }
  static void* mem_realloc(void* p, size_t n, void* self) {
    return static_cast<BlockCache*>(self)->reallocate(p, n);
  }

 private:
  // The header keeps the block's capacity; 16 bytes keep malloc's alignment for the payload.
  struct Header {
    size_t capacity;
  };
  struct FreeBlock {
    FreeBlock* next;
  };
  static constexpr size_t kHeader = 16;
  static constexpr int kClasses = 8;  // 32, 64, ..., 4096 bytes
  static constexpr size_t kMinBlock = 32;
  static constexpr size_t kMaxBlock = kMinBlock << (kClasses - 1);
  static constexpr size_t kMaxCachedBytes = 256 * 1024;

  static size_t class_size(int c) { return kMinBlock << c; }
  static int class_of(size_t n) {
    if (n > kMaxBlock) return -1;
    int c = 0;
    while (class_size(c) < n) ++c;
    return c;
  }
  static Header* header_of(void* p) { return reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader); }

  FreeBlock* free_[kClasses] = {};
  size_t cached_bytes_ = 0;
};

namespace {
// Pseudo-header name literals: nghttp2_nv wants non-const pointers.
uint8_t* u8(const char* s) { return reinterpret_cast<uint8_t*>(const_cast<char*>(s)); }
uint8_t* u8(const std::string& s) { return reinterpret_cast<uint8_t*>(const_cast<char*>(s.data())); }
nghttp2_nv make_nv(const char* name, const std::string& value) {
  return nghttp2_nv{u8(name), u8(value), std::strlen(name), value.size(), NGHTTP2_NV_FLAG_NONE};
}
nghttp2_nv make_nv(const H2Header& h) {
  std::string_view value = h.value_view();
  return nghttp2_nv{u8(h.name), reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), h.name.size(),
                    value.size(), h.no_index ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE};
}
}  // namespace

// C trampolines: recover the Session from user_data, never throw, never call user code.
struct Session::Trampolines {
  static Session* self(void* user_data) { return static_cast<Session*>(user_data); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*) noexcept { return 0; }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                       void* user_data) noexcept {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Session* me = self(user_data);
    Stream* s = me->by_stream_id(frame->hd.stream_id);
    if (!s) return 0;
    try {
      std::string_view n(reinterpret_cast<const char*>(name), namelen);
      std::string_view v(reinterpret_cast<const char*>(value), valuelen);
      if (n == ":status") {
        int status = 0;
        for (char c : v) {
          if (c < '0' || c > '9') return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
          status = status * 10 + (c - '0');
        }
        // 1xx responses are interim (RFC 9113 §8.1); the final status replaces them.
        s->resp.status = status;
        if (status >= 100 && status < 200) s->resp.headers.clear();
        return 0;
      }
      if (!n.empty() && n[0] == ':') return 0;
      if (!me->opt_.keep_response_headers.empty() &&
          std::find(me->opt_.keep_response_headers.begin(), me->opt_.keep_response_headers.end(), n) ==
              me->opt_.keep_response_headers.end())
        return 0;
      if (s->resp.headers.size() < me->opt_.max_response_headers) {
        // Upstream answers carry a handful of headers (apns-id, content-type, retry-after...):
        // one allocation for the list instead of regrowing it header by header.
        if (s->resp.headers.empty()) s->resp.headers.reserve(std::min<size_t>(4, me->opt_.max_response_headers));
        s->resp.headers.push_back({std::string(n), std::string(v)});
      }
    } catch (...) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                           size_t len, void* user_data) noexcept {
    // Returning 0 lets nghttp2 count the bytes as consumed and send WINDOW_UPDATE (automatic
    // window update stays on), so error bodies we only partly keep never stall the connection
    // (the flow-control stall Sygnal hit with APNs). Bytes beyond the bound are dropped.
    Session* me = self(user_data);
    Stream* s = me->by_stream_id(stream_id);
    if (!s) return 0;
    size_t room = me->opt_.max_response_body > s->resp.body.size()
                      ? me->opt_.max_response_body - s->resp.body.size() : 0;
    size_t take = std::min(room, len);
    if (take < len) s->resp.body_truncated = true;
    try {
      s->resp.body.append(reinterpret_cast<const char*>(data), take);
    } catch (...) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session* ng, const nghttp2_frame* frame, void* user_data) noexcept {
    Session* me = self(user_data);
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) me->settings_received_ = true;
        break;
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) me->ping_outstanding_ = false;
        break;
      case NGHTTP2_GOAWAY:
        // nghttp2 itself closes streams above last_stream_id with REFUSED_STREAM; we stop
        // starting new streams and fail the queued ones as unprocessed (RFC 9113 §6.8).
        me->goaway_received_ = true;
        me->goaway_last_stream_id_ = frame->goaway.last_stream_id;
        LOG_INFO("h2: GOAWAY received (last stream %d, error %u)", frame->goaway.last_stream_id,
                 frame->goaway.error_code);
        break;
      case NGHTTP2_HEADERS:
      case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
          if (Stream* s = me->by_stream_id(frame->hd.stream_id)) s->end_stream_recv = true;
        }
        break;
      default:
        break;
    }
    (void)ng;
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) noexcept {
    Session* me = self(user_data);
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (Stream* s = me->by_stream_id(frame->hd.stream_id)) s->resp.request_sent = true;
    } else if (frame->hd.type == NGHTTP2_GOAWAY && !me->shutdown_) {
      // We did not ask for this GOAWAY: nghttp2 detected a connection error in the peer's bytes.
      me->local_goaway_pending_ = true;
    }
    return 0;
  }

  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int lib_error,
                               void* user_data) noexcept {
    // A request HEADERS that could not be sent (e.g. GOAWAY arrived first): never processed.
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Session* me = self(user_data);
    if (Stream* s = me->by_stream_id(frame->hd.stream_id)) {
      (void)lib_error;
      me->finish(s, FailureKind::goaway_unprocessed, NGHTTP2_REFUSED_STREAM);
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                             void* user_data) noexcept {
    Session* me = self(user_data);
    Stream* s = me->by_stream_id(stream_id);
    if (!s) return 0;
    if (s->end_stream_recv && s->resp.status >= 200) {
      me->finish(s, FailureKind::none, error_code);
    } else if (error_code == NGHTTP2_REFUSED_STREAM ||
               (me->goaway_received_ && stream_id > me->goaway_last_stream_id_)) {
      // REFUSED_STREAM and streams above GOAWAY's last-stream-id were not processed (RFC 9113
      // §8.7): the pool may replay them on another connection.
      me->finish(s, FailureKind::goaway_unprocessed, error_code);
    } else {
      me->finish(s, FailureKind::reset, error_code);
    }
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                           uint32_t* data_flags, nghttp2_data_source*, void* user_data) noexcept {
    Session* me = self(user_data);
    Stream* s = me->by_stream_id(stream_id);
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    std::string_view body = s->req.body_data();
    size_t n = std::min(length, body.size() - s->body_off);
    if (n) std::memcpy(buf, body.data() + s->body_off, n);
    s->body_off += n;
    if (s->body_off == body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

Session::Session(SessionOptions options) : opt_(options), cache_(std::make_unique<BlockCache>()) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Trampolines::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Trampolines::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Trampolines::on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Trampolines::on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Trampolines::on_frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, &Trampolines::on_frame_not_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Trampolines::on_stream_close);
  nghttp2_mem mem{cache_.get(), &BlockCache::mem_malloc, &BlockCache::mem_free, &BlockCache::mem_calloc,
                  &BlockCache::mem_realloc};
  nghttp2_session_client_new3(&ng_, cbs, this, nullptr, &mem);  // copies `mem`
  nghttp2_session_callbacks_del(cbs);

  // Our SETTINGS: no server push, a large per-stream window; plus a large connection window so
  // many small error bodies in flight never exhaust it (RFC 9113 §6.9.2).
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(opt_.stream_window)},
  };
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0, opt_.connection_window);
}

Session::~Session() {
  *alive_ = false;
  nghttp2_session_del(ng_);
}

// An open stream's Stream is its nghttp2 stream user data (set by submit_request, cleared by
// finish), so no map of our own is kept per stream.
Session::Stream* Session::by_stream_id(int32_t stream_id) const {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(ng_, stream_id));
}

Session::Stream* Session::by_request_id(uint64_t request_id) const { return slots_.find(request_id); }

// Drops what the request still holds (its body buffer, headers) and frees its slot.
void Session::release(Stream* s) { slots_.release(s); }

uint32_t Session::max_concurrent() const {
  uint32_t server = settings_received_
      ? nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
      : opt_.streams_before_settings;
  return std::min(server, opt_.max_concurrent_cap);
}

size_t Session::free_slots() const {
  if (!accepting()) return 0;
  size_t max = max_concurrent();
  size_t used = active_ + queue_.size();
  return used >= max ? 0 : max - used;
}

bool Session::finished() const {
  if (failed_) return true;
  if ((goaway_received_ || shutdown_) && slots_.live() == 0) return true;
  return nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0;
}

uint64_t Session::submit(H2Request&& request, Completion done) {
  if (!accepting() || !done) return 0;
  if (request.body_data().size() > opt_.max_request_body) return 0;
  if (queue_.size() >= opt_.max_queued) return 0;
  Stream* raw = slots_.acquire();
  raw->req = std::move(request);
  raw->done = std::move(done);
  queue_.push_back(raw);
  start_queued();
  // start_stream() may have failed it synchronously (nghttp2 refused the headers): that is a
  // refusal, reported by the return value rather than a callback inside submit(), and the
  // request goes back to the caller untouched.
  uint64_t id = raw->id;
  if (by_request_id(id) == nullptr) {
    for (auto it = done_.begin(); it != done_.end(); ++it) {
      if (it->second.request_id == id) {
        if (it->second.request) request = std::move(*it->second.request);
        done_.erase(it);
        break;
      }
    }
    return 0;
  }
  return id;
}

void Session::start_queued() {
  while (!queue_.empty() && accepting() && active_ < max_concurrent()) {
    Stream* s = queue_.front();
    queue_.pop_front();
    start_stream(s);
  }
}

bool Session::start_stream(Stream* s) {
  // Fixed header order (pseudo-headers, then the caller's order) keeps HPACK's dynamic table hits
  // stable from request to request (RFC 7541 §2.3.2).
  static const std::string kScheme = "https";
  nghttp2_nv stack_nv[16];
  std::vector<nghttp2_nv> heap_nv;
  size_t n = 4 + s->req.headers.size();
  nghttp2_nv* nv = stack_nv;
  if (n > sizeof stack_nv / sizeof stack_nv[0]) {
    heap_nv.resize(n);
    nv = heap_nv.data();
  }
  nv[0] = make_nv(":method", s->req.method);
  nv[1] = make_nv(":scheme", kScheme);
  nv[2] = make_nv(":path", s->req.path);
  nv[3] = make_nv(":authority", s->req.authority);
  for (size_t i = 0; i < s->req.headers.size(); ++i)
    nv[4 + i] = make_nv(s->req.headers[i]);

  nghttp2_data_provider provider{};
  provider.read_callback = &Trampolines::read_body;
  int32_t sid = nghttp2_submit_request(ng_, nullptr, nv, n,
                                       s->req.body_data().empty() && s->req.method == "GET" ? nullptr : &provider,
                                       s);
  if (sid < 0) {
    LOG_WARN("h2: submit_request failed: %s", nghttp2_strerror(sid));
    finish(s, FailureKind::goaway_unprocessed, 0);
    return false;
  }
  s->stream_id = sid;
  ++active_;
  return true;
}

void Session::finish(Stream* s, FailureKind kind, uint32_t error_code) {
  if (!s->in_use) return;
  if (s->stream_id >= 0) {
    // Later frames of this stream (e.g. after a cancel) find no Stream; fails harmlessly when
    // nghttp2 has already dropped the stream.
    nghttp2_session_set_stream_user_data(ng_, s->stream_id, nullptr);
    --active_;
  } else {
    auto q = std::find(queue_.begin(), queue_.end(), s);
    if (q != queue_.end()) queue_.erase(q);
  }
  H2Response resp = std::move(s->resp);
  resp.request_id = s->id;
  resp.failure = kind;
  resp.error_code = error_code;
  if (kind != FailureKind::none) {
    resp.status = 0;
    // The owner decides whether to replay; handing the request back spares it a copy per push.
    resp.request.emplace(std::move(s->req));
  }
  done_.emplace_back(std::move(s->done), std::move(resp));
  release(s);
}

void Session::deliver() {
  // Only the outermost call delivers, so a completion that calls submit()/cancel() does not
  // re-order or recurse; the Session may be destroyed by a completion (alive_ check).
  if (delivering_) return;
  ++delivering_;
  std::shared_ptr<bool> alive = alive_;
  while (!done_.empty()) {
    std::vector<std::pair<Completion, H2Response>> batch;
    batch.swap(done_);
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].first(batch[i].second);
      if (!*alive) return;
    }
    // Hand the emptied vector back so its capacity serves the next batch (one allocation per
    // connection instead of one per read).
    if (done_.empty()) {
      batch.clear();
      done_.swap(batch);
    }
  }
  --delivering_;
}

bool Session::cancel(uint64_t request_id) {
  Stream* s = by_request_id(request_id);
  if (!s) return false;
  if (s->stream_id >= 0 && !failed_)
    nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, s->stream_id, NGHTTP2_CANCEL);
  finish(s, FailureKind::timeout, NGHTTP2_CANCEL);
  start_queued();
  deliver();
  return true;
}

bool Session::feed(const uint8_t* data, size_t len) {
  if (failed_) return false;
  ssize_t rv = nghttp2_session_mem_recv(ng_, data, len);
  if (rv < 0) {
    LOG_WARN("h2: connection error: %s", nghttp2_strerror(static_cast<int>(rv)));
    fail_all(FailureKind::connection_lost);
    deliver();
    return false;
  }
  // Serialize what nghttp2 wants to say now (ACKs, WINDOW_UPDATE, or its own GOAWAY after a
  // protocol error, which tells us the connection is finished).
  if (goaway_received_) {
    // Queued requests never reached this connection: report them unprocessed so the pool can
    // replay them elsewhere.
    while (!queue_.empty()) finish(queue_.front(), FailureKind::goaway_unprocessed, 0);
  }
  if (nghttp2_session_want_write(ng_)) {
    // Control frames are small; requests' DATA is bounded by max_output_chunk.
    take_output(pending_out_);
  }
  if (local_goaway_pending_ && !failed_) {
    LOG_WARN("h2: protocol error from server; closing connection");
    fail_all(FailureKind::connection_lost);
  }
  if (!failed_) start_queued();
  bool ok = !failed_;
  deliver();
  return ok;
}

bool Session::want_write() const {
  return !pending_out_.empty() || (!failed_ && nghttp2_session_want_write(ng_));
}

size_t Session::take_output(std::string& out, size_t max) {
  size_t before = out.size();
  size_t limit = std::min(max, opt_.max_output_chunk);
  if (&out != &pending_out_ && !pending_out_.empty()) {
    out.append(pending_out_);
    pending_out_.clear();
  }
  if (!failed_) start_queued();
  if (!failed_ || local_goaway_pending_) {
    while (out.size() - before < limit) {
      const uint8_t* p = nullptr;
      ssize_t n = nghttp2_session_mem_send(ng_, &p);
      if (n < 0) {
        LOG_WARN("h2: mem_send failed: %s", nghttp2_strerror(static_cast<int>(n)));
        fail_all(FailureKind::connection_lost);
        break;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
  }
  if (local_goaway_pending_ && !failed_) fail_all(FailureKind::connection_lost);
  if (!failed_) start_queued();
  if (&out != &pending_out_) deliver();
  return out.size() - before;
}

void Session::ping() {
  if (failed_ || ping_outstanding_) return;
  if (nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, nullptr) == 0) ping_outstanding_ = true;
}

void Session::terminate(FailureKind kind) {
  fail_all(kind);
  deliver();
}

void Session::fail_all(FailureKind kind) {
  if (failed_) return;
  failed_ = true;
  // Open streams first (in id order, so the replay order is stable), then the queue.
  std::vector<Stream*> open;
  open.reserve(active_);
  slots_.for_each([&open](Stream& s) {
    if (s.in_use && s.stream_id >= 0) open.push_back(&s);
  });
  std::sort(open.begin(), open.end(), [](Stream* a, Stream* b) { return a->stream_id < b->stream_id; });
  for (Stream* s : open) finish(s, kind, 0);
  while (!queue_.empty()) finish(queue_.front(), kind, 0);
}

void Session::release_idle_memory() {
  if (delivering_) return;  // done_ and the slots are in use by the delivery loop
  cache_->purge();
  if (pending_out_.empty()) std::string().swap(pending_out_);
  if (done_.empty()) std::vector<std::pair<Completion, H2Response>>().swap(done_);
  if (queue_.empty()) std::deque<Stream*>().swap(queue_);
  slots_.release_if_idle();
}

size_t Session::idle_capacity() const {
  return cache_->cached_bytes() + pending_out_.capacity() +
         done_.capacity() * sizeof(std::pair<Completion, H2Response>) + slots_.capacity() * sizeof(Stream);
}

void Session::shutdown() {
  if (shutdown_ || failed_) return;
  shutdown_ = true;
  // A graceful GOAWAY (not terminate_session, which would stop reading): open streams finish.
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  while (!queue_.empty()) finish(queue_.front(), FailureKind::goaway_unprocessed, 0);
  deliver();
}

}  // namespace aloha::h2
