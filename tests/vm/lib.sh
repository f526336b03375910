# Shared by tests/vm/*: starting, reaching and stopping one qemu VM (TCG:
# guest kernels hang under KVM here), reached only over SSH through a
# loopback port forward; the serial console goes to a file.
# shellcheck shell=bash

# VM_TAG (the layout) tells apart the lines of VMs run side by side.
say() { echo "xitc-vm${VM_TAG:+ ($VM_TAG)}: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_vm DISK PORT SERIAL_LOG [QEMU OPTIONS...]: sets VM_PID.
start_vm() {
    local disk=$1 port=$2 serial=$3
    shift 3
    command -v qemu-system-x86_64 >/dev/null ||
        die "qemu-system-x86_64 is missing: scripts/install-test-deps installs it"
    qemu-system-x86_64 -accel tcg -m 1536 -smp 2 -display none -monitor none \
        -drive "file=$disk,if=virtio,format=qcow2" \
        -nic "user,restrict=on,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:22" \
        -serial "file:$serial" "$@" &
    VM_PID=$!
}

# wait_for_exit LIMIT_SECONDS: waits for the VM to power off, else kills it.
wait_for_exit() {
    local limit=$1 waited=0
    while kill -0 "$VM_PID" 2>/dev/null; do
        if ((waited >= limit)); then
            kill "$VM_PID" 2>/dev/null || true
            wait "$VM_PID" 2>/dev/null || true
            die "the VM did not power off within ${limit}s"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    wait "$VM_PID" 2>/dev/null || true
}

stop_vm() {
    if [[ -n ${VM_PID:-} ]] && kill -0 "$VM_PID" 2>/dev/null; then
        kill "$VM_PID"
        wait "$VM_PID" 2>/dev/null || true
    fi
}

# vm_ssh PORT KEY COMMAND...: runs COMMAND in the VM as root.
vm_ssh() {
    local port=$1 key=$2
    shift 2
    ssh -q -p "$port" -i "$key" -o BatchMode=yes -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o ConnectTimeout=10 -o ServerAliveInterval=10 root@127.0.0.1 "$@"
}

# vm_scp PORT KEY FILE... DESTINATION_IN_VM
vm_scp() {
    local port=$1 key=$2
    shift 2
    local args=("$@")
    local destination=${args[-1]}
    unset 'args[-1]'
    scp -q -P "$port" -i "$key" -o BatchMode=yes -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        "${args[@]}" "root@127.0.0.1:$destination"
}

# wait_for_ssh PORT KEY LIMIT_SECONDS SERIAL_LOG
wait_for_ssh() {
    local port=$1 key=$2 limit=$3 serial=$4 started=$SECONDS
    until vm_ssh "$port" "$key" true 2>/dev/null; do
        kill -0 "$VM_PID" 2>/dev/null || die "the VM stopped; serial log: $serial"
        ((SECONDS - started < limit)) ||
            die "no SSH within ${limit}s; serial log: $serial"
        sleep 2
    done
}
