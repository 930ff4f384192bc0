#include "store/servers.h"

#include <algorithm>

#include "core/log.h"

namespace aloha::store {
namespace {

constexpr const char* kServerCols =
    "id, uuid, key_hash, hostname, contact_email, created_ms, last_updated_ms, last_request_ms, "
    "deactivated, version, merge_base, api_feature_level";

std::string select_server(const char* where) {
  return std::string("SELECT ") + kServerCols + " FROM servers WHERE " + where;
}

}  // namespace

Servers::Servers(Database& db, int64_t touch_interval_ms)
    : db_(db),
      touch_interval_ms_(touch_interval_ms),
      auth_cache_(db, kAuthCacheMax),
      by_uuid_(db.handle(), select_server("uuid = ?1")),
      by_id_(db.handle(), select_server("id = ?1")),
      // The WHERE repeats the partial index's condition so SQLite can use servers_active_hostname.
      by_hostname_(db.handle(), select_server("hostname = ?1 AND deactivated = 0")),
      insert_(db.handle(),
              "INSERT INTO servers (uuid, key_hash, hostname, contact_email, created_ms, last_updated_ms) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?5)"),
      update_reg_(db.handle(),
                  "UPDATE servers SET hostname = ?2, contact_email = ?3, last_updated_ms = ?4 WHERE id = ?1"),
      update_reg_key_(db.handle(),
                      "UPDATE servers SET hostname = ?2, contact_email = ?3, last_updated_ms = ?4, "
                      "key_hash = ?5 WHERE id = ?1"),
      deactivate_(db.handle(), "UPDATE servers SET deactivated = 1, last_updated_ms = ?2 WHERE id = ?1"),
      set_key_(db.handle(), "UPDATE servers SET key_hash = ?2, last_updated_ms = ?3 WHERE id = ?1"),
      set_version_(db.handle(),
                   "UPDATE servers SET version = ?2, merge_base = ?3, api_feature_level = ?4, "
                   "last_updated_ms = ?5 WHERE id = ?1"),
      // max(): a late write-behind must never move the time backwards.
      touch_(db.handle(), "UPDATE servers SET last_request_ms = max(last_request_ms, ?2) WHERE id = ?1") {}

std::optional<ServerRow> Servers::one(Stmt& s) {
  if (!s.step()) return std::nullopt;
  ServerRow r;
  r.id = s.col_int(0);
  r.uuid = s.col_text(1);
  r.key_hash = s.col_text(2);
  r.hostname = s.col_text(3);
  r.contact_email = s.col_text(4);
  r.created_ms = s.col_int(5);
  r.last_updated_ms = s.col_int(6);
  r.last_request_ms = s.col_int(7);
  r.deactivated = s.col_int(8) != 0;
  r.version = s.col_opt_text(9);
  r.merge_base = s.col_opt_text(10);
  r.api_feature_level = s.col_opt_int(11);
  auto it = touches_.find(r.id);
  if (it != touches_.end()) r.last_request_ms = std::max(r.last_request_ms, it->second.latest_ms);
  return r;
}

std::optional<ServerRow> Servers::find_by_uuid(std::string_view uuid) {
  auto u = by_uuid_.use();
  by_uuid_.bind(1, uuid);
  return one(by_uuid_);
}

std::optional<ServerRow> Servers::find_by_id(int64_t id) {
  auto u = by_id_.use();
  by_id_.bind(1, id);
  return one(by_id_);
}

std::optional<ServerRow> Servers::find_active_by_hostname(std::string_view hostname) {
  auto u = by_hostname_.use();
  by_hostname_.bind(1, hostname);
  return one(by_hostname_);
}

std::shared_ptr<const ServerRow> Servers::find_for_auth(std::string_view uuid) {
  if (!auth_cache_.usable()) {
    // The open batch holds a server write that may still be rolled back: read through.
    std::optional<ServerRow> row = find_by_uuid(uuid);
    return row ? std::make_shared<const ServerRow>(std::move(*row)) : nullptr;
  }
  if (const auto* hit = auth_cache_.find(uuid)) return *hit;
  std::optional<ServerRow> row = find_by_uuid(uuid);
  if (!row) return nullptr;  // unknown ids are not cached: a later registration must be seen
  auto shared = std::make_shared<const ServerRow>(std::move(*row));
  auth_cache_.put(shared->uuid, shared);
  return shared;
}

void Servers::expect_one_changed(int changes, int64_t id, const char* what) {
  if (changes != 1) throw StoreError(std::string(what) + ": no server with id " + std::to_string(id));
}

int64_t Servers::insert(std::string_view uuid, std::string_view key_hash, std::string_view hostname,
                        std::string_view contact_email, int64_t now_ms) {
  row_write_attempt();
  return db_.write([&] {
    auto u = insert_.use();
    insert_.bind(1, uuid);
    insert_.bind(2, key_hash);
    insert_.bind(3, hostname);
    insert_.bind(4, contact_email);
    insert_.bind(5, now_ms);
    insert_.exec();
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.handle()));
  });
}

void Servers::update_registration(int64_t id, std::string_view hostname, std::string_view contact_email,
                                  std::optional<std::string_view> new_key_hash, int64_t now_ms) {
  row_write_attempt();
  db_.write([&] {
    Stmt& s = new_key_hash ? update_reg_key_ : update_reg_;
    auto u = s.use();
    s.bind(1, id);
    s.bind(2, hostname);
    s.bind(3, contact_email);
    s.bind(4, now_ms);
    if (new_key_hash) s.bind(5, *new_key_hash);
    expect_one_changed(s.exec(), id, "update_registration");
  });
}

void Servers::deactivate(int64_t id, int64_t now_ms) {
  row_write_attempt();
  db_.write([&] {
    auto u = deactivate_.use();
    deactivate_.bind(1, id);
    deactivate_.bind(2, now_ms);
    expect_one_changed(deactivate_.exec(), id, "deactivate");
  });
}

void Servers::set_key_hash(int64_t id, std::string_view key_hash, int64_t now_ms) {
  row_write_attempt();
  db_.write([&] {
    auto u = set_key_.use();
    set_key_.bind(1, id);
    set_key_.bind(2, key_hash);
    set_key_.bind(3, now_ms);
    expect_one_changed(set_key_.exec(), id, "set_key_hash");
  });
}

void Servers::set_version_info(int64_t id, std::optional<std::string_view> version,
                               std::optional<std::string_view> merge_base,
                               std::optional<int64_t> api_feature_level, int64_t now_ms) {
  row_write_attempt();
  db_.write([&] {
    auto u = set_version_.use();
    set_version_.bind(1, id);
    set_version_.bind(2, version);
    set_version_.bind(3, merge_base);
    set_version_.bind(4, api_feature_level);
    set_version_.bind(5, now_ms);
    expect_one_changed(set_version_.exec(), id, "set_version_info");
  });
}

void Servers::write_touch(int64_t id, Touch& t) noexcept {
  // During a store write pause the touch stays pending (in memory): a later request or
  // maintenance() writes it.
  if (db_.write_paused()) return;
  try {
    db_.write([&] {
      auto u = touch_.use();
      touch_.bind(1, id);
      touch_.bind(2, t.latest_ms);
      touch_.exec();
    });
    t.written_ms = t.latest_ms;
    t.written = true;
  } catch (const std::exception& e) {
    // last_request_at is informational; the request itself must not fail over it.
    LOG_WARN("store: cannot record last request of server %lld: %s", static_cast<long long>(id), e.what());
  }
}

void Servers::touch_last_request(int64_t id, int64_t now_ms) noexcept {
  Touch& t = touches_[id];
  t.latest_ms = std::max(t.latest_ms, now_ms);
  if (!t.written || now_ms - t.written_ms >= touch_interval_ms_) write_touch(id, t);
}

void Servers::write_pending_touches() noexcept {
  for (auto& [id, t] : touches_)
    if (!t.written || t.latest_ms > t.written_ms) write_touch(id, t);
}

size_t Servers::pending_touches() const {
  size_t n = 0;
  for (const auto& [id, t] : touches_)
    if (!t.written || t.latest_ms > t.written_ms) ++n;
  return n;
}

Audit::Audit(Database& db)
    : db_(db),
      insert_(db.handle(), "INSERT INTO server_audit (server_id, event, created_ms, extra) VALUES (?1, ?2, ?3, ?4)"),
      recent_(db.handle(),
              "SELECT id, server_id, event, created_ms, extra FROM server_audit WHERE server_id = ?1 "
              "ORDER BY id DESC LIMIT ?2") {}

void Audit::add(int64_t server_id, std::string_view event, int64_t now_ms, std::string_view extra_json) {
  db_.write([&] {
    auto u = insert_.use();
    insert_.bind(1, server_id);
    insert_.bind(2, event);
    insert_.bind(3, now_ms);
    insert_.bind(4, extra_json.empty() ? std::string_view("{}") : extra_json);
    insert_.exec();
  });
}

std::vector<AuditRow> Audit::recent(int64_t server_id, int limit) {
  std::vector<AuditRow> out;
  auto u = recent_.use();
  recent_.bind(1, server_id);
  recent_.bind(2, limit);
  while (recent_.step()) {
    AuditRow r;
    r.id = recent_.col_int(0);
    r.server_id = recent_.col_int(1);
    r.event = recent_.col_text(2);
    r.created_ms = recent_.col_int(3);
    r.extra_json = recent_.col_text(4);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace aloha::store

