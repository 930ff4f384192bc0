// Request templates of the load tool: literal text with `${...}` placeholders that are filled per
// request from a few integer variables, so one command line can register a million distinct
// tokens or spread notifications over users. A Template is compiled once (throws TemplateError on
// bad syntax) and rendered many times; render() appends to a caller-owned buffer and allocates
// nothing once that buffer has grown to its steady size.
//
// Placeholder syntax (`$$` is a literal `$`):
//   ${EXPR}              decimal value of EXPR
//   ${hexW:EXPR}         lowercase hex, zero-padded to W digits (1..128); ${hex:EXPR} unpadded
//   ${pick:EXPR:a|b|c}   the (EXPR mod 3)-th item (items are literal text without `|` or `}`)
// EXPR: operands `n` (this template's request counter), `i` (the global request counter), `c`
// (connection index) or a decimal literal, joined by + - * / %, evaluated strictly left to right
// in unsigned 64-bit arithmetic (no precedence, no parentheses): `n/5%1000+1` = ((n/5)%1000)+1.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace aloha::loadgen {

class TemplateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The per-request variables a placeholder can read.
struct TemplateVars {
  uint64_t n = 0;  // counter of the request kind this template belongs to
  uint64_t i = 0;  // global request counter (all kinds)
  uint64_t c = 0;  // connection index
};

class Template {
 public:
  Template() = default;
  // Compiles `text`; throws TemplateError naming the offset and the problem.
  explicit Template(std::string_view text);

  // Appends the rendering to `out`.
  void render(const TemplateVars& vars, std::string& out) const;
  std::string render(const TemplateVars& vars) const {
    std::string s;
    render(vars, s);
    return s;
  }
  bool empty() const { return segments_.empty(); }
  // True when the template has no placeholder (the rendering never changes).
  bool constant() const;

 private:
  enum class Operand : uint8_t { n, i, c, literal };
  enum class Op : uint8_t { add, sub, mul, div, mod };
  struct Term {
    Op op = Op::add;       // how this term combines with the value so far (first: add to 0)
    Operand operand = Operand::literal;
    uint64_t literal = 0;
  };
  enum class Kind : uint8_t { literal, decimal, hex, pick };
  struct Segment {
    Kind kind = Kind::literal;
    std::string text;               // literal text
    std::vector<Term> expr;
    unsigned width = 0;             // hex padding
    std::vector<std::string> items; // pick
  };

  static std::vector<Term> compile_expr(std::string_view expr, size_t offset);
  static uint64_t eval(const std::vector<Term>& expr, const TemplateVars& vars);

  std::vector<Segment> segments_;
};

}  // namespace aloha::loadgen
