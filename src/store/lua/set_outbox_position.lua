-- KEYS[1] the dispatcher's position, KEYS[2] the set of entries acknowledged ahead of it.
-- Sets the position to ARGV[1] and forgets acknowledgments of entries up to and including it.
local function order(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
redis.call('SET', KEYS[1], ARGV[1])
local pms, pseq = order(ARGV[1])
if pms == nil then
  return 1
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local ms, seq = order(id)
  if ms == nil or ms < pms or (ms == pms and seq <= pseq) then
    redis.call('SREM', KEYS[2], id)
  end
end
return 1
