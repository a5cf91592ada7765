// SPDX-License-Identifier: Apache-2.0
// The GraphPipeCall kernel itself, built from its NodeDef by TensorFlow's
// kernel registry and run on a CPU device, with its HTTP transport given
// through the constructor seam: attrs become the call plan's options, inputs
// are sent, answers fill the outputs, and failures set the right status.
#include "cc/ops/graphpipe_kernel.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "tensorflow/core/framework/cancellation.h"
#include "cc/core/codec.h"
#include "cc/ops/answer_tensors.h"
#include "cc/ops/endpoint.h"
#include "cc/ops/tf_tensor_views.h"
#include "tensorflow/core/common_runtime/device_factory.h"
#include "tensorflow/core/framework/allocator.h"
#include "tensorflow/core/framework/device.h"
#include "tensorflow/core/framework/node_def_builder.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/public/session_options.h"
#include "tensorflow/core/public/version.h"
#include "tests/cc/fake_transport.h"

namespace tf_graphpipe {
namespace {

namespace tf = ::tensorflow;
using Json = nlohmann::json;

FakeTransport* scripted = nullptr;  // the transport of the test running now

// The kernel as registered, but sending through the test's transport. Nodes
// pick it with the `_kernel` label.
class ScriptedCallOp : public GraphPipeCallOp {
 public:
  explicit ScriptedCallOp(tf::OpKernelConstruction* ctx) : GraphPipeCallOp(ctx, scripted) {}
};
REGISTER_KERNEL_BUILDER(Name("GraphPipeCall").Device(tf::DEVICE_CPU).Label("scripted"),
                        ScriptedCallOp);
REGISTER_KERNEL_BUILDER(Name("GraphPipeCallWithStatus").Device(tf::DEVICE_CPU).Label("scripted"),
                        ScriptedCallOp);

std::string GraphPipeAnswer(const std::vector<float>& values) {
  TensorView view;
  view.type = DType::kFloat32;
  view.shape = {static_cast<int64_t>(values.size())};
  view.data = reinterpret_cast<const uint8_t*>(values.data());
  view.nbytes = values.size() * sizeof(float);
  EncodedMessage message;
  EXPECT_TRUE(EncodeInferResponse({view}, &message).ok());
  return std::string(reinterpret_cast<const char*>(message.data()), message.size());
}

struct Node {
  std::string op = "GraphPipeCall";
  std::string protocol = "graphpipe";
  std::vector<tf::PartialTensorShape> output_shapes;
  std::vector<std::string> input_names;
  float timeout_seconds = 10.0f;
};

class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scripted = &transport_;
    device_ = tf::DeviceFactory::NewDevice("CPU", tf::SessionOptions(),
                                           "/job:a/replica:0/task:0");
    ASSERT_NE(device_, nullptr);
  }
  void TearDown() override { scripted = nullptr; }

  // Builds the kernel for `node`; the construction status.
  absl::Status Build(const Node& node) {
    tf::NodeDef def;
    TF_RETURN_IF_ERROR(
        tf::NodeDefBuilder("call", node.op)
            .Input(tf::NodeDefBuilder::NodeOut("endpoint", 0, tf::DT_RESOURCE))
            .Input(std::vector<tf::NodeDefBuilder::NodeOut>{{"x", 0, tf::DT_FLOAT}})
            .Attr("Tout", tf::DataTypeVector{tf::DT_FLOAT})
            .Attr("output_shapes", node.output_shapes)
            .Attr("input_names", node.input_names)
            .Attr("timeout_seconds", node.timeout_seconds)
            .Attr("retries", 0)
            .Attr("protocol", node.protocol)
            .Attr("_kernel", "scripted")
            .Finalize(&def));
    absl::Status status;
    kernel_ = tf::CreateOpKernel(tf::DeviceType(tf::DEVICE_CPU), device_.get(), tf::cpu_allocator(), def,
                                 TF_GRAPH_DEF_VERSION, &status);
    return status;
  }

  // Runs the kernel once on `url` and `x`; its status, and its output in `out`.
  absl::Status Run(const std::string& url, const std::vector<float>& x, tf::Tensor* out) {
    std::vector<tf::Tensor> outputs;
    absl::Status status = RunAll(url, x, &outputs);
    if (status.ok()) *out = outputs[0];
    return status;
  }

  // Runs the kernel once; its status, and every output when it succeeded.
  absl::Status RunAll(const std::string& url, const std::vector<float>& x,
                      std::vector<tf::Tensor>* outputs) {
    tf::Tensor endpoint(tf::DT_RESOURCE, tf::TensorShape({}));
    endpoint.scalar<tf::ResourceHandle>()() = MakeEndpointHandle(device_->name(), url);
    tf::Tensor input(tf::DT_FLOAT, tf::TensorShape({static_cast<int64_t>(x.size())}));
    std::memcpy(input.data(), x.data(), x.size() * sizeof(float));
    std::vector<tf::TensorValue> inputs = {tf::TensorValue(&endpoint), tf::TensorValue(&input)};
    const int num_outputs = kernel_->num_outputs();
    std::vector<tf::AllocatorAttributes> output_attrs(num_outputs);
    tf::OpKernelContext::Params params;
    params.device = device_.get();
    params.op_kernel = kernel_.get();
    params.inputs = inputs;
    params.output_attr_array = output_attrs.data();
    params.cancellation_manager = cancellation_;
    tf::OpKernelContext ctx(&params, num_outputs);
    absl::Notification finished;
    kernel_->AsAsync()->ComputeAsync(&ctx, [&finished] { finished.Notify(); });
    if (while_running_) while_running_();
    if (!finished.WaitForNotificationWithTimeout(absl::Seconds(30))) {
      ADD_FAILURE() << "the kernel never called done()";
      std::abort();  // ctx is about to go while the kernel may still use it
    }
    if (ctx.status().ok()) {
      for (int i = 0; i < num_outputs; ++i) outputs->push_back(*ctx.mutable_output(i));
    }
    return ctx.status();
  }

  // The step's cancellation manager (none when null), and what runs while a
  // call is in flight, after ComputeAsync returned.
  tf::CancellationManager* cancellation_ = nullptr;
  std::function<void()> while_running_;
  FakeTransport transport_;
  std::unique_ptr<tf::Device> device_;
  std::unique_ptr<tf::OpKernel> kernel_;
};

TEST_F(KernelTest, GraphPipeCallSendsItsInputAndFillsItsOutput) {
  ASSERT_TRUE(Build(Node{}).ok());
  transport_.Answer(200, GraphPipeAnswer({3.0f, 4.0f, 5.0f}));
  tf::Tensor out;
  ASSERT_TRUE(Run("http://127.0.0.1:9/", {1.0f, 2.0f}, &out).ok());
  ASSERT_EQ(out.NumElements(), 3);
  EXPECT_EQ(out.flat<float>()(2), 5.0f);
  const std::vector<FakeTransport::Sent> sent = transport_.sent();
  ASSERT_EQ(sent.size(), 1u);
  RequestView request;
  ASSERT_TRUE(DecodeRequest(reinterpret_cast<const uint8_t*>(sent[0].body.data()),
                            sent[0].body.size(), &request)
                  .ok());
  ASSERT_EQ(request.inputs.size(), 1u);
  float sent_values[2];
  std::memcpy(sent_values, request.inputs[0].data, sizeof(sent_values));
  EXPECT_EQ(sent_values[1], 2.0f);
}

TEST_F(KernelTest, TimeoutAttrIsTheDeadlineOfEveryRequestOfTheCall) {
  Node node;
  node.protocol = "auto";
  node.timeout_seconds = 20.0f;
  ASSERT_TRUE(Build(node).ok());
  transport_.Answer(200, Json({{"name", "m"},
                               {"inputs", {{{"name", "x"}, {"datatype", "FP32"},
                                            {"shape", {-1}}}}},
                               {"outputs", Json::array()}})
                             .dump());
  transport_.Answer(200, Json({{"outputs", {{{"name", "y"}, {"datatype", "FP32"},
                                             {"shape", {1}}, {"data", {7.0}}}}}})
                             .dump());
  const Clock::time_point before = Clock::now();
  tf::Tensor out;
  ASSERT_TRUE(Run("http://127.0.0.1:9/v2/models/m", {1.0f}, &out).ok());
  EXPECT_EQ(out.flat<float>()(0), 7.0f);
  const std::vector<FakeTransport::Sent> sent = transport_.sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_FALSE(sent[0].post);  // the metadata, for the input names
  EXPECT_EQ(sent[0].deadline, sent[1].deadline);
  EXPECT_GE(sent[0].deadline, before + std::chrono::seconds(20));
  EXPECT_LE(sent[0].deadline, Clock::now() + std::chrono::seconds(20));
}

TEST_F(KernelTest, AnswerOfAnotherShapeIsInvalidArgument) {
  Node node;
  node.output_shapes = {tf::PartialTensorShape({2})};
  ASSERT_TRUE(Build(node).ok());
  transport_.Answer(200, GraphPipeAnswer({3.0f, 4.0f, 5.0f}));
  tf::Tensor out;
  absl::Status status = Run("http://127.0.0.1:9/", {1.0f}, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("expected shape [2], got [3]"), std::string::npos)
      << status.message();
}

TEST_F(KernelTest, TransportFailureKeepsItsCode) {
  ASSERT_TRUE(Build(Node{}).ok());
  transport_.Answer(0, "", {}, Status(Code::kUnavailable, "cannot reach it"));
  tf::Tensor out;
  absl::Status status = Run("http://127.0.0.1:9/", {1.0f}, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(status.message()).find("cannot reach it"), std::string::npos);
}

TEST_F(KernelTest, UnknownProtocolAttrFailsConstruction) {
  Node node;
  node.protocol = "grpc";
  absl::Status status = Build(node);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("unsupported protocol 'grpc'"), std::string::npos);
}

TEST_F(KernelTest, V2OnlyProtocolRefusesAGraphPipeUrlWithoutSending) {
  Node node;
  node.protocol = "v2";
  ASSERT_TRUE(Build(node).ok());
  tf::Tensor out;
  absl::Status status = Run("http://127.0.0.1:9/", {1.0f}, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(transport_.sent().empty());
}

// ---- outputs that view the answer (answer_tensors.h) ----

struct LastAnswer {
  uintptr_t begin = 0, end = 0;
  int64_t viewed = 0, copied = 0;
};

LastAnswer ReadLastAnswer() {
  LastAnswer last;
  TfGraphPipeTestingLastAnswer(&last.begin, &last.end, &last.viewed, &last.copied);
  return last;
}

bool Inside(const tf::Tensor& t, const LastAnswer& last) {
  const auto address = reinterpret_cast<uintptr_t>(t.tensor_data().data());
  return address >= last.begin && address + t.TotalBytes() <= last.end;
}

std::vector<float> Ramp(size_t n, float start) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = start + static_cast<float>(i);
  return values;
}

// A v2 binary answer of one FP32 output whose blob follows a JSON header of
// `header_mod_64` bytes modulo 64 (padded with spaces, which JSON allows).
std::string V2BinaryAnswer(const std::vector<float>& values, size_t header_mod_64,
                           std::vector<std::pair<std::string, std::string>>* headers) {
  const size_t nbytes = values.size() * sizeof(float);
  std::string header = Json({{"outputs", {{{"name", "y"}, {"datatype", "FP32"},
                                           {"shape", {values.size()}},
                                           {"parameters", {{"binary_data_size", nbytes}}}}}}})
                           .dump();
  while (header.size() % 64 != header_mod_64) header += ' ';
  headers->push_back({"inference-header-content-length", std::to_string(header.size())});
  return header + std::string(reinterpret_cast<const char*>(values.data()), nbytes);
}

TEST_F(KernelTest, LargeAlignedAnswerIsViewedAndOutlivesTheCallAndLaterCalls) {
  ASSERT_TRUE(Build(Node{}).ok());
  const std::vector<float> first = Ramp(kViewMinBytes / sizeof(float) * 2, 1.0f);
  transport_.Answer(200, GraphPipeAnswer(first));
  tf::Tensor kept;
  ASSERT_TRUE(Run("http://127.0.0.1:9/", {1.0f}, &kept).ok());
  const LastAnswer after_first = ReadLastAnswer();
  EXPECT_TRUE(Inside(kept, after_first));
  EXPECT_TRUE(kept.IsAligned());

  transport_.Answer(200, GraphPipeAnswer(Ramp(first.size(), -5.0f)));
  tf::Tensor second;
  ASSERT_TRUE(Run("http://127.0.0.1:9/", {1.0f}, &second).ok());
  EXPECT_EQ(ReadLastAnswer().viewed, after_first.viewed + 1);
  kernel_.reset();  // the kernel and every call object are gone
  ASSERT_EQ(kept.NumElements(), static_cast<int64_t>(first.size()));
  EXPECT_EQ(std::memcmp(kept.tensor_data().data(), first.data(), kept.TotalBytes()), 0);
  EXPECT_EQ(second.flat<float>()(3), -2.0f);
}

TEST_F(KernelTest, MisalignedAnswerIsCopiedExactly) {
  Node node;
  node.protocol = "v2";
  node.input_names = {"x"};
  ASSERT_TRUE(Build(node).ok());
  const std::vector<float> values = Ramp(kViewMinBytes / sizeof(float) * 2, 0.5f);
  std::vector<std::pair<std::string, std::string>> headers;
  // The scripted transport places the body at an aligned address, so the
  // blob sits 4 bytes past a 64-byte boundary.
  std::string body = V2BinaryAnswer(values, 4, &headers);
  transport_.Answer(200, std::move(body), headers);
  const LastAnswer before = ReadLastAnswer();
  tf::Tensor out;
  ASSERT_TRUE(Run("http://127.0.0.1:9/v2/models/m", {1.0f}, &out).ok());
  const LastAnswer after = ReadLastAnswer();
  EXPECT_FALSE(Inside(out, after));
  EXPECT_EQ(after.copied, before.copied + 1);
  EXPECT_TRUE(out.IsAligned());
  ASSERT_EQ(out.NumElements(), static_cast<int64_t>(values.size()));
  EXPECT_EQ(std::memcmp(out.tensor_data().data(), values.data(), out.TotalBytes()), 0);
}

TEST_F(KernelTest, SmallAnswerIsCopied) {
  ASSERT_TRUE(Build(Node{}).ok());
  transport_.Answer(200, GraphPipeAnswer(Ramp(1000, 2.0f)));
  const LastAnswer before = ReadLastAnswer();
  tf::Tensor out;
  ASSERT_TRUE(Run("http://127.0.0.1:9/", {1.0f}, &out).ok());
  const LastAnswer after = ReadLastAnswer();
  EXPECT_FALSE(Inside(out, after));
  EXPECT_EQ(after.copied, before.copied + 1);
  EXPECT_EQ(out.flat<float>()(999), 1001.0f);
}

TensorView FloatView(const uint8_t* data, size_t nbytes) {
  TensorView view;
  view.type = DType::kFloat32;
  view.shape = {static_cast<int64_t>(nbytes / sizeof(float))};
  view.data = data;
  view.nbytes = nbytes;
  return view;
}

TEST(ViewableOutputs, OverlappingTensorsAreCopiedTheRestViewed) {
  AnswerBytes answer;
  ASSERT_TRUE(answer.body.Resize(5 * kViewMinBytes));
  const uint8_t* base = answer.body.data();
  // Two outputs a peer pointed at overlapping bytes, one apart, one small.
  const std::vector<TensorView> outputs = {
      FloatView(base, kViewMinBytes), FloatView(base + kViewMinBytes / 2, kViewMinBytes),
      FloatView(base + 2 * kViewMinBytes, 3 * kViewMinBytes), FloatView(base + kViewMinBytes, 64)};
  EXPECT_EQ(ViewableOutputs(outputs, answer), (std::vector<bool>{false, false, true, false}));
}

TEST(ViewableOutputs, AnswerMostlyCopiedIsCopiedWhole) {
  // A large output beside larger ones that must be copied: viewing it alone
  // would keep the whole answer alive for a third of it.
  AnswerBytes answer;
  ASSERT_TRUE(answer.body.Resize(6 * kViewMinBytes + 4));
  const uint8_t* base = answer.body.data();
  const std::vector<TensorView> outputs = {FloatView(base, 2 * kViewMinBytes),
                                           FloatView(base + 2 * kViewMinBytes + 4, 4 * kViewMinBytes)};
  EXPECT_EQ(ViewableOutputs(outputs, answer), (std::vector<bool>{false, false}));
}

TEST(ByteBufferAlignAt, ChosenOffsetIsAlignedAndContentsKeptAsItGrows) {
  ByteBuffer body;
  body.AlignAt(5);
  ASSERT_TRUE(body.Append("0123456789", 10));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(body.data() + 5) % ByteBuffer::kAlignment, 0u);
  ASSERT_TRUE(body.Reserve(ByteBuffer::kHugeThreshold + 1));  // reallocates, huge-page aligned
  EXPECT_EQ(reinterpret_cast<uintptr_t>(body.data() + 5) % ByteBuffer::kAlignment, 0u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(body.data()), body.size()), "0123456789");
  ByteBuffer moved = std::move(body);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(moved.data() + 5) % ByteBuffer::kAlignment, 0u);
}

TEST_F(KernelTest, WithStatusReportsAFailedCallAsZerosAndItsStatus) {
  Node node;
  node.op = "GraphPipeCallWithStatus";
  node.output_shapes = {tf::PartialTensorShape({2, -1})};
  ASSERT_TRUE(Build(node).ok());
  transport_.Answer(0, "", {}, Status(Code::kUnavailable, "cannot reach it"));
  std::vector<tf::Tensor> outputs;
  ASSERT_TRUE(RunAll("http://127.0.0.1:9/", {1.0f}, &outputs).ok());
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(outputs[0].shape(), tf::TensorShape({2, 0}));  // unknown dims are 0
  EXPECT_EQ(outputs[1].scalar<int32_t>()(), static_cast<int32_t>(Code::kUnavailable));
  EXPECT_NE(std::string(outputs[2].scalar<tf::tstring>()()).find("cannot reach it"),
            std::string::npos);
}

TEST_F(KernelTest, WithStatusReportsAMismatchedAnswerAsZerosOfTheDeclaredShape) {
  Node node;
  node.op = "GraphPipeCallWithStatus";
  node.output_shapes = {tf::PartialTensorShape({2})};
  ASSERT_TRUE(Build(node).ok());
  transport_.Answer(200, GraphPipeAnswer({3.0f, 4.0f, 5.0f}));
  std::vector<tf::Tensor> outputs;
  ASSERT_TRUE(RunAll("http://127.0.0.1:9/", {1.0f}, &outputs).ok());
  ASSERT_EQ(outputs[0].NumElements(), 2);
  EXPECT_EQ(outputs[0].flat<float>()(0), 0.0f);
  EXPECT_EQ(outputs[0].flat<float>()(1), 0.0f);
  EXPECT_EQ(outputs[1].scalar<int32_t>()(), static_cast<int32_t>(Code::kInvalidArgument));
  EXPECT_NE(std::string(outputs[2].scalar<tf::tstring>()()).find("expected shape [2], got [3]"),
            std::string::npos);
}

TEST_F(KernelTest, WithStatusPassesAGoodAnswerWithCodeZero) {
  Node node;
  node.op = "GraphPipeCallWithStatus";
  ASSERT_TRUE(Build(node).ok());
  transport_.Answer(200, GraphPipeAnswer({3.0f, 4.0f}));
  std::vector<tf::Tensor> outputs;
  ASSERT_TRUE(RunAll("http://127.0.0.1:9/", {1.0f}, &outputs).ok());
  EXPECT_EQ(outputs[0].flat<float>()(1), 4.0f);
  EXPECT_EQ(outputs[1].scalar<int32_t>()(), 0);
  EXPECT_EQ(outputs[2].scalar<tf::tstring>()(), "");
}

// Waits (bounded) until the transport has been handed `count` requests.
bool WaitSent(const FakeTransport& transport, size_t count) {
  for (int i = 0; i < 2000 && transport.sent().size() < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return transport.sent().size() >= count;
}

TEST_F(KernelTest, StepCancellationAbortsTheCallInFlight) {
  ASSERT_TRUE(Build(Node{}).ok());
  transport_.Hang();
  tf::CancellationManager step;
  cancellation_ = &step;
  while_running_ = [this, &step] {
    ASSERT_TRUE(WaitSent(transport_, 1));
    step.StartCancel();
  };
  tf::Tensor out;
  absl::Status status = Run("http://127.0.0.1:9/", {1.0f}, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status.message();
}

TEST_F(KernelTest, WithStatusStillFailsWhenTheStepIsCancelled) {
  Node node;
  node.op = "GraphPipeCallWithStatus";
  ASSERT_TRUE(Build(node).ok());
  transport_.Hang();
  tf::CancellationManager step;
  cancellation_ = &step;
  while_running_ = [this, &step] {
    ASSERT_TRUE(WaitSent(transport_, 1));
    step.StartCancel();
  };
  std::vector<tf::Tensor> outputs;
  EXPECT_EQ(RunAll("http://127.0.0.1:9/", {1.0f}, &outputs).code(), absl::StatusCode::kCancelled);
}

TEST_F(KernelTest, CancelledStepSendsNothing) {
  ASSERT_TRUE(Build(Node{}).ok());
  tf::CancellationManager step;
  step.StartCancel();
  cancellation_ = &step;
  tf::Tensor out;
  absl::Status status = Run("http://127.0.0.1:9/", {1.0f}, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(transport_.sent().empty());
}

}  // namespace
}  // namespace tf_graphpipe
