-- check.lua: verify the routing invariants on a consistent snapshot (one
-- script, so no write interleaves). Used by `presence check` and after every
-- concurrency test.
--   * every open item is in exactly one state and exactly one place: queued
--     in its queue's waiting set, or offered to / held by exactly one agent;
--   * no agent holds more than its capacity, or more of a channel than its cap;
--   * each agent's load equals the weights of what it holds;
--   * no item is lost: created = open + completed + abandoned.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)
-- Reply: {breach sentence...} (empty when all hold)
local out = {}
local function breach(s) out[#out + 1] = s end
local holder = {}
local OPEN = {queued = true, offered = true, assigned = true, wrapup = true}

for _, aid in ipairs(redis.call('SMEMBERS', key('agents'))) do
  local ak = key('agent', aid)
  local a = hmget(ak, {'cap', 'load', 'n'})
  local cap, load, n = num(a.cap), num(a.load), num(a.n)
  local sum, count, per = 0, 0, {}
  local function tally(ids, states, what)
    for _, wid in ipairs(ids) do
      local it = hmget(key('work', wid), {'state', 'agent', 'channel', 'weight'})
      if holder[wid] then
        breach('item ' .. wid .. ' is held by two agents: ' .. holder[wid] .. ' and ' .. aid)
      end
      holder[wid] = aid
      if not states[it.state or ''] then
        breach('item ' .. wid .. ' is in ' .. aid .. "'s " .. what .. ' but its state is ' .. tostring(it.state))
      end
      if it.agent ~= aid then
        breach('item ' .. wid .. ' is in ' .. aid .. "'s " .. what .. ' but names agent ' .. tostring(it.agent))
      end
      sum = sum + num(it.weight)
      count = count + 1
      if it.channel then per[it.channel] = (per[it.channel] or 0) + 1 end
    end
  end
  tally(redis.call('SMEMBERS', ak .. ':offers'), {offered = true}, 'offers')
  -- (the agent's field `w`, and the set of an agent written before: `in_hand`)
  tally(in_hand(aid), {assigned = true, wrapup = true}, 'work in hand')
  if load > cap then
    breach('agent ' .. aid .. ' holds ' .. load .. ' units, over its capacity of ' .. cap)
  end
  if load ~= sum then
    breach('agent ' .. aid .. ' load is ' .. load .. ' but its items weigh ' .. sum)
  end
  if n ~= count then
    breach('agent ' .. aid .. ' item count is ' .. n .. ' but it holds ' .. count)
  end
  for ch, c in pairs(per) do
    local chcap = channel(ch).cap
    if chcap > 0 and c > chcap then
      breach('agent ' .. aid .. ' holds ' .. c .. ' ' .. ch .. ' items, over the cap of ' .. chcap)
    end
    if num(redis.call('HGET', ak, 'c:' .. ch)) ~= c then
      breach('agent ' .. aid .. ' ' .. ch .. ' count disagrees with the ' .. c .. ' items it holds')
    end
  end
end

local waiting_in = {}
for _, q in ipairs(redis.call('ZRANGE', key('queues'), 0, -1)) do
  for _, wid in ipairs(redis.call('ZRANGE', key('queue', q, 'waiting'), 0, -1)) do
    if waiting_in[wid] then
      breach('item ' .. wid .. ' waits in two queues: ' .. waiting_in[wid] .. ' and ' .. q)
    end
    waiting_in[wid] = q
    if holder[wid] then
      breach('item ' .. wid .. ' waits in ' .. q .. ' and is held by ' .. holder[wid])
    end
  end
end

-- overflow: a borrowed entry is a queued item of another queue that
-- overflows to this one (store/lua/queue_escalate.lua)
for _, q in ipairs(redis.call('ZRANGE', key('queues'), 0, -1)) do
  for _, wid in ipairs(redis.call('ZRANGE', key('queue', q, 'borrowed'), 0, -1)) do
    local it = hmget(key('work', wid), {'state', 'ovf', 'queue'})
    if it.state ~= 'queued' then
      breach('item ' .. wid .. ' is borrowed by ' .. q .. ' but is ' .. tostring(it.state))
    elseif it.ovf ~= q then
      breach('item ' .. wid .. ' is borrowed by ' .. q .. ' but overflows to ' .. tostring(it.ovf))
    elseif waiting_in[wid] ~= it.queue then
      breach('item ' .. wid .. ' is borrowed by ' .. q .. ' but does not wait in its queue ' .. tostring(it.queue))
    end
  end
end

local open = redis.call('ZRANGE', key('work', 'open'), 0, -1)
for _, wid in ipairs(open) do
  local it = hmget(key('work', wid), {'state', 'agent', 'queue'})
  local st = it.state
  if not st then
    breach('open item ' .. wid .. ' has no record')
  elseif not OPEN[st] then
    breach('item ' .. wid .. ' is ' .. st .. ' but still listed as open')
  elseif st == 'queued' then
    if waiting_in[wid] ~= it.queue then
      breach('item ' .. wid .. ' is queued but not waiting in its queue ' .. tostring(it.queue))
    end
  elseif holder[wid] ~= it.agent then
    breach('item ' .. wid .. ' is ' .. st .. ' for ' .. tostring(it.agent) .. ' but that agent does not hold it')
  end
end
for wid, q in pairs(waiting_in) do
  if redis.call('HGET', key('work', wid), 'state') ~= 'queued' then
    breach('item ' .. wid .. ' waits in ' .. q .. ' but is not queued')
  end
end

-- the items' lives as counted in `metrics` (count_item, count), plus what a center
-- counted in the older hash `stats` before: no item is counted in both
-- (the arrivals and ends: `stats|created`, `stats|completed` and
-- `stats|abandoned` of before, and the counters `created+|<queue>|<channel>`,
-- `completed+|...`, `abandoned+|...` of since: `count`)
local st = hmget(key('stats'), {'created', 'completed', 'abandoned'})
local m = hmget(key('metrics'), {'stats|created', 'stats|completed', 'stats|abandoned'})
local created = num(st.created) + num(m['stats|created'])
local done = num(st.completed) + num(m['stats|completed'])
local gone = num(st.abandoned) + num(m['stats|abandoned'])
local all = redis.call('HGETALL', key('metrics'))
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 11) == 'completed+|' then done = done + num(all[i + 1])
  elseif string.sub(f, 1, 11) == 'abandoned+|' then gone = gone + num(all[i + 1])
  elseif string.sub(f, 1, 9) == 'created+|' then created = created + num(all[i + 1]) end
end
if created ~= #open + done + gone then
  breach('items lost: ' .. created .. ' created, but ' .. #open .. ' open + ' .. done ..
         ' completed + ' .. gone .. ' abandoned = ' .. (#open + done + gone))
end
return out
