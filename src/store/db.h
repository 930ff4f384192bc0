// Database: the one SQLite connection of the loop thread: open (WAL, synchronous=FULL, foreign
// keys, migrations by user_version) and group commit: all writes of one loop iteration share one
// transaction, committed by flush(). Callbacks queued with after_commit() run inside flush(), on the
// loop thread, in the order they were queued, after the transaction that holds the writes made
// before them is durable (ok=true) or has been rolled back (ok=false).
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "store/stmt.h"

namespace aloha::store {

struct DatabaseOptions {
  int busy_timeout_ms = 100;            // small: the loop thread must not wait long for a lock
  int max_batch_writes = 10'000;        // write() calls per transaction before an early commit
  int64_t journal_size_limit = 64 << 20;  // bytes the WAL file is truncated to after a checkpoint
};

struct DatabaseStats {
  uint64_t commits = 0;          // batch transactions committed
  uint64_t failed_commits = 0;   // batches that could not be committed (their callbacks saw ok=false)
  uint64_t writes = 0;           // write() calls that completed
  uint64_t rolled_back_writes = 0;  // write() calls whose fn threw (savepoint rolled back)
};

struct CheckpointResult {
  bool ok = false;
  int wal_frames = 0;           // frames in the WAL
  int checkpointed_frames = 0;  // frames copied into the database file
};

class Database {
 public:
  // Creates the parent directory if missing (mode 0700), opens or creates the file and applies
  // pending migrations. Throws StoreError with a clear message on any failure. ":memory:" opens a
  // private in-memory database (tests only; no WAL there).
  static std::unique_ptr<Database> open(const std::string& path, const DatabaseOptions& opts = {});
  Database(const std::string& path, const DatabaseOptions& opts);
  // Commits an open batch; callbacks still queued are dropped (the app calls flush() first).
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* handle() const { return conn_.db; }
  const std::string& path() const { return path_; }
  int schema_version();                 // PRAGMA user_version
  static int latest_schema_version();   // number of migrations this binary knows

  // Runs fn inside the current batch transaction (BEGIN IMMEDIATE opened lazily), wrapped in a
  // SAVEPOINT: if fn throws, the savepoint is rolled back and the exception rethrown; other
  // requests' writes in the batch are kept. Calls may nest. Returns what fn returns.
  // Throws StoreError when the batch cannot be opened (e.g. the database is locked).
  template <class F>
  auto write(F&& fn) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    WriteScope scope(*this);
    if constexpr (std::is_void_v<R>) {
      fn();
      scope.release();
    } else {
      R r = fn();
      scope.release();
      return r;
    }
  }

  // Queue a callback to run after the batch commits (ok=true) or fails to commit (ok=false).
  // When no batch is open (e.g. the request only read), the callback still runs at the next flush.
  void after_commit(std::function<void(bool ok)> cb);

  // Commit the open batch (if any) and run the queued callbacks in order. The app calls this from
  // a uv_check handle (right after I/O callbacks) and/or a uv_prepare handle, and at shutdown.
  // Writes and callbacks queued by the callbacks themselves are committed and run too (a few
  // rounds), so nothing waits for the next loop iteration. Must not be called inside write().
  void flush() noexcept;

  // Commit the open batch now; its callbacks run at the next flush(). Used before maintenance and
  // when a batch grows past max_batch_writes.
  void commit_pending() noexcept;

  bool batch_open() const { return batch_open_; }
  bool in_write() const { return depth_ > 0; }
  size_t queued_callbacks() const { return pending_.size() + ready_.size(); }
  const DatabaseStats& stats() const { return stats_; }

  // Runs SQL text that returns no rows (schema work, tests). Not for the hot path.
  void exec(std::string_view sql);

  // PRAGMA wal_checkpoint(PASSIVE) after committing any open batch; never waits for readers.
  CheckpointResult checkpoint_passive() noexcept;

 private:
  struct Connection {
    sqlite3* db = nullptr;
    ~Connection() { if (db) sqlite3_close_v2(db); }
  };

  class WriteScope {
   public:
    explicit WriteScope(Database& db) : db_(db) { db_.begin_write(); }
    ~WriteScope() { if (!done_) db_.abort_write(); }
    void release() { done_ = true; db_.end_write(); }
    WriteScope(const WriteScope&) = delete;
    WriteScope& operator=(const WriteScope&) = delete;

   private:
    Database& db_;
    bool done_ = false;
  };

  void configure();
  void migrate();
  std::string pragma_text(const char* sql);
  void begin_write();
  void end_write();
  void abort_write() noexcept;
  void commit_batch() noexcept;
  void batch_lost() noexcept;

  std::string path_;
  DatabaseOptions opts_;
  Connection conn_;  // declared before the statements: closed after they are finalized
  std::unique_ptr<Stmt> begin_, commit_, rollback_, savepoint_, release_, rollback_to_;

  bool batch_open_ = false;
  int depth_ = 0;             // nesting of write() calls
  int batch_writes_ = 0;      // write() calls in the open batch
  std::vector<std::function<void(bool)>> pending_;               // waiting for the open/next batch
  std::vector<std::pair<std::function<void(bool)>, bool>> ready_;  // outcome known, not yet run
  DatabaseStats stats_;
};

}  // namespace aloha::store
