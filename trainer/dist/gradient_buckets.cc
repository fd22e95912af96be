#include "trainer/dist/gradient_buckets.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace qforge {

GradientBuckets::GradientBuckets(ParameterStore& params, Collectives& ranks)
    : params_(params), ranks_(ranks), bucket_of_(params.count(), -1), reported_(params.count()) {
  const int64_t bucket_floats =
      std::max<int64_t>(1, ranks.bucket_bytes() / static_cast<int64_t>(sizeof(float)));
  // Trainable parameters lie in the gradient block in id order, and backward
  // finishes them roughly last to first: cutting from the end puts the last
  // layers in the first bucket to start, and the remainder in the last.
  for (int id = params.count(); id-- > 0;) {
    const ParamInfo& info = params.info(id);
    if (!info.trainable) continue;
    if (buckets_.empty() || buckets_.back().end - buckets_.back().begin >= bucket_floats) {
      buckets_.push_back({info.offset + info.size, info.offset + info.size});
    }
    Bucket& bucket = buckets_.back();
    bucket.begin = info.offset;
    ++bucket.parameters;
    bucket_of_[id] = count() - 1;
  }
  for (Bucket& bucket : buckets_) bucket.waiting = bucket.parameters;
}

void GradientBuckets::Final(int id) {
  if (ranks_.size() == 1) return;
  const int b = id >= 0 && id < params_.count() ? bucket_of_[id] : -1;
  if (b < 0 || reported_[id]) {
    ranks_.Abort(absl::StrCat("the backward pass reported ",
                              b < 0 ? "a tensor that has no gradient" : params_.info(id).name,
                              b < 0 ? "" : " final twice"));
  }
  reported_[id] = true;
  if (--buckets_[b].waiting == 0) Start(buckets_[b]);
  ranks_.Progress();
}

void GradientBuckets::Finish() {
  if (ranks_.size() == 1) return;
  for (Bucket& bucket : buckets_) {
    if (bucket.waiting > 0) Start(bucket);
    bucket.waiting = bucket.parameters;
  }
  std::fill(reported_.begin(), reported_.end(), false);
  ranks_.FinishSums();
}

void GradientBuckets::Start(Bucket& bucket) {
  bucket.waiting = 0;
  ranks_.StartSum(params_.grads().data() + bucket.begin, bucket.end - bucket.begin,
                  "the gradient sum");
}

}  // namespace qforge
