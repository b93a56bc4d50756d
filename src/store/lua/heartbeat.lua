-- The fleet's live instances: KEYS[1] is a zset of instance ids scored by when they stop
-- counting as live (ms, Redis's own clock, so instances' clocks need not agree). ARGV[1] renews
-- itself for ARGV[2] ms (0: leaves). Expired instances are dropped; the live ones returned.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == '0' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
