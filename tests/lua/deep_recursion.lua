-- deep_recursion.lua - lua-perf workload: Lua recursion more than 100 frames deep, with the CPU
-- burnt at the bottom in pure Lua (no C call, so the sampled leaf is the Lua frame).
--
--   lua5.x deep_recursion.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- Prints "depth N" (descend frames on the stack), "version <_VERSION>", then "ready".
-- Expected Lua frames of the hot samples, root first (tests/lua_profile_test.py, scenario deep):
--   L:main;L:deep_workload;L:descend x DEPTH;L:leaf_burn
-- all in one VM activation: no native frame between them. Works with Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))
local DEPTH = 120

local function leaf_burn(n)
  local s = 0
  for i = 1, n do s = s + i * 3 end
  return s
end

local function descend(level, n)
  if level <= 1 then
    return leaf_burn(n) + 1  -- "+ 1": not a tail call, every descend frame stays on the stack
  end
  return descend(level - 1, n) + 1
end

local function deep_workload(deadline)
  assert(descend(DEPTH, 10) == 165 + DEPTH)
  io.write("depth ", DEPTH, "\n")
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    descend(DEPTH, 200000)
  until deadline and os.clock() >= deadline
end

deep_workload(seconds and os.clock() + seconds)
