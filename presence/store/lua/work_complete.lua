-- work_complete.lua: the agent finishes an item; its capacity is released
-- and the caller wakes the dispatcher for the agent's queues at once.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] work id  ARGV[4] disposition
-- Reply: {"ok", woken queue...} (none when routed inline: route_later) | {error code, "work_id", message}
-- A second run of the same call (redis-py's retry of a call whose reply was
-- lost: the same arguments, the clock included) finds the item completed
-- by this agent at this instant with this disposition, and answers as the
-- first did, waking all the agent's queues (a superset of those it woke):
-- so a call made by the server keeps no reply (scripts.py ANSWERS_ITS_RETRY).
-- The clock is what tells them apart: a second completion by the same agent
-- with the same disposition within the first's millisecond (a double click
-- reaching the server that fast) is taken for that retry and answered "ok",
-- applying nothing; a later one is refused with `conflict`.
local aid, wid, disposition = ARGV[2], ARGV[3], ARGV[4]
-- what `finish` reads too, in the same HMGET, and what a retry finds
local it, err, was = mine(wid, aid, {assigned = true, wrapup = true}, 'in hand', COMPLETE_FIELDS)
if not it then
  -- `was`: the item in another state, this agent's (`mine`'s conflict)
  if was and was.state == 'completed' and tonumber(was.ended_at) == NOW
     and was.disposition == disposition then
    local queues = redis.call('HGET', key('agent', aid), 'queues')
    return {'ok', unpack(route_later(queues and cmsgpack.unpack(queues) or {}))}
  end
  return err
end
local woke = complete(wid, disposition, 'agent', it)
return {'ok', unpack(route_later(woke))}
