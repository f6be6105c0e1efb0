# remote-executors bootstrap. Runs under /bin/sh whatever the login shell is.
#
# Nothing about the job is on any command line: the first stdin line is one
# base64 line that decodes to shell assignments (cwd, argv, env, nonce), so
# arguments and secret env values never show in `ps` on either machine.
# Everything this script prints to stdout before the "<nonce> OK" status line
# is noise (e.g. from a chatty .bashrc) that the local side throws away.
# After it, the command's stdout goes into a pipe and comes out in frames
# (rx_frame, see _frames.py): a background job a login script started may
# still write into the channel, and the local side keeps frames only.
#
# Modes:
#   run    run the command with stdin passed through (short commands).
#   spawn  supervise a long-lived process: stdin is relayed line by line
#          (perl, else awk) so "<nonce> eof" can end the process's input without
#          closing the channel, "<nonce> hb" heartbeats prove the link is
#          alive, and a watchdog stops the process group when the channel
#          closes (local ssh killed, link cut) or heartbeats stop (frozen
#          link). Without it the process would outlive the connection.
#          With RX_GRACE > 0 the process outlives the channel instead, for
#          that many seconds, under supervisor.sh (sent in the header).
#   attach a new channel to such a supervised process (supervisor.sh).
#   watch  a read-only channel to one (supervisor.sh): its output, heartbeats.

umask 077
rx_hdr=$(head -n 1) || exit 125
# No header: the channel closed first (a spare channel nobody needed, or a
# spawn cancelled before it sent the job). Nothing to do, and nothing below
# may run without a nonce (rx_tagged would match every job's processes).
[ -n "$rx_hdr" ] || exit 0
eval "$(printf '%s' "$rx_hdr" | base64 -d)" || exit 125
unset rx_hdr
[ -n "$RX_NONCE" ] || exit 125

# The leading newline ends any login-shell output that lacks one, so the
# status line always starts a line of its own.
rx_say() { printf '\n%s %s\n' "$RX_NONCE" "$*"; }
rx_b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
# The OK line's values travel as one base64 word of NUL-terminated strings:
# one pipeline instead of one per value (each costs three processes).
rx_ok() { rx_say OK "$(printf '%s\0' "$@" | base64 | tr -d '\n')"; }
# Marks the end of login-shell chatter on stderr, as the status line does on
# stdout: the caller's stderr stream starts after it.
rx_stderr_mark() { printf '\n%s stderr\n' "$RX_NONCE" >&2; }

# Frames: "<nonce>:<4 hex digits: length><payload>", each one write() of at
# most PIPE_BUF bytes, which a pipe never interleaves with another writer's
# bytes (PIPE_BUF is 4096 on Linux; elsewhere, macOS's 512 say, we keep to
# POSIX's minimum). perl when the host has it; else dd reads a chunk (one
# read, so output is passed on as it comes) and dd writes the frame built in
# $1/frame (one write). The framer's stderr goes nowhere: that stream is the
# command's (perl warns there about a login locale that is not installed).
rx_tag="$RX_NONCE:"
rx_pipe_buf=512
if [ -e /proc/sys/fs/pipe-max-size ]; then rx_pipe_buf=4096; fi
rx_fmax=$((rx_pipe_buf - ${#rx_tag} - 4))
rx_perl=
if command -v perl >/dev/null 2>&1; then rx_perl=1; fi
rx_frame() {
  if [ -n "$rx_perl" ]; then
    export RX_FRAME_TAG="$rx_tag"  # not an argument: those are in everyone's ps
    exec perl -e '
      my ($t, $max) = ($ENV{RX_FRAME_TAG}, @ARGV);
      my ($b, $n, $o, $w);
      while ($n = sysread(STDIN, $b, $max)) {
        $b = $t . sprintf("%04x", $n) . $b;
        for ($o = 0; $o < length $b; $o += $w) {
          $w = syswrite(STDOUT, $b, length($b) - $o, $o);
          exit 1 unless defined $w;
        }
      }
      exit(defined $n ? 0 : 1);' "$rx_fmax"
  fi
  while :; do
    dd bs="$rx_fmax" count=1 of="$1/chunk" 2>/dev/null || exit 1
    rx_n=$(($(wc -c <"$1/chunk")))
    [ "$rx_n" -gt 0 ] || exit 0
    { printf '%s%04x' "$rx_tag" "$rx_n" && cat "$1/chunk"; } >"$1/frame" || exit 1
    dd if="$1/frame" bs="$rx_pipe_buf" 2>/dev/null || exit 1
  done
}

# Pids of processes that inherited this job's tag (see rx_env below): they
# stay findable after they are orphaned and re-parented to init, which a tree
# walk cannot see. Linux /proc only; elsewhere the tree walk is all we have.
rx_tagged() {
  [ -d /proc/self ] || return 0
  printf 'REMOTE_EXECUTORS_JOB=%s\n' "$RX_NONCE" \
    | grep -laF -f - /proc/[0-9]*/environ 2>/dev/null \
    | sed -n 's,^/proc/\([0-9]*\)/environ$,\1,p' | tr '\n' ' '
}

# Pids of every descendant of $1 (processes that made their own session, like
# the CLI's Bash tool, are still our descendants).
rx_tree() {
  ps -A -o pid= -o ppid= 2>/dev/null | awk -v r="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END {
      n = split(kids[r], stack, " ")
      while (n > 0) {
        p = stack[n--]; printf "%s ", p
        m = split(kids[p], c, " "); for (i = 1; i <= m; i++) stack[++n] = c[i]
      }
    }'
}

# What a job's end stops: every descendant of $1 and every process that
# carries the job's tag. With perl, one pass over /proc in one process; else
# the two pipelines above, seven processes (about 10 ms more, on every end).
rx_sweep_pl='
my ($root, $tag) = ($ARGV[0], $ENV{RX_SWEEP_TAG}); my (%kids, %out);
opendir(my $d, "/proc") or exit 0;
for my $p (grep { /^\d+$/ } readdir $d) {
  if (open(my $s, "<", "/proc/$p/stat")) {
    my $l = <$s>; push @{$kids{$1}}, $p if defined $l && $l =~ /\)\s+\S+\s+(\d+)/;
  }
  if (open(my $e, "<", "/proc/$p/environ")) {
    local $/; my $v = <$e>; $out{$p} = 1 if defined $v && index("\0$v", "\0$tag\0") >= 0;
  }
}
my @todo = @{$kids{$root} || []};
while (@todo) { my $p = pop @todo; $out{$p} = 1; push @todo, @{$kids{$p} || []} }
delete @out{$$, getppid()}; print join(" ", keys %out), "\n";'
rx_sweep() {
  if [ -n "$rx_perl" ] && [ -d /proc/self ]; then
    RX_SWEEP_TAG="REMOTE_EXECUTORS_JOB=$RX_NONCE" perl -e "$rx_sweep_pl" "$1" 2>/dev/null
  else
    echo "$(rx_tree "$1") $(rx_tagged)"
  fi
}

# A new channel to a supervised job (supervisor.sh, sent in the header).
if [ "$RX_MODE" = attach ]; then rx_reattach; fi
if [ "$RX_MODE" = watch ]; then rx_watch; fi

if [ -n "${RX_CWD_REL+x}" ]; then RX_CWD="$HOME/$RX_CWD_REL"; fi
if [ -n "$RX_CWD" ]; then
  cd -- "$RX_CWD" 2>/dev/null || { rx_say ERR cwd "$(rx_b64 "$RX_CWD")"; exit 125; }
fi

# The process's environment: the caller's (rx_env, from the header; it wins),
# over a UTF-8 locale where the host sets none (see the search for claude).
rx_utf8=
rx_proc_env() {
  if [ -n "$rx_utf8" ]; then export LANG=C.UTF-8; fi
  rx_env
}

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
  # sshd passes no locale unless the host's PAM sets one (UsePAM no, no
  # /etc/default/locale): the CLI would run in the POSIX locale, blind to
  # UTF-8 in what its tools print, and slower (a one-turn session took
  # ~60 ms more on the loopback bed). C.UTF-8 then, where the host has it.
  if [ -z "${LC_ALL-}${LC_CTYPE-}${LANG-}" ] \
    && { [ -d /usr/lib/locale/C.utf8 ] || [ -d /usr/lib/locale/C.UTF-8 ]; }; then
    rx_utf8=1
  fi
fi

# A private directory: the FIFOs of a spawned process, the frames of the dd
# framer. A run job with perl needs none (nor the three processes it costs).
rx_dir=
if [ -z "$rx_perl" ]; then
  for rx_t in dd wc cat; do
    command -v "$rx_t" >/dev/null 2>&1 || { rx_say ERR tools "$(rx_b64 "$rx_t")"; exit 125; }
  done
fi
# A supervised job (below) has its own FIFOs (supervisor.sh).
rx_sv=
if [ "${RX_GRACE:-0}" -gt 0 ] && [ -n "$rx_perl" ]; then rx_sv=1; fi
if [ "$RX_MODE" != run ] || [ -z "$rx_perl" ]; then
  rx_dir=$(mktemp -d "${TMPDIR:-/tmp}/rx.XXXXXXXX") \
    && if [ "$RX_MODE" = run ]; then :
    elif [ -n "$rx_sv" ]; then
      mkfifo "$rx_dir/in" "$rx_dir/out.p" "$rx_dir/err.p" "$rx_dir/poke"
    else mkfifo "$rx_dir/in" "$rx_dir/out"; fi \
    || { rx_say ERR tmp "$(rx_b64 "${TMPDIR:-/tmp}")"; exit 125; }
  trap 'rm -rf "$rx_dir"' EXIT
fi

if [ "$RX_MODE" = run ]; then
  # $$ is the process group the command runs in (we are the session leader):
  # the local side stops that group if it gives up waiting. A command killed
  # by a signal exits 128+N, as under spawn, instead of taking the session
  # leader down (which ssh reports as its own 255).
  # The command writes into the pipe to rx_frame, which writes to the channel
  # (fd 4); its exit status comes back on fd 5, the command substitution's.
  rx_stderr_mark
  rx_ok "$rx_found" "$(pwd -P)" "$$"
  exec 4>&1
  rx_st=$(
    {
      { rx_proc_env; "$@" 4>&- 5>&-; echo "$?" >&5; } | rx_frame "$rx_dir" >&4 5>&- 2>/dev/null
    } 5>&1
  )
  exit "${rx_st:-125}"
fi

# Attachments: content the process needs as a path (JSON with credentials
# that must not be on a command line, a file or directory named by an
# option). Each arrives base64-encoded as RX_ATT_<n> (a directory as a tar
# archive) and its placeholder argument becomes the path of a private copy
# inside $rx_dir, which goes when the job ends.
if [ "${RX_ATTS:-0}" -gt 0 ]; then
  rx_n=$#
  for rx_a; do
    case $rx_a in
      "$RX_NONCE":att:*)
        rx_i=${rx_a##*:}
        rx_p="$rx_dir/att$rx_i"
        eval "rx_k=\$RX_ATT_KIND_$rx_i"
        if [ "$rx_k" = tree ]; then
          command -v tar >/dev/null 2>&1 || { rx_say ERR attach "$(rx_b64 tar)"; exit 125; }
          mkdir "$rx_p" \
            && eval "printf '%s' \"\$RX_ATT_$rx_i\"" | base64 -d | tar -x -f - -C "$rx_p" \
            || { rx_say ERR attach "$(rx_b64 "$rx_dir")"; exit 125; }
        else
          eval "printf '%s' \"\$RX_ATT_$rx_i\"" | base64 -d >"$rx_p" \
            || { rx_say ERR attach "$(rx_b64 "$rx_dir")"; exit 125; }
        fi
        unset "RX_ATT_$rx_i"
        rx_a=$rx_p
        ;;
    esac
    set -- "$@" "$rx_a"
  done
  shift "$rx_n"
fi

# The local side is gone: stop the process gently, then every descendant and
# the whole process group (sshd made this shell a session and group leader;
# `exec` in the login shell's command keeps it that way), this watchdog too.
rx_end() {
  # When the process exits, the main shell's normal end signals our group:
  # this cleanup must not stop half way.
  trap '' TERM
  # Listed before the TERM: once the process exits, its children in a session
  # of their own are orphaned (re-parented to init) and out of our tree.
  rx_kids=$(rx_tree "$rx_pid")
  kill -TERM "$rx_pid" 2>/dev/null
  rx_i=0
  while kill -0 "$rx_pid" 2>/dev/null && [ "$rx_i" -lt 20 ]; do
    sleep 0.1
    rx_i=$((rx_i + 1))
  done
  rx_self=$(exec sh -c 'echo "$PPID"')
  # The main shell ($$) first when this is its watchdog: woken by the ends of
  # the processes killed here, it would go on to write the exit status into
  # the directory as rm removes it.
  for rx_k in "$$" $rx_kids $(rx_sweep "$$"); do
    [ "$rx_k" = "$rx_self" ] || kill -KILL "$rx_k" 2>/dev/null
  done
  rx_rm_dir
  kill -KILL 0
}

# Remove the job's directory. A writer signalled just before (SIGKILL too
# takes effect only once it is scheduled) may still add a file while rm goes
# through the directory, and rm then fails on it, not empty: once more, after
# the writers are gone.
rx_rm_dir() {
  rm -rf "$rx_dir" 2>/dev/null && return 0
  sleep 0.1
  rm -rf "$rx_dir" 2>/dev/null
}

# Reattach on: the process outlives the channel (supervisor.sh). It needs
# perl; without it the job runs as below and ends with its channel.
if [ -n "$rx_sv" ]; then rx_supervise "$@"; fi

rx_stderr_mark
rx_ok "$rx_found" "$(pwd -P)"

exec 3<&0
(
  rx_proc_env
  export REMOTE_EXECUTORS_JOB="$RX_NONCE"
  exec "$@"
) <"$rx_dir/in" >"$rx_dir/out" &
rx_pid=$!
# The framer ignores TERM: when the process exits, the sweep below must leave
# it to pass on the last output, up to the end of its input.
(
  trap '' TERM
  rx_frame "$rx_dir"
) <"$rx_dir/out" 2>/dev/null 3<&- &
rx_fpid=$!

# Relay: opens the fifo at once (so the process does not wait for its first
# input line to start), forwards lines, and returns when stdin reaches EOF,
# which only happens when the channel closes. perl reads lines in linear
# time; mawk (Debian's awk) must be made interactive to pass lines on as they
# come, and is then quadratic in the line length. Input that does not end in
# a newline arrives as one "<nonce> tail <base64>" line, written back exactly.
# The tail's base64 is decoded with unpack("u") (same alphabet, shifted), not
# MIME::Base64: a minimal Debian (perl-base only, as in slim container
# images) has perl without that module, and awk would drop NUL bytes.
# perl also keeps the heartbeat clock: an alarm, re-armed by each "hb" line,
# ends the relay as EOF would once none came for RX_HB_MISS seconds (a frozen
# link), even while it is blocked writing to a process that does not read. So
# an idle job costs no wakeup between heartbeats (a loop of `sleep 1` cost a
# fork a second per job). awk has no clock: the watchdog loop below is its.
if [ -n "$rx_perl" ]; then
  rx_relay() {
    export RX_RELAY_NONCE="$RX_NONCE"  # not an argument: those are in everyone's ps
    perl -e '
      sub d64 {
        my $s = shift; $s =~ tr|A-Za-z0-9+/||cd; $s =~ tr|A-Za-z0-9+/| -_|;
        my $r = ""; $r .= unpack("u", chr(32 + length($1) * 3 / 4) . $1) while $s =~ /(.{1,60})/gs;
        return $r;
      }
      my ($m, $out, $miss) = ($ENV{RX_RELAY_NONCE}, @ARGV);
      # The default action of SIGALRM ends the relay at once, mid-write too (a
      # handler would exit through a flush that can block again); set in case
      # the parent left it ignored.
      $SIG{ALRM} = "DEFAULT";
      alarm($miss) if $miss > 0;
      open(my $o, ">", $out) or exit 1;
      binmode($o); select($o); $| = 1; select(STDOUT);
      my $done = 0;
      my $tail = "$m tail ";
      while (defined(my $l = <STDIN>)) {
        if ($l eq "$m hb\n") { alarm($miss) if $miss > 0; next }
        if ($l eq "$m eof\n") { close($o) unless $done; $done = 1; next }
        if (index($l, $tail) == 0) {
          print {$o} d64(substr($l, length($tail))) unless $done;
          next;
        }
        print {$o} $l unless $done;
      }' "$rx_dir/in" "${RX_HB_MISS:-0}" <&3
  }
else
  rx_awk=awk
  case $(awk -W version 2>&1 </dev/null) in *mawk*) rx_awk="awk -W interactive" ;; esac
  # For the tail: base64 -d appends to the fifo (a second writer), quoted for sh.
  rx_qin="'$(printf '%s' "$rx_dir/in" | sed "s/'/'\\\\''/g")'"
  rx_relay() {
    export RX_RELAY_NONCE="$RX_NONCE"
    $rx_awk -v out="$rx_dir/in" -v qin="$rx_qin" -v hb="$rx_dir/hb" '
      BEGIN { m = ENVIRON["RX_RELAY_NONCE"]; printf "" > out; fflush(out); tail = m " tail " }
      $0 == m " hb" { printf "h" >> hb; close(hb); next }
      $0 == m " eof" { if (!done) { close(out); done = 1 }; next }
      index($0, tail) == 1 {
        if (!done) { fflush(out); system("printf %s " substr($0, length(tail) + 1) " | base64 -d >>" qin) }
        next
      }
      !done { print > out; fflush(out) }
    ' <&3
  }
fi
(
  trap '' PIPE  # a write after the process exited must not end the relay early
  rx_relay
  # stdin ended: the channel is gone. (If the process already exited, the
  # main shell is finishing up and reports its status itself.)
  if kill -0 "$rx_pid" 2>/dev/null; then rx_end; fi
) </dev/null >/dev/null 2>&1 &

# The awk relay's heartbeat clock: each "hb" appends a byte to a file that
# this loop empties (builtins only: `sleep` is its one fork a second).
if [ "${RX_HB_MISS:-0}" -gt 0 ] && [ -z "$rx_perl" ]; then
  (
    rx_miss=0
    while sleep 1; do
      if [ -s "$rx_dir/hb" ]; then
        : >"$rx_dir/hb"
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
for rx_k in $(rx_sweep "$$"); do kill -TERM "$rx_k" 2>/dev/null; done
kill -TERM 0 2>/dev/null
# The framer's input ends once nothing holds the FIFO open any more.
wait "$rx_fpid"
rx_rm_dir
exit "$rx_st"
