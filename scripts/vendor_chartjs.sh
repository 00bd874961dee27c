#!/usr/bin/env bash
# Fetches Chart.js again from npm at the pinned version and checks it against the vendored copy
# the dashboard embeds (src/http/dashboard/vendor/). `--update` replaces the copy instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.5.1
SHA256=48444a82d4edcb5bec0f1965faacdde18d9c17db3063d042abada2f705c9f54a
dest=src/http/dashboard/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "chart.js@$VERSION" >/dev/null && tar xzf "chart.js-$VERSION.tgz")
if [ "${1:-}" = "--update" ]; then
  cp "$tmp/package/dist/chart.umd.min.js" "$dest/chart.umd.min.js"
  cp "$tmp/package/LICENSE.md" "$dest/chart.js-LICENSE.md"
  sha256sum "$dest/chart.umd.min.js"
  exit 0
fi
echo "$SHA256  $tmp/package/dist/chart.umd.min.js" | sha256sum --check --quiet
cmp "$tmp/package/dist/chart.umd.min.js" "$dest/chart.umd.min.js"
echo "vendored Chart.js $VERSION matches npm"
