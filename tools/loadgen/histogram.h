// Latency histogram of the load tool, HdrHistogram-style: log-linear buckets (each power of two
// split into 64 sub-buckets, so any recorded value is reported within 1/64 ≈ 1.6 % of its true
// value), a fixed array of counters, no allocation per record. Values are unsigned 64-bit (the
// tool records nanoseconds). Single-threaded; merge() adds another histogram's counts.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace aloha::loadgen {

class Histogram {
 public:
  static constexpr unsigned kSubBucketBits = 7;                        // 128 exact values
  static constexpr uint64_t kHalf = uint64_t{1} << (kSubBucketBits - 1);  // 64 per power of two
  static constexpr size_t kBuckets = (64 - kSubBucketBits + 2) * kHalf;

  void record(uint64_t value) {
    ++counts_[index_of(value)];
    ++count_;
    sum_ += value;
    if (value > max_) max_ = value;
    if (count_ == 1 || value < min_) min_ = value;
  }
  void merge(const Histogram& other);
  void reset() { *this = Histogram(); }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }
  // The smallest bucket upper bound below which at least `q` (0..1) of the values lie, capped at
  // max(); 0 when empty. percentile(1.0) == max().
  uint64_t percentile(double q) const;

  // Bucket arithmetic (public for the tests).
  static size_t index_of(uint64_t value);
  static uint64_t lowest_of(size_t index);   // smallest value that maps to index
  static uint64_t highest_of(size_t index);  // largest value that maps to index

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0, sum_ = 0, max_ = 0, min_ = 0;
};

}  // namespace aloha::loadgen
