// Configuration: the INI file (conf/aloha-bouncer.conf documents every key) parsed into plain
// structs with defaults, range checks and cross-section validation. Parsing is pure: no files
// other than the config itself are opened (key files are loaded later by their users). Errors
// throw ConfigError, whose what() reads "FILE:LINE: what is wrong".
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"

namespace aloha {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One [apns] or [apns.NAME] section (upstreams.md): which bundle ids it serves and how to
// authenticate (token auth: key_file + key_id + team_id; or certificate auth: cert_file with an
// optional separate cert_key_file).
struct ApnsConfig {
  std::string name;                  // "" for plain [apns]
  std::vector<std::string> topics;   // empty: serves every ios_app_id no other section lists
  std::string environment = "production";  // production | sandbox
  std::string host;                  // defaults by environment (api[.sandbox].push.apple.com)
  int port = 443;
  std::string ca_file;               // "" = system trust store
  std::string key_file, key_id, team_id;
  std::string cert_file, cert_key_file;
  int line = 0;                      // line of the section header (for later error messages)

  bool token_auth() const { return !key_file.empty(); }
  std::string label() const { return name.empty() ? "[apns]" : "[apns." + name + "]"; }
};

struct FcmConfig {
  std::string credentials_file;      // service-account JSON; "" = FCM disabled
  std::string endpoint = "https://fcm.googleapis.com";
  std::string ca_file;               // "" = system trust store
  int line = 0;
  bool enabled() const { return !credentials_file.empty(); }
};

struct Config {
  struct Server {
    std::string listen_host = "127.0.0.1";   // IPv6 without brackets, e.g. "::1"
    int listen_port = 8080;                  // 0 = ephemeral (tests)
    std::string database = "var/aloha-bouncer.sqlite3";
    int64_t database_cache_bytes = 512 * 1024;  // SQLite page cache of the loop connection
    int64_t commit_delay_ms = 2;  // how long a batch nobody waits on may stay uncommitted (store/db.h)
    LogLevel log_level = LogLevel::info;
    bool log_tokens = false;
    int64_t shutdown_timeout_ms = 10'000;
  } server;
  struct Limits {
    int requests_per_minute = 1000;
    size_t max_body_bytes = 8 * 1024 * 1024;  // analytics uploads can be a few MB
    size_t max_header_bytes = 16 * 1024;
    size_t max_headers = 100;
    int64_t header_timeout_ms = 10'000;
    int64_t body_timeout_ms = 30'000;
    int64_t idle_timeout_ms = 60'000;
    size_t max_connections = 1024;
  } limits;
  struct Registration {
    std::vector<std::string> blocked_email_domains = {"example.com"};  // lower case
  } registration;
  struct Transfer {
    std::string ca_file;
    bool allow_private_addresses = false;
  } transfer;
  struct Analytics {
    std::vector<std::string> extra_stats;
  } analytics;
  struct E2ee {
    std::vector<std::string> private_keys;   // standard base64 of 32-byte X25519 keys (checked)
  } e2ee;
  struct Push {
    std::string policy = "allow";            // allow | deny
    std::string deny_reason = "Missing data";
    int64_t notify_deadline_ms = 10'000;
    int64_t dead_token_guard_window_s = 300;
    int dead_token_guard_min = 100;
    double dead_token_guard_share = 0.5;     // 0 < x <= 1
    size_t retry_queue_max = 10'000;
    int64_t retry_max_age_ms = 300'000;
    int64_t warn_interval_ms = 300'000;
  } push;
  std::vector<ApnsConfig> apns;              // in file order
  FcmConfig fcm;
};

// Reads and parses `path`. Missing file: "PATH: cannot open: <strerror>".
Config load_config(const std::string& path);
// Parses INI text; `filename` only prefixes error messages.
Config parse_config(std::string_view text, const std::string& filename);

}  // namespace aloha
