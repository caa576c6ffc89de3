-- One beacon: the next number of the registry's counter, published on the beacon channel in
-- the same atomic step, so beacon numbers follow Redis's own order of publication.
-- KEYS[1]: the registry hash. ARGV[1]: the beacon channel. ARGV[2]: a fresh chain id, kept
-- only if the registry has none yet (a new Redis, or one that lost its data).
redis.call('HSETNX', KEYS[1], 'chain', ARGV[2])
local chain = redis.call('HGET', KEYS[1], 'chain')
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('PUBLISH', ARGV[1], chain .. ':' .. n)
return {chain, n}
