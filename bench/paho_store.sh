#!/bin/sh
# Durable publish throughput: sansmqtt's FileStore (bench/src/store_bench.rs, `file` mode)
# against Paho C's file persistence (bench/c/paho_store_pub.c, MQTTCLIENT_PERSISTENCE_DEFAULT),
# through one private mosquitto (persistence on, no in-flight or queue limit), 64-byte
# payloads, the same window, in interleaved rounds. Prints every round's rates and the ratio,
# then per QoS the median ratio with its range, and each client's fsyncs per 1,000 messages
# (ours from the store's counters; Paho's from strace in an untimed run of its own).
#
#   bench/paho_store.sh [ROUNDS] [MESSAGES] [WINDOW]      (defaults 5, 20000, 1000)
#
# Needs gcc, libpaho-mqtt-dev, mosquitto and strace (Debian packages).
set -eu
rounds=${1:-5}
messages=${2:-20000}
window=${3:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/target/paho-store-bench
rm -rf "$work/broker" "$work/paho"
mkdir -p "$work/broker" "$work/paho"

gcc -O2 -Wall -Wextra -o "$work/paho_store_pub" "$root/bench/c/paho_store_pub.c" \
    -lpaho-mqtt3c -lpthread
(cd "$root" && cargo build --quiet --release -p mqtt-bench --bin store_bench)
ours=$root/target/release/store_bench

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $work/broker/
autosave_on_changes false
autosave_interval 600
max_inflight_messages 0
max_queued_messages 0
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null || true' EXIT INT TERM
sleep 0.5
uri=tcp://127.0.0.1:$port
murl=mqtt://127.0.0.1:$port

echo "$messages messages of 64 B, window $window, one mosquitto (persistence on), $rounds rounds"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
results=$work/results.txt
: >"$results"
round=1
while [ "$round" -le "$rounds" ]; do
    for qos in 1 2; do
        rm -rf "$work/paho"/*
        paho=$("$work/paho_store_pub" "$uri" "$qos" "$messages" "$window" "$work/paho" | awk '/^rate/ {print $2}')
        line=$("$ours" file "$murl" "$qos" "$messages" "$window")
        rate=$(echo "$line" | awk '{print $2}')
        fsyncs=$(echo "$line" | awk '{print $4}')
        ratio=$(awk -v a="$rate" -v b="$paho" 'BEGIN {printf "%.2f", a / b}')
        echo "round $round QoS $qos: sansmqtt $rate msg/s ($fsyncs fsyncs/1000), Paho C $paho msg/s, ratio $ratio"
        echo "$qos $ratio $rate $paho $fsyncs" >>"$results"
    done
    round=$((round + 1))
done

for qos in 1 2; do
    awk -v q="$qos" '$1 == q {print $2}' "$results" | sort -n | awk -v q="$qos" '
        {r[NR] = $1} END {printf "QoS %s: sansmqtt / Paho C median %.2fx (range %.2f-%.2f, %d rounds)\n", q, r[int((NR + 1) / 2)], r[1], r[NR], NR}'
    awk -v q="$qos" '$1 == q {a += $3; b += $4; f += $5; n++} END {printf "       mean rates: sansmqtt %.0f msg/s, Paho C %.0f msg/s; sansmqtt fsyncs/1000 msgs %.1f\n", a / n, b / n, f / n}' "$results"
done

# Paho's syncs: counted apart, since strace slows what it traces.
small=$((messages / 10))
for qos in 1 2; do
    rm -rf "$work/paho"/*
    strace -f -qq -e trace=fsync,fdatasync,sync_file_range,openat -o "$work/strace.txt" \
        "$work/paho_store_pub" "$uri" "$qos" "$small" "$window" "$work/paho" >/dev/null
    syncs=$(grep -cE 'fsync|fdatasync|sync_file_range' "$work/strace.txt" || true)
    creates=$(grep -c 'O_CREAT' "$work/strace.txt" || true)
    echo "Paho C QoS $qos: $syncs syncs and $creates files created for $small messages (strace)"
done
