# remote-executors: send session files, or their tails, to the local side.
# Runs under /bin/sh on the executor's machine; needs only POSIX tools.
#
# Arguments: PROJECT SID MODE [INLINE MAXFILE MAXSESSION [MINUTES]]
#   PROJECT  project dir name under ${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects
#   SID      session id, or "" for every session of the project
#   MODE     "all": every file of the session; "only": just the files on stdin,
#            whole; "some": just the files on stdin, as tails; "stream": see below
#   INLINE   how many bytes of file content this answer may carry; files past
#            it are announced (RX-BIG) and fetched with "stream"
#   MAXFILE, MAXSESSION  the size limits: a file over MAXFILE, or one that takes
#            the session's files together over MAXSESSION, is refused (RX-TOOBIG)
#   MINUTES  ("all" with a session) only look at the transcript, the files on
#            stdin, and files modified in the last MINUTES minutes: the local
#            side knows every other file is as it was at its last pull. Such a
#            modified file it did not list is only announced (RX-CHANGED): the
#            local side asks for its tail ("some") or lets it be
# stdin ("all", "only"): one line "SIZE SKIP FROM REL" per local file (SKIP 1: a
#   file of the same size here is not sent; FROM: where its tail starts, at
#   most SIZE, chosen by the local side). Names travel on stdin, never as
#   arguments: a session may have 100k files.
# Output, in name order: for each file one of
#   "RX-FILE <size> <offset> <head> <rel>\n", its first <head> bytes (up to
#     4 KiB, for a tail), exactly size-offset bytes from <offset>, "RX-EOF\n";
#   "RX-SAME <size> <rel>\n" (same size here: not sent);
#   "RX-BIG <size> <offset> <head> <rel>\n" (fetch it with "stream");
#   "RX-TOOBIG file|session <size> <rel>\n";
#   "RX-CHANGED <size> <rel>\n" (modified lately, not on stdin: ask with "some");
#   "RX-ERR perm <rel>\n" (unreadable);
# and "RX-END\n" at the very end. The framing lets a truncated or garbled
# stream be detected, never misread.
#
# "stream" mode: PROJECT SID stream REL OFFSET HEAD SIZE sends REL's first HEAD
# bytes, then bytes [OFFSET, SIZE), and nothing else.

LC_ALL=C
export LC_ALL
rx_base=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects/$1
rx_sid=$2
rx_mode=$3

if [ "$rx_mode" = stream ]; then
  cd -- "$rx_base" || exit 3
  rx_f=$4 rx_o=$5 rx_h=$6 rx_s=$7
  [ "$rx_h" -eq 0 ] || head -c "$rx_h" -- "$rx_f" || exit 3
  tail -c +$((rx_o + 1)) -- "$rx_f" | head -c $((rx_s - rx_o))
  exit 0
fi

rx_inline=${4:-8388608} rx_maxfile=${5:-1073741824} rx_maxsession=${6:-4294967296}
rx_minutes=${7:-0}

if [ ! -d "$rx_base" ]; then
  cat >/dev/null
  printf 'RX-NODIR\nRX-END\n'
  exit 0
fi
cd -- "$rx_base" || { cat >/dev/null; printf 'RX-ERR perm .\nRX-END\n'; exit 0; }

umask 077
rx_tmp=$(mktemp -d "${TMPDIR:-/tmp}/rx-fetch.XXXXXXXX") || exit 3
trap 'rm -rf -- "$rx_tmp"' EXIT
cat >"$rx_tmp/local" || exit 3

# Every candidate file: names (one per line; a name with a newline is never
# synced), then "SIZE NAME" for the readable ones: one wc per batch of files,
# not one process per file.
rx_nl='
'
rx_names() {
  if [ "$rx_mode" = only ] || [ "$rx_mode" = some ]; then
    sed 's/^[0-9]* [0-9]* [0-9]* //' "$rx_tmp/local" | while IFS= read -r rx_f; do
      [ -f "$rx_f" ] && printf '%s\n' "$rx_f"
    done
  elif [ -n "$rx_sid" ] && [ "$rx_minutes" -gt 0 ]; then
    [ -f "$rx_sid.jsonl" ] && printf '%s\n' "$rx_sid.jsonl"
    [ -d "$rx_sid" ] && find "$rx_sid" -type f -mmin "-$rx_minutes" ! -path "*$rx_nl*" -print
    sed 's/^[0-9]* [0-9]* [0-9]* //' "$rx_tmp/local" | while IFS= read -r rx_f; do
      [ -f "$rx_f" ] && printf '%s\n' "$rx_f"
    done
  elif [ -n "$rx_sid" ]; then
    [ -f "$rx_sid.jsonl" ] && printf '%s\n' "$rx_sid.jsonl"
    [ -d "$rx_sid" ] && find "$rx_sid" -type f ! -path "*$rx_nl*" -print
  else
    for rx_f in *.jsonl; do [ -f "$rx_f" ] && printf '%s\n' "$rx_f"; done
    for rx_f in *-*-*-*-*; do
      [ -d "$rx_f" ] && find "$rx_f" -type f ! -path "*$rx_nl*" -print
    done
  fi
  return 0
}
rx_names >"$rx_tmp/names"
# wc -c: "SIZE NAME" per file, and a "total" line per batch (none of our
# names is "total": they all start with the session id or end in .jsonl).
tr '\n' '\0' <"$rx_tmp/names" | xargs -0 wc -c -- 2>/dev/null >"$rx_tmp/sizes"

# Files that need no data are answered by awk itself; the rest go to the plan
# for the shell loop below (whose `read` costs a syscall per byte: it only
# sees the files that changed). Names wc could not read go to "unread".
awk -v mode="$rx_mode" -v budget="$rx_inline" -v maxfile="$rx_maxfile" -v minutes="$rx_minutes" \
  -v maxsession="$rx_maxsession" -v lf="$rx_tmp/local" -v sf="$rx_tmp/sizes" \
  -v plan="$rx_tmp/plan" -v unread="$rx_tmp/unread" '
  BEGIN {
    while ((getline line < lf) > 0) {
      n = index(line, " "); s = substr(line, 1, n - 1); rest = substr(line, n + 1)
      n = index(rest, " "); k = substr(rest, 1, n - 1); rest = substr(rest, n + 1)
      n = index(rest, " "); f = substr(rest, 1, n - 1); rel = substr(rest, n + 1)
      lsize[rel] = s + 0; lskip[rel] = k; lfrom[rel] = f + 0
    }
    while ((getline line < sf) > 0) {
      sub(/^[ \t]*/, "", line)
      n = index(line, " "); s = substr(line, 1, n - 1); rel = substr(line, n + 1)
      if (rel != "total") rsize[rel] = s + 0
    }
    printf "" > plan; printf "" > unread
  }
  {
    rel = $0
    if (rel in seen) next
    seen[rel] = 1
    if (!(rel in rsize)) { print rel > unread; next }
    size = rsize[rel]
    # Sizes go out with %.0f: awk prints large numbers in exponent form.
    if (size > maxfile) { printf "RX-TOOBIG file %.0f %s\n", size, rel; next }
    if (total + size > maxsession) { printf "RX-TOOBIG session %.0f %s\n", size, rel; next }
    total += size
    known = (rel in lsize)
    tails = (mode == "all" || mode == "some")
    if (mode == "all" && minutes > 0 && !known) { printf "RX-CHANGED %.0f %s\n", size, rel; next }
    if (tails && known && lskip[rel] == 1 && lsize[rel] == size) {
      printf "RX-SAME %.0f %s\n", size, rel; next
    }
    off = 0
    if (tails && known) off = lfrom[rel]
    if (off > size) off = 0
    head = off; if (head > 4096) head = 4096
    need = head + size - off
    if (used + need > budget) { printf "RX-BIG %.0f %.0f %.0f %s\n", size, off, head, rel; next }
    used += need
    printf "%.0f %.0f %.0f\n%s\n", size, off, head, rel > plan
  }' "$rx_tmp/names" || exit 3

while IFS= read -r rx_f; do
  [ ! -e "$rx_f" ] || printf 'RX-ERR perm %s\n' "$rx_f"
done <"$rx_tmp/unread"

# The files' bytes: one perl for all of them where the host has perl (a
# session's first pull may carry 100k small files), else processes per file.
# Either way exactly SIZE-OFFSET bytes or fewer (a file that shrank: the
# local side sees the frame cut short); never more.
if command -v perl >/dev/null 2>&1; then
  perl -e '
    binmode(STDOUT); $| = 0;
    open(my $plan, "<", $ARGV[0]) or exit 3;
    while (defined(my $nums = <$plan>)) {
      my $rel = <$plan>; last unless defined $rel;
      chomp($nums); chomp($rel);
      my ($s, $o, $h) = split(/ /, $nums);
      print "RX-FILE $s $o $h $rel\n";
      if (open(my $f, "<", $rel)) {
        binmode($f);
        my $buf;
        if ($h > 0) { my $n = read($f, $buf, $h); print $buf if $n; }
        if (seek($f, $o, 0)) {
          my $left = $s - $o;
          while ($left > 0) {
            my $n = read($f, $buf, $left < 65536 ? $left : 65536);
            last unless $n;
            print $buf; $left -= $n;
          }
        }
        close($f);
      }
      print "RX-EOF\n";
    }' "$rx_tmp/plan" || exit 3
else
  while IFS=' ' read -r rx_s rx_o rx_h && IFS= read -r rx_f; do
    printf 'RX-FILE %s %s %s %s\n' "$rx_s" "$rx_o" "$rx_h" "$rx_f"
    [ "$rx_h" -eq 0 ] || head -c "$rx_h" -- "$rx_f"
    if [ "$rx_o" -eq 0 ]; then
      head -c "$rx_s" -- "$rx_f"
    else
      tail -c +$((rx_o + 1)) -- "$rx_f" | head -c $((rx_s - rx_o))
    fi
    printf 'RX-EOF\n'
  done <"$rx_tmp/plan"
fi
printf 'RX-END\n'
