# shellcheck shell=bash
# Local stand-ins for a cloud and a node, for the demo and the benchmarks: mimic
# and an OpenSSH sshd on free loopback ports, from a work dir, stopped by PID at
# exit. Source it, set WORK, then call start_mimic / start_sshd.
# (The Rust tests use test-support, which does the same from Rust.)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Sets MIMIC_PORT, MIMIC_PID; OS_AUTH_URL points at it.
start_mimic() {
    MIMIC_PORT=$(free_port)
    "$REPO/.venv/bin/twistd" -n --pidfile= mimic --realtime \
        --listen "tcp:$MIMIC_PORT:interface=127.0.0.1" >"$WORK/mimic.log" 2>&1 &
    MIMIC_PID=$!
    for _ in $(seq 300); do
        curl -s -o /dev/null "http://127.0.0.1:$MIMIC_PORT/" && break
        sleep 0.1
    done
    export OS_AUTH_URL="http://127.0.0.1:$MIMIC_PORT/identity/v2.0"
}

# Sets SSHD_PORT, SSHD_PID, SSH_USER, SSH_KEY (the key it accepts).
# shellcheck disable=SC2034 # set for the scripts that source this file
start_sshd() {
    SSHD_PORT=$(free_port)
    SSH_USER=$(id -un)
    SSH_KEY="$WORK/id_ed25519"
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$SSH_KEY"
    cp "$SSH_KEY.pub" "$WORK/authorized_keys"
    cat >"$WORK/sshd_config" <<CONFIG
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
CONFIG
    if ((EUID == 0)); then mkdir -p /run/sshd; fi
    "$(command -v sshd || echo /usr/sbin/sshd)" -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
    SSHD_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null && break
        sleep 0.1
    done
}

# A token and the Nova URL of OS_USERNAME/OS_TENANT_NAME in region ORD.
nova_login() {
    local body response
    body="{\"auth\":{\"passwordCredentials\":{\"username\":\"$OS_USERNAME\",\"password\":\"$OS_PASSWORD\"},\"tenantName\":\"$OS_TENANT_NAME\"}}"
    response=$(curl -s -X POST "$OS_AUTH_URL/tokens" -H 'Content-Type: application/json' -d "$body")
    NOVA_TOKEN=$(sed -n 's/.*"token": {"id": "\([^"]*\)".*/\1/p' <<<"$response")
    NOVA_URL=$(grep -o "http://127.0.0.1:$MIMIC_PORT/mimicking/NovaApi-[^/]*/ORD/v2/$OS_TENANT_NAME" <<<"$response" | head -1)
}

# Boots a server named $1 on mimic.
boot_server() {
    curl -s -o /dev/null -X POST "$NOVA_URL/servers" -H "X-Auth-Token: $NOVA_TOKEN" \
        -H 'Content-Type: application/json' \
        -d "{\"server\":{\"name\":\"$1\",\"imageRef\":\"img\",\"flavorRef\":\"2\"}}"
}

# Keystone (OpenStack's Identity service, from .venv-keystone) on a free
# loopback port, set up by keystone-setup.py; sets KEYSTONE_PORT, KEYSTONE_PID,
# KEYSTONE_ADMIN_PASSWORD. The gunicorn master is killed by PID; its worker
# goes with it (gunicorn's arbiter stops its workers on SIGTERM).
start_keystone() {
    KEYSTONE_PORT=$(free_port)
    KEYSTONE_ADMIN_PASSWORD=admin-pw
    mkdir -p "$WORK/keystone"
    "$REPO/.venv-keystone/bin/python" "$REPO/scripts/lib/keystone-setup.py" \
        "$WORK/keystone" "$KEYSTONE_PORT" "$KEYSTONE_ADMIN_PASSWORD" >"$WORK/keystone.log" 2>&1
    (cd "$WORK/keystone" && OS_KEYSTONE_CONFIG_DIR="$WORK/keystone" \
        exec "$REPO/.venv-keystone/bin/gunicorn") >>"$WORK/keystone.log" 2>&1 &
    KEYSTONE_PID=$!
    for _ in $(seq 600); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$KEYSTONE_PORT/v3") == 200 ]] && break
        sleep 0.1
    done
}

stop_local_servers() {
    [[ -n ${KEYSTONE_PID:-} ]] && kill "$KEYSTONE_PID" 2>/dev/null
    [[ -n ${NGINX_PID:-} ]] && kill "$NGINX_PID" 2>/dev/null
    [[ -n ${SSHD_PID:-} ]] && kill "$SSHD_PID" 2>/dev/null
    [[ -n ${MIMIC_PID:-} ]] && kill "$MIMIC_PID" 2>/dev/null
    wait 2>/dev/null
    return 0
}

# nginx serving $1 on a free loopback port; sets NGINX_PORT, NGINX_PID.
start_nginx() {
    NGINX_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<CONFIG
daemon off;
master_process off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp;
    server { listen 127.0.0.1:$NGINX_PORT; root $1; }
}
CONFIG
    "$(command -v nginx || echo /usr/sbin/nginx)" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>/dev/null &
    NGINX_PID=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break
        sleep 0.1
    done
}
