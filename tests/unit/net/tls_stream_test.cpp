// TlsStream: real TLS (and cleartext) over a loopback TCP pair on one libuv loop, both ends being
// TlsStreams (the server end with a server TlsContext). No timed assertions: the loop runs until
// a condition holds, with a generous bound only against hangs.
#include <doctest/doctest.h>
#include <uv.h>

#include <cstring>
#include <string>

#include "net/tls.h"
#include "net/tls_stream.h"
#include "support/uv_loop.h"
#include "tls_test_support.h"

using aloha::net::StreamFailure;
using aloha::net::StreamListener;
using aloha::net::TlsContext;
using aloha::net::TlsStream;
using aloha::net::TlsStreamOptions;

namespace {

struct Peer : StreamListener {
  TlsStream* stream = nullptr;
  bool ready = false, eof = false, eof_close_notify = false, closed = false, echo = false;
  int errors = 0, written = 0, events_after_close = 0;
  StreamFailure kind = StreamFailure::read;
  std::string error, data;

  void on_stream_ready() override {
    events_after_close += closed;
    ready = true;
  }
  void on_stream_data(const char* d, size_t n) override {
    events_after_close += closed;
    data.append(d, n);
    if (echo) stream->write(std::string_view(d, n));
  }
  void on_stream_eof(bool close_notify) override {
    events_after_close += closed;
    eof = true;
    eof_close_notify = close_notify;
    stream->close();
  }
  void on_stream_error(StreamFailure k, const std::string& m) override {
    events_after_close += closed;
    ++errors;
    kind = k;
    error = m;
    stream->close();
  }
  void on_stream_written() override { ++written; }
  void on_stream_closed() override {
    closed = true;
    stream = nullptr;
  }
};

// A connected pair of uv_tcp_t over 127.0.0.1 (allocated with new, as Connector hands them out).
struct TcpPair {
  uv_loop_t loop{};
  uv_tcp_t listener{};
  uv_connect_t connect{};
  uv_tcp_t* client = nullptr;
  uv_tcp_t* server = nullptr;
  bool connected = false;

  TcpPair() {
    REQUIRE(uv_loop_init(&loop) == 0);
    uv_tcp_init(&loop, &listener);
    listener.data = this;
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", 0, &addr);
    REQUIRE(uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 4, [](uv_stream_t* l, int status) noexcept {
      auto* self = static_cast<TcpPair*>(l->data);
      if (status != 0 || self->server != nullptr) return;
      self->server = new uv_tcp_t;
      uv_tcp_init(l->loop, self->server);
      uv_accept(l, reinterpret_cast<uv_stream_t*>(self->server));
    }) == 0);
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &len);
    client = new uv_tcp_t;
    uv_tcp_init(&loop, client);
    connect.data = this;
    REQUIRE(uv_tcp_connect(&connect, client, reinterpret_cast<const sockaddr*>(&bound),
                           [](uv_connect_t* c, int status) noexcept {
                             static_cast<TcpPair*>(c->data)->connected = status == 0;
                           }) == 0);
    REQUIRE(run([&] { return connected && server != nullptr; }));
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
  }
  ~TcpPair() {
    aloha::test::drain_loop(&loop);
    CHECK(uv_loop_close(&loop) == 0);  // every handle and write request is gone
  }
  template <class Pred>
  bool run(Pred pred) {
    return aloha::test::run_loop_until(&loop, pred, 20000, 50);
  }
};

// Both ends of a TcpPair as streams: the client with cctx (nullptr: cleartext) and copt, the
// server with sctx. start_pair() then starts the server and the client (`name`: SNI and the
// certificate name the client checks).
void attach_pair(TcpPair& p, Peer& c, Peer& s, const TlsContext* cctx, const TlsContext* sctx,
                 TlsStreamOptions copt = {}) {
  c.stream = TlsStream::attach(&p.loop, p.client, cctx, &c, copt);
  s.stream = TlsStream::attach(&p.loop, p.server, sctx, &s);
}
void start_pair(Peer& c, Peer& s, const char* name) {
  s.stream->start("");
  c.stream->start(name);
}

}  // namespace

TEST_SUITE("tls_stream") {

TEST_CASE("tls stream: handshake, 1 MB echoed back, close_notify reaches the peer, both free themselves") {
  auto cctx = aloha::test::make_client();
  auto sctx = aloha::test::make_server();
  TcpPair p;
  Peer c, s;
  s.echo = true;
  attach_pair(p, c, s, cctx.get(), sctx.get());
  CHECK_FALSE(c.stream->handshake_done());
  start_pair(c, s, "localhost");
  REQUIRE(p.run([&] { return (c.ready && s.ready) || c.errors + s.errors > 0; }));
  INFO(c.error, " / ", s.error);
  REQUIRE(c.ready);
  REQUIRE(c.stream->tls() != nullptr);
  CHECK(c.stream->tls()->alpn() == "h2");
  CHECK(c.stream->tls()->peer_certificate_verified());
  CHECK(c.stream->handshake_done());

  const std::string up = aloha::test::pattern(1 << 20, 7);
  REQUIRE(c.stream->write(up));
  CHECK(c.stream->queued_bytes() > 0);  // counted until libuv reports the write done
  REQUIRE(p.run([&] { return c.data.size() >= up.size() || c.errors + s.errors > 0; }));
  CHECK(s.data == up);
  CHECK(c.data == up);
  CHECK(c.written > 0);
  // Reads of up to 64 KB of records went through the scratch; the burst did not stay pinned.
  CHECK(c.stream->scratch_capacity() <= TlsStream::kKeepScratch);

  c.stream->close();
  c.stream->close();  // idempotent
  REQUIRE(p.run([&] { return c.closed && s.closed; }));
  CHECK(s.eof);
  CHECK(s.eof_close_notify);
  CHECK(c.errors == 0);
  CHECK(s.errors == 0);
  CHECK(c.events_after_close + s.events_after_close == 0);
}

TEST_CASE("tls stream: a certificate for another name fails as StreamFailure::certificate") {
  auto cctx = aloha::test::make_client();
  auto sctx = aloha::test::make_server();
  TcpPair p;
  Peer c, s;
  attach_pair(p, c, s, cctx.get(), sctx.get());
  start_pair(c, s, "not-the-server.example");
  REQUIRE(p.run([&] { return c.closed && s.closed; }));
  CHECK_FALSE(c.ready);
  CHECK(c.errors == 1);
  CHECK(c.kind == StreamFailure::certificate);
  CHECK(c.error.rfind("tls: certificate verify failed", 0) == 0);
  CHECK(s.errors + (s.eof ? 1 : 0) == 1);  // the server saw the alert or the close
}

TEST_CASE("tls stream: garbage from the peer fails as StreamFailure::tls") {
  auto cctx = aloha::test::make_client();
  TcpPair p;
  Peer c, s;
  attach_pair(p, c, s, cctx.get(), nullptr);  // a cleartext "server"
  start_pair(c, s, "localhost");
  REQUIRE(p.run([&] { return !s.data.empty(); }));  // the ClientHello
  CHECK(s.stream->write(std::string(64, 'x')));
  REQUIRE(p.run([&] { return c.closed && s.closed; }));
  CHECK(c.errors == 1);
  CHECK(c.kind == StreamFailure::tls);
  CHECK(c.error.rfind("tls: ", 0) == 0);
}

TEST_CASE("tls stream: the write bound holds can_write() back until libuv completes the write") {
  TcpPair p;
  Peer c, s;
  TlsStreamOptions o;
  o.max_write_buffer = 4;
  attach_pair(p, c, s, nullptr, nullptr, o);
  start_pair(c, s, "");
  CHECK(c.stream->handshake_done());  // cleartext: ready at once, no ready event
  CHECK(c.stream->can_write());
  REQUIRE(c.stream->write("hello"));
  CHECK(c.stream->queued_bytes() == 5);
  CHECK_FALSE(c.stream->can_write());
  REQUIRE(p.run([&] { return c.written > 0; }));
  CHECK(c.stream->queued_bytes() == 0);
  CHECK(c.stream->can_write());
  REQUIRE(p.run([&] { return s.data == "hello"; }));
  CHECK_FALSE(c.ready);

  // A plain TCP close is an EOF without close_notify.
  s.stream->close();
  REQUIRE(p.run([&] { return c.closed && s.closed; }));
  CHECK(c.eof);
  CHECK_FALSE(c.eof_close_notify);
}

TEST_CASE("tls stream: write(..., more) holds ciphertext until flush(): one socket write per batch") {
  auto cctx = aloha::test::make_client();
  auto sctx = aloha::test::make_server();
  TcpPair p;
  Peer c, s;
  attach_pair(p, c, s, cctx.get(), sctx.get());
  start_pair(c, s, "localhost");
  REQUIRE(p.run([&] { return (c.ready && s.ready) || c.errors + s.errors > 0; }));
  REQUIRE(c.ready);
  REQUIRE(p.run([&] { return c.stream->queued_bytes() == 0; }));  // handshake writes done
  int written_before = c.written;

  // 6 pieces of 5 KB (each its own record and chunk): held, counted in queued_bytes().
  const std::string all = aloha::test::pattern(6 * 5000, 3);
  for (size_t i = 0; i < 6; ++i) REQUIRE(c.stream->write(std::string_view(all).substr(i * 5000, 5000), true));
  CHECK(c.stream->queued_bytes() > all.size());  // ciphertext: plaintext + record overhead
  CHECK(c.written == written_before);
  c.stream->flush();
  REQUIRE(p.run([&] { return s.data.size() >= all.size() || c.errors + s.errors > 0; }));
  CHECK(s.data == all);
  REQUIRE(p.run([&] { return c.stream->queued_bytes() == 0; }));
  CHECK(c.written == written_before + 1);  // the whole batch in one write request

  // More pieces than one request holds go out as several requests, in order; held bytes are
  // sent before the close_notify.
  s.data.clear();
  const std::string more = aloha::test::pattern(20 * 1000, 5);
  for (size_t i = 0; i < 20; ++i) REQUIRE(c.stream->write(std::string_view(more).substr(i * 1000, 1000), true));
  c.stream->close();
  REQUIRE(p.run([&] { return c.closed && s.closed; }));
  CHECK(s.data == more);
  CHECK(s.eof_close_notify);
  CHECK(c.errors + s.errors == 0);
}

TEST_CASE("tls stream: cleartext write(..., more) is held until a write without it") {
  TcpPair p;
  Peer c, s;
  attach_pair(p, c, s, nullptr, nullptr);
  start_pair(c, s, "");
  REQUIRE(c.stream->write("ab", true));
  REQUIRE(c.stream->write("cd", true));
  CHECK(c.stream->queued_bytes() == 4);
  REQUIRE(c.stream->write("ef"));
  REQUIRE(p.run([&] { return s.data.size() >= 6; }));
  CHECK(s.data == "abcdef");
  REQUIRE(p.run([&] { return c.written > 0 && c.stream->queued_bytes() == 0; }));
  CHECK(c.written == 1);
  c.stream->close();
  REQUIRE(p.run([&] { return c.closed && s.closed; }));
}

TEST_CASE("tls stream: set_listener(nullptr) then close() frees the stream without events") {
  TcpPair p;
  Peer c, s;
  attach_pair(p, c, s, nullptr, nullptr);
  start_pair(c, s, "");
  REQUIRE(c.stream->write("bye"));
  c.stream->set_listener(nullptr);
  c.stream->close();
  CHECK_FALSE(c.stream->write("more"));  // refused once closed
  REQUIRE(p.run([&] { return s.closed; }));
  CHECK(s.data == "bye");
  CHECK(s.eof);
  CHECK_FALSE(c.closed);  // no listener, no event; TcpPair's loop_close proves it was freed
}

}  // TEST_SUITE
