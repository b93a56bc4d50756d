-- Replaces a room if its stored seq is the expected one, with its index changes and events.
-- KEYS: room, outbox, name, ended rooms zset, live rooms zset, session->room keys to set
-- (n_add), then to clear (n_remove).
-- ARGV: expected seq, new seq, json, room_id, release (0, or the seconds the ended room stays
-- readable), n_add, n_remove, past (the past participations' field, room_record.rs; empty:
-- unchanged), events...
if redis.call('HGET', KEYS[1], 'seq') ~= ARGV[1] then
  return 0
end
if ARGV[8] == '' then
  redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'json', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'json', ARGV[3], 'past', ARGV[8])
end
local n_add = tonumber(ARGV[6])
local n_remove = tonumber(ARGV[7])
for i = 1, n_add do
  redis.call('SET', KEYS[5 + i], ARGV[4])
end
for i = 1, n_remove do
  local key = KEYS[5 + n_add + i]
  if redis.call('GET', key) == ARGV[4] then
    redis.call('DEL', key)
  end
end
if ARGV[5] ~= '0' then
  if redis.call('GET', KEYS[3]) == ARGV[4] then
    redis.call('DEL', KEYS[3])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  -- When the record is gone: the sweep then drops it from the listing index (Redis's clock,
  -- as the expiry's).
  local now = tonumber(redis.call('TIME')[1])
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('ZREM', KEYS[5], ARGV[4])
end
for i = 9, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'event', ARGV[i])
end
-- The outbox's readers are woken by one PUBLISH per shard after a batch's scripts, in the same
-- pipeline (room_writes.rs), not one per room: on a Redis Cluster every PUBLISH goes to every
-- node.
-- A caller with client-side tracking (OPTOUT) that wants Redis to go on tracking the room reads
-- it right after this script, in the same pipeline (room_writes.rs). Not here: a script whose
-- last command is a read has Redis track every key it names (its KEYS), the outbox and the
-- session lookups with them.
return 1
