#include "support/cluster.hpp"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <thread>

#include "support/postgres.hpp"

namespace parley::test {

namespace fs = std::filesystem;

Cluster::Cluster() : Cluster(Options{}) {}

Cluster::Cluster(Options options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/parley-cluster-XXXXXX";
  if (::mkdtemp(tmpl) != nullptr) dir_ = tmpl;
}

Cluster::~Cluster() {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (paused_[i]) Resume(i);
  }
  haproxy_.Kill();
  nodes_.clear();  // each one terminates its process
  relays_.clear();
  redis_.Kill();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

bool Cluster::Start() {
  if (dir_.empty()) {
    std::cerr << "parley-test: cluster: mkdtemp failed\n";
    return false;
  }
  if (!nodes_.empty()) return false;  // once
  static std::atomic<int> counter{0};
  try {
    store_url_ = SharedPostgres().CreateDatabase("cl_" + std::to_string(::getpid()) + "_" +
                                                 std::to_string(counter.fetch_add(1)));
  } catch (const std::exception& e) {
    std::cerr << "parley-test: cluster: PostgreSQL: " << e.what() << "\n";
    return false;
  }
  if (!redis_.Start()) {
    std::cerr << "parley-test: cluster: redis-server did not start\n";
    return false;
  }
  media_dir_ = dir_ + "/media";
  std::error_code ec;
  fs::create_directories(media_dir_, ec);
  for (std::size_t i = 0; i < options_.nodes; ++i) {
    const std::uint16_t port = FreePort();
    ports_.push_back(port);
    Parleyd::Options o;
    o.data_dir = dir_ + "/" + node_id(i);
    std::string store = store_url_;
    if (i < options_.store_delay.size() && options_.store_delay[i].count() > 0) {
      try {
        relays_.push_back(std::make_unique<DelayRelay>(store_url_, options_.store_delay[i]));
      } catch (const std::exception& e) {
        std::cerr << "parley-test: cluster: delay relay: " << e.what() << "\n";
        return false;
      }
      store = relays_.back()->url();
    }
    o.args = {"--listen",    "127.0.0.1:" + std::to_string(port),
              "--store",     store,
              "--bus",       redis_.url(),
              "--node-id",   node_id(i),
              "--media-dir", media_dir_};
    o.args.insert(o.args.end(), options_.args.begin(), options_.args.end());
    nodes_.push_back(std::make_unique<Parleyd>(std::move(o)));
    paused_.push_back(false);
    // One after the other: the first one creates the schema and the secrets.
    if (!nodes_.back()->Start()) return false;
    if (!WaitReady(i, 200)) {
      std::cerr << "parley-test: cluster: " << node_id(i) << " never became ready; its log:\n"
                << nodes_.back()->Log() << "\n";
      return false;
    }
  }
  if (options_.balancer) {
    std::vector<Endpoint> servers;
    for (std::size_t i = 0; i < nodes_.size(); ++i) servers.push_back(endpoint(i));
    if (!haproxy_.Start(servers)) return false;
  }
  return true;
}

bool Cluster::WaitReady(std::size_t i, int status, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  for (;;) {
    if (Http(endpoint(i), "GET", "/ready", "", {}, 2s).status == status) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

void Cluster::Kill(std::size_t i) {
  nodes_.at(i)->Kill();
  paused_[i] = false;
}

bool Cluster::Pause(std::size_t i) {
  if (!running(i) || ::kill(pid(i), SIGSTOP) != 0) return false;
  paused_[i] = true;
  return true;
}

bool Cluster::Resume(std::size_t i) {
  if (!running(i) || ::kill(pid(i), SIGCONT) != 0) return false;
  paused_[i] = false;
  return true;
}

int Cluster::Terminate(std::size_t i) {
  if (paused_[i]) Resume(i);
  return nodes_.at(i)->Terminate();
}

bool Cluster::Restart(std::size_t i) {
  if (paused_[i]) Resume(i);
  if (!nodes_.at(i)->Restart()) return false;
  return WaitReady(i, 200);
}

}  // namespace parley::test
