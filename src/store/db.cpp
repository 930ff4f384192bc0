#include "store/db.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "core/log.h"
#include "store/schema.h"

namespace aloha::store {
namespace {

// mkdir -p for the directory part of `path`, each created level with mode 0700: the database
// holds key hashes and device tokens.
void make_parent_dirs(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  std::string dir = path.substr(0, slash);
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0700) == 0) continue;
    int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(part.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    throw StoreError("cannot create directory " + part + " for database " + path + ": " +
                     std::strerror(err));
  }
}

// Process-wide SQLite settings, applied once before SQLite initialises (configure_sqlite()).
// Both keep SQLite's own allocations below glibc's mmap threshold (64 KB, fixed by the app): a
// block above it is an mmap, a page fault per touched page and an munmap with a TLB shootdown
// across our threads when freed, and both were paid per dead token:
// - No bulk page-cache allocation. By default a page cache, on its first page, mallocs one block
//   for 20 pages (~86 KB) and frees it when it is closed or emptied. Schema v2's dead-token
//   DELETE (WITHOUT ROWID table with foreign keys: two-pass) opened an ephemeral table, with a
//   page cache of its own, for every token; a cache emptied by release_memory() does the same
//   on its next page. Pages are now malloc'ed one by one as a cache fills; the caches' limits
//   (cache_kb) are unchanged.
// - Statement journals (the SAVEPOINT of every write()) are kept in memory in chunks of the
//   spill size, 64 KB by default: the first page a savepoint changed allocated a 64 KB chunk,
//   freed at RELEASE. kStmtJournalSpill keeps one chunk under the threshold; a savepoint that
//   changes more (beyond ~13 pages) spills to a temporary file, as it did beyond ~16 before.
constexpr int kStmtJournalSpill = 56 * 1024;

}  // namespace

bool configure_sqlite() noexcept {
  static const bool ok = [] {
    bool bulk_off = sqlite3_config(SQLITE_CONFIG_PAGECACHE, static_cast<void*>(nullptr), 0, 0) == SQLITE_OK;
    return sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, kStmtJournalSpill) == SQLITE_OK && bulk_off;
  }();
  return ok;
}

std::unique_ptr<Database> Database::open(const std::string& path, const DatabaseOptions& opts) {
  return std::make_unique<Database>(path, opts);
}

Database::Fd::~Fd() { reset(); }

void Database::Fd::reset(int v) {
  if (fd >= 0) ::close(fd);
  fd = v;
}

Database::Database(const std::string& path, const DatabaseOptions& opts)
    : path_(path), opts_(opts), wal_path_(path + "-wal"), truncate_at_(opts.truncate_pages) {
  configure_sqlite();
  bool memory = path == ":memory:";
  if (!memory) make_parent_dirs(path);
  // NOMUTEX: the connection is used by the loop thread only, so SQLite's per-connection mutex is
  // pure overhead.
  int rc = sqlite3_open_v2(path.c_str(), &conn_.db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "cannot open database " + path + ": " +
                      (conn_.db ? sqlite3_errmsg(conn_.db) : sqlite3_errstr(rc));
    throw StoreError(msg, rc);
  }
  sqlite3_extended_result_codes(conn_.db, 1);
  try {
    configure();
    migrate();
    if (!memory) open_side_channels();
  } catch (const StoreError& e) {
    throw StoreError("database " + path + ": " + e.what(), e.code());
  }
  begin_ = std::make_unique<Stmt>(conn_.db, "BEGIN IMMEDIATE");
  commit_ = std::make_unique<Stmt>(conn_.db, "COMMIT");
  begin_read_ = std::make_unique<Stmt>(conn_.db, "BEGIN DEFERRED");
  rollback_ = std::make_unique<Stmt>(conn_.db, "ROLLBACK");
  savepoint_ = std::make_unique<Stmt>(conn_.db, "SAVEPOINT w");
  release_ = std::make_unique<Stmt>(conn_.db, "RELEASE w");
  rollback_to_ = std::make_unique<Stmt>(conn_.db, "ROLLBACK TO w");
  // From now on the loop thread owns the connection: never sleep for a lock (the timeout set in
  // configure() served the migrations). Within this process only the write pause's TRUNCATE takes
  // the write lock and the loop begins no write then, so a call here means another process holds
  // it: the write fails at once (503, retry later) instead of blocking the loop.
  sqlite3_busy_handler(conn_.db, &Database::busy_handler, this);
}

int Database::busy_handler(void* self, int) noexcept {
  ++static_cast<Database*>(self)->stats_.busy_waits;
  return 0;  // give up: SQLITE_BUSY
}

Database::~Database() {
  if (depth_ > 0) LOG_ERROR("store: database closed inside write()");
  end_read();
  if (batch_open_) commit_batch();
  if (queued_callbacks() > 0)
    LOG_WARN("store: %zu after-commit callbacks dropped at close (shutdown() was not called)",
             queued_callbacks());
  if (!parked_.empty())
    LOG_WARN("store: %zu parked writes dropped at close (write pause still in flight)", parked_.size());
  if (checkpoint_in_flight_) {
    // The worker may still be using the checkpoint connection: leaking it beats a use-after-free.
    LOG_ERROR("store: database closed with a checkpoint in flight (detach the loop first)");
    ckpt_conn_.db = nullptr;
  }
  for (int fd : retired_fds_) ::close(fd);
}

std::string Database::pragma_text(const char* sql) {
  Stmt s(conn_.db, sql);
  auto u = s.use();
  return s.step() ? s.col_text(0) : std::string();
}

void Database::configure() {
  int rc = sqlite3_busy_timeout(conn_.db, opts_.busy_timeout_ms);
  if (rc != SQLITE_OK) throw_sqlite(conn_.db, rc, "busy_timeout");
  // WAL: readers never block the writer, and a commit is one append + one fsync.
  std::string mode = pragma_text("PRAGMA journal_mode=WAL");
  if (mode != "wal" && !(path_ == ":memory:" && mode == "memory"))
    throw StoreError("cannot enable WAL journal mode (got \"" + mode + "\")");
  // NORMAL in WAL mode: COMMIT appends to the WAL without an fsync (it survives a process crash
  // but not power loss); checkpoints still sync the WAL before and the database after copying
  // (https://sqlite.org/pragma.html#pragma_synchronous). Power-loss durability of answered
  // requests comes from our own fdatasync of the WAL off the loop thread (start_sync()).
  exec("PRAGMA synchronous=NORMAL");
  // A checkpoint fsyncs the database file: never on the loop thread. The wal hook replaces
  // SQLite's auto-checkpoint hook and starts a background checkpoint instead.
  exec("PRAGMA wal_autocheckpoint=0");
  if (path_ != ":memory:") sqlite3_wal_hook(conn_.db, &Database::wal_hook, this);
  exec("PRAGMA foreign_keys=ON");
  if (pragma_text("PRAGMA foreign_keys") != "1") throw StoreError("SQLite lacks foreign key support");
  exec("PRAGMA journal_size_limit=" + std::to_string(opts_.journal_size_limit));
  // Negative: KiB rather than pages, whatever the page size.
  exec("PRAGMA cache_size=-" + std::to_string(opts_.cache_kb > 0 ? opts_.cache_kb : 1));
}

void Database::open_side_channels() {
  // The checkpoint connection: only the worker's job uses it while a checkpoint is in flight,
  // and the loop thread never does then, so it needs no mutex of its own. Its small busy timeout
  // bounds how long a TRUNCATE attempt waits for the loop's write lock.
  int rc = sqlite3_open_v2(path_.c_str(), &ckpt_conn_.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK)
    throw StoreError(std::string("cannot open checkpoint connection: ") +
                         (ckpt_conn_.db ? sqlite3_errmsg(ckpt_conn_.db) : sqlite3_errstr(rc)), rc);
  sqlite3_busy_timeout(ckpt_conn_.db, opts_.truncate_busy_ms);
  // No lookaside on this connection: it runs one statement every few seconds, and its default
  // lookaside (~120 KB) would sit in RSS for nothing. Only possible before its first statement.
  sqlite3_db_config(ckpt_conn_.db, SQLITE_DBCONFIG_LOOKASIDE, nullptr, 0, 0);
  std::string cache = "PRAGMA cache_size=-" + std::to_string(opts_.checkpoint_cache_kb > 0 ? opts_.checkpoint_cache_kb : 1);
  sqlite3_exec(ckpt_conn_.db, cache.c_str(), nullptr, nullptr, nullptr);
  sqlite3_exec(ckpt_conn_.db, "PRAGMA wal_autocheckpoint=0", nullptr, nullptr, nullptr);
  // A connection's pager enters WAL mode at its first read; before that a checkpoint on it
  // answers SQLITE_OK with pnLog = -1 and does nothing.
  rc = sqlite3_exec(ckpt_conn_.db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(ckpt_conn_.db, rc, "checkpoint connection");

  // The WAL exists once the migrations (or the schema read) touched the database in WAL mode.
  if (!refresh_wal_fd()) throw StoreError("cannot open " + wal_path_ + " for syncing");
  size_t slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  dir_fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd_.fd < 0)
    throw StoreError("cannot open directory " + dir + ": " + std::strerror(errno));
  // Before the loop runs, blocking is fine: make the WAL's directory entry durable now.
  int err = fdatasync_retry(dir_fd_.fd);
  if (err != 0) throw StoreError("cannot sync directory " + dir + ": " + std::strerror(err));
  dir_sync_needed_ = false;
}

bool Database::refresh_wal_fd() noexcept {
  // fdatasync through our own read-only fd flushes the WAL inode's data (Linux syncs the inode,
  // not the descriptor). SQLite never deletes the WAL while a connection is open, but if the file
  // was ever recreated our fd would sync a dead inode: compare inodes before every sync.
  struct stat by_path {}, by_fd {};
  bool have_path = ::stat(wal_path_.c_str(), &by_path) == 0;
  if (wal_fd_.fd >= 0 && have_path && ::fstat(wal_fd_.fd, &by_fd) == 0 && by_fd.st_ino == by_path.st_ino &&
      by_fd.st_dev == by_path.st_dev)
    return true;
  int fd = ::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    LOG_ERROR("store: cannot open %s for syncing: %s", wal_path_.c_str(), std::strerror(errno));
    return false;
  }
  if (wal_fd_.fd >= 0) {
    // A superseded sync may still be running on the old fd: keep it open until we close.
    if (retired_fds_.size() < 16) {
      retired_fds_.push_back(wal_fd_.fd);
      wal_fd_.fd = -1;
    }
    LOG_WARN("store: %s was recreated; syncing the new file", wal_path_.c_str());
  }
  wal_fd_.reset(fd);
  dir_sync_needed_ = true;  // a new directory entry is durable only once the directory is synced
  return true;
}

int Database::wal_hook(void* self, sqlite3*, const char*, int pages) noexcept {
  // Runs inside COMMIT: only record; flush() starts the checkpoint after the commit returned.
  auto* d = static_cast<Database*>(self);
  if (pages < d->wal_pages_) {  // the WAL was restarted (after a complete backfill)
    d->backfilled_pages_ = 0;
    d->truncate_at_ = d->opts_.truncate_pages;
  }
  d->wal_pages_ = pages;
  if (pages - d->backfilled_pages_ >= d->opts_.checkpoint_pages) d->checkpoint_wanted_ = true;
  if (pages >= d->truncate_at_) d->truncate_wanted_ = true;
  return SQLITE_OK;
}

int Database::schema_version() {
  std::string v = pragma_text("PRAGMA user_version");
  return v.empty() ? 0 : std::stoi(v);
}

int Database::latest_schema_version() { return static_cast<int>(migrations().size()); }

void Database::migrate() {
  const auto& list = migrations();
  int have = schema_version();
  int want = static_cast<int>(list.size());
  if (have > want)
    throw StoreError("schema version " + std::to_string(have) + " is newer than this program knows (" +
                     std::to_string(want) + "); refusing to run an older binary on it");
  for (int v = have; v < want; ++v) {
    // Each migration and its version bump commit together (user_version lives in the database
    // header, which is part of the transaction), so a crash leaves either version v or v+1.
    exec("BEGIN IMMEDIATE");
    try {
      exec(list[static_cast<size_t>(v)]);
      exec("PRAGMA user_version=" + std::to_string(v + 1));
      exec("COMMIT");
    } catch (const StoreError& e) {
      sqlite3_exec(conn_.db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw StoreError("migration to schema version " + std::to_string(v + 1) + " failed: " + e.what(),
                       e.code());
    }
    LOG_INFO("store: migrated %s to schema version %d", path_.c_str(), v + 1);
  }
}

void Database::exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(conn_.db, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw StoreError(msg + " (code " + std::to_string(rc) + ")", rc);
  }
}

void Database::begin_read() noexcept {
  // During a write pause a read transaction open across a whole iteration could keep the
  // TRUNCATE from finishing (it waits for readers of WAL frames); statements run in autocommit.
  if (paused_ || read_open_ || batch_open_ || depth_ > 0 || !sqlite3_get_autocommit(conn_.db)) return;
  try {
    auto u = begin_read_->use();
    begin_read_->exec();
    read_open_ = true;
  } catch (const StoreError& e) {
    LOG_WARN("store: BEGIN for reads failed (statements run in autocommit): %s", e.what());
  }
}

void Database::end_read() noexcept {
  if (!read_open_) return;
  read_open_ = false;
  if (sqlite3_get_autocommit(conn_.db)) return;
  try {
    auto u = commit_->use();
    commit_->exec();
  } catch (const StoreError& e) {
    LOG_WARN("store: ending the read transaction failed: %s", e.what());
    if (!sqlite3_get_autocommit(conn_.db)) sqlite3_exec(conn_.db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

void Database::begin_write() {
  // Never begin (or add to) a write transaction during a pause: BEGIN IMMEDIATE would wait for the
  // TRUNCATE's write lock. Callers that must write park their work (park()).
  if (paused_) throw WritePausedError();  // the caller logs or answers 503
  // A read transaction of this iteration ends first: the batch takes the write lock up front.
  if (depth_ == 0) end_read();
  if (depth_ == 0) {
    // Bound the size of one transaction (and of the WAL it leaves): past max_batch_writes the
    // batch is committed early; its callbacks still run at the next flush(), in order.
    if (batch_open_ && batch_writes_ >= opts_.max_batch_writes) commit_batch();
    if (!batch_open_) {
      // IMMEDIATE takes the write lock now, so a statement later in the batch cannot fail with
      // SQLITE_BUSY halfway (https://sqlite.org/lang_transaction.html).
      auto u = begin_->use();
      begin_->exec();
      batch_open_ = true;
      batch_start_ = std::chrono::steady_clock::now();
    }
  } else if (!batch_open_) {
    throw StoreError("write batch was rolled back by an earlier error");
  }
  {
    auto u = savepoint_->use();
    savepoint_->exec();
  }
  ++depth_;
  ++batch_writes_;
}

void Database::end_write() {
  --depth_;
  if (!batch_open_ || sqlite3_get_autocommit(conn_.db)) {
    // SQLite rolled back the whole transaction under fn (I/O error, disk full, ...).
    if (batch_open_) batch_lost();
    throw StoreError("write batch was rolled back by an earlier error");
  }
  try {
    auto u = release_->use();
    release_->exec();
  } catch (const StoreError& e) {
    LOG_ERROR("store: RELEASE failed, rolling back the batch: %s", e.what());
    if (!sqlite3_get_autocommit(conn_.db)) sqlite3_exec(conn_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    batch_lost();
    throw;
  }
  ++stats_.writes;
}

void Database::abort_write() noexcept {
  --depth_;
  ++stats_.rolled_back_writes;
  if (!batch_open_) return;
  if (sqlite3_get_autocommit(conn_.db)) {  // the whole transaction is gone already
    batch_lost();
    return;
  }
  try {
    {
      auto u = rollback_to_->use();
      rollback_to_->exec();
    }
    auto u = release_->use();
    release_->exec();
  } catch (const StoreError& e) {
    // We cannot isolate the failed request's writes: give the whole batch up rather than commit them.
    LOG_ERROR("store: ROLLBACK TO failed, rolling back the batch: %s", e.what());
    if (!sqlite3_get_autocommit(conn_.db)) sqlite3_exec(conn_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    batch_lost();
  }
}

void Database::batch_lost() noexcept {
  batch_open_ = false;
  batch_writes_ = 0;
  deferred_ = false;
  ++stats_.failed_commits;
  for (auto& cb : pending_) ready_.emplace_back(std::move(cb), false);
  pending_.clear();
  for (auto& cb : visible_) ready_.emplace_back(std::move(cb), false);
  visible_.clear();
}

void Database::commit_batch() noexcept {
  if (!batch_open_) return;
  bool ok = true;
  try {
    auto u = commit_->use();
    commit_->exec();
  } catch (const StoreError& e) {
    // E.g. SQLITE_FULL, SQLITE_IOERR, or a deferred foreign key: the transaction may still be
    // open; roll it back so the next batch starts clean. Every callback of this batch is told
    // ok=false, so nothing is acknowledged that is not on disk.
    LOG_ERROR("store: commit of %d writes failed: %s", batch_writes_, e.what());
    ok = false;
    if (!sqlite3_get_autocommit(conn_.db)) {
      try {
        auto u = rollback_->use();
        rollback_->exec();
      } catch (const StoreError& e2) {
        LOG_ERROR("store: rollback after failed commit failed: %s", e2.what());
      }
    }
  }
  if (!ok) {
    batch_lost();
    return;
  }
  batch_open_ = false;
  batch_writes_ = 0;
  deferred_ = false;
  ++stats_.commits;
  // Committed but not durable yet (synchronous=NORMAL): the callbacks wait for a sync.
  ++unsynced_batches_;
  for (auto& cb : pending_) committed_.push_back(std::move(cb));
  pending_.clear();
  // Visible to other connections now: these run at the current (or next) flush.
  for (auto& cb : visible_) ready_.emplace_back(std::move(cb), true);
  visible_.clear();
}

void Database::after_commit(std::function<void(bool ok)> cb) { pending_.push_back(std::move(cb)); }

void Database::after_visible(std::function<void(bool ok)> cb) {
  if (batch_open_) {
    visible_.push_back(std::move(cb));
    return;
  }
  cb(true);
}

bool Database::may_defer() const noexcept {
  // Only writes nobody waits on may wait: a registration's callback (pending_) wants its sync
  // started now. Before a write pause the write lock must be free; at shutdown nothing waits.
  if (opts_.defer_commit_ms <= 0 || !pending_.empty() || truncate_wanted_ || no_pauses_) return false;
  if (batch_writes_ >= opts_.max_deferred_writes) return false;
  return std::chrono::steady_clock::now() - batch_start_ < std::chrono::milliseconds(opts_.defer_commit_ms);
}

int64_t Database::deferred_commit_due_ms() const noexcept {
  if (!batch_open_ || !deferred_) return -1;
  const auto due = batch_start_ + std::chrono::milliseconds(opts_.defer_commit_ms);
  const auto now = std::chrono::steady_clock::now();
  if (due <= now) return 0;
  // Rounded up: a timer that fires a little late costs less than one that fires before the due time.
  return (std::chrono::duration_cast<std::chrono::microseconds>(due - now).count() + 999) / 1000;
}

void Database::commit_pending() noexcept {
  if (depth_ > 0) return;
  commit_batch();
}

void Database::flush(bool allow_defer) noexcept {
  if (depth_ > 0) {
    LOG_ERROR("store: flush() called inside write(); ignored");
    return;
  }
  if (flushing_) return;  // from a callback or an inline sync completion: the running flush goes on
  flushing_ = true;
  end_read();
  // Callbacks may write and queue callbacks again; give them a few rounds so their work does not
  // sit uncommitted while the loop sleeps in poll.
  constexpr int kRounds = 8;
  for (int round = 0; round < kRounds; ++round) {
    if (batch_open_) {
      if (allow_defer && may_defer()) {
        if (!deferred_) ++stats_.deferred_commits;
        deferred_ = true;
      } else {
        commit_batch();
      }
    } else {
      // No write since the last commit: these callbacks need no sync.
      for (auto& cb : pending_) ready_.emplace_back(std::move(cb), true);
      pending_.clear();
    }
    start_sync();  // an inline syncer completes here and fills ready_
    // A pause's TRUNCATE backfills everything anyway: no PASSIVE pass just before it.
    if (checkpoint_wanted_ && !truncate_wanted_) request_checkpoint();
    if (ready_.empty()) break;
    run_ready();
    if ((!batch_open_ || deferred_) && pending_.empty() && ready_.empty() &&
        (sync_in_flight_ || unsynced_batches_ == 0))
      break;
  }
  flushing_ = false;
  if ((batch_open_ && !deferred_) || !pending_.empty() || !ready_.empty())
    LOG_WARN("store: after-commit callbacks kept writing; the rest waits for the next flush");
  // Last: the batch is committed and the iteration's read transaction ended, so the TRUNCATE
  // competes with nothing of ours.
  if (truncate_wanted_) maybe_start_pause();
}

void Database::run_ready() noexcept {
  std::vector<std::pair<Callback, bool>> run;
  run.swap(ready_);
  for (auto& [cb, ok] : run) {
    try {
      cb(ok);
    } catch (const std::exception& e) {
      LOG_ERROR("store: after-commit callback threw: %s", e.what());
    } catch (...) {
      LOG_ERROR("store: after-commit callback threw");
    }
  }
}

void Database::start_sync() noexcept {
  // One sync at a time; it covers every batch committed before it starts. Batches committed
  // while it runs wait for the next one, started as soon as this one completes.
  if (sync_in_flight_ || unsynced_batches_ == 0) return;
  // Nobody waits for these batches (see sync_unwaited()): a sync of their own would cost an
  // fdatasync and a thread-pool round trip for nothing; a waiting batch's sync will cover them.
  if (committed_.empty() && !sync_unwaited_) return;
  sync_unwaited_ = false;
  if (path_ == ":memory:") {  // nothing to make durable
    for (auto& cb : committed_) ready_.emplace_back(std::move(cb), true);
    committed_.clear();
    stats_.synced_batches += unsynced_batches_;
    unsynced_batches_ = 0;
    return;
  }
  syncing_.swap(committed_);  // syncing_ is empty when no sync is in flight
  committed_.clear();
  syncing_batches_ = unsynced_batches_;
  unsynced_batches_ = 0;
  sync_in_flight_ = true;
  uint64_t gen = ++sync_gen_;
  if (!refresh_wal_fd()) {
    on_sync_done(gen, false);
    return;
  }
  std::weak_ptr<int> alive = life_;
  Syncer::Done done = [this, alive, gen](bool ok) {
    if (!alive.expired()) on_sync_done(gen, ok);
  };
  try {
    if (!dir_sync_needed_) {
      syncer().sync(wal_fd_.fd, std::move(done));
      return;
    }
    // The WAL file is new: sync its directory entry first, then its data.
    dir_sync_needed_ = false;
    syncer().sync(dir_fd_.fd, [this, alive, gen, done = std::move(done)](bool ok) mutable {
      if (alive.expired() || gen != sync_gen_ || !sync_in_flight_) return;
      if (!ok) {
        dir_sync_needed_ = true;
        on_sync_done(gen, false);
        return;
      }
      try {
        syncer().sync(wal_fd_.fd, std::move(done));
      } catch (const std::exception&) {
        on_sync_done(gen, false);
      }
    });
  } catch (const std::exception& e) {
    LOG_ERROR("store: cannot start a WAL sync: %s", e.what());
    on_sync_done(gen, false);
  }
}

void Database::on_sync_done(uint64_t gen, bool ok) noexcept {
  if (!sync_in_flight_ || gen != sync_gen_) return;  // superseded (set_syncer/shutdown) or repeated
  sync_in_flight_ = false;
  if (ok) {
    ++stats_.syncs;
    stats_.synced_batches += syncing_batches_;
  } else {
    // Every batch this sync covered is reported failed (503: the client retries). After a failed
    // fsync Linux may have dropped the dirty pages, so nothing earlier is certain either.
    ++stats_.failed_syncs;
    LOG_ERROR("store: WAL sync failed; %zu batches (%zu requests) answered as failed; database suspect",
              syncing_batches_, syncing_.size());
    suspect_ = true;
  }
  for (auto& cb : syncing_) ready_.emplace_back(std::move(cb), ok);
  syncing_.clear();
  syncing_batches_ = 0;
  // From the loop (async completion): run the callbacks now and start the next sync if batches
  // committed meanwhile. From inside flush() (inline syncer): flush() does both.
  if (!flushing_ && depth_ == 0) flush();
}

void Database::supersede_sync() noexcept {
  if (!sync_in_flight_) return;
  ++sync_gen_;  // the completion in flight no longer matches
  sync_in_flight_ = false;
  // Its batches precede the waiting ones: put them back in front, in order.
  syncing_.insert(syncing_.end(), std::make_move_iterator(committed_.begin()),
                  std::make_move_iterator(committed_.end()));
  committed_.swap(syncing_);
  syncing_.clear();
  unsynced_batches_ += syncing_batches_;
  syncing_batches_ = 0;
  dir_sync_needed_ = true;  // a superseded directory sync may not have happened
}

void Database::set_syncer(Syncer* syncer) noexcept {
  supersede_sync();
  syncer_ = syncer;
}

void Database::shutdown() noexcept {
  if (depth_ > 0) {
    LOG_ERROR("store: shutdown() called inside write(); ignored");
    return;
  }
  no_pauses_ = true;  // the loop is going away: a pause's completion might never run
  sync_unwaited_ = true;
  flush();
  // A sync in flight on the thread pool cannot be waited for without running the loop: sync
  // again here, which covers it (and everything committed since), and ignore its completion.
  set_syncer(nullptr);
  sync_unwaited_ = true;
  flush();
  if (queued_callbacks() > 0) flush();
}

bool Database::run_checkpoint(int mode, std::function<void(const CheckpointJob&)> done) noexcept {
  auto res = std::make_shared<CheckpointJob>();
  sqlite3* db = ckpt_conn_.db;
  auto work = [db, mode, res] {
    // Worker thread: only the checkpoint connection (the loop never uses it meanwhile).
    res->rc = sqlite3_wal_checkpoint_v2(db, nullptr, mode, &res->log, &res->ckpt);
    if (res->rc == SQLITE_OK && res->log < 0) {
      res->rc = SQLITE_ERROR;
      res->err = "connection not in WAL mode";
    }
    if (res->rc != SQLITE_OK && res->rc != SQLITE_BUSY && res->err.empty()) res->err = sqlite3_errmsg(db);
  };
  std::weak_ptr<int> alive = life_;
  auto after = [this, alive, res, done = std::move(done)] {
    if (alive.expired()) return;
    checkpoint_in_flight_ = false;
    done(*res);
  };
  checkpoint_in_flight_ = true;
  try {
    syncer().run(std::move(work), std::move(after));
    return true;
  } catch (const std::exception& e) {
    checkpoint_in_flight_ = false;
    LOG_ERROR("store: cannot start a checkpoint: %s", e.what());
    return false;
  }
}

void Database::request_checkpoint() noexcept {
  if (!ckpt_conn_.db || checkpoint_in_flight_) return;
  checkpoint_wanted_ = false;
  // PASSIVE never takes the write lock, so the loop keeps committing; it copies what was
  // committed before it started and fsyncs.
  run_checkpoint(SQLITE_CHECKPOINT_PASSIVE, [this](const CheckpointJob& r) {
    if (r.rc == SQLITE_OK) {
      ++stats_.checkpoints;
      backfilled_pages_ = r.ckpt;
      LOG_DEBUG("store: checkpoint: %d of %d WAL frames copied", r.ckpt, r.log);
    } else if (r.rc != SQLITE_BUSY) {
      LOG_WARN("store: background checkpoint failed: %s (code %d)", r.err.c_str(), r.rc);
    }
    // A pause that waited for this checkpoint starts at the next flush() (every loop iteration).
  });
}

bool Database::park(std::function<void()> fn) {
  if (!paused_) return false;
  if (parked_.size() >= opts_.max_parked) {
    ++stats_.park_refused;
    return false;
  }
  parked_.push_back(std::move(fn));
  ++stats_.parked;
  return true;
}

void Database::maybe_start_pause() noexcept {
  // Under sustained load a PASSIVE checkpoint is usually in flight: let it finish first, so the
  // TRUNCATE has only the frames committed meanwhile to copy and the pause stays short.
  if (paused_ || checkpoint_in_flight_ || batch_open_ || depth_ > 0 || running_parked_ || no_pauses_ ||
      !ckpt_conn_.db)
    return;
  truncate_wanted_ = false;
  end_read();
  paused_ = true;
  pause_start_ = std::chrono::steady_clock::now();
  ++stats_.write_pauses;
  // No write transaction of the loop is open or will be begun until the job's completion ran, so
  // the write lock is free (unless another process holds it: SQLITE_BUSY after
  // truncate_busy_ms). TRUNCATE copies the frames not yet backfilled, fsyncs the database, waits
  // (busy timeout) for readers of WAL frames to finish and truncates the WAL to zero bytes.
  bool started = run_checkpoint(SQLITE_CHECKPOINT_TRUNCATE, [this](const CheckpointJob& r) {
    if (r.rc == SQLITE_OK) {
      ++stats_.checkpoints;
      ++stats_.truncations;
      backfilled_pages_ = 0;
      wal_pages_ = 0;
      truncate_at_ = opts_.truncate_pages;
      LOG_DEBUG("store: write pause: WAL truncated (%d frames)", r.log);
    } else {
      // Readers (or another process) held it back. If the backfill completed, the loop's next
      // write restarts the WAL from its start (SQLite does that when it begins a write on a fully
      // backfilled WAL); otherwise retry once the WAL grew by another checkpoint_pages.
      if (r.ckpt >= 0) backfilled_pages_ = r.ckpt;
      truncate_at_ = wal_pages_ + std::max(1, opts_.checkpoint_pages);
      if (r.rc == SQLITE_BUSY)
        LOG_DEBUG("store: write pause: TRUNCATE busy (%d of %d frames copied)", r.ckpt, r.log);
      else
        LOG_WARN("store: write pause: TRUNCATE checkpoint failed: %s (code %d)", r.err.c_str(), r.rc);
    }
    end_pause();
  });
  if (!started) {
    truncate_at_ = wal_pages_ + std::max(1, opts_.checkpoint_pages);
    end_pause();
  }
}

void Database::end_pause() noexcept {
  paused_ = false;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - pause_start_).count();
  uint64_t pause_us = us > 0 ? static_cast<uint64_t>(us) : 0;
  stats_.pause_us_total += pause_us;
  stats_.pause_us_max = std::max(stats_.pause_us_max, pause_us);
  if (parked_.empty()) return;
  // Parked work runs now, in order; its writes join the batch committed by the next flush()
  // (the iteration's prepare handle). A new pause cannot start before all of it ran.
  std::deque<std::function<void()>> run;
  run.swap(parked_);
  running_parked_ = true;
  for (auto& fn : run) {
    try {
      fn();
    } catch (const std::exception& e) {
      LOG_ERROR("store: parked work threw: %s", e.what());
    } catch (...) {
      LOG_ERROR("store: parked work threw");
    }
  }
  running_parked_ = false;
}

int Database::release_memory() noexcept {
  int before = 0, after = 0, hi = 0;
  sqlite3_db_status(conn_.db, SQLITE_DBSTATUS_CACHE_USED, &before, &hi, 0);
  sqlite3_db_release_memory(conn_.db);
  sqlite3_db_status(conn_.db, SQLITE_DBSTATUS_CACHE_USED, &after, &hi, 0);
  int freed = before - after;
  // The worker owns the checkpoint connection while a checkpoint runs.
  if (ckpt_conn_.db && !checkpoint_in_flight_) {
    sqlite3_db_status(ckpt_conn_.db, SQLITE_DBSTATUS_CACHE_USED, &before, &hi, 0);
    sqlite3_db_release_memory(ckpt_conn_.db);
    sqlite3_db_status(ckpt_conn_.db, SQLITE_DBSTATUS_CACHE_USED, &after, &hi, 0);
    freed += before - after;
  }
  return freed;
}

CacheStats Database::cache_stats() const noexcept {
  CacheStats st;
  int hi = 0;
  sqlite3_db_status(conn_.db, SQLITE_DBSTATUS_CACHE_HIT, &st.hits, &hi, 0);
  sqlite3_db_status(conn_.db, SQLITE_DBSTATUS_CACHE_MISS, &st.misses, &hi, 0);
  sqlite3_db_status(conn_.db, SQLITE_DBSTATUS_CACHE_USED, &st.used_bytes, &hi, 0);
  return st;
}

CheckpointResult Database::checkpoint_passive() noexcept {
  CheckpointResult r;
  if (depth_ > 0 || checkpoint_in_flight_) return r;
  // Our own write transaction would hold back the checkpoint: commit it first.
  commit_batch();
  sqlite3* db = ckpt_conn_.db ? ckpt_conn_.db : conn_.db;
  int rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &r.wal_frames,
                                     &r.checkpointed_frames);
  r.ok = rc == SQLITE_OK;
  if (!r.ok && rc != SQLITE_BUSY)
    LOG_WARN("store: wal_checkpoint(PASSIVE) failed: %s (code %d)", sqlite3_errmsg(db), rc);
  if (r.ok) backfilled_pages_ = r.checkpointed_frames;
  return r;
}

}  // namespace aloha::store
