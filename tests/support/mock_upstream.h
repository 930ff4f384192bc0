// Shared integration-test plumbing for child servers: test-data paths, locating the
// tools/mock-upstream binary, and starting it (or a node test server) and reading its port(s) off
// stderr. A MockUpstreamProcess owns its child: stop() / the destructor send SIGTERM and wait up
// to 5 s; test::Process then kills and reaps anything still running. All waits are bounded.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/process.h"

namespace aloha::test {

// $name when set and non-empty, else dflt.
std::string env_or(const char* name, const std::string& dflt);
// $ALOHA_SOURCE_ROOT, else ".".
std::string source_root();
// ($ALOHA_TEST_DATA, else <source_root>/tests/data) + "/tls".
std::string tls_dir();
// $ALOHA_MOCK_UPSTREAM_BIN, else <build>/tools/mock-upstream next to <build>/tests/.
std::string mock_upstream_binary();

// Which stderr line says the mock is ready: "listening on HOST:PORT" (TLS port only) or the later
// "http1 control on HOST:PORT" (both ports; the mock must be started with --http1-control-port).
enum class MockReady { Listening, Control };

class MockUpstreamProcess {
 public:
  MockUpstreamProcess() = default;
  MockUpstreamProcess(const MockUpstreamProcess&) = delete;
  MockUpstreamProcess& operator=(const MockUpstreamProcess&) = delete;
  ~MockUpstreamProcess() { stop(); }

  // Spawns argv (argv[0] must be executable: REQUIREd), waits up to 10 s for the ready line
  // (REQUIREd) and parses port (and control_port for MockReady::Control). With require_ports the
  // parsed ports are REQUIREd non-zero. Replaces any previous child (stop or kill it first).
  void start(const std::vector<std::string>& argv, MockReady ready, bool require_ports = true);
  // SIGTERM and a wait of up to 5 s, when a child is running.
  void stop();

  std::unique_ptr<Process> proc;
  uint16_t port = 0;
  uint16_t control_port = 0;
};

// Starts a node test server (tests/support/*.js) that prints "LISTENING <port>\n" on stderr;
// waits up to 10 s for it (REQUIREd), stores the child in proc and returns the port (REQUIREd > 0).
uint16_t start_node_listening(std::unique_ptr<Process>& proc, const ProcessOptions& opts);

}  // namespace aloha::test
