-- One beacon: the next number of the registry's counter, published on the beacon channel in
-- the same atomic step, so beacon numbers follow Redis's own order of publication.
-- KEYS[1]: the registry hash. ARGV[1]: the beacon channel. ARGV[2]: a fresh chain id, kept
-- only if the registry has none yet (a new Redis, one that lost its data, or another process).
local key = KEYS[1]
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if not run then
  return redis.error_reply('INFO server shows no run_id: the bridges need Redis 7 or later')
end
-- A chain is numbered by one Redis process. Another one (a restart, perhaps from an older
-- snapshot whose counter is behind numbers the bridges already read; a replica taking over)
-- starts a new chain: its numbers compare with nothing the bridges know. 'restarted' tells
-- refresh.lua to mark the gap once a bridge reads beacons again.
local kept_by = redis.call('HGET', key, 'run')
if kept_by and kept_by ~= run then
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    redis.call('HDEL', key, flat[i])
  end
  redis.call('HSET', key, 'restarted', kept_by)
end
-- A registry without 'run' (a new one, or kept by bridges from before 'run' existed) is
-- adopted by this process.
if kept_by ~= run then
  redis.call('HSET', key, 'run', run)
end
redis.call('HSETNX', key, 'chain', ARGV[2])
local chain = redis.call('HGET', key, 'chain')
local n = redis.call('HINCRBY', key, 'n', 1)
redis.call('PUBLISH', ARGV[1], chain .. ':' .. n)
return {chain, n}
