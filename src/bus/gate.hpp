// Keeps callbacks from running after their owner stopped: every callback
// posted to a caller's executor is wrapped so that it runs only while the
// gate is open, and Close() waits for the ones already running.
#pragma once

#include <functional>
#include <memory>
#include <shared_mutex>

#include "bus/bus.hpp"

namespace parley::bus {

class Gate {
 public:
  explicit Gate(Executor executor) : executor_(std::move(executor)) {}

  // Posts fn to the executor; it runs only if Close() has not been called.
  void Post(std::function<void()> fn) const {
    executor_([state = state_, fn = std::move(fn)] {
      std::shared_lock lock(state->mu);
      if (state->open) fn();
    });
  }

  // After this returns, no posted callback runs (or is running).
  void Close() {
    std::unique_lock lock(state_->mu);
    state_->open = false;
  }

 private:
  struct State {
    std::shared_mutex mu;
    bool open = true;
  };
  Executor executor_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace parley::bus
