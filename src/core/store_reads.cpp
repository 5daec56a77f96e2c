#include "core/store_reads.hpp"

#include <pthread.h>

#include <boost/asio/post.hpp>
#include <exception>

#include "common/log.hpp"

namespace parley::core {

void RunGuarded(const char* what, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    PLOG_ERROR("store read task threw", "task={} error={}", what, LogQuote(e.what()));
  } catch (...) {
    PLOG_ERROR("store read task threw", "task={} error=unknown", what);
  }
}

StoreReadPool::StoreReadPool(std::size_t threads) {
  if (threads == 0) return;
  work_.emplace(ctx_.get_executor());
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      // Tasks are guarded one by one; this only keeps a stray exception
      // from ending the process.
      for (;;) {
        try {
          ctx_.run();
          return;
        } catch (const std::exception& e) {
          PLOG_ERROR("store read thread caught", "error={}", LogQuote(e.what()));
        }
      }
    });
    pthread_setname_np(threads_.back().native_handle(), "store-reads");
  }
}

StoreReadPool::~StoreReadPool() { Stop(); }

StoreReadPool::Strand StoreReadPool::MakeStrand() { return boost::asio::make_strand(ctx_); }

void StoreReadPool::Post(std::function<void()> fn) {
  boost::asio::post(ctx_, [fn = std::move(fn)] { RunGuarded("post", fn); });
}

void StoreReadPool::Stop() {
  if (!work_) return;
  // Without the guard run() returns once nothing is queued or running.
  work_.reset();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  ctx_.stop();
}

}  // namespace parley::core
