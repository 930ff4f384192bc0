#include "net/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>

#include "core/log.h"

namespace aloha::net {

std::string format_address(const sockaddr* addr) {
  // snprintf rather than string concatenation: GCC 12 reports a false -Wrestrict on the latter.
  char ip[INET6_ADDRSTRLEN] = "?";
  char out[INET6_ADDRSTRLEN + 16];
  if (addr->sa_family == AF_INET6) {
    auto* a6 = reinterpret_cast<const sockaddr_in6*>(addr);
    uv_ip6_name(a6, ip, sizeof ip);
    std::snprintf(out, sizeof out, "[%s]:%u", ip, static_cast<unsigned>(ntohs(a6->sin6_port)));
    return out;
  }
  if (addr->sa_family == AF_INET) {
    auto* a4 = reinterpret_cast<const sockaddr_in*>(addr);
    uv_ip4_name(a4, ip, sizeof ip);
    std::snprintf(out, sizeof out, "%s:%u", ip, static_cast<unsigned>(ntohs(a4->sin_port)));
    return out;
  }
  return "?";
}

Resolver* Resolver::start(uv_loop_t* loop, const std::string& host, uint16_t port, Done done) {
  auto* r = new Resolver();
  r->done_ = std::move(done);
  r->req_.data = r;
  addrinfo hints{};
  // AI_ADDRCONFIG: no IPv6 answers on hosts without IPv6 (and vice versa); AF_UNSPEC keeps both
  // families in the resolver's preferred order (RFC 6724), which we then try in turn.
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  std::string service = std::to_string(port);
  int rc = uv_getaddrinfo(loop, &r->req_, &Resolver::on_resolved, host.c_str(), service.c_str(), &hints);
  if (rc != 0) {
    // Report asynchronously like every other outcome: callers never see `done` inside start().
    // A zero-delay timer owned by a small holder does that.
    struct Deferred {
      uv_timer_t timer;
      Resolver* r;
      int rc;
    };
    auto* d = new Deferred{{}, r, rc};
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, [](uv_timer_t* t) noexcept {
      auto* dd = static_cast<Deferred*>(t->data);
      Resolver* res = dd->r;
      int code = dd->rc;
      uv_close(reinterpret_cast<uv_handle_t*>(t),
               [](uv_handle_t* h) noexcept { delete static_cast<Deferred*>(h->data); });
      if (!res->cancelled_) {
        std::vector<sockaddr_storage> none;
        try {
          res->done_(code, none);
        } catch (...) {
          LOG_ERROR("resolver: callback threw");
        }
      }
      delete res;
    }, 0, 0);
  }
  return r;
}

void Resolver::cancel() {
  cancelled_ = true;
  // If the lookup is still queued this makes the callback run with UV_ECANCELED; if it is
  // already running, the callback comes later and sees cancelled_.
  uv_cancel(reinterpret_cast<uv_req_t*>(&req_));
}

void Resolver::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept {
  auto* self = static_cast<Resolver*>(req->data);
  std::vector<sockaddr_storage> addrs;
  if (status == 0) {
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
      if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
      sockaddr_storage ss{};
      std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
      addrs.push_back(ss);
      if (addrs.size() >= 32) break;  // bound: more addresses would not help
    }
    if (addrs.empty()) status = UV_EAI_NODATA;
  }
  uv_freeaddrinfo(res);
  if (!self->cancelled_) {
    try {
      self->done_(status, addrs);
    } catch (...) {
      LOG_ERROR("resolver: callback threw");
    }
  }
  delete self;
}

}  // namespace aloha::net
