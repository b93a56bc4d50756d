-- The webhook dispatcher's writes, fenced: made only if the lease KEYS[1] is held by ARGV[1]
-- under the generation ARGV[2] (KEYS[2], lease.lua); else nothing changes and the answer is
-- false (nil). All of one call or nothing, in one slot (the app's tag).
-- KEYS: 3 the delivery log (stream), 4 the position, 5 the entries acknowledged ahead of it
-- (set), 6 the dead letters (list).
-- ARGV: 3 how many log entries are kept (about), 4 how many dead letters are kept, 5 the new
-- position ('' for none), then the counts of 6 attempts, 7 entries settled ahead, 8
-- acknowledgments to forget, 9 dead letters, and the lists themselves in that order.
-- The attempts go to the log (JSON, field `attempt`, all of them in one entry), the position
-- riding on it (field `position`), or to its own key when there is no attempt to carry it;
-- the position forgets the acknowledgments it passed. Answers the id of the last log entry
-- ('' if none).
-- The lease and its generation are read in one command (both in the app's slot).
local held = redis.call('MGET', KEYS[1], KEYS[2])
if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] then
  return false
end
local position = ARGV[5]
local counts = {tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
local at = 10
local function take(n)
  local list = {}
  for i = 1, n do
    list[i] = ARGV[at]
    at = at + 1
  end
  return list
end
local attempts, ahead, forget, dead = take(counts[1]), take(counts[2]), take(counts[3]), take(counts[4])
-- Sets are changed a thousand members a call (well below Lua's stack limit).
local function each_thousand(command, key, members)
  for i = 1, #members, 1000 do
    redis.call(command, key, unpack(members, i, math.min(i + 999, #members)))
  end
end
-- The attempts of one call go to one log entry (field `attempt`, repeated, oldest first), a
-- thousand at most an entry; the position rides on the last.
local last = ''
for i = 1, #attempts, 1000 do
  local entry = {}
  for j = i, math.min(i + 999, #attempts) do
    entry[#entry + 1] = 'attempt'
    entry[#entry + 1] = attempts[j]
  end
  if i + 1000 > #attempts and position ~= '' then
    entry[#entry + 1] = 'position'
    entry[#entry + 1] = position
  end
  last = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(entry))
end
if position ~= '' and #attempts == 0 then
  redis.call('SET', KEYS[4], position)
end
each_thousand('SADD', KEYS[5], ahead)
if position ~= '' then
  each_thousand('SREM', KEYS[5], forget)
end
if #dead > 0 then
  each_thousand('RPUSH', KEYS[6], dead)
  redis.call('LTRIM', KEYS[6], -tonumber(ARGV[4]), -1)
end
return last
