#include "api/validate.h"
#include "core/encoding.h"

#include <arpa/inet.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace aloha::api::validate {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_lower_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

// 8-4-4-4-12 layout with a per-character predicate for the hex positions.
template <typename Pred>
bool uuid_layout(std::string_view s, Pred&& hex) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < 36; ++i) {
    bool dash = (i == 8 || i == 13 || i == 18 || i == 23);
    if (dash ? s[i] != '-' : !hex(s[i])) return false;
  }
  return true;
}

// One non-final DNS label: letters, digits and '-', 1-63 chars, no leading or trailing '-'
// (RFC 1123 §2.1; Django's URLValidator hostname_re).
bool is_label(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  for (char c : l)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

// The final label (TLD): 2-63 letters, or `xn--` followed by letters and digits (an IDNA A-label).
bool is_tld(std::string_view l) {
  if (l.size() < 2 || l.size() > 63) return false;
  if (l.size() > 4 && (l[0] == 'x' || l[0] == 'X') && (l[1] == 'n' || l[1] == 'N') && l[2] == '-' &&
      l[3] == '-') {
    for (char c : l.substr(4))
      if (!is_alnum(c)) return false;
    return true;
  }
  for (char c : l)
    if (!is_alpha(c)) return false;
  return true;
}

// A DNS name of at least two labels, no trailing dot (the callers strip an allowed one).
bool is_dns_name(std::string_view s) {
  std::size_t last_dot = s.rfind('.');
  if (last_dot == std::string_view::npos) return false;
  if (!is_tld(s.substr(last_dot + 1))) return false;
  std::string_view rest = s.substr(0, last_dot);
  while (true) {
    std::size_t dot = rest.find('.');
    if (!is_label(rest.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    rest.remove_prefix(dot + 1);
  }
}

// Dotted quad, each part 0-255 in decimal without leading zeros.
bool is_ipv4(std::string_view s) {
  int parts = 0;
  while (true) {
    std::size_t dot = s.find('.');
    std::string_view p = s.substr(0, dot);
    if (p.empty() || p.size() > 3) return false;
    if (p.size() > 1 && p[0] == '0') return false;
    int v = 0;
    for (char c : p) {
      if (!is_digit(c)) return false;
      v = v * 10 + (c - '0');
    }
    if (v > 255) return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  return parts == 4;
}

bool is_ipv6(std::string_view s) {
  // INET6_ADDRSTRLEN (46) bounds the longest textual form, including embedded IPv4.
  if (s.empty() || s.size() >= 46) return false;
  char buf[46];
  s.copy(buf, s.size());
  buf[s.size()] = '\0';
  unsigned char addr[16];
  return inet_pton(AF_INET6, buf, addr) == 1;
}

// RFC 5322 §3.2.3 atext.
bool is_atext(char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace

bool is_canonical_uuid4(std::string_view s) {
  return uuid_layout(s, is_lower_hex) && s[14] == '4' &&
         (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
}

bool is_uuid(std::string_view s) { return uuid_layout(s, is_hex); }

bool lower_uuid_in_place(std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < 36; ++i) {
    char& c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (c >= 'A' && c <= 'F') {
      c = static_cast<char>(c - 'A' + 'a');
    } else if (!is_digit(c) && !(c >= 'a' && c <= 'f')) {
      return false;
    }
  }
  return true;
}

std::string ascii_lower(std::string_view s) {
  std::string r(s);
  ascii_lower_in_place(r);
  return r;
}

void ascii_lower_in_place(std::string& s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
}

bool hostname_has_invalid_components(std::string_view s) {
  return s.find_first_of("/?#") != std::string_view::npos;
}

bool is_valid_hostname(std::string_view s) {
  // Optional `:port` of 1-5 digits. An IPv6 literal is bracketed, so its colons never end the host.
  std::string_view host = s;
  std::size_t colon = s.rfind(':');
  std::size_t bracket = s.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port)
      if (!is_digit(c)) return false;
    host = s.substr(0, colon);
  }
  if (host.empty()) return false;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    return is_ipv6(host.substr(1, host.size() - 2));
  }
  if (enc::ascii_iequals(host, "localhost")) return true;
  if (is_ipv4(host)) return true;
  if (host.back() == '.') host.remove_suffix(1);  // fully qualified form
  return is_dns_name(host);
}

bool is_valid_email(std::string_view s) {
  if (s.size() > 320) return false;
  std::size_t at = s.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view local = s.substr(0, at);
  std::string_view domain = s.substr(at + 1);
  // dot-atom = 1*atext *("." 1*atext): no leading, trailing or doubled dot (RFC 5322 §3.2.3).
  if (local.empty() || local.front() == '.' || local.back() == '.') return false;
  char prev = '\0';
  for (char c : local) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!is_atext(c)) {
      return false;
    }
    prev = c;
  }
  return is_dns_name(domain);
}

std::string email_domain_lower(std::string_view s) {
  std::size_t at = s.rfind('@');
  if (at == std::string_view::npos) return {};
  return ascii_lower(s.substr(at + 1));
}

bool is_ios_app_id(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '.' && c != '-') return false;
  return true;
}

bool is_even_hex(std::string_view s) {
  if (s.empty() || s.size() % 2 != 0) return false;
  for (char c : s)
    if (!is_hex(c)) return false;
  return true;
}

bool is_access_token(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '_' && c != '-') return false;
  return true;
}

}  // namespace aloha::api::validate
