-- customer_put.lua: create or replace a customer of the directory, with
-- its phone and email indexes (the screen pop and lead check look up by them).
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] customer id  ARGV[3] profile (msgpack map with
-- normalised `phones` and lowercased `emails` lists)
-- Reply: {"ok", "created"|"updated"} | {"conflict", field, message}
local cid, raw = ARGV[2], ARGV[3]
local p = cmsgpack.unpack(raw)
local phones_k, emails_k = key('customers', 'phone'), key('customers', 'email')
for i, ph in ipairs(p.phones or {}) do
  local owner = redis.call('HGET', phones_k, ph)
  if owner and owner ~= cid then
    return {'conflict', 'phones[' .. (i - 1) .. ']', 'phone ' .. ph .. ' already belongs to customer ' .. owner}
  end
end
for i, em in ipairs(p.emails or {}) do
  local owner = redis.call('HGET', emails_k, em)
  if owner and owner ~= cid then
    return {'conflict', 'emails[' .. (i - 1) .. ']', 'email ' .. em .. ' already belongs to customer ' .. owner}
  end
end
local old = redis.call('HGET', key('customers'), cid)
if old then
  local o = cmsgpack.unpack(old)
  for _, ph in ipairs(o.phones or {}) do redis.call('HDEL', phones_k, ph) end
  for _, em in ipairs(o.emails or {}) do redis.call('HDEL', emails_k, em) end
end
for _, ph in ipairs(p.phones or {}) do redis.call('HSET', phones_k, ph, cid) end
for _, em in ipairs(p.emails or {}) do redis.call('HSET', emails_k, em, cid) end
redis.call('HSET', key('customers'), cid, raw)
return {'ok', old and 'updated' or 'created'}
