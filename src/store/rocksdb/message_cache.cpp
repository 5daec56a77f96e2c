#include "store/rocksdb/message_cache.hpp"

#include <algorithm>
#include <utility>

namespace parley::store::rocks {

MessageCache::MessageCache(std::size_t capacity)
    : per_shard_(std::max<std::size_t>(1, capacity / kShards)) {}

std::shared_ptr<const Message> MessageCache::Get(MsgId msg_id) {
  Shard& s = ShardOf(msg_id);
  std::lock_guard lock(s.mu);
  auto it = s.index.find(msg_id);
  if (it == s.index.end()) return nullptr;
  s.lru.splice(s.lru.begin(), s.lru, it->second);
  return *it->second;
}

void MessageCache::Put(std::shared_ptr<const Message> message) {
  if (!message) return;
  const MsgId id = message->msg_id;
  Shard& s = ShardOf(id);
  std::lock_guard lock(s.mu);
  if (auto it = s.index.find(id); it != s.index.end()) {
    *it->second = std::move(message);
    s.lru.splice(s.lru.begin(), s.lru, it->second);
    return;
  }
  s.lru.push_front(std::move(message));
  s.index.emplace(id, s.lru.begin());
  if (s.lru.size() > per_shard_) {
    s.index.erase(s.lru.back()->msg_id);
    s.lru.pop_back();
  }
}

void MessageCache::Erase(MsgId msg_id) {
  Shard& s = ShardOf(msg_id);
  std::lock_guard lock(s.mu);
  if (auto it = s.index.find(msg_id); it != s.index.end()) {
    s.lru.erase(it->second);
    s.index.erase(it);
  }
}

}  // namespace parley::store::rocks
