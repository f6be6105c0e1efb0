#!/bin/sh
# A stand-in for the Claude Code CLI that speaks just enough stream-json for
# the SDK: it answers every control request with success and each user
# message with a system init, one assistant text and a result, appending the
# turn to the session's transcript as the real CLI would. Between messages it
# sleeps in `read` (no CPU), so N of them cost what N idle sessions cost.
# POSIX sh and sed only: it runs on any host the real CLI would.
case " $* " in
*" -v "* | *" --version "*)
	echo "2.1.0 (Claude Code)"
	exit 0
	;;
esac
sid=
for arg in "$@"; do
	case $arg in --resume=*) sid=${arg#--resume=} ;; esac
done
[ -n "$sid" ] || sid=$(cat /proc/sys/kernel/random/uuid 2>/dev/null) ||
	sid=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n' |
		sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/')
dir="${CLAUDE_CONFIG_DIR:-$HOME/.claude}/projects/$(pwd | sed 's/[^A-Za-z0-9]/-/g')"
turn=0
while IFS= read -r line; do
	case $line in
	*'"control_request"'*)
		id=$(printf '%s\n' "$line" | sed -n 's/.*"request_id": *"\([^"]*\)".*/\1/p')
		case $line in
		*'"initialize"'*) inner='{"commands": [], "output_style": "default"}' ;;
		*) inner='{}' ;;
		esac
		printf '{"type": "control_response", "response": {"subtype": "success", "request_id": "%s", "response": %s}}\n' "$id" "$inner"
		;;
	'{"type": "user"'* | '{"type":"user"'*)
		turn=$((turn + 1))
		text="stub reply $turn"
		mkdir -p "$dir"
		printf '{"type": "user", "sessionId": "%s", "uuid": "u%s", "cwd": "%s", "message": {"role": "user", "content": "turn %s"}}\n{"type": "assistant", "sessionId": "%s", "uuid": "a%s", "cwd": "%s", "message": {"role": "assistant", "model": "stub", "content": [{"type": "text", "text": "%s"}]}}\n' \
			"$sid" "$turn" "$(pwd)" "$turn" "$sid" "$turn" "$(pwd)" "$text" >>"$dir/$sid.jsonl"
		printf '{"type": "system", "subtype": "init", "session_id": "%s", "cwd": "%s", "tools": [], "model": "stub", "permissionMode": "default", "claude_code_version": "2.1.0"}\n' "$sid" "$(pwd)"
		printf '{"type": "assistant", "message": {"model": "stub", "content": [{"type": "text", "text": "%s"}]}, "session_id": "%s", "uuid": "a%s"}\n' "$text" "$sid" "$turn"
		printf '{"type": "result", "subtype": "success", "duration_ms": 1, "duration_api_ms": 0, "is_error": false, "num_turns": 1, "session_id": "%s", "total_cost_usd": 0.0, "usage": {"input_tokens": 0, "output_tokens": 0}, "result": "%s"}\n' "$sid" "$text"
		;;
	esac
done
