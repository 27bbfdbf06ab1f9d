-- composing_marks.lua: the live "being answered by" marks of the center
-- (work_composing.lua), as the ``case.composing`` messages that started
-- them, for a supervisor's snapshot: a wallboard opened while an agent
-- types shows the mark at once, not at the panel's next renewal. Read only.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)
-- Reply: msgpack list of case.composing messages (composing true)
local out = {}
local marks = redis.call('ZRANGEBYSCORE', key('composing'), '(' .. NOW, '+inf', 'WITHSCORES')
for i = 1, #marks, 2 do
  local wid = marks[i]
  local w = hmget(key('work', wid), {'composing', 'queue', 'channel'})
  if w.composing then out[#out + 1] = composing_mark(wid, w.composing, tonumber(marks[i + 1]), w.queue, w.channel) end
end
return cmsgpack.pack(out)
