#!/usr/bin/env bash
# Keep the shipped weights (about 140 MB) out of a working tree sent to a GPU machine whose transfer takes
# tracked and not-ignored files up to 64 MiB: `hide` takes them out of git's index and ignores them (the files
# stay on disk), `restore` puts the index and the ignore list back. Commit nothing between the two.
#
#   bash benchmarks/release/device_tree.sh hide|restore|status
set -euo pipefail
cd "$(dirname "$0")/.."
weights='src/gains/zoo/models/*/*.pt.[0-9]*'
exclude="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
case ${1:-} in
  hide)
    if ! git diff --cached --quiet; then echo "device_tree: the index holds staged changes; commit them first" >&2; exit 1; fi
    git rm -q --cached -- $weights
    grep -qxF "/$weights" "$exclude" || echo "/$weights" >>"$exclude"
    echo "device_tree: weights hidden; $(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}') bytes" \
      "tracked. Run 'bash benchmarks/release/device_tree.sh restore' after the GPU call, before any commit."
    ;;
  restore)
    git reset -q -- src/gains/zoo/models
    grep -vxF "/$weights" "$exclude" >"$exclude.new" || true
    mv "$exclude.new" "$exclude"
    git diff --quiet -- src/gains/zoo/models && echo "device_tree: weights tracked again"
    ;;
  status)
    if git ls-files --error-unmatch -- $weights >/dev/null 2>&1; then echo "tracked"; else echo "hidden"; fi
    ;;
  *) echo "usage: bash benchmarks/release/device_tree.sh hide|restore|status" >&2; exit 2 ;;
esac
