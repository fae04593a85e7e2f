-- split_ratio.lua - lua-perf workload with a known CPU split: ratio_f runs the same loop body as
-- ratio_g with three times the iterations, and the two alternate (a few ms each), so ratio_f
-- gets 3/4 of the CPU time and ratio_g 1/4.
--
--   lua5.x split_ratio.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- Expected frames of the hot samples, root first (scenario ratio):
--   L:main;L:ratio_workload;L:ratio_f   and   L:main;L:ratio_workload;L:ratio_g
-- with samples(ratio_f) / samples(ratio_g) = 3 (the test allows 5%). Works with Lua 5.1-5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))
local N = 400000

local function ratio_f(n)
  local s = 0
  for i = 1, n * 3 do s = s + i * 3 end
  return s
end

local function ratio_g(n)
  local s = 0
  for i = 1, n do s = s + i * 3 end
  return s
end

local function ratio_workload(deadline)
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    ratio_f(N)
    ratio_g(N)
  until deadline and os.clock() >= deadline
end

ratio_workload(seconds and os.clock() + seconds)
