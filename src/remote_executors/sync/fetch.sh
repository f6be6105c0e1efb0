# remote-executors: send session files, or their tails, to the local side.
# Runs under /bin/sh on the executor's machine; needs only POSIX tools.
#
# Arguments: PROJECT SID MODE [REL OFFSET]...
#   PROJECT  project dir name under ${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects
#   SID      session id, or "" for every session of the project
#   MODE     "all": every file of the session (offset 0 unless given)
#            "only": just the REL files given
#   REL OFFSET  send REL from byte OFFSET (0 when OFFSET is past the end)
# Output, per file: "RX-FILE <size> <offset> <head> <rel>\n", the file's first
# <head> bytes (up to 4 KiB, only for a tail), exactly size-offset bytes from
# <offset>, and "RX-EOF\n". Unreadable: "RX-ERR perm <rel>\n". Ends
# with "RX-END\n".
# The framing lets a truncated or garbled stream be detected, never misread.

rx_base=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects/$1
rx_sid=$2
rx_mode=$3
shift 3

if [ ! -d "$rx_base" ]; then
  printf 'RX-NODIR\nRX-END\n'
  exit 0
fi
cd -- "$rx_base" || { printf 'RX-ERR perm .\nRX-END\n'; exit 0; }

rx_list() {
  if [ "$rx_mode" = only ]; then
    rx_key=
    for rx_a; do
      if [ -z "$rx_key" ]; then rx_key=x; printf '%s\n' "$rx_a"; else rx_key=; fi
    done
  elif [ -n "$rx_sid" ]; then
    [ -f "$rx_sid.jsonl" ] && printf '%s\n' "$rx_sid.jsonl"
    [ -d "$rx_sid" ] && find "$rx_sid" -type f -print
  else
    for rx_f in *.jsonl; do [ -f "$rx_f" ] && printf '%s\n' "$rx_f"; done
    for rx_f in *-*-*-*-*; do [ -d "$rx_f" ] && find "$rx_f" -type f -print; done
  fi
  return 0
}

rx_list "$@" | while IFS= read -r rx_f; do
  [ -e "$rx_f" ] || continue
  if [ ! -r "$rx_f" ]; then printf 'RX-ERR perm %s\n' "$rx_f"; continue; fi
  rx_o=0 rx_key=
  for rx_a; do
    if [ -z "$rx_key" ]; then rx_key=$rx_a; continue; fi
    [ "$rx_key" = "$rx_f" ] && rx_o=$rx_a
    rx_key=
  done
  rx_s=$(wc -c <"$rx_f") || { printf 'RX-ERR perm %s\n' "$rx_f"; continue; }
  rx_s=$((rx_s + 0))
  [ "$rx_o" -le "$rx_s" ] || rx_o=0
  rx_h=$rx_o
  [ "$rx_h" -le 4096 ] || rx_h=4096
  printf 'RX-FILE %s %s %s %s\n' "$rx_s" "$rx_o" "$rx_h" "$rx_f"
  [ "$rx_h" -eq 0 ] || head -c "$rx_h" -- "$rx_f"
  tail -c +$((rx_o + 1)) -- "$rx_f" | head -c $((rx_s - rx_o))
  printf 'RX-EOF\n'
done
printf 'RX-END\n'
