-- KEYS[1] the dispatcher's position, KEYS[2] the set of entries acknowledged ahead of it,
-- KEYS[3] the webhook lease and KEYS[4] its generation (lease.lua).
-- Sets the position to ARGV[1] and forgets acknowledgments of entries up to and including it,
-- if the lease is held by ARGV[2] under generation ARGV[3]; else changes nothing, returns 0.
-- A position is `<ms>-<seq>` per shard, comma-separated (one alone stands for every shard); an
-- entry id is `<ms>-<seq>` in shard 0 and `<ms>-<seq>@<k>` in shard k (store/position.rs).
local held = redis.call('MGET', KEYS[3], KEYS[4])
if held[1] ~= ARGV[2] or held[2] ~= ARGV[3] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
local parts = {}
for part in string.gmatch(ARGV[1], '[^,]+') do
  local ms, seq = string.match(part, '^(%d+)-(%d+)$')
  if ms == nil then
    return 1
  end
  parts[#parts + 1] = {tonumber(ms), tonumber(seq)}
end
if #parts == 0 then
  return 1
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local ms, seq, shard = string.match(id, '^(%d+)-(%d+)@?(%d*)$')
  local drop = ms == nil
  if not drop then
    ms, seq = tonumber(ms), tonumber(seq)
    local k = 1
    if shard ~= '' then
      k = tonumber(shard) + 1
    end
    local p = parts[1]
    if #parts > 1 then
      p = parts[k] or {0, 0}
    end
    drop = ms < p[1] or (ms == p[1] and seq <= p[2])
  end
  if drop then
    redis.call('SREM', KEYS[2], id)
  end
end
return 1
