-- Reads a channel's history and position atomically.
-- KEYS[1] stream, KEYS[2] meta
-- ARGV[1] epoch to use if the stream has none, ARGV[2] meta ttl ms,
-- ARGV[3] since offset ('' = none), ARGV[4] since epoch, ARGV[5] limit, ARGV[6] '1' = newest first
-- Returns {1, top, epoch, entries} or {0, top, epoch} when `since` cannot be served.
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 'o', 0)
end
local mttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[2]) < mttl then
  redis.call('PEXPIRE', KEYS[2], mttl)
end
local top = tonumber(redis.call('HGET', KEYS[2], 'o') or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Drop publications past their ttl from the front of the stream.
local oldest = top + 1
while true do
  local batch = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 64)
  if #batch == 0 then break end
  local keep = nil
  for i, e in ipairs(batch) do
    local f = e[2]
    local x = nil
    for j = 1, #f, 2 do
      if f[j] == 'x' then x = tonumber(f[j + 1]) end
    end
    if x == nil or x > now then keep = i break end
  end
  if keep then
    if keep > 1 then redis.call('XTRIM', KEYS[1], 'MINID', batch[keep][1]) end
    oldest = tonumber(string.match(batch[keep][1], '^(%d+)'))
    break
  end
  if #batch < 64 then
    redis.call('DEL', KEYS[1])
    break
  end
  local last = tonumber(string.match(batch[#batch][1], '^(%d+)'))
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', last + 1) .. '-0')
end
local from = oldest
if ARGV[3] ~= '' then
  local since = tonumber(ARGV[3])
  if ARGV[4] ~= epoch or since > top or since + 1 < oldest then
    return {0, top, epoch}
  end
  from = since + 1
end
if ARGV[5] == '0' or from > top then
  return {1, top, epoch, {}}
end
local entries
if ARGV[6] == '1' then
  entries = redis.call('XREVRANGE', KEYS[1], '+', string.format('%d', from) .. '-0', 'COUNT', ARGV[5])
else
  entries = redis.call('XRANGE', KEYS[1], string.format('%d', from) .. '-0', '+', 'COUNT', ARGV[5])
end
return {1, top, epoch, entries}
