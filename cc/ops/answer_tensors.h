// SPDX-License-Identifier: Apache-2.0
// Output tensors that view a received answer instead of copying it: a
// tensorflow::TensorBuffer over the answer's bytes, which every output of one
// answer shares (the last output to go frees them, on whatever thread), and
// the rule for which outputs may view them.
//
// An output views the answer when all of these hold, else it is copied once
// into a tensor of TensorFlow's allocator:
//   - it is numeric (strings become tstring objects);
//   - its data is aligned to Allocator::kAllocatorAlignment (64 bytes, what
//     allocate_output gives and Eigen's aligned kernels assume: a misaligned
//     tensor would fail Tensor::CheckTypeAndIsAligned). Our server aligns
//     GraphPipe tensor data to 64 bytes, and a v2 answer's first blob is
//     received aligned (HttpRequest::aligned_offset_header); the Go and
//     Python GraphPipe servers align to 4 only, so their answers are copied;
//   - it holds at least kViewMinBytes (a smaller copy costs less than the
//     TensorBuffer, and would pin the whole answer for a few bytes);
//   - it overlaps no other viewed output (a peer may point two tensors at the
//     same bytes; TensorFlow may write an output in place once it is the
//     only user of its buffer);
// and the outputs that qualify hold at least half of the answer's bytes, so
// outputs kept alive (a tf.data prefetch buffer) hold at most twice what
// they need. The host is little-endian, as the wire is.
//
// Thread-safety: ViewableOutputs and TensorOverAnswer are pure; the testing
// hook below is thread-safe.
#ifndef TF_GRAPHPIPE_CC_OPS_ANSWER_TENSORS_H_
#define TF_GRAPHPIPE_CC_OPS_ANSWER_TENSORS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "cc/core/call_plan.h"
#include "cc/core/tensor_view.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace tf_graphpipe {

constexpr size_t kViewMinBytes = size_t{64} << 10;

// One entry per output of `answer`: whether it views the answer's bytes.
std::vector<bool> ViewableOutputs(const std::vector<TensorView>& outputs,
                                  const AnswerBytes& answer);

// What filling `outputs` copies: the bytes of those not `viewed` (for
// strings, their lengths).
size_t BytesToCopy(const std::vector<TensorView>& outputs, const std::vector<bool>& viewed);

// A tensor of `dtype` and `shape` over `view`'s bytes, which `answer` owns;
// the tensor keeps `answer` alive. Only for a view ViewableOutputs accepted.
tensorflow::Tensor TensorOverAnswer(std::shared_ptr<const AnswerBytes> answer,
                                    const TensorView& view, tensorflow::DataType dtype,
                                    const tensorflow::TensorShape& shape);

// Notes, for the testing hook, the answer an op call filled its outputs from.
void NoteFilledOutputs(const AnswerBytes& answer, int64_t viewed, int64_t copied);

}  // namespace tf_graphpipe

// Testing hook, not API (exported from the op library for tests that load it
// with ctypes): the body address range of the last answer an op call filled
// its outputs from, and the outputs viewed and copied by all calls so far.
extern "C" __attribute__((visibility("default"))) void TfGraphPipeTestingLastAnswer(
    uintptr_t* body_begin, uintptr_t* body_end, int64_t* viewed, int64_t* copied);

#endif  // TF_GRAPHPIPE_CC_OPS_ANSWER_TENSORS_H_
