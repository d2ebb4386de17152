-- luacheck configuration (run by `make lint`).
std = "lua54"
-- Plain output for CI logs.
color = false
codes = true

-- Never lint build output or a local luarocks tree.
exclude_files = { "build/", "build-asan/", "lua_modules/", ".luarocks/" }

-- Specs use busted's globals (describe, it, assert, spy, ...).
files["spec/"] = { std = "+busted" }

-- LuaLS definitions (docs/editor.md): stubs whose arguments and class
-- tables exist only to be read by LuaLS and LDoc.
files["lua/lasync/types/"] = { ignore = { "211", "212", "241" } }
