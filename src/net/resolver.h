// Resolver: asynchronous DNS through libuv's thread pool (uv_getaddrinfo, AI_ADDRCONFIG,
// AF_UNSPEC, SOCK_STREAM). Addresses are returned in the resolver's order; callers try each.
// Lifetime: start() returns a heap object that deletes itself after its callback ran or after
// cancel(); `done` fires at most once, on the loop thread, never inside start().
#pragma once
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace aloha::net {

// "[::1]:443" / "127.0.0.1:443" for logs.
std::string format_address(const sockaddr* addr);

class Resolver {
 public:
  // status 0 and at least one address, or a libuv error code (UV_EAI_NONAME, ...).
  using Done = std::function<void(int status, const std::vector<sockaddr_storage>& addrs)>;

  static Resolver* start(uv_loop_t* loop, const std::string& host, uint16_t port, Done done);

  // The callback will not run; the object frees itself when libuv gives the request back.
  void cancel();

 private:
  Resolver() = default;
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept;

  uv_getaddrinfo_t req_{};
  Done done_;
  bool cancelled_ = false;
};

}  // namespace aloha::net
