-- gsub_callback.lua - lua-perf workload: string.gsub with a Lua replacement function that burns
-- the CPU.
--
--   lua5.x gsub_callback.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- Expected frames of the hot samples, root first (scenario gsub), where <gsub> is the native
-- code of string.gsub (the library function, lua_call(k), ..., the VM loop):
--   L:main;L:gsub_workload;<gsub>;L:replace_cb
-- Works with Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))
local TEXT = string.rep("alpha beta gamma delta ", 8)

local function replace_cb(word)
  local s = 0
  for i = 1, 3000 do s = s + i * 3 end
  return word
end

local function gsub_workload(deadline)
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    local out, count = string.gsub(TEXT, "%a+", replace_cb)
    if out ~= TEXT or count ~= 32 then error("string.gsub failed") end
  until deadline and os.clock() >= deadline
end

gsub_workload(seconds and os.clock() + seconds)
