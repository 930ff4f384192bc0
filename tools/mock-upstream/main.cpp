// mock-upstream: a mock APNs HTTP/2 + TLS server for tests, development and the benchmark.
//
//   mock-upstream --listen 127.0.0.1:0 --cert C --key K [--client-ca CA] [--apns-public-key P]
//                 [--initial-streams N] [--max-streams N] [--goaway-after N] [--slow-ms N]
//                 [--delay-ms N] [--default BEHAVIOUR] [--plain] [--http1-control-port N]
//                 [--max-connections N] [--log-level L]
//
// Prints "listening on HOST:PORT" on stderr once ready (and "http1 control on 127.0.0.1:PORT"
// with --http1-control-port); runs until SIGTERM/SIGINT, then exits 0 with every handle closed.
//
// Endpoints (one router by path prefix; FCM routes plug in next to these):
//   POST /3/device/<hex token>   APNs provider API (upstreams.md): auth, apns-topic, payload size,
//                                token syntax checked in that order, then the scripted answer.
//   GET  /mock/stats             JSON counters: outcomes, statuses, per-path counts, connections,
//                                max concurrent streams seen. POST /mock/reset zeroes them.
//   GET|POST /mock/script        runtime behaviour: {"default":"503","delay_ms":20,"slow_ms":100}
//
// Authentication: --apns-public-key P → `authorization: bearer <JWT>` is verified (ES256, header
// alg+kid, claims iss+iat, iat at most 3600 s old): missing → 403 MissingProviderToken, bad →
// 403 InvalidProviderToken, old → 403 ExpiredProviderToken. --client-ca CA → TLS requires a
// client certificate signed by CA, and requests without a JWT are authorised by it. Neither →
// no authentication (development).
//
// Scripted answers by token prefix (case-insensitive; hex so that tokens stay valid):
//   | prefix | answer                                                            |
//   |--------|-------------------------------------------------------------------|
//   | 410    | 410 {"reason":"Unregistered","timestamp":<now ms>}                |
//   | 41e0   | 410 {"reason":"ExpiredToken","timestamp":<now ms>}                |
//   | 400b   | 400 {"reason":"BadDeviceToken"}                                   |
//   | 400c   | 400 {"reason":"DeviceTokenNotForTopic"}                           |
//   | 4290   | 429 {"reason":"TooManyRequests"}                                  |
//   | 5000   | 500 {"reason":"InternalServerError"}                              |
//   | 5030   | 503 {"reason":"ServiceUnavailable"}                               |
//   | dea1   | 200, but only after --slow-ms (default 2000) ms                   |
//   | f001   | RST_STREAM (INTERNAL_ERROR), no answer                            |
//   | f002   | connection dropped: TCP closed at once, other streams cut too     |
//   | f003   | never answered (stream stays open until the client gives up)      |
//   | f004   | GOAWAY (NO_ERROR, debug {"reason":"Shutdown"}) with last-stream-id |
//   |        | = the previous stream: this and later streams are unprocessed     |
//   | other  | the script default (200 unless --default / POST /mock/script)     |
// Every answer carries `apns-id` (the request's, or a generated lowercase UUID). --delay-ms /
// "delay_ms" delays every answer. --goaway-after N sends GOAWAY with last-stream-id = the N-th
// stream of each connection (processed); later streams are unprocessed.
// Streams: SETTINGS_MAX_CONCURRENT_STREAMS is --initial-streams (default 1 with token auth, else
// --max-streams) until the first successful token-auth request on a connection, then
// --max-streams (default 1000), as APNs does (a successful FCM send raises it too).
//
// FCM (fcm.h): POST /token (OAuth; --fcm-public-key P verifies the RS256 assertion, tokens live
// --fcm-token-ttl S seconds, default 3600), POST /v1/projects/<p>/messages:send (bearer token
// from /token, else 401 UNAUTHENTICATED), GET|POST /mock/fcm {"token_endpoint":"up"|"down",
// "token_ttl_s":N,"revoke_tokens":true}. Scripted by device-token prefix:
//   unreg → 404 UNREGISTERED; badtok → 400 INVALID_ARGUMENT (field violation message.token);
//   badpay → 400 INVALID_ARGUMENT (message.data); sender → 403 SENDER_ID_MISMATCH;
//   quota → 429 QUOTA_EXCEEDED; int500 → 500 INTERNAL; unav503 → 503 UNAVAILABLE;
//   thirdp → 401 THIRD_PARTY_AUTH_ERROR; flaky → 503 on a token's first request, then 200.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "apns.h"
#include "control.h"
#include "fcm.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/server.h"
#include "net/tls.h"
#include "server.h"
#include "stats.h"

using namespace aloha;
using namespace aloha::mock;

namespace {

struct Args {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string cert, key, client_ca, apns_public_key;
  std::string fcm_public_key;
  long fcm_token_ttl = 3600;
  bool plain = false;
  long initial_streams = -1;
  long max_streams = 1000;
  long goaway_after = 0;
  long slow_ms = 2000;
  long delay_ms = 0;
  long max_connections = 4096;
  long http1_control_port = -1;
  std::string default_behaviour = "ok";
  std::string log_level = "warn";
};

void usage(FILE* f) {
  std::fprintf(f,
               "usage: mock-upstream --listen HOST:PORT (--cert C --key K | --plain)\n"
               "  [--client-ca CA] [--apns-public-key PEM] [--initial-streams N]\n"
               "  [--fcm-public-key PEM] [--fcm-token-ttl SECONDS]\n"
               "  [--max-streams N] [--goaway-after N] [--slow-ms N] [--delay-ms N]\n"
               "  [--default BEHAVIOUR] [--http1-control-port N] [--max-connections N]\n"
               "  [--log-level error|warn|info|debug]\n"
               "See the table at the top of tools/mock-upstream/main.cpp or README.md.\n");
}

bool parse_long(const char* s, long lo, long hi, long& out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) return false;
  out = v;
  return true;
}

// false + message on stderr for bad arguments.
bool parse_args(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    if (opt == "--help" || opt == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (opt == "--plain") {
      a.plain = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "mock-upstream: %s needs a value\n", opt.c_str());
      return false;
    }
    const char* v = argv[++i];
    bool ok = true;
    if (opt == "--listen") {
      std::string s = v;
      size_t colon = s.rfind(':');
      long port = 0;
      ok = colon != std::string::npos && parse_long(s.c_str() + colon + 1, 0, 65535, port);
      a.host = s.substr(0, colon);
      if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
        a.host = a.host.substr(1, a.host.size() - 2);
      a.port = static_cast<int>(port);
    } else if (opt == "--cert") {
      a.cert = v;
    } else if (opt == "--key") {
      a.key = v;
    } else if (opt == "--client-ca") {
      a.client_ca = v;
    } else if (opt == "--apns-public-key") {
      a.apns_public_key = v;
    } else if (opt == "--fcm-public-key") {
      a.fcm_public_key = v;
    } else if (opt == "--fcm-token-ttl") {
      ok = parse_long(v, 1, 86400, a.fcm_token_ttl);
    } else if (opt == "--initial-streams") {
      ok = parse_long(v, 1, 1 << 30, a.initial_streams);
    } else if (opt == "--max-streams") {
      ok = parse_long(v, 1, 1 << 30, a.max_streams);
    } else if (opt == "--goaway-after") {
      ok = parse_long(v, 0, 1 << 30, a.goaway_after);
    } else if (opt == "--slow-ms") {
      ok = parse_long(v, 0, 600'000, a.slow_ms);
    } else if (opt == "--delay-ms") {
      ok = parse_long(v, 0, 600'000, a.delay_ms);
    } else if (opt == "--max-connections") {
      ok = parse_long(v, 1, 1'000'000, a.max_connections);
    } else if (opt == "--http1-control-port") {
      ok = parse_long(v, 0, 65535, a.http1_control_port);
    } else if (opt == "--default") {
      a.default_behaviour = v;
    } else if (opt == "--log-level") {
      a.log_level = v;
    } else {
      std::fprintf(stderr, "mock-upstream: unknown option %s\n", opt.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "mock-upstream: bad value for %s: %s\n", opt.c_str(), v);
      return false;
    }
  }
  if (!a.plain && (a.cert.empty() || a.key.empty())) {
    std::fprintf(stderr, "mock-upstream: --cert and --key are required (or --plain)\n");
    return false;
  }
  if (a.plain && !a.client_ca.empty()) {
    std::fprintf(stderr, "mock-upstream: --client-ca needs TLS\n");
    return false;
  }
  return true;
}

bool read_small_file(const std::string& path, std::string& out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char buf[4096];
  size_t n;
  out.clear();
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() < (1 << 20)) out.append(buf, n);
  bool ok = std::ferror(f) == 0;
  std::fclose(f);
  return ok;
}

// Everything the signal handler must reach.
struct Runtime {
  Server* server = nullptr;
  http::Server* h1 = nullptr;
  uv_signal_t sigterm{}, sigint{};
  bool stopping = false;
};

void on_signal(uv_signal_t* h, int signum) noexcept {
  auto* rt = static_cast<Runtime*>(h->data);
  if (rt->stopping) return;
  rt->stopping = true;
  LOG_INFO("mock-upstream: signal %d, shutting down", signum);
  uv_close(reinterpret_cast<uv_handle_t*>(&rt->sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&rt->sigint), nullptr);
  rt->server->shutdown([] {});
  if (rt->h1 != nullptr) rt->h1->shutdown(0, [] {});
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse_args(argc, argv, args)) {
    usage(stderr);
    return 2;
  }
  LogLevel level;
  if (!parse_log_level(args.log_level, level)) {
    std::fprintf(stderr, "mock-upstream: bad --log-level %s\n", args.log_level.c_str());
    return 2;
  }
  log_set_level(level);
  std::signal(SIGPIPE, SIG_IGN);

  Script script;
  script.slow_ms = args.slow_ms;
  script.delay_ms = args.delay_ms;
  if (!parse_behaviour(args.default_behaviour, script.default_behaviour)) {
    std::fprintf(stderr, "mock-upstream: unknown --default %s\n", args.default_behaviour.c_str());
    return 2;
  }

  ApnsOptions apns_opts;
  if (!args.apns_public_key.empty() && !read_small_file(args.apns_public_key, apns_opts.public_key_pem)) {
    std::fprintf(stderr, "mock-upstream: cannot read %s: %s\n", args.apns_public_key.c_str(),
                 std::strerror(errno));
    return 1;
  }
  apns_opts.cert_auth = !args.client_ca.empty();
  FcmOptions fcm_opts;
  fcm_opts.token_ttl_s = args.fcm_token_ttl;
  if (!args.fcm_public_key.empty() && !read_small_file(args.fcm_public_key, fcm_opts.public_key_pem)) {
    std::fprintf(stderr, "mock-upstream: cannot read %s: %s\n", args.fcm_public_key.c_str(),
                 std::strerror(errno));
    return 1;
  }

  std::unique_ptr<net::TlsContext> tls;
  if (!args.plain) {
    net::TlsContext::ServerOptions o;
    o.cert_file = args.cert;
    o.key_file = args.key;
    o.client_ca_file = args.client_ca;
    o.alpn = {"h2"};
    std::string err;
    tls = net::TlsContext::server(o, err);
    if (!tls) {
      std::fprintf(stderr, "mock-upstream: TLS: %s\n", err.c_str());
      return 1;
    }
  }

  Stats stats;
  Router router;
  ApnsHandler apns(apns_opts, stats, script, SystemClock::instance());
  ControlHandler control(stats, script, router);
  router.add(std::string(ApnsHandler::kPrefix), "apns", &apns);
  FcmState fcm_state(fcm_opts, SystemClock::instance());
  FcmSendHandler fcm(fcm_state, stats, script);
  OAuthTokenHandler oauth(fcm_state, stats);
  FcmControlHandler fcm_control(fcm_state);
  router.add(std::string(FcmSendHandler::kPrefix), "fcm", &fcm);
  router.add(std::string(OAuthTokenHandler::kPrefix), "oauth", &oauth);
  router.add(std::string(FcmControlHandler::kPrefix), "fcm_control", &fcm_control);  // before /mock/
  router.add("/mock/", "control", &control);

  ServerOptions sopts;
  sopts.max_streams = static_cast<uint32_t>(args.max_streams);
  sopts.initial_streams = args.initial_streams > 0 ? static_cast<uint32_t>(args.initial_streams)
                          : apns_opts.public_key_pem.empty() ? sopts.max_streams
                                                             : 1;
  sopts.goaway_after = static_cast<uint32_t>(args.goaway_after);
  sopts.max_connections = static_cast<size_t>(args.max_connections);

  uv_loop_t loop;
  uv_loop_init(&loop);
  int rc = 0;
  {
    Server server(&loop, sopts, tls.get(), router, stats);
    std::unique_ptr<http::Server> h1;
    Runtime rt;
    rt.server = &server;
    std::string err = server.listen(args.host, args.port);
    if (err.empty() && args.http1_control_port >= 0) {
      http::ServerLimits limits;
      limits.max_connections = 64;
      limits.max_body_bytes = 64 * 1024;
      h1 = std::make_unique<http::Server>(&loop, limits, [&control](http::Request&& req, http::Reply reply) {
        http::Response r;
        r.status = control.handle(req.method, req.path, req.body, r.body);
        reply.send(std::move(r));
      });
      err = h1->listen("127.0.0.1", static_cast<int>(args.http1_control_port));
      rt.h1 = h1.get();
    }
    if (!err.empty()) {
      std::fprintf(stderr, "mock-upstream: %s\n", err.c_str());
      rc = 1;
      server.shutdown([] {});
      if (h1) h1->shutdown(0, [] {});
    } else {
      uv_signal_init(&loop, &rt.sigterm);
      uv_signal_init(&loop, &rt.sigint);
      rt.sigterm.data = rt.sigint.data = &rt;
      uv_signal_start(&rt.sigterm, on_signal, SIGTERM);
      uv_signal_start(&rt.sigint, on_signal, SIGINT);
      std::fprintf(stderr, "listening on %s:%d\n", args.host.c_str(), server.port());
      if (h1) std::fprintf(stderr, "http1 control on 127.0.0.1:%d\n", h1->port());
      std::fflush(stderr);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  int close_rc = uv_loop_close(&loop);
  if (close_rc != 0) {
    std::fprintf(stderr, "mock-upstream: uv_loop_close: %s\n", uv_strerror(close_rc));
    return 1;
  }
  return rc;
}
