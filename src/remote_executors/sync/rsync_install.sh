# remote-executors: install the files RsyncSessionSync pushed into a hidden
# temp dir beside them. Runs under /bin/sh on the executor's machine.
#
# Arguments: BASE TMP [REL EXPECTED]...
#   BASE      the project dir (absolute, or relative to the login dir as "./...")
#   TMP       the temp dir under BASE rsync wrote into (.rx-push-<hex>); always removed
#   REL       a file to install from TMP/REL over BASE/REL
#   EXPECTED  BASE/REL's size when the decision to push was made (-1: missing)
# A file is only replaced if it still has EXPECTED bytes, by renaming the
# complete copy over it: readers never see a torn file, and a copy that grew
# meanwhile (another writer) is left alone.
# Output, per file: "RX-OK <size> <rel>", "RX-MOVED <size> <rel>" (changed
# meanwhile, left alone) or "RX-LOST <rel>" (not in TMP). Failures go to stderr
# with a non-zero exit. Mode "prep": just create BASE (private) and exit.

umask 077
if [ "$1" = prep ]; then
  mkdir -p -- "$2" || exit 3
  exit 0
fi
cd -- "$1" || exit 3
rx_tmp=$2
shift 2
case $rx_tmp in
  .rx-push-*) ;;
  *) echo "bad temp dir name: $rx_tmp" >&2; exit 2 ;;
esac
trap 'rm -rf -- "$rx_tmp"' EXIT

rx_size() {
  if [ -e "$1" ]; then rx_n=$(wc -c <"$1") || return 1; echo $((rx_n + 0)); else echo -1; fi
}

while [ $# -ge 2 ]; do
  rx_f=$1 rx_e=$2
  shift 2
  if [ ! -f "$rx_tmp/$rx_f" ]; then printf 'RX-LOST %s\n' "$rx_f"; continue; fi
  rx_now=$(rx_size "$rx_f") || exit 3
  if [ "$rx_now" != "$rx_e" ]; then printf 'RX-MOVED %s %s\n' "$rx_now" "$rx_f"; continue; fi
  rx_t=$(rx_size "$rx_tmp/$rx_f") || exit 3
  mkdir -p -- "$(dirname -- "$rx_f")" || exit 3
  mv -f -- "$rx_tmp/$rx_f" "$rx_f" || exit 3
  printf 'RX-OK %s %s\n' "$rx_t" "$rx_f"
done
