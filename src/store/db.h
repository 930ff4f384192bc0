// Database: the one SQLite connection of the loop thread: open (WAL, synchronous=NORMAL, foreign
// keys, migrations by user_version) and pipelined durable group commit. All writes of one loop
// iteration share one transaction, committed by flush() without an fsync; durability comes from an
// fdatasync of the WAL file done by a Syncer off the loop thread, one at a time, covering every
// batch committed before it started. Callbacks queued with after_commit() run on the loop thread,
// in queue order per batch, once their batch is durable (ok=true) or lost (ok=false). WAL
// checkpoints run on a second connection through the same Syncer. The Database owns both
// connections and the WAL/directory fds; the Syncer is borrowed (set_syncer) and must outlive use.
// The loop connection never waits for a lock: a WAL past truncate_pages is truncated during a
// write pause (no write transaction is begun until the worker's TRUNCATE is done; writers park).
#pragma once
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "store/stmt.h"
#include "store/syncer.h"

namespace aloha::store {

struct DatabaseOptions {
  // Only while opening (migrations, before the loop runs). Afterwards the loop connection never
  // sleeps in a busy handler: a lock held by someone else fails the write at once (503).
  int busy_timeout_ms = 100;
  int max_batch_writes = 10'000;        // write() calls per transaction before an early commit
  int64_t journal_size_limit = 64 << 20;  // bytes the WAL file is truncated to after a checkpoint
  int checkpoint_pages = 1000;          // un-checkpointed WAL frames that trigger a background checkpoint
  int truncate_pages = 16'000;          // WAL frames past which a write pause truncates the WAL
  int truncate_busy_ms = 2;             // how long the pause's TRUNCATE (worker) waits for readers
  size_t max_parked = 4096;             // work parked during a write pause; beyond it park() refuses
  // Page cache of the loop connection ([server] database_cache). At 1M tokens lookups are
  // scattered and miss a leaf whatever the cache (2 MB or 256 KB: same time per lookup, see
  // docs/benchmarks.md; with schema v2, 512 KB and 1 MB gave the same 25 us per notify at 1M);
  // small deployments fit whole in 512 KB. Every connection's cache is its own heap memory, so
  // it counts fully in RSS.
  int cache_kb = 512;
  // The checkpoint connection copies WAL frames through its own buffer and reads only the schema
  // through its cache: a few pages are enough.
  int checkpoint_cache_kb = 64;
  // Deferred commit (flush(true), the app's per-iteration flush): a batch nobody waits on (only
  // writes without after_commit callbacks: push/notify's dead-token deletions, counters) may stay
  // open across loop iterations for up to defer_commit_ms, so that such writes of several
  // iterations share one commit. A commit that is the only write of its iteration costs ~13 us
  // (WAL frame writes, WAL-index locks; docs/benchmarks.md). Answers that report such writes wait
  // for the commit (after_visible). 0 = commit at the end of every iteration.
  int defer_commit_ms = 2;
  int max_deferred_writes = 64;  // write() calls past which a deferred batch is committed at once
};

struct CacheStats {
  int hits = 0;        // page requests served from the loop connection's cache (since open)
  int misses = 0;      // page requests that had to read the file (pread) or the WAL
  int used_bytes = 0;  // heap memory the loop connection's page cache holds now
};

struct DatabaseStats {
  uint64_t commits = 0;          // batch transactions committed
  uint64_t failed_commits = 0;   // batches that could not be committed (their callbacks saw ok=false)
  uint64_t writes = 0;           // write() calls that completed
  uint64_t rolled_back_writes = 0;  // write() calls whose fn threw (savepoint rolled back)
  uint64_t syncs = 0;            // WAL fdatasyncs that succeeded
  uint64_t failed_syncs = 0;     // WAL fdatasyncs that failed (their batches' callbacks saw ok=false)
  uint64_t synced_batches = 0;   // batches made durable (commits / syncs = batches per fsync)
  uint64_t checkpoints = 0;      // background checkpoints completed (PASSIVE, or a pause's TRUNCATE)
  uint64_t truncations = 0;      // TRUNCATE checkpoints that reset the WAL
  uint64_t write_pauses = 0;     // write pauses started (each runs one TRUNCATE checkpoint)
  uint64_t parked = 0;           // work items parked during write pauses
  uint64_t park_refused = 0;     // park() calls refused because the queue was full
  uint64_t busy_waits = 0;       // calls of the loop connection's busy handler (it never sleeps)
  uint64_t pause_us_total = 0;   // wall time spent in write pauses (start to end, microseconds)
  uint64_t pause_us_max = 0;     // the longest write pause
  uint64_t deferred_commits = 0;  // batches a flush(true) left open (committed later, by age or need)
};

// Thrown by write() during a write pause: a caller that can wait parks instead (park()).
class WritePausedError : public StoreError {
 public:
  WritePausedError() : StoreError("write attempted during a write pause", SQLITE_BUSY) {}
};

struct CheckpointResult {
  bool ok = false;
  int wal_frames = 0;           // frames in the WAL
  int checkpointed_frames = 0;  // frames copied into the database file
};

// Process-wide SQLite settings that keep SQLite's allocations under the app's 64 KB mmap
// threshold (no bulk page-cache block, 56 KB statement-journal chunks; see db.cpp). Must run
// before SQLite initialises, i.e. before any other sqlite3_* call of the process (sqlite3_open,
// sqlite3_soft_heap_limit64, ...): the app calls it first; Database's constructor calls it too,
// which is enough for tests and tools. Returns false when SQLite was initialised already (the
// settings then stay SQLite's defaults).
bool configure_sqlite() noexcept;

class Database {
 public:
  // Creates the parent directory if missing (mode 0700), opens or creates the file and applies
  // pending migrations. Throws StoreError with a clear message on any failure. ":memory:" opens a
  // private in-memory database (tests only; no WAL there).
  static std::unique_ptr<Database> open(const std::string& path, const DatabaseOptions& opts = {});
  Database(const std::string& path, const DatabaseOptions& opts);
  // Commits an open batch (not synced); callbacks still queued are dropped (call shutdown()
  // first). The Syncer must have no job of this database in flight (detach the loop first).
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

  // Queue a callback to run once the open batch is committed and synced (ok=true), or once it
  // failed to commit or its sync failed (ok=false). When no batch is open (the request only
  // read), the callback needs no sync and runs at the next flush(), possibly before callbacks of
  // earlier batches still waiting for their sync (replies on one connection are ordered by the
  // HTTP server). Callbacks run on the loop thread, from flush() or a sync completion.
  void after_commit(std::function<void(bool ok)> cb);

  // Runs cb once every write made so far is committed, i.e. visible to other connections of the
  // database (not necessarily durable): at once (ok=true) when no batch is open, otherwise when the
  // open batch commits (ok=true, from the flush or commit that committed it) or is lost (ok=false).
  // For answers that report writes nobody waits to be durable for (push/notify's deletions), which
  // a deferred commit (flush(true)) may keep open for a few milliseconds.
  void after_visible(std::function<void(bool ok)> cb);

  // Opens a read transaction for the rest of this loop iteration unless a transaction is open
  // already; flush() ends it. Point lookups inside it share one snapshot and one set of WAL-index
  // locks instead of taking and dropping them (several fcntl() calls) per statement. The router
  // calls it once per request.
  void begin_read() noexcept;

  // Commit the open batch (if any; no fsync), hand committed batches to the syncer when no sync
  // is in flight, and run the callbacks whose outcome is known, in order. The app calls this from
  // a uv_prepare handle; a sync completion calls it too. Writes and callbacks queued by the
  // callbacks themselves are committed and run too (a few rounds). Must not be called inside
  // write(); a call from inside a callback returns at once (the running flush continues).
  // allow_defer (the app's per-iteration flush): a batch with no after_commit callback, younger
  // than defer_commit_ms and under max_deferred_writes writes stays open (see DatabaseOptions);
  // the caller then commits it by deferred_commit_due_ms() with a flush() (a timer). Never during
  // or just before a write pause.
  void flush(bool allow_defer = false) noexcept;
  // After flush(true) left a batch open: milliseconds until its commit is due (>= 0); -1 when no
  // batch is deferred.
  int64_t deferred_commit_due_ms() const noexcept;

  // Commit the open batch now; its callbacks wait for a sync started by a later flush(). Used by
  // maintenance and when a batch grows past max_batch_writes.
  void commit_pending() noexcept;

  // Batches nobody waits for (push/notify's dead-token deletions, counters) get no fdatasync of
  // their own: the next sync for a waiting batch covers them (one fdatasync covers everything
  // committed before it). This asks the next flush() to sync them anyway; maintenance calls it so
  // they are durable within one maintenance interval, and shutdown() does the same.
  void sync_unwaited() noexcept { sync_unwaited_ = true; }

  // The Syncer for WAL fdatasyncs and checkpoints; nullptr = the built-in InlineSyncer (blocking).
  // Not owned. A sync in flight on the previous syncer is superseded: its batches are synced again
  // by the new one and its completion is ignored (the previous syncer must still deliver it).
  void set_syncer(Syncer* syncer) noexcept;
  // Shutdown: flush, switch to the inline syncer, sync everything committed (superseding a sync in
  // flight) and run every callback. Blocks on fdatasync: call when no more requests are served.
  void shutdown() noexcept;
  // Starts a background PASSIVE checkpoint unless one is in flight (maintenance, WAL growth). It
  // never takes the write lock. Truncating the WAL is the write pause's job (below).
  void request_checkpoint() noexcept;

  // Write pause. Under sustained writes a PASSIVE checkpoint never catches the WAL's moving tail
  // and SQLite restarts the WAL only once it is fully backfilled, so past truncate_pages frames a
  // TRUNCATE checkpoint runs on the worker. It needs the write lock: rather than let the loop's
  // next BEGIN IMMEDIATE wait for it, flush() (with no batch open) starts a pause, during which
  // no write transaction is begun: write() throws WritePausedError, write-behinds keep their
  // data in memory, and whoever must write parks its work here. When the TRUNCATE is done (on
  // the loop thread) the pause ends and the parked work runs, in park order. Reads go on during
  // the pause (without a per-iteration read transaction, which would hold the TRUNCATE back).
  bool write_paused() const { return paused_; }
  // During a pause: queue fn to run when it ends; false when max_parked items wait already (the
  // caller answers 503 retry-later). Outside a pause: false and fn is not kept (run it now).
  bool park(std::function<void()> fn);
  size_t parked_count() const { return parked_.size(); }

  bool sync_in_flight() const { return sync_in_flight_; }
  bool checkpoint_in_flight() const { return checkpoint_in_flight_; }
  // Batches committed and not yet covered by a completed sync (in flight or waiting).
  size_t unsynced_batches() const { return unsynced_batches_ + syncing_batches_; }
  // A WAL fdatasync failed once: acknowledged data may be lost (Linux may drop dirty pages after
  // an I/O error and report it only once), so health reports false until restart.
  bool suspect() const { return suspect_; }
  const std::string& wal_path() const { return wal_path_; }

  bool batch_open() const { return batch_open_; }
  bool in_write() const { return depth_ > 0; }
  size_t queued_callbacks() const {
    return pending_.size() + visible_.size() + ready_.size() + committed_.size() + syncing_.size();
  }
  const DatabaseStats& stats() const { return stats_; }

  // Runs SQL text that returns no rows (schema work, tests). Not for the hot path.
  void exec(std::string_view sql);

  // Gives unused page-cache memory of both connections back to the heap (sqlite3_db_release_memory;
  // the checkpoint connection only while no checkpoint runs). From the maintenance timer: after a
  // load burst the caches refill only as far as the next requests need. Returns the bytes freed.
  int release_memory() noexcept;
  CacheStats cache_stats() const noexcept;

  // PRAGMA wal_checkpoint(PASSIVE) on the checkpoint connection, on the calling thread (blocks on
  // fsync: tests and tools), after committing any open batch; never waits for readers.
  // ok=false while a background checkpoint is in flight.
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

  using Callback = std::function<void(bool)>;
  struct Fd {
    int fd = -1;
    ~Fd();
    void reset(int v = -1);
  };

  void configure();
  void open_side_channels();
  bool refresh_wal_fd() noexcept;
  void start_sync() noexcept;
  void on_sync_done(uint64_t gen, bool ok) noexcept;
  void supersede_sync() noexcept;
  void run_ready() noexcept;
  Syncer& syncer() { return syncer_ ? *syncer_ : inline_syncer_; }
  static int wal_hook(void* self, sqlite3* db, const char* name, int pages) noexcept;
  static int busy_handler(void* self, int count) noexcept;
  // A background checkpoint job's outcome (sqlite3_wal_checkpoint_v2 on the checkpoint connection).
  struct CheckpointJob {
    int rc = SQLITE_ERROR, log = -1, ckpt = -1;
    std::string err;
  };
  // Runs a checkpoint of `mode` on the worker, then done() on the loop thread (not if the Database
  // is gone); checkpoint_in_flight_ meanwhile. false (logged) when it could not be started.
  bool run_checkpoint(int mode, std::function<void(const CheckpointJob&)> done) noexcept;
  void maybe_start_pause() noexcept;
  void end_pause() noexcept;
  void migrate();
  std::string pragma_text(const char* sql);
  void begin_write();
  void end_read() noexcept;
  void end_write();
  void abort_write() noexcept;
  void commit_batch() noexcept;
  void batch_lost() noexcept;
  bool may_defer() const noexcept;

  std::string path_;
  DatabaseOptions opts_;
  std::string wal_path_;
  int truncate_at_;  // WAL frames that start a write pause (truncate_pages; more after a failed TRUNCATE)
  Connection conn_;  // declared before the statements: closed after they are finalized
  Connection ckpt_conn_;  // checkpoints only; used by one thread at a time (the worker's job)
  Fd wal_fd_;   // read-only fd on <db>-wal, for fdatasync
  Fd dir_fd_;   // the database's directory, synced when the WAL file was (re)created
  std::vector<int> retired_fds_;  // replaced WAL fds a superseded sync may still use (<= 16)
  std::unique_ptr<Stmt> begin_, commit_, rollback_, savepoint_, release_, rollback_to_;
  std::unique_ptr<Stmt> begin_read_;
  bool read_open_ = false;  // a read-only (deferred) transaction from begin_read()

  bool batch_open_ = false;
  int depth_ = 0;             // nesting of write() calls
  int batch_writes_ = 0;      // write() calls in the open batch
  std::chrono::steady_clock::time_point batch_start_{};  // when the open batch began
  bool deferred_ = false;     // a flush(true) left the open batch uncommitted
  std::vector<std::function<void(bool)>> pending_;               // waiting for the open/next batch
  std::vector<Callback> visible_;  // after_visible(): waiting for the open batch's commit
  std::vector<std::pair<Callback, bool>> ready_;  // outcome known, not yet run
  // Bounded by the requests in flight (the HTTP server caps connections and requests per
  // connection): one entry per request that wrote.
  std::vector<Callback> committed_;   // batches committed, waiting for the next sync
  std::vector<Callback> syncing_;     // batches covered by the sync in flight
  size_t unsynced_batches_ = 0;       // batches in committed_ (some have no callbacks)
  size_t syncing_batches_ = 0;        // batches covered by the sync in flight
  bool sync_in_flight_ = false;
  bool dir_sync_needed_ = false;
  uint64_t sync_gen_ = 0;             // identifies the sync in flight; stale completions are ignored
  bool flushing_ = false;
  bool sync_unwaited_ = false;  // see sync_unwaited()
  bool suspect_ = false;
  bool checkpoint_in_flight_ = false;
  bool checkpoint_wanted_ = false;
  int wal_pages_ = 0;                 // frames in the WAL after the last commit (wal hook)
  int backfilled_pages_ = 0;          // frames the last checkpoint copied

  bool truncate_wanted_ = false;      // the WAL reached truncate_at_: pause at the next flush()
  bool paused_ = false;               // write pause: a TRUNCATE checkpoint is in flight
  std::chrono::steady_clock::time_point pause_start_{};
  bool running_parked_ = false;       // end_pause() is running parked work: no new pause
  bool no_pauses_ = false;            // after shutdown(): the loop is going away
  std::deque<std::function<void()>> parked_;  // bounded by max_parked
  InlineSyncer inline_syncer_;
  Syncer* syncer_ = nullptr;
  std::shared_ptr<int> life_ = std::make_shared<int>(0);  // completions check it is still alive
  DatabaseStats stats_;
};

}  // namespace aloha::store
