-- _lib_webhook.lua: outbound webhooks (presence/webhooks.py delivers them):
-- appending an event to the stream of every webhook subscribed to its type,
-- in the same atomic call as the change it reports, so no event is lost
-- between the two. The item's stored blob rides along untouched (field `i`),
-- like the pub/sub events. Also the named hooks the routing and work
-- helpers call for the item events (webhook_assigned, webhook_completed,
-- webhook_abandoned), so those helpers hold no webhook code of their own.
-- Relies on _lib_core.lua (key, NOW) and _lib_config.lua (settings).

-- the most deliveries a webhook's stream keeps (sweep.lua trims, like LOG_MAX)
local HOOK_MAX = 1000000
-- The webhooks' subscriptions (name -> event types), kept with the
-- center's settings (_lib_config.lua): read once per change of them.
local function load_hooks()
  local c = settings()
  if not c.hooks then
    c.hooks, c.hooked = {}, {}
    local h = redis.call('HGETALL', key('webhooks'))
    for i = 1, #h, 2 do c.hooks[h[i]] = cmsgpack.unpack(h[i + 1]) end
  end
  return c.hooks, c.hooked
end

-- Does any webhook want events of this type? (Callers on the hot path
-- check first, so they read nothing extra when no webhook listens.)
local function hooked(kind)
  local hooks, known = load_hooks()
  if known[kind] == nil then
    known[kind] = false
    for _, events in pairs(hooks) do
      for _, e in ipairs(events) do
        if e == kind or e == '*' then known[kind] = true end
      end
    end
  end
  return known[kind]
end

local function hook(kind, hdr, blob)
  if not hooked(kind) then return end
  local hooks_of = load_hooks()
  local packed
  for name, events in pairs(hooks_of) do
    for _, e in ipairs(events) do
      if e == kind or e == '*' then
        if not packed then
          hdr.type = kind
          hdr.ts = NOW
          packed = cmsgpack.pack(hdr)
        end
        if blob then
          redis.call('XADD', key('webhook', name), '*', 'h', packed, 'i', blob)
        else
          redis.call('XADD', key('webhook', name), '*', 'h', packed)
        end
        break
      end
    end
  end
end

-- Item `wid` (stored blob `data`) became agent `aid`'s. The agent's
-- extension lets a CTI connect the call; it is read only when a webhook
-- listens, since this runs on every assignment.
local function webhook_assigned(wid, aid, q, ch, via, data)
  if hooked('work.assigned') then
    hook('work.assigned', {work_id = wid, agent_id = aid, queue = q, channel = ch, via = via,
                           extension = redis.call('HGET', key('agent', aid), 'ext') or ''},
         data)
  end
end

local function webhook_completed(wid, aid, q, ch, disposition, by)
  hook('work.completed', {work_id = wid, agent_id = aid or '', queue = q, channel = ch,
                          disposition = disposition, by = by})
end

-- The item ended without an agent's work: `was` is the state it left,
-- `reason` the caller's (a hang-up, a cancel).
local function webhook_abandoned(wid, q, ch, aid, was, reason)
  if hooked('work.abandoned') then
    hook('work.abandoned', {work_id = wid, queue = q, channel = ch, agent_id = aid or '',
                            was = was or '', reason = reason or ''},
         redis.call('HGET', key('work', wid), 'data'))
  end
end
