-- Takes or renews a lease: held by ARGV[1] for ARGV[2] ms. Returns 1 if ARGV[1] holds it now.
-- With ARGV[2] = 0 the lease is released (only by its holder).
local holder = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if holder == ARGV[1] then
    redis.call('DEL', KEYS[1])
  end
  return 0
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
