-- case_csat.lua: the customer's satisfaction answer (CSAT, 1-5 and a comment)
-- for a completed case, once per case. It is kept on the case, recorded in
-- the event stream as `csat` for the agent who handled the case and its queue
-- (the KPIs, the reports and the wallboard count it), and sent as the `csat`
-- webhook event. The link's signature and expiry were checked by the caller.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] score (1-5)  ARGV[4] comment
-- Reply: {"ok", agent, queue} | {"not_found"|"conflict", field, message}
local wid, score, comment = ARGV[2], num(ARGV[3]), ARGV[4]
local ck = key('case', wid)
if redis.call('EXISTS', ck) == 0 then
  return {'not_found', 'work_id', 'no case ' .. wid}
end
local it = hmget(key('work', wid), {'state', 'agent', 'queue', 'channel', 'ended_at'})
if num(it.ended_at) == 0 and it.state ~= 'completed' then
  return {'conflict', 'work_id', 'case ' .. wid .. ' is not completed yet'}
end
if redis.call('HSETNX', ck, 'csat', score) == 0 then
  return {'conflict', 'score', 'this survey was already answered'}
end
local c = hmget(ck, {'owner', 'queue', 'channel'})
local agent, q, ch = c.owner or it.agent or '', c.queue or it.queue or '', c.channel or it.channel or ''
redis.call('HSET', ck, 'csat_comment', comment, 'csat_at', NOW, 'updated', NOW)
record({ev = 'csat', work = wid, agent = agent, queue = q, channel = ch, score = score}, wid)
hook('csat', {work_id = wid, score = score, comment = comment, agent_id = agent, queue = q, channel = ch})
return {'ok', agent, q}
