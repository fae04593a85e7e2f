-- shares.lua on|off STOPFILE - eight pure-Lua leaf functions burning the CPU in different
-- proportions (weights 30 20 15 10 8 7 5 5), for comparing lua-perf's per-function shares with
-- LuaJIT's own profiler (jit.p, `luajit -jp=...`) in tests/luajit_profile_test.py. Runs until
-- STOPFILE exists (looked for every 0.2 s of CPU time), then exits normally so that jit.p
-- writes its report; at most 120 s of CPU time.
local mode, stopfile = arg[1], arg[2]
if mode == "off" then jit.off() else jit.on() end
local UNIT = mode == "off" and 2000 or 20000

local function burn(n)
  local x = 0
  for i = 1, n do x = (x * 31 + i) % 1000003 end
  return x
end
-- each share_N spends its time in its own loop (not in burn), so it is the leaf Lua function
local function share_a() local x = 0 for i = 1, 30 * UNIT do x = (x * 31 + i) % 1000003 end return x end
local function share_b() local x = 0 for i = 1, 20 * UNIT do x = (x * 31 + i) % 1000003 end return x end
local function share_c() local x = 0 for i = 1, 15 * UNIT do x = (x * 31 + i) % 1000003 end return x end
local function share_d() local x = 0 for i = 1, 10 * UNIT do x = (x * 31 + i) % 1000003 end return x end
local function share_e() local x = 0 for i = 1, 8 * UNIT do x = (x * 31 + i) % 1000003 end return x end
local function share_f() local x = 0 for i = 1, 7 * UNIT do x = (x * 31 + i) % 1000003 end return x end
local function share_g() local x = 0 for i = 1, 5 * UNIT do x = (x * 31 + i) % 1000003 end return x end
local function share_h() local x = 0 for i = 1, 5 * UNIT do x = (x * 31 + i) % 1000003 end return x end

local function round()
  return share_a() + share_b() + share_c() + share_d() + share_e() + share_f() + share_g() +
         share_h() + burn(1)
end

local warm = os.clock() + 0.3
while os.clock() < warm do round() end
io.write("ready\n")
io.flush()
local function stopped()
  local f = io.open(stopfile)
  if f then f:close() end
  return f ~= nil
end
local start, next_look = os.clock(), 0
while true do
  round()
  local now = os.clock() - start
  if now >= next_look then
    if now > 120 or stopped() then break end
    next_look = now + 0.2
  end
end
