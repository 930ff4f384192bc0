#include "store/schema.h"

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

}  // namespace

const std::vector<std::string_view>& migrations() {
  static const std::vector<std::string_view> list = {kV1, kV2};
  return list;
}

}  // namespace aloha::store
