#include "push/push_setup.h"

#include <utility>

#include "core/log.h"
#include "net/tls.h"
#include "push/fcm_pusher.h"
#include "push/jwt.h"

namespace aloha::push {

ApnsPusherOptions apns_options_for(const ApnsConfig& section, const Config& cfg) {
  ApnsPusherOptions o;
  o.name = section.name.empty() ? "apns" : "apns." + section.name;
  o.max_pending = cfg.push.retry_queue_max > 0 ? cfg.push.retry_queue_max : 10'000;
  o.warn_interval_ms = cfg.push.warn_interval_ms;
  return o;
}

h2::ConnectionOptions apns_connection_for(const ApnsConfig& section) {
  h2::ConnectionOptions c;
  c.host = section.host.empty()
               ? (section.environment == "sandbox" ? "api.sandbox.push.apple.com" : "api.push.apple.com")
               : section.host;
  c.port = static_cast<uint16_t>(section.port);
  c.authority = c.port == 443 ? c.host : c.host + ":" + std::to_string(c.port);
  // APNs: keep connections for hours, PING when idle (upstreams.md). One stream until the first
  // request succeeds is what nghttp2's default before SETTINGS gives us.
  c.ping_idle_ms = 60'000;
  c.ping_timeout_ms = 10'000;
  c.session.max_request_body = 8 * 1024;  // > 5120 (voip); larger bodies are refused earlier
  c.session.max_response_body = 4 * 1024;  // APNs answers are small JSON objects
  return c;
}

namespace {

std::unique_ptr<Pusher> build_apns(uv_loop_t* loop, const ApnsConfig& a, const Config& cfg,
                                   const Clock& clock, std::string& err) {
  const std::string label = a.label();
  net::TlsContext::ClientOptions tls_opts;
  tls_opts.ca_file = a.ca_file;
  tls_opts.alpn = {"h2"};
  std::unique_ptr<ApnsTokenProvider> tokens;
  if (a.token_auth()) {
    std::string e;
    tokens = ApnsTokenProvider::load(a.key_file, a.key_id, a.team_id, clock, e);
    if (!tokens) {
      err = label + ": key_file " + a.key_file + ": " + e;
      return nullptr;
    }
  } else if (!a.cert_file.empty()) {
    // Certificate auth: the client certificate goes into the TLS handshake, no header.
    tls_opts.cert_file = a.cert_file;
    tls_opts.key_file = a.cert_key_file.empty() ? a.cert_file : a.cert_key_file;
  } else {
    err = label + ": no credentials (key_file, or cert_file)";
    return nullptr;
  }
  std::string e;
  auto tls = net::TlsContext::client(tls_opts, e);
  if (!tls) {
    // TlsContext names the file that failed (CA bundle, certificate or key).
    err = label + ": " + e;
    return nullptr;
  }
  h2::ConnectionOptions conn = apns_connection_for(a);
  LOG_INFO("%s: %s auth, %s environment, upstream %s", label.c_str(),
           a.token_auth() ? "token" : "certificate", a.environment.c_str(), conn.authority.c_str());
  return ApnsPusher::create(loop, apns_options_for(a, cfg), std::move(conn), std::move(tls),
                            std::move(tokens), clock);
}

}  // namespace

std::unique_ptr<PusherRegistry> build_pushers(uv_loop_t* loop, const Config& cfg,
                                              const Clock& clock, std::string& err) {
  auto registry = std::make_unique<PusherRegistry>();
  for (const ApnsConfig& a : cfg.apns) {
    std::unique_ptr<Pusher> p = build_apns(loop, a, cfg, clock, err);
    if (!p) {
      // Pushers built so far own uv timers: close them (no loop iteration runs them, the
      // close callbacks fire when the caller closes the loop).
      registry->close_all([] {});
      return nullptr;
    }
    registry->add_apns(std::move(p), a.topics);
  }

  if (cfg.fcm.enabled()) {
    FcmPusherOptions fo;
    fo.max_pending = cfg.push.retry_queue_max > 0 ? cfg.push.retry_queue_max : 10'000;
    fo.credential_log_interval_ms = cfg.push.warn_interval_ms;
    std::unique_ptr<FcmPusher> f = FcmPusher::create(loop, cfg.fcm, clock, err, fo);
    if (!f) {
      registry->close_all([] {});
      return nullptr;
    }
    registry->set_fcm(std::move(f));
  }

  return registry;
}

}  // namespace aloha::push
