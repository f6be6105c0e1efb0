# remote-executors bootstrap. Runs under /bin/sh whatever the login shell is.
#
# Nothing about the job is on any command line: the first stdin line is one
# base64 line that decodes to shell assignments (cwd, argv, env, nonce), so
# arguments and secret env values never show in `ps` on either machine.
# Everything this script prints to stdout before the "<nonce> OK" status line
# is noise (e.g. from a chatty .bashrc) that the local side throws away.
#
# Modes:
#   run    exec the command with stdin passed through (short commands).
#   spawn  supervise a long-lived process: stdin is relayed line by line
#          through awk so "<nonce> eof" can end the process's input without
#          closing the channel, "<nonce> hb" heartbeats prove the link is
#          alive, and a watchdog stops the process group when the channel
#          closes (local ssh killed, link cut) or heartbeats stop (frozen
#          link). Without it the process would outlive the connection.

umask 077
rx_hdr=$(head -n 1) || exit 125
eval "$(printf '%s' "$rx_hdr" | base64 -d)" || exit 125
unset rx_hdr

# The leading newline ends any login-shell output that lacks one, so the
# status line always starts a line of its own.
rx_say() { printf '\n%s %s\n' "$RX_NONCE" "$*"; }
rx_b64() { printf '%s' "$1" | base64 | tr -d '\n'; }

if [ -n "${RX_CWD_REL+x}" ]; then RX_CWD="$HOME/$RX_CWD_REL"; fi
if [ -n "$RX_CWD" ]; then
  cd -- "$RX_CWD" 2>/dev/null || { rx_say ERR cwd "$(rx_b64 "$RX_CWD")"; exit 125; }
fi

# "claude" as the command means: the Claude Code CLI, wherever it lives.
rx_found=
rx_searched=
rx_try() {
  rx_searched="$rx_searched$1
"
  if [ -f "$1" ] && [ -x "$1" ]; then rx_found=$1; return 0; fi
  return 1
}
if [ "$1" = claude ] && [ -n "$RX_FIND_CLAUDE" ]; then
  shift
  if [ -n "$RX_CLAUDE" ]; then rx_try "$RX_CLAUDE"; fi
  if [ -z "$rx_found" ] && [ -z "$RX_CLAUDE_STRICT" ]; then
    # The login shell's PATH is where the user's own `claude` lives; a
    # non-login ssh command only gets the system default PATH.
    # csh and tcsh have neither `-l -c` nor `command -v`; their rc file sets PATH.
    case ${SHELL##*/} in
      csh | tcsh) rx_q='which claude' rx_l= ;;
      *) rx_q='command -v claude' rx_l=-l ;;
    esac
    rx_p=$("${SHELL:-/bin/sh}" $rx_l -c "$rx_q" </dev/null 2>/dev/null \
      | sed -n '/^\//p' | tail -n 1)
    rx_searched="${rx_searched}PATH of login shell ${SHELL:-/bin/sh}
"
    if [ -n "$rx_p" ] && [ -f "$rx_p" ] && [ -x "$rx_p" ]; then rx_found=$rx_p; fi
    for rx_c in "$HOME/.local/bin/claude" "$HOME/.claude/local/claude" \
      "$HOME/.npm-global/bin/claude" /usr/local/bin/claude /opt/homebrew/bin/claude; do
      [ -n "$rx_found" ] || rx_try "$rx_c"
    done
    if [ -z "$rx_found" ] && command -v npm >/dev/null 2>&1; then
      rx_g=$(npm prefix -g 2>/dev/null) && [ -n "$rx_g" ] && rx_try "$rx_g/bin/claude"
    fi
  fi
  [ -n "$rx_found" ] || { rx_say ERR claude "$(rx_b64 "$rx_searched")"; exit 125; }
  set -- "$rx_found" "$@"
fi

if [ "$RX_MODE" = run ]; then
  # $$ is the process group the command runs in (we are the session leader
  # and exec it): the local side stops that group if it gives up waiting.
  rx_say OK "$(rx_b64 "$rx_found")" "$(rx_b64 "$(pwd -P)")" "$(rx_b64 "$$")"
  rx_env
  exec "$@"
fi

rx_dir=$(mktemp -d "${TMPDIR:-/tmp}/rx.XXXXXXXX") && mkfifo "$rx_dir/in" \
  || { rx_say ERR tmp "$(rx_b64 "${TMPDIR:-/tmp}")"; exit 125; }
trap 'rm -rf "$rx_dir"' EXIT

rx_say OK "$(rx_b64 "$rx_found")" "$(rx_b64 "$(pwd -P)")"

exec 3<&0
(
  rx_env
  exec "$@"
) <"$rx_dir/in" &
rx_pid=$!

# The local side is gone: stop the process gently, then its whole process
# group (sshd made this shell a session and group leader; `exec` in the login
# shell's command keeps it that way), which includes this watchdog.
rx_end() {
  kill -TERM "$rx_pid" 2>/dev/null
  rx_i=0
  while kill -0 "$rx_pid" 2>/dev/null && [ "$rx_i" -lt 20 ]; do
    sleep 0.1
    rx_i=$((rx_i + 1))
  done
  rm -rf "$rx_dir"
  kill -KILL 0
}

# mawk (Debian's awk) fills its whole input buffer before it looks at a line
# unless told to be interactive; other awks handle lines as they arrive.
rx_awk=awk
case $(awk -W version 2>&1 </dev/null) in *mawk*) rx_awk="awk -W interactive" ;; esac

# Relay: opens the fifo at once (so the process does not wait for its first
# input line to start), forwards lines, and returns when stdin reaches EOF,
# which only happens when the channel closes.
(
  $rx_awk -v m="$RX_NONCE" -v out="$rx_dir/in" -v hb="$rx_dir/hb" '
    BEGIN { printf "" > out; fflush(out) }
    $0 == m " hb" { printf "" > hb; close(hb); next }
    $0 == m " eof" { if (!done) { close(out); done = 1 }; next }
    !done { print > out; fflush(out) }
  ' <&3
  rx_end
) </dev/null >/dev/null 2>&1 &

if [ "${RX_HB_MISS:-0}" -gt 0 ]; then
  (
    rx_miss=0
    while sleep 1; do
      if [ -e "$rx_dir/hb" ]; then
        rm -f "$rx_dir/hb"
        rx_miss=0
      else
        rx_miss=$((rx_miss + 1))
        [ "$rx_miss" -lt "$RX_HB_MISS" ] || rx_end
      fi
    done
  ) </dev/null >/dev/null 2>&1 &
fi
exec 3<&-

wait "$rx_pid"
rx_st=$?
# Normal end: take the relay, the watchdog and anything the process left
# running in this session down with us, but keep our own exit status.
trap '' TERM
kill -TERM 0 2>/dev/null
rm -rf "$rx_dir"
exit "$rx_st"
