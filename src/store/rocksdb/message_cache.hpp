// Recently written and read message bodies. A group message is read once per
// member session (up to 256) within moments of being sent; this spares each
// of those reads a database lookup and a decode.
#pragma once

#include <array>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "store/records.hpp"

namespace parley::store::rocks {

class MessageCache {
 public:
  explicit MessageCache(std::size_t capacity);

  std::shared_ptr<const Message> Get(MsgId msg_id);
  void Put(std::shared_ptr<const Message> message);
  void Erase(MsgId msg_id);

 private:
  // Sharded so that sessions reading at once rarely wait for each other.
  static constexpr std::size_t kShards = 8;  // the top 3 bits of a mixed id
  struct Shard {
    std::mutex mu;
    std::list<std::shared_ptr<const Message>> lru;  // most recent first
    std::unordered_map<MsgId, std::list<std::shared_ptr<const Message>>::iterator> index;
  };
  // Snowflake low bits are a per-millisecond counter, mostly 0: mix first.
  Shard& ShardOf(MsgId msg_id) { return shards_[(msg_id * 0x9e3779b97f4a7c15ull) >> 61]; }

  std::size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace parley::store::rocks
