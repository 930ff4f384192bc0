#include "histogram.h"

#include <bit>
#include <cmath>

namespace aloha::loadgen {

// Layout as in HdrHistogram: values below 2^kSubBucketBits map to themselves; above, a value
// with its top bit at position m keeps its top kSubBucketBits bits, i.e. it lands in bucket
// (m - kSubBucketBits + 1) * kHalf + (value >> (m - kSubBucketBits + 1)), which continues the
// index range of the previous power of two without gaps.
size_t Histogram::index_of(uint64_t value) {
  if (value < (uint64_t{1} << kSubBucketBits)) return static_cast<size_t>(value);
  unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(value));
  unsigned shift = msb - kSubBucketBits + 1;
  return static_cast<size_t>(shift) * kHalf + static_cast<size_t>(value >> shift);
}

uint64_t Histogram::lowest_of(size_t index) {
  if (index < (size_t{1} << kSubBucketBits)) return index;
  size_t shift = index / kHalf - 1;
  uint64_t sub = index - shift * kHalf;  // in [kHalf, 2 * kHalf)
  return sub << shift;
}

uint64_t Histogram::highest_of(size_t index) {
  if (index + 1 >= kBuckets) return UINT64_MAX;
  return lowest_of(index + 1) - 1;
}

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  if (other.count_ == 0) return;
  if (count_ == 0 || other.min_ < min_) min_ = other.min_;
  count_ += other.count_;
  sum_ += other.sum_;
  if (other.max_ > max_) max_ = other.max_;
}

uint64_t Histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  if (q >= 1.0) return max_;
  if (q < 0) q = 0;
  // Rank of the wanted value (1-based), at least 1: p50 of {1,2} is 1, p99 of 100 values the 99th.
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      uint64_t v = highest_of(i);
      return v < max_ ? v : max_;
    }
  }
  return max_;
}

}  // namespace aloha::loadgen
