-- A node's lease (KEYS[1]: held by ARGV[1] for ARGV[2] ms; 0 releases it, only by its holder),
-- the position of the node's event stream its holder has applied (KEYS[2], same slot:
-- '{<lease key>}:applied') and the lease's generation (KEYS[3], '{<lease key>}:gen'): it grows
-- by one each time the lease is taken (not when it is renewed), and is the fencing token of
-- what the holder does on the strength of it. ARGV[3], when not empty, is the holder's
-- position, recorded with a renewal or a release. Returns {1 if ARGV[1] holds the lease now,
-- the recorded position (false if none), the generation (0 if never taken)}: whoever takes the
-- lease reads there where its predecessor stopped.
-- The three keys are read in one command (one slot): every instance asks for every node's
-- lease three times a lease, the fleet's most frequent script.
local held = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local holder, recorded = held[1], held[2]
local mine = holder == ARGV[1]
if mine and ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', 86400)
  recorded = ARGV[3]
end
local generation = tonumber(held[3] or '0')
if ARGV[2] == '0' then
  if mine then
    redis.call('DEL', KEYS[1])
  end
  return {0, recorded, generation}
end
if mine then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, recorded, generation}
end
if holder then
  return {0, recorded, generation}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
generation = redis.call('INCR', KEYS[3])
return {1, recorded, generation}
