#include <doctest/doctest.h>

#include "../template.h"

using aloha::loadgen::Template;
using aloha::loadgen::TemplateError;
using aloha::loadgen::TemplateVars;

TEST_SUITE("loadgen template") {
  TEST_CASE("template: text without placeholders renders verbatim, $$ is a dollar") {
    Template t("{\"a\":1,\"b\":\"$$x\"} $y");
    CHECK(t.constant());
    CHECK(t.render({}) == "{\"a\":1,\"b\":\"$x\"} $y");
  }

  TEST_CASE("template: ${n} ${i} ${c} render the request variables in decimal") {
    Template t("n=${n}&i=${i}&c=${c}");
    TemplateVars v;
    v.n = 7;
    v.i = 1234567890123ull;
    v.c = 0;
    CHECK_FALSE(t.constant());
    CHECK(t.render(v) == "n=7&i=1234567890123&c=0");
  }

  TEST_CASE("template: expressions evaluate left to right without precedence") {
    TemplateVars v;
    v.n = 12;
    CHECK(Template("${n/5%1000+1}").render(v) == "3");   // ((12/5)%1000)+1
    CHECK(Template("${n+1*2}").render(v) == "26");       // (12+1)*2, not 14
    CHECK(Template("${ n - 2 }").render(v) == "10");
    CHECK(Template("${n*7919%1000}").render(v) == std::to_string(12 * 7919 % 1000));
    v.c = 0;
    CHECK(Template("${n%c}").render(v) == "0");  // a variable divisor of 0 gives 0
  }

  TEST_CASE("template: hexW pads to W lowercase digits, so a token is 64 hex chars") {
    TemplateVars v;
    v.n = 255;
    CHECK(Template("${hex4:n}").render(v) == "00ff");
    CHECK(Template("${hex:n}").render(v) == "ff");
    std::string token = Template("a${hex63:n}").render(v);
    CHECK(token.size() == 64);
    CHECK(token.substr(0, 1) == "a");
    CHECK(token.substr(61) == "0ff");
    v.n = 0xdeadbeefcafef00dull;
    CHECK(Template("${hex2:n}").render(v) == "deadbeefcafef00d");  // wider than W: not cut
  }

  TEST_CASE("template: pick cycles through its items") {
    Template t("${pick:n%5:1|1|1|2|2}");
    std::string all;
    for (uint64_t n = 0; n < 7; ++n) {
      TemplateVars v;
      v.n = n;
      all += t.render(v);
    }
    CHECK(all == "1112211");
    TemplateVars v;
    v.n = 4;
    CHECK(Template("[${pick:n:a||b}]").render(v) == "[]");  // 4 % 3 = 1, the empty item
  }

  TEST_CASE("template: render appends and reuses the caller's buffer") {
    Template t("x${n}");
    std::string out = "pre-";
    TemplateVars v;
    v.n = 9;
    t.render(v, out);
    CHECK(out == "pre-x9");
  }

  TEST_CASE("template: syntax errors are reported with their offset") {
    CHECK_THROWS_AS(Template("${n"), TemplateError);
    CHECK_THROWS_AS(Template("${q}"), TemplateError);
    CHECK_THROWS_AS(Template("${n+}"), TemplateError);
    CHECK_THROWS_AS(Template("${n/0}"), TemplateError);
    CHECK_THROWS_AS(Template("${n^2}"), TemplateError);
    CHECK_THROWS_AS(Template("${hex0:n}"), TemplateError);
    CHECK_THROWS_AS(Template("${hex200:n}"), TemplateError);
    CHECK_THROWS_AS(Template("${pick:n}"), TemplateError);
    CHECK_THROWS_AS(Template("${99999999999999999999}"), TemplateError);
    try {
      Template("ab${x}");
      FAIL("no throw");
    } catch (const TemplateError& e) {
      CHECK(std::string(e.what()).find("offset 4") != std::string::npos);
    }
  }
}
