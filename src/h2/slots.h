// Reused slots for in-flight requests, shared by h2::Pool (requests) and h2::Session (streams).
// An id is (sequence << 32 | slot index): a lookup is an index plus a check, a stale id (its slot
// reused since) finds nothing, and no map entry is allocated per request. Single-threaded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace aloha::h2 {

// T: default-constructible and assignable, with members `uint64_t id` and `bool in_use`
// (T{} must mean "free").
template <class T>
class SlotTable {
 public:
  // A free T (as T{} left it) with a fresh id and in_use set; the table grows when none is free.
  T* acquire() {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<uint32_t>(slots_.size());
      slots_.push_back(std::make_unique<T>());
    }
    T* t = slots_[slot].get();
    t->id = (next_seq_++ << 32) | slot;
    t->in_use = true;
    ++live_;
    return t;
  }

  // The T holding `id`, or nullptr when it was released (or its slot reused since).
  T* find(uint64_t id) const {
    size_t slot = static_cast<uint32_t>(id);
    if (slot >= slots_.size()) return nullptr;
    T* t = slots_[slot].get();
    return t->in_use && t->id == id ? t : nullptr;
  }

  // Resets *t to T{} (dropping its buffers and callbacks) and makes its slot free.
  void release(T* t) {
    uint32_t slot = static_cast<uint32_t>(t->id);
    *t = T{};
    free_.push_back(slot);
    --live_;
  }

  size_t live() const { return live_; }  // acquired and not released
  size_t capacity() const { return slots_.size(); }  // slots allocated, free or not

  // Frees every slot when none is in use (an idle connection or pool gives back the slots of its
  // busiest moment). Ids handed out before stay stale: their slot index is past the end or the
  // sequence differs, so find() still returns nullptr for them.
  void release_if_idle() {
    if (live_ != 0) return;
    std::vector<std::unique_ptr<T>>().swap(slots_);
    std::vector<uint32_t>().swap(free_);
  }

  // Every slot, free or not (callers test in_use).
  template <class F>
  void for_each(F&& f) {
    for (auto& t : slots_) f(*t);
  }

 private:
  uint64_t next_seq_ = 1;
  std::vector<std::unique_ptr<T>> slots_;  // stable addresses: T* may be held while the table grows
  std::vector<uint32_t> free_;
  size_t live_ = 0;
};

}  // namespace aloha::h2
