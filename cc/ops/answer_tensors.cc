// SPDX-License-Identifier: Apache-2.0
#include "cc/ops/answer_tensors.h"

#include <algorithm>
#include <mutex>
#include <string_view>
#include <utility>

#include "tensorflow/core/framework/allocation_description.pb.h"
#include "tensorflow/core/framework/allocator.h"

namespace tf_graphpipe {
namespace {

namespace tf = ::tensorflow;

constexpr size_t kAlignment = tf::Allocator::kAllocatorAlignment;
static_assert(EIGEN_MAX_ALIGN_BYTES <= kAlignment,
              "a viewed output must satisfy Tensor::IsAligned()");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "wire bytes are little-endian and are used as they are");

// One output's bytes inside an answer. The answer (shared by all outputs of
// one call) frees its buffers when the last output is gone.
class AnswerTensorBuffer : public tf::TensorBuffer {
 public:
  AnswerTensorBuffer(std::shared_ptr<const AnswerBytes> answer, const uint8_t* data, size_t size)
      // TensorBuffer holds a mutable pointer: TensorFlow may write an output
      // in place once nothing else uses it. The bytes are this output's
      // alone (ViewableOutputs refuses overlaps) and nothing reads the
      // answer after the outputs are filled.
      : TensorBuffer(const_cast<uint8_t*>(data)), answer_(std::move(answer)), size_(size) {}

  size_t size() const override { return size_; }
  TensorBuffer* root_buffer() override { return this; }
  void FillAllocationDescription(tf::AllocationDescription* proto) const override {
    proto->set_requested_bytes(static_cast<int64_t>(size_));
    proto->set_allocator_name("graphpipe_answer");
    proto->set_ptr(reinterpret_cast<uintptr_t>(data()));
  }

 private:
  const std::shared_ptr<const AnswerBytes> answer_;
  const size_t size_;
};

size_t AnswerSize(const AnswerBytes& answer) {
  size_t total = answer.body.size();
  for (const ByteBuffer& b : answer.storage) total += b.size();
  return total;
}

struct LastAnswer {
  std::mutex mu;
  uintptr_t begin = 0;  // guarded by mu
  uintptr_t end = 0;    // guarded by mu
  int64_t viewed = 0;   // guarded by mu
  int64_t copied = 0;   // guarded by mu
};

LastAnswer& Last() {
  static LastAnswer* last = new LastAnswer();
  return *last;
}

}  // namespace

std::vector<bool> ViewableOutputs(const std::vector<TensorView>& outputs,
                                  const AnswerBytes& answer) {
  std::vector<bool> viewable(outputs.size(), false);
  std::vector<size_t> candidates;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const TensorView& v = outputs[i];
    if (v.type == DType::kString || v.nbytes < kViewMinBytes) continue;
    if (reinterpret_cast<uintptr_t>(v.data) % kAlignment != 0) continue;
    candidates.push_back(i);
  }
  std::sort(candidates.begin(), candidates.end(),
            [&outputs](size_t a, size_t b) { return outputs[a].data < outputs[b].data; });
  size_t viewed_bytes = 0;
  for (size_t k = 0; k < candidates.size(); ++k) {
    const TensorView& v = outputs[candidates[k]];
    const bool overlaps_previous =
        k > 0 && outputs[candidates[k - 1]].data + outputs[candidates[k - 1]].nbytes > v.data;
    const bool overlaps_next = k + 1 < candidates.size() &&
                               v.data + v.nbytes > outputs[candidates[k + 1]].data;
    if (overlaps_previous || overlaps_next) continue;
    viewable[candidates[k]] = true;
    viewed_bytes += v.nbytes;
  }
  if (viewed_bytes * 2 < AnswerSize(answer)) viewable.assign(outputs.size(), false);
  return viewable;
}

size_t BytesToCopy(const std::vector<TensorView>& outputs, const std::vector<bool>& viewed) {
  size_t bytes = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (viewed[i]) continue;
    bytes += outputs[i].nbytes;
    for (std::string_view s : outputs[i].strings) bytes += s.size();
  }
  return bytes;
}

tf::Tensor TensorOverAnswer(std::shared_ptr<const AnswerBytes> answer, const TensorView& view,
                            tf::DataType dtype, const tf::TensorShape& shape) {
  tf::core::RefCountPtr<tf::TensorBuffer> buffer(
      new AnswerTensorBuffer(std::move(answer), view.data, view.nbytes));
  return tf::Tensor(dtype, shape, std::move(buffer));
}

void NoteFilledOutputs(const AnswerBytes& answer, int64_t viewed, int64_t copied) {
  LastAnswer& last = Last();
  std::lock_guard<std::mutex> lock(last.mu);
  last.begin = reinterpret_cast<uintptr_t>(answer.body.data());
  last.end = last.begin + answer.body.size();
  last.viewed += viewed;
  last.copied += copied;
}

}  // namespace tf_graphpipe

void TfGraphPipeTestingLastAnswer(uintptr_t* body_begin, uintptr_t* body_end, int64_t* viewed,
                                  int64_t* copied) {
  tf_graphpipe::LastAnswer& last = tf_graphpipe::Last();
  std::lock_guard<std::mutex> lock(last.mu);
  *body_begin = last.begin;
  *body_end = last.end;
  *viewed = last.viewed;
  *copied = last.copied;
}
