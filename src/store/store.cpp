#include "store/store.h"

#include "core/log.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace aloha::store {

Store::Store(const std::string& path, const StoreOptions& opts)
    : db_(Database::open(path, opts.db)),
      servers_(*db_, opts.touch_interval_ms),
      audit_(*db_),
      devices_(*db_),
      realms_(*db_),
      counters_(*db_),
      select_one_(db_->handle(), "SELECT 1") {}

Store::~Store() {
  servers_.write_pending_touches();
  counters_.write_pending();
  db_->commit_pending();
  db_->sync_unwaited();  // batches nobody waited for become durable at the next flush
  if (uv_syncer_) {
    LOG_ERROR("store: destroyed with the loop still attached (call detach_loop())");
    detach_loop();
  }
}

void Store::attach_loop(uv_loop_t* loop) {
  detach_loop();
  uv_syncer_ = std::make_unique<UvSyncer>(loop);
  db_->set_syncer(uv_syncer_.get());
}

void Store::detach_loop() noexcept {
  if (!uv_syncer_) return;
  // Completions of jobs still in flight must run (and free their requests) before the loop
  // closes; they find the Database alive and either apply or, when superseded, are ignored.
  uv_syncer_->drain();
  db_->set_syncer(nullptr);
  uv_syncer_.reset();
}

bool Store::health() noexcept {
  try {
    if (db_->suspect()) return false;  // a WAL fsync failed: answered data may be lost
    auto u = select_one_.use();
    return select_one_.step() && select_one_.col_int(0) == 1;
  } catch (const std::exception& e) {
    LOG_ERROR("store: health check failed: %s", e.what());
    return false;
  }
}

bool Store::integrity_ok() {
  Stmt s(db_->handle(), "PRAGMA integrity_check");
  auto u = s.use();
  bool ok = true;
  int rows = 0;
  while (s.step()) {
    std::string line = s.col_text(0);
    if (line != "ok") {
      ok = false;
      if (rows < 10) LOG_ERROR("store: integrity_check: %s", line.c_str());
    }
    ++rows;
  }
  return ok && rows > 0;
}

void Store::maintenance() noexcept {
  if (db_->in_write()) return;
  servers_.write_pending_touches();
  counters_.write_pending();
  db_->commit_pending();
  db_->sync_unwaited();  // batches nobody waited for become durable at the next flush
  db_->request_checkpoint();
  release_memory();
}

void Store::release_memory() noexcept {
  int freed = db_->release_memory();
#ifdef __GLIBC__
  // After a burst (a registration wave, a notify peak) glibc keeps the freed memory: pages in the
  // middle of the heap are only given back by malloc_trim, which also merges the scattered free
  // chunks a burst leaves (a fragmented heap makes every later malloc slower). It walks the free
  // lists once: well under a millisecond for a heap of a few MB, every 30 s.
  malloc_trim(0);
#endif
  LOG_DEBUG("store: released %d bytes of page cache", freed);
}

void Store::shutdown() noexcept {
  servers_.write_pending_touches();
  counters_.write_pending();
  db_->shutdown();
  const DatabaseStats& st = db_->stats();
  LOG_INFO("store: %llu writes in %llu commits (%llu of them deferred), %llu WAL syncs, %llu checkpoints, "
           "%llu write pauses",
           static_cast<unsigned long long>(st.writes), static_cast<unsigned long long>(st.commits),
           static_cast<unsigned long long>(st.deferred_commits), static_cast<unsigned long long>(st.syncs),
           static_cast<unsigned long long>(st.checkpoints), static_cast<unsigned long long>(st.write_pauses));
}

}  // namespace aloha::store
