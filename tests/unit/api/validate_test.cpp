#include "api/validate.h"

#include <doctest/doctest.h>

#include <string>

namespace v = aloha::api::validate;

namespace {
struct Row {
  std::string text;
  bool ok;
};
}  // namespace

TEST_SUITE("validate") {
  TEST_CASE("uuid4: only the canonical lowercase version-4 form is accepted") {
    const Row rows[] = {
        {"6cde5f7a-1f7e-4978-9716-49f69ebfc9fe", true},
        {"00000000-0000-4000-8000-000000000000", true},
        {"ffffffff-ffff-4fff-bfff-ffffffffffff", true},
        {"6cde5f7a-1f7e-4978-a716-49f69ebfc9fe", true},
        {"6cde5f7a-1f7e-4978-b716-49f69ebfc9fe", true},
        {"6CDE5F7A-1F7E-4978-9716-49F69EBFC9FE", false},  // uppercase
        {"6cde5f7a-1f7e-4978-9716-49f69ebfc9fE", false},
        {"6cde5f7a-1f7e-3978-9716-49f69ebfc9fe", false},  // version 3
        {"6cde5f7a-1f7e-4978-c716-49f69ebfc9fe", false},  // variant c
        {"6cde5f7a-1f7e-4978-7716-49f69ebfc9fe", false},  // variant 7
        {"6cde5f7a1f7e497897 1649f69ebfc9fe00", false},
        {"6cde5f7a1f7e4978971649f69ebfc9fe", false},      // unhyphenated
        {"{6cde5f7a-1f7e-4978-9716-49f69ebfc9fe}", false},
        {"6cde5f7a-1f7e-4978-9716-49f69ebfc9f", false},   // 35 chars
        {"6cde5f7a-1f7e-4978-9716-49f69ebfc9fee", false},  // 37 chars
        {"6cde5f7a-1f7e-4978-9716_49f69ebfc9fe", false},
        {"6cde5f7g-1f7e-4978-9716-49f69ebfc9fe", false},
        {"", false},
    };
    for (const auto& r : rows) {
      CAPTURE(r.text);
      CHECK(v::is_canonical_uuid4(r.text) == r.ok);
    }
  }

  TEST_CASE("uuid: 8-4-4-4-12 hex digits of any case and version") {
    const Row rows[] = {
        {"6cde5f7a-1f7e-4978-9716-49f69ebfc9fe", true},
        {"6CDE5F7A-1F7E-1978-C716-49F69EBFC9FE", true},
        {"00000000-0000-0000-0000-000000000000", true},
        {"6cde5f7a1f7e4978971649f69ebfc9fe", false},
        {"6cde5f7a-1f7e-4978-9716-49f69ebfc9f", false},
        {"6cde5f7a-1f7e-4978-9716-49f69ebfc9fg", false},
        {"6CDE5F7A-1F7E-4978-9716-49F69EBFC9FG", false},
        {"6CDE5F7A_1F7E-4978-9716-49F69EBFC9FE", false},
        {"6cde5f7a-1f7e4-978-9716-49f69ebfc9fe", false},
        {" 6cde5f7a-1f7e-4978-9716-49f69ebfc9f", false},
        {"", false},
    };
    for (const auto& r : rows) {
      CAPTURE(r.text);
      CHECK(v::is_uuid(r.text) == r.ok);
      std::string lowered = r.text;
      CHECK(v::lower_uuid_in_place(lowered) == r.ok);
      if (r.ok) CHECK(lowered == v::ascii_lower(r.text));
    }
    CHECK(v::ascii_lower("6CDE5F7A-Ab\xC3\x89") == "6cde5f7a-ab\xC3\x89");
    std::string in_place = "6CDE5F7A-Ab\xC3\x89";
    v::ascii_lower_in_place(in_place);
    CHECK(in_place == "6cde5f7a-ab\xC3\x89");
  }

  TEST_CASE("hostname: path, query and fragment characters are invalid components") {
    CHECK(v::hostname_has_invalid_components("example.com/path"));
    CHECK(v::hostname_has_invalid_components("example.com?"));
    CHECK(v::hostname_has_invalid_components("example.com#"));
    CHECK(v::hostname_has_invalid_components("/"));
    CHECK_FALSE(v::hostname_has_invalid_components("example.com:443"));
    CHECK_FALSE(v::hostname_has_invalid_components(""));
  }

  TEST_CASE("hostname: DNS names, localhost, IPv4 and [IPv6], each with an optional port") {
    const Row rows[] = {
        {"example.com", true},
        {"chat.example.com", true},
        {"Chat.Example.COM", true},
        {"example.com.", true},
        {"example.com:443", true},
        {"example.com.:8080", true},
        {"a.b.c.d.example.co", true},
        {"my-host.example.org", true},
        {"x1.example.io", true},
        {"123.example.com", true},
        {"example.xn--p1ai", true},
        {"example.XN--P1AI", true},
        {"xn--bcher-kva.example", true},
        {std::string(63, 'a') + ".com", true},
        {"example." + std::string(63, 'c'), true},
        {"localhost", true},
        {"LOCALHOST", true},
        {"localhost:9991", true},
        {"127.0.0.1", true},
        {"0.0.0.0", true},
        {"255.255.255.255:65535", true},
        {"10.0.0.1:99999", true},
        {"[::1]", true},
        {"[::1]:443", true},
        {"[2001:db8::1]", true},
        {"[2001:DB8:0:0:0:0:0:1]:8443", true},
        {"[::ffff:192.0.2.1]", true},
        // rejects
        {"", false},
        {"com", false},                       // one label
        {"example", false},
        {"example.c", false},                 // TLD too short
        {"example.c0m", false},               // TLD with a digit
        {"example.123", false},
        {"example.co-m", false},              // TLD with a hyphen
        {"example.xn--", false},              // xn-- with nothing after it
        {"example.xn--ab_c", false},
        {"example." + std::string(64, 'c'), false},
        {std::string(64, 'a') + ".com", false},  // label too long
        {"-example.com", false},
        {"example-.com", false},
        {"exa_mple.com", false},
        {"example..com", false},
        {".example.com", false},
        {"example.com..", false},
        {"example.com:", false},
        {"example.com:123456", false},
        {"example.com:12a", false},
        {"example.com:-1", false},
        {"user@example.com", false},
        {"user:pass@example.com", false},
        {"b\xC3\xBC" "cher.example", false},  // Unicode label
        {"example.com ", false},
        {"localhost.", false},
        {"localhost.localdomain", true},    // an ordinary DNS name
        {"256.0.0.1", false},
        {"01.2.3.4", false},
        {"1.2.3", false},
        {"1.2.3.4.5", false},
        {"1.2.3.", false},
        {"1.2.3.4:", false},
        {"[::1", false},
        {"::1", false},
        {"[]", false},
        {"[::1]:", false},
        {"[::1]x", false},
        {"[fe80::1%eth0]", false},
        {"[1.2.3.4]", false},
        {"[2001:db8::g]", false},
        {"[::1]:1234567", false},
    };
    for (const auto& r : rows) {
      CAPTURE(r.text);
      CHECK(v::is_valid_hostname(r.text) == r.ok);
    }
  }

  TEST_CASE("email: dot-atom local part at a DNS name, at most 320 characters") {
    const Row rows[] = {
        {"admin@example.com", true},
        {"First.Last@Example.COM", true},
        {"a+tag@sub.example.org", true},
        {"!#$%&'*+-/=?^_`{|}~@example.com", true},
        {"x@xn--bcher-kva.example", true},
        {"a.b.c@example.io", true},
        {"", false},
        {"admin", false},
        {"admin@", false},
        {"@example.com", false},
        {".admin@example.com", false},
        {"admin.@example.com", false},
        {"ad..min@example.com", false},
        {"ad min@example.com", false},
        {"\"quoted\"@example.com", false},
        {"a@b@example.com", false},
        {"admin@localhost", false},
        {"admin@example", false},
        {"admin@example.com.", false},
        {"admin@example.com:25", false},
        {"admin@[127.0.0.1]", false},
        {"admin@127.0.0.1", false},
        {"admin@-example.com", false},
        {"admin@example.c", false},
        {"adm\xC3\xADn@example.com", false},
        {"admin@exa mple.com", false},
    };
    for (const auto& r : rows) {
      CAPTURE(r.text);
      CHECK(v::is_valid_email(r.text) == r.ok);
    }
    // Length bound: 320 accepted, 321 refused.
    std::string domain = std::string(63, 'd') + "." + std::string(63, 'd') + "." + std::string(63, 'd') + ".com";
    std::string local320(320 - 1 - domain.size(), 'l');
    CHECK(v::is_valid_email(local320 + "@" + domain));
    CHECK_FALSE(v::is_valid_email(local320 + "l@" + domain));

    CHECK(v::email_domain_lower("Admin@Example.COM") == "example.com");
    CHECK(v::email_domain_lower("no-at-sign") == "");
  }

  TEST_CASE("ios_app_id, even hex and access tokens") {
    CHECK(v::is_ios_app_id("com.zulip.flutter"));
    CHECK(v::is_ios_app_id("org.example-app.Dev9"));
    CHECK(v::is_ios_app_id("."));
    CHECK_FALSE(v::is_ios_app_id(""));
    CHECK_FALSE(v::is_ios_app_id("com.zulip.flutter\n"));
    CHECK_FALSE(v::is_ios_app_id("com zulip"));
    CHECK_FALSE(v::is_ios_app_id("com_zulip"));
    CHECK_FALSE(v::is_ios_app_id("com.zulip/x"));

    CHECK(v::is_even_hex("00"));
    CHECK(v::is_even_hex("aBcD0123456789eF"));
    CHECK_FALSE(v::is_even_hex(""));
    CHECK_FALSE(v::is_even_hex("abc"));
    CHECK_FALSE(v::is_even_hex("zz"));
    CHECK_FALSE(v::is_even_hex("ab cd"));

    CHECK(v::is_access_token("a"));
    CHECK(v::is_access_token("AZaz09_-"));
    CHECK(v::is_access_token(std::string(43, 'x')));
    CHECK(v::is_access_token(std::string(128, 'x')));
    CHECK_FALSE(v::is_access_token(std::string(129, 'x')));
    CHECK_FALSE(v::is_access_token(""));
    CHECK_FALSE(v::is_access_token("a/b"));
    CHECK_FALSE(v::is_access_token("a.b"));
    CHECK_FALSE(v::is_access_token("a=="));
  }
}
