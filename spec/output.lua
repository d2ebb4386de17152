-- busted output handler: busted's default terminal output (utfTerminal:
-- colours only on a terminal, -Xoutput --plain/--color as usual), then one
-- closing line that CI reads:
--
--     N passed, N failed, N skipped
--
-- "failed" counts what busted's exit status counts: every failure and every
-- error, wherever it happens (a test, a hook, a describe block, a spec file
-- that does not load). "skipped" counts pending tests. Use with
-- `busted -o spec/output.lua`. When LASYNC_COUNTS names a file, the three
-- numbers also go there, as "passed failed skipped", for .ci/run to add up.

return function(options)
  local busted = require("busted")
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local passed, failed, skipped = 0, 0, 0

  busted.subscribe({ "test", "end" }, function(_, _, status)
    if status == "success" then
      passed = passed + 1
    elseif status == "pending" then
      skipped = skipped + 1
    end
    return nil, true
  end)

  -- The channels are parents of ("failure", "it"), ("error", "file"), ...
  local function count_failed()
    failed = failed + 1
    return nil, true
  end
  busted.subscribe({ "failure" }, count_failed)
  busted.subscribe({ "error" }, count_failed)

  -- "exit" is busted's last event, after every run of the suite and all of
  -- utfTerminal's summary, so this line is the last one.
  busted.subscribe({ "exit" }, function()
    io.write(string.format("%d passed, %d failed, %d skipped\n",
      passed, failed, skipped))
    io.flush()
    local path = os.getenv("LASYNC_COUNTS")
    if path then
      local f = assert(io.open(path, "w"))
      f:write(string.format("%d %d %d\n", passed, failed, skipped))
      f:close()
    end
    return nil, true
  end)

  return handler
end
