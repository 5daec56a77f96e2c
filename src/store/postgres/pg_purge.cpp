// Retention: deleting what is older than the cutoff, in bounded writer jobs.
//
// Each Purge call is one job that deletes at most max_rows rows, family by
// family: mailbox rows older than the cutoff (a kMessage row carries its
// conversation index with it), messages and receipts below the cutoff's id
// floor (a message takes its idempotency key with it), then refresh tokens
// and one-time codes past their own expiry. Heads are never lowered, so an
// emptied mailbox keeps counting from where it was. An answer below
// max_rows means nothing older is left.
#include <algorithm>
#include <limits>

#include "common/ids.hpp"
#include "store/postgres/pg_store_impl.hpp"

namespace parley::store::pg {

void PgStore::Purge(std::int64_t cutoff_ms, std::size_t max_rows, Callback<std::size_t> done) {
  Submit<std::size_t>("purge", {}, std::move(done), [this, cutoff_ms, max_rows](Tx& tx) {
    return ApplyPurge(tx, cutoff_ms, max_rows);
  });
}

Result<std::size_t> PgStore::ApplyPurge(Tx& tx, std::int64_t cutoff_ms, std::size_t max_rows) {
  std::size_t deleted = 0;
  const std::int64_t floor = static_cast<std::int64_t>(IdFloorForTime(cutoff_ms));
  const std::int64_t now_ms = NowMs();
  // Each statement deletes up to the rows still allowed and answers how many went.
  struct Step {
    const char* sql;
    std::int64_t bound;
  };
  const Step steps[] = {
      {"DELETE FROM mailbox WHERE (user_id, seq) IN (SELECT user_id, seq FROM mailbox "
       "WHERE ts_ms < $1 LIMIT $2)",
       cutoff_ms},
      {"WITH gone AS (DELETE FROM messages WHERE msg_id IN (SELECT msg_id FROM messages "
       "WHERE msg_id < $1 ORDER BY msg_id LIMIT $2) RETURNING sender, client_msg_id), "
       "idem_gone AS (DELETE FROM idem i USING gone g WHERE i.sender = g.sender AND "
       "i.client_msg_id = g.client_msg_id) SELECT count(*) FROM gone",
       floor},
      {"DELETE FROM receipts WHERE (msg_id, user_id) IN (SELECT msg_id, user_id FROM receipts "
       "WHERE msg_id < $1 ORDER BY msg_id LIMIT $2)",
       floor},
      {"DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens "
       "WHERE expires_ms <= $1 LIMIT $2)",
       now_ms},
      {"DELETE FROM otp WHERE phone IN (SELECT phone FROM otp WHERE expires_ms <= $1 LIMIT $2)",
       now_ms},
  };
  for (const auto& step : steps) {
    if (deleted >= max_rows) break;
    const auto left = static_cast<std::int64_t>(
        std::min<std::size_t>(max_rows - deleted, std::numeric_limits<std::int32_t>::max()));
    auto r = tx.Read(step.sql, Params().I64(step.bound).I64(left));
    if (!r) return Failed(r);
    deleted += r->size() > 0 ? static_cast<std::size_t>(r->I64(0, 0)) : r->affected();
  }
  return deleted;
}

}  // namespace parley::store::pg
