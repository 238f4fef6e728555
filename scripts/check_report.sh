#!/usr/bin/env bash
# Render an HTML report in headless Chromium (Debian's `chromium`) and save a screenshot.
# Usage: scripts/check_report.sh REPORT.html [SCREENSHOT.png] [HEIGHT]
# Exit 0 and a non-empty PNG when the page rendered; install with: apt-get install -y chromium
set -euo pipefail
report=${1:?usage: check_report.sh REPORT.html [SCREENSHOT.png] [HEIGHT]}
shot=${2:-${report%.html}.png}
height=${3:-2000}
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$browser" ]]; then
  echo "check_report: chromium is not installed (apt-get install -y chromium)" >&2
  exit 3
fi
if [[ ! -f "$report" ]]; then
  echo "check_report: $report does not exist" >&2
  exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
rm -f "$shot"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --screenshot="$shot" \
  --window-size=1280,"$height" "$url" >/dev/null 2>&1 || true
if [[ ! -s "$shot" ]]; then
  echo "check_report: chromium produced no screenshot of $report" >&2
  exit 1
fi
echo "screenshot: $shot"
