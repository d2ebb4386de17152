-- luacheck configuration (run by `make lint`).
std = "lua54"
-- Plain output for CI logs.
color = false
codes = true

-- Never lint build output or a local luarocks tree.
exclude_files = { "build/", "build-asan/", "lua_modules/", ".luarocks/" }

-- Specs use busted's globals (describe, it, assert, spy, ...).
files["spec/"] = { std = "+busted" }
