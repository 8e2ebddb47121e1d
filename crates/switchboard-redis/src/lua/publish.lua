-- Atomic publish for one channel. All keys share the channel's {hash tag}.
-- KEYS[1] stream, KEYS[2] meta, KEYS[3] idempotency key (optional)
-- ARGV[1] pubsub channel, ARGV[2] data, ARGV[3] client info JSON ('' = none),
-- ARGV[4] history size, ARGV[5] history ttl ms, ARGV[6] meta ttl ms,
-- ARGV[7] epoch to use if the stream has none, ARGV[8] idempotency ttl ms,
-- ARGV[9] 'PUBLISH' or 'SPUBLISH'
-- Returns {duplicate (0/1), offset, epoch}.
if KEYS[3] then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local sep = string.find(prev, ':', 1, true)
    return {1, tonumber(string.sub(prev, 1, sep - 1)), string.sub(prev, sep + 1)}
  end
end
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  -- No meta: a new stream incarnation (first use, expiry, eviction or data loss).
  epoch = ARGV[7]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 'o', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 'o', 1)
local off = string.format('%d', offset)
local size = tonumber(ARGV[4])
if size > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local ttl = tonumber(ARGV[5])
  local expires = string.format('%d', now + ttl)
  if ARGV[3] ~= '' then
    redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], off .. '-0', 'd', ARGV[2], 'x', expires, 'i', ARGV[3])
  else
    redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], off .. '-0', 'd', ARGV[2], 'x', expires)
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
else
  -- No history: keep the invariant that the stream ends at the top offset.
  redis.call('DEL', KEYS[1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call(ARGV[9], ARGV[1], 'p' .. off .. ',' .. epoch .. ',' .. string.len(ARGV[3]) .. ',' .. ARGV[3] .. ARGV[2])
if KEYS[3] then
  redis.call('SET', KEYS[3], off .. ':' .. epoch, 'PX', ARGV[8])
end
return {0, offset, epoch}
