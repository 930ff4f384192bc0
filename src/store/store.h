// Store: the persistence facade the app owns: one Database (SQLite, group commit) and the
// repositories on it. Constructed from a path at start-up (throws StoreError with a clear message);
// everything runs on the loop thread. Destroy it after the last user of its repositories.
#pragma once
#include <memory>
#include <string>

#include "store/db.h"
#include "store/devices.h"
#include "store/realms.h"
#include "store/servers.h"

namespace aloha::store {

struct StoreOptions {
  DatabaseOptions db;
  int64_t touch_interval_ms = 60'000;  // write-behind period of servers.last_request_ms
};

class Store {
 public:
  explicit Store(const std::string& path, const StoreOptions& opts = {});
  // Writes pending last-request touches and counters and commits the open batch; queued
  // callbacks are dropped (call shutdown() first to run them).
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  Database& db() { return *db_; }
  Servers& servers() { return servers_; }
  Audit& audit() { return audit_; }
  Devices& devices() { return devices_; }
  Realms& realms() { return realms_; }
  Counters& counters() { return counters_; }

  // A trivial prepared SELECT 1 works (GET health). Never throws.
  bool health() noexcept;
  // PRAGMA integrity_check answers "ok". Reads the whole file: start-up and tests only.
  bool integrity_ok();
  // From a timer (e.g. every 30 s): writes pending touches and counters, commits the open batch
  // (its callbacks run at the next flush) and runs a PASSIVE WAL checkpoint, which never waits
  // for readers.
  void maintenance() noexcept;
  // Shutdown: writes pending touches and counters, then flush() (commit, then run every queued
  // callback).
  void shutdown() noexcept;

 private:
  std::unique_ptr<Database> db_;  // first: outlives the repositories' statements
  Servers servers_;
  Audit audit_;
  Devices devices_;
  Realms realms_;
  Counters counters_;
  Stmt select_one_;
};

}  // namespace aloha::store
