-- _lib_case.lua: cases (presence/cases.py documents their fields): a case
-- is the `case:<work id>` hash of an item that came in through case intake.
-- Owns a case's public view, its status changes, and the named hooks the
-- routing and work helpers call when the item moves (case_assigned,
-- case_enqueued, case_released), so those helpers hold no case code of their own.
-- Relies on _lib_core.lua (key, num, hmget, NOW, emit, record, on_enter) and
-- _lib_webhook.lua (hook).

local CASE_NUM = {created = true, first_response = true, closed = true, updated = true, reopened = true,
                  answered = true, answered_at = true, replies = true, composing_until = true,
                  csat = true, csat_at = true}
local function case_view(wid)
  local h = redis.call('HGETALL', key('case', wid))
  if #h == 0 then return nil end
  local c = {work_id = wid}
  for i = 1, #h, 2 do
    if CASE_NUM[h[i]] then c[h[i]] = tonumber(h[i + 1]) else c[h[i]] = h[i + 1] end
  end
  c.lead = c.lead == '1'
  return c
end

-- Tell the item's holder (when there is one) that its case changed.
local function case_updated(wid, to)
  local c = case_view(wid)
  if c and to and to ~= '' then
    emit({type = 'case.updated', to = to, work_id = wid, case = c})
  end
  return c
end

-- Set a case's status; reports it to the holder and to the webhooks.
local function case_set_status(wid, status, by)
  local ck = key('case', wid)
  local cfg = hmget(key('cases', 'config'), {'closed'})
  local prev = redis.call('HGET', ck, 'status')
  if prev == status then return false end
  redis.call('HSET', ck, 'status', status, 'updated', NOW)
  if status == cfg.closed then
    redis.call('HSET', ck, 'closed', NOW)
  elseif prev == cfg.closed then
    redis.call('HSET', ck, 'closed', 0)
    redis.call('HINCRBY', ck, 'reopened', 1)
  end
  local q = redis.call('HGET', ck, 'queue') or ''
  record({ev = 'case.status', work = wid, status = status, prev = prev or '', by = by, queue = q}, wid)
  hook('case.status', {work_id = wid, status = status, prev = prev or '', by = by})
  return true
end

-- Items this call made without a case (work_create.lua): nothing to look
-- up when one is assigned in the same call.
local caseless
on_enter(function() caseless = {} end)
local function made_without_case(wid)
  caseless[wid] = true
end

-- Item `wid` became agent `aid`'s. A case follows its item: the holder is
-- its owner; the first accept is its first response and moves a new case
-- to the working status.
local function case_assigned(wid, aid)
  local ck = key('case', wid)
  if not caseless[wid] and redis.call('EXISTS', ck) == 1 then
    local c = hmget(ck, {'status', 'first_response'})
    redis.call('HSET', ck, 'owner', aid, 'updated', NOW)
    if num(c.first_response) == 0 then redis.call('HSET', ck, 'first_response', NOW) end
    local cfg = hmget(key('cases', 'config'), {'initial', 'working'})
    if cfg.working and c.status == cfg.initial then case_set_status(wid, cfg.working, 'system') end
    case_updated(wid, aid)
  end
end

-- Item `wid` waits in queue `q` now: its case is in that queue too.
local function case_enqueued(wid, q)
  if redis.call('EXISTS', key('case', wid)) == 1 then
    redis.call('HSET', key('case', wid), 'queue', q)
  end
end

-- The "being answered by" mark (work_composing.lua) is kept on the case (its
-- view) and, as `composing`, on the item, whose fields the work helpers read
-- anyway: an item nobody is writing to costs them no command. The center's
-- `composing` set (item -> end of the mark) lists the live marks for a
-- wallboard's snapshot (composing_marks.lua); a mark that ran out without
-- a stop (the panel closed mid-sentence) is pruned there on the next mark.
local function case_composing(wid, aid, until_ms)
  if until_ms > 0 then
    redis.call('HSET', key('case', wid), 'composing', aid, 'composing_until', until_ms)
    redis.call('HSET', key('work', wid), 'composing', aid)
    redis.call('ZREMRANGEBYSCORE', key('composing'), '-inf', NOW)
    redis.call('ZADD', key('composing'), until_ms, wid)
  else
    redis.call('HDEL', key('case', wid), 'composing', 'composing_until')
    redis.call('HDEL', key('work', wid), 'composing')
    redis.call('ZREM', key('composing'), wid)
  end
end

-- The ``case.composing`` message of a mark on `wid` by `aid` (until_ms 0:
-- it stopped), as events carry it and snapshots list it.
local function composing_mark(wid, aid, until_ms, q, ch)
  return {type = 'case.composing', work_id = wid, agent_id = aid,
          name = redis.call('HGET', key('agent', aid), 'name') or aid, composing = until_ms > 0,
          until_ms = until_ms, subject = redis.call('HGET', key('case', wid), 'subject') or '',
          queue = q or '', channel = ch or ''}
end

-- Item `wid` left agent `aid` (completed, abandoned, transferred, pulled)
-- while marked: the mark ends with it, so no wallboard shows a reply that
-- will not come.
local function case_released(wid, aid)
  case_composing(wid, aid, 0)
  emit({type = 'case.composing', sup = 1, to = aid, work_id = wid, agent_id = aid, composing = false,
        until_ms = 0})
end
