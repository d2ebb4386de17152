--- A token bucket: at most `rate` calls per `per` seconds; acquire()
-- waits (on the loop's clock) until a token is free.
local lasync = require "lasync"

local M = {}
M.__index = M

function M.new(rate, per)
  return setmetatable({rate = rate, per = per, tokens = rate,
                       at = lasync.time()}, M)
end

function M:acquire()
  while true do
    local now = lasync.time()
    self.tokens = math.min(self.rate, self.tokens + (now - self.at) * self.rate / self.per)
    self.at = now
    if self.tokens >= 1 then
      self.tokens = self.tokens - 1
      return
    end
    lasync.sleep((1 - self.tokens) * self.per / self.rate)
  end
end

return M
