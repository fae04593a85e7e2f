-- workloads.lua NAME on|off SECONDS - CPU-bound LuaJIT workloads for tests/luajit_profile_test.py.
-- Each workload spends its time in a function named hot_<NAME> (its loop is what the JIT
-- compiles with `on`), reached through a known chain of Lua, builtin and C frames:
--   recursion  run -> deep x DEPTH -> hot_recursion
--   coroutine  run -> coroutine.resume -> co_body -> hot_coroutine
--   pcall      run -> pcall -> hot_pcall
--   ffi        run -> hot_ffi -> (FFI call) libc memset
--   sort       run -> table.sort -> (C calls back) hot_sort, the comparator
-- The chains are asserted frame by frame by the test: keep them in sync.
local name, mode, seconds = arg[1], arg[2], tonumber(arg[3])
if mode == "off" then jit.off() else jit.on() end
local ffi = require("ffi")
ffi.cdef("void *memset(void *s, int c, size_t n);")

local DEPTH = 120

local function hot_recursion()
  local x = 0
  for i = 1, 300000 do x = (x + i * 7) % 1000003 end
  return x
end

local function deep(n)
  if n == 0 then return hot_recursion() end
  return deep(n - 1) + 1 -- not a tail call: every level keeps its frame
end

local function hot_coroutine()
  local x = 0
  for i = 1, 300000 do x = (x + i * 7) % 1000003 end
  return x
end

local function co_body()
  while true do coroutine.yield(hot_coroutine()) end
end

local function hot_pcall()
  local x = 0
  for i = 1, 300000 do x = (x + i * 7) % 1000003 end
  return x
end

local buffer = ffi.new("uint8_t[?]", 1048576)
local function hot_ffi()
  for i = 1, 64 do ffi.C.memset(buffer, i, 1048576) end
end

local function hot_sort(a, b)
  local x = 0
  for i = 1, 200 do x = x + i end
  return a < b
end

local co = coroutine.create(co_body)
local values = {}
for i = 1, 400 do values[i] = (i * 7919) % 1009 end

local function run()
  -- no tail calls: run keeps its frame under each workload
  local r
  if name == "recursion" then
    r = deep(DEPTH)
  elseif name == "coroutine" then
    r = coroutine.resume(co)
  elseif name == "pcall" then
    r = pcall(hot_pcall)
  elseif name == "ffi" then
    r = hot_ffi()
  elseif name == "sort" then
    local t = {}
    for i = 1, #values do t[i] = values[i] end
    table.sort(t, hot_sort)
    r = t[1]
  else
    error("unknown workload " .. tostring(name))
  end
  return r
end

-- warm up (the JIT compiles the hot loops now), then tell the test to start profiling
local warm = os.clock() + 0.3
while os.clock() < warm do run() end
io.write("ready\n")
io.flush()
-- The clock is read every RUNS_PER_CLOCK runs: os.clock is clock(3), whose CPU-time clock the vdso
-- passes on to the clock_gettime system call - slow under QEMU's emulation. Read after every run,
-- it took enough time that a `lua-perf dump` on 6.1 (one instant of a running thread; kernel
-- matrix, clean-clone run) caught main in os.clock instead of the workload.
local RUNS_PER_CLOCK = 16
local deadline = os.clock() + seconds
while os.clock() < deadline do
  for _ = 1, RUNS_PER_CLOCK do run() end
end
