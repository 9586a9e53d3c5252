# Sourced by benches/ab.sh and benches/syscalls.sh: the start-up they share
# on a run dir kept by the peer harness ($R). `ports_free PORT…` stops the
# script when a port is taken; `start_nginx_pair TAG` starts the harness's
# backend and plain nginx proxy pinned to core 1, and `stop_started` (run
# at exit) stops every process group recorded in `pids`.
pids=()
ports_free() {
    local port
    for port in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "port $port is in use: stop what holds it first" >&2
            exit 2
        fi
    done
}
stop_started() { for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null; done; }
start_nginx_pair() {
    setsid taskset -c 1 nginx -p "$R" -e "$R/logs/$1-backend.err" -c "$R/conf/nginx-backend.conf" >/dev/null 2>&1 &
    pids+=($!)
    setsid taskset -c 1 nginx -p "$R" -e "$R/logs/$1-nginx.err" -c "$R/conf/nginx-proxy.conf" >/dev/null 2>&1 &
    pids+=($!)
}
