// h2::Session against an in-memory nghttp2 server session: bytes are pumped between the two in
// memory, no sockets. The server side is plain nghttp2 (independent of the code under test).
#include <doctest/doctest.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "h2/session.h"

using namespace aloha::h2;

namespace {

struct ServerStream {
  int32_t id = 0;
  std::string method, path, authority, scheme;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> never_indexed;  // names received as "literal never indexed"
  std::string body;
  bool complete = false;   // END_STREAM received
  std::string response_body;
  size_t response_off = 0;
};

class MemServer {
 public:
  explicit MemServer(uint32_t max_streams = 100) {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_stream_close);
    nghttp2_session_server_new(&ng, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    set_max_streams(max_streams);
  }
  ~MemServer() { nghttp2_session_del(ng); }

  void set_max_streams(uint32_t n) {
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, n}};
    nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, iv, 1);
  }

  void respond(int32_t sid, int status, std::string body,
               std::vector<std::pair<std::string, std::string>> extra = {}) {
    ServerStream& s = streams.at(sid);
    s.response_body = std::move(body);
    std::string st = std::to_string(status);
    std::vector<nghttp2_nv> nv;
    auto add = [&](const std::string& n, const std::string& v) {
      nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    };
    std::string status_name = ":status";
    add(status_name, st);
    for (auto& [n, v] : extra) add(n, v);
    nghttp2_data_provider prov{};
    prov.read_callback = &read_body;
    REQUIRE(nghttp2_submit_response(ng, sid, nv.data(), nv.size(), &prov) == 0);
  }

  // Requests fully received and not yet answered, in stream id order.
  std::vector<int32_t> ready() const {
    std::vector<int32_t> out;
    for (auto& [id, s] : streams)
      if (s.complete && !answered.count(id)) out.push_back(id);
    return out;
  }
  void answer_all(int status, const std::string& body) {
    for (int32_t id : ready()) {
      answered[id] = true;
      respond(id, status, body);
    }
  }

  nghttp2_session* ng = nullptr;
  std::map<int32_t, ServerStream> streams;  // open streams
  std::map<int32_t, bool> answered;
  size_t open = 0, max_open = 0, total_requests = 0;
  bool got_ping_ack = false;

 private:
  static MemServer* me(void* u) { return static_cast<MemServer*>(u); }
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* u) {
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      me(u)->streams[f->hd.stream_id].id = f->hd.stream_id;
      me(u)->open++;
      me(u)->max_open = std::max(me(u)->max_open, me(u)->open);
      me(u)->total_requests++;
    }
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
                       const uint8_t* v, size_t vl, uint8_t flags, void* u) {
    auto it = me(u)->streams.find(f->hd.stream_id);
    if (it == me(u)->streams.end()) return 0;
    std::string name((const char*)n, nl), value((const char*)v, vl);
    if (flags & NGHTTP2_NV_FLAG_NO_INDEX) it->second.never_indexed.push_back(name);
    if (name == ":method") it->second.method = value;
    else if (name == ":path") it->second.path = value;
    else if (name == ":authority") it->second.authority = value;
    else if (name == ":scheme") it->second.scheme = value;
    else it->second.headers.emplace_back(name, value);
    return 0;
  }
  static int on_data(nghttp2_session*, uint8_t, int32_t sid, const uint8_t* d, size_t l, void* u) {
    auto it = me(u)->streams.find(sid);
    if (it != me(u)->streams.end()) it->second.body.append((const char*)d, l);
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* u) {
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      auto it = me(u)->streams.find(f->hd.stream_id);
      if (it != me(u)->streams.end()) it->second.complete = true;
    }
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) me(u)->got_ping_ack = true;
    return 0;
  }
  static int on_stream_close(nghttp2_session*, int32_t sid, uint32_t, void* u) {
    if (me(u)->streams.erase(sid)) me(u)->open--;
    me(u)->answered.erase(sid);
    return 0;
  }
  static ssize_t read_body(nghttp2_session*, int32_t sid, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source*, void* u) {
    ServerStream& s = me(u)->streams.at(sid);
    size_t n = std::min(len, s.response_body.size() - s.response_off);
    std::memcpy(buf, s.response_body.data() + s.response_off, n);
    s.response_off += n;
    if (s.response_off == s.response_body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
  }
};

// Moves bytes both ways until neither side has anything to say. Returns false if the client
// reported a connection error.
bool pump(Session& client, MemServer& server, int max_rounds = 10000) {
  bool ok = true;
  for (int round = 0; round < max_rounds; ++round) {
    bool progress = false;
    std::string out;
    if (client.take_output(out) > 0) {
      progress = true;
      ssize_t rv = nghttp2_session_mem_recv(server.ng, (const uint8_t*)out.data(), out.size());
      REQUIRE(rv == (ssize_t)out.size());
    }
    for (;;) {
      const uint8_t* p;
      ssize_t n = nghttp2_session_mem_send(server.ng, &p);
      REQUIRE(n >= 0);
      if (n == 0) break;
      progress = true;
      std::string chunk((const char*)p, (size_t)n);
      if (!client.feed((const uint8_t*)chunk.data(), chunk.size())) ok = false;
    }
    if (!progress) return ok;
  }
  FAIL("pump did not settle");
  return ok;
}

H2Request make_req(const std::string& path, std::string body = "{}") {
  H2Request r;
  r.method = "POST";
  r.path = path;
  r.authority = "api.example.test";
  r.headers = {{"apns-topic", "org.example.app"}, {"apns-push-type", "alert"}};
  r.body = std::move(body);
  return r;
}

}  // namespace

TEST_SUITE("h2") {

TEST_CASE("session: request/response round trip carries method, path, headers and both bodies") {
  Session client;
  MemServer server;
  H2Response got;
  int calls = 0;
  uint64_t id = client.submit(make_req("/3/device/abc", R"({"aps":{}})"), [&](const H2Response& r) {
    got = r;
    ++calls;
  });
  REQUIRE(id > 0);
  pump(client, server);
  auto ready = server.ready();
  REQUIRE(ready.size() == 1);
  const ServerStream& s = server.streams.at(ready[0]);
  CHECK(s.method == "POST");
  CHECK(s.path == "/3/device/abc");
  CHECK(s.authority == "api.example.test");
  CHECK(s.scheme == "https");
  CHECK(s.body == R"({"aps":{}})");
  REQUIRE(s.headers.size() == 2);
  CHECK(s.headers[0].first == "apns-topic");
  CHECK(s.headers[1].first == "apns-push-type");
  CHECK(calls == 0);

  server.answered[ready[0]] = true;
  server.respond(ready[0], 200, "hello", {{"apns-id", "0a1b2c3d-0000-0000-0000-000000000001"}});
  pump(client, server);
  REQUIRE(calls == 1);
  CHECK(got.request_id == id);
  CHECK(got.status == 200);
  CHECK(got.failure == FailureKind::none);
  CHECK(got.request_sent);
  CHECK(got.body == "hello");
  REQUIRE(got.header("apns-id") != nullptr);
  CHECK(*got.header("apns-id") == "0a1b2c3d-0000-0000-0000-000000000001");
  CHECK(client.pending() == 0);
  CHECK(client.active() == 0);
}

TEST_CASE("session: MAX_CONCURRENT_STREAMS of 1 queues requests; raising it to 100 lets them flow") {
  Session client;
  MemServer server(1);
  std::vector<int> statuses;
  for (int i = 0; i < 10; ++i)
    REQUIRE(client.submit(make_req("/r/" + std::to_string(i)), [&](const H2Response& r) {
      statuses.push_back(r.status);
    }) > 0);
  pump(client, server);
  CHECK(client.max_concurrent() == 1);
  CHECK(server.open == 1);
  CHECK(client.active() == 1);
  CHECK(client.queued() == 9);
  CHECK(client.free_slots() == 0);

  // Answer the single stream: the next one starts as it closes.
  server.answer_all(200, "");
  pump(client, server);
  CHECK(statuses.size() == 1);
  CHECK(server.open == 1);
  CHECK(client.queued() == 8);
  CHECK(server.max_open == 1);

  // The server raises the limit (as APNs does after the first success): the rest flow at once.
  server.set_max_streams(100);
  pump(client, server);
  CHECK(client.max_concurrent() == 100);
  CHECK(server.open == 9);
  CHECK(client.queued() == 0);
  server.answer_all(200, "ok");
  pump(client, server);
  CHECK(statuses.size() == 10);
  for (int st : statuses) CHECK(st == 200);
  CHECK(server.total_requests == 10);
}

TEST_CASE("session: GOAWAY fails streams above last-stream-id as unprocessed and refuses new ones") {
  Session client;
  MemServer server(100);
  std::map<uint64_t, H2Response> results;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(client.submit(make_req("/g/" + std::to_string(i)),
                                [&](const H2Response& r) { results[r.request_id] = r; }));
  pump(client, server);
  REQUIRE(server.ready().size() == 5);  // streams 1,3,5,7,9
  // Process streams 1 and 3 only, announce GOAWAY with last_stream_id 3.
  REQUIRE(nghttp2_submit_goaway(server.ng, NGHTTP2_FLAG_NONE, 3, NGHTTP2_NO_ERROR, nullptr, 0) == 0);
  server.answered[1] = server.answered[3] = true;
  server.respond(1, 200, "");
  server.respond(3, 410, R"({"reason":"Unregistered"})");
  pump(client, server);
  REQUIRE(results.size() == 5);
  CHECK(results[ids[0]].status == 200);
  CHECK(results[ids[1]].status == 410);
  CHECK(results[ids[1]].body == R"({"reason":"Unregistered"})");
  for (int i = 2; i < 5; ++i) {
    CHECK(results[ids[i]].status == 0);
    CHECK(results[ids[i]].failure == FailureKind::goaway_unprocessed);
    // The request comes back whole, so the owner can replay it without having kept a copy.
    REQUIRE(results[ids[i]].request.has_value());
    CHECK(results[ids[i]].request->path == "/g/" + std::to_string(i));
    CHECK(results[ids[i]].request->body == "{}");
    CHECK(results[ids[i]].request->headers.size() == 2);
  }
  CHECK_FALSE(results[ids[0]].request.has_value());  // answered: nothing to hand back
  CHECK(client.goaway_received());
  CHECK(client.goaway_last_stream_id() == 3);
  CHECK_FALSE(client.accepting());
  CHECK(client.submit(make_req("/late"), [](const H2Response&) {}) == 0);
  CHECK(client.finished());
}

TEST_CASE("session: GOAWAY reports requests still queued behind the stream limit as unprocessed") {
  Session client;
  MemServer server(1);
  std::vector<H2Response> results;
  for (int i = 0; i < 3; ++i)
    client.submit(make_req("/q"), [&](const H2Response& r) { results.push_back(r); });
  pump(client, server);
  REQUIRE(client.queued() == 2);
  nghttp2_submit_goaway(server.ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  pump(client, server);
  REQUIRE(results.size() == 3);
  for (auto& r : results) {
    CHECK(r.failure == FailureKind::goaway_unprocessed);
  }
  // The queued ones never went out; the open one did.
  int sent = 0;
  for (auto& r : results) sent += r.request_sent ? 1 : 0;
  CHECK(sent == 1);
}

TEST_CASE("session: RST_STREAM from the server is reported as reset with its error code") {
  Session client;
  MemServer server;
  std::vector<H2Response> results;
  client.submit(make_req("/a"), [&](const H2Response& r) { results.push_back(r); });
  client.submit(make_req("/b"), [&](const H2Response& r) { results.push_back(r); });
  pump(client, server);
  REQUIRE(server.ready().size() == 2);
  nghttp2_submit_rst_stream(server.ng, NGHTTP2_FLAG_NONE, 1, NGHTTP2_INTERNAL_ERROR);
  server.answered[1] = true;
  pump(client, server);
  REQUIRE(results.size() == 1);
  CHECK(results[0].failure == FailureKind::reset);
  CHECK(results[0].error_code == NGHTTP2_INTERNAL_ERROR);
  CHECK(results[0].status == 0);
  // The other stream is unaffected.
  server.answer_all(200, "");
  pump(client, server);
  REQUIRE(results.size() == 2);
  CHECK(results[1].status == 200);
  CHECK(client.accepting());
}

TEST_CASE("session: 2,000 error responses with 200-byte bodies do not stall flow control") {
  // Default-sized windows (64 KiB): 2,000 x 200 bytes only get through if the client keeps
  // sending WINDOW_UPDATE for the bytes it receives.
  SessionOptions opt;
  opt.max_queued = 4096;
  opt.stream_window = 65535;
  opt.connection_window = 65535;
  Session client(opt);
  MemServer server(100);
  const std::string body(200, 'e');
  size_t done = 0, bad = 0;
  for (int i = 0; i < 2000; ++i) {
    REQUIRE(client.submit(make_req("/e"), [&](const H2Response& r) {
      ++done;
      if (r.status != 400 || r.body != body) ++bad;
    }) > 0);
  }
  for (int round = 0; round < 200 && done < 2000; ++round) {
    pump(client, server);
    server.answer_all(400, body);
  }
  pump(client, server);
  CHECK(done == 2000);
  CHECK(bad == 0);
  // The client kept granting window (nghttp2 tops it up once half is consumed).
  CHECK(nghttp2_session_get_remote_window_size(server.ng) >= 65535 / 2);
  CHECK(server.max_open <= 100);
}

TEST_CASE("session: response bodies beyond the bound are truncated but fully consumed") {
  SessionOptions opt;
  opt.max_response_body = 100;
  Session client(opt);
  MemServer server;
  H2Response got;
  client.submit(make_req("/big"), [&](const H2Response& r) { got = r; });
  pump(client, server);
  server.answer_all(500, std::string(200000, 'x'));
  pump(client, server);
  CHECK(got.status == 500);
  CHECK(got.body.size() == 100);
  CHECK(got.body_truncated);
}

TEST_CASE("session: PING is acknowledged; an unanswered PING fails the connection when expired") {
  Session client;
  MemServer server;
  client.ping();
  CHECK(client.ping_outstanding());
  pump(client, server);
  CHECK_FALSE(client.ping_outstanding());

  // Server PINGs are acked by the client automatically.
  nghttp2_submit_ping(server.ng, NGHTTP2_FLAG_NONE, nullptr);
  pump(client, server);
  CHECK(server.got_ping_ack);

  // Now a PING the server never sees: the owner's deadline fires and open requests fail.
  std::vector<H2Response> results;
  client.submit(make_req("/p"), [&](const H2Response& r) { results.push_back(r); });
  client.ping();
  std::string out;
  client.take_output(out);  // bytes lost on the way
  CHECK(client.ping_outstanding());
  client.ping_expired();
  REQUIRE(results.size() == 1);
  CHECK(results[0].failure == FailureKind::connection_lost);
  CHECK(results[0].request_sent);
  CHECK(client.failed());
}

TEST_CASE("session: malformed bytes from the server are a connection error") {
  Session client;
  MemServer server;
  std::vector<H2Response> results;
  client.submit(make_req("/m"), [&](const H2Response& r) { results.push_back(r); });
  std::string out;
  client.take_output(out);
  const char junk[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  CHECK_FALSE(client.feed(reinterpret_cast<const uint8_t*>(junk), sizeof junk - 1));
  CHECK(client.failed());
  REQUIRE(results.size() == 1);
  CHECK(results[0].failure == FailureKind::connection_lost);
  CHECK(client.submit(make_req("/n"), [](const H2Response&) {}) == 0);
  // The GOAWAY nghttp2 queued is still handed out, so the peer learns why.
  std::string tail;
  client.take_output(tail);
  CHECK(tail.size() >= 17);  // 9-byte frame header + 8-byte GOAWAY payload
}

TEST_CASE("session: cancel fails a request with timeout; queued and open alike") {
  Session client;
  MemServer server(1);
  std::vector<H2Response> results;
  uint64_t a = client.submit(make_req("/a"), [&](const H2Response& r) { results.push_back(r); });
  uint64_t b = client.submit(make_req("/b"), [&](const H2Response& r) { results.push_back(r); });
  pump(client, server);
  REQUIRE(client.queued() == 1);
  CHECK(client.cancel(b));
  REQUIRE(results.size() == 1);
  CHECK(results[0].failure == FailureKind::timeout);
  CHECK_FALSE(results[0].request_sent);
  CHECK(client.cancel(a));
  REQUIRE(results.size() == 2);
  CHECK(results[1].request_sent);
  CHECK_FALSE(client.cancel(a));
  pump(client, server);
  CHECK(server.open == 0);  // the RST_STREAM(CANCEL) reached the server
  CHECK(client.pending() == 0);
}

TEST_CASE("session: a shared body is sent as is; a finished request's id stays unknown after its slot is reused") {
  Session client;
  MemServer server;
  auto shared = std::make_shared<const std::string>(R"({"aps":{"alert":"shared"}})");
  std::vector<H2Response> results;
  H2Request r = make_req("/3/device/one", "ignored");
  r.shared_body = shared;
  uint64_t a = client.submit(std::move(r), [&](const H2Response& resp) { results.push_back(resp); });
  REQUIRE(a > 0);
  pump(client, server);
  auto ready = server.ready();
  REQUIRE(ready.size() == 1);
  CHECK(server.streams.at(ready[0]).body == *shared);
  server.answered[ready[0]] = true;
  server.respond(ready[0], 200, "", {});
  pump(client, server);
  REQUIRE(results.size() == 1);
  CHECK(results[0].request_id == a);
  CHECK(shared.use_count() == 1);  // the finished request let go of the buffer
  // The next request takes the same slot under a new id: the old id cannot cancel it.
  uint64_t b = client.submit(make_req("/3/device/two"), [&](const H2Response& resp) { results.push_back(resp); });
  REQUIRE(b > 0);
  CHECK(b != a);
  CHECK_FALSE(client.cancel(a));
  CHECK(client.pending() == 1);
  CHECK(client.cancel(b));
  REQUIRE(results.size() == 2);
  CHECK(results[1].failure == FailureKind::timeout);
}

TEST_CASE("session: a no_index header is sent never-indexed and stays out of the HPACK table") {
  Session client;
  MemServer server;
  std::vector<size_t> table_after;
  for (int i = 0; i < 3; ++i) {
    H2Request r = make_req("/3/device/t" + std::to_string(i));
    r.headers.push_back({"apns-id", "0a1b2c3d-0000-0000-0000-00000000000" + std::to_string(i), {}, true});
    REQUIRE(client.submit(std::move(r), [](const H2Response&) {}) > 0);
    pump(client, server);
    auto ready = server.ready();
    REQUIRE(ready.size() == 1);
    const ServerStream& s = server.streams.at(ready[0]);
    REQUIRE(s.headers.size() == 3);
    CHECK(s.headers[2].second == "0a1b2c3d-0000-0000-0000-00000000000" + std::to_string(i));
    REQUIRE(s.never_indexed.size() == 1);
    CHECK(s.never_indexed[0] == "apns-id");
    table_after.push_back(nghttp2_session_get_hd_inflate_dynamic_table_size(server.ng));
    server.answered[ready[0]] = true;
    server.respond(ready[0], 200, "", {});
    pump(client, server);
  }
  // The repeated headers were indexed by the first request; the unique ones added nothing since.
  CHECK(table_after[0] > 0);
  CHECK(table_after[1] == table_after[0]);
  CHECK(table_after[2] == table_after[0]);
}

TEST_CASE("session: take_output(out, max) hands out a batch in pieces of about max bytes") {
  Session client;
  MemServer server;
  pump(client, server);  // SETTINGS both ways: the stream limit is known
  for (int i = 0; i < 8; ++i)
    REQUIRE(client.submit(make_req("/3/device/p" + std::to_string(i), std::string(3000, 'x')),
                          [](const H2Response&) {}) > 0);
  std::string all;
  int pieces = 0;
  for (;;) {
    std::string out;
    size_t n = client.take_output(out, 4096);
    if (n == 0) break;
    ++pieces;
    CHECK(n == out.size());
    CHECK(n < 4096 + 3000 + 200);  // stops after the frame that reaches max
    all += out;
  }
  CHECK(pieces >= 4);  // 8 × 3 KB bodies: one piece without the bound
  REQUIRE(nghttp2_session_mem_recv(server.ng, (const uint8_t*)all.data(), all.size()) == (ssize_t)all.size());
  CHECK(server.ready().size() == 8);
}

TEST_CASE("session: release_idle_memory gives back the block cache and idle slots; requests flow after it") {
  Session client;
  MemServer server;
  std::vector<H2Response> results;
  auto cb = [&](const H2Response& r) { results.push_back(r); };
  std::vector<uint64_t> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(client.submit(make_req("/r/" + std::to_string(i)), cb));
  pump(client, server);
  server.answer_all(200, "");
  pump(client, server);
  REQUIRE(results.size() == 50);
  REQUIRE(client.pending() == 0);
  size_t busy = client.idle_capacity();
  CHECK(busy > 50 * 100);  // 50 stream slots and the cached nghttp2 blocks of their frames

  client.release_idle_memory();
  CHECK(client.idle_capacity() < 64);  // at most an empty string's inline buffer
  CHECK_FALSE(client.cancel(ids[0]));  // ids from before stay unknown
  CHECK_FALSE(client.cancel(ids[49]));

  // The session works as before: a request open during a release keeps its slot.
  uint64_t a = client.submit(make_req("/after/1"), cb);
  REQUIRE(a > 0);
  pump(client, server);
  client.release_idle_memory();
  CHECK(client.pending() == 1);
  CHECK(client.idle_capacity() > 0);  // the open request's slot stays
  server.answer_all(204, "");
  pump(client, server);
  REQUIRE(results.size() == 51);
  CHECK(results[50].request_id == a);
  CHECK(results[50].status == 204);
  CHECK(server.total_requests == 51);
}

TEST_CASE("session: keep_response_headers stores only the listed response headers") {
  SessionOptions o;
  o.keep_response_headers = {"retry-after"};
  Session client(o);
  MemServer server;
  std::vector<H2Response> results;
  REQUIRE(client.submit(make_req("/a"), [&](const H2Response& r) { results.push_back(r); }) > 0);
  pump(client, server);
  auto ready = server.ready();
  REQUIRE(ready.size() == 1);
  server.answered[ready[0]] = true;
  server.respond(ready[0], 503, R"({"reason":"ServiceUnavailable"})",
                 {{"apns-id", "0a1b2c3d-0000-0000-0000-000000000001"}, {"retry-after", "5"}});
  pump(client, server);
  REQUIRE(results.size() == 1);
  CHECK(results[0].status == 503);
  CHECK(results[0].headers.size() == 1);
  REQUIRE(results[0].header("retry-after") != nullptr);
  CHECK(*results[0].header("retry-after") == "5");
  CHECK(results[0].header("apns-id") == nullptr);
  CHECK(results[0].body == R"({"reason":"ServiceUnavailable"})");
}

TEST_CASE("session: queue bound and body bound refuse without calling back") {
  SessionOptions opt;
  opt.max_queued = 2;
  opt.max_request_body = 10;
  Session client(opt);
  int calls = 0;
  auto cb = [&](const H2Response&) { ++calls; };
  CHECK(client.submit(make_req("/x", std::string(11, 'b')), cb) == 0);
  // streams_before_settings = 1: one starts, two wait, the fourth is refused.
  CHECK(client.submit(make_req("/1"), cb) > 0);
  CHECK(client.submit(make_req("/2"), cb) > 0);
  CHECK(client.submit(make_req("/3"), cb) > 0);
  CHECK(client.submit(make_req("/4"), cb) == 0);
  CHECK(calls == 0);
  // A refused request is left with the caller, untouched.
  H2Request keep = make_req("/5", "body");
  CHECK(client.submit(std::move(keep), cb) == 0);
  CHECK(keep.path == "/5");
  CHECK(keep.body == "body");
  CHECK(keep.headers.size() == 2);
  client.terminate();
  CHECK(calls == 3);
}

TEST_CASE("session: a completion may destroy the session") {
  auto* client = new Session();
  MemServer server;
  int calls = 0;
  client->submit(make_req("/d"), [&](const H2Response&) {
    ++calls;
    delete client;
    client = nullptr;
  });
  client->submit(make_req("/e"), [&](const H2Response&) { ++calls; });
  client->terminate();
  CHECK(calls == 1);
  CHECK(client == nullptr);
}

}  // TEST_SUITE
