// Devices: the legacy (non-E2EE) push tokens of each server's users (api.md push/register,
// push/unregister, push/notify steps 2 and 5; upstreams.md dead tokens and the 410 rule).
// A row is keyed by exactly one identity: user_uuid when the server sent one, else user_id.
// "The OR rule": a request with user_id I and/or user_uuid U matches rows with user_uuid = U OR
// user_id = I. Tokens are matched on token_norm (APNs lowercase, FCM as-is). Mutating calls join
// the current write batch (Database::write); holds prepared statements, must not outlive the Database.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/db.h"

namespace aloha::store {

constexpr int kKindApns = 1;
constexpr int kKindFcm = 2;

// Largest number of rows one identity query returns (per identity column); a user with more
// devices than this is not a real user. Hitting it is logged.
constexpr int kMaxDevicesPerIdentity = 1000;

// APNs tokens compare case-insensitively (lowercase); every other kind as-is.
std::string normalize_token(int kind, std::string_view token);
// ASCII lowercase (user and realm UUIDs are stored lowercase).
std::string ascii_lower(std::string_view s);

// register_device found no free id in the identity's range (schema v3: 4096 rows per bucket,
// shared only by identities of the same server and bucket). The API answers it as a client error,
// not as an unavailable store.
class DeviceLimitError : public StoreError {
 public:
  using StoreError::StoreError;
};

// A row's key is (server_id, identity, kind, token_norm), unique (kept by register_device); its
// id in the table (schema v3) only places an identity's rows together and is not exposed.
struct DeviceRow {
  int64_t server_id = 0;
  int kind = 0;
  std::string token;  // as registered
  std::optional<std::string> ios_app_id;
  std::optional<int64_t> user_id;
  std::optional<std::string> user_uuid;
  std::optional<int64_t> realm_id;
  int64_t registered_ms = 0;
};

struct DeviceRegistration {
  int64_t server_id = 0;
  int kind = 0;
  std::string token;       // as sent (whitespace-stripped by the API)
  std::string token_norm;  // informational: the store recomputes it from kind and token
  std::optional<std::string> ios_app_id;
  std::optional<int64_t> user_id;
  std::optional<std::string> user_uuid;  // lowercased by the store
  std::optional<int64_t> realm_id;
  int64_t now_ms = 0;
};

enum class RegisterOutcome {
  created,    // a new row
  refreshed,  // the row existed: only registered_ms moved forward
  migrated,   // user_id and user_uuid given: the id-keyed row was replaced by a uuid-keyed one
};

struct RegisterResult {
  RegisterOutcome outcome = RegisterOutcome::created;
};

// Changes remembered for Devices::update_rows (a ring; older ones force a re-read).
constexpr size_t kDeviceChangeLogSize = 256;

// How Devices::update_rows brought rows read earlier up to date.
enum class RowsUpdate {
  unchanged,  // no change since then touched them
  applied,    // only deletions of known effect (dead tokens, rows by key): applied in place
  reread,     // a change to the user's identity, a failed write, or a change no longer in the log
};

class Devices {
 public:
  explicit Devices(Database& db);
  Devices(const Devices&) = delete;
  Devices& operator=(const Devices&) = delete;

  // OR rule: rows of this server with user_uuid = uuid OR user_id = uid (either may be absent;
  // both absent → empty). The uuid-keyed rows, then the id-keyed ones, each in registration
  // order (migrated rows by (kind, token_norm)). (Nothing on the wire depends on the order:
  // push/notify's answer counts rows and sorts its lists.)
  std::vector<DeviceRow> for_identity(int64_t server, std::optional<int64_t> uid,
                                      std::optional<std::string_view> uuid);

  // Idempotent per (server, identity, kind, token_norm); an existing row only gets registered_ms
  // refreshed (never moved backwards), its ios_app_id and realm stay. With both user_id and
  // user_uuid, the row is keyed by uuid and an id-keyed row for the token is deleted. Throws
  // StoreError when neither identity is given.
  RegisterResult register_device(const DeviceRegistration& reg);

  // Deletes this server's rows of (kind, token) matching the OR rule; returns the count deleted.
  // token may be given as sent or normalized.
  int unregister(int64_t server, int kind, std::string_view token, std::optional<int64_t> uid,
                 std::optional<std::string_view> uuid);
  // Every row of the identity (OR rule); returns the count deleted.
  int unregister_all(int64_t server, std::optional<int64_t> uid, std::optional<std::string_view> uuid);
  // Deletes the row with row's key: server_id, identity (user_uuid when set, else user_id), kind and
  // token (normalized). Rows read by for_identity / find_for_test qualify; false when already gone.
  bool delete_row(const DeviceRow& row);

  // Changes on every call that may insert or delete rows (even when it then changes nothing or is
  // rolled back); each such call is remembered in a bounded log (kDeviceChangeLogSize).
  uint64_t generation() const { return generation_; }

  // Brings `rows`, the identity's rows as for_identity() returned them when generation() was
  // `since`, up to date (push/notify's answer reuses its step-2 rows). Changes since then that
  // cannot touch the identity (another user's registrations, other tokens' deletions) are skipped;
  // dead-token and by-key deletions are applied to `rows` exactly as the DELETE applied them; a
  // change to the identity itself (register, unregister), a write that failed, or a `since` older
  // than the log reads the rows again. Throws StoreError when that read fails.
  RowsUpdate update_rows(uint64_t since, int64_t server, std::optional<int64_t> uid,
                         std::optional<std::string_view> uuid, std::vector<DeviceRow>& rows);

  // Dead token, for every server, honouring the 410 timestamp rule (upstreams.md): deletes rows of
  // (kind, token) whose registered_ms < before_ms (INT64_MAX: always). Returns the count deleted.
  int delete_dead(int kind, std::string_view token, int64_t before_ms);

  // push/test_notification: a row of this server with (kind, token) matching the OR rule; the
  // uuid-keyed one when both exist.
  std::optional<DeviceRow> find_for_test(int64_t server, int kind, std::string_view token,
                                         std::optional<int64_t> uid, std::optional<std::string_view> uuid);

  // False only when the server has no id-keyed (user_id only) rows: then the OR rule's user_id
  // range is known to be empty and the calls above skip it. An upper bound of the server's
  // id-keyed rows is kept in memory: counted once when the Devices is built (a scan of the table,
  // before the loop runs), raised at once by every id-keyed insert (so a row of the open batch is
  // never missed), lowered only once the batch that deleted rows has committed with no write
  // rolled back meanwhile (else the decrements are dropped and the bound stays high, which only
  // costs the skipped lookup). Dead-token deletions (any server) never lower it.
  bool may_have_id_rows(int64_t server);
  // The bound itself (tests).
  int64_t id_rows_bound(int64_t server);

 private:
  enum class ChangeKind { identity, dead_token, row };
  // One mutating call. Slots are reused round the ring, so their strings keep their capacity.
  struct Change {
    uint64_t generation = 0;  // 0: never used
    ChangeKind kind = ChangeKind::identity;
    int64_t server = 0;                 // identity, row
    std::optional<int64_t> uid;         // identity, row (row: set iff the row is id-keyed)
    bool has_uuid = false;              // identity, row
    std::string uuid;                   // identity, row; lowercase
    int token_kind = 0;                 // dead_token, row
    std::string token_norm;             // dead_token, row
    int64_t before_ms = 0;              // dead_token
  };
  // Bumps the generation and returns its (recycled) log slot.
  Change& log_change(ChangeKind kind);
  void log_identity(int64_t server, std::optional<int64_t> uid, std::optional<std::string_view> uuid);
  // A write whose effect is unknown (it threw): every reader of an older generation re-reads.
  void forget_log() { log_floor_ = generation_; }
  // The id-keyed row bound (may_have_id_rows): `n` rows of `server` deleted in the open batch.
  void id_rows_deleted(int64_t server, int64_t n);
  // Applies (or drops) the recorded decrements once every batch that held them has ended.
  void settle_id_rows();

  Database& db_;
  Stmt by_identity_, by_key_, refresh_, last_id_, ids_in_range_, insert_, del_key_, del_all_, del_dead_;
  uint64_t generation_ = 0;
  uint64_t log_floor_ = 0;          // update_rows(since) is answered from the log iff since >= this
  std::vector<Change> log_;         // kDeviceChangeLogSize slots; generation g in slot g % size
  // Upper bound of each server's id-keyed rows; servers without any are absent.
  std::unordered_map<int64_t, int64_t> id_rows_;
  // Decrements waiting for their batches to commit (bounded: folded per server, and at most one
  // entry per server with id-keyed rows).
  struct IdRowsDrop {
    int64_t server = 0;
    int64_t n = 0;
  };
  std::vector<IdRowsDrop> id_drops_;
  uint64_t drops_batch_ = 0;     // batches ended (committed + lost) when the last drop was recorded
  uint64_t drops_lost_ = 0;      // failed_commits when the first pending drop was recorded
  uint64_t drops_rolled_ = 0;    // rolled_back_writes then
};

}  // namespace aloha::store
