// Media decoding runs in a child process per job (issue 14, item 8): a
// decoder that crashes or hangs fails that media only, parleyd keeps
// serving; the processing queue is bounded.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "media/media_helpers.hpp"
#include "media/processor.hpp"

namespace parley::test {
namespace {

std::string UploadJpeg(Parleyd& server, const Account& a) {
  return MediaIdOf(UploadMedia(server, a, MakeJpeg(64, 48), "image/jpeg"));
}

// parleyd with the test-only worker (tests/media/fault_worker/) that
// crashes or hangs on every job.
void FaultyWorker(Parleyd::Options& options, const char* fault) {
  options.args.insert(options.args.end(), {"--media-worker", PARLEY_MEDIA_FAULT_WORKER});
  options.env["PARLEY_MEDIA_TEST_FAULT"] = fault;
}

void ExpectServing(Parleyd& server, const Account& a) {
  EXPECT_EQ(::kill(server.pid(), 0), 0) << "parleyd is gone";
  EXPECT_EQ(Http(server.endpoint(), "GET", "/health").status, 200);
  auto up = UploadMedia(server, a, RandomBytes(1000), "application/octet-stream");
  EXPECT_EQ(up.status, 201) << up.body;
}

TEST(MediaIsolation, ADecoderThatCrashesFailsItsMediaOnly) {
  Parleyd::Options options;
  FaultyWorker(options, "crash");
  Parleyd server(options);
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  for (int i = 0; i < 3; ++i) {
    const std::string id = UploadJpeg(server, alice);
    ASSERT_FALSE(id.empty());
    auto m = WaitProcessed(server, alice, id);
    EXPECT_EQ(Str(m, "status"), "failed") << json::serialize(m);
    EXPECT_NE(Str(m, "reason").find("crashed"), std::string::npos) << json::serialize(m);
  }
  ExpectServing(server, alice);
}

TEST(MediaIsolation, ADecoderThatHangsIsStoppedAtItsTimeBudget) {
  Parleyd::Options options;
  FaultyWorker(options, "hang");
  options.args.insert(options.args.end(), {"--media-job-timeout-s", "2"});
  Parleyd server(options);
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  const auto start = std::chrono::steady_clock::now();
  const std::string id = UploadJpeg(server, alice);
  ASSERT_FALSE(id.empty());
  auto m = WaitProcessed(server, alice, id);
  EXPECT_EQ(Str(m, "status"), "failed") << json::serialize(m);
  EXPECT_NE(Str(m, "reason").find("longer than 2 s"), std::string::npos) << json::serialize(m);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(9));
  ExpectServing(server, alice);
}

TEST(MediaIsolation, TheQueueIsBounded) {
  Parleyd::Options options;
  FaultyWorker(options, "hang");
  options.args.insert(options.args.end(),
                      {"--media-job-timeout-s", "6", "--media-workers", "1", "--media-queue", "1"});
  Parleyd server(options);
  ASSERT_TRUE(server.Start()) << server.Log();
  const Account alice = SignIn(server, NextPhone());
  // The first hangs in the worker; wait until it has left the queue.
  const std::string running = UploadJpeg(server, alice);
  std::this_thread::sleep_for(500ms);
  const std::string queued = UploadJpeg(server, alice);
  const std::string over = UploadJpeg(server, alice);
  ASSERT_FALSE(running.empty() || queued.empty() || over.empty());
  // Past the queue: kept, not looked at, ready at once (long before the
  // two in the pool end at their budget).
  const auto start = std::chrono::steady_clock::now();
  auto m = WaitProcessed(server, alice, over);
  EXPECT_EQ(Str(m, "status"), "ready") << json::serialize(m);
  EXPECT_TRUE(m.at("width").is_null()) << json::serialize(m);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // The two in the pool end at their budget.
  for (const auto& id : {running, queued}) {
    auto r = WaitProcessed(server, alice, id);
    EXPECT_EQ(Str(r, "status"), "failed") << json::serialize(r);
  }
  ExpectServing(server, alice);
}

// The shipped parleyd has no test hook: the variable the fault worker reads
// does nothing to parleyd's own worker.
TEST(MediaIsolation, TheShippedWorkerHasNoFaultHook) {
  for (const char* fault : {"crash", "hang"}) {
    Parleyd::Options options;
    options.env["PARLEY_MEDIA_TEST_FAULT"] = fault;
    options.args = {"--media-job-timeout-s", "5"};
    Parleyd server(options);
    ASSERT_TRUE(server.Start()) << server.Log();
    const Account alice = SignIn(server, NextPhone());
    const std::string id = UploadJpeg(server, alice);
    ASSERT_FALSE(id.empty());
    auto m = WaitProcessed(server, alice, id);
    EXPECT_EQ(Str(m, "status"), "ready") << fault << ": " << json::serialize(m);
    EXPECT_EQ(m.at("width").to_number<int>(), 64) << json::serialize(m);
  }
}

TEST(MediaIsolation, AMediaWorkerThatIsNotAProgramIsRefusedAtStart) {
  Parleyd::Options options;
  options.args = {"--media-worker", "/nonexistent/parley-worker"};
  Parleyd server(options);
  EXPECT_FALSE(server.Start());
  EXPECT_NE(server.Log().find("media_worker"), std::string::npos) << server.Log();
}

// The cost of the isolation, per job: the same JPEG in this process and in
// a `parleyd media-process` worker (reported, not asserted).
TEST(MediaIsolation, CostPerJob) {
  const std::filesystem::path parleyd = ParleydPath();
  ::setenv("PARLEY_MEDIA_CODECS", (parleyd.parent_path() / media::kCodecsModule).c_str(), 1);
  media::SetMediaProcessProgram(parleyd.string());
  const std::string path = "/tmp/parley-cost-" + std::to_string(::getpid()) + ".jpg";
  { std::ofstream(path, std::ios::binary) << MakeJpeg(640, 480); }
  constexpr int kJobs = 20;
  auto time = [&](auto fn) {
    (void)fn();  // warm: the module is loaded, the page cache filled
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kJobs; ++i) {
      auto r = fn();
      EXPECT_TRUE(r.ok) << r.reason;
      EXPECT_EQ(r.width, 640u);
    }
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
               .count() /
           kJobs;
  };
  const double in_process = time([&] { return media::Process(path, "image/jpeg", 100000000); });
  const double child =
      time([&] { return media::ProcessIsolated(path, "image/jpeg", 100000000, 60); });
  std::remove(path.c_str());
  std::printf("media job (640x480 JPEG): in process %.1f ms, in a child %.1f ms\n", in_process,
              child);
  ::testing::Test::RecordProperty("in_process_ms", std::to_string(in_process));
  ::testing::Test::RecordProperty("child_ms", std::to_string(child));
}

}  // namespace
}  // namespace parley::test
