-- case_status.lua: move a case to another status of the configured list
-- (New -> In progress -> Waiting close -> Closed by default; any order, so
-- a Closed case can be re-opened). Closing a case does not end its item.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] status  ARGV[4] who
-- ARGV[5] agent who must hold the item ("" for supervisors and services)
-- Reply: {"ok", status, "changed"|"same"} | {"not_found"|"not_yours"|"invalid", field, message}
local wid, status, by, holder_only = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', key('case', wid)) == 0 then
  return {'not_found', 'work_id', 'no case for work item ' .. wid}
end
local it = hmget(key('work', wid), {'state', 'agent'})
local held = it.state == 'assigned' or it.state == 'wrapup'
if holder_only ~= '' and (not held or it.agent ~= holder_only) then
  return {'not_yours', 'work_id', 'work item ' .. wid .. ' is not in your hands'}
end
local raw = redis.call('HGET', key('cases', 'config'), 'statuses')
local names = raw and cmsgpack.unpack(raw) or {}
local known = false
for _, s in ipairs(names) do
  if s == status then known = true break end
end
if not known then
  return {'invalid', 'status', 'unknown case status ' .. status .. ' (expected one of ' .. table.concat(names, ', ') .. ')'}
end
local changed = case_set_status(wid, status, by)
if changed and (held or it.state == 'offered') then case_updated(wid, it.agent) end
return {'ok', status, changed and 'changed' or 'same'}
