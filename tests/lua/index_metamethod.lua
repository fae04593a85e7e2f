-- index_metamethod.lua - lua-perf workload: an __index metamethod function does the work: every
-- read of a missing field of `proxy` runs index_handler.
--
--   lua5.x index_metamethod.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- Expected frames of the hot samples, root first (scenario index), where <index> is the VM's
-- native code that calls the metamethod (no library function: the VM does it) ending in the VM
-- loop:
--   L:main;L:index_workload;<index>;L:index_handler
-- Works with Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))

local function index_handler(t, key)
  local s = 0
  for i = 1, 30000 do s = s + i * 3 end
  return s
end

local proxy = setmetatable({}, {__index = index_handler})

local function index_workload(deadline)
  local expected = 1350045000
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    local v = proxy.alpha
    if v ~= expected then error("__index returned " .. tostring(v)) end
  until deadline and os.clock() >= deadline
end

index_workload(seconds and os.clock() + seconds)
