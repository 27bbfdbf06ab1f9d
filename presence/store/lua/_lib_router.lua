-- _lib_router.lua: the router's decision and commit for a batch of items
-- (`route_queues`, the whole of route.lua), and routing inside a batched
-- call (`route_later`, `route_inline_begin`, `route_inline_end`): an intake
-- that finds a ready agent, or a completion or a decline that frees one,
-- routes in the same call, by the same function, instead of waking the
-- dispatcher for a second call.
-- Relies on _lib_core.lua (key, num, hmget, maker, on_enter, created_of), _lib_queue.lua (made_item,
-- defer_new_items, deferred_of, place, place_all, is_unplaced, has_no_borrowed, take_idle),
-- _lib_config.lua (strategy, channel, queue_conf), _lib_agent.lua (touch_agent,
-- touch_fields, reindex), _lib_route.lua (make_offer, assign) and _lib_core.lua's
-- history_of.
--
-- The rule: woken queues are served by queue priority (higher first); the
-- waiting items of queues that share a priority are merged and taken by item
-- priority, then age (their wait scores are comparable across queues), then
-- id. Each item is offered to the best eligible agent of its queue's ready
-- index (see reindex in _lib_agent.lua). An agent is eligible when it has
-- room for the channel's weight, is under the channel's cap, holds every
-- required skill at or above its level, and has not declined the item.
-- Routable status, a live socket and queue membership are implied by the
-- index. The agent who let the item's last offer time out gets it only when
-- nobody else can. presence/router/policy.py is the same rule as a pure
-- function.

local PAGE = 32
-- most waiting items one call examines per group of queues of equal priority
local EXAMINE_MAX = 2048

-- The item's fields both the pick and the offer need, read once, by name.
local ITEM = {'channel', 'weight', 'req', 'missed_by', 'data', 'queue', 'ovf', 'handoff', 'created', 'offers'}

-- A candidate agent's fields, read for every candidate examined: what
-- `touch_agent` reads to take the item (touch_fields: so the chosen agent
-- is not read twice), then the level of each required skill. Kept as the
-- plain HMGET reply (no table built per agent); touch_fields also says
-- where the capacity, the load and the items of the item's channel are in it.

-- The best agent for item `wid` (nil when nobody can take it now), the
-- item's ITEM fields by name, and the agent's fields as `touch_agent` reads
-- them; at most `scan` candidates examined. `first`: the index's first PAGE
-- members when the caller has them as they still are (else nil).
local function pick(q, wid, ready, scan, first)
  -- an item made in this call has no declines yet, and its fields are known
  local new = made_item(wid)
  local it = new or hmget(key('work', wid), ITEM)
  local ch, w, missed_by = it.channel, num(it.weight), it.missed_by
  -- the agent who let this item's offer time out: the last resort, so the
  -- item rings elsewhere first but is never stranded
  local fallback = nil
  local cap = channel(ch).cap
  local base, at = touch_fields(ch)
  local CAP, LOAD, ON_CHANNEL, SKILLS = at.cap, at.load, at.on, #base
  local fields, need = base, {}
  if it.req then
    for s, lvl in pairs(cmsgpack.unpack(it.req)) do
      if fields == base then fields = {unpack(base)} end
      fields[#fields + 1] = 'sk:' .. s
      need[#need + 1] = tonumber(lvl)
    end
  end
  local fallback_a = nil
  local declined = key('work', wid, 'declined')
  local any_declined = not new and redis.call('EXISTS', declined) == 1
  local by_free = strategy(q) == 'most_available'
  local off = 0
  while off < scan do
    -- the last page stops at `scan`: at most that many candidates, not the
    -- next multiple of PAGE
    local cands
    if off == 0 and first and scan >= PAGE then
      cands = first
    else
      cands = redis.call('ZRANGE', ready, off, math.min(off + PAGE, scan) - 1)
    end
    if #cands == 0 then return fallback, it, fallback_a end
    for _, aid in ipairs(cands) do
      local a = redis.call('HMGET', key('agent', aid), unpack(fields))
      if num(a[CAP]) - num(a[LOAD]) >= w then
        if cap == 0 or num(a[ON_CHANNEL]) < cap then
          local ok = true
          for i = 1, #need do
            if num(a[SKILLS + i]) < need[i] then ok = false break end
          end
          if ok and (not any_declined or redis.call('SISMEMBER', declined, aid) == 0) then
            if aid ~= missed_by then return aid, it, maker(fields)(a) end
            if not fallback then fallback, fallback_a = aid, maker(fields)(a) end
          end
        end
      elseif by_free then
        -- the index is sorted by free capacity: nobody further on has room
        return fallback, it, fallback_a
      end
    end
    off = off + PAGE
  end
  return fallback, it, fallback_a
end


-- Offer (or, with auto-accept, assign) item `wid` to `aid`; `it` holds
-- the item's ITEM fields, `agent` the agent's as `pick` read them.
local function offer(wid, aid, q, it, agent)
  local wk = key('work', wid)
  local ch, w, data = it.channel, num(it.weight), it.data
  local conf = queue_conf(q)
  -- an overflowed item waits in its own queue and is borrowed by `q`; a
  -- new item of this call may not be in its set yet (`deferred`)
  if not is_unplaced(wid) then redis.call('ZREM', key('queue', it.queue or q, 'waiting'), wid) end
  if it.ovf and it.ovf ~= '' then redis.call('ZREM', key('queue', it.ovf, 'borrowed'), wid) end
  if conf.auto then
    -- (the item in hand, in the agent's record: `assign` writes nothing for it)
    local rec = touch_agent(aid, ch, w, 1, {missed = 0}, agent, wid)
    created_of[wid] = it.created
    assign(wid, aid, q, ch, 'auto', rec, data, num(it.offers) + 1)
    reindex(aid, rec)
  else
    local extra
    if it.handoff then
      -- transferred to this queue with a handoff note: the receiver sees the story
      extra = {handoff = cmsgpack.unpack(it.handoff), history = history_of(wid)}
    end
    make_offer(wid, aid, q, ch, w, data, conf.timeout, extra, nil, num(it.offers) + 1, agent)
  end
end

-- Route queues `names` (in any order; unknown and repeated names are
-- skipped): at most `budget` items assigned, at most `scan` candidates
-- examined per item. Returns the count assigned and the queues that may
-- have more. The caller brackets it with events_begin / events_publish.
local function route_queues(names, budget, scan)
  local qs, named = {}, {}  -- the woken queues that exist: {name, prio}
  for i = 1, #names do
    -- a queue named twice would be read twice in one batch, and its items
    -- offered twice: to two agents at once
    local prio = not named[names[i]] and queue_conf(names[i]).prio
    named[names[i]] = true
    if prio then qs[#qs + 1] = {name = names[i], prio = prio} end
  end
  table.sort(qs, function(a, b)
    if a.prio ~= b.prio then return a.prio > b.prio end
    return a.name < b.name
  end)

  -- most waiting items one call examines per group of queues of equal priority
  local assigned = 0
  local more = {}
  local g = 1
  while g <= #qs do
    local last = g
    while last < #qs and qs[last + 1].prio == qs[g].prio do last = last + 1 end
    if budget <= 0 then
      for k = g, last do more[#more + 1] = qs[k].name end
    else
      -- a few more than the budget per queue, so items nobody can take yet (a
      -- rare skill, a declined agent) do not block the ones behind them; when
      -- a whole page is such items and budget is left, the next page is read,
      -- up to EXAMINE_MAX items per call, so a long head of items nobody can
      -- take never starves a takeable item behind it
      local window = budget + 16
      local skip, served, full, here, wins = {}, {}, {}, {}, {}
      -- queues with nothing waiting and nothing borrowed (one EXISTS): there
      -- is nothing to read, nor to count agents for
      local idle = {}
      local examined, first = 0, true
      local again = true
      while again do
        again = false
        local batch = {}  -- waiting entries {wid, score, queue that may take it, borrowed}
        local got_n = {}
        -- queues whose ready index was just counted non-empty, and the first
        -- page of each index read to count it (for `pick`), until an offer
        -- (which may take any of their agents' last room) makes them stale
        local has_ready, ready_page = {}, {}
        local taken, sources = {}, 0
        for k = g, last do
          local q = qs[k].name
          local known = first and take_idle(q)
          if first and not deferred_of(q)
             and (known or (known == nil
                            and redis.call('EXISTS', key('queue', q, 'waiting'), key('queue', q, 'borrowed')) == 0)) then
            idle[q] = true
            served[#served + 1] = q
          end
          local ready_n = 0
          if not idle[q] and (first or full[q]) then
            -- the first page, which the first `pick` reads, counts the index
            -- as far as the page window needs: past PAGE agents, the window
            -- is the budget's unless that is larger still
            local page = redis.call('ZRANGE', key('queue', q, 'ready'), 0, PAGE - 1)
            ready_n, ready_page[q] = #page, page
            if ready_n == PAGE and window > 8 * PAGE + 16 then
              ready_n = redis.call('ZCARD', key('queue', q, 'ready'))
            end
          elseif not idle[q] then
            -- none of its items in this page: only whether it has agents
            ready_n = redis.call('ZCARD', key('queue', q, 'ready'))
          end
          has_ready[q] = ready_n > 0
          if ready_n > 0 and (first or full[q]) then
            -- a saturated queue (few agents with room, a long line) reads a
            -- page sized to the agents who can take work, not to the budget:
            -- reading and sorting hundreds of items to place three would cost
            -- far more than placing them
            wins[q] = wins[q] or math.min(window, 8 * ready_n + 16)
            local from, win = skip[q] or 0, wins[q]
            local new = deferred_of(q)
            if new and #new > win then
              place(q)
              new = nil
            end
            if new then
              -- new items of this call, the set otherwise empty: the page is them
              for _, e in ipairs(new) do
                batch[#batch + 1] = {wid = e.wid, score = e.score, queue = q}
              end
              got_n[q] = #new
              full[q] = #new == win
            else
              local got = redis.call('ZRANGE', key('queue', q, 'waiting'), from, from + win - 1, 'WITHSCORES')
              for n = 1, #got, 2 do
                batch[#batch + 1] = {wid = got[n], score = tonumber(got[n + 1]), queue = q}
              end
              got_n[q] = #got / 2
              full[q] = #got == 2 * win
            end
            sources = sources + 1
            if first then
              here[q] = 0
              served[#served + 1] = q
              -- overflow: items of other queues this queue's agents may also take
              -- (store/lua/queue_escalate.lua), merged by the same wait score
              if not has_no_borrowed(q) and redis.call('EXISTS', key('queue', q, 'borrowed')) == 1 then
                local got = redis.call('ZRANGE', key('queue', q, 'borrowed'), 0, window - 1, 'WITHSCORES')
                for n = 1, #got, 2 do
                  batch[#batch + 1] = {wid = got[n], score = tonumber(got[n + 1]), queue = q, borrowed = true}
                end
                sources = sources + 1
              end
            end
          else
            full[q] = false
          end
        end
        -- one page of one sorted set is in order already (equal scores by
        -- member, as Redis orders them); merging several needs the sort. An
        -- overflowed item can be in the batch twice, from its own queue and
        -- as borrowed (its `borrowed` flag): its own queue's agents come first.
        -- Without that last key the two entries are equal and table.sort,
        -- which is not stable, would pick the queue at random.
        if sources > 1 then
          table.sort(batch, function(a, b)
            if a.score ~= b.score then return a.score < b.score end
            if a.wid ~= b.wid then return a.wid < b.wid end
            return b.borrowed == true and a.borrowed == nil
          end)
        end
        for _, e in ipairs(batch) do
          if budget <= 0 then break end
          local wid, q = e.wid, e.queue
          local ready = key('queue', q, 'ready')
          -- with borrowed items one item can be in the batch twice
          if not taken[wid] and (has_ready[q] or redis.call('EXISTS', ready) == 1) then
            local aid, it, agent = pick(q, wid, ready, scan, ready_page[q])
            if aid then
              taken[wid] = true
              has_ready, ready_page = {}, {}
              offer(wid, aid, q, it, agent)
              budget = budget - 1
              assigned = assigned + 1
              here[q] = here[q] + 1
            end
          end
        end
        -- An offered item left its own waiting set, whichever queue's agent
        -- took it: count it against that set's page when the page held it.
        -- (Counted against the borrowing queue instead, the own queue's next
        -- page would start one item too far and skip an item unexamined.)
        local page_here = {}
        for _, e in ipairs(batch) do
          if taken[e.wid] and not e.borrowed then page_here[e.queue] = (page_here[e.queue] or 0) + 1 end
        end
        -- the new items not taken join their set, where the next page is read
        for q in pairs(got_n) do place(q, taken) end
        examined = examined + #batch
        first = false
        for q, n in pairs(got_n) do
          -- offered items left the waiting set; the rest stay ahead of the next page
          skip[q] = (skip[q] or 0) + n - (page_here[q] or 0)
          if full[q] and budget > 0 and examined < EXAMINE_MAX then again = true end
        end
      end
      for _, q in ipairs(served) do
        -- not when only the examine cap stopped it: that would spin; the
        -- dispatcher's idle pass comes back to it
        if idle[q] then
          -- as a queue read and found empty: one that has ready agents, once the budget is spent
          if budget <= 0 and redis.call('ZCARD', key('queue', q, 'ready')) > 0 then more[#more + 1] = q end
        elseif budget <= 0 or (here[q] > 0 and full[q]) then
          more[#more + 1] = q
        end
      end
    end
    g = last + 1
  end
  return assigned, more
end

-- Routing inside a batched call (store/scripts.py). With a budget (the
-- dispatcher's, when the server routes inline), the queues a call adds
-- work to or frees an agent in are noted (`route_later`) and routed once,
-- after every call of the batch (`route_inline_end`): exactly the call
-- route.lua would make next. Without one, `route_later` hands the queues
-- back for the caller to wake the dispatcher with, as before.
local inline_budget, inline_scan, to_route, to_route_set
on_enter(function()
  inline_budget, inline_scan, to_route, to_route_set = nil, nil, {}, {}
end)

local function route_inline_begin(budget, scan)
  if budget and budget > 0 then
    inline_budget, inline_scan = budget, scan
    defer_new_items()
  end
end

-- The queues the caller should still wake: none when they will be routed
-- in this call.
local function route_later(queues)
  if not inline_budget then return queues end
  for _, q in ipairs(queues) do
    if q and not to_route_set[q] then
      to_route_set[q] = true
      to_route[#to_route + 1] = q
    end
  end
  return {}
end

-- Route what the batch noted; the queues that may have more, for the
-- dispatcher. A failure (a bug) must not undo the batch's replies, which
-- Redis has already applied: the queues then go to the dispatcher instead.
local function route_inline_end()
  if #to_route == 0 then
    place_all()
    return {}
  end
  local ok, assigned_or_err, more = pcall(route_queues, to_route, inline_budget, inline_scan)
  -- every new item the router did not take waits in its set, even after a failure
  place_all()
  if not ok then return to_route end
  return more
end
