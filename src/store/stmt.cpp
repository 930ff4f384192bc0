#include "store/stmt.h"

namespace aloha::store {

void throw_sqlite(sqlite3* db, int rc, std::string_view context) {
  std::string msg(context);
  msg += ": ";
  // sqlite3_errmsg describes the most recent failure on this connection; fall back to the
  // generic text of the code when there is no connection (open failures).
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  msg += " (code " + std::to_string(rc) + ")";
  throw StoreError(msg, rc);
}

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  // PERSISTENT: these statements live as long as the connection, so let SQLite allocate them
  // outside its lookaside pool (sqlite3_prepare_v3 documentation).
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                              &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    throw_sqlite(db, rc, "prepare \"" + std::string(sql) + "\"");
  }
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

void Stmt::bind(int i, int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, i, v);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

void Stmt::bind(int i, std::string_view v) {
  // A null data pointer would bind NULL; an empty string must stay an empty string.
  const char* p = v.data() ? v.data() : "";
  int rc = sqlite3_bind_text(stmt_, i, p, static_cast<int>(v.size()), SQLITE_STATIC);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

void Stmt::bind_null(int i) {
  int rc = sqlite3_bind_null(stmt_, i);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

bool Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw_sqlite(db_, rc, sqlite3_sql(stmt_));
}

int Stmt::exec() {
  while (step()) {
  }
  return sqlite3_changes(db_);
}

std::string Stmt::col_text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

std::optional<int64_t> Stmt::col_opt_int(int col) const {
  if (is_null(col)) return std::nullopt;
  return col_int(col);
}

std::optional<std::string> Stmt::col_opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return col_text(col);
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

}  // namespace aloha::store
