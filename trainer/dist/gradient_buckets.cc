#include "trainer/dist/gradient_buckets.h"

#include <algorithm>

namespace qforge {

GradientBuckets::GradientBuckets(ParameterStore& params, Collectives& ranks)
    : params_(params), ranks_(ranks), bucket_of_(params.count(), -1) {
  const int64_t bucket_floats =
      std::max<int64_t>(1, ranks.bucket_bytes() / static_cast<int64_t>(sizeof(float)));
  // Trainable parameters lie in the gradient block in id order.
  for (int id = 0; id < params.count(); ++id) {
    const ParamInfo& info = params.info(id);
    if (!info.trainable) continue;
    if (buckets_.empty() || buckets_.back().end - buckets_.back().begin >= bucket_floats) {
      buckets_.push_back({info.offset, info.offset});
    }
    Bucket& bucket = buckets_.back();
    bucket.end = info.offset + info.size;
    ++bucket.parameters;
    bucket_of_[id] = count() - 1;
  }
  for (Bucket& bucket : buckets_) bucket.waiting = bucket.parameters;
}

void GradientBuckets::Final(int id) {
  if (ranks_.size() == 1) return;
  Bucket& bucket = buckets_[bucket_of_[id]];
  if (--bucket.waiting == 0) Start(bucket);
  ranks_.Progress();
}

void GradientBuckets::Finish() {
  for (Bucket& bucket : buckets_) {
    if (bucket.waiting > 0) Start(bucket);
    bucket.waiting = bucket.parameters;
  }
  ranks_.FinishSums();
}

void GradientBuckets::Start(Bucket& bucket) {
  bucket.waiting = 0;
  ranks_.StartSum(params_.grads().data() + bucket.begin, bucket.end - bucket.begin,
                  "the gradient sum");
}

}  // namespace qforge
