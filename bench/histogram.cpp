#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <boost/json.hpp>
#include <cmath>

namespace parley::bench {

namespace json = boost::json;

namespace {
// 2048 linear sub-buckets per power of two: the first bucket holds 0..2047
// exactly, every later one halves the resolution as the magnitude doubles,
// so a value is known to 1/1024 of itself: three significant digits.
constexpr unsigned kSubBits = 11;
constexpr std::uint64_t kSub = 1ull << kSubBits;
constexpr std::uint64_t kHalf = kSub / 2;

std::size_t BucketCount() {
  const unsigned msb = 63 - std::countl_zero(Histogram::kMaxTrackedUs);
  const unsigned shift = msb - (kSubBits - 1);
  return (shift + 2) * kHalf;
}
}  // namespace

Histogram::Histogram() : buckets_(BucketCount(), 0) {}

std::size_t Histogram::IndexOf(std::uint64_t us) {
  if (us < kSub) return us;
  const unsigned msb = 63 - std::countl_zero(us);
  const unsigned shift = msb - (kSubBits - 1);
  return (shift + 1) * kHalf + ((us >> shift) - kHalf);
}

std::uint64_t Histogram::UpperEdge(std::size_t index) {
  if (index < kSub) return index;
  const std::uint64_t shift = index / kHalf - 1;
  const std::uint64_t sub = index % kHalf + kHalf;
  return ((sub + 1) << shift) - 1;
}

void Histogram::RecordUs(std::uint64_t us) {
  const std::size_t i = IndexOf(std::min(us, kMaxTrackedUs));
  ++buckets_[i];
  if (count_ == 0 || us < min_) min_ = us;
  max_ = std::max(max_, us);
  sum_ += us;
  ++count_;
}

void Histogram::Record(std::chrono::nanoseconds d) {
  RecordUs(d.count() <= 0 ? 0 : static_cast<std::uint64_t>(d.count()) / 1000);
}

void Histogram::Merge(const Histogram& o) {
  if (o.count_ == 0) return;
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
  if (count_ == 0 || o.min_ < min_) min_ = o.min_;
  max_ = std::max(max_, o.max_);
  sum_ += o.sum_;
  count_ += o.count_;
}

void Histogram::Clear() {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = min_ = max_ = sum_ = 0;
}

std::uint64_t Histogram::PercentileUs(double q) const {
  if (count_ == 0) return 0;
  const auto want = static_cast<std::uint64_t>(
      std::max(1.0, std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= want) return std::min(UpperEdge(i), max_);
  }
  return max_;
}

json::value Histogram::ToJson() const {
  json::object o;
  o["n"] = count_;
  o["min"] = min_us();
  o["max"] = max_;
  o["sum"] = sum_;
  json::array b;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    if (buckets_[i] == 0) continue;
    b.push_back(i);
    b.push_back(buckets_[i]);
  }
  o["b"] = std::move(b);
  return o;
}

bool Histogram::MergeJson(const json::value& v) {
  const auto* o = v.if_object();
  if (o == nullptr) return false;
  const auto* b = o->if_contains("b");
  if (b == nullptr || !b->is_array() || b->as_array().size() % 2 != 0) return false;
  Histogram h;
  try {
    const auto& arr = b->as_array();
    for (std::size_t i = 0; i < arr.size(); i += 2) {
      const auto idx = arr[i].to_number<std::uint64_t>();
      if (idx >= h.buckets_.size()) return false;
      h.buckets_[idx] += arr[i + 1].to_number<std::uint64_t>();
    }
    h.count_ = o->at("n").to_number<std::uint64_t>();
    h.min_ = o->at("min").to_number<std::uint64_t>();
    h.max_ = o->at("max").to_number<std::uint64_t>();
    h.sum_ = o->at("sum").to_number<std::uint64_t>();
  } catch (const std::exception&) {
    return false;
  }
  Merge(h);
  return true;
}

json::object Histogram::Summary() const {
  auto ms = [](std::uint64_t us) { return static_cast<double>(us) / 1000.0; };
  json::object o;
  o["count"] = count_;
  o["mean_ms"] = std::round(mean_us()) / 1000.0;
  o["p50_ms"] = ms(PercentileUs(0.50));
  o["p90_ms"] = ms(PercentileUs(0.90));
  o["p99_ms"] = ms(PercentileUs(0.99));
  o["p999_ms"] = ms(PercentileUs(0.999));
  o["max_ms"] = ms(max_);
  return o;
}

}  // namespace parley::bench
