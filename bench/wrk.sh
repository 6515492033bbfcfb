# Shared by the wrk benchmarks (sourced): one result row per run, and medians.

# name ticks secs width → reads wrk --latency output on stdin, prints
# "name rps p50 p99 cpu non2xx", cpu being TICKS (clock ticks of CPU time spent by
# the measured processes during the run) per request, in µs.
wrk_row() {
    awk -v name="$1" -v ticks="$2" -v hz="$(getconf CLK_TCK)" -v secs="$3" -v width="$4" '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx/ { bad = $NF }
        END { cpu = rps > 0 ? ticks * 1e6 / hz / (rps * secs) : 0
              printf "%-" width "s %12.0f %9.2fms %9.2fms %9.1fus %8s\n", name, rps, p50, p99, cpu, (bad == "" ? 0 : bad) }'
}

# results "A|B"... → the median of each row name over the rounds in RESULTS, then
# for each pair A against B: throughput, p99 and CPU per request, as ratios.
wrk_medians() {
    python3 - "$@" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"(.+?)\s+(\d+)\s+([\d.]+)ms\s+([\d.]+)ms\s+([\d.]+)us\s+(\d+)\s*$", line)
    if m:
        rows.setdefault(m.group(1).strip(), []).append(tuple(float(x) for x in m.group(2, 3, 4, 5)))
med = {k: tuple(statistics.median(v[i] for v in vals) for i in range(4)) for k, vals in rows.items()}
for k, (rps, p50, p99, cpu) in med.items():
    print(f"{k:<34} {rps:12.0f} {p50:9.2f}ms {p99:9.2f}ms {cpu:9.1f}us")
for pair in sys.argv[2:]:
    a, b = pair.split("|")
    x, y = med.get(a), med.get(b)
    if x and y and y[0] and y[2] and y[3]:
        print(f"{a} / {b}: throughput {x[0] / y[0]:.1%}, p99 {x[2] / y[2]:.2f}x, CPU per request {x[3] / y[3]:.2f}x")
PY
}
