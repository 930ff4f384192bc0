#include "cli.h"

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/encoding.h"

namespace aloha::loadgen {

const char* const kUsage =
    "usage: aloha-loadgen [options] URL\n"
    "  URL                     http://HOST[:PORT]/PATH (HOST: IPv4, [IPv6] or localhost);\n"
    "                          the path may hold ${...} placeholders like the body\n"
    "  -c, --connections N     keep-alive connections (default 64)\n"
    "  -p, --pipeline N        requests in flight per connection (default 1)\n"
    "  -d, --duration SECONDS  run time (default 10 unless -n is given; fractions allowed)\n"
    "  -n, --requests N        stop after N requests (with -d: whichever comes first)\n"
    "  -m, --method M          default POST with a body, else GET\n"
    "  -b, --body TEMPLATE     request body; --body-file FILE reads it from a file\n"
    "  -H, --header 'N: V'     extra header (repeatable)\n"
    "  -a, --auth USER:PASS    HTTP Basic authorization\n"
    "  -T, --content-type T    default: application/json when the body starts with '{',\n"
    "                          else application/x-www-form-urlencoded\n"
    "  --alt-every K           every K-th request (i % K == K-1) is the alternate request:\n"
    "  --alt-path TEMPLATE     its path (default: the main path)\n"
    "  --alt-body TEMPLATE     its body (--alt-body-file FILE); its `n` counts alternates only\n"
    "  --first-n N             first value of `n` for the main request (default 0)\n"
    "  --grace SECONDS         wait for answers after the stop / give up without progress (10)\n"
    "  --show-errors K         print the first K answers >= 300 to stderr\n"
    "  --progress              a line per second on stderr\n"
    "  --json                  JSON report instead of the table\n"
    "  --trace FILE            write one CSV line per answer (sent_us since the start,\n"
    "                          latency_us, conn, status), at most --trace-max (2000000)\n"
    "Templates: ${EXPR}, ${hexW:EXPR} (zero-padded lowercase hex), ${pick:EXPR:a|b|c}; EXPR uses\n"
    "n (this request kind's counter), i (global counter), c (connection), numbers, + - * / %\n"
    "evaluated left to right. `$$` is a literal `$`.\n"
    "Example: aloha-loadgen -c 64 -n 100000 -a ID:KEY \\\n"
    "  -b 'user_id=${n}&token=a${hex63:n}&token_kind=1&ios_app_id=org.aloha.bench' \\\n"
    "  http://127.0.0.1:8080/api/v1/remotes/push/register\n";

Url parse_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) throw CliError("URL must start with http://");
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  Url u;
  u.authority = std::string(authority);
  u.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) throw CliError("unterminated [IPv6] in URL");
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw CliError("bad URL authority");
      port = rest.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
  }
  if (host.empty()) throw CliError("URL has no host");
  if (!port.empty()) {
    int p = 0;
    for (char ch : port) {
      if (ch < '0' || ch > '9' || p > 65535) throw CliError("bad port in URL");
      p = p * 10 + (ch - '0');
    }
    if (p < 1 || p > 65535) throw CliError("bad port in URL");
    u.port = p;
  }
  u.address = host == "localhost" ? "127.0.0.1" : std::string(host);
  return u;
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CliError("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t to_u64(const std::string& opt, const std::string& v, uint64_t lo, uint64_t hi) {
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || v[0] == '-' || x < lo || x > hi)
    throw CliError(opt + ": expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return x;
}

uint64_t seconds_to_ms(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(x > 0) || x > 86400 * 7)
    throw CliError(opt + ": expected seconds > 0");
  return static_cast<uint64_t>(std::llround(x * 1000.0));
}

Template compile(const std::string& what, const std::string& text) {
  try {
    return Template(text);
  } catch (const TemplateError& e) {
    throw CliError(what + ": " + e.what());
  }
}

}  // namespace

CliOptions parse_args(int argc, const char* const* argv) {
  CliOptions o;
  std::string url, method, body, content_type, auth, alt_path, alt_body;
  bool have_body = false, have_alt_body = false, have_duration = false;
  uint64_t trace_max = 2'000'000;
  std::vector<std::string> headers;
  for (int k = 1; k < argc; ++k) {
    std::string a = argv[k];
    auto value = [&]() -> std::string {
      if (k + 1 >= argc) throw CliError(a + " needs a value");
      return argv[++k];
    };
    if (a == "-h" || a == "--help") {
      o.help = true;
    } else if (a == "-c" || a == "--connections") {
      o.run.connections = to_u64(a, value(), 1, 10'000);
    } else if (a == "-p" || a == "--pipeline") {
      o.run.pipeline = to_u64(a, value(), 1, 1024);
    } else if (a == "-d" || a == "--duration") {
      o.run.duration_ms = seconds_to_ms(a, value());
      have_duration = true;
    } else if (a == "-n" || a == "--requests") {
      o.run.max_requests = to_u64(a, value(), 1, UINT64_MAX / 2);
    } else if (a == "-m" || a == "--method") {
      method = value();
    } else if (a == "-b" || a == "--body") {
      body = value();
      have_body = true;
    } else if (a == "--body-file") {
      body = read_file(value());
      have_body = true;
    } else if (a == "-H" || a == "--header") {
      std::string h = value();
      if (h.find(':') == std::string::npos || h.find_first_of("\r\n") != std::string::npos)
        throw CliError("--header wants 'Name: value'");
      headers.push_back(h);
    } else if (a == "-a" || a == "--auth") {
      auth = value();
      if (auth.find(':') == std::string::npos) throw CliError("--auth wants USER:PASS");
    } else if (a == "-T" || a == "--content-type") {
      content_type = value();
    } else if (a == "--alt-every") {
      o.run.alt_every = to_u64(a, value(), 2, UINT64_MAX / 2);
    } else if (a == "--alt-path") {
      alt_path = value();
    } else if (a == "--alt-body") {
      alt_body = value();
      have_alt_body = true;
    } else if (a == "--alt-body-file") {
      alt_body = read_file(value());
      have_alt_body = true;
    } else if (a == "--first-n") {
      o.run.first_n = to_u64(a, value(), 0, UINT64_MAX / 2);
    } else if (a == "--grace") {
      o.run.grace_ms = seconds_to_ms(a, value());
    } else if (a == "--show-errors") {
      o.run.show_errors = to_u64(a, value(), 0, 1000);
    } else if (a == "--progress") {
      o.run.progress = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--trace") {
      o.trace_path = value();
      if (o.trace_path.empty()) throw CliError("--trace needs a file name");
    } else if (a == "--trace-max") {
      trace_max = to_u64(a, value(), 1, 50'000'000);
    } else if (!a.empty() && a[0] == '-') {
      throw CliError("unknown option " + a);
    } else if (url.empty()) {
      url = a;
    } else {
      throw CliError("more than one URL");
    }
  }
  if (o.help) return o;
  if (url.empty()) throw CliError("no URL given");
  if (!o.trace_path.empty()) o.run.trace_max = trace_max;
  if (o.run.max_requests != 0 && !have_duration) o.run.duration_ms = 0;
  Url u = parse_url(url);
  o.run.address = u.address;
  o.run.port = u.port;

  auto make_spec = [&](const std::string& path, bool with_body, const std::string& text) {
    RequestSpec s;
    s.method = !method.empty() ? method : with_body ? "POST" : "GET";
    s.path = compile("path", path);
    s.send_body = with_body || s.method == "POST" || s.method == "PUT" || s.method == "PATCH";
    s.body = compile("body", text);
    s.fixed_headers = "Host: " + u.authority + "\r\nUser-Agent: AlohaServer/loadgen\r\n";
    if (!auth.empty())
      s.fixed_headers += "Authorization: Basic " + aloha::enc::base64_encode(auth) + "\r\n";
    if (s.send_body) {
      std::string ct = content_type;
      if (ct.empty()) {
        size_t first = text.find_first_not_of(" \t\r\n");
        ct = first != std::string::npos && text[first] == '{' ? "application/json"
                                                              : "application/x-www-form-urlencoded";
      }
      s.fixed_headers += "Content-Type: " + ct + "\r\n";
    }
    for (const std::string& h : headers) s.fixed_headers += h + "\r\n";
    return s;
  };
  o.run.specs.push_back(make_spec(u.path, have_body, body));
  if (o.run.alt_every != 0) {
    if (!have_alt_body && alt_path.empty()) throw CliError("--alt-every needs --alt-body or --alt-path");
    o.run.specs.push_back(make_spec(alt_path.empty() ? u.path : alt_path, have_alt_body || have_body,
                                    have_alt_body ? alt_body : body));
  } else if (have_alt_body || !alt_path.empty()) {
    throw CliError("--alt-body/--alt-path need --alt-every");
  }
  return o;
}

namespace {

double us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

void appendf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) out.append(buf, static_cast<size_t>(n) < sizeof buf ? static_cast<size_t>(n) : sizeof buf - 1);
}

std::string json_escape(std::string_view s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      o.push_back('\\');
      o.push_back(ch);
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      appendf(o, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(ch)));
    } else {
      o.push_back(ch);
    }
  }
  return o;
}

}  // namespace

std::string report_json(const RunResult& r, const CpuUsage& cpu) {
  std::string o = "{";
  double rps = r.elapsed_s > 0 ? static_cast<double>(r.completed) / r.elapsed_s : 0.0;
  appendf(o, "\"requests\":%llu,\"sent\":%llu,\"elapsed_s\":%.3f,\"rps\":%.1f,",
          static_cast<unsigned long long>(r.completed), static_cast<unsigned long long>(r.sent),
          r.elapsed_s, rps);
  appendf(o, "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f,\"mean\":%.1f},",
          us(r.latency.percentile(0.50)), us(r.latency.percentile(0.90)),
          us(r.latency.percentile(0.99)), us(r.latency.max()), r.latency.mean() / 1000.0);
  o += "\"statuses\":{";
  bool first = true;
  for (size_t s = 0; s < r.statuses.size(); ++s) {
    if (r.statuses[s] == 0) continue;
    appendf(o, "%s\"%zu\":%llu", first ? "" : ",", s, static_cast<unsigned long long>(r.statuses[s]));
    first = false;
  }
  appendf(o, "},\"ok_2xx\":%llu,\"non_2xx\":%llu,", static_cast<unsigned long long>(r.ok_2xx),
          static_cast<unsigned long long>(r.non_2xx));
  appendf(o, "\"errors\":{\"connect\":%llu,\"io\":%llu,\"parse\":%llu,\"unfinished\":%llu},"
          "\"reconnects\":%llu,",
          static_cast<unsigned long long>(r.connect_errors), static_cast<unsigned long long>(r.io_errors),
          static_cast<unsigned long long>(r.parse_errors), static_cast<unsigned long long>(r.unfinished),
          static_cast<unsigned long long>(r.reconnects));
  appendf(o, "\"cpu_s\":%.3f,\"cpu_user_s\":%.3f,\"cpu_system_s\":%.3f,\"max_rss_kb\":%ld",
          cpu.user_s + cpu.system_s, cpu.user_s, cpu.system_s, cpu.max_rss_kb);
  if (cpu.run_delay_s >= 0) appendf(o, ",\"run_delay_s\":%.3f", cpu.run_delay_s);
  if (!r.trace.empty() || r.trace_dropped != 0)
    appendf(o, ",\"trace\":{\"records\":%zu,\"dropped\":%llu,\"start_mono_ns\":%llu}", r.trace.size(),
            static_cast<unsigned long long>(r.trace_dropped), static_cast<unsigned long long>(r.start_ns));
  if (!r.fatal.empty()) o += ",\"fatal\":\"" + json_escape(r.fatal) + "\"";
  o += "}\n";
  return o;
}

std::string report_table(const RunResult& r, const CpuUsage& cpu) {
  std::string o;
  double rps = r.elapsed_s > 0 ? static_cast<double>(r.completed) / r.elapsed_s : 0.0;
  appendf(o, "requests    %llu in %.2f s = %.0f/s (sent %llu)\n",
          static_cast<unsigned long long>(r.completed), r.elapsed_s, rps,
          static_cast<unsigned long long>(r.sent));
  appendf(o, "latency     p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  mean %.2f ms\n",
          us(r.latency.percentile(0.50)) / 1000, us(r.latency.percentile(0.90)) / 1000,
          us(r.latency.percentile(0.99)) / 1000, us(r.latency.max()) / 1000,
          r.latency.mean() / 1e6);
  o += "statuses   ";
  for (size_t s = 0; s < r.statuses.size(); ++s)
    if (r.statuses[s] != 0) appendf(o, " %zu: %llu", s, static_cast<unsigned long long>(r.statuses[s]));
  appendf(o, "\nnon-2xx     %llu\n", static_cast<unsigned long long>(r.non_2xx));
  appendf(o, "errors      connect %llu, io %llu, parse %llu, unfinished %llu, reconnects %llu\n",
          static_cast<unsigned long long>(r.connect_errors), static_cast<unsigned long long>(r.io_errors),
          static_cast<unsigned long long>(r.parse_errors), static_cast<unsigned long long>(r.unfinished),
          static_cast<unsigned long long>(r.reconnects));
  appendf(o, "loadgen CPU %.2f s (user %.2f, system %.2f), %.0f %% of one core, max RSS %ld kB\n",
          cpu.user_s + cpu.system_s, cpu.user_s, cpu.system_s,
          r.elapsed_s > 0 ? 100.0 * (cpu.user_s + cpu.system_s) / r.elapsed_s : 0.0, cpu.max_rss_kb);
  if (!r.fatal.empty()) o += "FATAL       " + r.fatal + "\n";
  return o;
}

}  // namespace aloha::loadgen
