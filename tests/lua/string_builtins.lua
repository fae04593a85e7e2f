-- string_builtins.lua - lua-perf workload: the CPU goes to C library functions called from named
-- Lua functions: string.format from Report.format_rows, string.rep from Report.pad_rows and
-- table.concat from Report.join_rows, in turns.
--
--   lua5.x string_builtins.lua [SECONDS]     (no SECONDS: runs until killed)
--
-- Expected frames of the samples whose leaf is the C function behind string.format, root first
-- (scenario strings), where <call> is the VM's native code calling a C function:
--   L:main;L:string_workload;L:Report.format_rows;<call>;<string.format>
-- and likewise Report.pad_rows ... <string.rep>, Report.join_rows ... <table.concat>.
-- Each library call is on a line of its own (the test's --lines case looks for these lines).
-- Works with Lua 5.1, 5.3 and 5.4.
io.stdout:setvbuf("no")
local seconds = tonumber((...))
local FORMAT_ROWS, PAD_ROWS, JOIN_ROWS = 1200, 120, 120
local Report = {}
local WORDS = {}
for i = 1, 400 do WORDS[i] = "word" .. i end

function Report.format_rows(n)
  local row
  for i = 1, n do
    row = string.format("%-10s|%12.4f|%08x|%6d|%-10s|%12.4f|%08x|%6d", "left", i / 7, i, i, "right", i / 3, i, i)
  end
  return row
end

function Report.pad_rows(n)
  local pad
  for i = 1, n do
    pad = string.rep("-=", 4000)
  end
  return pad
end

function Report.join_rows(n)
  local line
  for i = 1, n do
    line = table.concat(WORDS, ", ")
  end
  return line
end

local function string_workload(deadline)
  assert(#Report.pad_rows(1) == 8000 and #Report.join_rows(1) > 400 * 6)
  assert(Report.format_rows(7) == "left      |      1.0000|00000007|     7|right     |      2.3333|00000007|     7")
  io.write("version ", _VERSION, "\n")
  io.write("ready\n")
  repeat
    Report.format_rows(FORMAT_ROWS)
    Report.pad_rows(PAD_ROWS)
    Report.join_rows(JOIN_ROWS)
  until deadline and os.clock() >= deadline
end

string_workload(seconds and os.clock() + seconds)
