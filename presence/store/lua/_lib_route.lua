-- _lib_route.lua: the two ways an item reaches an agent: an offer the agent
-- may accept (`make_offer`, `offer_to`) and an assignment (`assign`: an
-- accepted offer, or auto-accept straight from route.lua). Routing only:
-- what a case or a webhook does about it is the named hooks'.
-- Relies on _lib_core.lua (key, num, hmget, NOW, emit, record, history_fields, created_of), _lib_agent.lua
-- (touch_agent, held_with, emit_item, reindex), _lib_webhook.lua (webhook_assigned),
-- _lib_case.lua (case_assigned) and _lib_queue.lua (paused, write_item).

-- Offer item `wid` (channel `ch`, weight `w`, stored `data`) to `aid` with
-- the queue's push timeout (seconds, 0 = none): capacity held, timer set,
-- one `offer` event carrying the agent's new view. `extra` fields (handoff,
-- history) ride on the offer. The caller has taken the item out of any
-- waiting set. `offers`: the item's count of offers with this one, when
-- the caller read the count (route.lua), else counted here. `agent`: the
-- agent's fields as `touch_agent` reads them, when the caller has them.
local function make_offer(wid, aid, q, ch, w, data, timeout, extra, ev, offers, agent)
  local wk = key('work', wid)
  local rec = touch_agent(aid, ch, w, 1, nil, agent)
  offers = offers or redis.call('HINCRBY', wk, 'offers', 1)
  local expires = 0
  if timeout > 0 then
    expires = NOW + math.floor(timeout * 1000)
    redis.call('ZADD', key('timer', 'offers'), expires, wid)
  end
  -- recorded before the item's write, which then carries its history entry
  record({ev = ev or 'offer', agent = aid, queue = q, channel = ch, work = wid}, wid)
  write_item(wid, {'state', 'offered', 'agent', aid, 'offered_at', NOW, 'expires', expires, 'offers', offers})
  redis.call('SADD', key('agent', aid, 'offers'), wid)
  local hdr = {type = 'offer', to = aid, work_id = wid, expires_at = expires, offered_at = NOW,
               attempt = offers}
  for f, v in pairs(extra or {}) do hdr[f] = v end
  emit_item(hdr, aid, data, rec)
  reindex(aid, rec)
end

-- Offer an item that is in no waiting set and held by nobody to `aid`
-- (transfer, push, reassign, reopen to the last owner).
local function offer_to(wid, aid, q, extra, ev)
  local it = hmget(key('work', wid), {'channel', 'weight', 'data'})
  local timeout = num(redis.call('HGET', key('queue', q), 'push_timeout'), 30)
  make_offer(wid, aid, q, it.channel, num(it.weight), it.data, timeout, extra, ev)
end

-- Make the item the agent's (accepted offer or auto-accept).
-- With `rec` (auto-accept: the caller took the capacity with `touch_agent`
-- in the same call, `missed` set to 0), the event carries the agent's new
-- view (emit_item). `data` is the item's stored blob when the caller
-- already read it; `offers` (auto-accept) the item's count of offers with
-- this assignment.
local function assign(wid, aid, q, ch, via, rec, data, offers)
  local wk = key('work', wid)
  data = data or redis.call('HGET', wk, 'data')
  -- recorded before the item's write, which then carries its history entry
  -- (and an intake's, when this call made the item: one stream entry for both)
  record({ev = 'accept', agent = aid, queue = q, channel = ch, work = wid, via = via, paused = paused(wid, q)},
         wid)
  if via == 'auto' then
    -- straight from the queue (route.lua): never offered, so no open offer
    -- or offer timer to clear, nor an `expires` (every way into a queue
    -- writes it 0). An item assigned in the millisecond it arrived (an
    -- intake routed in its own call; the router read its `created`) gets
    -- `at` instead of its two times, which are then its `created` to every
    -- reader (`accepted_of` in _lib_work.lua)
    if tonumber(created_of[wid]) == NOW then
      write_item(wid, {'state', 'assigned', 'agent', aid, 'at', 1, 'offers', offers})
    else
      write_item(wid, {'state', 'assigned', 'agent', aid, 'offered_at', NOW, 'accepted_at', NOW,
                       'offers', offers})
    end
  else
    redis.call('HSET', wk, unpack(history_fields(wid, {'state', 'assigned', 'agent', aid, 'accepted_at', NOW,
                                                       'expires', 0})))
    redis.call('SREM', key('agent', aid, 'offers'), wid)
    redis.call('ZREM', key('timer', 'offers'), wid)
  end
  -- in hand: with `rec`, the caller's `touch_agent` wrote it (field `w`)
  if not rec then
    local ak = key('agent', aid)
    redis.call('HSET', ak, 'missed', 0, 'w', (held_with(redis.call('HGET', ak, 'w'), wid, true)))
  end
  local hdr = {type = 'work.assigned', to = aid, work_id = wid, state = 'assigned', agent_id = aid,
               accepted_at = NOW, via = via}
  if rec then
    emit_item(hdr, aid, data, rec)
  else
    emit(hdr, data)
  end
  webhook_assigned(wid, aid, q, ch, via, data)
  case_assigned(wid, aid)
end
