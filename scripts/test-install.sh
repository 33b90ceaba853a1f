#!/usr/bin/env bash
# Tests scripts/install.sh end to end in a scratch --destdir: exactly the expected files, the
# bash completion loads and completes, every man page renders without a groff warning, and
# --uninstall leaves the tree empty. A shell script, not an XCTest: install.sh runs SwiftPM,
# which cannot run inside `swift test` (both hold the package's build lock). Ends with one
# line: "install: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
passed=0 failed=0
check() { # description, command...
  local what=$1
  shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what" >&2; fi
}

dest=$(mktemp -d /tmp/ftvm-destdir.XXXXXX)
trap 'rm -rf "$dest"' EXIT
bash scripts/install.sh --destdir "$dest" --prefix /usr/local >/dev/null

# The expected list, written from what the parser declares: the binary, three completions, a
# man page for ftvm and for each subcommand (nested ones as ftvm.PARENT.SUB.1), the manifest,
# and the unit and agent when this checkout has them.
expected=(/usr/local/bin/ftvm /usr/local/share/bash-completion/completions/ftvm
  /usr/local/share/zsh/site-functions/_ftvm /usr/local/share/fish/vendor_completions.d/ftvm.fish
  /usr/local/share/ftvm/install-manifest /usr/local/share/man/man1/ftvm.1)
for sub in $(.build/release/ftvm --experimental-dump-help | python3 -c '
import json, sys
def walk(command, path):
    for sub in command.get("subcommands", []):
        name = path + [sub["commandName"]]
        print(".".join(name))
        walk(sub, name)
walk(json.load(sys.stdin)["command"], [])'); do
  expected+=("/usr/local/share/man/man1/ftvm.$sub.1")
done
[ -f contrib/systemd/ftvm@.service ] && expected+=(/etc/systemd/system/ftvm@.service)
[ -f contrib/ocf/ftvm ] && expected+=(/usr/lib/ocf/resource.d/ftvm/ftvm)
installed=$(cd "$dest" && find . -type f | sed 's|^\.||' | sort)
check "installed files are exactly the expected ones" \
  diff <(printf '%s\n' "${expected[@]}" | sort) <(echo "$installed")
check "the installed binary runs" "$dest/usr/local/bin/ftvm" watch --help >/dev/null
check "the manifest lists every installed file" \
  diff <(grep '^file ' "$dest/usr/local/share/ftvm/install-manifest" | cut -d' ' -f2- | sort) \
  <(grep -v install-manifest <<<"$installed")

# bash: the script loads, registers a completion for ftvm, and completes subcommands and faults.
completion=$dest/usr/local/share/bash-completion/completions/ftvm
complete_words() { # the words typed so far; prints COMPREPLY, one a line
  bash -c 'shopt -s extglob; source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    COMPREPLY=(); _ftvm "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"; printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$@"
}
check "bash registers the completion" \
  grep -qx 'complete -o filenames -F _ftvm ftvm' <(bash -c 'source "$1"; complete -p ftvm' _ "$completion")
check "'ftvm wa' completes to watch" diff <(complete_words ftvm wa) <(echo watch)
check "'ftvm inject k' completes the kernel faults" \
  diff <(complete_words ftvm inject k | sort) <(printf '%s\n' kernel-hang kernel-panic)
check "'ftvm watch --c' completes --count" diff <(complete_words ftvm watch --c) <(echo --count)
check "zsh's script defines _ftvm" grep -q '^_ftvm()' "$dest/usr/local/share/zsh/site-functions/_ftvm"
check "fish's script completes ftvm" grep -q "^complete -c 'ftvm'" "$dest/usr/local/share/fish/vendor_completions.d/ftvm.fish"

# man: every page renders, with groff's warnings on (-ww) and none printed.
for page in "$dest"/usr/local/share/man/man1/*.1; do
  check "$(basename "$page") renders without warnings" \
    test -z "$(MANWIDTH=80 man --warnings=all -l "$page" 2>&1 >/dev/null)"
done
check "man ftvm.watch documents --count" \
  grep -q -- '--count' <(MANWIDTH=80 man -l "$dest/usr/local/share/man/man1/ftvm.watch.1" 2>/dev/null)

bash scripts/install.sh --destdir "$dest" --prefix /usr/local --uninstall >/dev/null
check "--uninstall leaves the destdir empty" test -z "$(ls -A "$dest")"

# Another prefix: the unit and the agent run that prefix's binary.
bash scripts/install.sh --destdir "$dest" --prefix /opt/ftvm >/dev/null
if [ -f contrib/systemd/ftvm@.service ]; then
  check "the unit runs the prefix's binary" grep -q '^ExecStart=/opt/ftvm/bin/ftvm daemon' "$dest/etc/systemd/system/ftvm@.service"
fi
if [ -f contrib/ocf/ftvm ]; then
  check "the agent's default binary is the prefix's" \
    grep -q '^OCF_RESKEY_binary_default="/opt/ftvm/bin/ftvm"' "$dest/usr/lib/ocf/resource.d/ftvm/ftvm"
fi
bash scripts/install.sh --destdir "$dest" --prefix /opt/ftvm --uninstall >/dev/null
check "--uninstall of /opt/ftvm leaves the destdir empty" test -z "$(ls -A "$dest")"

echo "install: $passed passed, $failed failed"
[ "$failed" = 0 ]
