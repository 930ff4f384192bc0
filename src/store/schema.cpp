#include "store/schema.h"

#include <array>

namespace aloha::store {
namespace {

// Version 1. Times are epoch milliseconds (*_ms) unless a column says seconds (*_s).
// Written for SQLite >= 3.31 (the minimum meson.build accepts): no STRICT tables, no RETURNING.
constexpr std::string_view kV1 = R"sql(
CREATE TABLE servers (
  id                INTEGER PRIMARY KEY,
  uuid              TEXT NOT NULL UNIQUE,          -- org id, canonical lowercase (api.md §2)
  key_hash          TEXT NOT NULL,                 -- never the key itself
  hostname          TEXT NOT NULL,
  contact_email     TEXT NOT NULL,
  created_ms        INTEGER NOT NULL,
  last_updated_ms   INTEGER NOT NULL,
  last_request_ms   INTEGER NOT NULL DEFAULT 0,    -- 0 = never; written behind (Servers)
  deactivated       INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
  version           TEXT,
  merge_base        TEXT,
  api_feature_level INTEGER                        -- NULL = never reported (push/notify step 1)
);
-- "a deactivated registration holds no hostname"; at most one active holder (api.md server/register).
CREATE UNIQUE INDEX servers_active_hostname ON servers(hostname) WHERE deactivated = 0;

CREATE TABLE server_audit (
  id          INTEGER PRIMARY KEY,
  server_id   INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  event       TEXT NOT NULL,
  created_ms  INTEGER NOT NULL,
  extra       TEXT NOT NULL DEFAULT '{}'           -- JSON object text
);
CREATE INDEX server_audit_by_server ON server_audit(server_id, id);

CREATE TABLE realms (
  id                     INTEGER PRIMARY KEY,
  server_id              INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  uuid                   TEXT NOT NULL UNIQUE,     -- lowercase
  remote_id              INTEGER,                  -- the realm's id on its server
  host                   TEXT NOT NULL DEFAULT '',
  url                    TEXT,
  name                   TEXT NOT NULL DEFAULT '',
  org_type               INTEGER NOT NULL DEFAULT 0,
  date_created_ms        INTEGER,
  deactivated            INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
  is_system_bot_realm    INTEGER NOT NULL DEFAULT 0 CHECK (is_system_bot_realm IN (0, 1)),
  authentication_methods TEXT NOT NULL DEFAULT '{}',  -- JSON object text
  uuid_owner_secret      TEXT,
  locally_deleted        INTEGER NOT NULL DEFAULT 0 CHECK (locally_deleted IN (0, 1)),
  created_ms             INTEGER NOT NULL,
  last_updated_ms        INTEGER NOT NULL
);
CREATE INDEX realms_by_server ON realms(server_id, remote_id);

-- Legacy (non-E2EE) device tokens. A row is keyed by exactly one identity: user_uuid, or user_id
-- when the server sent no uuid (Zulip stores user_id = NULL on uuid-keyed rows). Two partial
-- unique indexes give "one row per (server, identity, kind, token_norm)" without the NULL-is-
-- distinct trap of a plain UNIQUE, and double as the (server_id, user_uuid) / (server_id, user_id)
-- lookup indexes of the OR rule.
CREATE TABLE devices (
  id            INTEGER PRIMARY KEY,
  server_id     INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  kind          INTEGER NOT NULL CHECK (kind IN (1, 2)),   -- 1 = APNs, 2 = FCM
  token         TEXT NOT NULL,                   -- as registered (sent to the provider)
  token_norm    TEXT NOT NULL,                   -- lowercase for APNs, as-is for FCM
  ios_app_id    TEXT,
  user_id       INTEGER,
  user_uuid     TEXT,                            -- lowercase
  realm_id      INTEGER REFERENCES realms(id) ON DELETE SET NULL,
  registered_ms INTEGER NOT NULL,                -- last (re-)registration: the 410 rule uses it
  CHECK ((user_id IS NULL) <> (user_uuid IS NULL))
);
CREATE UNIQUE INDEX devices_by_uuid ON devices(server_id, user_uuid, kind, token_norm)
  WHERE user_uuid IS NOT NULL;
CREATE UNIQUE INDEX devices_by_user_id ON devices(server_id, user_id, kind, token_norm)
  WHERE user_id IS NOT NULL;
-- dead-token deletion for every server (upstreams.md)
CREATE INDEX devices_by_token ON devices(kind, token_norm);

-- End-to-end-encrypted push devices (api.md push/e2ee/*): one per (realm, token_id); dead tokens
-- are marked expired, not deleted.
CREATE TABLE e2ee_devices (
  id            INTEGER PRIMARY KEY,
  realm_id      INTEGER NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
  token_id      TEXT NOT NULL,
  token_kind    INTEGER NOT NULL CHECK (token_kind IN (1, 2)),
  token         TEXT NOT NULL,
  token_norm    TEXT NOT NULL,
  ios_app_id    TEXT,
  registered_ms INTEGER NOT NULL,
  expired_ms    INTEGER,
  UNIQUE (realm_id, token_id)
);
CREATE INDEX e2ee_devices_by_token ON e2ee_devices(token_kind, token_norm);

-- server/analytics uploads, keyed by server + the row's id on that server (remote_id).
CREATE TABLE realm_counts (
  id              INTEGER PRIMARY KEY,
  server_id       INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  remote_id       INTEGER NOT NULL,
  remote_realm_id INTEGER NOT NULL,
  realm_id        INTEGER REFERENCES realms(id) ON DELETE SET NULL,
  property        TEXT NOT NULL,
  subgroup        TEXT,
  end_time_ms     INTEGER NOT NULL,
  value           INTEGER NOT NULL,
  UNIQUE (server_id, remote_id)
);
CREATE INDEX realm_counts_dedup ON realm_counts(server_id, remote_realm_id, property, end_time_ms);

CREATE TABLE installation_counts (
  id          INTEGER PRIMARY KEY,
  server_id   INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  remote_id   INTEGER NOT NULL,
  property    TEXT NOT NULL,
  subgroup    TEXT,
  end_time_ms INTEGER NOT NULL,
  value       INTEGER NOT NULL,
  UNIQUE (server_id, remote_id)
);
CREATE INDEX installation_counts_dedup ON installation_counts(server_id, property, end_time_ms);

CREATE TABLE realm_audit_log (
  id               INTEGER PRIMARY KEY,
  server_id        INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  remote_id        INTEGER NOT NULL,
  remote_realm_id  INTEGER NOT NULL,
  realm_id         INTEGER REFERENCES realms(id) ON DELETE SET NULL,
  event_type       INTEGER NOT NULL,
  event_time_ms    INTEGER NOT NULL,
  backfilled       INTEGER NOT NULL DEFAULT 0,
  modified_user_id INTEGER,
  extra_data       TEXT NOT NULL DEFAULT '{}',
  UNIQUE (server_id, remote_id)
);

-- Bouncer-side counters mobile_pushes_received::day / mobile_pushes_forwarded::day; realm_id NULL
-- is the installation-wide row. Partial unique indexes again keep NULL realms unique.
CREATE TABLE push_counters (
  id          INTEGER PRIMARY KEY,
  server_id   INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  realm_id    INTEGER REFERENCES realms(id) ON DELETE CASCADE,
  property    TEXT NOT NULL,
  end_time_s  INTEGER NOT NULL,                  -- end of the day, epoch seconds
  value       INTEGER NOT NULL
);
CREATE UNIQUE INDEX push_counters_realm ON push_counters(server_id, realm_id, property, end_time_s)
  WHERE realm_id IS NOT NULL;
CREATE UNIQUE INDEX push_counters_server ON push_counters(server_id, property, end_time_s)
  WHERE realm_id IS NULL;
)sql";

// Version 2 (issue 6): the legacy devices clustered by (server, identity). v1's rowid table and its
// three indexes cost push/notify step 2 an index descent plus a table descent per row (at 1M rows
// each a likely page-cache miss) and made a dead-token DELETE touch four B-trees. Here one descent
// of the primary key returns all of a user's rows with every column, and a delete touches two
// B-trees (the table and devices_by_token).
//   identity: user_id (INTEGER) on id-keyed rows, else the lowercase user_uuid (TEXT); the two types
//     never compare equal, so one column holds both without a NULL-is-distinct trap. Declared
//     without a type on purpose: no affinity, so a TEXT uuid is never turned into a number. (A
//     16-byte BLOB would be smaller, but v1's text cannot be turned into one in SQL before 3.41's
//     unhex(), and the bouncer supports 3.31.)
//   token: the registered spelling only when it differs from token_norm (an APNs token sent in
//     upper case); NULL otherwise, so FCM rows store their token once.
// A view named devices keeps v1's columns for operators' SQL (sqlite3 shell, the tests' checks).
constexpr std::string_view kV2 = R"sql(
CREATE TABLE legacy_devices (
  server_id     INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  identity      NOT NULL,                        -- user_id INTEGER | lowercase user_uuid TEXT
  kind          INTEGER NOT NULL CHECK (kind IN (1, 2)),   -- 1 = APNs, 2 = FCM
  token_norm    TEXT NOT NULL,                   -- lowercase for APNs, as-is for FCM
  token         TEXT,                            -- as registered; NULL = token_norm
  ios_app_id    TEXT,
  realm_id      INTEGER REFERENCES realms(id) ON DELETE SET NULL,
  registered_ms INTEGER NOT NULL,                -- last (re-)registration: the 410 rule uses it
  PRIMARY KEY (server_id, identity, kind, token_norm),
  CHECK (typeof(identity) IN ('integer', 'text'))
) WITHOUT ROWID;
INSERT INTO legacy_devices (server_id, identity, kind, token_norm, token, ios_app_id, realm_id, registered_ms)
  SELECT server_id, coalesce(user_uuid, user_id), kind, token_norm, nullif(token, token_norm), ios_app_id,
         realm_id, registered_ms
  FROM devices ORDER BY server_id, coalesce(user_uuid, user_id), kind, token_norm;
DROP INDEX devices_by_uuid;
DROP INDEX devices_by_user_id;
DROP INDEX devices_by_token;
DROP TABLE devices;
-- dead-token deletion for every server (upstreams.md)
CREATE INDEX devices_by_token ON legacy_devices(kind, token_norm);
CREATE VIEW devices (server_id, kind, token, token_norm, ios_app_id, user_id, user_uuid, realm_id,
                     registered_ms) AS
  SELECT server_id, kind, coalesce(token, token_norm), token_norm, ios_app_id,
         CASE WHEN typeof(identity) = 'integer' THEN identity END,
         CASE WHEN typeof(identity) = 'text' THEN identity END, realm_id, registered_ms
  FROM legacy_devices;
)sql";

// Version 3 (issue 6): legacy devices in a rowid table whose id places a user's rows together:
//   id = server_id << 40 | bucket(identity) << 12 | seq     (legacy_device_id_range())
// v2's WITHOUT ROWID table is an index B-tree: its interior pages hold whole rows (~100 bytes
// with a 64-character token), so at 1M rows its ~820 interior pages (3.3 MB) could not stay in
// the 512 KB page cache and a lookup read two pages from the file (an interior one and the
// leaf). A rowid table keeps only integers in its interior pages: ~100 pages (~400 KB) at 1M
// rows, which stay cached, so a lookup reads the leaf alone (2.03 -> 1.03 page-cache misses per
// lookup over 200k scattered lookups of a 1M-row table, 512 KB cache; docs/benchmarks.md).
//   bucket: identity & 0xFFFFFFF for a user_id; for a user_uuid (36 ASCII characters, api
//     validates it) sum(code point of character i * 31^(35 - i) mod P) mod P over its first 36
//     characters, P = 2^28 - 57 (prime): every character counts, so uuids that share a prefix
//     or differ in one digit spread too. SQL before 3.41 has no hash function: the sum is spelt
//     out below, and legacy_device_id_range() computes the same in C++. Several identities may
//     share a bucket: every query also names server_id and identity.
//   seq: 0..4095 within (server, bucket); Devices takes the next free one. Uniqueness of
//     (server_id, identity, kind, token_norm) is kept by Devices (a registration refreshes the
//     existing row first), not by an index: a second B-tree would cost every registration a
//     descent and ~100 MB at 1M tokens.
// Rows keep their order within an identity (kind, token_norm) as v2 had it.
constexpr std::string_view kV3 = R"sql(
CREATE TABLE legacy_devices_v3 (
  id            INTEGER PRIMARY KEY,             -- server_id << 40 | bucket(identity) << 12 | seq
  server_id     INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
  identity      NOT NULL,                        -- user_id INTEGER | lowercase user_uuid TEXT
  kind          INTEGER NOT NULL CHECK (kind IN (1, 2)),   -- 1 = APNs, 2 = FCM
  token_norm    TEXT NOT NULL,                   -- lowercase for APNs, as-is for FCM
  token         TEXT,                            -- as registered; NULL = token_norm
  ios_app_id    TEXT,
  realm_id      INTEGER REFERENCES realms(id) ON DELETE SET NULL,
  registered_ms INTEGER NOT NULL,                -- last (re-)registration: the 410 rule uses it
  CHECK (typeof(identity) IN ('integer', 'text'))
);
INSERT INTO legacy_devices_v3 (id, server_id, identity, kind, token_norm, token, ios_app_id, realm_id, registered_ms)
  SELECT (server_id << 40) + (bucket << 12)
           + row_number() OVER (PARTITION BY server_id, bucket ORDER BY identity, kind, token_norm) - 1,
         server_id, identity, kind, token_norm, token, ios_app_id, realm_id, registered_ms
  FROM (SELECT *, CASE WHEN typeof(identity) = 'integer' THEN identity & 268435455 ELSE (
          coalesce(unicode(substr(identity, 1, 1)), 0) * 70797817 +
          coalesce(unicode(substr(identity, 2, 1)), 0) * 114853484 +
          coalesce(unicode(substr(identity, 3, 1)), 0) * 228844318 +
          coalesce(unicode(substr(identity, 4, 1)), 0) * 197884616 +
          coalesce(unicode(substr(identity, 5, 1)), 0) * 136271471 +
          coalesce(unicode(substr(identity, 6, 1)), 0) * 47691886 +
          coalesce(unicode(substr(identity, 7, 1)), 0) * 209359402 +
          coalesce(unicode(substr(identity, 8, 1)), 0) * 231892896 +
          coalesce(unicode(substr(identity, 9, 1)), 0) * 7480416 +
          coalesce(unicode(substr(identity, 10, 1)), 0) * 26218923 +
          coalesce(unicode(substr(identity, 11, 1)), 0) * 130733868 +
          coalesce(unicode(substr(identity, 12, 1)), 0) * 116786905 +
          coalesce(unicode(substr(identity, 13, 1)), 0) * 220247480 +
          coalesce(unicode(substr(identity, 14, 1)), 0) * 266880950 +
          coalesce(unicode(substr(identity, 15, 1)), 0) * 51905095 +
          coalesce(unicode(substr(identity, 16, 1)), 0) * 44970390 +
          coalesce(unicode(substr(identity, 17, 1)), 0) * 27428277 +
          coalesce(unicode(substr(identity, 18, 1)), 0) * 122113673 +
          coalesce(unicode(substr(identity, 19, 1)), 0) * 29916770 +
          coalesce(unicode(substr(identity, 20, 1)), 0) * 226104424 +
          coalesce(unicode(substr(identity, 21, 1)), 0) * 232433058 +
          coalesce(unicode(substr(identity, 22, 1)), 0) * 16157047 +
          coalesce(unicode(substr(identity, 23, 1)), 0) * 61135640 +
          coalesce(unicode(substr(identity, 24, 1)), 0) * 261748310 +
          coalesce(unicode(substr(identity, 25, 1)), 0) * 155650003 +
          coalesce(unicode(substr(identity, 26, 1)), 0) * 256137954 +
          coalesce(unicode(substr(identity, 27, 1)), 0) * 77536166 +
          coalesce(unicode(substr(identity, 28, 1)), 0) * 71774818 +
          coalesce(unicode(substr(identity, 29, 1)), 0) * 132203413 +
          coalesce(unicode(substr(identity, 30, 1)), 0) * 82197484 +
          coalesce(unicode(substr(identity, 31, 1)), 0) * 28629151 +
          coalesce(unicode(substr(identity, 32, 1)), 0) * 923521 +
          coalesce(unicode(substr(identity, 33, 1)), 0) * 29791 +
          coalesce(unicode(substr(identity, 34, 1)), 0) * 961 +
          coalesce(unicode(substr(identity, 35, 1)), 0) * 31 +
          coalesce(unicode(substr(identity, 36, 1)), 0) * 1) % 268435399 END AS bucket
        FROM legacy_devices);
DROP VIEW devices;
DROP INDEX devices_by_token;
DROP TABLE legacy_devices;
ALTER TABLE legacy_devices_v3 RENAME TO legacy_devices;
-- dead-token deletion for every server (upstreams.md)
CREATE INDEX devices_by_token ON legacy_devices(kind, token_norm);
CREATE VIEW devices (server_id, kind, token, token_norm, ios_app_id, user_id, user_uuid, realm_id,
                     registered_ms) AS
  SELECT server_id, kind, coalesce(token, token_norm), token_norm, ios_app_id,
         CASE WHEN typeof(identity) = 'integer' THEN identity END,
         CASE WHEN typeof(identity) = 'text' THEN identity END, realm_id, registered_ms
  FROM legacy_devices;
)sql";

constexpr int64_t kBucketPrime = 268435399;  // 2^28 - 57
constexpr size_t kBucketChars = 36;

// 31^(35 - i) mod kBucketPrime: the weights spelt out in kV3.
constexpr std::array<int64_t, kBucketChars> bucket_weights() {
  std::array<int64_t, kBucketChars> w{};
  int64_t p = 1;
  for (size_t i = kBucketChars; i-- > 0;) {
    w[i] = p;
    p = p * 31 % kBucketPrime;
  }
  return w;
}
constexpr std::array<int64_t, kBucketChars> kBucketWeights = bucket_weights();
static_assert(kBucketWeights[0] == 70797817 && kBucketWeights[34] == 31);

// kV3's bucket of a TEXT identity: substr() and unicode() count characters, so UTF-8 is decoded
// (a uuid is ASCII; anything else stored still lands where the migration put it).
int64_t text_bucket(std::string_view s) {
  int64_t sum = 0;
  size_t i = 0;
  for (size_t n = 0; n < kBucketChars && i < s.size(); ++n) {
    const auto b = static_cast<unsigned char>(s[i++]);
    uint32_t cp = b;
    int more = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
    if (more) cp = b & (0x3Fu >> more);
    for (; more > 0 && i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80; --more)
      cp = (cp << 6) | (static_cast<unsigned char>(s[i++]) & 0x3F);
    sum += static_cast<int64_t>(cp) * kBucketWeights[n];
  }
  return sum % kBucketPrime;
}

}  // namespace

const std::vector<std::string_view>& migrations() {
  static const std::vector<std::string_view> list = {kV1, kV2, kV3};
  return list;
}

std::optional<DeviceIdRange> legacy_device_id_range(int64_t server_id, std::optional<int64_t> user_id,
                                                    std::string_view user_uuid) {
  if (server_id < 0 || server_id > kMaxLegacyDeviceServerId) return std::nullopt;
  int64_t bucket = 0;
  if (user_id) {
    bucket = static_cast<int64_t>(static_cast<uint64_t>(*user_id) & 0xFFFFFFFu);
  } else {
    bucket = text_bucket(user_uuid);
  }
  const int64_t lo = (server_id << 40) + (bucket << 12);
  return DeviceIdRange{lo, lo + kLegacyDeviceSeqs - 1};
}

}  // namespace aloha::store
