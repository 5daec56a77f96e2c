// Where the work that reads the store runs (docs/architecture.md, "Reads go
// where").
//
// Design note. Core's handlers read the store synchronously. With RocksDB a
// read is a local lookup of microseconds, so handlers run where net calls
// them, on the I/O threads, and nothing here exists (no threads, no hop).
// With a store whose reads wait on the network (`Store::ReadsBlock()`: the
// PostgreSQL backend) one read is a round trip of a millisecond or more, and
// on an I/O thread it would stall every socket of that thread. There, the
// work that may read runs on this pool instead, which holds a thread per
// store connection for reads:
//   * a WebSocket session's frames, its close and the tasks posted to it
//     (delivery, catch-up, the rest of hello) run on a strand of the pool
//     per session (`MakeStrand`), so a session still sees one thing at a
//     time, in order; the I/O thread only reads and routes the frame;
//   * HTTP requests that may read (everything but /health, /metrics and the
//     web client's files), and the head check of a clustered node, are
//     posted to the pool (`Post`).
// A session's or a request's reads then block a pool thread, never a socket.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <cstddef>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

namespace parley::core {

class StoreReadPool {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  // `threads` 0: no pool (Active() is false and nothing may be posted).
  explicit StoreReadPool(std::size_t threads);
  ~StoreReadPool();
  StoreReadPool(const StoreReadPool&) = delete;
  StoreReadPool& operator=(const StoreReadPool&) = delete;

  // Whether reads go through the pool (a store whose reads block).
  bool Active() const { return !threads_.empty(); }
  // A serial executor on the pool: what is posted to one strand runs one at
  // a time, in order, on any of the pool's threads. Only when Active().
  Strand MakeStrand();
  // Runs fn on a pool thread (no order with other posts). Only when Active().
  // An exception fn throws is logged, never ends the thread.
  void Post(std::function<void()> fn);
  // Runs what is queued, then stops the threads. Later posts never run.
  // Idempotent; the destructor calls it.
  void Stop();

 private:
  boost::asio::io_context ctx_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

// Runs fn, logging what it throws under `what`: a task on the pool must not
// end its thread.
void RunGuarded(const char* what, const std::function<void()>& fn);

}  // namespace parley::core
