-- Replaces a room if its stored seq is the expected one, with its index changes and events.
-- KEYS: one, the key Redis is to go on tracking for the caller (see below): the room's notice
-- key for the process that keeps the room in memory, else the room itself (which the write
-- then takes away). The keys it writes (all in the room's slot: the same hash tag) come in
-- ARGV, undeclared: a script that reads has Redis track, for a caller with client-side
-- tracking, every key it declares (checked on redis 7.0), and only those.
-- ARGV: expected seq, new seq, json, room_id, release (0, or the seconds the ended room stays
-- readable), n_add, n_remove, past (the past participations' field, room_record.rs; empty:
-- unchanged), outbox, name, ended rooms zset, live rooms zset, media (the room began to
-- record or carry a live stream: the room's created_at, its score; '-': it stopped; empty:
-- unchanged), media rooms zset, the room, its notice key, the keeper (the caller's id if it
-- keeps the room; empty: it does not), the notice key's lifetime when set (seconds: the
-- room's record expires, as long as it; '0': none), session->room keys to set (n_add), then
-- to clear (n_remove), then events...
--
-- The keeper. A write of a key takes away Redis's tracking of it, so a process that keeps a
-- room it writes would have to read it again after each write. Instead it has Redis track the
-- room's notice key, which this script declares for it and reads (the guard below), and which
-- its own writes leave alone; the room's `k` field names it. Any other writer sets the notice
-- key, and so tells it. A new keeper sets it too (telling the one before, if any), then reads
-- it to have Redis track it again.
local room, notice, me = ARGV[15], ARGV[16], ARGV[17]
local held = redis.call('HMGET', room, 'seq', 'k')
if held[1] ~= ARGV[1] then
  return 0
end
local keeper = held[2]
local fields = {'seq', ARGV[2], 'json', ARGV[3]}
if ARGV[8] ~= '' then
  table.insert(fields, 'past')
  table.insert(fields, ARGV[8])
end
if me ~= '' and keeper ~= me then
  table.insert(fields, 'k')
  table.insert(fields, me)
end
redis.call('HSET', room, unpack(fields))
-- The notice key exists from the first keeper on, until the room's record expires: a slot
-- that moves to another cluster master takes it along, and that deletion tells the keeper.
if keeper ~= me and (keeper or me ~= '') then
  if ARGV[18] ~= '0' then
    redis.call('SET', notice, ARGV[2], 'EX', ARGV[18])
  else
    redis.call('SET', notice, ARGV[2])
  end
  if me ~= '' then
    redis.call('EXISTS', notice)
  end
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
  redis.call('SET', ARGV[18 + i], ARGV[4])
end
for i = 1, n_remove do
  local key = ARGV[18 + n_add + i]
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
for i = 19 + n_add + n_remove, #ARGV do
  redis.call('XADD', outbox, '*', 'event', ARGV[i])
end
-- The outbox's readers are woken by one PUBLISH per shard after a batch's scripts, in the same
-- pipeline (room_writes.rs), not one per room: on a Redis Cluster every PUBLISH goes to every
-- node.
-- A caller with client-side tracking (OPTOUT) that keeps a room it releases (its record then
-- expires, which only the room's own tracking tells) reads it right after this script, in the
-- same pipeline (room_writes.rs).
return 1
