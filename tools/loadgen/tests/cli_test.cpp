#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "../cli.h"

using namespace aloha::loadgen;

namespace {
CliOptions parse(std::vector<const char*> args) {
  args.insert(args.begin(), "aloha-loadgen");
  return parse_args(static_cast<int>(args.size()), args.data());
}
std::string render_request(const RequestSpec& s, uint64_t n) {
  TemplateVars v;
  v.n = n;
  return s.method + " " + s.path.render(v) + "\n" + s.fixed_headers + "\n" + s.body.render(v);
}
}  // namespace

TEST_SUITE("loadgen cli") {
  TEST_CASE("cli: URLs give address, port, Host authority and path") {
    Url u = parse_url("http://127.0.0.1:8080/api/v1/remotes/push/notify");
    CHECK(u.address == "127.0.0.1");
    CHECK(u.port == 8080);
    CHECK(u.authority == "127.0.0.1:8080");
    CHECK(u.path == "/api/v1/remotes/push/notify");
    u = parse_url("http://localhost");
    CHECK(u.address == "127.0.0.1");
    CHECK(u.port == 80);
    CHECK(u.path == "/");
    u = parse_url("http://[::1]:9/x");
    CHECK(u.address == "::1");
    CHECK(u.port == 9);
    CHECK_THROWS_AS(parse_url("https://x/"), CliError);
    CHECK_THROWS_AS(parse_url("http://h:0/"), CliError);
    CHECK_THROWS_AS(parse_url("http://h:99999/"), CliError);
    CHECK_THROWS_AS(parse_url("http://:80/"), CliError);
  }

  TEST_CASE("cli: a form body with auth becomes a POST with Basic auth and a form type") {
    CliOptions o = parse({"-c", "8", "-n", "1000", "-a", "user:pw", "-b", "user_id=${n}",
                          "http://127.0.0.1:1234/p"});
    CHECK(o.run.connections == 8);
    CHECK(o.run.max_requests == 1000);
    CHECK(o.run.duration_ms == 0);  // -n alone: no time bound
    REQUIRE(o.run.specs.size() == 1);
    std::string r = render_request(o.run.specs[0], 5);
    CHECK(r.find("POST /p\n") == 0);
    CHECK(r.find("Host: 127.0.0.1:1234\r\n") != std::string::npos);
    CHECK(r.find("Authorization: Basic dXNlcjpwdw==\r\n") != std::string::npos);
    CHECK(r.find("Content-Type: application/x-www-form-urlencoded\r\n") != std::string::npos);
    CHECK(r.find("\nuser_id=5") != std::string::npos);
  }

  TEST_CASE("cli: a JSON body gets application/json; no body means GET without a length") {
    CliOptions o = parse({"-d", "2.5", "-b", "{\"user_id\":${n}}", "http://127.0.0.1:1/x"});
    CHECK(o.run.duration_ms == 2500);
    CHECK(o.run.specs[0].fixed_headers.find("Content-Type: application/json") != std::string::npos);
    CliOptions g = parse({"http://127.0.0.1:1/health"});
    CHECK(g.run.specs[0].method == "GET");
    CHECK_FALSE(g.run.specs[0].send_body);
    CHECK(g.run.duration_ms == 10000);
  }

  TEST_CASE("cli: the alternate request has its own body and path") {
    CliOptions o = parse({"-b", "a=${n}", "--alt-every", "10", "--alt-body", "dead=${n}",
                          "--alt-path", "/alt", "http://127.0.0.1:1/main"});
    REQUIRE(o.run.specs.size() == 2);
    CHECK(o.run.alt_every == 10);
    CHECK(render_request(o.run.specs[1], 3).find("POST /alt\n") == 0);
    CHECK(render_request(o.run.specs[1], 3).find("\ndead=3") != std::string::npos);
  }

  TEST_CASE("cli: bad options are refused with a message") {
    CHECK_THROWS_AS(parse({}), CliError);
    CHECK_THROWS_AS(parse({"-c", "0", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"-c", "x", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"-d", "-1", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"--bogus", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"-b", "${oops}", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"--alt-every", "5", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"--alt-body", "x", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"-a", "nocolon", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"-H", "NoColon", "http://127.0.0.1:1/"}), CliError);
    CHECK_THROWS_AS(parse({"http://127.0.0.1:1/", "http://127.0.0.1:2/"}), CliError);
  }

  TEST_CASE("cli: the JSON report carries counts, rps, latency and CPU") {
    RunResult r;
    r.completed = r.sent = 1000;
    r.elapsed_s = 2.0;
    for (int k = 0; k < 1000; ++k) r.latency.record(1'000'000);  // 1 ms
    r.statuses[200] = 990;
    r.statuses[429] = 10;
    r.ok_2xx = 990;
    r.non_2xx = 10;
    CpuUsage cpu;
    cpu.user_s = 0.25;
    cpu.system_s = 0.5;
    std::string j = report_json(r, cpu);
    CHECK(j.find("\"requests\":1000") != std::string::npos);
    CHECK(j.find("\"rps\":500.0") != std::string::npos);
    CHECK(j.find("\"p50\":1000.0") != std::string::npos);
    CHECK(j.find("\"statuses\":{\"200\":990,\"429\":10}") != std::string::npos);
    CHECK(j.find("\"non_2xx\":10") != std::string::npos);
    CHECK(j.find("\"cpu_s\":0.750") != std::string::npos);
    CHECK(j.find("fatal") == std::string::npos);
    r.fatal = "cannot \"connect\"";
    CHECK(report_json(r, cpu).find("\"fatal\":\"cannot \\\"connect\\\"\"") != std::string::npos);
    std::string t = report_table(r, cpu);
    CHECK(t.find("1000 in 2.00 s = 500/s") != std::string::npos);
    CHECK(t.find("p50 1.00 ms") != std::string::npos);
  }

  TEST_CASE("cli: --trace keeps per-answer records, bounded by --trace-max") {
    CliOptions o = parse({"--trace", "/tmp/t.csv", "--trace-max", "5", "http://127.0.0.1:1/x"});
    CHECK(o.trace_path == "/tmp/t.csv");
    CHECK(o.run.trace_max == 5);
    CHECK(parse({"--trace", "/tmp/t.csv", "http://127.0.0.1:1/x"}).run.trace_max == 2'000'000);
    CHECK(parse({"--trace-max", "5", "http://127.0.0.1:1/x"}).run.trace_max == 0);  // no file: no trace
    CHECK_THROWS_AS(parse({"--trace-max", "0", "--trace", "f", "http://127.0.0.1:1/x"}), CliError);
    CHECK_THROWS_AS(parse({"--trace", "", "http://127.0.0.1:1/x"}), CliError);
  }

  TEST_CASE("cli: the trace is CSV in microseconds and the JSON report counts it") {
    RunResult r;
    TraceRecord t;
    t.sent_ns = 1'500'000;
    t.latency_ns = 2'250'500;
    t.conn = 63;
    t.status = 200;
    r.trace.push_back(t);
    r.trace_dropped = 7;
    r.start_ns = 42;
    CHECK(trace_csv(r) == "sent_us,latency_us,conn,status\n1500.0,2250.5,63,200\n");
    CHECK(report_json(r, CpuUsage{}).find("\"trace\":{\"records\":1,\"dropped\":7,\"start_mono_ns\":42}") != std::string::npos);
    CHECK(report_json(RunResult{}, CpuUsage{}).find("trace") == std::string::npos);
  }
}
