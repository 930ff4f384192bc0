// Store: the persistence facade the app owns: one Database (SQLite, pipelined durable group
// commit) and the repositories on it. Constructed from a path at start-up (throws StoreError with a
// clear message); everything runs on the loop thread. attach_loop() moves WAL syncs and checkpoints
// to the libuv thread pool; detach_loop() before uv_loop_close(). Destroy it after the last user of
// its repositories.
#pragma once
#include <uv.h>

#include <memory>
#include <string>

#include "store/db.h"
#include "store/devices.h"
#include "store/realms.h"
#include "store/servers.h"
#include "store/syncer.h"

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

  // From now on WAL fdatasyncs and checkpoints run on loop's thread pool (UvSyncer) and their
  // completions on the loop thread. Call before uv_run(); the loop must outlive detach_loop().
  void attach_loop(uv_loop_t* loop);
  // Back to inline syncing. Call after uv_run() returned and before uv_loop_close(): if a job is
  // still in flight it runs the loop (UV_RUN_ONCE) until it completed, so no request leaks.
  void detach_loop() noexcept;

  // A trivial prepared SELECT 1 works and no WAL sync has failed (GET health). Never throws.
  bool health() noexcept;
  // PRAGMA integrity_check answers "ok". Reads the whole file: start-up and tests only.
  bool integrity_ok();
  // From a timer (e.g. every 30 s): writes pending touches and counters, commits the open batch
  // (its callbacks run after the sync started by the next flush) and starts a background
  // checkpoint (PASSIVE), which never waits for readers nor takes the write lock. During a write
  // pause (Database::write_paused) the touches and counters stay pending in memory.
  void maintenance() noexcept;
  // Part of maintenance(): unused SQLite page cache back to the heap, and (glibc) free heap pages
  // back to the kernel (malloc_trim), so RSS falls after a load burst.
  void release_memory() noexcept;
  // Shutdown: writes pending touches and counters, commits, syncs everything inline (blocking)
  // and runs every queued callback (Database::shutdown()).
  void shutdown() noexcept;

 private:
  std::unique_ptr<Database> db_;  // first: outlives the repositories' statements
  std::unique_ptr<UvSyncer> uv_syncer_;  // while a loop is attached
  Servers servers_;
  Audit audit_;
  Devices devices_;
  Realms realms_;
  Counters counters_;
  Stmt select_one_;
};

}  // namespace aloha::store
