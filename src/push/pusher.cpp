#include "push/pusher.h"

#include <cstdio>
#include <memory>

namespace aloha::push {

void append_outcome_stats(std::string& out, const std::string& name, uint64_t delivered, uint64_t dead,
                          uint64_t gave_up, uint64_t credential, uint64_t bug, uint64_t retries) {
  char buf[256];
  snprintf(buf, sizeof buf,
           "%s: delivered=%llu dead_token=%llu gave_up=%llu credential_problem=%llu request_bug=%llu "
           "retries=%llu",
           name.c_str(), static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(dead),
           static_cast<unsigned long long>(gave_up), static_cast<unsigned long long>(credential),
           static_cast<unsigned long long>(bug), static_cast<unsigned long long>(retries));
  out += buf;
}

std::string PusherRegistry::stats_line() const {
  std::string out;
  for (Pusher* p : all()) {
    if (!out.empty()) out += "; ";
    p->append_stats(out);
  }
  return out;
}

void PusherRegistry::add_apns(std::unique_ptr<Pusher> p, const std::vector<std::string>& topics) {
  Pusher* raw = p.get();
  apns_.push_back(std::move(p));
  if (topics.empty()) {
    apns_default_ = raw;  // config validation guarantees at most one such section
  } else {
    for (const auto& t : topics) by_topic_[t] = raw;
  }
}

void PusherRegistry::set_fcm(std::unique_ptr<Pusher> p) { fcm_ = std::move(p); }

Pusher* PusherRegistry::apns_for(std::string_view ios_app_id) const {
  auto it = by_topic_.find(std::string(ios_app_id));
  if (it != by_topic_.end()) return it->second;
  return apns_default_;
}

std::vector<Pusher*> PusherRegistry::all() const {
  std::vector<Pusher*> out;
  for (const auto& p : apns_) out.push_back(p.get());
  if (fcm_) out.push_back(fcm_.get());
  return out;
}

void PusherRegistry::close_all(std::function<void()> done) {
  std::vector<Pusher*> ps = all();
  if (ps.empty()) {
    done();
    return;
  }
  auto remaining = std::make_shared<size_t>(ps.size());
  auto cb = std::make_shared<std::function<void()>>(std::move(done));
  for (Pusher* p : ps) {
    p->close([remaining, cb] {
      if (--*remaining == 0) (*cb)();
    });
  }
}

}  // namespace aloha::push
