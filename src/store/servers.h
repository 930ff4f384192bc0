// Servers: the registrations of self-hosted servers (api.md server/register, auth), and Audit,
// their audit log. Both hold prepared statements on the Store's Database and must not outlive it.
// Mutating calls join the current write batch (Database::write); they are durable only after the
// batch commits (Database::after_commit / flush).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/db.h"
#include "store/row_cache.h"

namespace aloha::store {

struct ServerRow {
  int64_t id = 0;
  std::string uuid, key_hash, hostname, contact_email;
  int64_t created_ms = 0, last_updated_ms = 0, last_request_ms = 0;  // last_request_ms 0 = never
  bool deactivated = false;
  std::optional<std::string> version, merge_base;
  std::optional<int64_t> api_feature_level;
};

class Servers {
 public:
  // touch_interval_ms: how often at most last_request_ms is written per server.
  explicit Servers(Database& db, int64_t touch_interval_ms = 60'000);
  Servers(const Servers&) = delete;
  Servers& operator=(const Servers&) = delete;

  // Exact string match on the stored (canonical lowercase) org id. last_request_ms includes
  // touches not yet written.
  std::optional<ServerRow> find_by_uuid(std::string_view uuid);
  std::optional<ServerRow> find_by_id(int64_t id);
  // The active (not deactivated) registration holding this hostname; exact, case-sensitive.
  std::optional<ServerRow> find_active_by_hostname(std::string_view hostname);

  // find_by_uuid for authentication (every authenticated request): served from a bounded
  // in-memory cache of rows, shared with the caller (nullptr = unknown uuid, not cached). Every
  // write to a server row made through this class empties the cache, and until the write batch
  // that held it has ended (committed or rolled back) lookups bypass the cache, so an
  // uncommitted row is never cached. The row's last_request_ms is as of loading: use
  // find_by_uuid for the current value. Writes to the table from outside this class (another
  // process) are not seen until the cache is emptied: the bouncer is the only writer.
  static constexpr size_t kAuthCacheMax = 1024;
  std::shared_ptr<const ServerRow> find_for_auth(std::string_view uuid);
  size_t auth_cache_size() const { return auth_cache_.size(); }  // for tests

  // Returns the new row id. Throws StoreError (is_constraint()) when the uuid exists or the
  // hostname is held by an active registration.
  int64_t insert(std::string_view uuid, std::string_view key_hash, std::string_view hostname,
                 std::string_view contact_email, int64_t now_ms);
  // Sets hostname and email, and the key hash when new_key_hash is given. Throws if id is unknown.
  void update_registration(int64_t id, std::string_view hostname, std::string_view contact_email,
                           std::optional<std::string_view> new_key_hash, int64_t now_ms);
  void deactivate(int64_t id, int64_t now_ms);
  void set_key_hash(int64_t id, std::string_view key_hash, int64_t now_ms);
  // server/analytics: all three are stored, an absent one as NULL (api.md).
  void set_version_info(int64_t id, std::optional<std::string_view> version,
                        std::optional<std::string_view> merge_base,
                        std::optional<int64_t> api_feature_level, int64_t now_ms);

  // Records an authenticated request. Kept in memory and written behind into the write batch:
  // at most once per server per touch_interval_ms (the first touch after start writes at once).
  // Best effort: a store error is logged, never thrown.
  void touch_last_request(int64_t id, int64_t now_ms) noexcept;
  // Writes every touch not yet written (maintenance timer and shutdown). Best effort as above.
  void write_pending_touches() noexcept;
  size_t pending_touches() const;

 private:
  struct Touch {
    int64_t latest_ms = 0;   // newest request seen
    int64_t written_ms = 0;  // value last written
    bool written = false;
  };
  std::optional<ServerRow> one(Stmt& s);
  void write_touch(int64_t id, Touch& t) noexcept;
  void expect_one_changed(int changes, int64_t id, const char* what);
  void row_write_attempt() noexcept { auth_cache_.invalidate(); }

  Database& db_;
  int64_t touch_interval_ms_;
  std::unordered_map<int64_t, Touch> touches_;  // one entry per server seen: bounded by the table
  // uuid -> row; at most kAuthCacheMax entries (store/row_cache.h).
  RowCache<std::shared_ptr<const ServerRow>> auth_cache_;
  Stmt by_uuid_, by_id_, by_hostname_, insert_, update_reg_, update_reg_key_, deactivate_, set_key_,
      set_version_, touch_;
};

struct AuditRow {
  int64_t id = 0, server_id = 0;
  std::string event;
  int64_t created_ms = 0;
  std::string extra_json;
};

class Audit {
 public:
  explicit Audit(Database& db);
  // event: a short snake_case name ("server_created", ...); extra_json: a JSON object text.
  void add(int64_t server_id, std::string_view event, int64_t now_ms, std::string_view extra_json);
  // Newest first, at most `limit` rows.
  std::vector<AuditRow> recent(int64_t server_id, int limit);

 private:
  Database& db_;
  Stmt insert_, recent_;
};

}  // namespace aloha::store
