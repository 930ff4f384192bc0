#include "api/router.h"

#include <algorithm>
#include <charconv>
#include <memory>
#include <new>
#include <vector>

#include "api/auth.h"
#include "api/respond.h"
#include "core/log.h"
#include "store/db.h"

namespace aloha::api {
namespace {

// Blocks for allocate_shared<Exchange> (the Exchange and its control block in one allocation),
// recycled through a bounded thread-local free list: one malloc/free pair less per request.
// Only the loop thread makes Exchanges; a block freed on another thread goes to that thread's
// list, which is as correct.
constexpr size_t kMaxFreeExchangeBlocks = 64;

struct FreeBlocks {
  std::vector<void*> blocks;
  size_t block_size = 0;
  ~FreeBlocks() {
    for (void* b : blocks) ::operator delete(b);
  }
};

FreeBlocks& free_blocks() {
  thread_local FreeBlocks f;
  return f;
}

template <class T>
struct RecyclingAllocator {
  using value_type = T;
  RecyclingAllocator() = default;
  template <class U>
  RecyclingAllocator(const RecyclingAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    FreeBlocks& f = free_blocks();
    if (n == 1 && f.block_size == sizeof(T) && !f.blocks.empty()) {
      void* b = f.blocks.back();
      f.blocks.pop_back();
      return static_cast<T*>(b);
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    FreeBlocks& f = free_blocks();
    if (n == 1 && (f.block_size == 0 || f.block_size == sizeof(T))) {
      if (f.blocks.capacity() == 0) {
        try {
          f.blocks.reserve(kMaxFreeExchangeBlocks);
        } catch (...) {
        }
      }
      if (f.blocks.size() < f.blocks.capacity() && f.blocks.size() < kMaxFreeExchangeBlocks) {
        f.block_size = sizeof(T);
        f.blocks.push_back(p);  // within the reserved capacity: cannot throw
        return;
      }
    }
    ::operator delete(p);
  }
  template <class U>
  bool operator==(const RecyclingAllocator<U>&) const noexcept { return true; }
};

}  // namespace

void Exchange::respond(http::Response&& r) {
  if (answered) return;
  answered = true;
  r.rate_limit = rate_limit;
  // Only the access log reads log_server: skip the copy when it is off (hot path).
  if (server && log_enabled(LogLevel::info)) r.log_server = server->uuid;
  reply.send(std::move(r));
}

void respond_after_commit(store::Store& store, const ExchangePtr& ex, http::Response&& r) {
  store.db().after_commit([ex, resp = std::move(r)](bool ok) mutable {
    if (ok)
      ex->respond(std::move(resp));
    else
      ex->respond(retry_later("The push bouncer could not save the change; retry later"));
  });
}

void Router::add(std::string path, std::vector<std::string> methods, bool authenticated,
                 Endpoint fn, Writes writes) {
  if (std::find(methods.begin(), methods.end(), "GET") != methods.end() &&
      std::find(methods.begin(), methods.end(), "HEAD") == methods.end())
    methods.push_back("HEAD");
  std::sort(methods.begin(), methods.end());
  routes_[std::move(path)] = Route{std::move(methods), authenticated, std::move(fn), writes};
}

void Router::handle(http::Request&& req, http::Reply reply) {
  auto ex = std::allocate_shared<Exchange>(RecyclingAllocator<Exchange>());
  ex->req = std::move(req);
  ex->reply = std::move(reply);

  auto it = routes_.find(ex->req.path);
  if (it == routes_.end()) {
    ex->respond(not_found());
    return;
  }
  const Route& route = it->second;
  const std::string& m = ex->req.method;
  if (m == "OPTIONS") {
    http::Response r = method_not_allowed(route.methods);
    r.status = 204;
    r.body.clear();
    ex->respond(std::move(r));
    return;
  }
  if (std::find(route.methods.begin(), route.methods.end(), m) == route.methods.end()) {
    // api.md §1: wrong method → 405 before authentication.
    ex->respond(method_not_allowed(route.methods));
    return;
  }
  store::Database& db = svc_.store.db();
  if (route.writes == Writes::yes && db.write_paused()) {
    // The store is truncating its WAL and begins no write until that is done (a few ms): the whole
    // request (authentication included) runs when the pause ends, in arrival order. Route
    // addresses are stable (node-based map, no route is added while serving).
    const Route* r = &route;
    if (!db.park([this, r, ex] { run(*r, ex); }))
      ex->respond(retry_later("The push bouncer's database is busy; retry later"));
    return;
  }
  run(route, ex);
}

void Router::run(const Route& route, const ExchangePtr& ex) {
  try {
    // One read transaction per loop iteration for every lookup of the requests it handles.
    svc_.store.db().begin_read();
    dispatch(route, ex);
  } catch (const ApiError& e) {
    ex->respond(error_response(e));
  } catch (const store::StoreError& e) {
    LOG_ERROR("store error on %s: %s", ex->req.path.c_str(), e.what());
    ex->respond(retry_later("The push bouncer's database is unavailable; retry later"));
  } catch (const std::exception& e) {
    LOG_ERROR("internal error on %s: %s", ex->req.path.c_str(), e.what());
    ex->respond(retry_later("Internal error; retry later"));
  }
}

void Router::dispatch(const Route& route, const ExchangePtr& ex) {
  if (route.authenticated) {
    ex->server = authenticate(svc_, ex->req);  // throws ApiError (401/400)
    RateLimiter::Decision d = svc_.limiter.check(ex->server->id);
    ex->rate_limit = http::RateLimitHeaders{d.limit, d.remaining, d.reset_epoch_s};
    if (!d.allowed) {
      ApiError e{429, "RATE_LIMIT_HIT", "API usage exceeded rate limit", {}, {}};
      // Python's float repr: shortest round-trip digits, integral values keep ".0".
      char f[64];
      auto res = std::to_chars(f, f + sizeof f - 3, d.retry_after_s);
      std::string fs(f, res.ptr);
      if (fs.find_first_of(".e") == std::string::npos) fs += ".0";
      e.extra.push_back({"retry-after", fs});
      long long secs = static_cast<long long>(d.retry_after_s);
      if (static_cast<double>(secs) < d.retry_after_s) ++secs;  // rounded up
      if (secs < 1) secs = 1;
      e.headers.push_back({"Retry-After", std::to_string(secs)});
      throw e;
    }
    svc_.store.servers().touch_last_request(ex->server->id, svc_.clock.wall_ms());
  }
  route.fn(svc_, ex);
}

}  // namespace aloha::api
