#include "store/realms.h"

#include "core/log.h"
#include "store/devices.h"

namespace aloha::store {
namespace {

constexpr const char* kCols =
    "id, server_id, uuid, remote_id, host, url, name, org_type, date_created_ms, deactivated, "
    "is_system_bot_realm, authentication_methods, uuid_owner_secret, locally_deleted, created_ms, "
    "last_updated_ms";

RealmRow realm_of(Stmt& s) {
  RealmRow r;
  r.id = s.col_int(0);
  r.server_id = s.col_int(1);
  r.uuid = s.col_text(2);
  r.remote_id = s.col_opt_int(3);
  r.host = s.col_text(4);
  r.url = s.col_opt_text(5);
  r.name = s.col_text(6);
  r.org_type = s.col_int(7);
  r.date_created_ms = s.col_opt_int(8);
  r.deactivated = s.col_int(9) != 0;
  r.is_system_bot_realm = s.col_int(10) != 0;
  r.authentication_methods_json = s.col_text(11);
  r.uuid_owner_secret = s.col_opt_text(12);
  r.locally_deleted = s.col_int(13) != 0;
  r.created_ms = s.col_int(14);
  r.last_updated_ms = s.col_int(15);
  return r;
}

std::optional<std::string_view> opt_view(const std::optional<std::string>& s) {
  return s ? std::optional<std::string_view>(*s) : std::nullopt;
}

}  // namespace

Realms::Realms(Database& db)
    : db_(db),
      by_uuid_(db.handle(), std::string("SELECT ") + kCols + " FROM realms WHERE uuid = ?1"),
      owner_by_uuid_(db.handle(), "SELECT id, server_id FROM realms WHERE uuid = ?1"),
      // The DO UPDATE's WHERE leaves another server's realm untouched: changes() = 0 tells us.
      upsert_(db.handle(),
              "INSERT INTO realms (server_id, uuid, remote_id, host, url, name, org_type, date_created_ms, "
              "deactivated, is_system_bot_realm, authentication_methods, uuid_owner_secret, "
              "locally_deleted, created_ms, last_updated_ms) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13, ?13) "
              "ON CONFLICT (uuid) DO UPDATE SET remote_id = excluded.remote_id, host = excluded.host, "
              "url = excluded.url, name = excluded.name, org_type = excluded.org_type, "
              "date_created_ms = excluded.date_created_ms, deactivated = excluded.deactivated, "
              "is_system_bot_realm = excluded.is_system_bot_realm, "
              "authentication_methods = excluded.authentication_methods, "
              "uuid_owner_secret = excluded.uuid_owner_secret, locally_deleted = 0, "
              "last_updated_ms = excluded.last_updated_ms "
              "WHERE realms.server_id = excluded.server_id"),
      for_server_(db.handle(),
                  std::string("SELECT ") + kCols + " FROM realms WHERE server_id = ?1 ORDER BY id LIMIT ?2"),
      set_deleted_(db.handle(), "UPDATE realms SET locally_deleted = ?2, last_updated_ms = ?3 WHERE id = ?1"),
      owner_cache_(db, kOwnerCacheMax) {}

std::optional<RealmRow> Realms::find_by_uuid(std::string_view uuid) {
  std::string lower = ascii_lower(uuid);
  auto u = by_uuid_.use();
  by_uuid_.bind(1, std::string_view(lower));
  if (by_uuid_.step()) return realm_of(by_uuid_);
  return std::nullopt;
}

std::optional<RealmOwner> Realms::owner_of(std::string_view uuid) {
  // Lower-cased into a stack buffer: realm UUIDs are 36 characters (longer text takes the heap).
  char buf[64];
  std::string heap;
  std::string_view lower;
  if (uuid.size() <= sizeof buf) {
    for (size_t i = 0; i < uuid.size(); ++i) {
      char c = uuid[i];
      buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    lower = std::string_view(buf, uuid.size());
  } else {
    heap = ascii_lower(uuid);
    lower = heap;
  }
  if (!owner_cache_.usable()) return lookup_owner(lower);  // a realm write may still roll back
  if (const auto* hit = owner_cache_.find(lower)) return *hit;
  std::optional<RealmOwner> owner = lookup_owner(lower);
  owner_cache_.put(lower, owner);
  return owner;
}

std::optional<RealmOwner> Realms::lookup_owner(std::string_view lower) {
  auto u = owner_by_uuid_.use();
  owner_by_uuid_.bind(1, lower);
  if (!owner_by_uuid_.step()) return std::nullopt;
  return RealmOwner{owner_by_uuid_.col_int(0), owner_by_uuid_.col_int(1)};
}

std::optional<int64_t> Realms::upsert(const RealmRow& r, int64_t now_ms) {
  std::string lower = ascii_lower(r.uuid);
  write_attempt();
  return db_.write([&]() -> std::optional<int64_t> {
    {
      auto u = upsert_.use();
      upsert_.bind(1, r.server_id);
      upsert_.bind(2, std::string_view(lower));
      upsert_.bind(3, r.remote_id);
      upsert_.bind(4, std::string_view(r.host));
      upsert_.bind(5, opt_view(r.url));
      upsert_.bind(6, std::string_view(r.name));
      upsert_.bind(7, r.org_type);
      upsert_.bind(8, r.date_created_ms);
      upsert_.bind(9, r.deactivated ? 1 : 0);
      upsert_.bind(10, r.is_system_bot_realm ? 1 : 0);
      upsert_.bind(11, std::string_view(r.authentication_methods_json));
      upsert_.bind(12, opt_view(r.uuid_owner_secret));
      upsert_.bind(13, now_ms);
      if (upsert_.exec() == 0) return std::nullopt;  // another server's realm
    }
    auto u = by_uuid_.use();
    by_uuid_.bind(1, std::string_view(lower));
    if (!by_uuid_.step()) throw StoreError("realm vanished after upsert");
    return by_uuid_.col_int(0);
  });
}

std::vector<RealmRow> Realms::for_server(int64_t server_id, int limit) {
  std::vector<RealmRow> out;
  auto u = for_server_.use();
  for_server_.bind(1, server_id);
  for_server_.bind(2, limit);
  while (for_server_.step()) out.push_back(realm_of(for_server_));
  return out;
}

void Realms::set_locally_deleted(int64_t id, bool deleted, int64_t now_ms) {
  write_attempt();
  db_.write([&] {
    auto u = set_deleted_.use();
    set_deleted_.bind(1, id);
    set_deleted_.bind(2, deleted ? 1 : 0);
    set_deleted_.bind(3, now_ms);
    set_deleted_.exec();
  });
}

Counters::Counters(Database& db, size_t max_pending)
    : db_(db),
      max_pending_(max_pending),
      // ON CONFLICT names the partial index's columns and condition (required for an upsert on a
      // partial unique index, https://sqlite.org/lang_upsert.html).
      add_realm_(db.handle(),
                 "INSERT INTO push_counters (server_id, realm_id, property, end_time_s, value) "
                 "VALUES (?1, ?2, ?3, ?4, ?5) "
                 "ON CONFLICT (server_id, realm_id, property, end_time_s) WHERE realm_id IS NOT NULL "
                 "DO UPDATE SET value = value + excluded.value"),
      add_server_(db.handle(),
                  "INSERT INTO push_counters (server_id, realm_id, property, end_time_s, value) "
                  "VALUES (?1, NULL, ?2, ?3, ?4) "
                  "ON CONFLICT (server_id, property, end_time_s) WHERE realm_id IS NULL "
                  "DO UPDATE SET value = value + excluded.value"),
      get_realm_(db.handle(),
                 "SELECT value FROM push_counters WHERE server_id = ?1 AND realm_id = ?2 AND property = ?3 "
                 "AND end_time_s = ?4"),
      get_server_(db.handle(),
                  "SELECT value FROM push_counters WHERE server_id = ?1 AND realm_id IS NULL AND "
                  "property = ?2 AND end_time_s = ?3") {}

void Counters::add(int64_t server, std::optional<int64_t> realm, std::string_view property, int64_t day_end_s,
                   int64_t delta) {
  auto it = pending_.find(KeyView{server, realm, property, day_end_s});
  if (it != pending_.end()) {
    it->second += delta;
    return;  // no new key: the bound cannot have been reached
  }
  pending_.emplace(Key{server, realm, std::string(property), day_end_s}, delta);
  if (pending_.size() >= max_pending_) write_pending();
}

void Counters::upsert(const Key& k, int64_t delta) {
  if (k.realm) {
    auto u = add_realm_.use();
    add_realm_.bind(1, k.server);
    add_realm_.bind(2, *k.realm);
    add_realm_.bind(3, std::string_view(k.property));
    add_realm_.bind(4, k.day_end_s);
    add_realm_.bind(5, delta);
    add_realm_.exec();
  } else {
    auto u = add_server_.use();
    add_server_.bind(1, k.server);
    add_server_.bind(2, std::string_view(k.property));
    add_server_.bind(3, k.day_end_s);
    add_server_.bind(4, delta);
    add_server_.exec();
  }
}

void Counters::write_pending() noexcept {
  // During a store write pause the counts stay pending; the next call after it writes them. Keys
  // are (server, realm, property, day): the few added during a pause of some ms stay bounded.
  if (pending_.empty() || db_.write_paused()) return;
  try {
    // One savepoint for all: either every pending count is in the batch or none is.
    db_.write([&] {
      for (const auto& [k, delta] : pending_) upsert(k, delta);
    });
    pending_.clear();
  } catch (const std::exception& e) {
    LOG_WARN("store: cannot write %zu pending counters: %s", pending_.size(), e.what());
  }
}

std::optional<int64_t> Counters::stored(const Key& k) {
  Stmt& s = k.realm ? get_realm_ : get_server_;
  auto u = s.use();
  int i = 1;
  s.bind(i++, k.server);
  if (k.realm) s.bind(i++, *k.realm);
  s.bind(i++, std::string_view(k.property));
  s.bind(i++, k.day_end_s);
  if (s.step()) return s.col_int(0);
  return std::nullopt;
}

std::optional<int64_t> Counters::get(int64_t server, std::optional<int64_t> realm, std::string_view property,
                                     int64_t day_end_s) {
  Key k{server, realm, std::string(property), day_end_s};
  std::optional<int64_t> v = stored(k);
  auto it = pending_.find(view_of(k));
  if (it != pending_.end()) v = v.value_or(0) + it->second;
  return v;
}

}  // namespace aloha::store
