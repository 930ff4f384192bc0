// Integration-test fixture: a temporary directory, and the real aloha-bouncer binary run as a child
// process on 127.0.0.1:<ephemeral port> with a generated config file and its own database.
// BouncerProcess owns its child (stopped with SIGKILL at destruction if still running) and, unless
// given one, its TempDir (removed at destruction). All waits are bounded.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/http_client.h"
#include "support/process.h"

namespace aloha::test {

// mkdtemp under /tmp; removed recursively by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct BasicAuth {
  std::string user, password;
};

// "/api/v1/remotes/" + rel
std::string remotes(const std::string& rel);

// Path of the binary: $ALOHA_BOUNCER_BIN, else <dir of this test executable>/../aloha-bouncer.
std::string bouncer_binary();

// Merges INI text: every `key = value` of `overrides` replaces the same section+key in `base` or
// is appended to its section (sections are created as needed). Comments and blank lines of the
// base are kept.
std::string merge_ini(const std::string& base, const std::string& overrides);

class BouncerProcess {
 public:
  // Writes <dir>/aloha-bouncer.conf (base config merged with `config_overrides`, INI text such as
  // "[limits]\nrequests_per_minute = 5\n") and starts the daemon. Throws std::runtime_error (with
  // the daemon's stderr) when it does not log `listening on 127.0.0.1:PORT` within 10 s.
  explicit BouncerProcess(const std::string& config_overrides = "", TempDir* dir = nullptr);
  ~BouncerProcess();
  BouncerProcess(const BouncerProcess&) = delete;
  BouncerProcess& operator=(const BouncerProcess&) = delete;

  // The base config the overrides apply to (database path filled in).
  static std::string base_config(const std::string& db_path);

  uint16_t port() const { return port_; }
  bool running() const { return proc_ != nullptr && proc_->running(); }
  const std::string& config_path() const { return config_path_; }
  const std::string& db_path() const { return db_path_; }
  const std::string& dir() const { return dir_->path(); }
  std::string url(const std::string& path) const;

  HttpResult request(const std::string& method, const std::string& path,
                     const std::vector<http::Header>& headers = {}, const std::string& body = "",
                     int timeout_ms = 10000);
  HttpResult post_form(const std::string& path, const Fields& fields,
                       const std::optional<BasicAuth>& auth = std::nullopt);
  HttpResult get(const std::string& path, const std::optional<BasicAuth>& auth = std::nullopt,
                 const std::vector<http::Header>& headers = {});

  // stderr + stdout of every run of this fixture so far (earlier runs first).
  std::string log_text() const;

  // SIGTERM, wait up to timeout_ms (then SIGKILL); returns how the daemon ended.
  ExitStatus stop(int timeout_ms = 10000);
  ExitStatus kill9();
  // Starts again with the same config and database (a new ephemeral port). Stops a running one
  // first (SIGTERM).
  void restart();

 private:
  void start();

  std::unique_ptr<TempDir> own_dir_;
  TempDir* dir_ = nullptr;
  std::string config_path_, db_path_;
  std::unique_ptr<Process> proc_;
  std::string old_logs_;
  uint16_t port_ = 0;
};

struct ServerCreds {
  std::string uuid, key;
  BasicAuth auth() const { return {uuid, key}; }
};

std::string random_uuid4();                 // canonical lowercase UUIDv4
std::string random_key(size_t len = 64);    // ASCII letters and digits

// POSTs server/register with fresh credentials; throws std::runtime_error unless 200.
ServerCreds register_server(BouncerProcess& b, const std::string& hostname,
                            const std::string& email = "admin@aloha-test.org");

}  // namespace aloha::test
