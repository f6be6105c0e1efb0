# remote-executors: send session files, or their tails, to the local side.
# Runs under /bin/sh on the executor's machine; needs only POSIX tools.
#
# Arguments: PROJECT SID MODE [INLINE MAXFILE MAXSESSION]
#   PROJECT  project dir name under ${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects
#   SID      session id, or "" for every session of the project
#   MODE     "all": every file of the session; "only": just the files on stdin
#            "stream": see below
#   INLINE   how many bytes of file content this answer may carry; files past
#            it are announced (RX-BIG) and fetched with "stream"
#   MAXFILE, MAXSESSION  the size limits: a file over MAXFILE, or one that takes
#            the session's files together over MAXSESSION, is refused (RX-TOOBIG)
# stdin ("all", "only"): one line "SIZE SKIP REL" per local file (SKIP 1: a file
#   of the same size here is not sent). Names travel on stdin, never as
#   arguments: a session may have 100k files.
# Output, in name order: for each file one of
#   "RX-FILE <size> <offset> <head> <rel>\n", its first <head> bytes (up to
#     4 KiB, for a tail), exactly size-offset bytes from <offset>, "RX-EOF\n";
#   "RX-SAME <size> <rel>\n" (same size here: not sent);
#   "RX-BIG <size> <offset> <head> <rel>\n" (fetch it with "stream");
#   "RX-TOOBIG file|session <size> <rel>\n";
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
  if [ "$rx_mode" = only ]; then
    sed 's/^[0-9]* [0-9]* //' "$rx_tmp/local" | while IFS= read -r rx_f; do
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

awk -v mode="$rx_mode" -v budget="$rx_inline" -v maxfile="$rx_maxfile" \
  -v maxsession="$rx_maxsession" -v lf="$rx_tmp/local" -v sf="$rx_tmp/sizes" '
  BEGIN {
    while ((getline line < lf) > 0) {
      n = index(line, " "); s = substr(line, 1, n - 1); rest = substr(line, n + 1)
      n = index(rest, " "); k = substr(rest, 1, n - 1); rel = substr(rest, n + 1)
      lsize[rel] = s + 0; lskip[rel] = k
    }
    while ((getline line < sf) > 0) {
      sub(/^[ \t]*/, "", line)
      n = index(line, " "); s = substr(line, 1, n - 1); rel = substr(line, n + 1)
      if (rel != "total") rsize[rel] = s + 0
    }
  }
  {
    rel = $0
    if (!(rel in rsize)) { print "ERR 0 0 0"; print rel; next }
    size = rsize[rel]
    if (size > maxfile) { print "TOOBIG file " size " 0"; print rel; next }
    if (total + size > maxsession) { print "TOOBIG session " size " 0"; print rel; next }
    total += size
    known = (rel in lsize)
    if (mode == "all" && known && lskip[rel] == 1 && lsize[rel] == size) {
      print "SAME " size " 0 0"; print rel; next
    }
    off = 0
    if (mode == "all" && known) { off = lsize[rel] - 4096; if (off < 0) off = 0 }
    if (off > size) off = 0
    head = off; if (head > 4096) head = 4096
    need = head + size - off
    if (used + need <= budget) { used += need; print "DATA " size " " off " " head }
    else print "BIG " size " " off " " head
    print rel
  }' "$rx_tmp/names" >"$rx_tmp/plan" || exit 3

while IFS=' ' read -r rx_k rx_s rx_o rx_h && IFS= read -r rx_f; do
  case $rx_k in
    ERR) printf 'RX-ERR perm %s\n' "$rx_f" ;;
    SAME) printf 'RX-SAME %s %s\n' "$rx_s" "$rx_f" ;;
    TOOBIG) printf 'RX-TOOBIG %s %s %s\n' "$rx_s" "$rx_o" "$rx_f" ;;
    BIG) printf 'RX-BIG %s %s %s %s\n' "$rx_s" "$rx_o" "$rx_h" "$rx_f" ;;
    DATA)
      printf 'RX-FILE %s %s %s %s\n' "$rx_s" "$rx_o" "$rx_h" "$rx_f"
      [ "$rx_h" -eq 0 ] || head -c "$rx_h" -- "$rx_f"
      tail -c +$((rx_o + 1)) -- "$rx_f" | head -c $((rx_s - rx_o))
      printf 'RX-EOF\n'
      ;;
  esac
done <"$rx_tmp/plan"
printf 'RX-END\n'
