#!/bin/sh
# grite's main job end to end, in a throwaway repository: init, create, comment, label,
# close, list, show. Needs only python3, git and an installed grite (`python3 -m pip install .`).
set -eu

if command -v grite >/dev/null 2>&1; then
  GRITE=grite
else
  GRITE="python3 -m grite"   # pip may have put the script in a directory not on PATH
fi

repo=$(mktemp -d "${TMPDIR:-/tmp}/grite-quickstart.XXXXXX")
# A private runtime directory: this script's daemon is its own, and is stopped at the end.
XDG_RUNTIME_DIR=$(mktemp -d "${TMPDIR:-/tmp}/grite-quickstart-rt.XXXXXX")
export XDG_RUNTIME_DIR
trap '$GRITE daemon stop >/dev/null 2>&1; rm -rf "$repo" "$XDG_RUNTIME_DIR"' EXIT
cd "$repo"
git init -q
echo "# throwaway repository: $repo"

# Echo a command as a user would type it: arguments with spaces or quotes are quoted.
show() {
  line='$ grite'
  for arg in "$@"; do
    case $arg in
      *[!A-Za-z0-9_./:=@%+-]* | '') arg="'$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")'" ;;
    esac
    line="$line $arg"
  done
  printf '%s\n' "$line"
}
run() { show "$@"; $GRITE "$@"; echo; }

run init
id=$($GRITE issue create --title "Login fails with an empty password" \
      --body "Steps: open /login, submit an empty form." --label bug --json |
     python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["issue_id"])')
show issue create --title "Login fails with an empty password" \
  --body "Steps: open /login, submit an empty form." --label bug
echo "Created issue $id"; echo
run issue create --title "Document the login flow" --label docs
run issue comment "${id%????????????????????????}" --body "Reproduced on main; the handler skips validation."
run issue label add "$id" --label p1
run issue list
run issue close "$id"
run issue list --state all
run issue show "$id"
echo "\$ git log --oneline refs/grite/wal"
git log --oneline refs/grite/wal
