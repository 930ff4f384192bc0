#include "client.h"

#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "response_parser.h"

namespace aloha::loadgen {

namespace {

class Driver;

// One client connection. Lives on the heap inside the Driver, never moved (libuv keeps pointers
// to its embedded handles); freed by the Driver after uv_run has returned, i.e. after every close
// callback ran.
class Conn {
 public:
  Conn(Driver& d, size_t index, size_t pipeline);
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  void start();            // first connect
  void close_all();        // final close: TCP handle and retry timer
  size_t in_flight() const { return in_flight_; }
  size_t index() const { return index_; }

 private:
  enum class State { idle, connecting, open, closing, done };

  void connect();
  void on_connect(int status);
  void on_read(ssize_t nread);
  void on_write(int status);
  void on_closed();
  void fill();
  void flush();
  // Drops the connection: requests in flight count as unfinished; reopens unless stopping, at
  // once after an orderly close (the server said Connection: close), else after a pause.
  void fail(bool orderly = false);

  static void connect_cb(uv_connect_t* req, int status) noexcept;
  static void alloc_cb(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept;
  static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) noexcept;
  static void write_cb(uv_write_t* req, int status) noexcept;
  static void close_cb(uv_handle_t* h) noexcept;
  static void retry_cb(uv_timer_t* t) noexcept;

  Driver& d_;
  size_t index_;
  State state_ = State::idle;
  uv_tcp_t tcp_{};
  uv_connect_t connect_req_{};
  uv_write_t write_req_{};
  uv_timer_t retry_timer_{};
  bool writing_ = false;
  bool final_close_ = false;
  bool orderly_close_ = false;
  std::string out_, wbuf_;             // queued requests / requests being written
  std::vector<uint64_t> started_;      // ring of queue times, one per request in flight
  size_t head_ = 0, in_flight_ = 0;
  ResponseParser parser_;
  std::array<char, 64 * 1024> rbuf_{};
};

class Driver {
 public:
  explicit Driver(const RunOptions& opts);
  RunResult run();

  // Renders the next request into `out` for connection `c`; false when no more may be sent.
  bool next_request(const Conn& c, std::string& out);
  void on_answer(uint64_t started_ns, int status, std::string_view body, size_t conn);
  void on_lost(uint64_t n) { r_.unfinished += n; }
  void on_connect_result(bool ok);
  void on_io_error() { ++r_.io_errors; }
  void on_parse_error(const char* what);
  void on_reconnect() { ++r_.reconnects; }
  void check_done();
  bool stopping() const { return stopping_; }
  uv_loop_t* loop() { return &loop_; }
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&addr_); }

 private:
  void stop();
  void finish();
  void tick();

  const RunOptions& o_;
  RunResult r_;
  uv_loop_t loop_{};
  sockaddr_storage addr_{};
  uv_timer_t duration_timer_{}, tick_timer_{};
  std::vector<std::unique_ptr<Conn>> conns_;
  std::string scratch_body_, scratch_path_;
  uint64_t issued_ = 0, n_main_ = 0, n_alt_ = 0;
  uint64_t start_ns_ = 0, last_answer_ns_ = 0, stop_ns_ = 0, last_progress_ns_ = 0;
  uint64_t completed_at_last_tick_ = 0, failures_since_success_ = 0;
  size_t errors_shown_ = 0;
  bool stopping_ = false, finished_ = false;
};

// ---- Conn ------------------------------------------------------------------------------------

Conn::Conn(Driver& d, size_t index, size_t pipeline) : d_(d), index_(index), started_(pipeline) {
  out_.reserve(4096);
  wbuf_.reserve(4096);
  uv_timer_init(d_.loop(), &retry_timer_);
  retry_timer_.data = this;
}

void Conn::start() {
  if (!final_close_) connect();
}

void Conn::connect() {
  uv_tcp_init(d_.loop(), &tcp_);
  tcp_.data = this;
  uv_tcp_nodelay(&tcp_, 1);  // requests are small and latency is what we measure
  connect_req_.data = this;
  state_ = State::connecting;
  int rc = uv_tcp_connect(&connect_req_, &tcp_, d_.addr(), connect_cb);
  if (rc != 0) {
    state_ = State::closing;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), close_cb);
    d_.on_connect_result(false);  // last: it may end the run (close_all sees `closing`)
  }
}

void Conn::connect_cb(uv_connect_t* req, int status) noexcept {
  static_cast<Conn*>(req->data)->on_connect(status);
}

void Conn::on_connect(int status) {
  if (state_ != State::connecting) return;  // closed meanwhile (final close)
  if (status != 0) {
    state_ = State::closing;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), close_cb);
    d_.on_connect_result(false);  // last: it may end the run (close_all sees `closing`)
    return;
  }
  d_.on_connect_result(true);
  state_ = State::open;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), alloc_cb, read_cb);
  fill();
}

void Conn::alloc_cb(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<Conn*>(h->data);
  *buf = uv_buf_init(self->rbuf_.data(), static_cast<unsigned>(self->rbuf_.size()));
}

void Conn::read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) noexcept {
  static_cast<Conn*>(s->data)->on_read(nread);
}

void Conn::on_read(ssize_t nread) {
  if (state_ != State::open) return;
  if (nread == 0) return;  // EAGAIN
  if (nread < 0) {
    if (in_flight_ > 0 || !d_.stopping()) d_.on_io_error();
    fail();
    d_.check_done();
    return;
  }
  const char* p = rbuf_.data();
  size_t left = static_cast<size_t>(nread);
  bool must_close = false;
  while (left > 0) {
    size_t used = 0;
    ResponseParser::Result res = parser_.feed(p, left, used);
    p += used;
    left -= used;
    if (res == ResponseParser::Result::error) {
      d_.on_parse_error(parser_.error());
      fail();
      d_.check_done();
      return;
    }
    if (res == ResponseParser::Result::incomplete) break;
    if (in_flight_ == 0) {  // an answer nobody asked for
      d_.on_parse_error("unsolicited response");
      fail();
      d_.check_done();
      return;
    }
    uint64_t started = started_[head_];
    head_ = (head_ + 1) % started_.size();
    --in_flight_;
    d_.on_answer(started, parser_.status(), parser_.body(), index_);
    if (!parser_.keep_alive()) {
      must_close = true;
      break;
    }
  }
  if (must_close) {
    fail(true);  // the server closes after this answer: reopen (requests behind it are lost)
  } else {
    fill();
  }
  d_.check_done();
}

void Conn::fill() {
  if (state_ != State::open) return;
  while (in_flight_ < started_.size() && d_.next_request(*this, out_)) {
    started_[(head_ + in_flight_) % started_.size()] = uv_hrtime();
    ++in_flight_;
  }
  flush();
}

void Conn::flush() {
  if (writing_ || out_.empty() || state_ != State::open) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  // Try the cheap synchronous path first; queue only what the socket did not take.
  uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
  int n = uv_try_write(stream, &b, 1);
  if (n == static_cast<int>(out_.size())) {
    out_.clear();
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    d_.on_io_error();
    fail();
    return;
  }
  if (n > 0) out_.erase(0, static_cast<size_t>(n));
  std::swap(out_, wbuf_);  // out_ is empty (wbuf_ was), keeps its capacity
  writing_ = true;
  write_req_.data = this;
  b = uv_buf_init(wbuf_.data(), static_cast<unsigned>(wbuf_.size()));
  if (uv_write(&write_req_, stream, &b, 1, write_cb) != 0) {
    writing_ = false;
    d_.on_io_error();
    fail();
  }
}

void Conn::write_cb(uv_write_t* req, int status) noexcept {
  static_cast<Conn*>(req->data)->on_write(status);
}

void Conn::on_write(int status) {
  writing_ = false;
  wbuf_.clear();
  if (state_ != State::open) return;
  if (status != 0) {
    d_.on_io_error();
    fail();
    d_.check_done();
    return;
  }
  flush();
}

void Conn::fail(bool orderly) {
  if (state_ != State::open) return;
  orderly_close_ = orderly;
  d_.on_lost(in_flight_);
  in_flight_ = 0;
  head_ = 0;
  out_.clear();
  state_ = State::closing;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), close_cb);
}

void Conn::close_cb(uv_handle_t* h) noexcept { static_cast<Conn*>(h->data)->on_closed(); }

void Conn::on_closed() {
  state_ = State::idle;
  writing_ = false;
  wbuf_.clear();
  parser_ = ResponseParser();
  if (final_close_ || d_.stopping()) {
    state_ = State::done;
    if (final_close_) uv_close(reinterpret_cast<uv_handle_t*>(&retry_timer_), nullptr);
    return;
  }
  // Reopen; after a failure only after a pause, so a refusing server does not make us spin.
  d_.on_reconnect();
  uv_timer_start(&retry_timer_, retry_cb, orderly_close_ ? 0 : 50, 0);
  orderly_close_ = false;
}

void Conn::retry_cb(uv_timer_t* t) noexcept {
  auto* self = static_cast<Conn*>(t->data);
  if (!self->final_close_ && !self->d_.stopping()) self->connect();
}

void Conn::close_all() {
  if (final_close_) return;
  final_close_ = true;
  uv_timer_stop(&retry_timer_);
  if (state_ == State::open || state_ == State::connecting) {
    d_.on_lost(in_flight_);
    in_flight_ = 0;
    state_ = State::closing;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), close_cb);  // on_closed closes the timer
  } else if (state_ == State::closing) {
    // close_cb is pending and will close the timer
  } else {
    state_ = State::done;
    uv_close(reinterpret_cast<uv_handle_t*>(&retry_timer_), nullptr);
  }
}

// ---- Driver ----------------------------------------------------------------------------------

Driver::Driver(const RunOptions& opts) : o_(opts) {
  if (o_.specs.empty()) throw std::invalid_argument("no request given");
  if (o_.connections == 0 || o_.connections > 10'000)
    throw std::invalid_argument("connections must be 1..10000");
  if (o_.pipeline == 0 || o_.pipeline > 1024) throw std::invalid_argument("pipeline must be 1..1024");
  if (o_.duration_ms == 0 && o_.max_requests == 0)
    throw std::invalid_argument("need a duration or a request count");
  if (o_.alt_every == 1 || (o_.alt_every > 0 && o_.specs.size() < 2))
    throw std::invalid_argument("alt_every needs an alternate request and must be >= 2");
  if (uv_ip4_addr(o_.address.c_str(), o_.port, reinterpret_cast<sockaddr_in*>(&addr_)) != 0 &&
      uv_ip6_addr(o_.address.c_str(), o_.port, reinterpret_cast<sockaddr_in6*>(&addr_)) != 0)
    throw std::invalid_argument("not an IP address: " + o_.address);
  n_main_ = o_.first_n;
  // Reserved up front so that recording never reallocates (and copies) mid-run.
  if (o_.trace_max > 50'000'000) throw std::invalid_argument("trace_max must be <= 50000000");
  r_.trace.reserve(o_.trace_max);
  scratch_body_.reserve(4096);
  scratch_path_.reserve(256);
}

bool Driver::next_request(const Conn& c, std::string& out) {
  if (stopping_) return false;
  if (o_.max_requests != 0 && issued_ >= o_.max_requests) return false;
  bool alt = o_.alt_every != 0 && issued_ % o_.alt_every == o_.alt_every - 1;
  const RequestSpec& spec = o_.specs[alt ? 1 : 0];
  TemplateVars v;
  v.n = alt ? n_alt_++ : n_main_++;
  v.i = issued_++;
  v.c = c.index();
  scratch_path_.clear();
  spec.path.render(v, scratch_path_);
  out.append(spec.method).push_back(' ');
  out.append(scratch_path_).append(" HTTP/1.1\r\n").append(spec.fixed_headers);
  if (spec.send_body) {
    scratch_body_.clear();
    spec.body.render(v, scratch_body_);
    char len[32];
    int k = std::snprintf(len, sizeof len, "Content-Length: %zu\r\n\r\n", scratch_body_.size());
    out.append(len, static_cast<size_t>(k)).append(scratch_body_);
  } else {
    out.append("\r\n");
  }
  ++r_.sent;
  return true;
}

void Driver::on_answer(uint64_t started_ns, int status, std::string_view body, size_t conn) {
  uint64_t now = uv_hrtime();
  last_answer_ns_ = now;
  r_.latency.record(now - started_ns);
  if (o_.trace_max != 0) {
    if (r_.trace.size() < o_.trace_max) {
      TraceRecord t;
      t.sent_ns = started_ns - start_ns_;
      t.latency_ns = static_cast<uint32_t>(std::min<uint64_t>(now - started_ns, UINT32_MAX));
      t.conn = static_cast<uint16_t>(std::min<size_t>(conn, UINT16_MAX));
      t.status = static_cast<uint16_t>(status < 0 ? 0 : status);
      r_.trace.push_back(t);
    } else {
      ++r_.trace_dropped;
    }
  }
  ++r_.completed;
  if (status >= 0 && status < 600) ++r_.statuses[static_cast<size_t>(status)];
  if (status >= 200 && status < 300) {
    ++r_.ok_2xx;
  } else {
    ++r_.non_2xx;
    if (errors_shown_ < o_.show_errors) {
      ++errors_shown_;
      std::fprintf(stderr, "loadgen: answer %d: %.*s\n", status, static_cast<int>(body.size()), body.data());
    }
  }
}

void Driver::on_connect_result(bool ok) {
  if (ok) {
    failures_since_success_ = 0;
    return;
  }
  ++r_.connect_errors;
  // Give up when nothing connects for a while (every connection retries every 50 ms).
  if (++failures_since_success_ > 20 * o_.connections + 100 && r_.fatal.empty()) {
    r_.fatal = "cannot connect to " + o_.address + ":" + std::to_string(o_.port);
    stop();
    finish();
  }
}

void Driver::on_parse_error(const char* what) {
  ++r_.parse_errors;
  if (r_.parse_errors <= 3) std::fprintf(stderr, "loadgen: bad response: %s\n", what);
}

void Driver::stop() {
  if (stopping_) return;
  stopping_ = true;
  stop_ns_ = uv_hrtime();
}

void Driver::check_done() {
  if (finished_) return;
  if (!stopping_ && o_.max_requests != 0 && issued_ >= o_.max_requests) stop();
  if (!stopping_) return;
  for (const auto& c : conns_)
    if (c->in_flight() > 0) return;
  finish();
}

void Driver::finish() {
  if (finished_) return;
  finished_ = true;
  uv_timer_stop(&duration_timer_);
  uv_timer_stop(&tick_timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&duration_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick_timer_), nullptr);
  for (auto& c : conns_) c->close_all();
}

void Driver::tick() {
  uint64_t now = uv_hrtime();
  if (o_.progress) {
    double secs = static_cast<double>(now - start_ns_) / 1e9;
    std::fprintf(stderr, "loadgen: %.0f s: %llu answers (%llu/s), %llu non-2xx\n", secs,
                 static_cast<unsigned long long>(r_.completed),
                 static_cast<unsigned long long>(r_.completed - completed_at_last_tick_),
                 static_cast<unsigned long long>(r_.non_2xx));
  }
  if (r_.completed != completed_at_last_tick_) last_progress_ns_ = now;
  completed_at_last_tick_ = r_.completed;
  // Stalled (no answer for grace_ms), or the grace after the stop is over: give up waiting.
  uint64_t grace_ns = o_.grace_ms * 1'000'000ull;
  bool stalled = now - last_progress_ns_ > grace_ns;
  bool grace_over = stopping_ && now - stop_ns_ > grace_ns;
  if (stalled || grace_over) {
    if (stalled && r_.fatal.empty() && !stopping_) r_.fatal = "no answer for " + std::to_string(o_.grace_ms) + " ms";
    stop();
    finish();
  }
}

RunResult Driver::run() {
  uv_loop_init(&loop_);
  uv_timer_init(&loop_, &duration_timer_);
  uv_timer_init(&loop_, &tick_timer_);
  duration_timer_.data = tick_timer_.data = this;
  start_ns_ = last_progress_ns_ = uv_hrtime();
  r_.start_ns = start_ns_;
  conns_.reserve(o_.connections);
  for (size_t i = 0; i < o_.connections; ++i)
    conns_.push_back(std::make_unique<Conn>(*this, i, o_.pipeline));
  for (auto& c : conns_) c->start();
  if (o_.duration_ms != 0) {
    uv_timer_start(&duration_timer_, [](uv_timer_t* t) noexcept {
      auto* d = static_cast<Driver*>(t->data);
      d->stop();
      d->check_done();
    }, o_.duration_ms, 0);
  }
  uv_timer_start(&tick_timer_, [](uv_timer_t* t) noexcept { static_cast<Driver*>(t->data)->tick(); },
                 1000, 1000);
  uv_run(&loop_, UV_RUN_DEFAULT);
  conns_.clear();
  uv_loop_close(&loop_);
  uint64_t end = last_answer_ns_ > start_ns_ ? last_answer_ns_ : uv_hrtime();
  r_.elapsed_s = static_cast<double>(end - start_ns_) / 1e9;
  return r_;
}

}  // namespace

std::string trace_csv(const RunResult& r) {
  std::string out = "sent_us,latency_us,conn,status\n";
  out.reserve(out.size() + r.trace.size() * 28);
  char line[96];
  for (const TraceRecord& t : r.trace) {
    int n = std::snprintf(line, sizeof line, "%.1f,%.1f,%u,%u\n", static_cast<double>(t.sent_ns) / 1000.0,
                          static_cast<double>(t.latency_ns) / 1000.0, static_cast<unsigned>(t.conn),
                          static_cast<unsigned>(t.status));
    if (n > 0) out.append(line, static_cast<size_t>(n));
  }
  return out;
}

RunResult run_load(const RunOptions& opts) {
  Driver d(opts);
  return d.run();
}

}  // namespace aloha::loadgen
