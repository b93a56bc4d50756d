-- Takes or renews a lease: KEYS[1] held by ARGV[1] for ARGV[2] ms. With ARGV[2] = 0 the lease
-- is released (only by its holder). KEYS[2] (the lease key and ':gen', same slot) is the
-- lease's generation, its fencing token: one more each time the lease is taken by a holder
-- that did not hold it, the same when it is renewed; it never expires, so it never repeats.
-- Returns the generation if ARGV[1] holds the lease now, else 0.
local holder = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if holder == ARGV[1] then
    redis.call('DEL', KEYS[1])
  end
  return 0
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local generation = tonumber(redis.call('GET', KEYS[2]) or '0')
  if generation == 0 then
    -- Taken before generations were kept (or the counter was lost): one starts now.
    generation = redis.call('INCR', KEYS[2])
  end
  return generation
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
