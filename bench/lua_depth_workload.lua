-- A fixed amount of Lua work at a chosen Lua stack depth, for bench/bench.py.
-- Usage: lua5.4 lua_depth_workload.lua DEPTH ROUNDS [DELAY]: idles DELAY seconds first (so that
-- a profiler can attach), prints "working", then works.
local depth, rounds = tonumber(arg[1]), tonumber(arg[2])
if arg[3] then
	os.execute("sleep " .. tonumber(arg[3]))
end

local function work(n)
	local s = 0
	for i = 1, n do
		s = s + i % 7
	end
	return s
end

local function descend(d, n)
	if d <= 1 then
		return work(n)
	end
	local r = descend(d - 1, n) -- not a tail call: one Lua frame per level
	return r
end

io.write("working\n") -- bench.py times the work from this line
io.stdout:flush()
local total = 0
for _ = 1, 100 do
	total = total + descend(depth, rounds // 100)
end
print(total)
