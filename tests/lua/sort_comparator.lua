-- sort_comparator.lua - lua-perf workload: table.sort with a Lua comparator that burns the CPU.
-- Arrays of three elements: the C sort then never recurses or partitions (Lua 5.1-5.4 auxsort
-- orders three elements directly), so the native path from table.sort to the comparator is the
-- same for every comparison.
--
--   lua5.x sort_comparator.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- Expected frames of the hot samples, root first (scenario sort), where <sort> is the native
-- code of table.sort (the library function, its helpers, lua_call(k), ..., the VM loop):
--   L:main;L:sort_workload;<sort>;L:slow_compare
-- Works with Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))

local slow_compare = function(a, b)
  local s = 0
  for i = 1, 3000 do s = s + i * 3 end
  return a < b
end

local function sort_workload(deadline)
  local orders = {{3, 1, 2}, {2, 3, 1}, {1, 3, 2}, {3, 2, 1}}
  local items = {}
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    for k = 1, #orders do
      local o = orders[k]
      items[1], items[2], items[3] = o[1], o[2], o[3]
      table.sort(items, slow_compare)
      if items[1] ~= 1 or items[2] ~= 2 or items[3] ~= 3 then error("table.sort failed") end
    end
  until deadline and os.clock() >= deadline
end

sort_workload(seconds and os.clock() + seconds)
