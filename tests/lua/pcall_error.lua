-- pcall_error.lua - lua-perf workload: the CPU is burnt in a method called through pcall, which
-- then throws an error that pcall catches, every iteration.
--
--   lua5.x pcall_error.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- Expected frames of the hot samples, root first (scenario pcall), where <pcall> is the native
-- code of pcall (the library function, lua_pcall(k), ..., the VM loop):
--   L:main;L:pcall_workload;<pcall>;L:Worker:protected_run;L:leaf_burn
-- Works with Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))
local N = 100000
local Worker = {runs = 0}

local function leaf_burn(n)
  local s = 0
  for i = 1, n do s = s + i * 3 end
  return s
end

function Worker:protected_run(n)
  self.runs = self.runs + 1
  local s = leaf_burn(n)
  error("boom " .. tostring(s > 0))
end

local function pcall_workload(deadline)
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    local ok, err = pcall(Worker.protected_run, Worker, N)
    if ok or not string.find(tostring(err), "boom true", 1, true) then
      error("pcall did not catch the expected error: " .. tostring(err))
    end
  until deadline and os.clock() >= deadline
end

pcall_workload(seconds and os.clock() + seconds)
