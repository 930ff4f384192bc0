#include "store/db.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

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

}  // namespace

std::unique_ptr<Database> Database::open(const std::string& path, const DatabaseOptions& opts) {
  return std::make_unique<Database>(path, opts);
}

Database::Database(const std::string& path, const DatabaseOptions& opts) : path_(path), opts_(opts) {
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
  } catch (const StoreError& e) {
    throw StoreError("database " + path + ": " + e.what(), e.code());
  }
  begin_ = std::make_unique<Stmt>(conn_.db, "BEGIN IMMEDIATE");
  commit_ = std::make_unique<Stmt>(conn_.db, "COMMIT");
  rollback_ = std::make_unique<Stmt>(conn_.db, "ROLLBACK");
  savepoint_ = std::make_unique<Stmt>(conn_.db, "SAVEPOINT w");
  release_ = std::make_unique<Stmt>(conn_.db, "RELEASE w");
  rollback_to_ = std::make_unique<Stmt>(conn_.db, "ROLLBACK TO w");
}

Database::~Database() {
  if (depth_ > 0) LOG_ERROR("store: database closed inside write()");
  if (batch_open_) commit_batch();
  if (!pending_.empty() || !ready_.empty())
    LOG_WARN("store: %zu after-commit callbacks dropped at close (flush() was not called)",
             pending_.size() + ready_.size());
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
  // FULL in WAL mode fsyncs the WAL at every commit: an answered registration survives power loss
  // (NORMAL would only survive a process crash). Group commit keeps the fsync count low.
  exec("PRAGMA synchronous=FULL");
  exec("PRAGMA foreign_keys=ON");
  if (pragma_text("PRAGMA foreign_keys") != "1") throw StoreError("SQLite lacks foreign key support");
  exec("PRAGMA journal_size_limit=" + std::to_string(opts_.journal_size_limit));
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

void Database::begin_write() {
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
  ++stats_.failed_commits;
  for (auto& cb : pending_) ready_.emplace_back(std::move(cb), false);
  pending_.clear();
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
  ++stats_.commits;
  for (auto& cb : pending_) ready_.emplace_back(std::move(cb), true);
  pending_.clear();
}

void Database::after_commit(std::function<void(bool ok)> cb) { pending_.push_back(std::move(cb)); }

void Database::commit_pending() noexcept {
  if (depth_ > 0) return;
  commit_batch();
}

void Database::flush() noexcept {
  if (depth_ > 0) {
    LOG_ERROR("store: flush() called inside write(); ignored");
    return;
  }
  // Callbacks may write and queue callbacks again; give them a few rounds so their work does not
  // sit uncommitted while the loop sleeps in poll.
  constexpr int kRounds = 8;
  for (int round = 0; round < kRounds; ++round) {
    if (batch_open_) {
      commit_batch();
    } else {
      for (auto& cb : pending_) ready_.emplace_back(std::move(cb), true);
      pending_.clear();
    }
    if (ready_.empty()) return;
    std::vector<std::pair<std::function<void(bool)>, bool>> run;
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
    if (!batch_open_ && pending_.empty() && ready_.empty()) return;
  }
  if (batch_open_ || !pending_.empty() || !ready_.empty())
    LOG_WARN("store: after-commit callbacks kept writing; the rest waits for the next flush");
}

CheckpointResult Database::checkpoint_passive() noexcept {
  CheckpointResult r;
  if (depth_ > 0) return r;
  // A checkpoint cannot run inside our own write transaction.
  commit_batch();
  int rc = sqlite3_wal_checkpoint_v2(conn_.db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &r.wal_frames,
                                     &r.checkpointed_frames);
  r.ok = rc == SQLITE_OK;
  if (!r.ok && rc != SQLITE_BUSY)
    LOG_WARN("store: wal_checkpoint(PASSIVE) failed: %s (code %d)", sqlite3_errmsg(conn_.db), rc);
  return r;
}

}  // namespace aloha::store
