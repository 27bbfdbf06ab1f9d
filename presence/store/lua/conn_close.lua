-- conn_close.lua: an agent socket closed. When it was the agent's last one,
-- the agent stops receiving offers and its grace period starts.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] connection id  ARGV[4] grace (ms)
-- Reply: {"ok"}
local aid, conn, grace = ARGV[2], ARGV[3], num(ARGV[4])
if redis.call('SISMEMBER', key('agents'), aid) == 0 then
  -- the agent was deleted while this socket was open: leave no record behind
  redis.call('ZREM', key('timer', 'leases'), aid .. '|' .. conn)
  return {'ok'}
end
if redis.call('ZREM', key('timer', 'leases'), aid .. '|' .. conn) == 1 then
  drop_conn(aid, grace)
end
return {'ok'}
