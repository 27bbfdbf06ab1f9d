-- queue_waiting.lua: the items waiting in one queue, in routing order, for
-- the waiting list (GET /api/v1/queues/{name}/waiting). Read only.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] queue  ARGV[3] most items listed
-- Reply: msgpack {waiting = count, items = `waiting_list` rows} | nil (no such queue)
local q, limit = ARGV[2], num(ARGV[3])
if not redis.call('ZSCORE', key('queues'), q) then return nil end
local items = waiting_list(q, limit)
local reply = {waiting = redis.call('ZCARD', key('queue', q, 'waiting'))}
if #items > 0 then reply.items = items end
return cmsgpack.pack(reply)
