-- Records what one bridge knows of its subscriptions ("spans") and decides, for every span
-- that ended, whether another span was subscribed across its end or events may be lost.
--
-- Every number is a beacon number of the registry's chain. A span's record:
--   born    the last beacon its bridge read before it began (0 for a process's first span)
--   since   the first beacon it read: it received everything published after
--   stored  every event it read before this beacon is in the stream
--   dep     when it ended, the last beacon it read: events after may not have been read
--   gone    it ended (told, or silent for longer than the staleness limit); s: its end point
--
-- KEYS[1]: the registry hash. ARGV[1]: staleness limit (ms). ARGV[2]: the chain the caller's
-- numbers belong to. ARGV[3]: the caller's spans (JSON array). ARGV[4]: the caller's name.
-- Besides span records the hash holds 'chain', 'n' and 'run' (beacon.lua), and 'restarted'
-- while a Redis restart is still to be marked.
local key = KEYS[1]
local stale_ms = tonumber(ARGV[1])
local chain = redis.call('HGET', key, 'chain')
if chain ~= ARGV[2] then
  return cjson.encode({chain = chain or '', gaps = {}, start = false, restarted = false, revoked = {}})
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local records = {}
local any = false
local flat = redis.call('HGETALL', key)
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 5) == 'span:' then
    records[string.sub(flat[i], 6)] = cjson.decode(flat[i + 1])
    any = true
  end
end

-- Where a span's coverage ends: what it stored, or where it began if it stored nothing.
local function point(r)
  local s = r.stored or r.born
  if r.dep ~= nil and r.dep < s then s = r.dep end
  return s
end

local start = false
local revoked = {}
for _, m in ipairs(cjson.decode(ARGV[3])) do
  local r = records[m.id]
  if r == nil then
    r = {born = m.born}
    records[m.id] = r
    -- Nothing is known of any bridge before this one: what was published is unaccounted for.
    if not any and not m.gone then start = true end
  end
  if r.gone and not m.gone then
    -- Declared ended while its bridge was silent: it may not claim anything from now on.
    table.insert(revoked, m.id)
  else
    r.since = m.since
    r.stored = m.stored
    r.dep = m.dep
    r.at = now
    if m.gone and not r.gone then
      r.gone = true
      r.s = point(r)
    end
  end
end

-- A bridge that stopped refreshing is gone, as of what it last reported.
for _, r in pairs(records) do
  if not r.gone and now - r.at > stale_ms then
    r.gone = true
    r.s = point(r)
  end
end

-- Coverage can resume only with a live span that reads beacons: a gap is declared after it
-- ended, never while it lasts.
local resumed = false
for _, y in pairs(records) do
  if not y.gone and y.since ~= nil then resumed = true end
end

-- beacon.lua emptied the registry for another Redis process: that is the gap (it subsumes a
-- start), marked once a span reads beacons again.
local restarted = false
if redis.call('HGET', key, 'restarted') then
  start = false
  if resumed then
    restarted = true
    redis.call('HDEL', key, 'restarted')
  end
end

local gaps = {}
for id, r in pairs(records) do
  local claimable = r.claimed == nil or now - r.claimed_at > stale_ms
  if r.gone and not r.resolved and claimable then
    local s = r.s
    local covered, pending = false, false
    for other, y in pairs(records) do
      if other ~= id then
        if y.since ~= nil and y.since <= s and y.stored ~= nil and y.stored >= s then
          covered = true
        end
        if not y.gone and ((y.since ~= nil and y.since <= s) or (y.since == nil and y.born < s)) then
          pending = true
        end
      end
    end
    if covered then
      r.resolved = true
    elseif not pending and resumed then
      r.claimed = ARGV[4]
      r.claimed_at = now
      table.insert(gaps, id)
    end
  end
end

for id, r in pairs(records) do
  if r.resolved and now - r.at > 10 * stale_ms then
    redis.call('HDEL', key, 'span:' .. id)
  else
    redis.call('HSET', key, 'span:' .. id, cjson.encode(r))
  end
end
return cjson.encode({chain = chain, gaps = gaps, start = start, restarted = restarted,
  revoked = revoked})
