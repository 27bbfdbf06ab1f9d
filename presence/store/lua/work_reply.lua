-- work_reply.lua: the agent holding an item answers the customer. The reply
-- is kept on the case (list `case:<id>:replies`) and leaves through the
-- channel's outbound path: the `reply` webhook event, which the email
-- gateway or messaging adapter sends on. No double reply: a reply answers
-- the case's latest inbound message, and a second reply to the same message
-- (another tab, a colleague who had the item before a transfer, a double
-- click) is refused with `conflict` unless the sender confirms it. The check
-- and the write are this one call, so two replies racing cannot both pass.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] agent (must hold the item)
-- ARGV[4] the reply's text  ARGV[5] "1" when the sender confirms a second reply
-- Reply: {"ok", inbound message number answered (0: none yet), replies on the case,
--         "1" when it is a confirmed second reply}
--      | {"not_found"|"not_yours"|"conflict", field, message}
local wid, aid, text, confirm = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local it, err = mine(wid, aid, {assigned = true, wrapup = true}, 'in hand')
if not it then
  if err[1] == 'not_yours' then err[3] = 'only the agent holding work item ' .. wid .. ' may reply' end
  return err
end
local ck = key('case', wid)
if redis.call('EXISTS', ck) == 0 then
  return {'not_found', 'work_id', 'work item ' .. wid .. ' has no case to reply on'}
end
local mk, rk = key('case', wid, 'messages'), key('case', wid, 'replies')
local n = redis.call('LLEN', mk)
local c = hmget(ck, {'answered', 'answered_by', 'answered_at', 'replies', 'subject', 'composing',
                     'conversation_id', 'customer_id'})
if num(c.replies) > 0 and num(c.answered, -1) == n and not confirm then
  return {'conflict', 'confirm', 'the customer\'s message ' .. n .. ' was already answered by '
          .. (c.answered_by or '?') .. ' at ' .. (c.answered_at or '?')
          .. '; send it again with confirm to reply a second time'}
end
local last = n > 0 and cmsgpack.unpack(redis.call('LINDEX', mk, -1)) or {}
local again = num(c.replies) > 0 and num(c.answered, -1) == n
local reply = {author = aid, text = text, ts = NOW, message = n, channel = it.channel, again = again}
local count = redis.call('RPUSH', rk, cmsgpack.pack(reply))
redis.call('HSET', ck, 'answered', n, 'answered_by', aid, 'answered_at', NOW, 'replies', count,
           'updated', NOW)
-- the item knows it has replies: its retention covers them (retain, _lib_work.lua)
redis.call('HSET', key('work', wid), 'replied', 1)
if c.composing then case_released(wid, aid) end
emit({type = 'work.reply', to = aid, work_id = wid, reply = reply})
record({ev = 'reply', work = wid, agent = aid, queue = it.queue or '', channel = it.channel or '',
        message = n, again = again and 1 or 0}, wid)
-- where it goes: the latest inbound message's sender, id and conversation
hook('reply', {work_id = wid, agent_id = aid, queue = it.queue or '', channel = it.channel or '',
               subject = c.subject or '', customer_id = c.customer_id or '',
               conversation_id = last.conversation_id or c.conversation_id or '',
               to = last.from or '', in_reply_to = last.id or '', message = n, reply = reply})
return {'ok', n, count, again and '1' or '0'}
