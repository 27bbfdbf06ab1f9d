-- work_transfer.lua: change who has an item, with a handoff note.
--   transfer  the agent holding it hands it to another agent (as an offer
--             carrying the note and the item's history) or to a queue (it
--             waits there; the next offer carries the note and history);
--   reassign  a supervisor forces an offered or in-hand item onto an agent;
--   push      a supervisor offers a queued item to a chosen agent now;
--   pull      a supervisor takes an offered or in-hand item back to its queue.
-- Every change is recorded in the item's history and sent to the webhooks.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] mode  ARGV[4] who ("agent:<id>",
-- "supervisor:<id>", "service:<id>")  ARGV[5] agent who must hold the item
-- ("" for supervisors and services)  ARGV[6] to agent ("" none)
-- ARGV[7] to queue ("" none)  ARGV[8] note
-- Reply: {"ok", new state, woken queue...} | {error code, field, message}
local wid, mode, by, holder_only = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local to_agent, to_queue, note = ARGV[6], ARGV[7], ARGV[8]
local wk = key('work', wid)
local it = hmget(wk, {'state', 'agent', 'queue', 'channel', 'weight'})
local st, holder, q, ch, w = it.state, it.agent or '', it.queue, it.channel, num(it.weight)
if not st then return {'not_found', 'work_id', 'no work item ' .. wid} end
local held = st == 'assigned' or st == 'wrapup'

if mode == 'transfer' then
  if not held then
    return {'conflict', 'work_id', 'work item ' .. wid .. ' is ' .. st .. ', not in hand'}
  end
  if holder_only ~= '' and holder ~= holder_only then
    return {'not_yours', 'work_id', 'work item ' .. wid .. ' is not in your hands'}
  end
elseif mode == 'reassign' or mode == 'pull' then
  if not held and st ~= 'offered' then
    return {'conflict', 'work_id', 'work item ' .. wid .. ' is ' .. st .. '; only an offered or in-hand item can be moved'}
  end
elseif mode == 'push' then
  if st ~= 'queued' then
    return {'conflict', 'work_id', 'work item ' .. wid .. ' is ' .. st .. ', not queued'}
  end
else
  return {'invalid', 'mode', 'unknown mode ' .. mode}
end

if to_agent ~= '' then
  if redis.call('SISMEMBER', key('agents'), to_agent) == 0 then
    local f = mode == 'transfer' and 'to_agent' or 'agent_id'
    return {'not_found', f, 'no agent ' .. to_agent}
  end
  if to_agent == holder and st ~= 'queued' then
    local f = mode == 'transfer' and 'to_agent' or 'agent_id'
    return {'conflict', f, 'agent ' .. to_agent .. ' already has work item ' .. wid}
  end
  -- a colleague must be available; a supervisor may push to anyone signed in with room
  local why = unfit(to_agent, ch, w, mode == 'transfer')
  if why then return {'conflict', mode == 'transfer' and 'to_agent' or 'agent_id', why} end
end
if to_queue ~= '' and not redis.call('ZSCORE', key('queues'), to_queue) then
  return {'not_found', 'to_queue', 'no queue ' .. to_queue}
end

local woke = {}
local function wake(list)
  for _, x in ipairs(list) do woke[#woke + 1] = x end
end
local from = holder
if st == 'queued' then
  redis.call('ZREM', key('queue', q, 'waiting'), wid)
  borrowed(wid, false)
else
  wake((release(wid, mode == 'pull' and 'pulled' or 'transferred')))
end
record({ev = mode, work = wid, from = from, to = to_agent ~= '' and to_agent or (to_queue ~= '' and to_queue or q),
        by = by, note = note, queue = q, channel = ch}, wid)
hook('work.transferred', {work_id = wid, mode = mode, from = from, to_agent = to_agent,
                          to_queue = to_queue, note = note, by = by}, redis.call('HGET', wk, 'data'))
local handoff = {from = from, note = note, by = by}

if to_agent ~= '' then
  local extra = {history = history_of(wid)}
  if mode ~= 'push' or note ~= '' then
    extra.handoff = handoff
    redis.call('HSET', wk, 'handoff', cmsgpack.pack(handoff))
  end
  offer_to(wid, to_agent, q, extra, 'offer')
  return {'ok', 'offered', unpack(woke)}
end
local dest = q
if to_queue ~= '' then
  dest = to_queue
  -- a new queue: its own overflow and relaxation rules start over
  local orig = redis.call('HGET', wk, 'req0')
  if orig then redis.call('HSET', wk, 'req', orig) end
  borrowed(wid, false)
  redis.call('HDEL', wk, 'ovf', 'relax_step')
  if from ~= '' then redis.call('SADD', key('work', wid, 'declined'), from) end
end
if note ~= '' or mode == 'transfer' then
  redis.call('HSET', wk, 'handoff', cmsgpack.pack(handoff))
end
enqueue(wid, dest)
woke[#woke + 1] = dest
return {'ok', 'queued', unpack(woke)}
