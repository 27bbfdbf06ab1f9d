-- route.lua: the router's decision and commit, for a batch of items: the
-- dispatcher's call. The rule and its code are `route_queues`
-- (_lib_router.lua), which the batched calls also run inline.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] most items to assign in this call
-- ARGV[3] most candidates to examine per item  ARGV[4..] queue names
-- Reply: {assigned count, queue that may have more...}
events_begin()
local names = {}
for i = 4, #ARGV do names[#names + 1] = ARGV[i] end
local assigned, more = route_queues(names, num(ARGV[2]), num(ARGV[3]))
events_publish()
return {assigned, unpack(more)}
