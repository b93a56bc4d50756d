-- Replaces a room if its stored seq is the expected one, with its index changes and events.
-- KEYS: the room alone. The other keys it writes (all in the room's slot: the same hash tag)
-- come in ARGV, undeclared: a script that reads has Redis track, for a caller with client-side
-- tracking, every key it declares (checked on redis 7.0), so a room written after it is read
-- is all it could leave tracked, and the write itself takes that away.
-- ARGV: expected seq, new seq, json, room_id, release (0, or the seconds the ended room stays
-- readable), n_add, n_remove, past (the past participations' field, room_record.rs; empty:
-- unchanged), outbox, name, ended rooms zset, live rooms zset, media (the room began to
-- record or carry a live stream: the room's created_at, its score; '-': it stopped; empty:
-- unchanged), media rooms zset, session->room keys to set (n_add), then to clear (n_remove),
-- then events...
local room = KEYS[1]
if redis.call('HGET', room, 'seq') ~= ARGV[1] then
  return 0
end
if ARGV[8] == '' then
  redis.call('HSET', room, 'seq', ARGV[2], 'json', ARGV[3])
else
  redis.call('HSET', room, 'seq', ARGV[2], 'json', ARGV[3], 'past', ARGV[8])
end
local outbox, name, ended, live = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local n_add = tonumber(ARGV[6])
local n_remove = tonumber(ARGV[7])
if ARGV[13] == '-' then
  redis.call('ZREM', ARGV[14], ARGV[4])
elseif ARGV[13] ~= '' then
  redis.call('ZADD', ARGV[14], ARGV[13], ARGV[4])
end
for i = 1, n_add do
  redis.call('SET', ARGV[14 + i], ARGV[4])
end
for i = 1, n_remove do
  local key = ARGV[14 + n_add + i]
  if redis.call('GET', key) == ARGV[4] then
    redis.call('DEL', key)
  end
end
if ARGV[5] ~= '0' then
  if redis.call('GET', name) == ARGV[4] then
    redis.call('DEL', name)
  end
  redis.call('EXPIRE', room, ARGV[5])
  -- When the record is gone: the sweep then drops it from the listing index (Redis's clock,
  -- as the expiry's).
  local now = tonumber(redis.call('TIME')[1])
  redis.call('ZADD', ended, now + tonumber(ARGV[5]), ARGV[4])
  redis.call('ZREM', live, ARGV[4])
end
for i = 15 + n_add + n_remove, #ARGV do
  redis.call('XADD', outbox, '*', 'event', ARGV[i])
end
-- The outbox's readers are woken by one PUBLISH per shard after a batch's scripts, in the same
-- pipeline (room_writes.rs), not one per room: on a Redis Cluster every PUBLISH goes to every
-- node.
-- A caller with client-side tracking (OPTOUT) that wants Redis to go on tracking the room reads
-- it right after this script, in the same pipeline (room_writes.rs).
return 1
