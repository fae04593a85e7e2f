-- tail_calls.lua - lua-perf workload: the CPU is burnt in a function reached through two tail
-- calls (`return f(x)`).
--
--   lua5.x tail_calls.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- PUC Lua runs a tail call in the caller's CallInfo: the caller's frame is gone, replaced by the
-- callee's. Expected frames of the hot samples, root first (scenario tailcall):
--   L:main;L:tail_workload;L:tail_target
-- tail_first and tail_middle do not appear (and no "(tail call)" placeholder frame either, as
-- Lua 5.1's debug.traceback would print). Works with Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))
local N = 200000

local function tail_target(n)
  local s = 0
  for i = 1, n do s = s + i * 3 end
  return s
end

local function tail_middle(n)
  return tail_target(n)
end

local function tail_first(n)
  return tail_middle(n)
end

local function tail_workload(deadline)
  local expected = tail_target(N)
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    local s = tail_first(N)
    if s ~= expected then error("tail_first returned " .. tostring(s)) end
  until deadline and os.clock() >= deadline
end

tail_workload(seconds and os.clock() + seconds)
