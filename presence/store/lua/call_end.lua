-- call_end.lua: the telephony system reports a hang-up. A call still
-- waiting (queued or ringing an agent) ends as abandoned; a call in
-- progress ends the conversation: the agent gets call.state "ended" and the
-- item moves to wrap-up (after-call work, under the queue's limit).
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] call reference ("call:<id>")  ARGV[3] reason
-- Reply: {"ok", work id, "abandoned"|"ended"|"already", woken queue...}
--        | {"not_found", "call_id", message}
local ref, reason = ARGV[2], ARGV[3]
local wid = redis.call('GET', key('thread', ref))
if not wid or redis.call('EXISTS', key('work', wid)) == 0 then
  return {'not_found', 'call_id', 'no call ' .. string.sub(ref, 6) .. ' is known'}
end
local wk = key('work', wid)
local it = hmget(wk, {'state', 'agent', 'queue', 'channel'})
local st, aid = it.state, it.agent
if st == 'queued' or st == 'offered' then
  local woke, faid, q, ch, prev, _, rec = finish(wid, 'abandoned', {reason = reason})
  if prev == 'offered' then
    emit_item({type = 'offer.rescinded', to = faid, work_id = wid, reason = 'abandoned'}, faid, nil, rec)
  end
  -- (counted by its `abandon` record: `count`, _lib_core.lua)
  record({ev = 'abandon', queue = q, channel = ch, work = wid, agent = faid or '', reason = reason,
          was = prev, paused = paused(wid, q)}, wid)
  return {'ok', wid, 'abandoned', unpack(woke)}
end
if st == 'assigned' or st == 'wrapup' then
  redis.call('HSET', wk, 'call_state', 'ended')
  emit({type = 'call.state', to = aid, work_id = wid, state = 'ended'})
  if st == 'assigned' then
    start_wrapup(wid, aid, it.queue)
  end
  record({ev = 'call.ended', agent = aid, queue = it.queue, channel = it.channel, work = wid, reason = reason}, wid)
  hook('call.ended', {work_id = wid, agent_id = aid, reason = reason})
  return {'ok', wid, 'ended'}
end
return {'ok', wid, 'already'}
