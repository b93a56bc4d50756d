-- Stores a session version unless a newer one is stored; ended sessions leave the live index
-- and expire after ARGV[6] seconds.
-- KEYS: session, app sessions zset.  ARGV: seq, json, created_at, session_id, ended (0|1), ttl
local seq = redis.call('HGET', KEYS[1], 'seq')
if seq and tonumber(seq) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'json', ARGV[2])
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
return 1
