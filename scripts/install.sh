#!/usr/bin/env bash
# Installs ftvm like any host tool: the release binary, shell completions and man pages
# generated from its argument parser, and (when present in the checkout) the systemd unit and
# the Pacemaker resource agent. Every file and every directory it creates is listed in a
# manifest, so --uninstall removes exactly those.
#
#   bash scripts/install.sh [--prefix DIR] [--destdir DIR]     # default prefix /usr/local
#   bash scripts/install.sh [--prefix DIR] [--destdir DIR] --uninstall
#
# --destdir stages the tree under DIR (for packaging); paths in the manifest are the final ones.
# The unit goes to /etc/systemd/system and the agent to /usr/lib/ocf/resource.d/ftvm, where
# systemd and Pacemaker look, whatever the prefix.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local destdir="" uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) echo "install: --prefix must be an absolute path, not '$prefix'" >&2; exit 2 ;; esac
destdir=${destdir%/}
manifest=$prefix/share/ftvm/install-manifest

if [ "$uninstall" = 1 ]; then
  if [ ! -f "$destdir$manifest" ]; then
    echo "install: no manifest at $destdir$manifest: nothing was installed there (check --prefix/--destdir)" >&2
    exit 1
  fi
  listing=$(cat "$destdir$manifest")
  rm -f "$destdir$manifest"
  # Files first, then the directories this install created, deepest first, if empty.
  grep '^file ' <<<"$listing" | cut -d' ' -f2- | while read -r path; do rm -f "$destdir$path"; done
  grep '^dir ' <<<"$listing" | cut -d' ' -f2- | sort -r | while read -r path; do
    rmdir "$destdir$path" 2>/dev/null || echo "install: kept $destdir$path (not empty)" >&2
  done
  echo "install: removed what $destdir$manifest listed"
  exit 0
fi

echo "install: building the release binary and the man pages" >&2
swift build -c release --product ftvm >&2
# The plugin runs `ftvm --experimental-dump-help` on a release build and writes mdoc pages:
# ftvm.1 and one per subcommand (ftvm.up.1, ...). The date is the last commit's, so a rebuild
# of the same commit makes the same pages.
pages=.build/plugins/GenerateManual/outputs/ftvm
rm -rf "$pages" # no page left over from a subcommand that is gone
swift package --allow-writing-to-package-directory generate-manual --multi-page \
  --date "$(git log -1 --format=%cs 2>/dev/null || date +%F)" --authors "the ftvm authors" >&2
binary=.build/release/ftvm
staging=$(mktemp -d /tmp/ftvm-install.XXXXXX)
trap 'rm -rf "$staging"' EXIT
"$binary" --generate-completion-script bash >"$staging/ftvm.bash"
"$binary" --generate-completion-script zsh >"$staging/_ftvm"
"$binary" --generate-completion-script fish >"$staging/ftvm.fish"

entries=()
# Directories made on the way to DIR, shallowest first, recorded for --uninstall.
make_dir() {
  local dir=$1 missing=()
  while [ "$dir" != / ] && [ ! -d "$destdir$dir" ]; do missing=("$dir" "${missing[@]}"); dir=$(dirname "$dir"); done
  for dir in "${missing[@]}"; do mkdir "$destdir$dir" && entries+=("dir $dir"); done
}
put() { # mode, source, final path
  make_dir "$(dirname "$3")"
  install -m "$1" "$2" "$destdir$3"
  entries+=("file $3")
  echo "  $destdir$3"
}

[ -z "$destdir" ] || mkdir -p "$destdir"
echo "install: into ${destdir:-/} (prefix $prefix)"
put 0755 "$binary" "$prefix/bin/ftvm"
put 0644 "$staging/ftvm.bash" "$prefix/share/bash-completion/completions/ftvm"
put 0644 "$staging/_ftvm" "$prefix/share/zsh/site-functions/_ftvm"
put 0644 "$staging/ftvm.fish" "$prefix/share/fish/vendor_completions.d/ftvm.fish"
for page in "$pages"/*.1; do put 0644 "$page" "$prefix/share/man/man1/$(basename "$page")"; done
# The unit and the agent name the binary at its default place: point them at this prefix's.
at_prefix() { sed "s|/usr/local/bin/ftvm|$prefix/bin/ftvm|g" "$1" >"$staging/$(basename "$1")"; echo "$staging/$(basename "$1")"; }
if [ -f contrib/systemd/ftvm@.service ]; then
  put 0644 "$(at_prefix contrib/systemd/ftvm@.service)" /etc/systemd/system/ftvm@.service
else
  echo "install: no contrib/systemd/ftvm@.service in this checkout: no systemd unit installed"
fi
if [ -f contrib/ocf/ftvm ]; then
  put 0755 "$(at_prefix contrib/ocf/ftvm)" /usr/lib/ocf/resource.d/ftvm/ftvm
else
  echo "install: no contrib/ocf/ftvm in this checkout: no Pacemaker resource agent installed"
fi

# What an earlier install made is still this install's to remove.
make_dir "$(dirname "$manifest")"
if [ -f "$destdir$manifest" ]; then
  while read -r line; do entries+=("$line"); done <"$destdir$manifest"
fi
printf '%s\n' "${entries[@]}" | sort -u >"$destdir$manifest"
echo "install: manifest $destdir$manifest (scripts/install.sh --uninstall removes what it lists)"
if [ -z "$destdir" ] && [ -d /run/systemd/system ] && [ -f contrib/systemd/ftvm@.service ]; then
  systemctl daemon-reload
fi
