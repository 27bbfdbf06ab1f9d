-- work_create.lua: intake of one work item into its queue.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] queue  ARGV[4] channel
-- ARGV[5] priority  ARGV[6] item data (msgpack map, stored and relayed as is)
-- ARGV[7] required skills (msgpack map skill -> level)
-- ARGV[8] idempotency key ("" for none)  ARGV[9] idempotency TTL (s)
-- ARGV[10] digest of the item's body as decoded ("" for none)
-- A reused key answers its first item when the body is the same (its digest,
-- kept on the item, matches) and refuses a different body; the look-up and
-- the new item's key and digest are one step, so of two concurrent posts
-- with one key exactly one makes the item. An item stored without a digest
-- (before digests were kept) matches any body.
-- Outside the queue's hours its rule applies (`intake_queue`, _lib_queue.lua).
-- Reply: {"ok", work id, "created", queue it waits in} | {"ok", existing id, "existing"}
--        | {"invalid", field, message} | {"closed", "queue", message}
local wid, q, ch, prio = ARGV[2], ARGV[3], ARGV[4], num(ARGV[5])
local data, req, idem, ttl = ARGV[6], ARGV[7], ARGV[8], num(ARGV[9], 86400)
local digest = ARGV[10] or ''
-- a second run of this call (store/scripts.py ANSWERS_ITS_RETRY) answers as
-- the first did, and routes the item's queue again
if made_before(wid) then
  local at = redis.call('HGET', key('work', wid), 'queue')
  route_later({at})
  return {'ok', wid, 'created', at}
end
local bad = unknown_target(q, ch)
if bad then return bad end
local target, closed = intake_queue(q, ch)
if closed then return closed end
if idem ~= '' then
  local ik = key('idem', idem)
  local existing = redis.call('GET', ik)
  if existing then
    local was = redis.call('HGET', key('work', existing), 'digest')
    if digest ~= '' and was and was ~= '' and was ~= digest then
      return {'invalid', 'Idempotency-Key', 'Idempotency-Key ' .. idem .. ' was already used for item '
        .. existing .. ' with a different body'}
    end
    return {'ok', existing, 'existing'}
  end
  redis.call('SET', ik, wid, 'EX', ttl)
end
create_item(wid, target, ch, prio, data, req, idem)
made_without_case(wid)
-- routed after the batch when the server routes inline; else the caller wakes the dispatcher
route_later({target})
if idem ~= '' and digest ~= '' then
  redis.call('HSET', key('work', wid), 'digest', digest)
end
return {'ok', wid, 'created', target}
