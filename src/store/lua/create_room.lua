-- Creates a room unless its app already has a live room with that name.
-- KEYS: the room alone (as save_room.lua: Redis tracks for a caller with client-side tracking
-- what a script that reads declares; the other keys, all in the room's slot, come in ARGV).
-- ARGV: room_id, seq, json, created_at, publish command (PUBLISH, or SPUBLISH on a cluster;
-- empty: none), app rooms zset, name, outbox, live rooms zset, events...
local room, rooms, name, outbox, live = KEYS[1], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local existing = redis.call('GET', name)
if existing then
  return {0, existing}
end
redis.call('SET', name, ARGV[1])
redis.call('HSET', room, 'seq', ARGV[2], 'json', ARGV[3])
redis.call('ZADD', rooms, ARGV[4], ARGV[1])
redis.call('ZADD', live, ARGV[4], ARGV[1])
local appended
for i = 10, #ARGV do
  appended = redis.call('XADD', outbox, '*', 'event', ARGV[i])
end
-- Wakes the outbox's readers in every controller (keys.rs: the `appended` channel; the
-- channel is in the outbox's slot, so a sharded SPUBLISH stays on this master).
if appended and ARGV[5] ~= '' then
  redis.call(ARGV[5], outbox .. ':appended', appended)
end
-- A caller with client-side tracking keeps the room it created: this read has Redis track the
-- room (the only key declared) for it.
redis.call('HEXISTS', room, 'seq')
return {1, ''}
