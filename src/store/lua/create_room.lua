-- Creates a room unless its app already has a live room with that name.
-- KEYS: room, app rooms zset, name, outbox, live rooms zset.
-- ARGV: room_id, seq, json, created_at, publish command (PUBLISH, or SPUBLISH on a cluster), events...
local existing = redis.call('GET', KEYS[3])
if existing then
  return {0, existing}
end
redis.call('SET', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'json', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
local appended
for i = 6, #ARGV do
  appended = redis.call('XADD', KEYS[4], '*', 'event', ARGV[i])
end
-- Wakes the outbox's readers in every controller (keys.rs: the `appended` channel; the
-- channel is in the outbox's slot, so a sharded SPUBLISH stays on this master).
if appended then
  redis.call(ARGV[5], KEYS[4] .. ':appended', appended)
end
-- As in save_room.lua: a caller with client-side tracking keeps the room it created.
redis.call('HEXISTS', KEYS[1], 'seq')
return {1, ''}
