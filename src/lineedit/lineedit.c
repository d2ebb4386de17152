/*
** lasync.lineedit: line editing and history for the REPL, over Debian's
** libedit (BSD). A module of its own, not part of lasync.core, so that the
** core never needs libedit and the REPL can fall back to plain lines when
** this module is missing.
**
** libedit's unbuffered mode makes it an incremental reader: each el_gets
** reads one key (or key sequence) from fd 0 and returns at once. The REPL
** calls feed() from a loop reader on fd 0, so tasks run while a user types.
** libedit's own signal handling stays off: the loop handles SIGINT.
*/
#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <limits.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>
#include <lua.h>
#include <lauxlib.h>

#define EDITOR_MT "lasync.LineEditor"

typedef struct {
  EditLine *el;
  History *hist;
  char *prompt;
  int editing;  /* a line has begun: the terminal is in raw mode */
  int fd;       /* the terminal of fd 0 opened again, non-blocking */
  int would_block;  /* the last feed found no key to read */
  size_t npending;  /* bytes of a multibyte key read so far */
  char pending[MB_LEN_MAX];
} Editor;

static Editor *checkeditor(lua_State *L) {
  Editor *e = luaL_checkudata(L, 1, EDITOR_MT);
  if (!e->el) luaL_error(L, "line editor is closed");
  return e;
}

static char *editor_prompt(EditLine *el) {
  Editor *e;
  el_get(el, EL_CLIENTDATA, &e);
  return e->prompt ? e->prompt : "";
}

/* Back to the terminal's normal (cooked) mode; the typed text is kept
** until the next line begins, which clears it. */
static void editor_stop(Editor *e) {
  if (!e->editing) return;
  e->editing = 0;
  el_set(e->el, EL_UNBUFFERED, 0);
}

static int editor_close(lua_State *L) {
  Editor *e = luaL_checkudata(L, 1, EDITOR_MT);
  if (!e->el) return 0;
  editor_stop(e);
  el_end(e->el);
  history_end(e->hist);
  close(e->fd);
  free(e->prompt);
  e->el = NULL;
  e->prompt = NULL;
  return 0;
}

/* libedit's key reader, made non-blocking. Between the loop seeing fd 0
** readable and the read, Ctrl-C can flush the terminal's input (ISIG): a
** blocking read would then wait for the next key, the SIGINT already
** handled (libevent restarts the read), and the REPL would hang. A key
** not there yet fails the read with would_block set, which ends el_gets
** with the line kept; a multibyte key read in part waits in pending. */
static int editor_getc(EditLine *el, wchar_t *wc) {
  Editor *e;
  el_get(el, EL_CLIENTDATA, &e);
  *wc = L'\0';
  for (;;) {
    mbstate_t mbs;
    size_t r;
    ssize_t n = read(e->fd, e->pending + e->npending, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      e->would_block = errno == EAGAIN;
      return -1;
    }
    if (n == 0) return 0;
    e->npending++;
    memset(&mbs, 0, sizeof mbs);
    r = mbrtowc(wc, e->pending, e->npending, &mbs);
    if (r == (size_t)-2 && e->npending < MB_LEN_MAX) continue;
    e->npending = 0;
    if (r != (size_t)-1 && r != (size_t)-2) return 1;
    /* an invalid byte sequence is dropped, as libedit's own reader does */
  }
}

/* ed:start(prompt): begins a line and shows the prompt. */
static int editor_start(lua_State *L) {
  Editor *e = checkeditor(L);
  char *p = strdup(luaL_checkstring(L, 2));
  if (!p) return luaL_error(L, "not enough memory");
  free(e->prompt);
  e->prompt = p;
  editor_stop(e);
  e->editing = 1;
  el_set(e->el, EL_UNBUFFERED, 1);  /* raw mode, empty line, prompt */
  return 0;
}

/* ed:feed(): reads what fd 0 has for the line begun by start. Returns the
** line (without its newline) once Return ends it, nil at end of input
** (Ctrl-D on an empty line, or fd 0 closed), true while editing goes on. */
static int editor_feed(lua_State *L) {
  Editor *e = checkeditor(L);
  int n;
  const char *buf;
  if (!e->editing) return luaL_error(L, "feed: no line begun (call start first)");
  e->would_block = 0;
  buf = el_gets(e->el, &n);
  if (e->would_block) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
    lua_pushlstring(L, buf, (size_t)n - 1);
  } else if (n < 0 || (n == 1 && buf[0] == '\4')) {
    lua_pushnil(L);
  } else {
    lua_pushboolean(L, 1);
    return 1;
  }
  editor_stop(e);
  return 1;
}

/* ed:cancel(): drops the line being typed (Ctrl-C at the prompt). */
static int editor_cancel(lua_State *L) {
  editor_stop(checkeditor(L));
  return 0;
}

/* ed:add_history(line): what the up arrow recalls; a repeat is kept once. */
static int editor_add_history(lua_State *L) {
  Editor *e = checkeditor(L);
  HistEvent ev;
  history(e->hist, &ev, H_ENTER, luaL_checkstring(L, 2));
  return 0;
}

static const luaL_Reg editor_methods[] = {
  {"start", editor_start},
  {"feed", editor_feed},
  {"cancel", editor_cancel},
  {"add_history", editor_add_history},
  {"close", editor_close},
  {NULL, NULL}
};

static void editor_configure(Editor *e) {
  HistEvent ev;
  history(e->hist, &ev, H_SETSIZE, 1000);
  history(e->hist, &ev, H_SETUNIQUE, 1);
  el_set(e->el, EL_CLIENTDATA, e);
  el_set(e->el, EL_PROMPT, editor_prompt);
  el_set(e->el, EL_EDITOR, "emacs");
  el_set(e->el, EL_HIST, history, e->hist);
  el_set(e->el, EL_GETCFN, editor_getc);
  el_source(e->el, NULL);  /* the user's ~/.editrc, as other libedit programs */
}

/* lineedit.open(name): an editor on the terminal of stdin and stdout; name
** selects the user's ~/.editrc settings ("lasync:" lines). */
static int lineedit_open(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  Editor *e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  luaL_setmetatable(L, EDITOR_MT);
  /* libedit decodes keys by the locale's charset; lua5.4 leaves it "C". */
  if (strcmp(setlocale(LC_CTYPE, NULL), "C") == 0) setlocale(LC_CTYPE, "");
  /* A file description of its own: O_NONBLOCK on fd 0's would be shared
  ** with stdout and stderr, and with every child the REPL starts. */
  e->fd = open("/proc/self/fd/0", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (e->fd < 0) return luaL_error(L, "lineedit.open: cannot open the terminal again: %s", strerror(errno));
  e->hist = history_init();
  if (!e->hist) {
    close(e->fd);
    return luaL_error(L, "lineedit.open: history_init failed");
  }
  e->el = el_init(name, stdin, stdout, stderr);
  if (!e->el) {
    close(e->fd);
    history_end(e->hist);
    return luaL_error(L, "lineedit.open: el_init failed");
  }
  editor_configure(e);
  return 1;
}

int luaopen_lasync_lineedit(lua_State *L) __attribute__((visibility("default")));

int luaopen_lasync_lineedit(lua_State *L) {
  luaL_newmetatable(L, EDITOR_MT);
  luaL_newlib(L, editor_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, editor_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, editor_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, lineedit_open);
  lua_setfield(L, -2, "open");
  return 1;
}
