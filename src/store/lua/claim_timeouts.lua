-- Hands out rooms whose timeout is due, each to one caller: a claimed entry's score moves to the
-- end of the lease, so it is handed out again only if its claimer never clears it.
-- KEYS: timeouts zset.  ARGV: now (µs), lease end (µs), limit.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
