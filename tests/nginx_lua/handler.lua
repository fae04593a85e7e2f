-- SPDX-License-Identifier: MIT
-- handler.lua - the request handler of the ngx_lua tests (tests/nginx_profile_test.py): CPU work
-- in Lua of three kinds, and a response the test recomputes on its own.
--   build_string: string.format and table.concat (C functions called from Lua);
--   sort_records: table.sort with a Lua comparator (C calling back into Lua);
--   fib: a plain recursive Lua function.
-- The records' pseudo-random keys come from the Park-Miller generator (seed * 16807 mod
-- 2^31 - 1): every intermediate value stays below 2^53, exact in LuaJIT's doubles.
local _M = {}

local function fib(n)
  if n < 2 then return n end
  return fib(n - 1) + fib(n - 2)
end

local function build_string(n)
  local parts = {}
  for i = 1, n do parts[#parts + 1] = string.format("%d:%x", i, i * 7919) end
  return table.concat(parts, ",")
end

local function by_key(a, b)
  if a.key ~= b.key then return a.key < b.key end
  return a.id < b.id
end

local function sort_records(n)
  local records, seed = {}, 12345
  for i = 1, n do
    seed = seed * 16807 % 2147483647
    records[i] = {key = seed % 1000, id = i}
  end
  table.sort(records, by_key)
  return records[1].key .. ":" .. records[n].key
end

-- Response: "<length of the built string> <smallest key>:<largest key> <fib(18)>\n".
function _M.run()
  local s = build_string(200)
  local keys = sort_records(300)
  ngx.say(#s, " ", keys, " ", fib(18))
end

return _M
