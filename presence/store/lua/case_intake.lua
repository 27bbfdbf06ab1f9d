-- case_intake.lua: one inbound contact (call, form, email, chat/SMS/social
-- message) becomes a case, or joins the case of its thread, atomically.
--   * a repeated dedupe reference (message id, call id) changes nothing;
--   * a thread reference (in-reply-to, conversation id) that names a case
--     joins it: the message goes to the agent holding the item (work.message),
--     or, when the item was finished, the item routes again (reroute in
--     _lib_work.lua), its last owner first; a Closed case re-opens when allowed;
--   * otherwise a new item waits in its queue with its case.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] new work id  ARGV[3] queue  ARGV[4] channel
-- ARGV[5] priority  ARGV[6] item data (msgpack map, stored and relayed as is)
-- ARGV[7] required skills (msgpack map)  ARGV[8] case fields (msgpack map)
-- ARGV[9] {message = {...}} (msgpack, "" for none)  ARGV[10] the message alone
-- ARGV[11] dedupe reference ("" for none)  ARGV[12] lookup references (msgpack list;
--   "case:<work id>" names that case directly)
-- ARGV[13] references to register (msgpack list)  ARGV[14] on a match: "join" | "duplicate"
-- ARGV[15] "1" when a message re-opens a closed case  ARGV[16] reference TTL (s)
-- Reply: {"ok", work id, "created"|"joined"|"reopened"|"duplicate", holder agent or "",
--         queue to wake or ""} | {"invalid", field, message}
local wid, q, ch, prio = ARGV[2], ARGV[3], ARGV[4], num(ARGV[5])
local data, req, fields = ARGV[6], ARGV[7], cmsgpack.unpack(ARGV[8])
local wrapped, message, dedupe = ARGV[9], ARGV[10], ARGV[11]
local lookup, register = cmsgpack.unpack(ARGV[12]), cmsgpack.unpack(ARGV[13])
local on_match, reopen_closed, ttl = ARGV[14], ARGV[15] == '1', num(ARGV[16], 15552000)

if dedupe ~= '' then
  local seen = redis.call('GET', key('thread', dedupe))
  if seen then return {'ok', seen, 'duplicate', '', ''} end
end
local bad = unknown_target(q, ch)
if bad then return bad end

local function remember(id)
  for _, ref in ipairs(register) do
    redis.call('SET', key('thread', ref), id, 'EX', ttl)
  end
end

local cfg = hmget(key('cases', 'config'), {'initial', 'closed', 'reopen'})
local found
for _, ref in ipairs(lookup) do
  -- "case:<work id>" names a case itself (the customer's status page)
  local w = ref:sub(1, 5) == 'case:' and ref:sub(6) or redis.call('GET', key('thread', ref))
  if w and redis.call('EXISTS', key('work', w)) == 1 then found = w break end
end
if found and on_match == 'duplicate' then return {'ok', found, 'duplicate', '', ''} end
local cstatus = found and redis.call('HGET', key('case', found), 'status')
if found and cstatus == cfg.closed and not reopen_closed then
  -- a closed conversation that starts again is a new case
  found = nil
end

if found then
  local ck = key('case', found)
  if message ~= '' then redis.call('RPUSH', key('case', found, 'messages'), message) end
  redis.call('HSET', ck, 'updated', NOW)
  local it = hmget(key('work', found), {'state', 'agent', 'queue'})
  local outcome, holder, woke = 'joined', '', ''
  if it.state == 'offered' or it.state == 'assigned' or it.state == 'wrapup' then
    holder = it.agent
    if wrapped ~= '' then
      emit({type = 'work.message', to = holder, work_id = found}, wrapped)
    end
  elseif it.state == 'completed' or it.state == 'abandoned' then
    if cstatus == cfg.closed then case_set_status(found, cfg.reopen or cfg.initial, 'customer') end
    local wq = reroute(found, 'message')
    outcome = 'reopened'
    if wq then woke = wq else holder = redis.call('HGET', key('work', found), 'agent') end
  end
  record({ev = 'message', work = found, queue = it.queue or '', channel = ch, outcome = outcome}, found)
  if wrapped ~= '' then hook('case.message', {work_id = found, channel = ch}, wrapped) end
  remember(found)
  return {'ok', found, outcome, holder, woke}
end

local closed
q, closed = intake_queue(q, ch)
if closed then return closed end
create_item(wid, q, ch, prio, data, req, dedupe)

local ck = key('case', wid)
local args = {}
for f, v in pairs(fields) do
  args[#args + 1] = f
  if v == true then v = '1' elseif v == false then v = '0' end
  args[#args + 1] = v
end
redis.call('HSET', ck, 'status', cfg.initial or 'New', 'channel', ch, 'queue', q, 'owner', '',
           'created', NOW, 'first_response', 0, 'closed', 0, 'updated', NOW, 'reopened', 0, unpack(args))
if message ~= '' then redis.call('RPUSH', key('case', wid, 'messages'), message) end
-- the customer's history (GET /api/v1/customers/{id}/cases), newest first by creation
if fields.customer_id and fields.customer_id ~= '' then
  local hk = key('customer', fields.customer_id, 'cases')
  redis.call('ZADD', hk, NOW, wid)
  -- cases past the retention have expired (retain, _lib_work.lua): so do their entries
  local keep = math.floor(num(rule('retention_ms', 0)))
  if keep > 0 then redis.call('ZREMRANGEBYSCORE', hk, '-inf', '(' .. (NOW - keep)) end
end
remember(wid)
hook('case.created', {work_id = wid, case = case_view(wid)}, data)
return {'ok', wid, 'created', '', q}
