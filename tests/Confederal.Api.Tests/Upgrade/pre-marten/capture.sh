#!/usr/bin/env bash
# Captures what a running Confederal API serves, as one JSON object keyed by request path: path → {status, body}, plus
# "unstable" (paths into the body, as jq writes them) where a field is not a function of the log: a status or an "open"
# decided against the clock, a problem's per-request traceId. Keys sorted (jq -S), two-space indents.
#
#   AUDITOR=$(confederal dev token --role auditor) ./capture.sh http://127.0.0.1:5091 > served.json
#
# What is asked is found from the API itself: the cantons, the organizations, the fiscal years named by any event of the
# audit feed (and 2025..2027), the pacts founded in the feed, the ballots each canton lists. It refuses to write anything
# if the log's head moves while it runs (wait until the projections and the notary have caught up, then capture).
set -euo pipefail

API=${1:-http://127.0.0.1:5091}
: "${AUDITOR:?set AUDITOR to an auditor token (confederal dev token --role auditor)}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
entries=$work/entries.ndjson
: > "$entries"

# get PATH [TOKEN] [UNSTABLE_JSON]: one request, recorded as an NDJSON line; prints the body.
get() {
  local path=$1 token=${2:-} unstable=${3:-[]} status
  local auth=()
  [[ -n $token ]] && auth=(-H "Authorization: Bearer $token")
  status=$(curl -sS -o "$work/body" -w '%{http_code}' "${auth[@]}" -H 'Accept: application/json' "$API$path")
  jq -c -n --arg path "$path" --argjson status "$status" --argjson unstable "$unstable" \
     --slurpfile body <(if [[ -s $work/body ]]; then cat "$work/body"; else echo null; fi) \
     '($unstable + (if ($body[0] | type) == "object" and ($body[0] | has("traceId")) then [["traceId"]] else [] end)) as $u
      | {path: $path, status: $status, body: $body[0]} + (if $u == [] then {} else {unstable: $u} end)' >> "$entries"
  cat "$work/body"
}

# The feed (auditors): every sealed event, for the years, pacts and census dates to ask about.
feed=$work/feed.ndjson
: > "$feed"
after=0
while :; do
  page=$(curl -sS -f -H "Authorization: Bearer $AUDITOR" "$API/api/v1/audit/events?after=$after&limit=1000")
  jq -c '.events[]' <<< "$page" >> "$feed"
  next=$(jq '.next' <<< "$page")
  [[ $next == "$after" ]] && break
  after=$next
done
head=$(jq -r '.sealedThrough' <<< "$page")
[[ $(wc -l < "$feed") -eq $head ]] || { echo "the feed served $(wc -l < "$feed") events, sealed through $head" >&2; exit 1; }

years=$( { seq 2025 2027; jq -r '.. | objects | (.fiscalYear?, .fromFiscalYear?) // empty | numbers' "$feed"; } | sort -un)
pacts=$(jq -r 'select(.type == "pact-founded") | .data.pactId' "$feed" | sort -u)
departures=$(jq -r 'select(.type == "resident-departed") | .data.leftOn' "$feed" | sort -u)

cantons=$(get /api/v1/cantons | jq -r '.[].cantonId')
for c in $cantons; do
  get "/api/v1/cantons/$c" > /dev/null
  get "/api/v1/cantons/$c/voting-rules" > /dev/null
  for y in $years; do
    get "/api/v1/cantons/$c/budgets/$y" > /dev/null
    # A policy's "open" turns false at its deadline: clock-relative while the deadline is ahead.
    policy=$(curl -sS "$API/api/v1/cantons/$c/fiscal-years/$y/policy")
    unstable=[]
    if jq -e '.open == true' <<< "$policy" > /dev/null 2>&1; then unstable='[["open"]]'; fi
    get "/api/v1/cantons/$c/fiscal-years/$y/policy" "" "$unstable" > /dev/null
  done
done

organizations=$(get /api/v1/organizations | jq -r '.[].organizationId')
for o in $organizations; do
  get "/api/v1/organizations/$o" > /dev/null
  for y in $years; do
    get "/api/v1/organizations/$o/receipts/$y" "$AUDITOR" > /dev/null
  done
done

for p in $pacts; do
  get "/api/v1/pacts/$p" > /dev/null
done

census_dates=$(printf '%s\n' 2020-01-01 2025-01-01 2025-06-30 2026-01-01 2026-06-30 2026-12-01 2027-01-01 $departures)
for c in $cantons; do
  # A ballot's status is decided against the clock until it is certified: scheduled, open, closing.
  ballots=$(curl -sS "$API/api/v1/cantons/$c/ballots")
  unstable=$(jq -c '[to_entries[] | select(.value.status != "certified") | [.key, "status"]]' <<< "$ballots")
  get "/api/v1/cantons/$c/ballots" "" "$unstable" > /dev/null
  census_dates+=$'\n'$(jq -r '.[].censusDate' <<< "$ballots")
  for b in $(jq -r '.[].ballotId' <<< "$ballots"); do
    status=$(jq -r --arg b "$b" '.[] | select(.ballotId == $b) | .status' <<< "$ballots")
    if [[ $status == certified ]]; then
      get "/api/v1/cantons/$c/ballots/$b" > /dev/null
      pages=$(get "/api/v1/cantons/$c/ballots/$b/results?page=0" | jq '.pages')
      for ((n = 1; n < pages; n++)); do get "/api/v1/cantons/$c/ballots/$b/results?page=$n" > /dev/null; done
    else
      get "/api/v1/cantons/$c/ballots/$b" "" '[["status"]]' > /dev/null
    fi
  done
done

for d in $(sort -u <<< "$census_dates"); do
  for c in $cantons; do get "/api/v1/cantons/$c/census?on=$d" > /dev/null; done
done

# Budgets as of a position or an instant: folded from the log, so they check that positions and recorded_at survive.
# (A stricter rate limit of its own: burst 5.)
mid=$(( head / 2 ))
instant=$(jq -r --argjson p "$mid" 'select(.position == $p) | .recordedAt' "$feed" | sed 's/+/%2B/')
get "/api/v1/cantons/ge/budgets/2026?asOf=$mid" > /dev/null
get "/api/v1/cantons/ge/budgets/2026?asOf=$instant" > /dev/null
get "/api/v1/cantons/vd/budgets/2026?asOf=$head" > /dev/null

# The public seals, every page (100 a page), and the head of the feed.
after=0
while :; do
  path=/api/v1/audit/seals
  [[ $after -gt 0 ]] && path="$path?after=$after"
  page=$(get "$path")
  [[ $(jq '.seals | length' <<< "$page") -lt 100 ]] && break
  after=$(jq '.next' <<< "$page")
done
get "/api/v1/audit/events?after=$(( head - 1 ))&limit=1000" "$AUDITOR" > /dev/null

after_head=$(curl -sS -f -H "Authorization: Bearer $AUDITOR" "$API/api/v1/audit/events?after=$head&limit=1" | jq '.sealedThrough')
[[ $after_head == "$head" ]] || { echo "the log moved from $head to $after_head during the capture" >&2; exit 1; }
if jq -s -e 'group_by(.path) | map(select(length > 1)) | length > 0' "$entries" > /dev/null; then
  echo "a path was asked twice" >&2; exit 1
fi
if jq -s -e --argjson head "$head" '[.[] | .body | objects | .position? // empty | numbers | select(. > $head)] | length > 0' "$entries" > /dev/null; then
  echo "a read model served a position beyond the sealed head $head" >&2; exit 1
fi

jq -S -n 'reduce inputs as $e ({}; .[$e.path] = ($e | del(.path)))' "$entries"
echo "captured $(wc -l < "$entries") paths at head $head" >&2
