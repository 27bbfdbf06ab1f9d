-- agent_status.lua: set an agent's presence status (by the agent, or forced
-- by a supervisor). Leaving a routable status rescinds open offers at once.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] status  ARGV[4] reason
-- ARGV[5] who asked (agent id or "supervisor:<id>")
-- Reply: {"ok", woken queue...} (none when routed inline: route_later) |
--        {"not_found"|"invalid", field, message}
local aid, status, reason, by = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('SISMEMBER', key('agents'), aid) == 0 then
  return {'not_found', 'agent_id', 'no agent ' .. aid .. ' is configured in this center'}
end
local def = status_def(status)
if not def then
  local names = redis.call('HKEYS', key('statuses'))
  table.sort(names)
  return {'invalid', 'status', 'unknown status ' .. status .. ' (expected one of ' .. table.concat(names, ', ') .. ')'}
end
local reasons = def.reasons or {}
if reason ~= '' then
  local found = false
  for _, r in ipairs(reasons) do
    if r == reason then found = true break end
  end
  if not found then
    if #reasons == 0 then
      return {'invalid', 'reason', 'status ' .. status .. ' takes no reason code'}
    end
    return {'invalid', 'reason', 'unknown reason ' .. reason .. ' for ' .. status ..
            ' (expected one of ' .. table.concat(reasons, ', ') .. ')'}
  end
end
local cur = hmget(key('agent', aid), {'status', 'reason'})
if cur.status == status and cur.reason == reason then
  -- choosing the status one already has changes nothing: time in status
  -- keeps counting and no history entry is written
  return {'ok'}
end
local woke = set_status(aid, status, reason, def.routable == true, by)
redis.call('HSET', key('agent', aid), 'missed', 0)
-- routed after the batch, in this call, when the server routes inline: a
-- queue with nothing waiting then costs one EXISTS there instead of a
-- route.lua call from the dispatcher; one with work is offered at once
return {'ok', unpack(route_later(woke))}
