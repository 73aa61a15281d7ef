#!/usr/bin/env bash
# Stop the daemons that start.sh started, by PID, and remove the test's /etc/slurm config. Usage: stop.sh DIR
dir=$1
pids=$(cat "$dir/pids" 2>/dev/null)
for pid in $pids; do kill "$pid" 2>/dev/null; done
for _ in $(seq 20); do
    alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.25
done
for pid in $pids; do kill -9 "$pid" 2>/dev/null; done
if [[ -e /etc/slurm/.omnitrain-test ]]; then
    rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/.omnitrain-test
fi
exit 0
