// Stmt: one prepared SQLite statement, prepared once (SQLITE_PREPARE_PERSISTENT) and reused.
// StoreError: the one exception type of the store; carries SQLite's extended result code.
// A Stmt is owned by the repository that prepared it and must die before its Database.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace aloha::store {

class StoreError : public std::runtime_error {
 public:
  StoreError(const std::string& what, int code = SQLITE_ERROR) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }  // SQLite extended result code (SQLITE_ERROR when not from SQLite)
  bool is_constraint() const { return (code_ & 0xff) == SQLITE_CONSTRAINT; }

 private:
  int code_;
};

// Throws StoreError "<context>: <sqlite message> (code N)".
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view context);

class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Resets the statement and clears its bindings when it goes out of scope, so a statement
  // never stays active (holding a read snapshot) after the call that used it, even on a throw.
  class Use {
   public:
    explicit Use(Stmt& s) : s_(s) {}
    ~Use() { s_.reset(); }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    Stmt* operator->() { return &s_; }

   private:
    Stmt& s_;
  };
  Use use() { return Use(*this); }

  // Parameters are 1-based. Text is bound SQLITE_STATIC: the caller keeps it alive until the
  // statement is reset (Use's destructor clears the bindings).
  void bind(int i, int64_t v);
  void bind(int i, int v) { bind(i, static_cast<int64_t>(v)); }
  void bind(int i, std::string_view v);
  void bind_null(int i);
  void bind(int i, const std::optional<int64_t>& v) { v ? bind(i, *v) : bind_null(i); }
  void bind(int i, const std::optional<std::string_view>& v) { v ? bind(i, *v) : bind_null(i); }

  // true: a row is available; false: done. Throws StoreError on failure.
  bool step();
  // Runs a statement that returns no rows; returns sqlite3_changes().
  int exec();

  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t col_int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string col_text(int col) const;
  std::optional<int64_t> col_opt_int(int col) const;
  std::optional<std::string> col_opt_text(int col) const;

  void reset();
  const char* sql() const { return sqlite3_sql(stmt_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace aloha::store
