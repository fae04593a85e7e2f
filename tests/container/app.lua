-- SPDX-License-Identifier: MIT
-- app.lua - the PUC Lua workload of tests/container_profile_test.py, run by lua5.4 inside the
-- test's container. Usage: lua5.4 app.lua LIBDIR. Burns the CPU in three places, each for about
-- the same time per round (calibrated below, before "ready"):
--   ct_lua_burn                      pure Lua
--   ct_native_caller -> ctnative.spin  a C module whose debug file is found by build-id
--   ct_link_caller   -> ctlink.spin    a C module whose debug file is found by .gnu_debuglink
-- The test puts a different file at this script's path on the host (other function names on the
-- same lines): lua-perf must name these functions from this copy, the one the process reads.
package.cpath = arg[1] .. "/?.so"
local ctnative = require("ctnative")
local ctlink = require("ctlink")

local function ct_lua_burn(n)
  local s = 0
  for i = 1, n do s = (s + i * 7) % 1000003 end
  return s
end

local function ct_native_caller(n)
  return ctnative.spin(n)
end

local function ct_link_caller(n)
  return ctlink.spin(n)
end

-- Iterations of f that take `seconds` of CPU time.
local function ct_calibrate(f, seconds)
  local n = 100000
  while true do
    local t0 = os.clock()
    f(n)
    local dt = os.clock() - t0
    if dt > 0.05 then return math.max(1, math.floor(n * seconds / dt)) end
    n = n * 4
  end
end

local function ct_workload(lua_n, native_n, link_n)
  while true do
    ct_lua_burn(lua_n)
    ct_native_caller(native_n)
    ct_link_caller(link_n)
  end
end

-- Per round: 20 ms of Lua, 10 ms in each module (Lua: half the CPU time, each module a quarter).
local lua_n = ct_calibrate(ct_lua_burn, 0.02)
local native_n = ct_calibrate(ct_native_caller, 0.01)
local link_n = ct_calibrate(ct_link_caller, 0.01)
io.write("lua_n ", lua_n, "\nnative_n ", native_n, "\nlink_n ", link_n, "\nready\n")
io.stdout:flush()
ct_workload(lua_n, native_n, link_n)
