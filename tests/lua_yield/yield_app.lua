-- yield_app.lua - the request handlers that tests/lua_yield/lua_yield_host.c runs in a coroutine
-- and interrupts (a count hook that yields, or host_pause() yielding), for
-- tests/lua_yield_profile_test.py. One global <scenario>_handler per scenario; each never
-- returns and spends its time in the innermost function of its chain (the hot one), whose loop
-- calls host_pause() now and then (a yield with INTERRUPT call, nothing with hook).
--
-- Chains, root first (C = a C function of the host between two Lua levels):
--   chain    chain_handler -> chain_outer -> chain_middle -> chain_inner -> hot
--   pcallk   pcallk_handler -> pc_outer -> C host_pcall (lua_pcallk) -> pc_protected -> hot
--   yieldk   yieldk_handler -> yk_outer -> C host_yield_then_call (lua_yieldk; its continuation
--            calls on through lua_callk) -> yk_inner -> hot
--   nested   nested_handler -> nest_drive -> nest_step -> coroutine.resume(co) ... in co:
--            nest_body -> nest_middle -> hot (co gets the handler's interruption too)
-- Calls are never tail calls (`return (f(x))` is not one): a tail call replaces its caller's
-- frame.
local pause = host_pause
if jit and os.getenv("LUA_YIELD_JIT") == "off" then jit.off() end -- LuaJIT, interpreted
local ROUNDS = 200000

-- The hot function every chain ends in (a process runs one scenario).
local function hot(n)
  local s = 0
  for i = 1, n do
    s = s + i % 7
    if i % 65536 == 0 then pause() end
  end
  return s
end

-- chain ------------------------------------------------------------------------------------
local function chain_inner(n)
  local s = 0
  for _ = 1, 4 do s = s + hot(n) end
  return s
end

local function chain_middle(n) return (chain_inner(n)) end

local function chain_outer(n) return (chain_middle(n)) end

function chain_handler()
  while true do chain_outer(ROUNDS) end
end

-- pcallk -----------------------------------------------------------------------------------
local function pc_protected(n) return hot(n) + hot(n) end

local function pc_outer(n) return (host_pcall(pc_protected, n)) end

function pcallk_handler()
  repeat until pc_outer(ROUNDS) < 0
end

-- yieldk -----------------------------------------------------------------------------------
local function yk_inner(n) return hot(n) * 2 - hot(n) end

local function yk_outer(n) return (host_yield_then_call(yk_inner, n)) end

function yieldk_handler()
  for _ = 1, math.huge do yk_outer(ROUNDS) end
end

-- nested -----------------------------------------------------------------------------------
local function nest_middle(n) return hot(n) - hot(n) end

local function nest_body()
  while nest_middle(ROUNDS) == 0 do end
end

local inner_co

local function nest_step()
  local ok, err = coroutine.resume(inner_co)
  if not ok then error(err) end
  pause()
end

local function nest_drive()
  while true do nest_step() end
end

function nested_handler()
  inner_co = coroutine.create(nest_body)
  host_interrupt(inner_co)
  nest_drive()
end
