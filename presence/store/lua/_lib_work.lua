-- _lib_work.lua: an item's life after it reached an agent: an offer taken
-- back to its queue (`requeue`), an item taken from its agent (`release`),
-- the end of an item (`finish`, `complete`), a finished item routed again
-- (`reroute`), wrap-up, and the check that an item is the caller's (`mine`).
-- Relies on _lib_core.lua (key, num, hmget, NOW, emit, count_item, record,
-- history_of, history_fields), _lib_webhook.lua (webhook_completed, webhook_abandoned),
-- _lib_case.lua (case_released),
-- _lib_agent.lua (touch_agent, emit_item, reindex, unfit), _lib_queue.lua
-- (wait_score, borrowed, schedule_escalation, enqueue, idle_read, routes_inline,
-- waiting_changed) and _lib_route.lua
-- (offer_to); _lib_config.lua (rule).

-- Retention (PRESENCE_RETENTION_DAYS, written to rule `retention_ms` by
-- Store.sync_center; 0 or absent: kept forever): a finished item's records
-- expire together, that long after it ended. A TTL set by the call that
-- finishes the item, so memory is flat once a center has run that long, with
-- no sweep to fall behind. The KPI roll-ups and reports do not need them once
-- their hour is rolled up (docs/kpis.md).
-- The item's own records are always there; the others only for some items
-- (a declined offer, a case).
-- (`work:<id>:history`: the history list of an item written before its
-- history moved into its record, _lib_core.lua)
local function item_keys(wid)
  return {key('work', wid)}
end
local function item_extra_keys(wid)
  return {key('work', wid, 'declined'), key('case', wid), key('case', wid, 'comments'),
          key('case', wid, 'messages'), key('work', wid, 'history')}
end
local function retention_ms()
  return math.floor(num(rule('retention_ms', 0)))
end
-- `ms`: how long from now (default: the whole retention, for an item ending
-- now); `it`: the item's `idem` and `replied` fields when the caller read
-- them (RETAIN_FIELDS), else read here; `q`: a queue whose waiting and
-- borrowed sets the router will look at in this call (the freed agent's),
-- read in the same EXISTS as the rare records (`idle_read`).
local RETAIN_FIELDS = {'idem', 'replied'}
local function retain(wid, ms, it, q)
  ms = ms or retention_ms()
  if ms <= 0 then return end
  for _, k in ipairs(item_keys(wid)) do redis.call('PEXPIRE', k, ms) end
  -- one EXISTS for the records most items never have, instead of a PEXPIRE
  -- each, and with them, when they are all absent and so is the queue's
  -- waiting and borrowed, the router's look at the queue
  local extra = item_extra_keys(wid)
  local n
  -- (once per queue: a batch's later completions in a busy queue read as before)
  if q and idle_read[q] == nil then
    n = redis.call('EXISTS', key('queue', q, 'waiting'), key('queue', q, 'borrowed'), unpack(extra))
    if n == 0 then
      idle_read[q] = true
    else
      local all = n
      n = redis.call('EXISTS', unpack(extra))
      -- the rest of the count is the queue's
      idle_read[q] = all == n
    end
  else
    n = redis.call('EXISTS', unpack(extra))
  end
  if n > 0 then
    for _, k in ipairs(extra) do redis.call('PEXPIRE', k, ms) end
  end
  -- the replies to the customer (work_reply.lua marks the item `replied`):
  -- read with `idem`, so an item never replied to pays no command for them
  it = it or hmget(key('work', wid), RETAIN_FIELDS)
  if it.replied then redis.call('PEXPIRE', key('case', wid, 'replies'), ms) end
  -- the item's idempotency record (a day by default) or dedupe reference
  -- never outlives it; LT: a shorter TTL of its own is kept
  local idem = it.idem
  if idem and idem ~= '' then
    redis.call('PEXPIRE', key('idem', idem), ms, 'LT')
    redis.call('PEXPIRE', key('thread', idem), ms, 'LT')
  end
end

-- A finished item routes again (`reroute`): its records are kept again.
local function persist_item(wid)
  for _, k in ipairs(item_keys(wid)) do redis.call('PERSIST', k) end
  for _, k in ipairs(item_extra_keys(wid)) do redis.call('PERSIST', k) end
  if redis.call('HGET', key('work', wid), 'replied') then redis.call('PERSIST', key('case', wid, 'replies')) end
end

-- A record written to a finished item after it ended (a note on a closed
-- case) expires with the item, not later.
local function expire_with_item(wid, k)
  local ms = redis.call('PTTL', key('work', wid))
  if ms > 0 then redis.call('PEXPIRE', k, ms) end
end

-- Put an offered item back in its queue with its original age.
-- Returns the queue name so the caller can wake the dispatcher.
local function requeue(wid, reason, decliner, note)
  local wk = key('work', wid)
  local it = hmget(wk, {'agent', 'channel', 'weight', 'queue', 'score', 'state', 'at', 'created'})
  local aid, ch, w, q, score = it.agent, it.channel, num(it.weight), it.queue, it.score
  if it.state ~= 'offered' then return nil end
  redis.call('SREM', key('agent', aid, 'offers'), wid)
  redis.call('ZREM', key('timer', 'offers'), wid)
  local rec = touch_agent(aid, ch, w, -1)
  if decliner then
    redis.call('SADD', key('work', wid, 'declined'), aid)
  end
  if it.at then
    -- (offered again after its assignment at intake: its accept time stays)
    redis.call('HSET', wk, 'state', 'queued', 'agent', '', 'expires', 0, 'accepted_at', it.created)
    redis.call('HDEL', wk, 'offered_at', 'at')
  else
    redis.call('HSET', wk, 'state', 'queued', 'agent', '', 'expires', 0)
    redis.call('HDEL', wk, 'offered_at')
  end
  waiting_changed(q)
  redis.call('ZADD', key('queue', q, 'waiting'), score, wid)
  borrowed(wid, true, score)
  emit_item({type = 'offer.rescinded', to = aid, work_id = wid, reason = reason}, aid, nil, rec)
  record({ev = reason == 'declined' and 'decline' or 'rescind', reason = reason, agent = aid,
          queue = q, channel = ch, work = wid, note = note or ''}, wid)
  reindex(aid, rec)
  return q
end

-- An item assigned in the millisecond it arrived has `at` instead of
-- `offered_at` and `accepted_at` (_lib_route.lua's `assign`): both are its
-- `created` where they are not written (a later offer or accept writes its
-- own). A write that drops them drops `at` too; one that drops
-- `offered_at` alone writes `accepted_at` first (`requeue`). Readers:
-- `accepted_of` here, `Store.work_view`, kpi/history.py's `item_times`.
local function accepted_of(it)
  return num(it.accepted_at or (it.at and it.created))
end

-- What `finish` reads of the item: what it releases, and what `retain` needs.
local FINISH_FIELDS = {'agent', 'channel', 'weight', 'queue', 'state', 'accepted_at', 'composing',
                       'idem', 'replied', 'expires', 'at', 'created'}
-- and what work_complete.lua reads: those, and what tells its own retry
local COMPLETE_FIELDS = {'ended_at', 'disposition'}
for i = 1, #FINISH_FIELDS do COMPLETE_FIELDS[#COMPLETE_FIELDS + 1] = FINISH_FIELDS[i] end

-- Release an item's capacity and close it (completed or abandoned).
-- Returns the agent's queues that gained room, the agent, queue, channel,
-- the state it was in, when it was accepted (0: never) and, when an agent
-- held it, the agent's fields after the release (`touch_agent`, for
-- emit_item; its `ver` already counts one event). `it`: the item's
-- FINISH_FIELDS when the caller read them (`mine`), else read here.
local function finish(wid, state, extra, it)
  local wk = key('work', wid)
  it = it or hmget(wk, FINISH_FIELDS)
  local aid, ch, w, q, prev = it.agent, it.channel, num(it.weight), it.queue, it.state
  local woke, rec = {}, nil
  if prev == 'queued' then
    redis.call('ZREM', key('queue', q, 'waiting'), wid)
    borrowed(wid, false)
  elseif aid and aid ~= '' then
    -- an offered item is in the agent's offers and the offer timer; one in
    -- hand is in its work, and in wrap-up also in the wrap-up timer
    if prev == 'offered' then
      redis.call('SREM', key('agent', aid, 'offers'), wid)
      redis.call('ZREM', key('timer', 'offers'), wid)
    else
      if prev == 'wrapup' then redis.call('ZREM', key('timer', 'wrapups'), wid) end
      if it.composing then case_released(wid, aid) end
    end
    -- (out of hand: `touch_agent` writes the agent's field `w`)
    local inhand = prev ~= 'offered'
    rec = touch_agent(aid, ch, w, -1, inhand and {idle = NOW} or nil, nil, inhand and wid or nil)
    woke = reindex(aid, rec)
  end
  redis.call('ZREM', key('work', 'open'), wid)
  local fields = {'state', state, 'ended_at', NOW}
  -- a deadline (an offer's, a wrap-up's) ends with the item; a field read
  -- absent (false) or 0 is none to clear, one not read (nil) is cleared
  if it.expires ~= false and it.expires ~= '0' then
    fields[#fields + 1] = 'expires'
    fields[#fields + 1] = 0
  end
  for f, v in pairs(extra or {}) do
    fields[#fields + 1] = f
    fields[#fields + 1] = v
  end
  redis.call('HSET', wk, unpack(history_fields(wid, fields)))
  -- the item's queue, when the call's router will look at it (the agent is
  -- ready there again)
  local look
  if routes_inline() then
    for _, wq in ipairs(woke) do
      if wq == q then look = q end
    end
  end
  retain(wid, nil, it, look)
  if state == 'abandoned' then webhook_abandoned(wid, q, ch, aid, prev, (extra or {}).reason) end
  return woke, aid, q, ch, prev, accepted_of(it), rec
end

-- A queue's recent handle times: the latest HANDLE_KEPT count (work_position.lua
-- has the same figure), and how many more the list may hold before a trim:
-- 500 short integers at most (a few KB a queue), for one LTRIM every 451
-- completions rather than every 17 (0.06 commands per assignment).
local HANDLE_KEPT, HANDLE_SLACK = 50, 450

-- Complete an item in hand (by the agent, or when wrap-up runs out); `it`
-- as for `finish`.
local function complete(wid, disposition, by, it)
  -- recorded first: `finish`'s write of the item carries the history entry
  it = it or hmget(key('work', wid), FINISH_FIELDS)
  record({ev = 'complete', agent = it.agent, queue = it.queue, channel = it.channel, work = wid,
          disposition = disposition, by = by}, wid)
  local woke, aid, q, ch, _, accepted, rec = finish(wid, 'completed', {disposition = disposition}, it)
  if accepted > 0 then
    -- recent handle times feed the expected wait (store/lua/work_position.lua
    -- reads the HANDLE_KEPT latest); trimmed once every few pushes, not on each
    local hk = key('queue', q, 'handle')
    if redis.call('LPUSH', hk, NOW - accepted) >= HANDLE_KEPT + HANDLE_SLACK then
      redis.call('LTRIM', hk, 0, HANDLE_KEPT - 1)
    end
  end
  -- (counted by its `complete` record: `count`, _lib_core.lua)
  webhook_completed(wid, aid, q, ch, disposition, by)
  emit_item({type = 'work.updated', to = aid, work_id = wid, state = 'completed',
             disposition = disposition}, aid, nil, rec)
  return woke
end

-- Take an offered or in-hand item away from its agent without ending it;
-- the caller puts it somewhere (an offer, a queue). Returns the agent's
-- queues that gained room, the agent, and the state it was in.
local function release(wid, reason)
  local wk = key('work', wid)
  local it = hmget(wk, {'agent', 'channel', 'weight', 'state', 'composing'})
  local aid, ch, w, st = it.agent, it.channel, num(it.weight), it.state
  local hdr
  if st == 'offered' then
    redis.call('SREM', key('agent', aid, 'offers'), wid)
    redis.call('ZREM', key('timer', 'offers'), wid)
    hdr = {type = 'offer.rescinded', to = aid, work_id = wid, reason = reason}
  else
    redis.call('ZREM', key('timer', 'wrapups'), wid)
    hdr = {type = 'work.updated', to = aid, work_id = wid, state = reason}
    if it.composing then case_released(wid, aid) end
  end
  -- (out of hand: `touch_agent` writes the agent's field `w`)
  local inhand = st ~= 'offered'
  local rec = touch_agent(aid, ch, w, -1, inhand and {idle = NOW} or nil, nil, inhand and wid or nil)
  redis.call('HSET', wk, 'state', 'queued', 'agent', '', 'expires', 0)
  redis.call('HDEL', wk, 'offered_at', 'accepted_at', 'at', 'wrapup_at', 'missed_by')
  emit_item(hdr, aid, nil, rec)
  local woke = reindex(aid, rec)
  return woke, aid, st
end

-- A finished (completed or abandoned) item of a case routes again: same
-- item, same case, a new routing. It counts as created again, so the
-- checker's created = open + completed + abandoned still holds. The last
-- owner gets it first when it can take it now (in the queue's ready index,
-- room for it); otherwise it waits in its queue like new work.
local function reroute(wid, why)
  local wk = key('work', wid)
  local it = hmget(wk, {'queue', 'agent', 'channel', 'weight', 'req0'})
  local q, last, ch, w = it.queue, it.agent, it.channel, num(it.weight)
  redis.call('HDEL', wk, 'offered_at', 'accepted_at', 'at', 'wrapup_at', 'ended_at', 'disposition',
             'reason', 'handoff', 'ovf', 'relax_step', 'missed_by', 'call_state')
  -- the relaxed skills of the last routing do not carry over
  if it.req0 then redis.call('HSET', wk, 'req', it.req0) end
  redis.call('DEL', key('work', wid, 'declined'))
  persist_item(wid)
  redis.call('HSET', wk, 'created', NOW, 'agent', '', 'state', 'queued')
  redis.call('ZADD', key('work', 'open'), NOW, wid)
  -- (counted as created by its `reopen` record: `count`, _lib_core.lua)
  count_item('reopened')
  record({ev = 'reopen', queue = q, channel = ch, work = wid, reason = why, last = last or ''}, wid)
  if last and last ~= '' and redis.call('ZSCORE', key('queue', q, 'ready'), last)
     and not unfit(last, ch, w) then
    redis.call('HSET', wk, 'score', wait_score(num(redis.call('HGET', wk, 'priority')), NOW))
    -- declined or timed out, it waits like any item: its rules apply
    schedule_escalation(wid, q, NOW)
    offer_to(wid, last, q, {reopened = true, history = history_of(wid)}, 'offer')
    return nil
  end
  enqueue(wid, q, NOW)
  return q
end

-- The item `wid`, checked to be held by (or offered to) agent `aid` in one of
-- `states`; `expected` names those states in the error. Returns the item's
-- {state, agent, queue, channel} by name (and the other `fields`, when
-- given: a list that includes those four), or nil and the error reply.
local MINE_FIELDS = {'state', 'agent', 'queue', 'channel'}
local function mine(wid, aid, states, expected, fields)
  local it = hmget(key('work', wid), fields or MINE_FIELDS)
  if not it.state then
    return nil, {'not_found', 'work_id', 'no work item ' .. wid}
  end
  if it.agent ~= aid then
    return nil, {'not_yours', 'work_id', 'work item ' .. wid .. ' is not yours'}
  end
  if not states[it.state] then
    return nil, {'conflict', 'work_id', 'work item ' .. wid .. ' is ' .. it.state .. ', not ' .. expected}, it
  end
  return it
end

-- Start after-contact work on an item in hand: capacity stays held, and the
-- queue's wrap-up limit completes it (sweep.lua). Returns the deadline (0 = none).
local function start_wrapup(wid, aid, q)
  local limit = num(redis.call('HGET', key('queue', q), 'wrapup_seconds'), 120)
  local deadline = 0
  if limit > 0 then
    deadline = NOW + math.floor(limit * 1000)
    redis.call('ZADD', key('timer', 'wrapups'), deadline, wid)
  end
  redis.call('HSET', key('work', wid), 'state', 'wrapup', 'wrapup_at', NOW, 'expires', deadline)
  emit({type = 'work.updated', to = aid, work_id = wid, state = 'wrapup', wrapup_until = deadline})
  return deadline
end
