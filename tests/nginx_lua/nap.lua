-- SPDX-License-Identifier: MIT
-- nap.lua - the request handler of the ngx_lua dump tests (tests/thread_dump_test.py): a loop
-- that sleeps in poll(2) through the FFI, so that the worker is asleep with Lua frames on its
-- stack. With the JIT on the loop is compiled after ~56 iterations (LuaJIT's hotloop) and poll is
-- called from the trace. Nap i lasts min(i, 250) ms: short at first so that the loop is hot within
-- 1.6 s, then long so that the worker is rarely between two naps (awake, or runnable and waiting
-- for a CPU on a loaded machine) when the test dumps it. The test finds the lines by their MARK
-- comments.
local ffi = require("ffi")
ffi.cdef("int poll(void *fds, unsigned long nfds, int timeout);")
local _M = {}

local function nap(ms)
  local ready = ffi.C.poll(nil, 0, ms) -- MARK nap
  return ready -- (not `return ffi.C.poll(...)`: a tail call would leave no frame of nap)
end

function _M.run()
  local naps = 0
  for i = 1, 3000 do -- MARK loop
    naps = naps + 1 + nap(math.min(i, 250)) -- MARK run
  end
  ngx.say("napped ", naps)
end

return _M
