-- call_control.lua: the agent's call control (answer, hold, resume, mute,
-- unmute, transfer, hangup) for a call in hand: the new call state is kept
-- on the item, shown on the agent's sockets (call.state) and relayed to the
-- telephony system as a webhook event.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] agent id  ARGV[4] action  ARGV[5] target
-- Reply: {"ok", call state} | {"not_found"|"not_yours"|"conflict"|"invalid", field, message}
local wid, aid, action, target = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local STATE = {answer = 'active', hold = 'held', resume = 'active', mute = 'muted',
               unmute = 'active', transfer = 'transferring', hangup = 'ended'}
local state = STATE[action]
if not state then
  return {'invalid', 'action', 'unknown action ' .. action}
end
local wk = key('work', wid)
local it = hmget(wk, {'state', 'agent', 'queue', 'channel'})
if not it.state then return {'not_found', 'work_id', 'no work item ' .. wid} end
if it.agent ~= aid or (it.state ~= 'assigned' and it.state ~= 'wrapup') then
  return {'not_yours', 'work_id', 'work item ' .. wid .. ' is not in your hands'}
end
local call = redis.call('HGET', key('case', wid), 'call_id')
if not call or call == '' then
  return {'conflict', 'work_id', 'work item ' .. wid .. ' is not a call'}
end
redis.call('HSET', wk, 'call_state', state)
record({ev = 'call.control', work = wid, agent = aid, action = action, target = target,
        queue = it.queue, channel = it.channel}, wid)
hook('call.control', {work_id = wid, call_id = call, action = action, target = target, agent_id = aid,
                      extension = redis.call('HGET', key('agent', aid), 'ext') or ''})
emit({type = 'call.state', to = aid, work_id = wid, state = state})
return {'ok', state}
