// RowCache: a bounded in-memory cache of rows of one table, keyed by text, that never serves what
// a rolled-back write left behind. The repository calls invalidate() before every statement that
// changes the table ("invalidate on any attempt"): the cache empties and is bypassed while a write
// batch is open, since that batch may still roll back (a savepoint or a failed commit); once the
// batch has ended the table says what holds and caching resumes. At most `max` entries: emptied
// when full (rows reload on demand). Loop thread only. Used by Servers (authentication) and Realms
// (push/notify's realm check).
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "store/db.h"

namespace aloha::store {

template <class V>
class RowCache {
 public:
  RowCache(const Database& db, size_t max) : db_(db), max_(max) {}

  // False while a write of the table sits in an open batch: read through and put() nothing.
  bool usable() {
    if (!suspended_) return true;
    if (db_.batch_open()) return false;
    map_.clear();  // that batch has ended: what is cached from before it was dropped already
    suspended_ = false;
    return true;
  }
  // nullptr when not cached. Only after usable() returned true.
  const V* find(std::string_view key) const {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }
  void put(std::string_view key, V value) {
    if (map_.size() >= max_) map_.clear();  // the bound
    map_.emplace(std::string(key), std::move(value));
  }
  void invalidate() noexcept {
    map_.clear();
    suspended_ = true;
  }
  size_t size() const { return map_.size(); }

 private:
  struct ViewHash {
    using is_transparent = void;  // find() by string_view without building a std::string
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  const Database& db_;
  size_t max_;
  std::unordered_map<std::string, V, ViewHash, std::equal_to<>> map_;
  bool suspended_ = false;
};

}  // namespace aloha::store
