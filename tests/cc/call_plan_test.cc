// SPDX-License-Identifier: Apache-2.0
// The call plan (cc/core/call_plan.h) through its transport seam: which
// protocol a URL speaks, the bytes and headers each protocol sends, the v2
// input names read once from metadata within the call's own deadline, and
// on which thread an asynchronous call completes.
#include "cc/core/call_plan.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cc/core/codec.h"
#include "tests/cc/fake_transport.h"

namespace tf_graphpipe {
namespace {

using Json = nlohmann::json;

constexpr char kGraphPipeUrl[] = "http://127.0.0.1:9/";
constexpr char kV2Url[] = "http://127.0.0.1:9/v2/models/adder";
constexpr char kV2MetadataUrl[] = "http://127.0.0.1:9/v2/models/adder";
constexpr char kV2InferUrl[] = "http://127.0.0.1:9/v2/models/adder/infer";

const float kA[] = {1.5f, -2.0f};
const float kB[] = {4.0f, 8.0f};

TensorView Floats(const float* data, int64_t n) {
  TensorView view;
  view.type = DType::kFloat32;
  view.shape = {n};
  view.data = reinterpret_cast<const uint8_t*>(data);
  view.nbytes = static_cast<size_t>(n) * sizeof(float);
  return view;
}

std::string GraphPipeAnswer(const std::vector<float>& values) {
  EncodedMessage message;
  EXPECT_TRUE(EncodeInferResponse({Floats(values.data(), static_cast<int64_t>(values.size()))},
                                  &message)
                  .ok());
  return std::string(reinterpret_cast<const char*>(message.data()), message.size());
}

std::string V2Metadata(const std::vector<std::string>& inputs) {
  Json json = {{"name", "adder"}, {"versions", {"1"}}, {"platform", "test"},
               {"inputs", Json::array()}, {"outputs", Json::array()}};
  for (const std::string& name : inputs) {
    json["inputs"].push_back({{"name", name}, {"datatype", "FP32"}, {"shape", {-1}}});
  }
  json["outputs"].push_back({{"name", "sum"}, {"datatype", "FP32"}, {"shape", {-1}}});
  return json.dump();
}

std::string V2Answer(const std::vector<float>& values) {
  return Json({{"model_name", "adder"},
               {"outputs",
                {{{"name", "sum"}, {"datatype", "FP32"}, {"shape", {values.size()}},
                  {"data", values}}}}})
      .dump();
}

// The JSON header of a v2 request body.
Json V2Header(const FakeTransport::Sent& sent) {
  size_t json_size = sent.body.size();
  for (const std::string& h : sent.extra_headers) {
    const std::string prefix = "Inference-Header-Content-Length: ";
    if (h.rfind(prefix, 0) == 0) json_size = std::stoul(h.substr(prefix.size()));
  }
  return Json::parse(sent.body.substr(0, json_size));
}

std::vector<std::string> InputNames(const Json& header) {
  std::vector<std::string> names;
  for (const Json& input : header["inputs"]) names.push_back(input["name"]);
  return names;
}

std::vector<float> FloatsOf(const TensorView& view) {
  std::vector<float> out(view.nbytes / sizeof(float));
  std::memcpy(out.data(), view.data, view.nbytes);
  return out;
}

std::shared_ptr<CallOptions> Options(ProtocolChoice protocol) {
  auto options = std::make_shared<CallOptions>();
  options->protocol = protocol;
  return options;
}

Clock::time_point InTenSeconds() { return Clock::now() + std::chrono::seconds(10); }

// ---- which protocol ----

TEST(ResolveTarget, AutoSpeaksV2ExactlyForAModelUrl) {
  CallTarget target;
  ASSERT_TRUE(ResolveTarget(kV2Url, ProtocolChoice::kAuto, &target).ok());
  EXPECT_EQ(target.protocol, Protocol::kV2);
  EXPECT_EQ(target.v2.model, "adder");
  EXPECT_EQ(target.v2.infer_url, kV2InferUrl);
  ASSERT_TRUE(ResolveTarget(kGraphPipeUrl, ProtocolChoice::kAuto, &target).ok());
  EXPECT_EQ(target.protocol, Protocol::kGraphPipe);
}

TEST(ResolveTarget, ExplicitChoiceOverridesTheUrl) {
  CallTarget target;
  ASSERT_TRUE(ResolveTarget(kV2Url, ProtocolChoice::kGraphPipe, &target).ok());
  EXPECT_EQ(target.protocol, Protocol::kGraphPipe);
  Status refused = ResolveTarget(kGraphPipeUrl, ProtocolChoice::kV2, &target);
  EXPECT_EQ(refused.code(), Code::kInvalidArgument);
  EXPECT_NE(refused.message().find("a v2 URL names its model"), std::string::npos);
}

TEST(ParseProtocolChoice, RefusesUnknownNames) {
  ProtocolChoice choice;
  EXPECT_TRUE(ParseProtocolChoice("auto", &choice).ok());
  EXPECT_EQ(choice, ProtocolChoice::kAuto);
  Status refused = ParseProtocolChoice("grpc", &choice);
  EXPECT_EQ(refused.code(), Code::kInvalidArgument);
  EXPECT_NE(refused.message().find("'grpc'"), std::string::npos);
}

// ---- GraphPipe ----

TEST(RemoteCall, GraphPipeSendsOneRequestThatDecodesToTheInputs) {
  FakeTransport transport;
  transport.Answer(200, GraphPipeAnswer({5.5f, 6.0f}));
  auto options = Options(ProtocolChoice::kAuto);
  options->input_names = {"a"};
  options->config = "mode=fast";
  V2InputNames cache;
  const Clock::time_point deadline = InTenSeconds();
  RemoteCall call(options, kGraphPipeUrl, {Floats(kA, 2)}, deadline, &cache);
  ASSERT_TRUE(call.Run(&transport).ok());

  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].url, kGraphPipeUrl);
  EXPECT_TRUE(sent[0].post);
  EXPECT_EQ(sent[0].deadline, deadline);
  RequestView request;
  ASSERT_TRUE(DecodeRequest(reinterpret_cast<const uint8_t*>(sent[0].body.data()),
                            sent[0].body.size(), &request)
                  .ok());
  EXPECT_EQ(request.config, "mode=fast");
  ASSERT_EQ(request.input_names.size(), 1u);
  EXPECT_EQ(request.input_names[0], "a");
  ASSERT_EQ(request.inputs.size(), 1u);
  EXPECT_EQ(FloatsOf(request.inputs[0]), std::vector<float>({1.5f, -2.0f}));

  ASSERT_EQ(call.outputs().size(), 1u);
  EXPECT_EQ(FloatsOf(call.outputs()[0]), std::vector<float>({5.5f, 6.0f}));
}

TEST(RemoteCall, OutputsStayValidInTheAnswerBytesTheyAreHandedTo) {
  FakeTransport transport;
  transport.Answer(200, GraphPipeAnswer({7.0f, 9.0f}));
  V2InputNames cache;
  RemoteCall call(Options(ProtocolChoice::kGraphPipe), kGraphPipeUrl, {Floats(kA, 2)},
                  InTenSeconds(), &cache);
  ASSERT_TRUE(call.Run(&transport).ok());
  const uint8_t* before = call.outputs()[0].data;
  AnswerBytes bytes = call.TakeAnswerBytes();
  EXPECT_GE(before, bytes.body.data());
  EXPECT_LT(before, bytes.body.data() + bytes.body.size());
  EXPECT_EQ(FloatsOf(call.outputs()[0]), std::vector<float>({7.0f, 9.0f}));
}

TEST(RemoteCall, ServerRefusalKeepsTheServersText) {
  FakeTransport transport;
  transport.Answer(400, "no such input 'q'");
  V2InputNames cache;
  RemoteCall call(Options(ProtocolChoice::kGraphPipe), kGraphPipeUrl, {Floats(kA, 2)},
                  InTenSeconds(), &cache);
  Status status = call.Run(&transport);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(status.remote().http_status, 400);
  EXPECT_NE(status.message().find("no such input 'q'"), std::string::npos);
}

// ---- v2 ----

TEST(RemoteCall, V2ReadsInputNamesOnceThenSendsThemFromTheCache) {
  FakeTransport transport;
  transport.Answer(200, V2Metadata({"x", "y"}));
  transport.Answer(200, V2Answer({5.5f, 6.0f}));
  transport.Answer(200, V2Answer({1.0f, 2.0f}));
  auto options = Options(ProtocolChoice::kAuto);
  V2InputNames cache;
  for (int i = 0; i < 2; ++i) {
    RemoteCall call(options, kV2Url, {Floats(kA, 2), Floats(kB, 2)}, InTenSeconds(), &cache);
    ASSERT_TRUE(call.Run(&transport).ok()) << "call " << i;
    ASSERT_EQ(call.outputs().size(), 1u);
  }
  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].url, kV2MetadataUrl);
  EXPECT_FALSE(sent[0].post);
  for (int i : {1, 2}) {
    EXPECT_EQ(sent[i].url, kV2InferUrl);
    EXPECT_TRUE(sent[i].post);
    EXPECT_EQ(InputNames(V2Header(sent[i])), std::vector<std::string>({"x", "y"}));
  }
  std::vector<std::string> cached;
  ASSERT_TRUE(cache.Find(kV2MetadataUrl, &cached));
  EXPECT_EQ(cached, std::vector<std::string>({"x", "y"}));
}

TEST(RemoteCall, V2MetadataFetchCountsAgainstTheCallsOwnDeadline) {
  FakeTransport transport;
  transport.Answer(200, V2Metadata({"x"}));
  transport.Answer(200, V2Answer({1.0f}));
  V2InputNames cache;
  const Clock::time_point deadline = InTenSeconds();
  RemoteCall call(Options(ProtocolChoice::kV2), kV2Url, {Floats(kA, 2)}, deadline, &cache);
  ASSERT_TRUE(call.Run(&transport).ok());
  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].deadline, deadline);  // the metadata GET
  EXPECT_EQ(sent[1].deadline, deadline);  // the infer POST: no fresh timeout
}

TEST(RemoteCall, V2GivenNamesSkipTheMetadataAndBinaryTensorsAreFramed) {
  FakeTransport transport;
  transport.Answer(200, V2Answer({1.0f, 2.0f}));
  auto options = Options(ProtocolChoice::kV2);
  options->input_names = {"b", "a"};
  options->output_names = {"sum"};
  V2InputNames cache;
  RemoteCall call(options, kV2Url, {Floats(kB, 2), Floats(kA, 2)}, InTenSeconds(), &cache);
  ASSERT_TRUE(call.Run(&transport).ok());
  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].content_type, "application/octet-stream");
  const Json header = V2Header(sent[0]);
  EXPECT_EQ(InputNames(header), std::vector<std::string>({"b", "a"}));
  EXPECT_EQ(header["outputs"][0]["name"], "sum");
  // Two FP32 blobs of 8 bytes follow the header, in input order.
  ASSERT_EQ(sent[0].body.size(), header.dump().size() + 16u);
  std::vector<float> blobs(4);
  std::memcpy(blobs.data(), sent[0].body.data() + sent[0].body.size() - 16, 16);
  EXPECT_EQ(blobs, std::vector<float>({4.0f, 8.0f, 1.5f, -2.0f}));
  std::vector<std::string> cached;
  EXPECT_FALSE(cache.Find(kV2MetadataUrl, &cached));  // given names are not metadata
}

TEST(RemoteCall, V2InputCountDifferentFromTheModelsIsRefusedBeforeSending) {
  FakeTransport transport;
  transport.Answer(200, V2Metadata({"x", "y"}));
  V2InputNames cache;
  RemoteCall call(Options(ProtocolChoice::kV2), kV2Url, {Floats(kA, 2)}, InTenSeconds(), &cache);
  Status status = call.Run(&transport);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_FALSE(status.is_remote());
  EXPECT_NE(status.message().find("model 'adder'"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("has 2 inputs (x, y), the call gives 1"), std::string::npos)
      << status.message();
  EXPECT_EQ(transport.sent().size(), 1u);  // the metadata only
}

TEST(RemoteCall, V2GivenNamesOfAnotherCountAreRefusedBeforeSending) {
  FakeTransport transport;
  auto options = Options(ProtocolChoice::kV2);
  options->input_names = {"x", "y"};
  V2InputNames cache;
  RemoteCall call(options, kV2Url, {Floats(kA, 2)}, InTenSeconds(), &cache);
  Status status = call.Run(&transport);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(status.message(), "input_names has 2 names (x, y), the call gives 1 tensors");
  EXPECT_TRUE(transport.sent().empty());
}

TEST(RemoteCall, V2MetadataFailureSaysHowToSkipItAndKeepsItsCode) {
  FakeTransport transport;
  transport.Answer(404, R"({"error":"unknown model 'adder'"})");
  V2InputNames cache;
  RemoteCall call(Options(ProtocolChoice::kV2), kV2Url, {Floats(kA, 2)}, InTenSeconds(), &cache);
  Status status = call.Run(&transport);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(status.remote().http_status, 404);
  EXPECT_NE(status.message().find("pass input_names to skip this"), std::string::npos);
  EXPECT_NE(status.message().find("unknown model 'adder'"), std::string::npos);
}

TEST(RemoteCall, V2RefusalOfCachedNamesMakesTheNextCallReadMetadataAgain) {
  FakeTransport transport;
  transport.Answer(400, R"({"error":"unexpected inference input 'x'"})");
  transport.Answer(200, V2Metadata({"renamed"}));
  transport.Answer(200, V2Answer({3.0f}));
  V2InputNames cache;
  cache.Store(kV2MetadataUrl, {"x"});  // from an earlier deployment
  auto options = Options(ProtocolChoice::kV2);
  RemoteCall refused(options, kV2Url, {Floats(kA, 2)}, InTenSeconds(), &cache);
  EXPECT_EQ(refused.Run(&transport).code(), Code::kInvalidArgument);
  RemoteCall next(options, kV2Url, {Floats(kA, 2)}, InTenSeconds(), &cache);
  ASSERT_TRUE(next.Run(&transport).ok());
  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[1].url, kV2MetadataUrl);
  EXPECT_EQ(InputNames(V2Header(sent[2])), std::vector<std::string>({"renamed"}));
}

TEST(RemoteCall, V2RefusesGraphPipeConfig) {
  FakeTransport transport;
  auto options = Options(ProtocolChoice::kAuto);
  options->config = "x";
  V2InputNames cache;
  RemoteCall call(options, kV2Url, {Floats(kA, 2)}, InTenSeconds(), &cache);
  Status status = call.Run(&transport);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_TRUE(transport.sent().empty());
}

TEST(RemoteCall, TransportFailureKeepsItsCode) {
  FakeTransport transport;
  transport.Answer(0, "", {}, Status(Code::kDeadlineExceeded, "no answer within 1 s"));
  V2InputNames cache;
  RemoteCall call(Options(ProtocolChoice::kGraphPipe), kGraphPipeUrl, {Floats(kA, 2)},
                  InTenSeconds(), &cache);
  EXPECT_EQ(call.Run(&transport).code(), Code::kDeadlineExceeded);
}

// ---- deadlines and attempts ----

// The GraphPipe-Timeout a request carried ("" when absent).
std::string TimeoutSent(const FakeTransport::Sent& sent) {
  const std::string prefix = std::string(kTimeoutHeader) + ": ";
  for (const std::string& h : sent.extra_headers) {
    if (h.rfind(prefix, 0) == 0) return h.substr(prefix.size());
  }
  return "";
}

TEST(RemoteCall, EachGraphPipeAttemptTellsTheServerTheTimeLeftThen) {
  FakeTransport transport;
  transport.Answer(503, "busy");
  transport.Answer(200, GraphPipeAnswer({1.0f}));
  auto options = Options(ProtocolChoice::kGraphPipe);
  options->retries = 1;
  V2InputNames cache;
  RemoteCall call(options, kGraphPipeUrl, {Floats(kA, 2)}, InTenSeconds(), &cache);
  ASSERT_TRUE(call.Run(&transport).ok());
  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 2u);
  const uint64_t first = std::stoull(TimeoutSent(sent[0]));
  const uint64_t second = std::stoull(TimeoutSent(sent[1]));
  EXPECT_LE(first, 10'000'000u);
  EXPECT_GT(first, 9'000'000u);
  EXPECT_LT(second, first - 40'000u);  // after the retry's 50 ms backoff
}

TEST(RemoteCall, ACallWithoutDeadlineSendsNone) {
  FakeTransport transport;
  transport.Answer(200, GraphPipeAnswer({1.0f}));
  transport.Answer(200, V2Answer({1.0f}));
  V2InputNames cache;
  RemoteCall graphpipe(Options(ProtocolChoice::kGraphPipe), kGraphPipeUrl, {Floats(kA, 2)},
                       Clock::time_point::max(), &cache);
  ASSERT_TRUE(graphpipe.Run(&transport).ok());
  auto options = Options(ProtocolChoice::kAuto);
  options->input_names = {"x"};
  RemoteCall v2(options, kV2Url, {Floats(kA, 2)}, Clock::time_point::max(), &cache);
  ASSERT_TRUE(v2.Run(&transport).ok());
  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(TimeoutSent(sent[0]), "");
  EXPECT_FALSE(V2Header(sent[1])["parameters"].contains("timeout"));
}

TEST(RemoteCall, V2SendsTheTimeLeftAsTheTimeoutParameterOfEachAttempt) {
  FakeTransport transport;
  transport.Answer(503, "busy");
  transport.Answer(200, V2Answer({5.5f, 6.0f}));
  auto options = Options(ProtocolChoice::kAuto);
  options->input_names = {"x", "y"};
  options->retries = 1;
  V2InputNames cache;
  RemoteCall call(options, kV2Url, {Floats(kA, 2), Floats(kB, 2)}, InTenSeconds(), &cache);
  ASSERT_TRUE(call.Run(&transport).ok());
  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 2u);
  const uint64_t first = V2Header(sent[0])["parameters"]["timeout"];
  const uint64_t second = V2Header(sent[1])["parameters"]["timeout"];
  EXPECT_GT(first, 9'000'000u);
  EXPECT_LE(first, 10'000'000u);
  EXPECT_LT(second, first - 40'000u);
  EXPECT_EQ(InputNames(V2Header(sent[1])), std::vector<std::string>({"x", "y"}));
  EXPECT_EQ(TimeoutSent(sent[0]), "");  // v2 carries it in the body only
}

TEST(RemoteCall, NoRetryForAnAnswerThatIsNotUnavailable) {
  FakeTransport transport;
  transport.Answer(504, "deadline passed");
  auto options = Options(ProtocolChoice::kGraphPipe);
  options->retries = 3;
  V2InputNames cache;
  RemoteCall call(options, kGraphPipeUrl, {Floats(kA, 2)}, InTenSeconds(), &cache);
  Status status = call.Run(&transport);
  EXPECT_EQ(status.code(), Code::kDeadlineExceeded);
  EXPECT_EQ(transport.sent().size(), 1u);
}

// ---- asynchronous calls ----

// An executor running each piece of work on a new thread, remembering which.
class ThreadExecutor {
 public:
  ~ThreadExecutor() {
    for (std::thread& t : threads_) t.join();
  }
  Executor executor() {
    return [this](std::function<void()> work) {
      std::lock_guard<std::mutex> lock(mu_);
      threads_.emplace_back([this, work = std::move(work)] {
        {
          std::lock_guard<std::mutex> lock(mu_);
          ran_on_.push_back(std::this_thread::get_id());
        }
        work();
      });
    };
  }
  std::vector<std::thread::id> ran_on() {
    std::lock_guard<std::mutex> lock(mu_);
    return ran_on_;
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<std::thread::id> ran_on_;
};

struct Completion {
  std::promise<std::pair<Status, std::thread::id>> promise;
  std::function<void(Status)> Callback() {
    return [this](Status s) { promise.set_value({std::move(s), std::this_thread::get_id()}); };
  }
};

TEST(RemoteCallAsync, SmallAnswerCompletesOnTheTransportsThread) {
  FakeTransport transport;
  ThreadExecutor executor;
  transport.Answer(200, GraphPipeAnswer({1.0f}));
  V2InputNames cache;
  auto call = std::make_shared<RemoteCall>(Options(ProtocolChoice::kGraphPipe), kGraphPipeUrl,
                                           std::vector<TensorView>{Floats(kA, 2)},
                                           InTenSeconds(), &cache);
  Completion done;
  auto result = done.promise.get_future();
  RemoteCall::Start(call, &transport, executor.executor(), done.Callback());
  auto [status, thread] = result.get();
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(FloatsOf(call->outputs()[0]), std::vector<float>({1.0f}));
  ASSERT_EQ(transport.answer_threads().size(), 1u);
  EXPECT_EQ(thread, transport.answer_threads()[0]);
  EXPECT_TRUE(executor.ran_on().empty());
}

TEST(RemoteCallAsync, LargeGraphPipeAnswerIsReadInPlaceOnTheTransportsThread) {
  FakeTransport transport;
  ThreadExecutor executor;
  std::vector<float> large(RemoteCall::kReadInlineBytes / sizeof(float) + 1, 0.25f);
  transport.Answer(200, GraphPipeAnswer(large));
  V2InputNames cache;
  auto call = std::make_shared<RemoteCall>(Options(ProtocolChoice::kGraphPipe), kGraphPipeUrl,
                                           std::vector<TensorView>{Floats(kA, 2)},
                                           InTenSeconds(), &cache);
  Completion done;
  auto result = done.promise.get_future();
  RemoteCall::Start(call, &transport, executor.executor(), done.Callback());
  auto [status, thread] = result.get();
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(FloatsOf(call->outputs()[0]), large);
  ASSERT_EQ(transport.answer_threads().size(), 1u);
  EXPECT_EQ(thread, transport.answer_threads()[0]);
  EXPECT_TRUE(executor.ran_on().empty());
}

TEST(RemoteCallAsync, LargeV2JsonAnswerIsDecodedOnTheExecutor) {
  FakeTransport transport;
  ThreadExecutor executor;
  std::vector<float> large(RemoteCall::kReadInlineBytes / sizeof(float) + 1, 0.25f);
  transport.Answer(200, V2Answer(large));
  V2InputNames cache;
  auto options = std::make_shared<CallOptions>();
  options->protocol = ProtocolChoice::kV2;
  options->input_names = {"x"};
  auto call = std::make_shared<RemoteCall>(options, kV2Url, std::vector<TensorView>{Floats(kA, 2)},
                                           InTenSeconds(), &cache);
  Completion done;
  auto result = done.promise.get_future();
  RemoteCall::Start(call, &transport, executor.executor(), done.Callback());
  auto [status, thread] = result.get();
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(FloatsOf(call->outputs()[0]), large);
  ASSERT_EQ(executor.ran_on().size(), 1u);
  EXPECT_EQ(thread, executor.ran_on()[0]);
}

TEST(RemoteCallAsync, V2MetadataThenInferEncodesOnTheExecutor) {
  FakeTransport transport;
  ThreadExecutor executor;
  transport.Answer(200, V2Metadata({"x"}));
  transport.Answer(200, V2Answer({2.0f}));
  V2InputNames cache;
  const Clock::time_point deadline = InTenSeconds();
  auto call = std::make_shared<RemoteCall>(Options(ProtocolChoice::kAuto), kV2Url,
                                           std::vector<TensorView>{Floats(kA, 2)}, deadline,
                                           &cache);
  Completion done;
  auto result = done.promise.get_future();
  RemoteCall::Start(call, &transport, executor.executor(), done.Callback());
  auto [status, thread] = result.get();
  ASSERT_TRUE(status.ok()) << status.message();
  const std::vector<FakeTransport::Sent> sent = transport.sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_FALSE(sent[0].post);
  EXPECT_EQ(sent[1].url, kV2InferUrl);
  EXPECT_EQ(sent[1].deadline, deadline);
  // The infer request was assembled and handed over on the executor, not on
  // the transport's thread that delivered the metadata.
  ASSERT_EQ(executor.ran_on().size(), 1u);
  EXPECT_EQ(sent[1].thread, executor.ran_on()[0]);
  EXPECT_EQ(FloatsOf(call->outputs()[0]), std::vector<float>({2.0f}));
}

TEST(RemoteCallAsync, CallRefusedBeforeSendingCompletesOnTheCallingThread) {
  FakeTransport transport;
  ThreadExecutor executor;
  V2InputNames cache;
  auto call = std::make_shared<RemoteCall>(Options(ProtocolChoice::kV2), kGraphPipeUrl,
                                           std::vector<TensorView>{Floats(kA, 2)},
                                           InTenSeconds(), &cache);
  Completion done;
  auto result = done.promise.get_future();
  RemoteCall::Start(call, &transport, executor.executor(), done.Callback());
  auto [status, thread] = result.get();
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(thread, std::this_thread::get_id());
  EXPECT_TRUE(transport.sent().empty());
}

}  // namespace

// ---- credentials and trace context (call_credentials.h) ------------------------

bool HasHeader(const FakeTransport::Sent& sent, const std::string& line) {
  for (const std::string& h : sent.extra_headers) {
    if (h == line) return true;
  }
  return false;
}

std::string HeaderValue(const FakeTransport::Sent& sent, const std::string& prefix) {
  for (const std::string& h : sent.extra_headers) {
    if (h.compare(0, prefix.size(), prefix) == 0) return h.substr(prefix.size());
  }
  return "";
}

TEST(CallCredentials, EveryRequestOfACallCarriesHeadersTokenAndOneTraceparent) {
  ::setenv("TF_GRAPHPIPE_CC_TEST_TOKEN", "tok-123", 1);
  FakeTransport transport;
  transport.Answer(200, V2Metadata({"x"}));
  transport.Answer(200, V2Answer({1.0f, 2.0f}));
  auto options = Options(ProtocolChoice::kV2);
  options->credentials.headers = {"X-Tenant: blue"};
  options->credentials.auth_token_env = "TF_GRAPHPIPE_CC_TEST_TOKEN";
  V2InputNames cache;
  RemoteCall call(options, kV2Url, {Floats(kA, 2)}, InTenSeconds(), &cache);
  ASSERT_TRUE(call.Run(&transport).ok());
  const auto sent = transport.sent();
  ASSERT_EQ(sent.size(), 2u);  // the metadata, then the call
  for (const auto& request : sent) {
    EXPECT_TRUE(HasHeader(request, "X-Tenant: blue"));
    EXPECT_TRUE(HasHeader(request, "Authorization: Bearer tok-123"));
  }
  const std::string trace = HeaderValue(sent[0], "traceparent: ");
  EXPECT_EQ(trace.size(), 55u) << trace;
  EXPECT_EQ(trace, HeaderValue(sent[1], "traceparent: "));
  std::string checked;
  EXPECT_TRUE(Traceparent(trace, &checked).ok());
}

TEST(CallCredentials, EachCallStartsANewTraceUnlessOneIsGiven) {
  FakeTransport transport;
  for (int i = 0; i < 3; ++i) transport.Answer(200, GraphPipeAnswer({1.0f}));
  V2InputNames cache;
  auto options = Options(ProtocolChoice::kGraphPipe);
  for (int i = 0; i < 2; ++i) {
    RemoteCall call(options, kGraphPipeUrl, {Floats(kA, 1)}, InTenSeconds(), &cache);
    ASSERT_TRUE(call.Run(&transport).ok());
  }
  auto given = Options(ProtocolChoice::kGraphPipe);
  given->traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  RemoteCall call(given, kGraphPipeUrl, {Floats(kA, 1)}, InTenSeconds(), &cache);
  ASSERT_TRUE(call.Run(&transport).ok());
  const auto sent = transport.sent();
  EXPECT_NE(HeaderValue(sent[0], "traceparent: ").substr(3, 32), HeaderValue(sent[1], "traceparent: ").substr(3, 32));
  EXPECT_EQ(HeaderValue(sent[2], "traceparent: "), given->traceparent);
}

TEST(CallCredentials, AMissingTokenFailsTheCallBeforeAnythingIsSentAndNamesItsSource) {
  ::unsetenv("TF_GRAPHPIPE_CC_UNSET");
  FakeTransport transport;
  auto options = Options(ProtocolChoice::kGraphPipe);
  options->credentials.auth_token_env = "TF_GRAPHPIPE_CC_UNSET";
  V2InputNames cache;
  RemoteCall call(options, kGraphPipeUrl, {Floats(kA, 1)}, InTenSeconds(), &cache);
  Status status = call.Run(&transport);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_EQ(status.message(), "auth_token_env: environment variable 'TF_GRAPHPIPE_CC_UNSET' is not set or empty");
  EXPECT_TRUE(transport.sent().empty());
  std::string out;
  EXPECT_EQ(Traceparent("00-zz", &out).code(), Code::kInvalidArgument);
}

}  // namespace tf_graphpipe
