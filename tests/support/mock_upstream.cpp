// See mock_upstream.h. The ready lines and their formats are the ones tools/mock-upstream and the
// node scripts in tests/support print; parsing stays a plain atoi after the ':' / marker.
#include "support/mock_upstream.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string_view>

namespace aloha::test {

namespace {

std::string dirname(const std::string& p) {
  size_t s = p.rfind('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

// A complete line containing marker has arrived (the port after it is whole).
bool has_line(std::string_view e, std::string_view marker) {
  size_t p = e.find(marker);
  return p != std::string_view::npos && e.find('\n', p) != std::string_view::npos;
}

uint16_t port_after(const std::string& e, const char* marker) {
  return static_cast<uint16_t>(std::atoi(e.c_str() + e.find(':', e.find(marker)) + 1));
}

}  // namespace

std::string env_or(const char* name, const std::string& dflt) {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

std::string source_root() { return env_or("ALOHA_SOURCE_ROOT", "."); }

std::string tls_dir() { return env_or("ALOHA_TEST_DATA", source_root() + "/tests/data") + "/tls"; }

std::string mock_upstream_binary() {
  if (const char* e = std::getenv("ALOHA_MOCK_UPSTREAM_BIN"); e && *e) return e;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string self = n > 0 ? std::string(buf, static_cast<size_t>(n)) : ".";
  return dirname(dirname(self)) + "/tools/mock-upstream";
}

void MockUpstreamProcess::start(const std::vector<std::string>& argv, MockReady ready, bool require_ports) {
  REQUIRE(!argv.empty());
  REQUIRE_MESSAGE(::access(argv[0].c_str(), X_OK) == 0, "mock-upstream binary not found at ", argv[0],
                  " (build tools/ or set ALOHA_MOCK_UPSTREAM_BIN)");
  ProcessOptions o;
  o.argv = argv;
  proc = std::make_unique<Process>(o);
  // The mock prints "listening on" first and "http1 control on" after it, so waiting for the
  // control line also means the TLS port is known.
  const char* marker = ready == MockReady::Control ? "http1 control on " : "listening on ";
  bool up = proc->wait_stderr([marker](std::string_view e) { return has_line(e, marker); }, 10000);
  std::string e = proc->stderr_text();
  REQUIRE_MESSAGE(up, "mock-upstream did not start: ", e);
  port = port_after(e, "listening on ");
  control_port = ready == MockReady::Control ? port_after(e, "http1 control on ") : 0;
  if (require_ports) {
    REQUIRE(port > 0);
    if (ready == MockReady::Control) REQUIRE(control_port > 0);
  }
}

void MockUpstreamProcess::stop() {
  if (proc && proc->running()) {
    proc->signal(SIGTERM);
    proc->wait(5000);
  }
}

uint16_t start_node_listening(std::unique_ptr<Process>& proc, const ProcessOptions& opts) {
  proc = std::make_unique<Process>(opts);
  bool up = proc->wait_stderr(
      [](std::string_view e) { return has_line(e, "LISTENING "); },
      10000);
  REQUIRE_MESSAGE(up, "node server did not start: ", proc->stderr_text());
  std::string e = proc->stderr_text();
  auto port = static_cast<uint16_t>(std::atoi(e.c_str() + e.find("LISTENING ") + 10));
  REQUIRE(port > 0);
  return port;
}

}  // namespace aloha::test
