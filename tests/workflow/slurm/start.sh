#!/usr/bin/env bash
# Start a single-node SLURM on loopback for the tests: munged (as user munge), slurmctld, slurmd, with a
# two stand-in GPUs (gres on /dev/null and /dev/zero). Usage: start.sh DIR. The config goes to /etc/slurm/slurm.conf (srun inside a
# job finds it only there: SLURM does not pass SLURM_CONF on to jobs), so an existing one is refused; state, logs
# and PIDs go to DIR. Needs Debian's slurm-wlm and munge, and root. Stop with stop.sh DIR (by PID).
set -euo pipefail
dir=$(mkdir -p "$1" && cd "$1" && pwd)
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
if [[ -e /etc/slurm/slurm.conf && ! -e /etc/slurm/.omnitrain-test ]]; then
    echo "/etc/slurm/slurm.conf exists (a real SLURM?): not touching it" >&2
    exit 3
fi
mkdir -p /etc/slurm
touch /etc/slurm/.omnitrain-test
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=omnitrain
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
printf "NodeName=localhost Name=gpu File=/dev/null\nNodeName=localhost Name=gpu File=/dev/zero\n" > /etc/slurm/gres.conf
: > "$dir/pids"
if ! munge -n >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged 2>>"$dir/munged.err" || true
    for _ in $(seq 20); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
    pgrep -u munge -n munged >> "$dir/pids" || true
fi
/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost
for _ in $(seq 50); do
    [[ -s "$dir/slurmctld.pid" && -s "$dir/slurmd.pid" ]] && sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix" && break
    sleep 0.2
done
cat "$dir/slurmctld.pid" "$dir/slurmd.pid" >> "$dir/pids"
sinfo -h -o "%P %T %G" >&2
echo /etc/slurm/slurm.conf
