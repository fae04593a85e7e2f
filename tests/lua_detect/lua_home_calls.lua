-- lua_home_calls.lua - drives lua_home_probe.c (tests/lua_detect_test.py, mode builds): calls the
-- probe from as many places of luaV_execute as Lua 5.1, 5.3 and 5.4 share, then prints one line
-- per call (see lua_home_probe.c).
--
--   lua lua_home_calls.lua EXEC_START EXEC_END      (hex ELF addresses of luaV_execute)
-- with package.cpath pointing at the compiled module.
local probe = require("lua_home_probe")
probe.setup(arg[1], arg[2])
local P = probe.probe

local function plain() P() end
local function tail() return P() end
local function nested(n) if n > 0 then nested(n - 1) else P() end end

local mt = {
  __index = probe.probe_number, __newindex = P, __add = probe.probe_number,
  __sub = probe.probe_number, __mul = probe.probe_number, __unm = probe.probe_number,
  __lt = probe.probe_true, __le = probe.probe_true, __eq = probe.probe_true,
  __concat = probe.probe_string, __len = probe.probe_number, __call = P,
}
local a, b = setmetatable({}, mt), setmetatable({}, mt)

local function metamethods()
  local x = a.field          -- __index
  a.other = 1                 -- __newindex
  x = a + 1                   -- __add
  x = a - b                   -- __sub
  x = a * 2                   -- __mul
  x = -a                      -- __unm
  x = a < b                   -- __lt
  x = a <= b                  -- __le
  x = a == b                  -- __eq
  x = a .. "s"                -- __concat
  x = #a                      -- __len
  a()                         -- __call
  for _ in probe.probe_nil do end -- generic for
  return x
end

local function run()
  plain()
  tail()
  nested(3)
  metamethods()
  for _ = 1, 3 do plain() end
end

run()
local co = coroutine.wrap(function() run(); coroutine.yield(); plain() end)
co()
co()

for _, line in ipairs(probe.report()) do print(line) end
