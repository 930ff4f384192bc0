#include "push/oauth.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/log.h"
#include "push/jwt.h"

namespace aloha::push {

bool parse_url(std::string_view url, UrlParts& out, std::string& err) {
  UrlParts u;
  if (url.rfind("https://", 0) == 0) {
    url.remove_prefix(8);
  } else if (url.rfind("http://", 0) == 0) {
    u.tls = false;
    u.port = 80;
    url.remove_prefix(7);
  } else {
    err = "not an https:// URL";
    return false;
  }
  size_t slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  u.path = slash == std::string_view::npos ? "" : std::string(url.substr(slash));
  std::string_view port_text;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      err = "unterminated IPv6 address";
      return false;
    }
    u.host = std::string(hostport.substr(1, close - 1));
    std::string_view rest = hostport.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        err = "garbage after IPv6 address";
        return false;
      }
      port_text = rest.substr(1);
    }
  } else {
    size_t colon = hostport.rfind(':');
    u.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) port_text = hostport.substr(colon + 1);
  }
  if (u.host.empty()) {
    err = "missing host";
    return false;
  }
  if (!port_text.empty()) {
    unsigned long p = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || p > 65535) {
        err = "bad port";
        return false;
      }
      p = p * 10 + static_cast<unsigned long>(c - '0');
    }
    if (p == 0 || p > 65535) {
      err = "bad port";
      return false;
    }
    u.port = static_cast<uint16_t>(p);
  }
  bool v6 = u.host.find(':') != std::string::npos;
  u.authority.clear();
  if (v6) u.authority.push_back('[');
  u.authority.append(u.host);
  if (v6) u.authority.push_back(']');
  if (u.port != (u.tls ? 443 : 80)) {
    u.authority.push_back(':');
    u.authority.append(std::to_string(u.port));
  }
  out = std::move(u);
  return true;
}

namespace {

bool string_field(const rapidjson::Document& doc, const char* key, std::string& out,
                  std::string& err) {
  auto it = doc.FindMember(key);
  if (it == doc.MemberEnd() || !it->value.IsString() || it->value.GetStringLength() == 0) {
    err = std::string("missing or empty \"") + key + "\"";
    return false;
  }
  out.assign(it->value.GetString(), it->value.GetStringLength());
  return true;
}

void json_string(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

}  // namespace

bool parse_service_account(std::string_view json, ServiceAccount& out, std::string& err) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    err = "not a JSON object (expected a Google service-account key file)";
    return false;
  }
  ServiceAccount sa;
  if (!string_field(doc, "project_id", sa.project_id, err) ||
      !string_field(doc, "client_email", sa.client_email, err) ||
      !string_field(doc, "private_key", sa.private_key_pem, err) ||
      !string_field(doc, "token_uri", sa.token_uri, err))
    return false;
  // project_id goes into the request path: Google's ids are [a-z0-9-]; refuse anything that
  // would need escaping rather than send a malformed :path.
  for (char c : sa.project_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok) {
      err = "\"project_id\" has characters a Google project id cannot have";
      return false;
    }
  }
  std::string uerr;
  if (!parse_url(sa.token_uri, sa.token_url, uerr)) {
    err.assign("\"token_uri\" ").append(uerr);
    return false;
  }
  if (sa.token_url.path.empty()) sa.token_url.path.push_back('/');
  out = std::move(sa);
  return true;
}

bool load_service_account(const std::string& path, ServiceAccount& out,
                          std::unique_ptr<net::PrivateKey>& key, std::string& err) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    err = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::string text;
  char buf[4096];
  size_t n;
  // Service-account files are ~2.3 KB; 1 MB is a generous bound against a wrong path.
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() < (1u << 20)) text.append(buf, n);
  bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (read_error) {
    err = path + ": read error";
    return false;
  }
  std::string perr;
  if (!parse_service_account(text, out, perr)) {
    err = path + ": " + perr;
    return false;
  }
  key = net::PrivateKey::from_pem(out.private_key_pem, perr);
  if (!key) {
    err = path + ": \"private_key\": " + perr;
    return false;
  }
  if (!key->is_rsa()) {
    err = path + ": \"private_key\" is not an RSA key (Google service accounts use RS256)";
    key.reset();
    return false;
  }
  // Sign once now so a key that cannot sign stops start-up, not the first push.
  if (make_assertion(out, *key, 0).empty()) {
    err = path + ": \"private_key\" cannot sign RS256";
    key.reset();
    return false;
  }
  return true;
}

std::string make_assertion(const ServiceAccount& sa, net::PrivateKey& key, int64_t now_s,
                           int64_t lifetime_s) {
  // RFC 7523 §3 and Google's service-account flow: exp may be at most one hour after iat.
  lifetime_s = std::clamp<int64_t>(lifetime_s, 1, 3600);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("iss");
  json_string(w, sa.client_email);
  w.Key("scope");
  json_string(w, kFcmScope);
  w.Key("aud");
  json_string(w, sa.token_uri);
  w.Key("iat");
  w.Int64(now_s);
  w.Key("exp");
  w.Int64(now_s + lifetime_s);
  w.EndObject();
  return sign_jwt(JwtAlg::rs256, R"({"alg":"RS256","typ":"JWT"})",
                  std::string_view(sb.GetString(), sb.GetSize()), key);
}

std::string token_request_body(std::string_view assertion) {
  // The grant type's ':' must be percent-encoded in a form body (RFC 3986 / HTML forms); the
  // assertion is base64url and dots, which need no escaping.
  std::string body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
  body.append(assertion);
  return body;
}

bool parse_token_response(std::string_view body, std::string& access_token, int64_t& expires_in_s) {
  if (body.empty() || body.size() > 64 * 1024) return false;
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return false;
  auto tok = doc.FindMember("access_token");
  auto exp = doc.FindMember("expires_in");
  if (tok == doc.MemberEnd() || !tok->value.IsString() || tok->value.GetStringLength() == 0)
    return false;
  if (exp == doc.MemberEnd() || !exp->value.IsInt64() || exp->value.GetInt64() <= 0) return false;
  // The token goes into a header: refuse control characters rather than emit a broken field.
  std::string_view t(tok->value.GetString(), tok->value.GetStringLength());
  for (char c : t)
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return false;
  access_token.assign(t);
  expires_in_s = exp->value.GetInt64();
  return true;
}

const char* token_state_name(TokenState s) {
  switch (s) {
    case TokenState::ready: return "ready";
    case TokenState::unavailable: return "unavailable";
    case TokenState::rejected: return "rejected";
    case TokenState::pending: return "pending";
  }
  return "?";
}

OAuthTokenCache::OAuthTokenCache(ServiceAccount sa, std::unique_ptr<net::PrivateKey> key,
                                 const Clock& clock, Fetcher fetch, Scheduler schedule,
                                 OAuthOptions options, net::Backoff::RandomSource random)
    : sa_(std::move(sa)), key_(std::move(key)), clock_(clock), fetch_(std::move(fetch)),
      schedule_(std::move(schedule)), opt_(options), backoff_(options.backoff, std::move(random)) {}

OAuthTokenCache::~OAuthTokenCache() { *alive_ = false; }

bool OAuthTokenCache::usable() const {
  return !authorization_.empty() && clock_.mono_ms() < expires_at_ms_;
}

const std::string* OAuthTokenCache::authorization() const {
  return usable() ? &authorization_ : nullptr;
}

std::shared_ptr<const std::string> OAuthTokenCache::shared_authorization() const {
  return usable() ? shared_authorization_ : nullptr;
}

TokenState OAuthTokenCache::when_ready(Waiter w) {
  if (usable()) return TokenState::ready;
  if (closed_) return TokenState::unavailable;
  if (!refreshing_ && retry_at_ms_ >= 0) return last_failure_;  // backing off: fail fast
  if (waiters_.size() >= opt_.max_waiters) return TokenState::unavailable;
  waiters_.push_back(std::move(w));
  if (!refreshing_) start_refresh();
  return TokenState::pending;
}

void OAuthTokenCache::invalidate(uint64_t generation) {
  if (closed_ || generation != generation_ || authorization_.empty()) return;
  LOG_WARN("fcm: access token rejected with 401; refreshing it");
  authorization_.clear();
  shared_authorization_.reset();
  expires_at_ms_ = -1;
  refresh_at_ms_ = -1;
  if (!refreshing_ && retry_at_ms_ < 0) start_refresh();
}

void OAuthTokenCache::start_refresh() {
  refreshing_ = true;
  ++fetches_;
  std::string assertion = make_assertion(sa_, *key_, clock_.wall_ms() / 1000);
  if (assertion.empty()) {
    // Cannot happen with a key that signed at load time; handled as a failed refresh, from the
    // timer (never inside the caller's call).
    refreshing_ = false;
    LOG_ERROR("fcm: cannot sign the OAuth assertion");
    last_failure_ = TokenState::rejected;
    retry_at_ms_ = clock_.mono_ms() + std::max<int64_t>(backoff_.next_ms(), 200);
    schedule_(retry_at_ms_ - clock_.mono_ms());
    return;
  }
  std::shared_ptr<bool> alive = alive_;
  fetch_(token_request_body(assertion), opt_.fetch_timeout_ms,
         [this, alive](int status, std::string_view body) {
           if (*alive) on_fetched(status, body);
         });
}

void OAuthTokenCache::on_fetched(int status, std::string_view body) {
  refreshing_ = false;
  if (closed_) return;
  int64_t now = clock_.mono_ms();
  std::string token;
  int64_t expires_in_s = 0;
  if (status == 200 && parse_token_response(body, token, expires_in_s)) {
    int64_t life_ms = expires_in_s * 1000;
    // Stop using a token slightly before Google's expiry (clock skew, requests in flight), and
    // refresh "a few minutes" before it (upstreams.md): the margin, but never earlier than a
    // share of the lifetime, so short-lived tokens (tests) are not refreshed in a loop.
    int64_t safety = std::min<int64_t>(60'000, life_ms / 10);
    int64_t refresh_after = std::max<int64_t>(life_ms - opt_.refresh_margin_ms,
                                              static_cast<int64_t>(life_ms * opt_.refresh_fraction));
    authorization_ = "Bearer " + token;
    shared_authorization_ = std::make_shared<const std::string>(authorization_);
    ++generation_;
    expires_at_ms_ = now + life_ms - safety;
    refresh_at_ms_ = now + std::min(refresh_after, life_ms - safety);
    retry_at_ms_ = -1;
    backoff_.reset();
    LOG_INFO("fcm: OAuth access token obtained (expires in %lld s)",
             static_cast<long long>(expires_in_s));
    schedule_(refresh_at_ms_ - now);
    fail_waiters(TokenState::ready);
    return;
  }
  // 4xx other than 408/429 means Google refused the assertion (invalid_grant, unauthorized_client,
  // a revoked key): a credential problem. Anything else is the endpoint being unwell.
  bool refused = status >= 400 && status < 500 && status != 408 && status != 429;
  last_failure_ = refused ? TokenState::rejected : TokenState::unavailable;
  int64_t delay = std::max<int64_t>(backoff_.next_ms(), 200);
  retry_at_ms_ = now + delay;
  if (refused)
    LOG_ERROR("fcm: token endpoint refused the service-account assertion (HTTP %d); check the "
              "credentials file; retrying in %lld ms", status, static_cast<long long>(delay));
  else
    LOG_WARN("fcm: token endpoint unavailable (%s, status %d); retrying in %lld ms",
             status == 0 ? "no answer" : status == 200 ? "unusable answer" : "HTTP error", status,
             static_cast<long long>(delay));
  schedule_(delay);
  fail_waiters(last_failure_);
}

void OAuthTokenCache::fail_waiters(TokenState s) {
  std::deque<Waiter> ws;
  ws.swap(waiters_);
  std::shared_ptr<bool> alive = alive_;
  for (auto& w : ws) {
    if (!*alive) return;
    w(s);
  }
}

void OAuthTokenCache::on_timer() {
  if (closed_ || refreshing_) return;
  int64_t now = clock_.mono_ms();
  if (retry_at_ms_ >= 0) {
    if (now < retry_at_ms_) return schedule_(retry_at_ms_ - now);
    retry_at_ms_ = -1;
    start_refresh();
    return;
  }
  if (refresh_at_ms_ >= 0) {
    if (now < refresh_at_ms_) return schedule_(refresh_at_ms_ - now);
    refresh_at_ms_ = -1;
    start_refresh();
  }
}

void OAuthTokenCache::close() {
  if (closed_) return;
  closed_ = true;
  fail_waiters(TokenState::unavailable);
}

}  // namespace aloha::push
