-- The gap marker for these spans is in the stream: they need no further decision.
-- KEYS[1]: the registry hash. ARGV: span ids.
for _, id in ipairs(ARGV) do
  local field = 'span:' .. id
  local record = redis.call('HGET', KEYS[1], field)
  if record then
    local r = cjson.decode(record)
    r.resolved = true
    r.claimed = nil
    r.claimed_at = nil
    redis.call('HSET', KEYS[1], field, cjson.encode(r))
  end
end
return #ARGV
