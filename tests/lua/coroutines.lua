-- coroutines.lua - lua-perf workload: coroutines resumed inside coroutines. The main thread
-- resumes A, A resumes B, B resumes C, and C burns the CPU in leaf_burn before it yields; every
-- coroutine lives for the whole run (after the first round each resume continues after a yield).
--
--   lua5.x coroutines.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- Expected frames of the hot samples, root first (scenario coroutines), where <resume> is the
-- native code of coroutine.resume (the library function, lua_resume, ..., the VM loop):
--   L:main;L:coro_workload;<resume>;L:coro_a_body;<resume>;L:coro_b_body;<resume>;
--   L:coro_c_body;L:leaf_burn
-- Works with Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))
local N = 100000
local co_a, co_b, co_c

local function leaf_burn(n)
  local s = 0
  for i = 1, n do s = s + i * 3 end
  return s
end

local function coro_c_body()
  while true do
    local s = leaf_burn(N)
    coroutine.yield(s)
  end
end

local function coro_b_body()
  while true do
    local ok, s = coroutine.resume(co_c)
    if not ok then error(s) end
    coroutine.yield(s)
  end
end

local function coro_a_body()
  while true do
    local ok, s = coroutine.resume(co_b)
    if not ok then error(s) end
    coroutine.yield(s)
  end
end

local function coro_workload(deadline)
  co_c = coroutine.create(coro_c_body)
  co_b = coroutine.create(coro_b_body)
  co_a = coroutine.create(coro_a_body)
  local expected = leaf_burn(N)
  local ok, s = coroutine.resume(co_a)
  assert(ok and s == expected, tostring(s))
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    ok, s = coroutine.resume(co_a)
    if not ok or s ~= expected then error("coroutine A: " .. tostring(s)) end
  until deadline and os.clock() >= deadline
end

coro_workload(seconds and os.clock() + seconds)
