# remote-executors: extend one session file on the executor's machine.
# Runs under /bin/sh there; stdin holds the bytes to add.
#
# Arguments: PROJECT REL EXPECTED TOTAL
#   EXPECTED  the file's current size as the local side saw it (-1: missing)
#   TOTAL     its size once stdin is appended
# The file is only replaced if it still has EXPECTED bytes, by renaming a
# complete copy over it: readers never see a torn file, and a copy that
# grew meanwhile (another writer) is left alone ("RX-MOVED <size>").
# Prints "RX-OK" on success; failures go to stderr with a non-zero exit.

umask 077
rx_base=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects/$1
rx_f=$2
rx_e=$3
rx_t=$4

mkdir -p -- "$rx_base/$(dirname -- "$rx_f")" && cd -- "$rx_base" || exit 3

rx_size() {
  if [ -e "$rx_f" ]; then rx_n=$(wc -c <"$rx_f") || exit 3; echo $((rx_n + 0)); else echo -1; fi
}
rx_now=$(rx_size)
[ "$rx_now" = "$rx_e" ] || { printf 'RX-MOVED %s\n' "$rx_now"; exit 0; }

rx_tmp=$(dirname -- "$rx_f")/.rx-store.$$.tmp
trap 'rm -f -- "$rx_tmp"' EXIT
if [ "$rx_e" -ge 0 ]; then cp -- "$rx_f" "$rx_tmp" || exit 3; else : >"$rx_tmp" || exit 3; fi
cat >>"$rx_tmp" || exit 3
rx_n=$(wc -c <"$rx_tmp") || exit 3
[ $((rx_n + 0)) = "$rx_t" ] || { echo "short input: $rx_n of $rx_t bytes" >&2; exit 4; }
rx_now=$(rx_size)
[ "$rx_now" = "$rx_e" ] || { printf 'RX-MOVED %s\n' "$rx_now"; exit 0; }
mv -f -- "$rx_tmp" "$rx_f" || exit 3
printf 'RX-OK\n'
