// A FIFO queue on a std::vector, for per-connection queues: unlike
// std::deque (which libstdc++ gives a 512-byte block and a map as soon as it
// is constructed, empty or not) it costs nothing until the first push, and
// after that only what it holds. Items are taken from the front by moving a
// head index; the vector is reset when it empties and compacted when most
// of it is taken.
#pragma once

#include <cstddef>
#include <iterator>
#include <utility>
#include <vector>

namespace parley {

template <class T>
class Fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  T& back() { return items_.back(); }

  void push_back(T item) { items_.push_back(std::move(item)); }
  void pop_front() {
    ++head_;
    if (head_ == items_.size()) {
      clear();
    } else if (head_ >= kCompactAt && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void pop_back() {
    items_.pop_back();
    if (head_ == items_.size()) clear();
  }
  // Also gives the memory back: an idle connection keeps none.
  void clear() {
    std::vector<T>().swap(items_);
    head_ = 0;
  }

 private:
  static constexpr std::size_t kCompactAt = 64;
  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace parley
