// Realms: the organizations of each server, created and updated by server/analytics and looked up
// by uuid in push/register, push/notify and e2ee (api.md §3). Counters: the bouncer's own daily
// counters (mobile_pushes_received::day, mobile_pushes_forwarded::day), written behind with an
// upsert-add.
// Both hold prepared statements on the Store's Database; writes join the current batch.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <map>
#include <string_view>
#include <tuple>
#include <vector>

#include "store/db.h"
#include "store/row_cache.h"

namespace aloha::store {

struct RealmRow {
  int64_t id = 0;
  int64_t server_id = 0;
  std::string uuid;                    // lowercase
  std::optional<int64_t> remote_id;    // the realm's id on its server
  std::string host;
  std::optional<std::string> url;
  std::string name;
  int64_t org_type = 0;
  std::optional<int64_t> date_created_ms;
  bool deactivated = false;
  bool is_system_bot_realm = false;
  std::string authentication_methods_json = "{}";
  std::optional<std::string> uuid_owner_secret;
  bool locally_deleted = false;
  int64_t created_ms = 0, last_updated_ms = 0;
};

// Who owns a realm: all that push/notify's realm check needs.
struct RealmOwner {
  int64_t id = 0;
  int64_t server_id = 0;
};

class Realms {
 public:
  explicit Realms(Database& db);
  Realms(const Realms&) = delete;
  Realms& operator=(const Realms&) = delete;

  std::optional<RealmRow> find_by_uuid(std::string_view uuid);  // uuid compared lowercase
  // find_by_uuid's id and server_id only: no row copy. Answered from a bounded cache, unknown
  // realms included: every push/register and push/notify of a current Zulip server carries a
  // realm_uuid, and a server that never sent analytics has no realm row, so without the cache each
  // such request paid a lookup that finds nothing (~0.3 us). Emptied before every realm write and
  // bypassed while that write's batch is open (it may still roll back), as Servers' auth cache.
  std::optional<RealmOwner> owner_of(std::string_view uuid);
  size_t owner_cache_size() const { return owner_cache_.size(); }  // for tests
  static constexpr size_t kOwnerCacheMax = 256;  // ~30 KB at most; emptied when full
  // Creates the realm or updates every field of it (id, created_ms ignored; locally_deleted is
  // cleared). Returns the realm's id, or nullopt when the uuid belongs to another server (api.md:
  // "Duplicate registration detected."), in which case nothing is written.
  std::optional<int64_t> upsert(const RealmRow& realm, int64_t now_ms);
  // This server's realms, by id, at most `limit`.
  std::vector<RealmRow> for_server(int64_t server_id, int limit);
  void set_locally_deleted(int64_t id, bool deleted, int64_t now_ms);

 private:
  std::optional<RealmOwner> lookup_owner(std::string_view lower);
  void write_attempt() noexcept { owner_cache_.invalidate(); }

  Database& db_;
  Stmt by_uuid_, owner_by_uuid_, upsert_, for_server_, set_deleted_;
  // lowercase uuid -> owner (nullopt: no such realm); store/row_cache.h.
  RowCache<std::optional<RealmOwner>> owner_cache_;
};

class Counters {
 public:
  // Up to max_pending distinct (server, realm, property, day) keys are kept in memory before
  // they are written at once.
  explicit Counters(Database& db, size_t max_pending = 4096);
  Counters(const Counters&) = delete;
  Counters& operator=(const Counters&) = delete;

  // value += delta for (server, realm or installation-wide when nullopt, property, end of day).
  // Accumulated in memory and written behind (write_pending: maintenance timer, shutdown, or when
  // max_pending keys are waiting), so push/notify does not cost a commit and an fsync per loop
  // iteration. A crash loses at most the counts since the last write; counts are statistics.
  void add(int64_t server, std::optional<int64_t> realm, std::string_view property, int64_t day_end_s,
           int64_t delta);
  // Stored value plus what is pending; nullopt when there is neither.
  std::optional<int64_t> get(int64_t server, std::optional<int64_t> realm, std::string_view property,
                             int64_t day_end_s);
  // Upserts every pending count into the write batch. Best effort: a failure is logged and the
  // counts are kept for the next try.
  void write_pending() noexcept;
  size_t pending() const { return pending_.size(); }

 private:
  struct Key {
    int64_t server;
    std::optional<int64_t> realm;
    std::string property;
    int64_t day_end_s;
  };
  // A Key as looked up: the property is not copied, so add() on a key already pending costs no
  // allocation (it runs twice or more per notify).
  struct KeyView {
    int64_t server;
    std::optional<int64_t> realm;
    std::string_view property;
    int64_t day_end_s;
  };
  static KeyView view_of(const Key& k) { return KeyView{k.server, k.realm, k.property, k.day_end_s}; }
  static KeyView view_of(const KeyView& k) { return k; }
  struct KeyLess {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      KeyView x = view_of(a), y = view_of(b);
      return std::tie(x.server, x.realm, x.property, x.day_end_s) < std::tie(y.server, y.realm, y.property, y.day_end_s);
    }
  };
  std::optional<int64_t> stored(const Key& k);
  void upsert(const Key& k, int64_t delta);

  Database& db_;
  size_t max_pending_;
  std::map<Key, int64_t, KeyLess> pending_;
  Stmt add_realm_, add_server_, get_realm_, get_server_;
};

}  // namespace aloha::store
