#include "store/devices.h"
#include "core/encoding.h"

#include <algorithm>

#include "core/log.h"
#include "store/schema.h"

namespace aloha::store {
namespace {

// Schema v3 (schema.cpp): legacy_devices, a rowid table whose ids put an identity's rows in one
// range [?7, ?8] (legacy_device_id_range), shared at most with the few identities of the same
// bucket: every statement narrows by the range (one descent through cached interior pages) and
// then by server_id and identity. identity is the user_id (INTEGER) of an id-keyed row, the
// lowercase user_uuid (TEXT) of a uuid-keyed one; token is NULL when it equals token_norm.
constexpr const char* kCols = "kind, token_norm, token, ios_app_id, realm_id, registered_ms";
constexpr const char* kIdent = "id BETWEEN ?7 AND ?8 AND server_id = ?1 AND identity = ?2";
constexpr const char* kKey = "id BETWEEN ?7 AND ?8 AND server_id = ?1 AND identity = ?2 AND kind = ?3 AND token_norm = ?4";

std::string sel(const char* where) {
  return std::string("SELECT ") + kCols + " FROM legacy_devices WHERE " + where;
}

// normalize_token(kind, token) == norm, without building the string (norm is lowercase for APNs).
bool token_is(int kind, std::string_view token, std::string_view norm) {
  return kind == kKindApns ? enc::ascii_iequals(token, norm) : token == norm;
}

// One identity of a row: exactly one of uid / uuid (lowercase).
struct Ident {
  std::optional<int64_t> uid;
  std::string_view uuid;
};

// Binds ?1 server, ?2 identity and the identity's id range ?7..?8 (an empty range for a server
// id the layout cannot hold: no row of it can exist).
void bind_ident(Stmt& s, int64_t server, const Ident& id) {
  s.bind(1, server);
  if (id.uid)
    s.bind(2, *id.uid);
  else
    s.bind(2, id.uuid);
  const std::optional<DeviceIdRange> r = legacy_device_id_range(server, id.uid, id.uuid);
  s.bind(7, r ? r->lo : int64_t{1});
  s.bind(8, r ? r->hi : int64_t{0});
}

// The key columns are not read back: the query bound them (server, identity) or they follow from
// the others (token_norm from token).
DeviceRow row_of(Stmt& s, int64_t server, const Ident& id) {
  DeviceRow r;
  r.server_id = server;
  r.kind = static_cast<int>(s.col_int(0));
  r.token = s.is_null(2) ? s.col_text(1) : s.col_text(2);
  r.ios_app_id = s.col_opt_text(3);
  if (id.uid)
    r.user_id = id.uid;
  else
    r.user_uuid = std::string(id.uuid);
  r.realm_id = s.col_opt_int(4);
  r.registered_ms = s.col_int(5);
  return r;
}

// uuid in lowercase: uuid itself when it is (the API lowercases what it validated), else a
// lowercase copy in buf.
std::string_view lower_view(std::string_view uuid, std::string& buf) {
  for (char c : uuid)
    if (c >= 'A' && c <= 'Z') {
      buf = ascii_lower(uuid);
      return buf;
    }
  return uuid;
}

void read_rows(Stmt& s, int64_t server, const Ident& id, std::vector<DeviceRow>& out) {
  int n = 0;
  while (s.step()) {
    out.push_back(row_of(s, server, id));
    ++n;
  }
  if (n >= kMaxDevicesPerIdentity)
    LOG_WARN("store: identity query hit the limit of %d devices", kMaxDevicesPerIdentity);
}

}  // namespace

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string normalize_token(int kind, std::string_view token) {
  // api.md push/register: "APNs tokens compare case-insensitively" (they are hex).
  return kind == kKindApns ? ascii_lower(token) : std::string(token);
}

// Every statement names the identity's id range (one descent of legacy_devices), except
// del_dead_, which goes through devices_by_token (kind, token_norm).
Devices::Devices(Database& db)
    : db_(db),
      by_identity_(db.handle(), sel((std::string(kIdent) + " LIMIT ?3").c_str())),
      by_key_(db.handle(), sel(kKey)),
      // Never backwards: the 410 rule compares against the latest registration (upstreams.md).
      refresh_(db.handle(), std::string("UPDATE legacy_devices SET registered_ms = max(registered_ms, ?5) WHERE ") +
                                kKey),
      // Two statements, not INSERT ... SELECT max(id): an INSERT reading its own table first
      // copies the SELECT's result into an ephemeral table (a temp B-tree per registration).
      last_id_(db.handle(), "SELECT id FROM legacy_devices WHERE id BETWEEN ?7 AND ?8 ORDER BY id DESC LIMIT 1"),
      ids_in_range_(db.handle(), "SELECT id FROM legacy_devices WHERE id BETWEEN ?7 AND ?8"),
      insert_(db.handle(),
              "INSERT INTO legacy_devices (id, server_id, identity, kind, token_norm, token, ios_app_id, realm_id, "
              "registered_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
      del_key_(db.handle(), std::string("DELETE FROM legacy_devices WHERE ") + kKey),
      del_all_(db.handle(), std::string("DELETE FROM legacy_devices WHERE ") + kIdent),
      del_dead_(db.handle(),
                "DELETE FROM legacy_devices WHERE kind = ?1 AND token_norm = ?2 AND registered_ms < ?3"),
      log_(kDeviceChangeLogSize) {
  // The log's strings get their room now, at start-up, in one stretch of the heap: filled the
  // first time round the ring, mid-burst, 256 small token strings living for good kept the pages
  // of the burst's freed buffers resident around them (~270 KB in the bench's full run, heaptrack).
  // An APNs token (64) and a uuid (36) fit; a longer FCM token grows its slot once.
  for (Change& c : log_) {
    c.uuid.reserve(36);
    c.token_norm.reserve(64);
  }
  // The id-keyed row bound starts exact: one pass over the table (rows come in id order, so a
  // server's rows are consecutive). It runs before the loop does (Store is built at start-up);
  // typeof() reads only the record header. 1M rows: ~110 ms with the file in the OS cache.
  Stmt count(db.handle(), "SELECT id >> 40 FROM legacy_devices WHERE typeof(identity) = 'integer'");
  auto u = count.use();
  int64_t server = -1, n = 0;
  while (count.step()) {
    const int64_t s = count.col_int(0);
    if (s != server) {
      if (n > 0) id_rows_[server] += n;
      server = s;
      n = 0;
    }
    ++n;
  }
  if (n > 0) id_rows_[server] += n;
}

void Devices::id_rows_deleted(int64_t server, int64_t n) {
  if (n <= 0) return;
  const DatabaseStats& st = db_.stats();
  if (id_drops_.empty()) {
    drops_lost_ = st.failed_commits;
    drops_rolled_ = st.rolled_back_writes;
  }
  // The open batch ends as number commits + failed_commits + 1.
  drops_batch_ = st.commits + st.failed_commits;
  for (IdRowsDrop& d : id_drops_)
    if (d.server == server) {
      d.n += n;
      return;
    }
  id_drops_.push_back(IdRowsDrop{server, n});
}

void Devices::settle_id_rows() {
  if (id_drops_.empty()) return;
  const DatabaseStats& st = db_.stats();
  if (st.commits + st.failed_commits <= drops_batch_) return;  // the last drop's batch is still open
  // Why the counters suffice: a deletion is undone only by its savepoint's rollback (a write
  // that threw: rolled_back_writes), or by its batch's (failed_commits). Either since the first
  // drop was recorded, even in an unrelated request, drops them all: the bound stays high.
  if (st.failed_commits == drops_lost_ && st.rolled_back_writes == drops_rolled_) {
    for (const IdRowsDrop& d : id_drops_) {
      auto it = id_rows_.find(d.server);
      if (it == id_rows_.end()) continue;
      it->second -= d.n;
      if (it->second <= 0) id_rows_.erase(it);
    }
  }
  id_drops_.clear();
}

bool Devices::may_have_id_rows(int64_t server) {
  settle_id_rows();
  return id_rows_.find(server) != id_rows_.end();
}

int64_t Devices::id_rows_bound(int64_t server) {
  settle_id_rows();
  auto it = id_rows_.find(server);
  return it == id_rows_.end() ? 0 : it->second;
}

Devices::Change& Devices::log_change(ChangeKind kind) {
  ++generation_;
  Change& c = log_[generation_ % log_.size()];
  // The slot's previous change leaves the log: readers of its generation or older re-read.
  if (c.generation != 0) log_floor_ = std::max(log_floor_, c.generation);
  c.generation = generation_;
  c.kind = kind;
  return c;
}

void Devices::log_identity(int64_t server, std::optional<int64_t> uid, std::optional<std::string_view> uuid) {
  Change& c = log_change(ChangeKind::identity);
  c.server = server;
  c.uid = uid;
  c.has_uuid = uuid.has_value();
  c.uuid.assign(uuid ? *uuid : std::string_view());
}

RowsUpdate Devices::update_rows(uint64_t since, int64_t server, std::optional<int64_t> uid,
                                std::optional<std::string_view> uuid, std::vector<DeviceRow>& rows) {
  if (since == generation_) return RowsUpdate::unchanged;
  // Why this is exact: rows only change through the calls logged here. A registration or
  // unregistration of this identity (the OR rule: same server and same user_id or user_uuid) may
  // add rows or refresh registered_ms, so it is read again. Dead-token and by-key deletions only
  // remove rows, and which ones is decided by the row alone (kind, token, registered_ms; key), so
  // applying the same test to the rows kept in memory gives what a re-read would, in any order.
  bool reread = since < log_floor_ || since > generation_;
  for (uint64_t g = since + 1; !reread && g <= generation_; ++g) {
    const Change& c = log_[g % log_.size()];
    if (c.kind != ChangeKind::identity || c.server != server) continue;
    if ((c.uid && uid && *c.uid == *uid) || (c.has_uuid && uuid && enc::ascii_iequals(c.uuid, *uuid))) reread = true;
  }
  if (reread) {
    rows = for_identity(server, uid, uuid);
    return RowsUpdate::reread;
  }
  size_t before = rows.size();
  for (uint64_t g = since + 1; g <= generation_; ++g) {
    const Change& c = log_[g % log_.size()];
    if (c.kind == ChangeKind::dead_token) {
      std::erase_if(rows, [&](const DeviceRow& r) {
        return r.kind == c.token_kind && r.registered_ms < c.before_ms && token_is(r.kind, r.token, c.token_norm);
      });
    } else if (c.kind == ChangeKind::row) {
      std::erase_if(rows, [&](const DeviceRow& r) {
        const bool same_identity = r.user_uuid ? c.has_uuid && *r.user_uuid == c.uuid : !c.has_uuid && r.user_id == c.uid;
        return r.server_id == c.server && r.kind == c.token_kind && same_identity &&
               token_is(r.kind, r.token, c.token_norm);
      });
    }
  }
  return rows.size() == before ? RowsUpdate::unchanged : RowsUpdate::applied;
}

std::vector<DeviceRow> Devices::for_identity(int64_t server, std::optional<int64_t> uid,
                                             std::optional<std::string_view> uuid) {
  std::vector<DeviceRow> out;
  // Two range scans of the primary key instead of one OR query: each row has exactly one
  // identity, so the two results are disjoint.
  auto scan = [&](const Ident& id) {
    auto u = by_identity_.use();
    bind_ident(by_identity_, server, id);
    by_identity_.bind(3, kMaxDevicesPerIdentity);
    read_rows(by_identity_, server, id, out);
  };
  if (uuid) {
    std::string buf;
    scan(Ident{std::nullopt, lower_view(*uuid, buf)});
  }
  // The user_id range only when this server may have id-keyed rows (registered without a
  // user_uuid): servers that send both ids have none once migrated, and the empty range's
  // descent was ~0.4 us of a notify.
  if (uid && (!uuid || may_have_id_rows(server))) scan(Ident{uid, {}});
  return out;
}

RegisterResult Devices::register_device(const DeviceRegistration& reg) {
  if (!reg.user_id && !reg.user_uuid) throw StoreError("register_device: neither user_id nor user_uuid");
  const std::string norm = normalize_token(reg.kind, reg.token);
  const std::optional<std::string> uuid =
      reg.user_uuid ? std::optional<std::string>(ascii_lower(*reg.user_uuid)) : std::nullopt;
  // Logged whatever the outcome: readers of this identity re-read (a failed write costs them a
  // read, never a stale answer).
  log_identity(reg.server_id, reg.user_id, uuid ? std::optional<std::string_view>(*uuid) : std::nullopt);
  const Ident id = uuid ? Ident{std::nullopt, *uuid} : Ident{reg.user_id, {}};
  return db_.write([&] {
    bool migrated = false;
    if (uuid && reg.user_id && may_have_id_rows(reg.server_id)) {
      // Migration of old registrations (api.md push/register): the id-keyed row for this token
      // gives way to the uuid-keyed one.
      auto u = del_key_.use();
      bind_ident(del_key_, reg.server_id, Ident{reg.user_id, {}});
      del_key_.bind(3, reg.kind);
      del_key_.bind(4, std::string_view(norm));
      migrated = del_key_.exec() > 0;
      if (migrated) id_rows_deleted(reg.server_id, 1);
    }
    RegisterResult res;
    // Refresh first: re-registration is the common case and then costs one statement; a new
    // row costs the UPDATE's (missing) descent plus the INSERT.
    int refreshed = 0;
    {
      auto u = refresh_.use();
      bind_ident(refresh_, reg.server_id, id);
      refresh_.bind(3, reg.kind);
      refresh_.bind(4, std::string_view(norm));
      refresh_.bind(5, reg.now_ms);
      refreshed = refresh_.exec();
    }
    if (refreshed > 0) {
      // Zulip leaves an existing row's ios_app_id and realm as they are; only the time moves.
      res.outcome = RegisterOutcome::refreshed;
    } else {
      const std::optional<DeviceIdRange> range = legacy_device_id_range(reg.server_id, id.uid, id.uuid);
      if (!range) throw StoreError("register_device: server id " + std::to_string(reg.server_id) + " is out of range");
      // The id after the range's last row; when that is past the range (rows before it were
      // deleted, or its bucket is crowded), the first free id in it.
      int64_t at = range->lo;
      {
        auto u = last_id_.use();
        bind_ident(last_id_, reg.server_id, id);
        if (last_id_.step()) at = last_id_.col_int(0) + 1;
      }
      if (at > range->hi) {
        auto u = ids_in_range_.use();
        bind_ident(ids_in_range_, reg.server_id, id);
        at = range->lo;
        while (ids_in_range_.step() && ids_in_range_.col_int(0) == at) ++at;
        if (at > range->hi)
          throw DeviceLimitError("register_device: no free id among the " + std::to_string(kLegacyDeviceSeqs) +
                           " of this identity's range");
      }
      // Raised before the row exists: a rollback leaves the bound high, never low.
      if (id.uid) ++id_rows_[reg.server_id];
      auto u = insert_.use();
      insert_.bind(1, at);
      insert_.bind(2, reg.server_id);
      if (id.uid)
        insert_.bind(3, *id.uid);
      else
        insert_.bind(3, id.uuid);
      insert_.bind(4, reg.kind);
      insert_.bind(5, std::string_view(norm));
      if (reg.token != norm)
        insert_.bind(6, std::string_view(reg.token));
      else
        insert_.bind_null(6);
      if (reg.ios_app_id)
        insert_.bind(7, std::string_view(*reg.ios_app_id));
      else
        insert_.bind_null(7);
      insert_.bind(8, reg.realm_id);
      insert_.bind(9, reg.now_ms);
      insert_.exec();
      res.outcome = RegisterOutcome::created;
    }
    if (migrated) res.outcome = RegisterOutcome::migrated;
    return res;
  });
}

int Devices::unregister(int64_t server, int kind, std::string_view token, std::optional<int64_t> uid,
                        std::optional<std::string_view> uuid) {
  log_identity(server, uid, uuid);
  const std::string norm = normalize_token(kind, token);
  return db_.write([&] {
    int n = 0;
    auto del = [&](const Ident& id) {
      auto u = del_key_.use();
      bind_ident(del_key_, server, id);
      del_key_.bind(3, kind);
      del_key_.bind(4, std::string_view(norm));
      const int d = del_key_.exec();
      if (id.uid) id_rows_deleted(server, d);
      n += d;
    };
    if (uuid) {
      std::string buf;
      del(Ident{std::nullopt, lower_view(*uuid, buf)});
    }
    if (uid && (!uuid || may_have_id_rows(server))) del(Ident{uid, {}});
    return n;
  });
}

int Devices::unregister_all(int64_t server, std::optional<int64_t> uid, std::optional<std::string_view> uuid) {
  log_identity(server, uid, uuid);
  return db_.write([&] {
    int n = 0;
    auto del = [&](const Ident& id) {
      auto u = del_all_.use();
      bind_ident(del_all_, server, id);
      const int d = del_all_.exec();
      if (id.uid) id_rows_deleted(server, d);
      n += d;
    };
    if (uuid) {
      std::string buf;
      del(Ident{std::nullopt, lower_view(*uuid, buf)});
    }
    if (uid && (!uuid || may_have_id_rows(server))) del(Ident{uid, {}});
    return n;
  });
}

bool Devices::delete_row(const DeviceRow& row) {
  Change& c = log_change(ChangeKind::row);
  c.server = row.server_id;
  c.uid = row.user_uuid ? std::nullopt : row.user_id;
  c.has_uuid = row.user_uuid.has_value();
  c.uuid.clear();
  if (row.user_uuid)
    for (char ch : *row.user_uuid) c.uuid.push_back(ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch);
  c.token_kind = row.kind;
  c.token_norm.clear();
  for (char ch : row.token)
    c.token_norm.push_back(row.kind == kKindApns && ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch);
  try {
    if (!row.user_uuid && !row.user_id) return false;  // no identity: no such row
    return db_.write([&] {
      auto u = del_key_.use();
      bind_ident(del_key_, c.server, c.has_uuid ? Ident{std::nullopt, c.uuid} : Ident{c.uid, {}});
      del_key_.bind(3, c.token_kind);
      del_key_.bind(4, std::string_view(c.token_norm));
      const bool deleted = del_key_.exec() > 0;
      if (deleted && !c.has_uuid) id_rows_deleted(c.server, 1);
      return deleted;
    });
  } catch (...) {
    forget_log();  // the logged deletion may not have happened: nobody may apply it
    throw;
  }
}

int Devices::delete_dead(int kind, std::string_view token, int64_t before_ms) {
  Change& c = log_change(ChangeKind::dead_token);
  c.token_kind = kind;
  c.token_norm.assign(token);
  if (kind == kKindApns)
    for (char& ch : c.token_norm)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  c.before_ms = before_ms;
  try {
    return db_.write([&] {
      auto u = del_dead_.use();
      del_dead_.bind(1, kind);
      del_dead_.bind(2, std::string_view(c.token_norm));
      del_dead_.bind(3, before_ms);
      return del_dead_.exec();
    });
  } catch (...) {
    forget_log();  // the logged deletion may not have happened: nobody may apply it
    throw;
  }
}

std::optional<DeviceRow> Devices::find_for_test(int64_t server, int kind, std::string_view token,
                                                std::optional<int64_t> uid,
                                                std::optional<std::string_view> uuid) {
  const std::string norm = normalize_token(kind, token);
  auto find = [&](const Ident& id) -> std::optional<DeviceRow> {
    auto u = by_key_.use();
    bind_ident(by_key_, server, id);
    by_key_.bind(3, kind);
    by_key_.bind(4, std::string_view(norm));
    if (by_key_.step()) return row_of(by_key_, server, id);
    return std::nullopt;
  };
  if (uuid) {
    std::string buf;
    if (auto r = find(Ident{std::nullopt, lower_view(*uuid, buf)})) return r;
  }
  if (uid && (!uuid || may_have_id_rows(server))) return find(Ident{uid, {}});
  return std::nullopt;
}

}  // namespace aloha::store
