#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Compares two qorb_bench binaries in one sitting: runs them interleaved
# (A1 B1 A2 B2 ...: A is BEFORE, B is AFTER), notes the load average
# (/proc/loadavg) before every run and the CPU model (/proc/cpuinfo), and
# prints, per benchmark, the median of each side, the run it came from, every
# run's figure, and the after/before ratio (< 1: AFTER is faster).
#
#   scripts/bench-compare.sh [options] BEFORE AFTER [-- more qorb_bench args]
#
#   -r, --rounds N      runs of each binary (default 3)
#   -f, --filter RE     --benchmark_filter (default '^(claim_release|scale)/')
#   -t, --min-time S    --benchmark_min_time in seconds (default 0.5)
#   -m, --metric NAME   field of the benchmark's JSON to compare: real_time
#                       (default; Google Benchmark's "Time" column), cpu_time,
#                       or a counter such as claims_per_s
#   -o, --out DIR       keep every run's JSON and stderr there (default: a
#                       fresh temporary directory, printed at the end)
#
# Example (a bench built before a change, against the current one):
#   scripts/bench-compare.sh build/qorb_bench.before build/bench/bench/qorb_bench
#
# Needs bash and python3 (parses --benchmark_format=json). The figures are
# wall-clock times on whatever machine this runs on: compare only figures
# from the same sitting, and read the load averages next to them.
set -euo pipefail

usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

rounds=3
filter='^(claim_release|scale)/'
min_time=0.5
metric=real_time
out=''
positional=()
while (($#)); do
  case $1 in
    -r | --rounds) rounds=${2:?}; shift 2 ;;
    -f | --filter) filter=${2:?}; shift 2 ;;
    -t | --min-time) min_time=${2:?}; shift 2 ;;
    -m | --metric) metric=${2:?}; shift 2 ;;
    -o | --out) out=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "bench-compare: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) positional+=("$1"); shift ;;
  esac
done
extra=("$@")

if ((${#positional[@]} != 2)); then
  usage >&2
  exit 2
fi
before=${positional[0]}
after=${positional[1]}
for bin in "$before" "$after"; do
  if [[ ! -f $bin || ! -x $bin ]]; then
    echo "bench-compare: $bin is not an executable file" >&2
    exit 2
  fi
done
# A bare file name would be looked up in PATH: run the file named.
[[ $before == */* ]] || before=./$before
[[ $after == */* ]] || after=./$after
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
  echo "bench-compare: --rounds wants a positive integer, not '$rounds'" >&2
  exit 2
fi
if ! command -v python3 >/dev/null; then
  echo "bench-compare: python3 is needed to read the benchmarks' JSON" >&2
  exit 2
fi

if [[ -z $out ]]; then
  out=$(mktemp -d -t bench-compare.XXXXXX)
else
  mkdir -p "$out"
fi

cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n1)
[[ -n $cpu_model ]] || cpu_model=unknown
{
  printf 'cpu_model\t%s\n' "$cpu_model"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'kernel\t%s\n' "$(uname -sr)"
  printf 'before\t%s\n' "$before"
  printf 'after\t%s\n' "$after"
  printf 'before_sha256\t%s\n' "$(sha256sum "$before" | cut -c1-12)"
  printf 'after_sha256\t%s\n' "$(sha256sum "$after" | cut -c1-12)"
  printf 'filter\t%s\n' "$filter"
  printf 'min_time\t%s\n' "$min_time"
  printf 'metric\t%s\n' "$metric"
  printf 'rounds\t%s\n' "$rounds"
  printf 'extra_args\t%s\n' "${extra[*]-}"
} >"$out/meta.tsv"
: >"$out/runs.tsv"

echo "bench-compare: $rounds rounds, interleaved A1 B1 A2 B2 ... (A = BEFORE, B = AFTER); CPU: $cpu_model" >&2
for ((i = 1; i <= rounds; i++)); do
  for side in A B; do
    if [[ $side == A ]]; then bin=$before; else bin=$after; fi
    id=$side$i
    read -r l1 l5 l15 _ </proc/loadavg
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    t0=$(date +%s%N)
    rc=0
    "$bin" --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
      --benchmark_format=json ${extra[@]+"${extra[@]}"} >"$out/$id.json" 2>"$out/$id.err" || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    secs=$((ms / 1000)).$(printf '%03d' $((ms % 1000)) | cut -c1)
    printf '%s\t%s\t%s\t%s %s %s\t%s\t%s\n' "$id" "$side" "$started" "$l1" "$l5" "$l15" "$rc" "$secs" \
      >>"$out/runs.tsv"
    echo "  $id ($([[ $side == A ]] && echo BEFORE || echo AFTER)): load average before $l1 $l5 $l15; ${secs} s; exit $rc" >&2
  done
done

python3 - "$out" <<'PY'
import json, os, sys

out = sys.argv[1]
meta = dict(line.rstrip("\n").split("\t", 1) for line in open(os.path.join(out, "meta.tsv")))
runs = []
for line in open(os.path.join(out, "runs.tsv")):
    rid, side, started, load, rc, secs = line.rstrip("\n").split("\t")
    runs.append(dict(id=rid, side=side, started=started, load=load, rc=int(rc), secs=secs))
metric = meta["metric"]
to_ns = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
is_time = metric in ("real_time", "cpu_time")

# values[name][side] = [(run id, value in ns or counter units, error or None)]
values, order = {}, []
for r in runs:
    path = os.path.join(out, r["id"] + ".json")
    try:
        doc = json.load(open(path))
    except (OSError, ValueError) as e:
        r["note"] = "no JSON (%s)" % e.__class__.__name__
        continue
    for b in doc.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue  # aggregates of --benchmark_repetitions: we take the runs
        name = b.get("run_name", b["name"])
        if name not in values:
            values[name] = {"A": [], "B": []}
            order.append(name)
        reps = sum(1 for x in values[name][r["side"]] if x[0].split("#")[0] == r["id"])
        label = r["id"] if reps == 0 else "%s#%d" % (r["id"], reps + 1)
        if b.get("error_occurred"):
            values[name][r["side"]].append((label, None, "ERROR: " + b.get("error_message", "?")))
            continue
        v = b.get(metric)
        if v is None:
            values[name][r["side"]].append((label, None, "no " + metric))
            continue
        if is_time:
            v = float(v) * to_ns[b.get("time_unit", "ns")]
        values[name][r["side"]].append((label, float(v), None))

def median(samples):
    ok = sorted((v, rid) for rid, v, err in samples if err is None)
    if not ok:
        return None, "-"
    n = len(ok)
    if n % 2:
        v, rid = ok[n // 2]
        return v, rid
    (v1, r1), (v2, r2) = ok[n // 2 - 1], ok[n // 2]
    return (v1 + v2) / 2, "mean of %s/%s" % tuple(sorted((r1, r2)))

def unit_for(v):
    if not is_time or v is None:
        return "", 1.0
    for u, f in (("ns", 1.0), ("us", 1e3), ("ms", 1e6)):
        if v < 1e4 * f:
            return u, f
    return "s", 1e9

def fmt(v, f):
    if v is None:
        return "-"
    x = v / f
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if not is_time and abs(x) >= div:
            return "%.3g%s" % (x / div, suffix)
    if abs(x) >= 100:
        return "%.0f" % x
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x

def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))

print("CPU: %s (nproc %s; %s)" % (meta["cpu_model"], meta["nproc"], meta["kernel"]))
print("BEFORE (runs A*): %s  [sha256 %s]" % (meta["before"], meta["before_sha256"]))
print("AFTER  (runs B*): %s  [sha256 %s]" % (meta["after"], meta["after_sha256"]))
extra = (" " + meta["extra_args"]) if meta["extra_args"] else ""
print("each run: --benchmark_filter='%s' --benchmark_min_time=%s --benchmark_format=json%s"
      % (meta["filter"], meta["min_time"], extra))
print("metric: %s%s; runs interleaved in this order, %s rounds:" % (
    metric, " (time per iteration)" if is_time else "", meta["rounds"]))
print()
table(["run", "binary", "started (UTC)", "load avg before (1/5/15 min)", "took", "exit", "JSON"],
      [[r["id"], "BEFORE" if r["side"] == "A" else "AFTER", r["started"], r["load"],
        r["secs"] + " s", str(r["rc"]) + ((" " + r["note"]) if "note" in r else ""),
        r["id"] + ".json"] for r in runs])
print()
rows = []
for name in order:
    a, b = values[name]["A"], values[name]["B"]
    ma, ra = median(a)
    mb, rb = median(b)
    unit, f = unit_for(ma if ma is not None else mb)
    ratio = "%.2f" % (mb / ma) if ma and mb is not None else "-"
    per_run = lambda s: ", ".join("%s %s" % (rid, fmt(v, f) if err is None else err)
                                  for rid, v, err in s) or "no figure"
    med = lambda m, r: "%s (%s)" % (fmt(m, f), r) if m is not None else "no figure"
    rows.append([name, unit or metric, med(ma, ra), med(mb, rb), ratio, per_run(a), per_run(b)])
if not rows:
    print("no benchmark matched the filter in any run (see the *.err files)")
    sys.exit(1)
table(["benchmark", "unit", "BEFORE median (run)", "AFTER median (run)", "after/before",
       "BEFORE runs", "AFTER runs"], rows)
print()
print("after/before below 1: AFTER %s." % ("is faster" if is_time else "has the smaller " + metric))
print("every run's JSON and stderr: %s" % out)
sys.exit(1 if any(r["rc"] for r in runs) else 0)
PY
