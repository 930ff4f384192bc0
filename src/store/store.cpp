#include "store/store.h"

#include "core/log.h"

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
}

bool Store::health() noexcept {
  try {
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
  CheckpointResult r = db_->checkpoint_passive();
  if (r.ok)
    LOG_DEBUG("store: checkpoint: %d of %d WAL frames copied", r.checkpointed_frames, r.wal_frames);
}

void Store::shutdown() noexcept {
  servers_.write_pending_touches();
  counters_.write_pending();
  db_->flush();
}

}  // namespace aloha::store
