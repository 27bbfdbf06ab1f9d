-- views.lua: agents' public views (the same `view` the events carry), for
-- snapshots. Read only.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2..] agent ids (none: every agent)
-- Reply: msgpack list of views
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then
  ids = redis.call('SMEMBERS', key('agents'))
  table.sort(ids)
end
local out = {}
for _, aid in ipairs(ids) do
  if redis.call('EXISTS', key('agent', aid)) == 1 then out[#out + 1] = view(aid) end
end
if #out == 0 then return cmsgpack.pack({}) end
return cmsgpack.pack(out)
