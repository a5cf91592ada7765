// SPDX-License-Identifier: Apache-2.0
// The op kernel's half of a call (cc/ops/declared_outputs.h): an answer from
// the call plan, checked against the node's declared outputs and copied into
// TensorFlow tensors, with the messages a user sees when they differ.
#include "cc/ops/declared_outputs.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "cc/core/call_plan.h"
#include "cc/core/codec.h"
#include "cc/ops/tf_tensor_views.h"
#include "tensorflow/core/framework/tensor.h"
#include "tests/cc/fake_transport.h"

namespace tf_graphpipe {
namespace {

namespace tf = ::tensorflow;

constexpr char kUrl[] = "http://127.0.0.1:9/";

// An answer of `tensors`, read through the call plan as the kernel reads it.
class Answered {
 public:
  explicit Answered(const std::vector<tf::Tensor>& tensors) {
    std::vector<TensorView> views(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      EXPECT_TRUE(ViewOfTensor(tensors[i], "t", &views[i]).ok());
    }
    EncodedMessage message;
    EXPECT_TRUE(EncodeInferResponse(views, &message).ok());
    transport_.Answer(200, std::string(reinterpret_cast<const char*>(message.data()),
                                       message.size()));
    auto options = std::make_shared<CallOptions>();
    options->protocol = ProtocolChoice::kGraphPipe;
    call_ = std::make_unique<RemoteCall>(options, kUrl, std::vector<TensorView>{},
                                         Clock::time_point::max(), &cache_);
    EXPECT_TRUE(call_->Run(&transport_).ok());
  }
  const std::vector<TensorView>& outputs() const { return call_->outputs(); }

 private:
  FakeTransport transport_;
  V2InputNames cache_;
  std::unique_ptr<RemoteCall> call_;
};

tf::Tensor Floats(std::vector<float> values, tf::TensorShape shape) {
  tf::Tensor t(tf::DT_FLOAT, shape);
  std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

TEST(DeclaredOutputs, MatchingAnswerIsCopiedIntoTensorsExactly) {
  tf::Tensor words(tf::DT_STRING, tf::TensorShape({2}));
  words.flat<tf::tstring>()(0) = std::string("a\0b", 3);
  words.flat<tf::tstring>()(1) = "";
  Answered answer({Floats({1.5f, -2.0f, 3.25f, 0.0f}, tf::TensorShape({2, 2})), words});
  DeclaredOutputs declared({tf::DT_FLOAT, tf::DT_STRING},
                           {tf::PartialTensorShape({-1, 2}), tf::PartialTensorShape({2})});
  ASSERT_TRUE(declared.Validate(true).ok());
  std::vector<tf::TensorShape> shapes;
  ASSERT_TRUE(declared.Check(kUrl, answer.outputs(), &shapes).ok());
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(shapes[0], tf::TensorShape({2, 2}));

  tf::Tensor floats(tf::DT_FLOAT, shapes[0]);
  CopyViewToTensor(answer.outputs()[0], &floats);
  EXPECT_EQ(floats.flat<float>()(2), 3.25f);
  EXPECT_EQ(floats.flat<float>()(1), -2.0f);
  tf::Tensor strings(tf::DT_STRING, shapes[1]);
  CopyViewToTensor(answer.outputs()[1], &strings);
  EXPECT_EQ(std::string(strings.flat<tf::tstring>()(0)), std::string("a\0b", 3));
  EXPECT_EQ(std::string(strings.flat<tf::tstring>()(1)), "");
}

TEST(DeclaredOutputs, WrongCountSaysExpectedAndGot) {
  Answered answer({Floats({1.0f}, tf::TensorShape({1}))});
  DeclaredOutputs declared({tf::DT_FLOAT, tf::DT_FLOAT}, {});
  std::vector<tf::TensorShape> shapes;
  absl::Status status = declared.Check(kUrl, answer.outputs(), &shapes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), std::string(kUrl) + " returned 1 outputs, expected 2");
}

TEST(DeclaredOutputs, WrongDtypeSaysExpectedAndGot) {
  Answered answer({Floats({1.0f}, tf::TensorShape({1}))});
  DeclaredOutputs declared({tf::DT_INT32}, {});
  std::vector<tf::TensorShape> shapes;
  absl::Status status = declared.Check(kUrl, answer.outputs(), &shapes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("expected dtype int32, got float32"),
            std::string::npos)
      << status.message();
}

TEST(DeclaredOutputs, IncompatibleShapeSaysExpectedAndGot) {
  Answered answer({Floats({1.0f, 2.0f, 3.0f}, tf::TensorShape({3}))});
  DeclaredOutputs declared({tf::DT_FLOAT}, {tf::PartialTensorShape({-1, 3})});
  std::vector<tf::TensorShape> shapes;
  absl::Status status = declared.Check(kUrl, answer.outputs(), &shapes);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("expected shape [?,3], got [3]"),
            std::string::npos)
      << status.message();
}

TEST(DeclaredOutputs, DtypesWithoutAWireTypeAreRefusedAtConstruction) {
  DeclaredOutputs v2_only({tf::DT_BOOL}, {});
  EXPECT_TRUE(v2_only.Validate(false).ok());
  absl::Status graphpipe = v2_only.Validate(true);
  EXPECT_EQ(graphpipe.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(graphpipe.message()).find("has no GraphPipe wire type"),
            std::string::npos);
  DeclaredOutputs complex({tf::DT_COMPLEX64}, {});
  EXPECT_EQ(complex.Validate(false).code(), absl::StatusCode::kInvalidArgument);
  DeclaredOutputs mismatched({tf::DT_FLOAT}, {tf::PartialTensorShape({1}),
                                              tf::PartialTensorShape({2})});
  EXPECT_EQ(mismatched.Validate(false).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tf_graphpipe
