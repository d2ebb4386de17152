/*
** Contexts, the C side of lasync.contextvars: a context is a table (var ->
** value) that Lua never changes in place (contextvars.lua installs a new
** copy). It is the running task's (its FX_CTX extra), else the running
** callback's (the loop's LUV_CTX, set by handle_run from the handle's last
** user value), else, with no loop running, the main program's (MUV_CTX).
** A new task or handle takes the current one (context_push), so it never
** sees later changes of its creator's. Until a ContextVar is set for the
** first time (Mod.ctx_used) nothing is recorded, so programs that use none
** pay nothing.
*/
#include "lasync.h"

/* Push the current context (nil if none). Called from a C function whose
** first upvalue is the Mod. */
void context_push(lua_State *L, Mod *m) {
  Loop *lp = m->running;
  if (lp == NULL)
    lua_getiuservalue(L, lua_upvalueindex(1), MUV_CTX);
  else if (lp->current) {
    loop_push_anchored(L, lp, lp->current);
    future_getx(L, -1, FX_CTX);
    lua_remove(L, -2);
  } else {
    loop_push(L, lp);
    lua_getiuservalue(L, -1, LUV_CTX);
    lua_remove(L, -2);
  }
}

/* core._get_context() / core._set_context(t): the context table of the
** running task or callback (or of the main program outside a loop). */
static int l_get_context(lua_State *L) {
  context_push(L, lasync_mod(L));
  return 1;
}

static int l_set_context(lua_State *L) {
  Mod *m = lasync_mod(L);
  Loop *lp = m->running;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  m->ctx_used = 1;
  if (lp == NULL) lua_setiuservalue(L, lua_upvalueindex(1), MUV_CTX);
  else if (lp->current) {
    loop_push_anchored(L, lp, lp->current);
    lua_pushvalue(L, 1);
    future_setx(L, -2, FX_CTX);
  } else {
    loop_push(L, lp);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, LUV_CTX);
  }
  return 0;
}

static const luaL_Reg context_funcs[] = {
  {"_get_context", l_get_context},
  {"_set_context", l_set_context},
  {NULL, NULL}
};

void context_register(lua_State *L) {
  lasync_addfuncs(L, context_funcs);
}
