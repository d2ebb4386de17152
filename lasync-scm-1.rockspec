rockspec_format = "3.0"
package = "lasync"
version = "scm-1"

-- `luarocks make` builds from the checkout and never fetches this.
source = {
   url = "git+file://.",
}

description = {
   summary = "asyncio for Lua 5.4 on libevent",
   detailed = [[
      Event loop, futures, tasks and coroutine-based I/O for Lua 5.4,
      a C core over libevent 2.1 with pure-Lua modules on top.
   ]],
   license = "MIT",
}

dependencies = {
   "lua >= 5.4",
}

external_dependencies = {
   LIBEVENT = {
      header = "event2/event.h",
      library = "event_core",
   },
   OPENSSL = {
      header = "openssl/ssl.h",
      library = "ssl",
   },
   HTTP_PARSER = {  -- the HTTP/1.1 parser (src/http.c): Node's http_parser
      header = "http_parser.h",
      library = "http_parser",
   },
   LIBEDIT = {  -- the REPL's line editing (lasync.lineedit)
      header = "histedit.h",
      library = "edit",
   },
}

build = {
   type = "builtin",
   modules = {
      -- No globs in rockspecs: list every C file. Keep in step with src/*.c,
      -- which the Makefile builds by wildcard.
      ["lasync.core"] = {
         sources = {
            "src/module.c",
            "src/loop.c",
            "src/handle.c",
            "src/future.c",
            "src/task.c",
            "src/context.c",
            "src/errors.c",
            "src/watch.c",
            "src/dns.c",
            "src/addr.c",
            "src/stream.c",
            "src/resp.c",
            "src/server.c",
            "src/process.c",
            "src/subprocess.c",
            "src/tls.c",
            "src/waitlist.c",
            "src/queue.c",
            "src/http.c",
            "src/websocket.c",
            "src/datagram.c",
            "src/socket.c",
            "src/thread.c",
         },
         defines = { "_GNU_SOURCE" },
         incdirs = { "$(LIBEVENT_INCDIR)", "$(OPENSSL_INCDIR)",
                     "$(HTTP_PARSER_INCDIR)" },
         libdirs = { "$(LIBEVENT_LIBDIR)", "$(OPENSSL_LIBDIR)",
                     "$(HTTP_PARSER_LIBDIR)" },
         libraries = { "event_core", "event_extra", "ssl", "crypto",
                       "http_parser", "m", "pthread" },
      },
      -- A module of its own, so that core never needs libedit.
      ["lasync.lineedit"] = {
         sources = { "src/lineedit/lineedit.c" },
         incdirs = { "$(LIBEDIT_INCDIR)" },
         libdirs = { "$(LIBEDIT_LIBDIR)" },
         libraries = { "edit" },
      },
      ["lasync"] = "lua/lasync/init.lua",
      ["lasync.combinators"] = "lua/lasync/combinators.lua",
      ["lasync.checks"] = "lua/lasync/checks.lua",
      ["lasync.sync"] = "lua/lasync/sync.lua",
      ["lasync.dump"] = "lua/lasync/dump.lua",
      ["lasync.queues"] = "lua/lasync/queues.lua",
      ["lasync.coroutine"] = "lua/lasync/coroutine.lua",
      ["lasync.contextvars"] = "lua/lasync/contextvars.lua",
      ["lasync.streams"] = "lua/lasync/streams.lua",
      ["lasync.datagram"] = "lua/lasync/datagram.lua",
      ["lasync.socket"] = "lua/lasync/socket.lua",
      ["lasync.socket.ssl"] = "lua/lasync/socket/ssl.lua",
      ["lasync.serve"] = "lua/lasync/serve.lua",
      ["lasync.http"] = "lua/lasync/http.lua",
      ["lasync.httpclient"] = "lua/lasync/httpclient.lua",
      ["lasync.websocket"] = "lua/lasync/websocket.lua",
      ["lasync.test"] = "lua/lasync/test.lua",
      -- LuaLS definitions of lasync.core (docs/editor.md), installed beside
      -- the modules so that one `workspace.library` entry covers both;
      -- never required (its name does not shadow the C module).
      ["lasync.types.core"] = "lua/lasync/types/core.lua",
   },
   install = {
      bin = {
         lasync = "scripts/lasync",
      },
   },
}

-- The command as it is, not luarocks' wrapper: that would load
-- luarocks.loader, which rewrites the paths LUA_PATH gives (see
-- scripts/lasync); the command finds its own tree.
deploy = {
   wrap_bin_scripts = false,
}

-- "busted" would try to download busted: run the project's own suite.
test = {
   type = "command",
   command = "make test",
}
