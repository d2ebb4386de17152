--- The client of `make crash` (bench/crash.sh):
--   lua5.4 bench/crash_client.lua PORT SECONDS [LONG [CHURN [BURST]]]
-- runs bench/crash_load.lua's load against bench/crash_echo.lua on
-- 127.0.0.1:PORT and prints its report (the caller judges it).
local lasync = require "lasync"
local here = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$")
local load = dofile(here .. "crash_load.lua")

local port = assert(tonumber(arg[1]), "PORT expected")
local seconds = assert(tonumber(arg[2]), "SECONDS expected")
print(load.report(lasync.run(load.run, port, seconds,
  {long = tonumber(arg[3]), churn = tonumber(arg[4]), burst = tonumber(arg[5])})))
