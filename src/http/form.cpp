#include "http/form.h"
#include "core/encoding.h"

#include <cstring>

#include <cstdint>

namespace aloha::http {
namespace {

// Bounds on one multipart part's header block: browsers and HTTP libraries send two or three
// short lines (Content-Disposition, Content-Type).
constexpr std::size_t kMaxPartHeaderLines = 32;
constexpr std::size_t kMaxPartHeaderLine = 8192;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// application/x-www-form-urlencoded byte decoding (WHATWG URL §5.1): '+' is a space, %XX a byte.
// Unlike Python's unquote (which keeps a malformed '%' verbatim), a malformed sequence is an error:
// api.md §1 answers undecodable input with "Malformed payload".
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;  // fewer than two characters follow
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return true;
}

// Parses a Content-Disposition-style parameter list starting after the first ';' and calls
// `fn(name, value)` for each parameter. Values may be quoted-strings (RFC 9110 §5.6.4).
template <typename Fn>
void for_each_param(std::string_view v, Fn&& fn) {
  std::size_t semi = v.find(';');
  if (semi == std::string_view::npos) return;
  std::size_t i = semi + 1;
  while (i < v.size()) {
    while (i < v.size() && (is_ows(v[i]) || v[i] == ';')) ++i;
    std::size_t key_start = i;
    while (i < v.size() && v[i] != '=' && v[i] != ';') ++i;
    std::string_view key = trim_ows(v.substr(key_start, i - key_start));
    std::string value;
    if (i < v.size() && v[i] == '=') {
      ++i;
      while (i < v.size() && is_ows(v[i])) ++i;
      if (i < v.size() && v[i] == '"') {
        ++i;
        while (i < v.size() && v[i] != '"') {
          if (v[i] == '\\' && i + 1 < v.size()) ++i;
          value.push_back(v[i]);
          ++i;
        }
        if (i < v.size()) ++i;  // closing quote
        while (i < v.size() && v[i] != ';') ++i;
      } else {
        std::size_t vs = i;
        while (i < v.size() && v[i] != ';') ++i;
        value = std::string(trim_ows(v.substr(vs, i - vs)));
      }
    }
    if (!key.empty()) fn(key, std::move(value));
  }
}

}  // namespace

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path (request bodies are mostly ASCII): eight bytes at a time.
    while (n - i >= 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ULL) != 0) break;
      i += 8;
    }
    if (i == n) break;
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;  // continuation byte, overlong lead C0/C1, or F5..FF
    }
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      unsigned char cc = p[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // RFC 3629 §3: reject overlong forms, UTF-16 surrogates and code points above U+10FFFF.
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
    i += len;
  }
  return true;
}

bool decode_urlencoded(std::string_view in, FormFields& out, std::string& err,
                       std::size_t max_fields) {
  std::size_t count = 0;
  std::string name;
  std::string value;
  while (!in.empty()) {
    std::size_t amp = in.find('&');
    std::string_view seg = in.substr(0, amp);
    in = (amp == std::string_view::npos) ? std::string_view{} : in.substr(amp + 1);
    // Django's limited_parse_qsl: empty segments are skipped, a bare name has an empty value.
    if (seg.empty()) continue;
    if (++count > max_fields) {
      err = "too many fields";
      return false;
    }
    std::size_t eq = seg.find('=');
    std::string_view raw_name = seg.substr(0, eq);
    std::string_view raw_value = (eq == std::string_view::npos) ? std::string_view{} : seg.substr(eq + 1);
    if (!percent_decode(raw_name, name) || !percent_decode(raw_value, value)) {
      err = "invalid percent-encoding";
      return false;
    }
    if (!valid_utf8(name) || !valid_utf8(value)) {
      err = "invalid UTF-8";
      return false;
    }
    out.emplace_back(std::move(name), std::move(value));
    name.clear();
    value.clear();
  }
  return true;
}

bool decode_multipart(std::string_view body, std::string_view boundary, FormFields& out,
                      std::string& err, std::size_t max_parts) {
  // RFC 2046 §5.1.1: boundary is 1-70 characters.
  if (boundary.empty() || boundary.size() > 70) {
    err = "invalid multipart boundary";
    return false;
  }
  const std::string delim = "--" + std::string(boundary);
  const std::string crlf_delim = "\r\n" + delim;

  // The first delimiter may open the body or follow a preamble (which is ignored).
  std::size_t pos;
  if (body.substr(0, delim.size()) == delim) {
    pos = 0;
  } else {
    std::size_t p = body.find(crlf_delim);
    if (p == std::string_view::npos) {
      err = "multipart: no boundary";
      return false;
    }
    pos = p + 2;
  }

  std::size_t parts = 0;
  for (;;) {
    pos += delim.size();
    if (body.substr(pos, 2) == "--") return true;  // close-delimiter; the epilogue is ignored
    while (pos < body.size() && is_ows(body[pos])) ++pos;  // transport padding
    if (body.substr(pos, 2) != "\r\n") {
      err = "multipart: bad delimiter line";
      return false;
    }
    pos += 2;
    if (++parts > max_parts) {
      err = "multipart: too many parts";
      return false;
    }

    // Part headers up to the empty line (RFC 2046 §5.1.1: a part may have no headers).
    bool have_name = false;
    bool form_data = false;
    std::string name;
    for (std::size_t lines = 0;; ++lines) {
      std::size_t eol = body.find("\r\n", pos);
      if (eol == std::string_view::npos || lines > kMaxPartHeaderLines ||
          eol - pos > kMaxPartHeaderLine) {
        err = "multipart: bad part headers";
        return false;
      }
      std::string_view line = body.substr(pos, eol - pos);
      pos = eol + 2;
      if (line.empty()) break;
      std::size_t colon = line.find(':');
      // Obsolete line folding (RFC 9112 §5.2) and lines without a colon are malformed.
      if (colon == std::string_view::npos || colon == 0 || is_ows(line.front())) {
        err = "multipart: bad part headers";
        return false;
      }
      std::string_view hname = trim_ows(line.substr(0, colon));
      std::string_view hvalue = trim_ows(line.substr(colon + 1));
      if (!enc::ascii_iequals(hname, "content-disposition")) continue;
      std::string_view dtype = trim_ows(hvalue.substr(0, hvalue.find(';')));
      form_data = enc::ascii_iequals(dtype, "form-data");
      have_name = false;
      for_each_param(hvalue, [&](std::string_view key, std::string value) {
        if (!have_name && enc::ascii_iequals(key, "name")) {
          have_name = true;
          name = std::move(value);
        }
      });
    }

    std::size_t next = body.find(crlf_delim, pos);
    if (next == std::string_view::npos) {
      err = "multipart: unterminated part";
      return false;
    }
    std::string_view content = body.substr(pos, next - pos);
    pos = next + 2;

    // Django's MultiPartParser skips parts that carry no field name.
    if (!form_data || !have_name) continue;
    if (!valid_utf8(name) || !valid_utf8(content)) {
      err = "invalid UTF-8";
      return false;
    }
    out.emplace_back(std::move(name), std::string(content));
  }
}

std::string media_type(std::string_view content_type) {
  std::string_view t = trim_ows(content_type.substr(0, content_type.find(';')));
  std::string r(t);
  for (char& c : r) c = lower_ascii(c);
  return r;
}

bool header_param(std::string_view header_value, std::string_view name, std::string& value) {
  bool found = false;
  for_each_param(header_value, [&](std::string_view key, std::string v) {
    if (!found && enc::ascii_iequals(key, name)) {
      found = true;
      value = std::move(v);
    }
  });
  return found;
}

bool decode_form_body(const std::string* content_type, std::string_view body, FormFields& out,
                      std::string& err) {
  if (body.empty()) return true;
  if (content_type != nullptr && media_type(*content_type) == "multipart/form-data") {
    std::string boundary;
    if (!header_param(*content_type, "boundary", boundary)) {
      err = "multipart: no boundary parameter";
      return false;
    }
    return decode_multipart(body, boundary, out, err);
  }
  // application/x-www-form-urlencoded, or an absent/other type: try the urlencoded syntax.
  return decode_urlencoded(body, out, err);
}

}  // namespace aloha::http
