#include "core/config.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "core/encoding.h"

namespace aloha {

namespace {

constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int64_t kGiB = 1024 * kMiB;

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Integer with an optional leading '-'; no '+', spaces or other characters.
bool parse_int(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  std::string_view digits = s[0] == '-' ? s.substr(1) : s;
  if (!all_digits(digits)) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// "1048576", "64k", "1M", "1G" (binary multiples, case-insensitive suffix).
bool parse_size(std::string_view s, int64_t& out) {
  int64_t mult = 1;
  if (!s.empty()) {
    char last = s.back();
    if (last == 'k' || last == 'K') mult = kKiB;
    if (last == 'm' || last == 'M') mult = kMiB;
    if (last == 'g' || last == 'G') mult = kGiB;
    if (mult != 1) s.remove_suffix(1);
  }
  int64_t n;
  if (!all_digits(s) || !parse_int(s, n)) return false;
  if (n > INT64_MAX / mult) return false;
  out = n * mult;
  return true;
}

// "10" (seconds), "10s", "500ms", "2m", "1h" -> milliseconds.
bool parse_duration_ms(std::string_view s, int64_t& out) {
  int64_t mult = kSecond;
  if (s.size() >= 2 && s.substr(s.size() - 2) == "ms") {
    mult = 1;
    s.remove_suffix(2);
  } else if (!s.empty() && (s.back() == 's' || s.back() == 'm' || s.back() == 'h')) {
    mult = s.back() == 's' ? kSecond : s.back() == 'm' ? kMinute : kHour;
    s.remove_suffix(1);
  }
  int64_t n;
  if (!all_digits(s) || !parse_int(s, n)) return false;
  if (n > INT64_MAX / mult) return false;
  out = n * mult;
  return true;
}

bool parse_bool(std::string_view s, bool& out) {
  std::string v = ascii_lower(s);
  if (v == "true" || v == "yes" || v == "on") {
    out = true;
    return true;
  }
  if (v == "false" || v == "no" || v == "off") {
    out = false;
    return true;
  }
  return false;
}

// Comma-separated, items trimmed; an empty value is the empty list; empty items are errors.
bool parse_list(std::string_view s, std::vector<std::string>& out) {
  out.clear();
  if (s.empty()) return true;
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    std::string_view item = trim(s.substr(start, comma == std::string_view::npos ? s.npos : comma - start));
    if (item.empty()) return false;
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return true;
}

std::string fmt_ms(int64_t ms) {
  if (ms % kSecond == 0) return std::to_string(ms / kSecond) + "s";
  return std::to_string(ms) + "ms";
}

std::string fmt_size(int64_t n) {
  if (n >= kGiB && n % kGiB == 0) return std::to_string(n / kGiB) + "G";
  if (n >= kMiB && n % kMiB == 0) return std::to_string(n / kMiB) + "M";
  if (n >= kKiB && n % kKiB == 0) return std::to_string(n / kKiB) + "k";
  return std::to_string(n);
}

bool is_bundle_id(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool is_section_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

enum class Section { none, server, limits, registration, transfer, analytics, e2ee, push, apns, fcm };

class Parser {
 public:
  explicit Parser(const std::string& file) : file_(file) {}

  Config run(std::string_view text) {
    // A UTF-8 byte-order mark, as some editors write, is not part of the first line.
    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
    size_t pos = 0;
    line_ = 0;
    while (pos <= text.size()) {
      size_t nl = text.find('\n', pos);
      std::string_view raw = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
      ++line_;
      handle_line(raw);
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
    finish();
    return std::move(cfg_);
  }

 private:
  [[noreturn]] void fail_at(int line, const std::string& msg) const {
    throw ConfigError(file_ + ":" + std::to_string(line) + ": " + msg);
  }
  [[noreturn]] void fail(const std::string& msg) const { fail_at(line_, msg); }
  // "[limits] requests_per_minute"
  std::string what() const { return label_ + " " + key_; }

  void handle_line(std::string_view raw) {
    std::string_view line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') return;
    if (line[0] == '[') {
      if (line.back() != ']') fail("malformed section header (expected '[name]')");
      start_section(trim(line.substr(1, line.size() - 2)));
      return;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) fail("expected 'key = value' or '[section]'");
    std::string_view key = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    // Trailing comments need whitespace before '#', so values such as URLs with fragments or
    // "#" inside a word survive; a value that starts with '#' is a comment too (empty value).
    if (!value.empty() && value[0] == '#') {
      value = {};
    } else {
      for (size_t i = 1; i < value.size(); ++i) {
        if (value[i] == '#' && (value[i - 1] == ' ' || value[i - 1] == '\t')) {
          value = trim(value.substr(0, i));
          break;
        }
      }
    }
    if (key.empty()) fail("missing key before '='");
    if (section_ == Section::none) fail("key '" + std::string(key) + "' outside of a section");
    key_ = std::string(key);
    if (!keys_seen_.insert(key_).second) fail("duplicate key '" + key_ + "' in " + label_);
    set(value);
  }

  void start_section(std::string_view name) {
    std::string n(name);
    label_ = "[" + n + "]";
    keys_seen_.clear();
    if (!sections_seen_.insert(n).second) fail("duplicate section " + label_);
    if (n == "server") section_ = Section::server;
    else if (n == "limits") section_ = Section::limits;
    else if (n == "registration") section_ = Section::registration;
    else if (n == "transfer") section_ = Section::transfer;
    else if (n == "analytics") section_ = Section::analytics;
    else if (n == "e2ee") section_ = Section::e2ee;
    else if (n == "push") section_ = Section::push;
    else if (n == "fcm") {
      section_ = Section::fcm;
      cfg_.fcm.line = line_;
      fcm_seen_ = true;
    } else if (n == "apns" || n.rfind("apns.", 0) == 0) {
      std::string sub = n == "apns" ? "" : n.substr(5);
      if (n != "apns" && !is_section_name(sub))
        fail("invalid section name " + label_ + " (use [apns.NAME], NAME of letters, digits, '_', '-')");
      section_ = Section::apns;
      ApnsConfig a;
      a.name = sub;
      a.line = line_;
      cfg_.apns.push_back(std::move(a));
    } else {
      fail("unknown section " + label_);
    }
  }

  [[noreturn]] void unknown_key() const { fail("unknown key '" + key_ + "' in " + label_); }

  int64_t int_in(std::string_view v, int64_t lo, int64_t hi) const {
    int64_t n;
    if (!parse_int(v, n) || n < lo || n > hi)
      fail(what() + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    return n;
  }
  int64_t size_in(std::string_view v, int64_t lo, int64_t hi) const {
    int64_t n;
    if (!parse_size(v, n) || n < lo || n > hi)
      fail(what() + " must be a size from " + fmt_size(lo) + " to " + fmt_size(hi) +
           " (bytes, or with suffix k, M, G)");
    return n;
  }
  int64_t duration_in(std::string_view v, int64_t lo_ms, int64_t hi_ms) const {
    int64_t n;
    if (!parse_duration_ms(v, n) || n < lo_ms || n > hi_ms)
      fail(what() + " must be a duration from " + fmt_ms(lo_ms) + " to " + fmt_ms(hi_ms) +
           " (e.g. 10, 10s, 500ms, 2m)");
    return n;
  }
  bool boolean(std::string_view v) const {
    bool b;
    if (!parse_bool(v, b)) fail(what() + " must be true or false (also yes/no, on/off)");
    return b;
  }
  std::vector<std::string> list(std::string_view v) const {
    std::vector<std::string> out;
    if (!parse_list(v, out)) fail(what() + " must be a comma-separated list without empty items");
    return out;
  }
  std::string nonempty(std::string_view v) const {
    if (v.empty()) fail(what() + " must not be empty");
    return std::string(v);
  }

  void set(std::string_view v) {
    const std::string& k = key_;
    switch (section_) {
      case Section::server: {
        auto& s = cfg_.server;
        if (k == "listen") set_listen(v);
        else if (k == "database") s.database = nonempty(v);
        else if (k == "database_cache") s.database_cache_bytes = size_in(v, 64 * 1024, kGiB);
        else if (k == "commit_delay") s.commit_delay_ms = duration_in(v, 0, 10 * kSecond);
        else if (k == "log_level") {
          if (!parse_log_level(v, s.log_level)) fail(what() + " must be one of error, warn, info, debug");
        } else if (k == "log_tokens") s.log_tokens = boolean(v);
        else if (k == "shutdown_timeout") s.shutdown_timeout_ms = duration_in(v, 0, kHour);
        else unknown_key();
        break;
      }
      case Section::limits: {
        auto& l = cfg_.limits;
        if (k == "requests_per_minute") l.requests_per_minute = static_cast<int>(int_in(v, 1, 100'000'000));
        else if (k == "max_body_bytes") l.max_body_bytes = static_cast<size_t>(size_in(v, 1, kGiB));
        else if (k == "max_header_bytes") l.max_header_bytes = static_cast<size_t>(size_in(v, 256, kMiB));
        else if (k == "max_headers") l.max_headers = static_cast<size_t>(int_in(v, 1, 10'000));
        else if (k == "header_timeout") l.header_timeout_ms = duration_in(v, 1, kDay);
        else if (k == "body_timeout") l.body_timeout_ms = duration_in(v, 1, kDay);
        else if (k == "idle_timeout") l.idle_timeout_ms = duration_in(v, 1, kDay);
        else if (k == "max_connections") l.max_connections = static_cast<size_t>(int_in(v, 1, 1'000'000));
        else unknown_key();
        break;
      }
      case Section::registration:
        if (k == "blocked_email_domains") {
          // api.md: compared with the lower-cased email domain.
          cfg_.registration.blocked_email_domains = list(v);
          for (auto& d : cfg_.registration.blocked_email_domains) d = ascii_lower(d);
        } else {
          unknown_key();
        }
        break;
      case Section::transfer:
        if (k == "ca_file") cfg_.transfer.ca_file = std::string(v);
        else if (k == "allow_private_addresses") cfg_.transfer.allow_private_addresses = boolean(v);
        else unknown_key();
        break;
      case Section::analytics:
        if (k == "extra_stats") cfg_.analytics.extra_stats = list(v);
        else unknown_key();
        break;
      case Section::e2ee:
        if (k == "private_keys") {
          cfg_.e2ee.private_keys = list(v);
          for (size_t i = 0; i < cfg_.e2ee.private_keys.size(); ++i) {
            std::string raw;
            // Never echo the key itself in the message: it is a secret.
            if (!enc::base64_decode(cfg_.e2ee.private_keys[i], raw) || raw.size() != 32)
              fail(what() + " item " + std::to_string(i + 1) +
                   " is not standard base64 of a 32-byte X25519 private key");
          }
        } else {
          unknown_key();
        }
        break;
      case Section::push: {
        auto& p = cfg_.push;
        if (k == "policy") {
          if (v != "allow" && v != "deny") fail(what() + " must be allow or deny");
          p.policy = std::string(v);
        } else if (k == "deny_reason") p.deny_reason = std::string(v);
        else if (k == "notify_deadline") p.notify_deadline_ms = duration_in(v, 1, 10 * kMinute);
        else if (k == "dead_token_guard_window") {
          int64_t ms = duration_in(v, kSecond, kDay);
          if (ms % kSecond != 0) fail(what() + " must be a whole number of seconds");
          p.dead_token_guard_window_s = ms / kSecond;
        } else if (k == "dead_token_guard_min") p.dead_token_guard_min = static_cast<int>(int_in(v, 1, 1'000'000));
        else if (k == "dead_token_guard_share") p.dead_token_guard_share = share(v);
        else if (k == "retry_queue_max") p.retry_queue_max = static_cast<size_t>(int_in(v, 0, 10'000'000));
        else if (k == "retry_max_age") p.retry_max_age_ms = duration_in(v, 0, kDay);
        else if (k == "warn_interval") p.warn_interval_ms = duration_in(v, kSecond, kDay);
        else unknown_key();
        break;
      }
      case Section::apns: {
        auto& a = cfg_.apns.back();
        if (k == "topics") {
          a.topics = list(v);
          std::set<std::string> seen;
          for (const auto& t : a.topics) {
            if (!is_bundle_id(t)) fail(what() + ": '" + t + "' is not a bundle id (letters, digits, '.', '-')");
            if (!seen.insert(t).second) fail(what() + ": '" + t + "' is listed twice");
          }
        } else if (k == "environment") {
          if (v != "production" && v != "sandbox") fail(what() + " must be production or sandbox");
          a.environment = std::string(v);
        } else if (k == "host") a.host = nonempty(v);
        else if (k == "port") a.port = static_cast<int>(int_in(v, 1, 65535));
        else if (k == "ca_file") a.ca_file = std::string(v);
        else if (k == "key_file") a.key_file = std::string(v);
        else if (k == "key_id") a.key_id = std::string(v);
        else if (k == "team_id") a.team_id = std::string(v);
        else if (k == "cert_file") a.cert_file = std::string(v);
        else if (k == "cert_key_file") a.cert_key_file = std::string(v);
        else unknown_key();
        break;
      }
      case Section::fcm:
        if (k == "credentials_file") cfg_.fcm.credentials_file = std::string(v);
        else if (k == "endpoint") {
          if (v.rfind("https://", 0) != 0 && v.rfind("http://", 0) != 0)
            fail(what() + " must be a URL starting with https:// (or http://)");
          std::string e(v);
          while (e.size() > 8 && e.back() == '/') e.pop_back();
          cfg_.fcm.endpoint = e;
        } else if (k == "ca_file") cfg_.fcm.ca_file = std::string(v);
        else unknown_key();
        break;
      case Section::none:
        break;
    }
  }

  double share(std::string_view v) const {
    double d = 0;
    auto r = std::from_chars(v.data(), v.data() + v.size(), d);
    if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size() || !(d > 0.0 && d <= 1.0))
      fail(what() + " must be a number greater than 0 and at most 1");
    return d;
  }

  // "host:port", "[v6]:port"; port 0..65535 (0 = ephemeral).
  void set_listen(std::string_view v) {
    auto bad = [&] { fail(what() + " must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"); };
    std::string host;
    std::string_view port;
    if (!v.empty() && v[0] == '[') {
      size_t close = v.find(']');
      if (close == std::string_view::npos || close + 1 >= v.size() || v[close + 1] != ':') bad();
      host = std::string(v.substr(1, close - 1));
      port = v.substr(close + 2);
      if (host.find(':') == std::string::npos) bad();
    } else {
      size_t colon = v.rfind(':');
      if (colon == std::string_view::npos) bad();
      host = std::string(v.substr(0, colon));
      port = v.substr(colon + 1);
      if (host.find(':') != std::string::npos) bad();  // IPv6 needs brackets
    }
    int64_t p;
    if (host.empty() || !all_digits(port) || port.size() > 5 || !parse_int(port, p) || p > 65535) bad();
    cfg_.server.listen_host = host;
    cfg_.server.listen_port = static_cast<int>(p);
  }

  void finish() {
    // upstreams.md: each APNs section authenticates one way; a bundle id is served by one
    // section; at most one section (the one without topics) catches the unlisted ones.
    std::map<std::string, const ApnsConfig*> topic_owner;
    const ApnsConfig* catch_all = nullptr;
    for (auto& a : cfg_.apns) {
      const std::string lab = a.label();
      bool token = !a.key_file.empty() || !a.key_id.empty() || !a.team_id.empty();
      bool cert = !a.cert_file.empty() || !a.cert_key_file.empty();
      if (token && cert)
        fail_at(a.line, lab + " sets both token auth (key_file, key_id, team_id) and certificate auth (cert_file)");
      if (!token && !cert)
        fail_at(a.line, lab + " needs token auth (key_file, key_id, team_id) or certificate auth (cert_file)");
      if (token && (a.key_file.empty() || a.key_id.empty() || a.team_id.empty()))
        fail_at(a.line, lab + " token auth needs all of key_file, key_id and team_id");
      if (cert && a.cert_file.empty()) fail_at(a.line, lab + " cert_key_file needs cert_file");
      if (a.host.empty())
        a.host = a.environment == "sandbox" ? "api.sandbox.push.apple.com" : "api.push.apple.com";
      if (a.topics.empty()) {
        if (catch_all != nullptr)
          fail_at(a.line, lab + " and " + catch_all->label() +
                              " both have no topics; only one section may serve the unlisted apps");
        catch_all = &a;
      }
      for (const auto& t : a.topics) {
        auto [it, fresh] = topic_owner.emplace(t, &a);
        if (!fresh)
          fail_at(a.line, "topic '" + t + "' is listed in both " + it->second->label() + " and " + lab);
      }
    }
    if (fcm_seen_ && cfg_.fcm.credentials_file.empty())
      fail_at(cfg_.fcm.line, "[fcm] needs credentials_file (remove the section to disable FCM)");
  }

  std::string file_;
  Config cfg_;
  int line_ = 0;
  Section section_ = Section::none;
  std::string label_;
  std::string key_;
  std::set<std::string> sections_seen_;
  std::set<std::string> keys_seen_;
  bool fcm_seen_ = false;
};

}  // namespace

Config parse_config(std::string_view text, const std::string& filename) {
  return Parser(filename).run(text);
}

Config load_config(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) throw ConfigError(path + ": cannot open: " + strerror(errno));
  std::string text;
  char buf[8192];
  size_t n;
  // A config file is small; refuse anything absurd instead of reading it all into memory.
  constexpr size_t kMaxConfigBytes = 1024 * 1024;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxConfigBytes) {
      fclose(f);
      throw ConfigError(path + ": file is larger than 1 MiB");
    }
  }
  bool err = ferror(f) != 0;
  int e = errno;
  fclose(f);
  if (err) throw ConfigError(path + ": cannot read: " + strerror(e));
  return parse_config(text, path);
}

}  // namespace aloha
