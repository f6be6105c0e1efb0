# remote-executors supervisor: spawn jobs that outlive their channel.
#
# Sent in the job header (only when reattach is on, and only used when the
# host has perl), so its functions exist when bootstrap.sh runs; every other
# job pays nothing for it.
#
# The process writes its stdout and stderr into pipes to a spooler, which
# appends them to private spool files (0600 in the job's 0700 directory) and
# pokes a FIFO after each write; it reads its stdin from a FIFO that the
# watchdog holds open. None of them depends on the channel that started it.
# Each attachment (the first channel, then one per reconnect) runs a follower
# that sends the spool on from the offsets the local side asks for, as frames,
# and a relay that feeds stdin into the FIFO and keeps the count of bytes that
# reached it in "inpos": a reconnecting client resends from there. stdin
# itself never touches the disk. A watchdog stops the whole job once no
# heartbeat arrived for RX_GRACE seconds (looking every 1-5 s), or at once
# on "<nonce> stop".
# After the process exits the spool stays until the local side says "done"
# (it had every byte) or the grace runs out.

# Spooler: the process's stdout (stdin here) and stderr (fd 3) -> "out" and
# "err", one poke byte after each write. perl has no inotify, so without the
# poke the follower could only poll the spool, and each message would wait
# for its nap (up to 8 ms in a turn). A write that fails (disk full) is tried
# again every 0.1 s: the process then blocks on its full pipe, and no byte it
# printed is lost. Once both pipes are at their end and the shell has noted
# the exit status ("exited", renamed into place whole), it publishes it
# ("status": all output precedes it) and pokes. It looks for "exited" every
# millisecond: the shell writes it a moment after the pipes end, and the end
# of every session waits for it (with 10 ms naps its end frame came ~9 ms
# later). A process that exited while something it started still holds its
# stdout open: whatever is in the pipes by then is spooled, the rest is not
# waited for (it looks once a second).
# Only modules of perl-base.
rx_sv_spool='
use strict; use Fcntl;
my ($d) = @ARGV;
open(my $so, ">>", "$d/out") or exit 3; open(my $se, ">>", "$d/err") or exit 3;
open(my $ei, "<&=", 3) or exit 3;
sysopen(my $pk, "$d/poke", O_RDWR | O_NONBLOCK) or exit 3;  # RDWR: never blocks, never ends
binmode $so; binmode $se;
sub put { my ($fh, $b) = @_; my $at = 0;
  while ($at < length $b) { my $w = syswrite($fh, $b, length($b) - $at, $at);
    if (defined $w) { $at += $w } elsif (!$!{EINTR}) { select(undef, undef, undef, 0.1) } } }
my @src = ([\*STDIN, $so], [$ei, $se]);
my $exited = 0;
while (@src) {
  my $want = ""; vec($want, fileno($_->[0]), 1) = 1 for @src;
  my $n = select(my $ready = $want, undef, undef, $exited ? 0 : 1);
  if ($n < 0) { next if $!{EINTR}; last }
  if ($n == 0) { last if $exited; $exited = -e "$d/exited"; next }
  for my $s (@src) {
    next unless vec($ready, fileno($s->[0]), 1);
    my $k = sysread($s->[0], my $b, 65536);
    next if !defined $k && $!{EINTR};
    if ($k) { put($s->[1], $b); syswrite($pk, "o") } else { $s->[2] = 1 }
  }
  @src = grep { !$_->[2] } @src;
}
close $so; close $se;
select(undef, undef, undef, 0.001) until -e "$d/exited" || !-d $d;
rename("$d/exited", "$d/status"); syswrite($pk, "s");'

# Follower: spool -> frames on stdout (then an end frame "0000" and a frame
# holding the exit status), stderr spool -> stderr. An attachment's follower
# waits for the spooler's pokes, looking anyway once a second. A watching one
# (rx_watch: any number may run) leaves the pokes to the attachment's and
# polls: 1 ms after output, backing off to 8 ms while output is recent, then
# to 64 ms. Input written to the process brings a poller back to 1 ms at once
# (SIGURG from the relay, whose default action is to be ignored). Only
# modules of perl-base, which every Debian has even without the perl package.
rx_sv_follow='
use strict; use Fcntl;
my ($d, $oa, $ea, $max, $poked) = @ARGV; my $t = $ENV{RX_FRAME_TAG};
$SIG{TERM} = sub { exit 5 };
my ($nap, $hot, $pk, $pkv) = (0.001, time + 5, undef, "");
if ($poked) { sysopen($pk, "$d/poke", O_RDWR | O_NONBLOCK) or exit 3; vec($pkv, fileno($pk), 1) = 1 }
$SIG{URG} = sub { ($nap, $hot) = (0.001, time + 5) };  # without SA_RESTART: ends the nap
open(my $o, "<", "$d/out") or exit 3; open(my $e, "<", "$d/err") or exit 3;
binmode $o; binmode $e;
seek($o, $oa, 0) or exit 3; ($ea < 0 ? seek($e, 0, 2) : seek($e, $ea, 0)) or exit 3;
sub put { my ($fh, $b) = @_; my ($w, $at) = (0, 0);
  for (; $at < length $b; $at += $w) { $w = syswrite($fh, $b, length($b) - $at, $at);
    unless (defined $w) { exit 1 unless $!{EINTR}; $w = 0 } } }
while (1) {
  my $fin = -e "$d/status";  # published after the process exited: all its output precedes it
  my ($got, $b, $n) = (0);
  while ($n = sysread($o, $b, $max)) { put(\*STDOUT, $t . sprintf("%04x", $n) . $b); $got = 1 }
  while ($n = sysread($e, $b, 65536)) { put(\*STDERR, $b); $got = 1 }
  if ($got) { ($nap, $hot) = (0.001, time + 5); next }
  if ($fin) {
    open(my $s, "<", "$d/status") or exit 3; my $st = <$s>; chomp $st;
    put(\*STDOUT, $t . "0000" . $t . sprintf("%04x", length $st) . $st); exit 0;
  }
  exit 4 unless -d $d;  # stopped and removed
  if ($pk) {  # a poke left from output already sent costs one more look, nothing else
    select(my $r = $pkv, undef, undef, 1) > 0 and sysread($pk, $b, 4096);
    next;
  }
  select(undef, undef, undef, $nap); $nap *= 2 if $nap < (time < $hot ? 0.008 : 0.064);
}'

# Relay: channel lines -> the FIFO, counting what reached it. Control lines
# as in bootstrap.sh, plus "done" (the local side has all the output) and
# "stop" (end the job now). Writes at most PIPE_BUF bytes at a time (atomic
# on a FIFO) and counts each, so a relay stopped between two writes never
# leaves bytes in the FIFO that inpos does not count. TERM (a newer
# attachment takes over) ends it between writes. A heartbeat appends a byte
# to "hb", which the watchdog empties. After input reached the process it
# wakes its attachment's follower (pid $2) for the answer.
rx_sv_relay='
use strict; use Fcntl;
my ($d, $fp) = @ARGV; my $m = $ENV{RX_RELAY_NONCE};
# base64 by hand (uudecode): MIME::Base64 is not in a minimal perl (perl-base).
sub b64d { my $s = shift; $s =~ tr|A-Za-z0-9+/||cd; $s =~ tr|A-Za-z0-9+/| -_|;
  my $u = ""; while ($s =~ /(.{1,60})/gs) { $u .= chr(32 + int(length($1) * 3 / 4)) . $1 }
  return unpack("u", $u) }
my $stop = 0;
$SIG{TERM} = sub { $stop = 1 };  # installed without SA_RESTART: a blocked read returns EINTR
$SIG{PIPE} = "IGNORE";
my $pos = 0;
if (open(my $p, "<", "$d/inpos")) { $pos = (<$p> // 0) + 0; close $p }
# The FIFO opens for writing once the process has it open for reading (it may
# not yet, just after the start); when it has exited or closed its stdin,
# there is nobody to write to and input is dropped, as a pipe would.
my ($in, $tried) = (undef, 0);
sub open_in {
  return 1 if $in; return 0 if $tried || -e "$d/eof";
  for (my $i = 0; $i < 500; $i++) {
    if (sysopen($in, "$d/in", O_WRONLY | O_NONBLOCK)) {
      my $f = fcntl($in, F_GETFL, 0); fcntl($in, F_SETFL, $f & ~O_NONBLOCK); return 1;
    }
    last if -e "$d/status" || $stop; select(undef, undef, undef, 0.01);
  }
  $tried = 1; undef $in; return 0;
}
sub touch { my $h; open($h, ">", "$d/$_[0]") and close $h }
sub beat { if (open(my $h, ">>", "$d/hb")) { print $h "h"; close $h } }
sub wake { kill("URG", $fp) if $fp }
sub save {
  # Unchanged when the write fails (disk full): an empty inpos would mean 0, and all
  # input would be sent again on a reattach.
  open(my $p, ">", "$d/inpos.t") or return; print $p $pos or return; close $p or return;
  rename("$d/inpos.t", "$d/inpos");
}
sub put_in { my $b = shift; return unless open_in(); my $at = 0;
  while ($at < length $b) {
    my $n = length($b) - $at; $n = 4096 if $n > 4096;
    my $w = syswrite($in, $b, $n, $at);
    if (!defined $w) { if ($!{EINTR}) { exit 0 if $stop; next } undef $in; return }
    $at += $w; $pos += $w; save(); exit 0 if $stop;
  }
  wake();
}
sub ctl_eof { close $in if $in; undef $in; touch("eof"); wake();
  if (open(my $k, "<", "$d/wd")) { my $pid = <$k>; chomp $pid; kill("USR2", $pid) if $pid } }
my ($buf, $tail) = ("", "$m tail ");
while (!$stop) {
  my $n = sysread(STDIN, $buf, 65536, length $buf);
  if (!defined $n) { next if $!{EINTR}; last }
  last if $n == 0;
  while ((my $nl = index($buf, "\n")) >= 0) {
    my $l = substr($buf, 0, $nl + 1, "");
    if ($l eq "$m hb\n") { beat(); next }
    if ($l eq "$m eof\n") { ctl_eof(); next }
    if ($l eq "$m done\n") { touch("done"); exit 0 }
    if ($l eq "$m stop\n") {
      touch("stop");
      if (open(my $w, "<", "$d/wd")) { my $pid = <$w>; chomp $pid; kill("USR1", $pid) if $pid }
      exit 0;
    }
    if (index($l, $tail) == 0) { put_in(b64d(substr($l, length $tail))); next }
    put_in($l);
  }
}
exit 0;'

# The pids an attachment runs, if they are still ours (perl): a pid in the
# file may be reused by now.
rx_sv_ours() {
  for rx_p; do
    case $(ps -o comm= -p "$rx_p" 2>/dev/null) in *perl*) printf '%s ' "$rx_p" ;; esac
  done
}

# One attachment: the channel is fds 3 (in), 1 and 2; $1/$2 the stdout and
# stderr offsets the local side already has (stderr -1: from its end, for a
# caller that keeps no stderr).
rx_sv_attach() {
  export RX_RELAY_NONCE="$RX_NONCE" RX_FRAME_TAG="$rx_tag"  # not arguments: those are in ps
  perl -e "$rx_sv_follow" "$rx_dir" "$1" "$2" "$rx_fmax" 1 </dev/null &
  rx_fp=$!
  perl -e "$rx_sv_relay" "$rx_dir" "$rx_fp" <&3 >/dev/null 2>&1 &
  rx_rp=$!
  echo "$rx_rp $rx_fp" >"$rx_dir/attach"
  wait "$rx_fp"
  wait "$rx_rp"
}

# The first channel: start the process under supervision and attach to it.
rx_supervise() {
  # The bootstrap made the FIFOs in, out.p, err.p and poke; the spool files
  # are plain ones.
  { : >"$rx_dir/out" && : >"$rx_dir/err" && echo 0 >"$rx_dir/inpos"; } \
    || { rx_say ERR tmp "$(rx_b64 "$rx_dir")"; exit 125; }
  # fd 6 holds the stdin FIFO open (read-write, so this open does not wait)
  # until the watchdog holds its write end: the process's open of its stdin
  # then returns at once, and it starts while the status line is built and
  # the relay starts, instead of after them. Nothing else may keep fd 6 (the
  # process would never see its input end): each child closes it with
  # `exec`, as a redirection on a command can leave a copy in the shell.
  exec 6<>"$rx_dir/in"
  (
    exec 6>&-
    rx_proc_env
    export REMOTE_EXECUTORS_JOB="$RX_NONCE"
    exec "$@"
  ) <"$rx_dir/in" >"$rx_dir/out.p" 2>"$rx_dir/err.p" &
  rx_pid=$!
  # Opens the pipes in the order the process does, so both opens meet.
  (
    exec 6>&-
    exec perl -e "$rx_sv_spool" "$rx_dir"
  ) <"$rx_dir/out.p" 3<"$rx_dir/err.p" >/dev/null 2>&1 &
  rx_sp=$!
  rx_stderr_mark
  rx_ok "$rx_found" "$(pwd -P)" "" "$rx_dir"
  exec 3<&0
  (
    exec 6>&-
    rx_sv_attach 0 0
  ) &
  rx_a1=$!
  exec 3<&- </dev/null >/dev/null 2>&1

  # Watchdog: the grace runs from the last heartbeat of any attachment. USR1
  # (the relay's "stop") ends the job at once; `wait` returns on a trapped signal.
  # It also holds the FIFO's write end (fd 7), so the process's stdin stays
  # open between attachments, until the relay's "eof" (USR2).
  # It looks every tenth of the grace, but every 1 to 5 s (`sleep` takes
  # whole seconds), so the job ends between the grace and one look more after
  # the last heartbeat; with builtins only, `sleep` is its one fork per look
  # (one every 5 s at the default 300 s grace, not one a second).
  # USR1 and USR2 ignored until the watchdog's traps are set (the relay may
  # send them as soon as "wd" exists): their default action would end the
  # watchdog. The relay creates "stop" or "eof" before it signals, so a signal
  # lost that way is made up for by the looks at those files once the traps
  # are set (and, for "eof", at every look after). Its write end opens at
  # once (fd 6 is a reader), and replaces fd 6.
  trap '' USR1 USR2
  (
    trap 'rx_sv_end' USR1
    trap 'exec 7>&-; rx_again=1' USR2
    exec 7>"$rx_dir/in" 6>&-
    [ ! -e "$rx_dir/stop" ] || rx_sv_end
    [ ! -e "$rx_dir/eof" ] || exec 7>&-
    rx_nap=$((RX_GRACE / 10))
    [ "$rx_nap" -gt 0 ] || rx_nap=1
    [ "$rx_nap" -le 5 ] || rx_nap=5
    rx_looks=$(((RX_GRACE + rx_nap - 1) / rx_nap))
    rx_miss=0
    while :; do
      sleep "$rx_nap" 7>&- &
      rx_s=$!
      rx_again=1
      # A USR2 cuts `wait` short: wait again, or the nap would count whole.
      while [ -n "$rx_again" ]; do
        rx_again=
        wait "$rx_s"
      done
      [ ! -e "$rx_dir/eof" ] || exec 7>&-
      if [ -s "$rx_dir/hb" ]; then
        : >"$rx_dir/hb"
        rx_miss=0
      else
        rx_miss=$((rx_miss + 1))
        [ "$rx_miss" -lt "$rx_looks" ] || rx_sv_end
      fi
      # A spooler gone before the status (killed): no output could ever reach
      # the caller again, and a process that ignores SIGPIPE (node) would go
      # on unseen. End the job as "stop" does (no reattach finds it), so the
      # caller sees it lost, not a silent hang; an attached follower first
      # passes on why, as the status ("spool"), woken by a poke.
      if ! kill -0 "$rx_sp" 2>/dev/null && [ ! -e "$rx_dir/status" ]; then
        : >"$rx_dir/stop"
        if rx_sv_put status spool; then
          { printf s >&8; } 8<>"$rx_dir/poke"
          sleep 1
        fi
        rx_sv_end
      fi
    done
  ) </dev/null >/dev/null 2>&1 &
  echo $! >"$rx_dir/wd"
  exec 6>&-  # the watchdog has its own (or is opening it with fd 6 still held)

  wait "$rx_pid"
  rx_st=$?
  # The spooler publishes it once it has spooled the last output; if it is
  # gone (killed), the status still must be, or no follower would ever end.
  rx_sv_put exited "$rx_st"
  wait "$rx_sp"
  [ -e "$rx_dir/status" ] || mv "$rx_dir/exited" "$rx_dir/status"
  wait "$rx_a1"
  # The first attachment ended without "done" (the link dropped): a later one
  # says it, or the watchdog ends the wait (a look a second: this only
  # happens when the link dropped around the exit).
  while [ ! -e "$rx_dir/done" ]; do sleep 1; done
  trap '' TERM
  for rx_k in $(rx_sweep "$$"); do kill -TERM "$rx_k" 2>/dev/null; done
  kill -TERM 0 2>/dev/null
  rx_rm_dir
  exit "$rx_st"
}

# File $1 of the job's directory, holding $2, renamed into place whole: a
# reader (spooler, follower) must never see a status half written (an empty
# one reads as a lost process, 255). Each name has its own temporary file, so
# the main shell ("exited") and the watchdog ("status") never share one.
rx_sv_put() {
  echo "$2" >"$rx_dir/$1.t" && mv "$rx_dir/$1.t" "$rx_dir/$1"
}

# The end of a job nobody is attached to any more, or that was told to stop:
# the current attachment, then everything rx_end stops (bootstrap.sh).
rx_sv_end() {
  trap '' TERM USR1
  if [ -f "$rx_dir/attach" ]; then
    # shellcheck disable=SC2046
    kill -KILL $(rx_sv_ours $(cat "$rx_dir/attach")) 2>/dev/null
  fi
  rx_end
}

# A later channel: reattach to the job in $RX_DIR from the given offsets.
rx_reattach() {
  rx_dir=$RX_DIR
  if [ ! -d "$rx_dir" ] || [ ! -O "$rx_dir" ] || [ ! -p "$rx_dir/in" ] || [ -e "$rx_dir/stop" ] \
    || [ -z "$rx_perl" ]; then
    rx_say ERR gone
    exit 125
  fi
  # Take over from the previous attachment (maybe on a link that froze): its
  # relay ends between two writes, so inpos is exact once it is gone.
  if [ -f "$rx_dir/attach" ]; then
    # shellcheck disable=SC2046
    set -- $(rx_sv_ours $(cat "$rx_dir/attach"))
    if [ $# -gt 0 ]; then
      kill -TERM "$@" 2>/dev/null
      rx_i=0
      while [ "$rx_i" -lt 20 ] && kill -0 "$1" 2>/dev/null; do
        sleep 0.05
        rx_i=$((rx_i + 1))
      done
      kill -KILL "$@" 2>/dev/null
    fi
  fi
  echo >>"$rx_dir/hb"
  rx_stderr_mark
  rx_ok "$(cat "$rx_dir/inpos" 2>/dev/null || echo 0)" "$([ -e "$rx_dir/eof" ] && echo 1)"
  exec 3<&0
  rx_sv_attach "$RX_OUT_AT" "$RX_ERR_AT"
  exit 0
}

# Whether a client is attached: the relay of the last attachment still runs
# (it ends as soon as its channel closes; its follower may idle on).
rx_sv_attached() {
  # shellcheck disable=SC2046
  set -- $(cat "$rx_dir/attach" 2>/dev/null)
  [ $# -gt 0 ] && [ -n "$(rx_sv_ours "$1")" ] && echo 1
}

# A read-only channel to the job in $RX_DIR (a new local process following a
# running session): its stdout spool from $RX_OUT_AT, in frames, and
# heartbeats that keep the job's grace from running out. It takes nothing
# over: an attached client keeps its channel and stays the only writer of the
# process's input. Control lines: "hb"; "release" (nobody is attached: close
# the process's input, as its client would have at the end); "done" (the
# caller had the end frame: the job may go). The status line holds the
# spool's size and whether a client is attached.
rx_watch() {
  rx_dir=$RX_DIR
  if [ ! -d "$rx_dir" ] || [ ! -O "$rx_dir" ] || [ ! -f "$rx_dir/out" ] || [ -e "$rx_dir/stop" ] \
    || [ -z "$rx_perl" ]; then
    rx_say ERR gone
    exit 125
  fi
  echo >>"$rx_dir/hb"
  rx_ok "$(($(wc -c <"$rx_dir/out")))" "$(rx_sv_attached)"
  export RX_FRAME_TAG="$rx_tag"
  perl -e "$rx_sv_follow" "$rx_dir" "$RX_OUT_AT" -1 "$rx_fmax" </dev/null 2>/dev/null &
  rx_fp=$!
  while IFS= read -r rx_l; do
    case $rx_l in
      "$RX_NONCE hb") echo >>"$rx_dir/hb" ;;
      "$RX_NONCE release")
        if [ -z "$(rx_sv_attached)" ] && [ ! -e "$rx_dir/eof" ]; then
          : >"$rx_dir/eof"
          kill -USR2 "$(cat "$rx_dir/wd")" 2>/dev/null
        fi
        ;;
      "$RX_NONCE done")
        if [ -e "$rx_dir/status" ] && [ -z "$(rx_sv_attached)" ]; then : >"$rx_dir/done"; fi
        break
        ;;
    esac
  done
  kill -TERM "$rx_fp" 2>/dev/null
  wait "$rx_fp"
  exit 0
}
