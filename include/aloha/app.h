// Public entry of the aloha library (what the binary links). App is the composition root: it owns
// the libuv loop, the store, the pushers, the rate limiter, the router and the HTTP server, and
// defines the start-up and shutdown order (architecture.md).
#pragma once
#include <memory>
#include <string>

#include "core/config.h"

namespace aloha {

class App {
 public:
  explicit App(Config config);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Opens the store (before the loop runs), listens, runs until SIGTERM/SIGINT, then drains
  // in-flight requests up to [server] shutdown_timeout. Returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aloha
