-- conn_renew.lua: a process pushes back the leases of its live sockets.
-- Only leases that still exist are renewed: one that is gone was either
-- released by conn_close (the socket closed while this call was on its way:
-- it must not come back) or swept while the process could not reach Redis
-- (an outage longer than the lease). The caller tells the two apart by
-- asking its hub whether the socket is still open, and registers a live one
-- again with conn_open.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] lease (ms)  ARGV[3..] "agent_id|conn_id" members
-- Reply: {member whose lease was gone...}
local deadline = NOW + num(ARGV[2])
local leases = key('timer', 'leases')
local gone = {}
for i = 3, #ARGV do
  local member = ARGV[i]
  if redis.call('ZSCORE', leases, member) then
    redis.call('ZADD', leases, deadline, member)
  else
    gone[#gone + 1] = member
  end
end
return gone
