#!/bin/bash
# Usage: in a directory holding est_before.test and est_after.test, built with
#   go test -tags kubernetes_protomessage_one_more_release -c -o est_<which>.test ./scheduler-plugin/estimator/
# at the two commits to compare; needs /usr/bin/time and bc.
# CPU time (user+sys) per iteration: (run with N+1 iterations - run with 1) / N,
# so that setup and contention from other processes' wall time cancel out.
N=400
for b in before after; do
  for s in 'launcher.*/sets$' 'launcher.*/workers_alone$' 'head.*/sets$' 'head.*/workers_alone$'; do
    t1=$( { /usr/bin/time -f "%U %S" ./est_$b.test -test.run '^$' -test.bench "BenchmarkComponentSets/$s" -test.benchtime 1x >/dev/null; } 2>&1 | tail -1 | awk '{print $1+$2}')
    tn=$( { /usr/bin/time -f "%U %S" ./est_$b.test -test.run '^$' -test.bench "BenchmarkComponentSets/$s" -test.benchtime $((N+1))x >/dev/null; } 2>&1 | tail -1 | awk '{print $1+$2}')
    echo "$b $s $(echo "($tn - $t1) * 1000000 / $N" | bc -l | xargs printf '%.0f') us-cpu/op"
  done
done
