-- The bundled example: a small "web handler" loop with a recognizable profile.
-- handle_request parses a query string (string.gmatch), looks up users through a metatable,
-- sorts the result with a Lua comparator (table.sort calls back into Lua) and renders a page
-- (string.format, table.concat). Usage: lua5.4 examples/app.lua [SECONDS]
local seconds = tonumber(arg and arg[1])

local Users = setmetatable({}, {
	__index = function(t, id) -- computed on first use, like a cache miss
		local user = { id = id, name = "user" .. id, score = (id * 7919) % 1000 }
		rawset(t, id, user)
		return user
	end,
})

local function parse_query(query)
	local params = {}
	for key, value in query:gmatch("(%w+)=(%w+)") do
		params[key] = value
	end
	return params
end

local function by_score(a, b)
	if a.score ~= b.score then
		return a.score > b.score
	end
	return a.id < b.id
end

local function render(users)
	local rows = {}
	for i, user in ipairs(users) do
		rows[i] = string.format("<tr><td>%d</td><td>%s</td><td>%d</td></tr>", user.id, user.name,
			user.score)
	end
	return "<table>" .. table.concat(rows) .. "</table>"
end

local function handle_request(query)
	local params = parse_query(query)
	local users = {}
	for i = 1, tonumber(params.count) do
		users[i] = Users[(i * 31 + tonumber(params.page)) % 5000]
	end
	table.sort(users, by_score)
	return render(users)
end

local started, served = os.clock(), 0
while not seconds or os.clock() - started < seconds do
	handle_request("page=" .. served % 97 .. "&count=200&sort=score")
	served = served + 1
end
print(string.format("served %d requests", served))
