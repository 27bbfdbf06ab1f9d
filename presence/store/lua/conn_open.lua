-- conn_open.lua: an agent socket was accepted by some process.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] connection id  ARGV[4] lease (ms)
-- ARGV[5] "1": also read the agent's snapshot (the agent socket's connect: one round trip)
-- Reply: {"ok", woken queue...}
--      | with ARGV[5] "1": {"ok", {woken queue...}, packed view, {item hash...}}
--        (see agent_snapshot in _lib_agent.lua)
--      | {"not_found", "agent_id", message}
local aid, conn, lease = ARGV[2], ARGV[3], num(ARGV[4])
local ak = key('agent', aid)
if redis.call('SISMEMBER', key('agents'), aid) == 0 then
  return {'not_found', 'agent_id', 'no agent ' .. aid .. ' is configured in this center'}
end
-- the socket's lease is renewed by its process; if the process dies the lease
-- runs out and sweep.lua counts the socket as gone
local conns = -1
if redis.call('ZADD', key('timer', 'leases'), NOW + lease, aid .. '|' .. conn) == 1 then
  conns = redis.call('HINCRBY', ak, 'conns', 1)
end
-- back within the grace period: everything stays as it was
redis.call('ZREM', key('timer', 'graces'), aid)
local status = redis.call('HGET', ak, 'status')
local woke
if not status or status == rule('offline_status', 'Offline') then
  local login = rule('login_status', 'Away')
  local def = status_def(login) or {routable = false}
  woke = set_status(aid, login, '', def.routable == true, 'login')
elseif conns > 1 then
  -- another tab (or a socket not yet seen dead) was live already: the
  -- agent's index entries and its view (connected) are unchanged, so there
  -- is nothing to re-index and nothing new to tell anyone
  woke = {}
else
  woke = reindex(aid)
  emit_agent(aid, 'status')
end
if ARGV[5] == '1' then
  local packed, items = agent_snapshot(aid)
  return {'ok', woke, packed, items}
end
return {'ok', unpack(woke)}
