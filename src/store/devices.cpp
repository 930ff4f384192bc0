#include "store/devices.h"
#include "core/encoding.h"

#include <algorithm>

#include "core/log.h"

namespace aloha::store {
namespace {

constexpr const char* kCols =
    "id, server_id, kind, token, ios_app_id, user_id, user_uuid, realm_id, registered_ms";

std::string sel(const char* where) { return std::string("SELECT ") + kCols + " FROM devices WHERE " + where; }

// normalize_token(kind, token) == norm, without building the string.
bool token_is(int kind, std::string_view token, std::string_view norm) {
  if (token.size() != norm.size()) return false;
  if (kind != kKindApns) return token == norm;
  for (size_t i = 0; i < token.size(); ++i) {
    char c = token[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != norm[i]) return false;
  }
  return true;
}

DeviceRow row_of(Stmt& s) {
  DeviceRow r;
  r.id = s.col_int(0);
  r.server_id = s.col_int(1);
  r.kind = static_cast<int>(s.col_int(2));
  r.token = s.col_text(3);
  r.ios_app_id = s.col_opt_text(4);
  r.user_id = s.col_opt_int(5);
  r.user_uuid = s.col_opt_text(6);
  r.realm_id = s.col_opt_int(7);
  r.registered_ms = s.col_int(8);
  return r;
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

// Every lookup below names the identity column with "= ?", which implies IS NOT NULL, so SQLite
// uses the partial unique indexes devices_by_uuid / devices_by_user_id.
Devices::Devices(Database& db)
    : db_(db),
      by_uuid_(db.handle(), sel("server_id = ?1 AND user_uuid = ?2 LIMIT ?3")),
      by_uid_(db.handle(), sel("server_id = ?1 AND user_id = ?2 LIMIT ?3")),
      tok_by_uuid_(db.handle(), sel("server_id = ?1 AND user_uuid = ?2 AND kind = ?3 AND token_norm = ?4")),
      tok_by_uid_(db.handle(), sel("server_id = ?1 AND user_id = ?2 AND kind = ?3 AND token_norm = ?4")),
      id_by_uuid_tok_(db.handle(),
                      "SELECT id FROM devices WHERE server_id = ?1 AND user_uuid = ?2 AND kind = ?3 AND "
                      "token_norm = ?4"),
      id_by_uid_tok_(db.handle(),
                     "SELECT id FROM devices WHERE server_id = ?1 AND user_id = ?2 AND kind = ?3 AND "
                     "token_norm = ?4"),
      // Never backwards: the 410 rule compares against the latest registration (upstreams.md).
      refresh_(db.handle(), "UPDATE devices SET registered_ms = max(registered_ms, ?2) WHERE id = ?1"),
      insert_(db.handle(),
              "INSERT INTO devices (server_id, kind, token, token_norm, ios_app_id, user_id, user_uuid, "
              "realm_id, registered_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
      del_uuid_tok_(db.handle(),
                    "DELETE FROM devices WHERE server_id = ?1 AND user_uuid = ?2 AND kind = ?3 AND "
                    "token_norm = ?4"),
      del_uid_tok_(db.handle(),
                   "DELETE FROM devices WHERE server_id = ?1 AND user_id = ?2 AND kind = ?3 AND "
                   "token_norm = ?4"),
      del_all_uuid_(db.handle(), "DELETE FROM devices WHERE server_id = ?1 AND user_uuid = ?2"),
      del_all_uid_(db.handle(), "DELETE FROM devices WHERE server_id = ?1 AND user_id = ?2"),
      del_id_(db.handle(), "DELETE FROM devices WHERE id = ?1"),
      del_dead_(db.handle(), "DELETE FROM devices WHERE kind = ?1 AND token_norm = ?2 AND registered_ms < ?3"),
      by_id_(db.handle(), sel("id = ?1")),
      log_(kDeviceChangeLogSize) {}

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
  // add rows or refresh registered_ms, so it is read again. Dead-token and by-id deletions only
  // remove rows, and which ones is decided by the row alone (kind, token, registered_ms; id), so
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
    } else if (c.kind == ChangeKind::row_id) {
      std::erase_if(rows, [&](const DeviceRow& r) { return r.id == c.row_id; });
    }
  }
  return rows.size() == before ? RowsUpdate::unchanged : RowsUpdate::applied;
}

void Devices::read_rows(Stmt& s, std::vector<DeviceRow>& out) {
  int n = 0;
  while (s.step()) {
    out.push_back(row_of(s));
    ++n;
  }
  if (n >= kMaxDevicesPerIdentity)
    LOG_WARN("store: identity query hit the limit of %d devices", kMaxDevicesPerIdentity);
}

std::vector<DeviceRow> Devices::for_identity(int64_t server, std::optional<int64_t> uid,
                                             std::optional<std::string_view> uuid) {
  std::vector<DeviceRow> out;
  // Two index range scans instead of one OR query: each row has exactly one identity, so the
  // two results are disjoint.
  if (uuid) {
    std::string lower = ascii_lower(*uuid);
    auto u = by_uuid_.use();
    by_uuid_.bind(1, server);
    by_uuid_.bind(2, std::string_view(lower));
    by_uuid_.bind(3, kMaxDevicesPerIdentity);
    read_rows(by_uuid_, out);
  }
  if (uid) {
    auto u = by_uid_.use();
    by_uid_.bind(1, server);
    by_uid_.bind(2, *uid);
    by_uid_.bind(3, kMaxDevicesPerIdentity);
    read_rows(by_uid_, out);
  }
  std::sort(out.begin(), out.end(), [](const DeviceRow& a, const DeviceRow& b) { return a.id < b.id; });
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
  return db_.write([&] {
    bool migrated = false;
    if (uuid && reg.user_id) {
      // Migration of old registrations (api.md push/register): the id-keyed row for this token
      // gives way to the uuid-keyed one.
      auto u = del_uid_tok_.use();
      del_uid_tok_.bind(1, reg.server_id);
      del_uid_tok_.bind(2, *reg.user_id);
      del_uid_tok_.bind(3, reg.kind);
      del_uid_tok_.bind(4, std::string_view(norm));
      migrated = del_uid_tok_.exec() > 0;
    }
    Stmt& find = uuid ? id_by_uuid_tok_ : id_by_uid_tok_;
    std::optional<int64_t> existing;
    {
      auto u = find.use();
      find.bind(1, reg.server_id);
      if (uuid)
        find.bind(2, std::string_view(*uuid));
      else
        find.bind(2, *reg.user_id);
      find.bind(3, reg.kind);
      find.bind(4, std::string_view(norm));
      if (find.step()) existing = find.col_int(0);
    }
    RegisterResult res;
    if (existing) {
      // Zulip leaves an existing row's ios_app_id and realm as they are; only the time moves.
      auto u = refresh_.use();
      refresh_.bind(1, *existing);
      refresh_.bind(2, reg.now_ms);
      refresh_.exec();
      res.outcome = RegisterOutcome::refreshed;
      res.device_id = *existing;
    } else {
      auto u = insert_.use();
      insert_.bind(1, reg.server_id);
      insert_.bind(2, reg.kind);
      insert_.bind(3, std::string_view(reg.token));
      insert_.bind(4, std::string_view(norm));
      if (reg.ios_app_id)
        insert_.bind(5, std::string_view(*reg.ios_app_id));
      else
        insert_.bind_null(5);
      if (uuid) {
        insert_.bind_null(6);
        insert_.bind(7, std::string_view(*uuid));
      } else {
        insert_.bind(6, *reg.user_id);
        insert_.bind_null(7);
      }
      insert_.bind(8, reg.realm_id);
      insert_.bind(9, reg.now_ms);
      insert_.exec();
      res.outcome = RegisterOutcome::created;
      res.device_id = sqlite3_last_insert_rowid(db_.handle());
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
    if (uuid) {
      std::string lower = ascii_lower(*uuid);
      auto u = del_uuid_tok_.use();
      del_uuid_tok_.bind(1, server);
      del_uuid_tok_.bind(2, std::string_view(lower));
      del_uuid_tok_.bind(3, kind);
      del_uuid_tok_.bind(4, std::string_view(norm));
      n += del_uuid_tok_.exec();
    }
    if (uid) {
      auto u = del_uid_tok_.use();
      del_uid_tok_.bind(1, server);
      del_uid_tok_.bind(2, *uid);
      del_uid_tok_.bind(3, kind);
      del_uid_tok_.bind(4, std::string_view(norm));
      n += del_uid_tok_.exec();
    }
    return n;
  });
}

int Devices::unregister_all(int64_t server, std::optional<int64_t> uid, std::optional<std::string_view> uuid) {
  log_identity(server, uid, uuid);
  return db_.write([&] {
    int n = 0;
    if (uuid) {
      std::string lower = ascii_lower(*uuid);
      auto u = del_all_uuid_.use();
      del_all_uuid_.bind(1, server);
      del_all_uuid_.bind(2, std::string_view(lower));
      n += del_all_uuid_.exec();
    }
    if (uid) {
      auto u = del_all_uid_.use();
      del_all_uid_.bind(1, server);
      del_all_uid_.bind(2, *uid);
      n += del_all_uid_.exec();
    }
    return n;
  });
}

bool Devices::delete_by_id(int64_t id) {
  log_change(ChangeKind::row_id).row_id = id;
  try {
    return db_.write([&] {
      auto u = del_id_.use();
      del_id_.bind(1, id);
      return del_id_.exec() > 0;
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
  if (uuid) {
    std::string lower = ascii_lower(*uuid);
    auto u = tok_by_uuid_.use();
    tok_by_uuid_.bind(1, server);
    tok_by_uuid_.bind(2, std::string_view(lower));
    tok_by_uuid_.bind(3, kind);
    tok_by_uuid_.bind(4, std::string_view(norm));
    if (tok_by_uuid_.step()) return row_of(tok_by_uuid_);
  }
  if (uid) {
    auto u = tok_by_uid_.use();
    tok_by_uid_.bind(1, server);
    tok_by_uid_.bind(2, *uid);
    tok_by_uid_.bind(3, kind);
    tok_by_uid_.bind(4, std::string_view(norm));
    if (tok_by_uid_.step()) return row_of(tok_by_uid_);
  }
  return std::nullopt;
}

std::optional<DeviceRow> Devices::find_by_id(int64_t id) {
  auto u = by_id_.use();
  by_id_.bind(1, id);
  if (by_id_.step()) return row_of(by_id_);
  return std::nullopt;
}

}  // namespace aloha::store
