-- KEYS[1] zset (node -> last heartbeat ms), KEYS[2] hash (node -> info JSON)
-- ARGV[1] node name, ARGV[2] info JSON, ARGV[3] liveness window ms.
-- Announces the node, forgets nodes silent for longer than the window, returns live nodes.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local cutoff = string.format('%d', now - window)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)
for _, n in ipairs(dead) do
  redis.call('HDEL', KEYS[2], n)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)
redis.call('PEXPIRE', KEYS[1], window * 4)
redis.call('PEXPIRE', KEYS[2], window * 4)
return redis.call('HVALS', KEYS[2])
