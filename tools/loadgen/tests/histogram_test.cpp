#include <doctest/doctest.h>

#include <random>
#include <vector>
#include <algorithm>

#include "../histogram.h"

using aloha::loadgen::Histogram;

TEST_SUITE("loadgen histogram") {
  TEST_CASE("histogram: bucket bounds are contiguous and contain their values") {
    for (size_t i = 0; i + 1 < Histogram::kBuckets; ++i) {
      REQUIRE(Histogram::lowest_of(i) <= Histogram::highest_of(i));
      REQUIRE(Histogram::highest_of(i) + 1 == Histogram::lowest_of(i + 1));
      REQUIRE(Histogram::index_of(Histogram::lowest_of(i)) == i);
      REQUIRE(Histogram::index_of(Histogram::highest_of(i)) == i);
    }
    CHECK(Histogram::index_of(UINT64_MAX) == Histogram::kBuckets - 1);
    CHECK(Histogram::index_of(0) == 0);
    CHECK(Histogram::index_of(127) == 127);
  }

  TEST_CASE("histogram: a bucket is at most 1/64 of its values wide") {
    for (size_t i = 128; i + 1 < Histogram::kBuckets; i += 37) {
      uint64_t lo = Histogram::lowest_of(i), hi = Histogram::highest_of(i);
      CHECK(static_cast<double>(hi - lo + 1) / static_cast<double>(lo) <= 1.0 / 64 + 1e-12);
    }
  }

  TEST_CASE("histogram: percentiles of 1..10000 are within 1.6 % of the exact ranks") {
    Histogram h;
    for (uint64_t v = 1; v <= 10000; ++v) h.record(v * 1000);
    CHECK(h.count() == 10000);
    CHECK(h.max() == 10'000'000);
    CHECK(h.min() == 1000);
    CHECK(h.mean() == doctest::Approx(5'000'500.0));
    for (double q : {0.5, 0.9, 0.99}) {
      double exact = q * 10000 * 1000;
      double got = static_cast<double>(h.percentile(q));
      CHECK(got >= exact);
      CHECK(got <= exact * (1 + 1.0 / 64));
    }
    CHECK(h.percentile(1.0) == 10'000'000);
  }

  TEST_CASE("histogram: p99 sees a slow tail that p50 does not") {
    Histogram h;
    for (int k = 0; k < 980; ++k) h.record(100);
    for (int k = 0; k < 20; ++k) h.record(50'000);
    CHECK(h.percentile(0.5) == 100);
    CHECK(h.percentile(0.98) == 100);
    CHECK(h.percentile(0.99) >= 50'000);
    CHECK(h.percentile(0.99) <= 50'000);  // capped at max
  }

  TEST_CASE("histogram: merge adds counts, keeps min and max") {
    Histogram a, b;
    a.record(10);
    a.record(20);
    b.record(5);
    b.record(1'000'000);
    a.merge(b);
    CHECK(a.count() == 4);
    CHECK(a.min() == 5);
    CHECK(a.max() == 1'000'000);
    CHECK(a.percentile(0.5) == 10);
    Histogram empty;
    CHECK(empty.percentile(0.5) == 0);
    CHECK(empty.min() == 0);
    a.merge(empty);
    CHECK(a.count() == 4);
  }

  TEST_CASE("histogram: random values agree with a sorted reference") {
    std::mt19937_64 rng(42);
    std::lognormal_distribution<double> dist(13.0, 1.0);  // ~0.5 ms median in ns
    Histogram h;
    std::vector<uint64_t> ref;
    for (int k = 0; k < 20000; ++k) {
      auto v = static_cast<uint64_t>(dist(rng));
      h.record(v);
      ref.push_back(v);
    }
    std::sort(ref.begin(), ref.end());
    for (double q : {0.5, 0.9, 0.99, 0.999}) {
      uint64_t exact = ref[static_cast<size_t>(q * 20000) - 1];
      uint64_t got = h.percentile(q);
      CHECK(got >= exact);
      CHECK(static_cast<double>(got) <= static_cast<double>(exact) * (1 + 1.0 / 64) + 1);
    }
  }
}
