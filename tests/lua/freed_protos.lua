-- Functions whose Protos are freed while lua-perf runs. After "ready" it waits for a line on
-- stdin (the test sends it once lua-perf is sampling), then:
--   phase 1, PHASE1_SECONDS: each round compiles a fresh chunk, runs its function for a few
--            milliseconds, drops it and collects garbage, so that the Proto is freed;
--   phase 2, until killed (or arg[1] seconds): never compiles again, churns memory so that the
--            freed Protos' memory is reused, and burns CPU in churn_memory.
-- Works on Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local load_chunk = loadstring or load
local clock = os.clock
local PHASE1_SECONDS = 0.6

local SOURCE = "local function ephemeral_burn(n)\n"
	.. "  local s = 0\n"
	.. "  for i = 1, n do s = s + (i * 7) % 13 end\n"
	.. "  return s\n"
	.. "end\n"
	.. "return ephemeral_burn\n"

local function phase1_round()
	local ephemeral = load_chunk(SOURCE)()
	local r = ephemeral(100000)
	ephemeral = nil
	collectgarbage("collect")
	return r
end

local function churn_memory()
	local t = {}
	for i = 1, 2000 do
		t[i] = { i, tostring(i) .. "x" }
	end
	local s = 0
	for i = 1, 100000 do
		s = s + i % 3
	end
	return s + #t
end

print("version " .. _VERSION)
print("ready")
io.read("*l")
local started = clock()
local rounds = 0
while clock() - started < PHASE1_SECONDS do
	phase1_round()
	rounds = rounds + 1
end
print("rounds " .. rounds)
print("phase1")
collectgarbage("collect")
local deadline = tonumber(arg and arg[1])
local phase2_started = clock()
while not deadline or clock() - phase2_started < deadline do
	churn_memory()
end
