-- Returns the remembered answer, or remembers ARGV[1] for ARGV[2] seconds and returns false.
local earlier = redis.call('GET', KEYS[1])
if earlier then
  return earlier
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
