-- conn_renew.lua: a process pushes back the leases of its live sockets.
-- Only leases that still exist are renewed: one that is gone was either
-- released by conn_close (the socket closed while this call was on its way:
-- it must not come back) or swept while the process could not reach Redis
-- (an outage longer than the lease). The caller tells the two apart by
-- asking its hub whether the socket is still open, and registers a live one
-- again with conn_open.
-- Two commands for the whole chunk (ZMSCORE, then ZADD XX), not two per
-- socket: with 10,000 sockets a command per member would hold Redis for
-- ~2.5 ms per 500 members, every routing call waiting behind it
-- (docs/PERFORMANCE.md).
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] lease (ms)  ARGV[3..] "agent_id|conn_id" members
-- Reply: {member whose lease was gone...}
local deadline = NOW + num(ARGV[2])
local leases = key('timer', 'leases')
local gone = {}
if #ARGV < 3 then return gone end
local scores = redis.call('ZMSCORE', leases, unpack(ARGV, 3))
local args = {}
for i = 3, #ARGV do
  if scores[i - 2] then
    args[#args + 1] = deadline
    args[#args + 1] = ARGV[i]
  else
    gone[#gone + 1] = ARGV[i]
  end
end
-- XX: never adds; a lease released between the two commands cannot be
-- (atomic script), but it also documents that renewal never creates one
if #args > 0 then redis.call('ZADD', leases, 'XX', unpack(args)) end
return gone
